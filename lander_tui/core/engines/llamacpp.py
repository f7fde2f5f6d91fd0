"""llama.cpp (llama-server) GPU memory, buffer by buffer, on one GPU, several, or partly on the CPU.

Mirrors what llama.cpp allocates: the model buffer (everything but `token_embd`, which stays in
host memory; a tied output is duplicated onto the GPU), the KV cache (cells padded to 256, iSWA
layers hold window + ubatch, MLA caches only the latent, recurrent layers a constant F32 state), the
compute buffer (the larger of the logits phase and the attention phase of the worst-case graph),
and the CUDA context that ggml does not see.

Placement (`load_tensors` in src/llama-model.cpp): `n_layer + 1` offloadable units (the output
layer is the +1), offloaded from the back (`i_gpu_start = n_layer + 1 - ngl`), each unit on the
device whose cumulative `--tensor-split` share it falls in (default: proportional to free memory).
Each device holds its layers' weights and KV and a compute buffer; the logits phase only where the
output layer is. For MoE models `--n-cpu-moe N` keeps the experts of the first N layers on the CPU.
Sources: shared/research/estimator-anchors.md §1 and the measured rows in tests/data/ground-truth.
"""

from __future__ import annotations

import bisect
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from lander_tui.core.checkpoint import gguf_checkpoint
from lander_tui.core.engines.base import (
    Budget,
    Calibration,
    Engine,
    EngineOptions,
    Footprint,
    FootprintFn,
    Running,
    pad,
)
from lander_tui.core.engines.running import EngineConfig, local_gguf
from lander_tui.core.errors import LanderError
from lander_tui.core.extras import Speculative, lora_bytes_by_layer, projector_of
from lander_tui.core.formats import BlockType, kv_cache_type
from lander_tui.core.memory import MIB, Breakdown, MemoryParts, extras_detail
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import FULL, RECURRENT, SWA, ModelSpec
from lander_tui.core.plan import DeviceShare, Plan
from lander_tui.core.quant_config import native_format
from lander_tui.core.speed import GGML, SpeedInputs, device_cards, llama_bench_command, offload_step, speed_inputs
from lander_tui.core.vision import clip_compute_bytes, vision_tensors
from lander_tui.core.weights import WeightSet, gguf_format, gguf_weights

#: llama.cpp pipeline parallelism keeps GGML_SCHED_MAX_COPIES = 4 copies of the inputs per device.
PIPELINE_COPIES = 4
#: common/speculative.cpp: a draft whose vocabulary differs by more tokens than this is refused.
SPEC_VOCAB_MAX_SIZE_DIFFERENCE = 128
OFFLOAD_NOTE = ("layers and experts on the CPU run several times slower than on the GPU "
                "(each token streams their weights from system RAM)")


# --- front ends ----------------------------------------------------------------------------------
# What each llama.cpp front end asks llama.cpp to allocate, when the user sets nothing.
#
# The same GGUF costs different memory depending on the program that opens it, because the front ends
# fill `llama_context_params` differently (llama.cpp as vendored in llama-cpp-python 0.3.36,
# ggml-org/llama.cpp@0c1e57098):
#
# * `swa_full`: `llama_context_default_params()` (src/llama-context.cpp) sets `swa_full = true`, so the C API
#   and every binding that keeps its defaults (llama-cpp-python `Llama(...)`, ...) give sliding-window
#   layers a full-size cache; `common_params` (common/common.h: `bool swa_full = false`) is what
#   llama-server, llama-cli and llama-completion start from, so they keep only window + ubatch cells
#   (src/llama-kv-cache-iswa.cpp). `--swa-full` turns it on there.
# * the logits rows of the worst-case graph: llama_context::sched_reserve reserves the prompt graph for
#   `min(n_ubatch, n_outputs_max)` outputs (src/llama-context.cpp). `n_outputs_max = 0` means `n_batch`
#   (llama_context constructor), which is the C API's and common_params' default (common/common.h), so the
#   bindings and llama-cli reserve a full ubatch of f32 logits (n_vocab x 512 x 4 bytes: 297 MiB for a
#   152k vocabulary). llama-server sets `n_outputs_max = min(n_batch, n_parallel x (1 + n_draft))`
#   (tools/server/server-context.cpp `server_output_limits`, common/speculative.cpp
#   `common_speculative_get_output_limits`), so it reserves one row per slot (85 MiB instead of
#   301.75 MiB of CUDA compute buffer for Qwen3-4B at 8k).


@dataclass(frozen=True)
class FrontEnd:
    name: str
    #: Default of `swa_full` (full-size sliding-window cache) in this front end.
    swa_full: bool
    #: True: the graph is reserved for one logits row per parallel sequence (llama-server);
    #: False: for a whole ubatch of rows (n_outputs_max = n_batch).
    logits_per_sequence: bool
    summary: str


FRONT_ENDS: dict[str, FrontEnd] = {
    "llama-server": FrontEnd("llama-server", False, True,
                             "llama-server (and Ollama-style servers on common_params): window-sized SWA cache, "
                             "one logits row per slot"),
    "llama-cli": FrontEnd("llama-cli", False, False,
                          "llama-cli / llama-completion / llama-bench: window-sized SWA cache, a ubatch of logits"),
    "bindings": FrontEnd("bindings", True, False,
                         "the C API defaults (llama-cpp-python and other bindings): full-size SWA cache, "
                         "a ubatch of logits"),
}
DEFAULT_FRONT_END = "llama-server"


def front_end(name: str) -> FrontEnd:
    try:
        return FRONT_ENDS[name]
    except KeyError:
        raise LanderError(f"unknown llama.cpp front end {name!r}; use one of: {', '.join(FRONT_ENDS)}") from None


