"""vLLM V1 (0.10 and later) as it sizes itself at start-up: budget, profiling peak, KV blocks.

`vllm/v1/worker/gpu_worker.py :: determine_available_memory` takes `total x gpu_memory_utilization`
(of *total* memory, per GPU) and subtracts what the profiling run left behind:

    Available KV cache memory = total x util - weights - activation peak - non-torch
                                (- the CUDA-graph estimate, inside the budget from v0.21)

The activation peak is what `gpu_model_runner.py :: profile_run` allocates: a dummy forward of
`max_num_batched_tokens` tokens (its hidden states stay alive), then `_dummy_sampler_run` over
`max_num_seqs` rows of logits with top-k and top-p set (`vllm/v1/sample/sampler.py`). The sampler
dominates for large vocabularies: `max_num_seqs x vocab x bytes per logit`, where the bytes depend
on the top-k/top-p path (`vllm/v1/sample/ops/topk_topp_sampler.py`): FlashInfer's rejection
sampler needs the bf16 logits, their fp32 copy, the top-k-masked logits and the softmax;
PyTorch's path also sorts the vocabulary (fp32 values + int64 indices) and keeps masks.

Releases modelled (`VllmRelease`), from the wild logs in tests/data/ground-truth/wild:
- 0.10.x: FlashInfer sampler on by default (V1: `VLLM_USE_FLASHINFER_SAMPLER` None means on).
- 0.11.x-0.18.x: PyTorch top-k/top-p path (every H100 record of these releases needs ~38 bytes
  per logit; 0.10 records could not have fit with it).
- 0.19 and later: FlashInfer on again (today's source: "The sampler is on by default").
- 0.21 and later: CUDA graphs are profiled and reserved inside the budget
  (`VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`, "the default as of v0.21.0"); before, they were
  captured after the KV cache was allocated and had to fit in the `1 - util` headroom.
- default `gpu_memory_utilization`: 0.9; 0.92 in today's `vllm/config/cache.py` (from 0.22 here).
Defaults by GPU (`vllm/engine/arg_utils.py :: _set_default_args`): GPUs of 70 GiB or more except
A100 get `max_num_seqs` 1024 and `max_num_batched_tokens` 8192 (`vllm serve`) / 16384 (the `LLM`
class); others 256 and 2048 / 8192.

KV pages (`vllm/v1/kv_cache_interface.py`, `vllm/v1/core/kv_cache_utils.py`): a page is
`block_size x kv_heads_per_rank x (head_k + head_v) x dtype` per layer (MLA: one latent of
`kv_lora_rank + qk_rope_head_dim`, replicated on every TP rank); "GPU KV cache size" counts every
attention layer as full; "Maximum concurrency" credits sliding-window layers with
`cdiv(min(window - 1 + max_num_batched_tokens, len), block) + 1` pages per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import total_ordering

from lander_tui.core.engines.base import Calibration
from lander_tui.core.formats import kv_bytes_per_value
from lander_tui.core.model_spec import FULL, RECURRENT, SWA, ModelSpec
from lander_tui.core.weights import WeightSet, shard_bytes

GIB = 1024**3


@total_ordering
@dataclass(frozen=True)
class VllmRelease:
    """A vLLM release, as far as memory goes. `None` parts mean "today's" (the newest modelled)."""

    major: int = 99
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str | None) -> VllmRelease:
        """`0.11.0`, `v0.13.0+nv26.01`, `>=0.21.0` -> that release; None or unparsable -> today's."""
        m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
        if not m:
            return cls()
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, VllmRelease):
            return NotImplemented
        return self._key() < other._key()

    @property
    def label(self) -> str:
        return "today" if self.major == 99 else f"{self.major}.{self.minor}.{self.patch}"

    @property
    def flashinfer_sampler(self) -> bool:
        return not (VllmRelease(0, 11, 0) <= self < VllmRelease(0, 19, 0))

    @property
    def graphs_in_budget(self) -> bool:
        return self >= VllmRelease(0, 21, 0)

    @property
    def default_utilization(self) -> float:
        return 0.92 if self >= VllmRelease(0, 22, 0) else 0.9


TODAY = VllmRelease()


