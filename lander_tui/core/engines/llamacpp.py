"""llama.cpp (and Ollama, which runs llama-server) GPU memory, buffer by buffer.

Mirrors what llama.cpp allocates with every layer on one GPU (`-ngl 999`): the model buffer
(everything but `token_embd`, which stays in host memory; a tied output is duplicated onto the
GPU), the KV cache (cells padded to 256, iSWA layers hold window + ubatch, MLA caches only the
latent, recurrent layers a constant F32 state), the compute buffer (the larger of the logits phase
and the attention phase of the worst-case graph), and the CUDA context that ggml does not see.
Sources: shared/research/estimator-anchors.md §1 and the measured rows in tests/data/ground-truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lander_tui.core.engines.base import MIB, Breakdown, Calibration, EngineOptions, pad
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import BlockType, kv_cache_type
from lander_tui.core.llamacpp_front_ends import front_end, logits_rows
from lander_tui.core.model_spec import FULL, RECURRENT, SWA, ModelSpec
from lander_tui.core.weights import WeightSet, gguf_weights


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
class LlamaCpp:
    name: str = "llama.cpp"
    label: str = "llama.cpp"
    pad_cells: int = 256
    defaults_parallel: int = 1

    def granularity(self, opts: EngineOptions) -> int:
        return self.pad_cells

    def default_quant(self, model: Any) -> str:
        return model.file_quant or "Q4_K_M"

    def default_kv(self) -> str:
        return "f16"

    def calibration(self, opts: EngineOptions) -> LlamaCppCalibration:
        return LlamaCppCalibration().with_overrides(opts.overrides)  # type: ignore[return-value]

    def weights(self, model: Any, quant: str) -> WeightSet:
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
        kv = kv_cache_type(kv_type)
        if kv.name == "fp8":
            raise LanderError("llama.cpp has no fp8 KV cache; use q8_0 (or f16, q5_1, q4_0 ...)")
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
        rows = np.minimum(logits_rows(opts.front_end, opts.n_ubatch, opts.n_batch, n_par), n_ub)
        return Geometry(n_ctx, n_ctx_seq, streams, n_ub, n_par, opts.kv_unified, min(opts.n_ubatch, opts.n_batch),
                        swa_full=swa_full, n_outputs=rows)

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
        logits = V * geo.n_outputs * 4 + embd  # rows: the front end's n_outputs_max (core/llamacpp_front_ends.py)
        n_kv = geo.n_ctx_seq
        if fa:
            attn = n_kv * geo.n_ub * 2 + cal.fa_embd_tensors * embd  # f16 mask
            if kv.name != "F16":  # quantized (or f32) K and V are cast to f16, one layer at a time
                attn = attn + n_kv * (k_vals + v_vals) * 2
        else:
            attn = n_kv * geo.n_ub * (spec.n_heads * 4 + 4) + cal.nofa_embd_tensors * embd  # KQ f32 + f32 mask
        ff = max(spec.intermediate_size if not spec.moe or len(spec.moe.dense_layers) else 0,
                 spec.moe.n_used * spec.moe.expert_ff if spec.moe else 0)
        ffn = cal.ffn_ff_tensors * ff * geo.n_ub * 4 + 2 * embd
        host = cal.host_embd_tensors * embd + n_kv * geo.n_ub * (2 if fa else 4)
        return {"logits": logits.astype(np.float64), "attention": np.asarray(attn, dtype=np.float64),
                "ffn": ffn.astype(np.float64), "host": np.asarray(host, dtype=np.float64)}

    def memory(self, model: Any, quant: str, kv_type: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown:
        """Everything on one GPU (`-ngl 999`)."""
        spec: ModelSpec = model.spec
        cal = self.calibration(opts)
        kv, fa = self.check(spec, kv_type, opts)
        gpu_w, host_w = self.gpu_weight_bytes(spec, self.weights(model, quant))
        geo = self.geometry(ctx, opts)
        per_layer = self.kv_layer_bytes(spec, kv, geo)
        kinds = spec.kinds()
        kv_bytes = sum((per_layer[k] * kinds.count(k) for k in (FULL, SWA, RECURRENT)), np.zeros(geo.n_ctx.shape))
        ph = self.compute_phases(spec, kv, fa, geo, cal)
        compute = np.maximum(np.maximum(ph["logits"], ph["attention"]), ph["ffn"])
        overhead = np.full(geo.n_ctx.shape, cal.device_overhead_mib() * MIB)
        host = host_w + ph["host"] + spec.vocab_size * max(1, geo.n_par) * 4
        return Breakdown(
            context=geo.n_ctx, weights=float(gpu_w), kv=kv_bytes, compute=compute, overhead=overhead,
            host=np.asarray(host, dtype=np.float64),
            parts={"cuda_context": np.full(geo.n_ctx.shape, cal.cuda_context_mib * MIB),
                   "logits": ph["logits"], "token_embd_host": float(host_w)},
        )


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


@dataclass(frozen=True)
class Ollama(LlamaCpp):
    """Ollama runs llama-server with `-c num_ctx*np -np np`, f16 KV, flash attention on supported GPUs.

    Because it always passes `-c`, llama.cpp's `--fit` only moves layers: a model stays fully on the
    GPU when the buffers plus fit's default 1024 MiB target fit in free memory (estimator-anchors §2.3).
    """

    name: str = "ollama"
    label: str = "Ollama"

    def calibration(self, opts: EngineOptions) -> LlamaCppCalibration:
        base = LlamaCppCalibration(margin_mib=1024.0)
        return base.with_overrides(opts.overrides)  # type: ignore[return-value]
