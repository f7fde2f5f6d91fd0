"""SGLang's KV token pool, as `python -m sglang.launch_server` sizes it at start-up.

`python/sglang/srt/model_executor/model_runner.py :: profile_max_num_token` measures the free memory
before the weights load (`total_gpu_memory`) and after, and keeps

    rest = free_after_weights - free_before_weights x (1 - mem_fraction_static)
         = free_before x mem_fraction_static - weights
    max_total_num_tokens = rest // cell_size

with `cell_size = kv_heads_per_rank x head_dim x layers x 2 x dtype bytes` (K and V), or for MLA
models `(kv_lora_rank + qk_rope_head_dim) x layers x dtype` (the latent, on every rank). What the
fraction leaves (`1 - mem_fraction_static`) is for the chunked-prefill activations and CUDA graphs.

Its default (`python/sglang/srt/server_args.py :: _handle_gpu_memory_settings`, PR #10975):
`round((gpu_mem - reserved) / gpu_mem, 3)` with `reserved` (MiB) = 512 + 1.5 x
max(chunked_prefill_size, 2048) + 2 x cuda_graph_max_bs + tp x pp / 8 x 1024, at least 10 GiB on
GPUs over 60 GiB, + 2 GiB with a speculative draft; `chunked_prefill_size` and
`cuda_graph_max_bs` come from GPU-memory buckets (`SGLANG_BUCKETS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lander_tui.core.formats import kv_bytes_per_value
from lander_tui.core.model_spec import ModelSpec

GIB = 1024**3

#: (GPU memory below, MiB) -> (chunked_prefill_size, cuda_graph_max_bs for tp < 4, for tp >= 4),
#: the buckets of `_handle_gpu_memory_settings` (L40S 44.5 GiB: 4096 and 32, as its log prints).
SGLANG_BUCKETS: tuple[tuple[float, int, int, int], ...] = (
    (20 * 1024, 2048, 8, 16),
    (35 * 1024, 2048, 24, 80),
    (60 * 1024, 4096, 32, 160),
    (90 * 1024, 8192, 256, 512),
    (160 * 1024, 8192, 256, 512),
    (float("inf"), 16384, 512, 512),
)


def defaults(gpu_mib: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, cuda_graph_max_bs) SGLang picks for this GPU and TP size."""
    for below, chunk, bs_small, bs_large in SGLANG_BUCKETS:
        if gpu_mib < below:
            return chunk, bs_small if tp < 4 else bs_large
    return 8192, 256


def default_mem_fraction_static(gpu_mib: float, tp: int = 1, chunked_prefill_size: int | None = None,
                                cuda_graph_max_bs: int | None = None, speculative: bool = False) -> float:
    """`mem_fraction_static` when the user does not set it."""
    chunk, bs = defaults(gpu_mib, tp)
    chunk = chunked_prefill_size or chunk
    bs = cuda_graph_max_bs or bs
    reserved = 512 + max(chunk, 2048) * 1.5 + bs * 2 + tp / 8 * 1024
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if speculative:
        reserved += 2 * 1024
    return round((gpu_mib - reserved) / gpu_mib, 3)


@dataclass(frozen=True)
class SglangPool:
    """One rank's token pool, bytes and tokens as SGLang logs them."""

    free_before: float
    mem_fraction_static: float
    weights: float
    cell_bytes: float
    rest: float

    @property
    def max_total_num_tokens(self) -> int:
        return max(0, int(self.rest // self.cell_bytes)) if self.cell_bytes else 0

    @property
    def k_size_gib(self) -> float:
        """"KV Cache is allocated. #tokens: N, K size: X GB" (the K half; MLA logs one size)."""
        return self.max_total_num_tokens * self.cell_bytes / 2 / GIB


@dataclass(frozen=True)
class SglangCalibration:
    #: CUDA context, NCCL communicators and the allocator's first blocks before the weights load:
    #: total - free before loading = 0.50 GiB on the L40S record (44.52 total, 40.99 + 3.03 free).
    context_gib: float = 0.5
    #: ... per rank with tensor parallelism (NCCL communicators, custom all-reduce buffers): the one
    #: TP record (Qwen3-235B-A22B-FP8, 4x H100, mem_fraction_static 0.93) implies 2.3 GiB.
    context_tp_gib: float = 2.3


def cell_bytes(spec: ModelSpec, kv_cache_dtype: str, tp: int) -> float:
    """Bytes of one token in the pool on one rank, over every layer."""
    dtype = spec.torch_dtype if kv_cache_dtype in ("auto", "", None) else kv_cache_dtype
    kvb = kv_bytes_per_value({"bfloat16": "bf16", "float16": "f16", "float32": "f32"}.get(dtype, dtype),
                             ("F16", "BF16", "fp8", "F32"), "SGLang")
    if spec.mla:
        return (spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim) * spec.n_layers * kvb
    heads = max(1, spec.n_kv_heads // tp)
    return heads * (spec.head_dim + spec.head_dim_v) * spec.n_layers * kvb


def token_pool(spec: ModelSpec, weights_per_rank: float, gpu_total_bytes: float, tp: int = 1,
               mem_fraction_static: float | None = None, kv_cache_dtype: str = "auto",
               cal: SglangCalibration | None = None) -> SglangPool:
    """`max_total_num_tokens` for one rank (SGLang takes the minimum over ranks)."""
    cal = cal or SglangCalibration()
    mfs = mem_fraction_static or default_mem_fraction_static(gpu_total_bytes / 2**20, tp)
    free_before = gpu_total_bytes - (cal.context_tp_gib if tp > 1 else cal.context_gib) * GIB
    rest = free_before * mfs - weights_per_rank
    return SglangPool(free_before, mfs, weights_per_rank, cell_bytes(spec, kv_cache_dtype, tp), rest)