@dataclass(frozen=True)
class VllmProfileCalibration(Calibration):
    """Fitted constants of vLLM's start-up profile, each with where it comes from."""

    #: PyTorch top-k/top-p sampler, bytes per (row x vocab) logit at its peak. Derivation from
    #: `apply_top_k_top_p_pytorch`: bf16 logits 2 + fp32 copy 4 + sort values 4 + int64 indices 8 +
    #: masks 2 + softmax 4 = 24 live at once, plus what the allocator cannot reuse; the wild H100
    #: records (gpt-oss-20b, Qwen3-0.6B, Qwen3-32B TP2, Llama-3.3-70B TP2 at 8192 tokens) measure
    #: 38.25-38.55 once the hidden states are taken out, gpt-oss-120b at 1024 tokens 38.9. The
    #: largest is kept, so the KV memory is not overstated.
    sampler_native_bytes: float = 38.9
    #: FlashInfer sampler: bf16 logits 2 + fp32 4 + top-k-masked logits 4 + softmax 4 = 14; the
    #: Mistral-Small-3.2 H100 record (1024 x 131072 rows) fits 16.3 beside its hidden states.
    sampler_flashinfer_bytes: float = 16.3
    #: Dummy forward peak per batched token, in intermediate-size (per TP rank) 16-bit values:
    #: the fused gate_up output (2) and the activated product (1) alive together.
    act_ff_tensors: float = 3.0
    #: ... plus this many hidden-size vectors (input, residual, norm output, attention output...).
    act_hidden_tensors: float = 6.0
    #: Non-torch memory on one GPU (CUDA context growth, cuBLAS workspace): 0.13-0.14 GiB in the
    #: H100 records of llm-d's table (gpt-oss-20b, Qwen3-0.6B, Llama-3.3-70B TP1).
    non_torch_gib: float = 0.14
    #: ... with tensor parallelism (NCCL and custom all-reduce buffers): 0.54-0.55 GiB per GPU in
    #: the TP2 records (Qwen3-32B, Llama-3.3-70B).
    non_torch_tp_gib: float = 0.55
    #: CUDA-graph memory reserved inside the budget (v0.21+): "Estimated CUDA graph memory" in the
    #: 0.25/0.27 records is 0.13-1.41 GiB (0.26-0.86 without speculative drafts).
    cuda_graph_gib: float = 0.5


@dataclass(frozen=True)
class VllmSettings:
    """What a `vllm serve` start-up depends on. `None` = vLLM's own default for the GPU/release."""

    gpu_total_bytes: float
    gpu_name: str = ""
    tp: int = 1
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_dtype: str = "auto"
    block_size: int = 16
    enforce_eager: bool = False
    release: VllmRelease = TODAY
    llm_class: bool = False  # the offline `LLM(...)` class instead of `vllm serve`

    def resolved(self) -> VllmSettings:
        """Fill vLLM's defaults (`arg_utils.py :: _set_default_args`, the GPU-class table)."""
        big = self.gpu_total_bytes >= 70 * GIB and "a100" not in self.gpu_name.lower()
        seqs = 1024 if big else 256
        tokens = (16384 if big else 8192) if self.llm_class else (8192 if big else 2048)
        return replace(
            self,
            gpu_memory_utilization=self.gpu_memory_utilization or self.release.default_utilization,
            max_num_seqs=self.max_num_seqs or seqs,
            max_num_batched_tokens=self.max_num_batched_tokens or tokens,
        )