def logits_rows(name: str, n_ubatch: int, n_batch: int, n_parallel: int, n_draft: int = 0) -> int:
    """Logits rows in the reserved prompt graph: min(n_ubatch, n_outputs_max). With speculative decoding
    llama-server reserves `n_parallel x (1 + n_draft)` rows (`common_speculative_get_output_limits`)."""
    n_ub = min(n_ubatch, n_batch)
    if front_end(name).logits_per_sequence:
        return max(1, min(n_ub, n_batch, n_parallel * (1 + max(0, n_draft))))
    return n_ub


@dataclass(frozen=True)
class LlamaCppCalibration(Calibration):
    """Constants that are not format facts, each with where it comes from."""

    #: CUDA context + cuBLAS + kernels: NVML process memory minus llama.cpp's own `self`
    #: (589-591 MiB in every tests/data/ground-truth/llama.cpp.jsonl row, H100, CUDA 13). Smaller GPUs
    #: and older CUDA use less, so this errs on the safe side there.
    cuda_context_mib: float = 592.0
    #: Extra free memory to leave, like `--fit`'s target (llama.cpp defaults `-fitt` to 1024 MiB;
    #: a plain `-c N -ngl 999` run needs none).
    margin_mib: float = 0.0
    #: Run-to-run variance of what CUDA adds (cuBLAS workspace, the ggml-cuda pool, driver): the
    #: measured gap NVML - llama.cpp `self` moves by a few MiB. A plan that does not load is the worst
    #: answer, so we keep this much spare; it costs at most a few 256-cell steps of context.
    safety_mib: float = 32.0
    #: Graph tensors of width n_embd x n_ubatch (f32) alive beside the attention scratch: hidden state,
    #: residual, Q and the attention output with flash attention (fits the 131k q8_0 rows exactly).
    fa_embd_tensors: float = 4.0
    #: The same without flash attention (fits the 4k and 32k no-FA rows: 300 and 2148 MiB).
    nofa_embd_tensors: float = 4.5
    #: Host compute buffer: input embeddings stage, n_embd x n_ubatch f32 tensors.
    host_embd_tensors: float = 2.0
    #: f32 tensors of width n_ff x n_ubatch alive at the FFN peak (gate, up, their product, and one more
    #: the allocator cannot reuse). Only visible when the logits rows are few (llama-server): Qwen3-4B at 8k
    #: shows a CUDA compute buffer of 85.01 MiB (tests/data/ground-truth/wild, llama.cpp-ollama-019)
    #: = 4 x 9728 x 512 x 4 B + 2 x 2560 x 512 x 4 B (86.0 MiB, 1 MiB to spare); 3 would give 67 MiB.
    ffn_ff_tensors: float = 4.0

    def device_overhead_mib(self) -> float:
        """What each GPU in use carries besides weights, KV and compute buffers."""
        return self.cuda_context_mib + self.margin_mib + self.safety_mib


def _kv_row_bytes(kv: BlockType, n: int) -> int:
    return kv.row_bytes(n) if n else 0


@dataclass(frozen=True)
class Geometry:
    n_ctx: np.ndarray
    n_ctx_seq: np.ndarray
    streams: int
    n_ub: np.ndarray
    n_par: int
    unified: bool
    n_batch: int
    swa_full: bool = False
    n_outputs: np.ndarray | int = 1  # logits rows the worst-case prompt graph is reserved for
    rs_seq: int = 0  # extra recurrent-state rows per sequence (MTP drafting: llama_cparams n_rs_seq)


@dataclass(frozen=True)
class Layout:
    """Where every weight and layer goes; independent of the context length."""

    units: list[int | None]  # device of each unit 0..n_layers (the last is the output layer); None = CPU
    weights: list[float]  # bytes per device
    kinds: list[dict[str, int]]  # per device: layer kind -> count (for the KV)
    cpu_kinds: dict[str, int]
    cpu_weights: float  # bytes of layers/experts on the CPU (token_embd excluded)
    embd: float
    out_dev: int | None
    used: list[int]
    split: tuple[float, ...]
    ngl: int
    cpu_moe: int
    quant: str = ""


def layer_devices(n_layers: int, ngl: int, split: tuple[float, ...]) -> list[int | None]:
    """Device index of each unit 0..n_layers (the last is the output layer); None = CPU."""
    return list(_layer_devices(n_layers, ngl, tuple(split)))


@lru_cache(maxsize=1024)
def _layer_devices(n_layers: int, ngl: int, split: tuple[float, ...]) -> tuple[int | None, ...]:
    total = sum(split)
    if total <= 0:
        raise LanderError("--tensor-split needs at least one positive share")
    cum, acc = [], 0.0
    for s in split:
        acc += s / total
        cum.append(acc)
    start = n_layers + 1 - ngl
    out: list[int | None] = []
    for il in range(n_layers + 1):
        if il < start:
            out.append(None)
        else:
            frac = (il - start) / max(1, ngl)
            out.append(min(len(split) - 1, bisect.bisect_right(cum, frac)))
    return tuple(out)


