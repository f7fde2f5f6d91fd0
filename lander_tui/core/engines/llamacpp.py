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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lander_tui.core.engines.base import Budget, Calibration, Engine, EngineOptions, Footprint, FootprintFn, pad
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import BlockType, kv_cache_type
from lander_tui.core.memory import MIB, Breakdown, MemoryParts
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import FULL, RECURRENT, SWA, ModelSpec
from lander_tui.core.plan import DeviceShare, Plan
from lander_tui.core.weights import WeightSet, gguf_format, gguf_weights

#: llama.cpp pipeline parallelism keeps GGML_SCHED_MAX_COPIES = 4 copies of the inputs per device.
PIPELINE_COPIES = 4
OFFLOAD_NOTE = ("layers and experts on the CPU run several times slower than on the GPU "
                "(each token streams their weights from system RAM)")


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


def layer_devices(n_layers: int, ngl: int, split: tuple[float, ...]) -> list[int | None]:
    """Device index of each unit 0..n_layers (the last is the output layer); None = CPU."""
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
    return out


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
    pad_cells = 256
    defaults_parallel = 1

    def granularity(self, opts: EngineOptions) -> int:
        return self.pad_cells

    def default_quants(self, model: ResolvedModel) -> tuple[str, ...]:
        return (model.file_quant,) if model.file_quant else self.quants

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
        return Geometry(n_ctx, n_ctx_seq, streams, n_ub, n_par, opts.kv_unified, min(opts.n_ubatch, opts.n_batch))

    def kv_layer_bytes(self, spec: ModelSpec, kv: BlockType, geo: Geometry) -> dict[str, np.ndarray]:
        """KV (or recurrent state) bytes of ONE layer of each kind: "full", "swa", "recurrent"."""
        k_vals, v_vals = spec.kv_values_per_token()
        per_cell = _kv_row_bytes(kv, k_vals) + _kv_row_bytes(kv, v_vals)
        out = {FULL: (per_cell * geo.n_ctx_seq * geo.streams).astype(np.float64)}
        if spec.llamacpp_uses_swa:
            swa_seqs = geo.n_par if geo.unified else 1
            cells = np.minimum(geo.n_ctx_seq, pad((spec.sliding_window or 0) * swa_seqs + geo.n_ub, self.pad_cells))
            out[SWA] = (per_cell * cells * geo.streams).astype(np.float64)
        else:
            out[SWA] = out[FULL]
        rec = (spec.recurrent.conv + spec.recurrent.ssm) * 4 * geo.n_par if spec.recurrent else 0
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
        logits = V * np.minimum(geo.n_ub, geo.n_batch) * 4 + embd
        n_kv = geo.n_ctx_seq
        if fa:
            attn = n_kv * geo.n_ub * 2 + cal.fa_embd_tensors * embd  # f16 mask
            if kv.name != "F16":  # quantized (or f32) K and V are cast to f16, one layer at a time
                attn = attn + n_kv * (k_vals + v_vals) * 2
        else:
            attn = n_kv * geo.n_ub * (spec.n_heads * 4 + 4) + cal.nofa_embd_tensors * embd  # KQ f32 + f32 mask
        ff = max(spec.intermediate_size if not spec.moe or len(spec.moe.dense_layers) else 0,
                 spec.moe.n_used * spec.moe.expert_ff if spec.moe else 0)
        ffn = 3 * ff * geo.n_ub * 4 + 2 * embd
        host = cal.host_embd_tensors * embd + n_kv * geo.n_ub * (2 if fa else 4)
        return {"logits": logits.astype(np.float64), "attention": np.asarray(attn, dtype=np.float64),
                "ffn": ffn.astype(np.float64), "host": np.asarray(host, dtype=np.float64)}

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
                      split, ngl, cpu_moe)

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
        devices = []
        for i in range(len(lay.weights)):
            kvs = sum((per_kind[kind] * count for kind, count in lay.kinds[i].items()), zero)
            if lay.out_dev == i:
                compute = np.maximum(ph["logits"], layer_phase)
            elif lay.kinds[i]:
                compute = layer_phase
            else:
                compute = zero
            if pipelined and i in lay.used:
                compute = compute + (PIPELINE_COPIES - 1) * spec.hidden_size * geo.n_ub * 4
            used = i in lay.used
            overhead = np.full(m, cal.device_overhead_mib() * MIB if used else 0.0)
            detail = {"cuda_context": np.full(m, cal.cuda_context_mib * MIB if used else 0.0),
                      "logits": ph["logits"] if lay.out_dev == i else zero}
            devices.append(MemoryParts(np.full(m, lay.weights[i]), kvs, compute, overhead, 0.0, detail))
        cpu_kv = sum((per_kind[k] * c for k, c in lay.cpu_kinds.items()), zero)
        host = lay.embd + lay.cpu_weights + cpu_kv + ph["host"] + spec.vocab_size * max(1, geo.n_par) * 4
        return Footprint(geo.n_ctx, tuple(devices), np.asarray(host, dtype=np.float64))

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
        if model.spec.moe and at(cpu_moe=L).fits:
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

    # --- running it ----------------------------------------------------------------------------
    def launch_command(self, model_ref: str, plan: Plan, opts: EngineOptions) -> str:
        args = ["llama-server", "-m", gguf_file_name(model_ref, plan.quant), "-c", str(plan.context),
                "-ngl", str(plan.gpu_layers if plan.gpu_layers <= plan.n_layers else 999),
                "-ctk", plan.kv_cache, "-ctv", plan.kv_cache, "-fa", "off" if opts.flash_attn is False else "on"]
        # always explicit: llama-server's automatic -np is 4, which grows sliding-window and recurrent caches
        args += ["-np", str(max(1, opts.n_parallel or 1))]
        if len(plan.devices) > 1:
            args += ["--tensor-split", ",".join(f"{x:g}" for x in _ratios(plan.tensor_split))]
        if plan.cpu_moe:
            args += ["--n-cpu-moe", str(plan.cpu_moe)]
        args += ["-fit", "off"]  # the plan is already fitted; keep llama.cpp from changing it
        return shlex.join(args)


def gguf_file_name(model_ref: str, quant: str) -> str:
    base = model_ref.split("/")[-1]
    return base if base.endswith(".gguf") else f"{base}-{quant}.gguf"


def _ratios(split: tuple[float, ...]) -> list[float]:
    total = sum(split) or 1.0
    return [round(x / total, 3) for x in split]