@dataclass(frozen=True)
class VllmBudget:
    """One GPU's start-up accounting, bytes, as vLLM logs it."""

    requested: float
    weights: float
    activation_peak: float
    non_torch: float
    cuda_graphs: float  # inside the budget (0 before v0.21 or with --enforce-eager)
    kv_available: float
    page_bytes: float  # one block over every attention layer on this GPU
    block_size: int
    settings: VllmSettings

    @property
    def kv_capacity_mib(self) -> float:
        return self.kv_available / 2**20

    @property
    def num_blocks(self) -> int:
        return max(0, int(self.kv_available // self.page_bytes)) if self.page_bytes else 0

    @property
    def kv_capacity_tokens(self) -> int:
        """"GPU KV cache size: N tokens" (every attention layer counted as full)."""
        return self.num_blocks * self.block_size


def weights_per_gpu(spec: ModelSpec, w: WeightSet, tp: int) -> float:
    """Weights on one TP rank: matrices are sharded (vocab-parallel embeddings and LM head too),
    1-D tensors (norms, sinks) replicated; KV projections stay whole heads (`max(1, kv // tp)`).
    MXFP4 experts use the layout vLLM repacks them into (`mxfp4_layout_bytes`)."""
    experts = [t for t in w.tensors if t.dtype == "MXFP4" and t.tensor.n_experts]
    total = shard_bytes(spec, w, tp) - sum(float(t.nbytes) / tp for t in experts)
    return total + sum(mxfp4_layout_bytes(t.tensor.n_elements, t.tensor.row, t.tensor.rows, spec, tp) / tp
                       for t in experts)


def mxfp4_layout_bytes(n: int, row: int, rows: int, spec: ModelSpec, tp: int) -> float:
    """MXFP4 experts as vLLM allocates them for its Marlin kernel (`quantization/mxfp4.py`
    `create_weights`): the expert width per TP rank padded up to a multiple of 128 and the hidden
    size to a multiple of 256, 4-bit values plus one e8m0 scale per 32. gpt-oss-20b: 13.67 GiB
    (logged 13.72 on A100 and GB10); gpt-oss-120b 65.87 (65.97 on H100), 17.14 per rank at TP 4
    (17.22). The triton path on Hopper pads the width to 64 only (13.47 logged), so this errs high."""
    ff = spec.moe.expert_ff if spec.moe else max(row, rows)
    hidden = spec.hidden_size
    per_rank = -(-ff // tp)
    padded = -(-per_rank // 128) * 128
    hidden_padded = -(-hidden // 256) * 256
    return n * (0.5 + 1 / 32) * (padded / per_rank) * (hidden_padded / hidden)


def kv_page_bytes(spec: ModelSpec, kv_cache_dtype: str, tp: int, block_size: int) -> tuple[float, dict[str, int]]:
    """(bytes of one block of one attention layer on one rank, attention layer counts by kind)."""
    dtype = spec.torch_dtype if kv_cache_dtype in ("auto", "", None) else kv_cache_dtype
    kvb = kv_bytes_per_value({"bfloat16": "bf16", "float16": "f16", "float32": "f32"}.get(dtype, dtype),
                             ("F16", "BF16", "fp8", "F32"), "vLLM")
    k_vals, v_vals = spec.kv_values_per_token()
    if not spec.mla:
        heads = max(1, spec.n_kv_heads // tp)
        k_vals, v_vals = heads * spec.head_dim, heads * spec.head_dim_v
    n_full, n_swa, _ = spec.layer_counts()
    return block_size * (k_vals + v_vals) * kvb, {FULL: n_full, SWA: n_swa}


def activation_peak(spec: ModelSpec, s: VllmSettings, cal: VllmProfileCalibration) -> float:
    """Peak torch allocation of `profile_run` above the weights, bytes per GPU."""
    tokens, rows = s.max_num_batched_tokens or 0, s.max_num_seqs or 0
    hidden = tokens * spec.hidden_size * 2
    forward = tokens * 2 * (cal.act_ff_tensors * spec.active_ff / s.tp + cal.act_hidden_tensors * spec.hidden_size)
    per_logit = cal.sampler_flashinfer_bytes if s.release.flashinfer_sampler else cal.sampler_native_bytes
    sampler = min(rows, tokens) * spec.vocab_size * per_logit  # logits are gathered whole on every rank
    return max(forward, hidden + sampler)


def budget(spec: ModelSpec, w: WeightSet, settings: VllmSettings,
           cal: VllmProfileCalibration | None = None) -> VllmBudget:
    """vLLM's "Available KV cache memory" for one GPU, with every part it subtracted."""
    cal = cal or VllmProfileCalibration()
    s = settings.resolved()
    requested = s.gpu_total_bytes * (s.gpu_memory_utilization or 0.9)
    weights = weights_per_gpu(spec, w, s.tp)
    peak = activation_peak(spec, s, cal)
    non_torch = (cal.non_torch_tp_gib if s.tp > 1 else cal.non_torch_gib) * GIB
    graphs = cal.cuda_graph_gib * GIB if s.release.graphs_in_budget and not s.enforce_eager else 0.0
    page, counts = kv_page_bytes(spec, s.kv_cache_dtype, s.tp, s.block_size)
    return VllmBudget(requested, weights, peak, non_torch, graphs,
                      requested - weights - peak - non_torch - graphs,
                      page * (counts[FULL] + counts[SWA]), s.block_size, s)


def request_pages(spec: ModelSpec, b: VllmBudget, max_model_len: int) -> int:
    """Pages (one layer's block) one request of `max_model_len` tokens needs over all layers
    (`max_memory_usage_bytes` of each spec; recurrent layers hold no attention pages)."""
    blk = b.block_size
    n_full, n_swa, _ = spec.layer_counts()
    full = -(-max_model_len // blk)
    pages = n_full * full
    if n_swa:
        win = min((spec.sliding_window or 1) - 1 + (b.settings.max_num_batched_tokens or 0), max_model_len)
        pages += n_swa * (-(-win // blk) + 1)
    return pages


def max_concurrency(spec: ModelSpec, b: VllmBudget, max_model_len: int) -> float:
    """"Maximum concurrency for N tokens per request: X" (`get_max_concurrency_for_kv_cache_config`)."""
    n_full, n_swa, _ = spec.layer_counts()
    layers = n_full + n_swa
    if not layers:
        return 0.0
    total_pages = b.num_blocks * layers
    return total_pages / max(1, request_pages(spec, b, max_model_len))


def fits(spec: ModelSpec, b: VllmBudget, max_model_len: int) -> bool:
    """False where vLLM refuses to start: "To serve at least one request with the models's max
    seq len (N), (X GiB KV cache is needed, which is larger than the available KV cache memory"
    (`kv_cache_utils.py :: _check_enough_kv_cache_memory`)."""
    n_full, n_swa, _ = spec.layer_counts()
    layers = n_full + n_swa
    need = request_pages(spec, b, max_model_len) * b.page_bytes / max(1, layers)
    return b.kv_available > 0 and need <= b.kv_available


def max_model_len(spec: ModelSpec, b: VllmBudget) -> int:
    """The longest `--max-model-len` vLLM accepts (what `--max-model-len -1` finds by bisection)."""
    lo, hi = 0, spec.max_context
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(spec, b, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


__all__ = ["RECURRENT", "TODAY", "VllmBudget", "VllmProfileCalibration", "VllmRelease", "VllmSettings",
           "activation_peak", "budget", "fits", "kv_page_bytes", "max_concurrency", "max_model_len",
           "weights_per_gpu"]