class LlamaCpp(Engine):
    name = "llama.cpp"
    label = "llama.cpp"
    aliases: tuple[str, ...] = ("llamacpp", "llama-cpp", "llama-server")
    order = 10
    command_name = "llama-server"
    # llama-server: -np slots share the one KV cache of -c cells (geometry() below; --kv-unified lets one
    # request use all of it, without it each slot gets -c / N)
    parallel_help = "llama.cpp -np request slots: -c is the whole KV cache, shared by all of them"
    host_note = "token_embd in host RAM"
    quants = ("Q4_K_M", "Q6_K", "Q8_0")
    kv_types = ("f16", "q8_0")
    kv_cycle = ("", "f16", "q8_0", "q4_0")
    splits_across_gpus = True
    builtin = True
    options_read = frozenset({"flash_attn", "n_parallel", "n_ubatch", "n_batch", "kv_unified", "tensor_split",
                              "front_end", "swa_full", "mmproj", "speculative", "lora"})
    runtime = GGML
    pad_cells = 256
    defaults_parallel = 1
    #: Whether a plan may keep MoE experts on the CPU (`--n-cpu-moe`) before moving whole layers.
    moe_offload = True

    def granularity(self, opts: EngineOptions) -> int:
        return self.pad_cells

    def default_quants(self, model: ResolvedModel) -> tuple[str, ...]:
        """A GGUF file's own type; a checkpoint that ships MXFP4 experts (gpt-oss) converts to
        MXFP4_MOE GGUFs (convert_hf_to_gguf.py keeps the experts' MXFP4 blocks); else the usual."""
        if model.file_quant:
            return (model.file_quant,)
        return ("MXFP4_MOE",) if native_format(model.spec) == "MXFP4" else self.quants

    def calibration(self, opts: EngineOptions) -> LlamaCppCalibration:
        return LlamaCppCalibration().with_overrides(opts.overrides)  # type: ignore[return-value]

    def check_quant(self, quant: str) -> None:
        gguf_format(quant)

    def check_kv(self, kv: str) -> None:
        if kv_cache_type(kv).name == "fp8":
            raise LanderError("llama.cpp has no fp8 KV cache; use q8_0 (or f16, q5_1, q4_0 ...)")

    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        return gguf_weights(model.spec, quant, model.tensors, model.file_quant)

    def gpu_weight_bytes(self, spec: ModelSpec, w: WeightSet) -> tuple[int, int]:
        """(GPU bytes, host bytes): token_embd stays on the CPU; a tied output is duplicated on the GPU."""
        emb = w.bytes_of("token_embd.weight")
        gpu = w.total_bytes - emb
        if not w.has("output.weight"):
            gpu += emb
        return gpu, emb

    def check(self, spec: ModelSpec, kv_type: str, opts: EngineOptions) -> tuple[BlockType, bool]:
        """The KV type and whether flash attention is on; refuses what llama.cpp refuses."""
        self.check_kv(kv_type)
        front_end(opts.front_end)
        kv = kv_cache_type(kv_type)
        fa = True if opts.flash_attn is None else opts.flash_attn
        if kv.block > 1 and not fa and not spec.mla:
            raise LanderError(f"a quantized V cache ({kv_type}) needs flash attention in llama.cpp")
        return kv, fa

    def geometry(self, ctx: np.ndarray, opts: EngineOptions) -> Geometry:
        """Context cells as llama.cpp rounds them (`n_ctx` padded to 256; per-sequence streams)."""
        n_par = opts.n_parallel or self.defaults_parallel
        n_ctx = pad(np.maximum(np.asarray(ctx, dtype=np.int64), 1), self.pad_cells)
        if opts.kv_unified or n_par == 1:
            n_ctx_seq, streams = n_ctx, 1
        else:
            n_ctx_seq = pad(n_ctx // n_par, self.pad_cells)
            n_ctx, streams = n_ctx_seq * n_par, n_par
        n_ub = np.minimum(min(opts.n_ubatch, opts.n_batch), n_ctx)
        fe = front_end(opts.front_end)
        swa_full = fe.swa_full if opts.swa_full is None else opts.swa_full
        # with causal attention llama.cpp caps n_batch (hence n_ubatch) at n_ctx (src/llama-context.cpp)
        n_draft = opts.speculative.tokens if opts.speculative is not None else 0
        rows = np.minimum(logits_rows(opts.front_end, opts.n_ubatch, opts.n_batch, n_par, n_draft), n_ub)
        # MTP drafting keeps n_max more recurrent-state rows per sequence (common_params_speculative::need_n_rs_seq)
        rs_seq = n_draft if opts.speculative is not None and opts.speculative.mtp else 0
        return Geometry(n_ctx, n_ctx_seq, streams, n_ub, n_par, opts.kv_unified, min(opts.n_ubatch, opts.n_batch),
                        swa_full=swa_full, n_outputs=rows, rs_seq=rs_seq)

    def kv_layer_bytes(self, spec: ModelSpec, kv: BlockType, geo: Geometry) -> dict[str, np.ndarray]:
        """KV (or recurrent state) bytes of ONE layer of each kind: "full", "swa", "recurrent"."""
        k_vals, v_vals = spec.kv_values_per_token()
        per_cell = _kv_row_bytes(kv, k_vals) + _kv_row_bytes(kv, v_vals)
        out = {FULL: (per_cell * geo.n_ctx_seq * geo.streams).astype(np.float64)}
        if spec.llamacpp_uses_swa and not geo.swa_full:
            # src/llama-kv-cache-iswa.cpp: GGML_PAD(min(size_base, n_swa * (unified ? n_seq_max : 1) + n_ubatch), 256)
            swa_seqs = geo.n_par if geo.unified else 1
            cells = np.minimum(geo.n_ctx_seq, pad((spec.sliding_window or 0) * swa_seqs + geo.n_ub, self.pad_cells))
            out[SWA] = (per_cell * cells * geo.streams).astype(np.float64)
        else:  # no iSWA cache for this arch, or swa_full: the SWA cache is as large as the base one
            out[SWA] = out[FULL]
        rec = (spec.recurrent.conv + spec.recurrent.ssm) * 4 * geo.n_par * (1 + geo.rs_seq) if spec.recurrent else 0
        out[RECURRENT] = np.full(geo.n_ctx.shape, float(rec))
        return out

    def compute_phases(self, spec: ModelSpec, kv: BlockType, fa: bool, geo: Geometry,
                       cal: LlamaCppCalibration) -> dict[str, np.ndarray]:
        """Peaks of the worst-case graph at n_ubatch tokens against a full KV (n_kv = n_ctx).

        The compute buffer of a device is the largest phase it runs: the logits phase only on the
        device that holds the output layer.
        """
        H, V = spec.hidden_size, spec.vocab_size
        k_vals, v_vals = spec.kv_values_per_token()
        embd = H * geo.n_ub * 4
        logits = V * geo.n_outputs * 4 + embd  # rows: the front end's n_outputs_max (engines/llamacpp.py, FRONT_ENDS)
        n_kv = geo.n_ctx_seq
        if fa:
            attn = n_kv * geo.n_ub * 2 + cal.fa_embd_tensors * embd  # f16 mask
            if kv.name != "F16":  # quantized (or f32) K and V are cast to f16, one layer at a time
                attn = attn + n_kv * (k_vals + v_vals) * 2
        else:
            attn = n_kv * geo.n_ub * (spec.n_heads * 4 + 4) + cal.nofa_embd_tensors * embd  # KQ f32 + f32 mask
        dense_ff = spec.intermediate_size if not spec.moe or len(spec.moe.dense_layers) else 0
        ffn = cal.ffn_ff_tensors * dense_ff * geo.n_ub * 4 + 2 * embd
        pool = np.zeros_like(embd)
        if spec.moe:
            # build_moe_ffn (src/llama-graph.cpp): gate, up and their swiglu are [n_ff_exp, k, n_ub] f32,
            # then the down mul_mat_id writes [n_embd, k, n_ub] f32 while its input is still alive (the
            # weighting ggml_mul runs in place); the CUDA mul_mat_id (ggml-cuda/mmq.cu, ids) gathers and
            # quantizes its routed input to q8_1 (36 bytes per 32) in the CUDA pool, outside the graph.
            k, ff_k = spec.moe.n_used, spec.moe.n_used * spec.moe.expert_ff
            moe = np.maximum(3 * ff_k, ff_k + k * H) * geo.n_ub * 4 + 2 * embd
            ffn = np.maximum(ffn, moe)
            pool = k * geo.n_ub * max(H, spec.moe.expert_ff) * 36 / 32
        host = cal.host_embd_tensors * embd + n_kv * geo.n_ub * (2 if fa else 4)
        return {"logits": logits.astype(np.float64), "attention": np.asarray(attn, dtype=np.float64),
                "ffn": np.asarray(ffn, dtype=np.float64), "host": np.asarray(host, dtype=np.float64),
                "cuda_pool": np.asarray(pool, dtype=np.float64)}

    # --- placement ---------------------------------------------------------------------------
    def layout(self, model: ResolvedModel, quant: str, n_dev: int, ngl: int, split: tuple[float, ...],
               cpu_moe: int = 0) -> Layout:
        spec, w, L = model.spec, self.weights(model, quant), model.spec.n_layers
        units = layer_devices(L, ngl, split)
        wts = [0.0] * n_dev
        cpu_w = 0.0
        for st in w.tensors:
            t = st.tensor
            if t.name == "token_embd.weight":
                continue
            dev = units[t.layer if t.layer is not None else L]  # output and output_norm ride with the output unit
            if dev is None or (t.layer is not None and t.layer < cpu_moe and "_exps" in t.name):
                cpu_w += st.nbytes
            else:
                wts[dev] += st.nbytes
        out_dev = units[L]
        if not w.has("output.weight") and out_dev is not None:
            wts[out_dev] += w.bytes_of("token_embd.weight")  # a tied output is duplicated on the GPU
        kinds: list[dict[str, int]] = [{} for _ in range(n_dev)]
        cpu_kinds: dict[str, int] = {}
        for il, kind in enumerate(spec.kinds()):
            dev = units[il]
            target = cpu_kinds if dev is None else kinds[dev]
            target[kind] = target.get(kind, 0) + 1
        used = sorted({u for u in units if u is not None})
        return Layout(units, wts, kinds, cpu_kinds, cpu_w, float(w.bytes_of("token_embd.weight")), out_dev, used,
                      split, ngl, cpu_moe, w.quant)

    def _split(self, devices: Sequence[Device], opts: EngineOptions,
               split: tuple[float, ...] | None = None) -> tuple[float, ...]:
        return split or opts.tensor_split or tuple(max(0.0, d.free_mib) for d in devices)

    def placed(self, model: ResolvedModel, kv_type: str, lay: Layout, ctx: np.ndarray,
               opts: EngineOptions) -> Footprint:
        """Per-device memory of a layout at each context: one vectorised pass."""
        spec = model.spec
        cal = self.calibration(opts)
        kv, fa = self.check(spec, kv_type, opts)
        geo = self.geometry(ctx, opts)
        per_kind = self.kv_layer_bytes(spec, kv, geo)
        ph = self.compute_phases(spec, kv, fa, geo, cal)
        m = geo.n_ctx.shape[0]
        layer_phase = np.maximum(ph["attention"], ph["ffn"])
        pipelined = len(lay.used) > 1 and all(u is not None for u in lay.units)
        zero = np.zeros(m)
        extras, extra_host = self.extras(model, lay, ctx, opts, fa)
        devices = []
        for i in range(len(lay.weights)):
            kvs = sum((per_kind[kind] * count for kind, count in lay.kinds[i].items()), zero)
            if lay.out_dev == i:
                compute = np.maximum(ph["logits"], layer_phase)
            elif lay.kinds[i]:
                compute = layer_phase
            else:
                compute = zero
            if lay.kinds[i]:
                compute = compute + ph["cuda_pool"]  # MoE expert matmuls' scratch beside the graph
            if pipelined and i in lay.used:
                compute = compute + (PIPELINE_COPIES - 1) * spec.hidden_size * geo.n_ub * 4
            used = i in lay.used
            overhead = np.full(m, cal.device_overhead_mib() * MIB if used else 0.0)
            ex = extras[i]
            detail = {"cuda_context": np.full(m, cal.cuda_context_mib * MIB if used else 0.0),
                      "logits": ph["logits"] if lay.out_dev == i else zero,
                      **extras_detail(*(np.broadcast_to(np.asarray(x, dtype=np.float64), (m,)) for x in ex))}
            devices.append(MemoryParts(np.full(m, lay.weights[i]), kvs, compute, overhead, 0.0, detail,
                                       np.broadcast_to(np.asarray(sum(ex), dtype=np.float64), (m,))))
        cpu_kv = sum((per_kind[k] * c for k, c in lay.cpu_kinds.items()), zero)
        host = lay.embd + lay.cpu_weights + cpu_kv + ph["host"] + spec.vocab_size * max(1, geo.n_par) * 4 + extra_host
        return Footprint(geo.n_ctx, tuple(devices), np.asarray(host, dtype=np.float64))

    # --- what loads beside the model ------------------------------------------------------------
    def extras(self, model: ResolvedModel, lay: Layout, ctx: np.ndarray, opts: EngineOptions,
               fa: bool) -> tuple[list[tuple[Any, Any, Any]], Any]:
        """(projector, draft, LoRA) bytes on each device, and the host RAM they add.

        * `--mmproj`: clip loads the projector on the first GPU (tools/mtmd/clip.cpp `clip_ctx`: the first
          GPU backend) and reserves its graph for one warm-up image there, with flash attention as the
          server's `-fa` says (tools/server/server-context.cpp passes `flash_attn_type` to mtmd).
        * `-md FILE`: a second model and context (common/speculative.cpp `common_speculative_init_result`):
          the same n_ctx, slots and split as the target, `-ctkd`/`-ctvd` cache types (f16 by default),
          one logits row per slot, all its layers on the GPUs (`-ngld 999`). `--spec-type draft-mtp`:
          a context against the target's own weights whose cache holds only the MTP layers.
        * `--lora FILE`: each adapter tensor in the buffer of its base tensor (src/llama-adapter.cpp), so
          with its layer's device, or the CPU for layers that run there.
        """
        n_dev, m = len(lay.weights), np.asarray(ctx).shape[0]
        out: list[list[Any]] = [[0.0, 0.0, 0.0] for _ in range(n_dev)]
        host: Any = 0.0
        vision = projector_of(model, opts.mmproj)
        if vision is not None and n_dev:
            w = (model.projector.nbytes if model.projector is not None
                 else sum(t.nbytes or 0 for t in vision_tensors(vision)))
            if self.projector_on_gpu(model, lay):
                out[0][0] = float(w) + clip_compute_bytes(vision, fa)
            else:
                host = float(w) + clip_compute_bytes(vision, fa)
        if opts.speculative is not None:
            per_dev, host = self.draft_parts(model, lay, ctx, opts, opts.speculative)
            for i in range(n_dev):
                out[i][1] = per_dev[i]
        if opts.lora is not None:
            L = model.spec.n_layers
            for layer, nbytes in lora_bytes_by_layer(model.spec, opts.lora).items():
                dev = lay.units[layer if layer is not None else L]
                if dev is None:
                    host = host + nbytes
                else:
                    out[dev][2] += nbytes
        return [(a, b, np.full(m, c)) for a, b, c in out], host

    def projector_on_gpu(self, model: ResolvedModel, lay: Layout) -> bool:
        """llama-server offloads the projector whatever the layers do (`--mmproj-offload` is on by default)."""
        return True

    def draft_parts(self, model: ResolvedModel, lay: Layout, ctx: np.ndarray, opts: EngineOptions,
                    draft: Speculative) -> tuple[list[Any], Any]:
        """The draft's weights + KV + compute on each device (its CUDA context is the server's) and its host RAM."""
        n_dev = len(lay.weights)
        dkv = draft.kv or "f16"  # common_params_speculative_draft: cache_type_k/v = GGML_TYPE_F16
        # the draft context reserves one logits row per slot (common_base_params_to_speculative)
        dopts = replace(opts, speculative=None, lora=None, mmproj=False)
        if draft.mtp:
            return self.mtp_parts(model, lay, ctx, dopts, dkv), 0.0
        assert draft.model is not None
        dm = draft.model
        if abs(dm.spec.vocab_size - model.spec.vocab_size) > SPEC_VOCAB_MAX_SIZE_DIFFERENCE:
            raise LanderError(f"the draft model's vocabulary ({dm.spec.vocab_size:,}) is not the model's "
                              f"({model.spec.vocab_size:,}); llama.cpp drafts only with the same tokenizer")
        dquant = draft.quant or dm.file_quant or lay.quant
        dlay = self.layout(dm, dquant, n_dev, dm.spec.n_layers + 1, lay.split)
        fp = self.placed(dm, dkv, dlay, ctx, dopts)
        return [d.weights + d.kv + d.compute for d in fp.devices], fp.host

    def mtp_parts(self, model: ResolvedModel, lay: Layout, ctx: np.ndarray, opts: EngineOptions,
                  kv_type: str) -> list[Any]:
        """`--spec-type draft-mtp`: a second context on the target's weights whose KV cache holds only the
        `n_layer_nextn` layers (src/llama-model.cpp create_memory, `il >= n_layer()`), with its own compute
        buffer (one layer's peak and a logits row per slot), on the device of the last layer; the MTP
        layers' weights themselves are in the GGUF (loaded with the model)."""
        spec = model.spec
        if not spec.mtp_layers:
            raise LanderError(f"{spec.name} has no multi-token-prediction layers (num_nextn_predict_layers); "
                              "name a draft model with --draft MODEL")
        kv, fa = self.check(spec, kv_type, opts)
        geo = self.geometry(ctx, opts)
        per_kind = self.kv_layer_bytes(spec, kv, geo)
        ph = self.compute_phases(spec, kv, fa, geo, self.calibration(opts))
        dev = lay.units[spec.n_layers - 1] if lay.units[spec.n_layers - 1] is not None else lay.out_dev
        out: list[Any] = [0.0] * len(lay.weights)
        if dev is not None:
            compute = np.maximum(ph["logits"], np.maximum(ph["attention"], ph["ffn"]))
            out[dev] = per_kind["full"] * spec.mtp_layers + compute
        return out

    def footprint(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                  opts: EngineOptions) -> FootprintFn:
        """Every layer on the GPUs (`-ngl 999`), split by `--tensor-split` or free memory."""
        self.check(model.spec, kv, opts)
        lay = self.layout(model, quant, len(devices), model.spec.n_layers + 1, self._split(devices, opts))
        return lambda ctx: self.placed(model, kv, lay, np.asarray(ctx), opts)

    def memory(self, model: ResolvedModel, quant: str, kv: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown:
        """Everything on one GPU (`-ngl 999`)."""
        fp = self.footprint(model, quant, kv, [Device("GPU", 1.0)], opts)(np.asarray(ctx))
        d = fp.devices[0]
        host_w = float(self.weights(model, quant).bytes_of("token_embd.weight"))
        detail = {**d.detail, "token_embd_host": host_w}
        return Breakdown(d.weights, d.kv, d.compute, d.overhead, fp.host, detail, context=fp.context)

    def fit_sets(self, model: ResolvedModel, quant: str, kv: str, ctx: int, sets: Sequence[Sequence[Device]],
                 opts: EngineOptions) -> tuple[np.ndarray, np.ndarray]:
        """`footprint` for many sets: a set's memory depends on its free memory only through which device
        each layer unit lands on, so the split of every set is found in one array pass
        (`layer_devices_many`), and `layout` + `placed` run once per distinct placement (one for all
        single GPUs; a few dozen across hundreds of pairs), then are shared."""
        budgets = self.set_budgets(sets, opts)
        n = budgets.shape[1]
        if opts.tensor_split is not None and len(opts.tensor_split) != n:
            return super().fit_sets(model, quant, kv, ctx, sets, opts)
        L = model.spec.n_layers
        splits = np.array([self._split(devices, opts) for devices in sets], dtype=np.float64)
        units = layer_devices_many(L, L + 1, splits)
        need = np.full(budgets.shape, np.inf)
        placements, where = np.unique(units, axis=0, return_inverse=True)
        for j, placement in enumerate(placements):
            if (placement < 0).any():
                continue  # no GPU with free memory to split over: llama.cpp refuses it
            rows = np.flatnonzero(where.reshape(-1) == j)
            lay = self.layout(model, quant, n, L + 1, tuple(splits[rows[0]]))
            fp = self.placed(model, kv, lay, np.array([ctx]), opts)
            need[rows] = [float(np.asarray(d.total).flat[0]) / MIB for d in fp.devices]
        return need, budgets

    # --- plans -------------------------------------------------------------------------------
    def fallback_context(self, model: ResolvedModel) -> int | None:
        return min(model.spec.max_context, 4096)  # what runs with part of the model on the CPU

    def plan_layout(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
                    opts: EngineOptions, ngl: int | None = None, split: tuple[float, ...] | None = None,
                    cpu_moe: int = 0) -> Plan:
        """The plan with `ngl` units on the GPUs and the experts of `cpu_moe` layers on the CPU."""
        if not devices:
            raise LanderError("a plan needs at least one GPU")
        L = model.spec.n_layers
        ngl = L + 1 if ngl is None else max(0, min(ngl, L + 1))
        lay = self.layout(model, quant, len(devices), ngl, self._split(devices, opts, split), cpu_moe)
        fp = self.placed(model, kv, lay, np.array([ctx]), opts)
        shares = []
        for i, (d, part) in enumerate(zip(devices, fp.devices, strict=True)):
            holds = [il for il in range(L) if lay.units[il] == i]
            shares.append(DeviceShare(d.name, d.free_mib, d.free_mib, part.at(0).to_mib(),
                                      (holds[0], holds[-1]) if holds else None, lay.out_dev == i, d.index))
        notes = (OFFLOAD_NOTE,) if ngl < L + 1 or cpu_moe else ()
        return Plan(self.name, self.weights(model, quant).quant, kv, int(fp.context[0]), tuple(shares), L, ngl,
                    cpu_moe=cpu_moe, tensor_split=tuple(lay.split), host_mib=float(fp.host[0]) / MIB,
                    cpu_weights_mib=lay.cpu_weights / MIB, gpu_weights_mib=sum(lay.weights) / MIB, notes=notes)

    def plan(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
             budget: Budget, opts: EngineOptions) -> Plan:
        """The most units on the GPUs at this context: full offload, else (MoE) experts to the CPU first,
        else the largest -ngl that fits. Returns a plan that fits, or the all-CPU plan."""
        def at(ngl: int | None = None, cpu_moe: int = 0) -> Plan:
            return self.plan_layout(model, quant, kv, ctx, devices, opts, ngl=ngl, cpu_moe=cpu_moe)

        full = at()
        if full.fits:
            return full
        L = model.spec.n_layers
        if self.moe_offload and model.spec.moe and at(cpu_moe=L).fits:
            lo_n, hi_n = 1, L  # fewest layers whose experts must stay on the CPU (--n-cpu-moe)
            while lo_n < hi_n:
                mid = (lo_n + hi_n) // 2
                if at(cpu_moe=mid).fits:
                    hi_n = mid
                else:
                    lo_n = mid + 1
            return at(cpu_moe=lo_n)
        lo, hi = 0, L  # lo fits (0 layers always "fits" apart from the context), hi = L+1 does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if at(ngl=mid).fits:
                lo = mid
            else:
                hi = mid - 1
        return at(ngl=lo)

    # --- a server that already runs ----------------------------------------------------------
    def running(self, config: EngineConfig, gpu_total_mib: float | None) -> Running:
        """A llama-server (or llama-cpp-python) as configured: the GGUF it loaded, read here, at exactly
        its KV cells (`-c`), slots, unified cache, KV type, flash attention and ubatch, all on one GPU."""
        model = local_gguf(config.model)
        if config.gpu_layers is not None and config.gpu_layers.strip() == "0":
            raise LanderError("it runs on the CPU (0 GPU layers), so it holds no GPU memory to predict")
        cells = config.cells()
        if cells is None:
            raise LanderError("the engine does not say its context size")
        parallel = config.parallel or 1
        opts = EngineOptions(flash_attn=config.flash_attn, n_parallel=parallel, n_ubatch=config.n_ubatch or 512,
                             n_batch=config.n_batch or 2048, kv_unified=bool(config.kv_unified) or parallel == 1)
        kv = (config.kv_type or "f16").lower()
        notes: tuple[str, ...] = ()
        ngl = (config.gpu_layers or "").strip()
        if ngl not in ("", "auto", "-1") and not (ngl.isdigit() and int(ngl) >= model.spec.n_layers):
            notes = (f"predicted with every layer on the GPU; it runs with -ngl {ngl}",)
        shown = {"kv_cells": cells, "parallel": parallel, "kv_unified": opts.kv_unified, "kv_type": kv,
                 "flash_attn": config.flash_attn, "n_ubatch": opts.n_ubatch}
        return Running(model, model.file_quant or None, kv, cells, opts, shown, notes=notes)

    def restart_flags(self, run: Running, context: int, settings: Mapping[str, float]) -> tuple[int, str]:
        """`-c` is every KV cell; without a unified cache each of the `-np` slots gets `-c / -np`, and
        llama-server caps a slot at the model's trained context (tools/server/server-context.cpp)."""
        par, unified = self._slots(run)
        per = min(context if unified else context // par, run.model.spec.max_context)
        per -= per % self.pad_cells if per >= self.pad_cells else 0
        return per, f"-c {per if unified else per * par}" + (f" -np {par}" if par > 1 else "")

    @staticmethod
    def _slots(run: Running) -> tuple[int, bool]:
        par = run.options.n_parallel or 1
        return par, run.options.kv_unified or par == 1

    # --- speed ---------------------------------------------------------------------------------
    def _speed_args(self, model: ResolvedModel, kv: str, devices: Sequence[Device], opts: EngineOptions,
                    plan: Plan | None) -> dict[str, Any]:
        """The placement as the speed model takes it: the device of every layer unit (the same
        `layer_devices` the memory uses), `--n-cpu-moe`, and the batch and attention settings."""
        L = model.spec.n_layers
        ngl = L + 1 if plan is None else plan.gpu_layers
        split = plan.tensor_split if plan is not None and plan.tensor_split else self._split(devices, opts)
        units = layer_devices(L, ngl, split)
        cpu_moe = plan.cpu_moe if plan is not None else 0
        _, fa = self.check(model.spec, kv, opts)
        host = host_bandwidth_gbs(opts)
        return {"units": units, "cpu_moe": cpu_moe, "kv_type": kv, "runtime": self.runtime, "flash_attn": fa,
                "n_ubatch": opts.n_ubatch, "n_batch": opts.n_batch, "host_bw_gbs": host}

    def speed_inputs(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                     opts: EngineOptions, plan: Plan | None = None) -> SpeedInputs:
        return speed_inputs(model.spec, self.weights(model, quant), device_cards(devices),
                            **self._speed_args(model, kv, devices, opts, plan))

    def offload_step(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                     opts: EngineOptions, plan: Plan) -> tuple[SpeedInputs, str] | None:
        """The next layer's experts to the CPU for an MoE model (`--n-cpu-moe N+1`), else the lowest
        GPU layer (`-ngl` one lower: llama.cpp offloads from the front)."""
        spec = model.spec
        if plan.gpu_layers <= 0:
            return None  # everything is on the CPU already
        if spec.moe and plan.cpu_moe < spec.n_layers:
            label = f"--n-cpu-moe {plan.cpu_moe + 1}"
        else:
            label = f"-ngl {min(plan.gpu_layers, spec.n_layers + 1) - 1}"
        inputs = offload_step(spec, self.weights(model, quant), device_cards(devices),
                              **self._speed_args(model, kv, devices, opts, plan))
        return inputs, label

    def bench_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        """Two `llama-bench` runs with the plan's placement: a prompt as long as the context (prefill
        tok/s, time to first token) and 128 tokens decoded after context - 128 cached ones (decode tok/s
        at the context; llama-bench sizes its cache to prompt + generated + depth, so this stays within
        the plan's memory)."""
        args: dict[str, Any] = {"ngl": plan.gpu_layers if plan.gpu_layers <= plan.n_layers else 999,
                "tensor_split": tuple(_ratios(plan.tensor_split)) if len(plan.devices) > 1 else (),
                "cpu_moe": plan.cpu_moe, "flash_attn": opts.flash_attn is not False, "n_ubatch": opts.n_ubatch,
                "n_batch": opts.n_batch, "kv_type": plan.kv_cache}
        ckpt = gguf_checkpoint(model, plan.quant)
        path, note = ckpt.ref, ckpt.comment()
        if ckpt.kind == "gguf-repo":  # llama-bench reads a local file only
            path = f"{ckpt.ref.split('/')[-1].replace(':', '-')}.gguf"
            note = f"# {path}: the GGUF that `llama-server -hf {ckpt.ref}` downloads (llama-bench reads a file)\n"
        prefill = llama_bench_command(path, prompt=plan.context, gen=0, **args)
        decode = llama_bench_command(path, prompt=0, gen=BENCH_GEN, depth=max(0, plan.context - BENCH_GEN),
                                     **args)
        return f"{note}{prefill}\n{decode}"

    # --- running it ----------------------------------------------------------------------------
    def launch_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        ckpt = gguf_checkpoint(model, plan.quant)
        source = ["-hf", ckpt.ref] if ckpt.kind == "gguf-repo" else ["-m", ckpt.ref]
        args = ["llama-server", *source, "-c", str(plan.context),
                "-ngl", str(plan.gpu_layers if plan.gpu_layers <= plan.n_layers else 999),
                "-ctk", plan.kv_cache, "-ctv", plan.kv_cache, "-fa", "off" if opts.flash_attn is False else "on"]
        # always explicit: llama-server's automatic -np is 4, which grows sliding-window and recurrent caches
        n_par = max(1, opts.n_parallel or 1)
        args += ["-np", str(n_par)]
        if n_par > 1 and opts.kv_unified:
            args.append("-kvu")  # the plan shares one cache across slots; with -np alone llama-server splits it
        if opts.swa_full:
            args.append("--swa-full")
        if opts.n_ubatch != EngineOptions().n_ubatch:
            args += ["-ub", str(opts.n_ubatch)]
        if len(plan.devices) > 1:
            args += ["--tensor-split", ",".join(f"{x:g}" for x in _ratios(plan.tensor_split))]
        if plan.cpu_moe:
            args += ["--n-cpu-moe", str(plan.cpu_moe)]
        extra, notes = self.extra_args(model, plan, opts, ckpt.kind)
        args += [*extra, "-fit", "off"]  # the plan is already fitted; keep llama.cpp from changing it
        return ckpt.comment() + "".join(f"# {n}\n" for n in notes) + shlex.join(args)

    def extra_args(self, model: ResolvedModel, plan: Plan, opts: EngineOptions,
                   source_kind: str) -> tuple[list[str], list[str]]:
        """llama-server flags of the projector, the draft and the adapters the plan holds (common/arg.cpp),
        and a line for each file the user must provide."""
        args: list[str] = []
        notes: list[str] = []
        name = (model.spec.hf_repo or model.spec.name).split("/")[-1]
        vision = projector_of(model, opts.mmproj)
        has_vision = model.projector is not None or model.spec.vision is not None
        if vision is None and has_vision and source_kind == "gguf-repo":
            args.append("--no-mmproj")  # -hf would fetch the repo's projector (--mmproj-auto is on by default)
        elif vision is not None:
            if model.projector is not None and model.projector.local:
                args += ["--mmproj", model.projector.ref]
            elif model.projector is None or source_kind != "gguf-repo":
                mm = f"mmproj-{name}-F16.gguf"
                args += ["--mmproj", mm]
                notes.append(f"{mm}: the vision projector (`convert_hf_to_gguf.py --mmproj` on the checkpoint, "
                             "or the mmproj file of a GGUF repo)")
        draft = opts.speculative
        if draft is not None and draft.mtp:
            args += ["--spec-type", "draft-mtp", "--spec-draft-n-max", str(draft.tokens)]
        elif draft is not None and draft.model is not None:
            dm = draft.model
            dckpt = gguf_checkpoint(dm, draft.quant or dm.file_quant or plan.quant)
            args += ["-hfd" if dckpt.kind == "gguf-repo" else "-md", dckpt.ref, "-ngld", "999",
                     "--spec-type", "draft-simple", "--spec-draft-n-max", str(draft.tokens)]
            if draft.kv:
                args += ["-ctkd", draft.kv, "-ctvd", draft.kv]
            if dckpt.note:
                notes.append(f"draft: {dckpt.note}")
        lora = opts.lora
        if lora is not None and lora.tensors is not None:
            args += ["--lora", lora.ref]
        elif lora is not None:
            files = [f"lora-r{lora.rank}-{i + 1}.gguf" for i in range(lora.count)]
            args += ["--lora", ",".join(files)]
            notes.append(f"{', '.join(files)}: LoRA adapters of rank {lora.rank} for {name} "
                         "(convert_lora_to_gguf.py on each PEFT adapter)")
        return args, notes


#: Tokens the decode benchmark generates (llama-bench's own default, `tg128`).
BENCH_GEN = 128


def host_bandwidth_gbs(opts: EngineOptions) -> float | None:
    """Host RAM bandwidth for layers on the CPU: the user's figure, else this machine's SMBIOS
    (`core/host_memory.py`); None when neither is known (the speed model then says what it assumed)."""
    from lander_tui.core.host_memory import host_memory_bandwidth

    hm = host_memory_bandwidth(opts.host_bw_gbs)
    return None if hm.source.startswith("default") else hm.gbs


def _ratios(split: tuple[float, ...]) -> list[float]:
    total = sum(split) or 1.0
    return [round(x / total, 3) for x in split]


def layer_devices_many(n_layers: int, ngl: int, split: np.ndarray) -> np.ndarray:
    """`layer_devices` for many splits at once (rows of `split`, shape (m, n)): the device of each unit
    0..n_layers per row, -1 for the CPU or a row without a positive share. The same float steps as
    `layer_devices` (a sequential sum, then cumulative shares), so a unit on a boundary lands alike."""
    split = np.asarray(split, dtype=np.float64)
    m, n = split.shape
    total = np.cumsum(split, axis=1)[:, -1:]
    ok = total[:, 0] > 0
    cum = np.cumsum(split / np.where(total > 0, total, 1.0), axis=1)
    start = n_layers + 1 - ngl
    il = np.arange(n_layers + 1)
    frac = (il - start) / max(1, ngl)
    dev = np.minimum(n - 1, (cum[:, None, :] <= frac[None, :, None]).sum(axis=2))
    dev = np.where(il[None, :] < start, -1, dev)
    return np.where(ok[:, None], dev, -1)
