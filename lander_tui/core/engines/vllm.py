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

Releases modelled (`VllmRelease`), from the wild logs in tests/data/ground-truth/wild; the default
is today's (0.22 and later: the 0.25-0.27 logs and the source at 0.30), `--set release_minor=11`
models 0.11.x:
- 0.10.x: FlashInfer sampler on by default (V1: `VLLM_USE_FLASHINFER_SAMPLER` None means on).
- 0.11.x-0.18.x: PyTorch top-k/top-p path (every H100 record of these releases needs ~38 bytes
  per logit; 0.10 records could not have fit with it).
- 0.19 and later: FlashInfer on again (today's source: "The sampler is on by default").
- 0.21 and later: CUDA graphs are profiled and reserved inside the budget
  (`VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`, "the default as of v0.21.0"); before, they were
  captured after the KV cache was allocated and had to fit in the `1 - util` headroom.
- default `gpu_memory_utilization`: 0.9; 0.92 in `vllm/config/cache.py` from 0.22 (0.25, 0.27, 0.30).
Defaults by GPU (`vllm/engine/arg_utils.py :: get_batch_defaults`): GPUs of 70 GiB or more except
A100 get `max_num_seqs` 1024 and `max_num_batched_tokens` 8192 (`vllm serve`) / 16384 (the `LLM`
class); others 256 and 2048 / 8192.

KV pages (`vllm/v1/kv_cache_interface.py`, `vllm/v1/core/kv_cache_utils.py`): a page is
`block_size x kv_heads_per_rank x (head_k + head_v) x dtype` per layer (MLA: one latent of
`kv_lora_rank + qk_rope_head_dim`, replicated on every TP rank); "GPU KV cache size" counts every
attention layer as full; a request of `max_model_len` tokens needs `cdiv(len, block)` pages per full
layer and `cdiv(min(window - 1 + max_num_batched_tokens, len), block) + 1` per sliding-window layer
(`max_memory_usage_bytes`), and vLLM refuses to start when one such request does not fit
(`_check_enough_kv_cache_memory`). Tensor parallel: weights and KV heads split per rank
(`max(1, kv_heads // tp)`), every rank has its own `total x utilization` and overheads.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import total_ordering
from typing import Any

import numpy as np

from lander_tui.core.checkpoint import hf_checkpoint
from lander_tui.core.engines.base import (
    REFERENCE_GPU,
    Budget,
    Calibration,
    Engine,
    EngineOptions,
    Footprint,
    FootprintFn,
    Running,
    first_device,
    pad,
    tensor_parallel_sizes,
)
from lander_tui.core.engines.running import EngineConfig, served_kv, served_model, served_quant
from lander_tui.core.errors import LanderError
from lander_tui.core.extras import Speculative, lora_slot_bytes, projector_of
from lander_tui.core.formats import kv_bytes_per_value
from lander_tui.core.memory import MIB, Breakdown, MemoryParts, extras_detail
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.plan import DeviceShare, Plan
from lander_tui.core.quant_config import native_format
from lander_tui.core.solver import max_fitting
from lander_tui.core.speed import SERVER
from lander_tui.core.weights import (
    WeightSet,
    checkpoint_quants,
    hf_format,
    hf_weights,
    shard_bytes,
    vision_tower_bytes,
)

GIB = 1024**3
_QUANT_FLAG = {"AWQ": "awq", "GPTQ": "gptq", "FP8": "fp8", "NF4": "bitsandbytes"}
_KV_TYPES = ("F16", "BF16", "fp8", "F32")


@total_ordering
@dataclass(frozen=True)
class VllmRelease:
    """A vLLM release, as far as memory goes. Major 99 means "today's" (the newest modelled)."""

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
        return "today (0.22+)" if self.major == 99 else f"{self.major}.{self.minor}"

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
class VllmCalibration(Calibration):
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
    #: The vLLM release to model, as its minor version (`--set release_minor=11` for 0.11.x);
    #: 0 = today's.
    release_minor: float = 0.0
    #: Vision encoder forward during profiling, per patch, in intermediate-size 16-bit values alive at its
    #: MLP peak (fc1's output and its activation; a gated MLP adds one). From the module structure
    #: (SiglipMLP, Qwen2_5_VisionMLP), not measured.
    encoder_ff_tensors: float = 2.0
    #: ... plus this many hidden-size vectors (residual, normed input, attention output, the next input).
    encoder_hidden_tensors: float = 4.0

    @property
    def release(self) -> VllmRelease:
        return VllmRelease(0, int(self.release_minor)) if self.release_minor else TODAY


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
        """Fill vLLM's defaults (`arg_utils.py :: get_batch_defaults`, the GPU-class table)."""
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
class Startup:
    """One GPU's start-up accounting, bytes, as vLLM logs it."""

    requested: float
    weights: float
    activation_peak: float
    non_torch: float
    cuda_graphs: float  # inside the budget (0 before v0.21 or with --enforce-eager)
    kv_available: float
    layer_page_bytes: float  # one block of one attention layer on this GPU
    attention_layers: int
    state_bytes: float  # recurrent (Mamba/linear-attention) state of one request, every layer
    settings: VllmSettings

    @property
    def block_size(self) -> int:
        return self.settings.block_size

    @property
    def page_bytes(self) -> float:
        """One block over every attention layer on this GPU."""
        return self.layer_page_bytes * self.attention_layers

    @property
    def kv_capacity_mib(self) -> float:
        """"Available KV cache memory" in MiB (negative where vLLM stops)."""
        return self.kv_available / MIB

    @property
    def num_blocks(self) -> int:
        return max(0, int(self.kv_available // self.page_bytes)) if self.page_bytes else 0

    @property
    def kv_capacity_tokens(self) -> int:
        """"GPU KV cache size: N tokens" (every attention layer counted as full)."""
        return self.num_blocks * self.block_size


def weights_per_gpu(spec: ModelSpec, w: WeightSet, tp: int) -> float:
    """Weights on one TP rank (`shard_bytes`), with MXFP4 experts in the layout vLLM repacks them
    into (`mxfp4_layout_bytes`)."""
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


def kv_dtype_bytes(spec: ModelSpec, kv_cache_dtype: str) -> float:
    """Bytes per cached value: `auto` is the model's dtype."""
    dtype = spec.torch_dtype if kv_cache_dtype in ("auto", "", None) else kv_cache_dtype
    return kv_bytes_per_value({"bfloat16": "bf16", "float16": "f16", "float32": "f32"}.get(dtype, dtype),
                              _KV_TYPES, "vLLM")


def layer_page_bytes(spec: ModelSpec, kv_cache_dtype: str, tp: int, block_size: int) -> float:
    """Bytes of one block of one attention layer on one rank."""
    k_vals, v_vals = spec.kv_values_per_token()
    if not spec.mla:
        heads = max(1, spec.n_kv_heads // tp)
        k_vals, v_vals = heads * spec.head_dim, heads * spec.head_dim_v
    return block_size * (k_vals + v_vals) * kv_dtype_bytes(spec, kv_cache_dtype)


def activation_peak(spec: ModelSpec, s: VllmSettings, cal: VllmCalibration) -> float:
    """Peak torch allocation of `profile_run` above the weights, bytes per GPU."""
    tokens, rows = s.max_num_batched_tokens or 0, s.max_num_seqs or 0
    hidden = tokens * spec.hidden_size * 2
    forward = tokens * 2 * (cal.act_ff_tensors * spec.active_ff / s.tp + cal.act_hidden_tensors * spec.hidden_size)
    per_logit = cal.sampler_flashinfer_bytes if s.release.flashinfer_sampler else cal.sampler_native_bytes
    sampler = min(rows, tokens) * spec.vocab_size * per_logit  # logits are gathered whole on every rank
    return max(forward, hidden + sampler)


def startup(spec: ModelSpec, w: WeightSet, settings: VllmSettings, cal: VllmCalibration | None = None) -> Startup:
    """vLLM's "Available KV cache memory" for one GPU, with every part it subtracted."""
    cal = cal or VllmCalibration()
    s = settings.resolved()
    requested = s.gpu_total_bytes * (s.gpu_memory_utilization or 0.9)
    weights = weights_per_gpu(spec, w, s.tp)
    peak = activation_peak(spec, s, cal)
    non_torch = (cal.non_torch_tp_gib if s.tp > 1 else cal.non_torch_gib) * GIB
    graphs = cal.cuda_graph_gib * GIB if s.release.graphs_in_budget and not s.enforce_eager else 0.0
    n_full, n_swa, n_rec = spec.layer_counts()
    kvb = kv_dtype_bytes(spec, s.kv_cache_dtype)
    # a recurrent layer's state, in 'align' mode (prefix caching on) two pages of it per request
    state = n_rec * 2 * (spec.recurrent.conv + spec.recurrent.ssm) * kvb if spec.recurrent else 0.0
    return Startup(requested, weights, peak, non_torch, graphs, requested - weights - peak - non_torch - graphs,
                   layer_page_bytes(spec, s.kv_cache_dtype, s.tp, s.block_size), n_full + n_swa, state, s)


def request_pages(spec: ModelSpec, st: Startup, max_model_len: Any) -> Any:
    """Pages (one layer's block) one request of `max_model_len` tokens needs over all attention
    layers (`max_memory_usage_bytes` of each spec), vectorised over lengths."""
    blk = st.block_size
    length = np.asarray(max_model_len, dtype=np.int64)
    n_full, n_swa, _ = spec.layer_counts()
    pages = n_full * -(-length // blk)
    if n_swa:
        win = np.minimum((spec.sliding_window or 1) - 1 + (st.settings.max_num_batched_tokens or 0), length)
        pages = pages + n_swa * (-(-win // blk) + 1)
    return pages


def request_bytes(spec: ModelSpec, st: Startup, max_model_len: Any) -> Any:
    """KV memory one request of `max_model_len` tokens needs on one GPU."""
    return request_pages(spec, st, max_model_len) * st.layer_page_bytes + st.state_bytes


def max_concurrency(spec: ModelSpec, st: Startup, max_model_len: int) -> float:
    """"Maximum concurrency for N tokens per request: X" (`get_max_concurrency_for_kv_cache_config`)."""
    if not st.attention_layers:
        return 0.0
    return st.num_blocks * st.attention_layers / max(1, int(request_pages(spec, st, max_model_len)))


def fits(spec: ModelSpec, st: Startup, max_model_len: int) -> bool:
    """False where vLLM refuses to start: "To serve at least one request with the models's max
    seq len (N), (X GiB KV cache is needed, which is larger than the available KV cache memory"
    (`kv_cache_utils.py :: _check_enough_kv_cache_memory`)."""
    return st.kv_available > 0 and float(request_bytes(spec, st, max_model_len)) <= st.kv_available


def max_model_len(spec: ModelSpec, st: Startup) -> int:
    """The longest `--max-model-len` vLLM accepts (what `--max-model-len -1` finds by bisection)."""
    lo, hi = 0, spec.max_context
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(spec, st, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class VllmExtras:
    """What loads beside the model on one rank, bytes: the projector (vision tower + the profiling peak it
    adds), the draft's weights and its KV pages per request, LoRA slots."""

    projector: float = 0.0
    draft_weights: float = 0.0
    draft_spec: ModelSpec | None = None  # the layers whose pages the draft adds to every request
    draft_page_bytes: float = 0.0  # one block of one draft layer on this rank
    draft_layers: int = 0
    lora: float = 0.0

    def draft_kv(self, st: Startup, max_model_len: Any) -> Any:
        if self.draft_spec is None or not self.draft_layers:
            return np.zeros(np.shape(max_model_len))
        blk = st.block_size
        pages = -(-np.asarray(max_model_len, dtype=np.int64) // blk) * self.draft_layers
        return pages * self.draft_page_bytes


#: vLLM's `--max-lora-rank` choices (vllm/config/lora.py `LoRAConfig`: `MaxLoRARanks`).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank(rank: int) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that holds `rank`."""
    for r in LORA_RANKS:
        if r >= rank:
            return r
    raise LanderError(f"vLLM's --max-lora-rank is at most {LORA_RANKS[-1]}, not {rank}")


def encoder_items(vision_tokens: int, s: VllmSettings) -> int:
    """Images the profiling run encodes at once (`MultiModalBudget.get_max_items`): the encoder budget
    over one image's tokens, at most one per sequence (the per-prompt limit, 999 by default, is above)."""
    budget = max(s.max_num_batched_tokens or 0, vision_tokens)
    return max(1, min(budget // max(1, vision_tokens), s.max_num_seqs or 1))


def fitting_utilization(free_mib: float, total_mib: float) -> float:
    """The largest --gpu-memory-utilization (3 decimals) whose budget is free now."""
    return max(0.05, math.floor(free_mib / total_mib * 1000) / 1000)


class Vllm(Engine):
    name = "vllm"
    label = "vLLM"
    order = 30
    command_name = "vllm serve"
    # footprint(): the KV cache must hold this many requests at the full context at once
    parallel_help = "vLLM requests at once, each up to the full context (max ctx is per request)"
    quants = ("BF16", "FP8", "AWQ")
    kv_types = ("auto", "fp8")
    kv_cycle = ("", "auto", "fp8")
    splits_across_gpus = True
    builtin = True
    options_read = frozenset({"n_parallel", "gpu_memory_utilization", "max_num_batched_tokens", "max_num_seqs",
                              "block_size", "cuda_graphs", "mmproj", "speculative", "lora"})
    runtime = SERVER

    def granularity(self, opts: EngineOptions) -> int:
        return opts.block_size

    def calibration(self, opts: EngineOptions) -> VllmCalibration:
        return VllmCalibration().with_overrides(opts.overrides)  # type: ignore[return-value]

    def default_quants(self, model: ResolvedModel) -> tuple[str, ...]:
        return checkpoint_quants(model.spec, self.quants)

    def check_quant(self, quant: str) -> None:
        hf_format(quant)

    def check_kv(self, kv: str) -> None:
        kv_bytes_per_value(kv, _KV_TYPES, "vLLM")

    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        return hf_weights(model.spec, quant)

    # --- what vLLM decides at start-up ---------------------------------------------------------
    def utilization(self, opts: EngineOptions) -> float:
        return opts.gpu_memory_utilization or self.calibration(opts).release.default_utilization

    def settings(self, devices: Sequence[Device], kv: str, opts: EngineOptions,
                 util: float | None = None) -> VllmSettings:
        """The start-up settings on these GPUs (all alike): the user's flags, else vLLM's defaults
        for the GPU's class. Without a known total, the free memory stands in for the whole card (at
        the same utilization, as the budget and the command say)."""
        d = devices[0]
        total = (d.total_mib or d.free_mib) * MIB
        return VllmSettings(total, d.name, len(devices), util, opts.max_num_seqs,
                            opts.max_num_batched_tokens, kv, opts.block_size, opts.enforce_eager,
                            self.calibration(opts).release).resolved()

    def prefill_chunk(self, devices: Sequence[Device], opts: EngineOptions) -> int:
        return int(self.settings(devices, "auto", opts, self.utilization(opts)).max_num_batched_tokens or 8192)

    def budget(self, devices: Sequence[Device], opts: EngineOptions) -> Budget:
        """`total x utilization` on each GPU. vLLM refuses to start if that much is not free, so when
        less is free the rows are planned at the utilization that does fit, and a note says which."""
        util = self.utilization(opts)
        s = self.settings(devices, "auto", opts, util)
        batch = {"max_num_seqs": float(s.max_num_seqs or 0),
                 "max_num_batched_tokens": float(s.max_num_batched_tokens or 0)}
        if not all(d.total_mib for d in devices):
            # a number typed as free memory names no card: plan as if it were the whole (empty) card, so
            # the command's --gpu-memory-utilization and the budget are the same number
            note = (f"vLLM takes a fraction of each GPU's total memory and no total was given: planned as if "
                    f"{', '.join(f'{d.free_mib:,.0f}' for d in devices)} MiB were the whole card, at "
                    f"--gpu-memory-utilization {util:g} (--total-vram, --gpu or --what-if name the real card)")
            return Budget(tuple(d.free_mib * util * MIB for d in devices), (note,),
                          {"gpu_memory_utilization": util, **batch})
        need = [(d.total_mib or 0.0) * util for d in devices]
        if all(n <= d.free_mib for n, d in zip(need, devices, strict=True)):
            return Budget(tuple(n * MIB for n in need), settings={"gpu_memory_utilization": util, **batch})
        fit = min(fitting_utilization(d.free_mib, d.total_mib or d.free_mib) for d in devices)
        free = sum(d.free_mib for d in devices)
        note = (f"vLLM needs {sum(need):,.0f} MiB free at --gpu-memory-utilization {util:g}; only "
                f"{free:,.0f} MiB is: planned at --gpu-memory-utilization {fit:.3f}")
        return Budget(tuple((d.total_mib or 0.0) * fit * MIB for d in devices), (note,),
                      {"gpu_memory_utilization": fit, **batch})

    def startup(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                opts: EngineOptions) -> Startup:
        """What vLLM logs at start-up on each of these GPUs (one tensor-parallel rank each)."""
        spec = model.spec
        if spec.n_heads % len(devices):
            raise LanderError(f"--tensor-parallel-size {len(devices)} must divide the {spec.n_heads} attention heads")
        self.check_kv(kv)
        util = self.budget(devices, opts).settings.get("gpu_memory_utilization")
        return startup(spec, self.weights(model, quant), self.settings(devices, kv, opts, util),
                       self.calibration(opts))

    def footprint(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                  opts: EngineOptions) -> FootprintFn:
        """Per rank: weights, the KV of `--parallel` requests of each context, the profiling peak,
        non-torch memory and the CUDA graphs (when inside the budget). Within the budget exactly
        when vLLM accepts that `--max-model-len`."""
        spec, tp = model.spec, len(devices)
        st = self.startup(model, quant, kv, devices, opts)
        ex = self.extras(model, quant, kv, st, opts)
        n_req = opts.n_parallel or 1
        fixed = {"non_torch": st.non_torch, "cuda_graphs": st.cuda_graphs}

        def at(ctx: np.ndarray) -> Footprint:
            ctx = np.asarray(ctx, dtype=np.int64)
            full = np.full(ctx.shape, 1.0)
            draft_kv = ex.draft_kv(st, ctx) * n_req
            draft = ex.draft_weights + draft_kv
            one = MemoryParts(st.weights * full, (request_bytes(spec, st, ctx) * n_req).astype(np.float64),
                              st.activation_peak * full, (st.non_torch + st.cuda_graphs) * full, 0.0,
                              {**{k: v * full for k, v in fixed.items()},
                               **extras_detail(ex.projector * full, draft, ex.lora * full), "draft_kv": draft_kv},
                              (ex.projector + ex.lora) * full + draft)
            return Footprint(pad(ctx, st.block_size), (one,) * tp, np.zeros(ctx.shape))

        return at

    def set_sizes(self, model: ResolvedModel, n_gpus: int) -> tuple[int, ...]:
        return tensor_parallel_sizes(model.spec.n_heads, n_gpus)

    def fit_sets(self, model: ResolvedModel, quant: str, kv: str, ctx: int, sets: Sequence[Sequence[Device]],
                 opts: EngineOptions) -> tuple[np.ndarray, np.ndarray]:
        """Every rank of a set holds the same, which depends on the TP size, the card (the first GPU's,
        as vLLM's settings take it) and the utilization the set starts at: one footprint per such key,
        one `budget` per set."""
        budgets = [self.budget(devices, opts) for devices in sets]
        need = np.empty((len(sets), len(sets[0]) if sets else 0))
        ranks: dict[tuple[object, ...], float] = {}
        for i, (devices, b) in enumerate(zip(sets, budgets, strict=True)):
            key = (len(devices), devices[0].name, devices[0].total_mib, b.settings.get("gpu_memory_utilization"))
            if key not in ranks:
                fp = self.footprint(model, quant, kv, devices, opts)(np.array([ctx]))
                ranks[key] = float(np.asarray(fp.devices[0].total).flat[0]) / MIB
            need[i] = ranks[key]
        return need, np.array([b.per_device for b in budgets], dtype=np.float64) / MIB

    def extras(self, model: ResolvedModel, quant: str, kv: str, st: Startup, opts: EngineOptions) -> VllmExtras:
        """The projector, the draft and the LoRA slots on one rank (this module's docstring)."""
        spec, s, cal = model.spec, st.settings, self.calibration(opts)
        tp = s.tp
        projector = 0.0
        vision = projector_of(model, opts.mmproj)
        if vision is not None:
            tokens = vision.tokens_per_image
            items = encoder_items(tokens, s)
            patches = items * (vision.image_size // vision.patch_size) ** 2
            ff = cal.encoder_ff_tensors + (1 if vision.gated_ffn else 0)
            encoder = patches * (ff * vision.intermediate_size / tp + cal.encoder_hidden_tensors
                                 * vision.hidden_size) * 2
            embeddings = items * tokens * spec.hidden_size * 2
            peak = max(encoder, embeddings + st.activation_peak)
            projector = vision_tower_bytes(spec) / tp + peak - st.activation_peak
        lora = 0.0
        if opts.lora is not None:
            lora = lora_slot_bytes(spec, lora_rank(opts.lora.rank), opts.lora.count, tp)
        spec_dec = opts.speculative
        if spec_dec is None:
            return VllmExtras(projector=projector, lora=lora)
        dspec, dweights = self.draft_model(model, quant, spec_dec, tp)
        n_full, n_swa, _ = dspec.layer_counts()
        layers = spec.mtp_layers if spec_dec.mtp else n_full + n_swa
        return VllmExtras(projector, dweights, dspec, layer_page_bytes(dspec, kv, tp, s.block_size), layers, lora)

    def draft_model(self, model: ResolvedModel, quant: str, spec_dec: Speculative, tp: int) -> tuple[ModelSpec, float]:
        """The draft's shape and its weights on one rank: a separate model (in its own checkpoint format,
        else the row's), or the checkpoint's MTP layers (each one decoder layer of the model)."""
        spec = model.spec
        if spec_dec.mtp:
            if not spec.mtp_layers:
                raise LanderError(f"{spec.name} has no multi-token-prediction layers (num_nextn_predict_layers); "
                                  "name a draft model with --draft MODEL")
            per_layer = self.weights(model, quant).layer_bytes()
            last = per_layer.get(spec.n_layers - 1, 0)
            return spec, float(last) * spec.mtp_layers / tp
        assert spec_dec.model is not None
        dm = spec_dec.model
        dquant = spec_dec.quant or native_format(dm.spec) or quant
        return dm.spec, weights_per_gpu(dm.spec, hf_weights(dm.spec, dquant), tp)

    def memory(self, model: ResolvedModel, quant: str, kv: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown:
        """One whole 80 GiB (H100-class) GPU, bytes."""
        return first_device(self.footprint(model, quant, kv, [REFERENCE_GPU], opts)(np.asarray(ctx)))

    def capacity(self, model: ResolvedModel, quant: str, kv: str, ctx: int, footprint_mib: Sequence[MemoryParts],
                 budget: Budget, opts: EngineOptions) -> dict[str, float]:
        """vLLM's start-up lines on each GPU: "Available KV cache memory" (MiB), "GPU KV cache size"
        (tokens) and "Maximum concurrency" for `ctx`-token requests."""
        part = footprint_mib[0]
        fixed_extras = part.extras - float(part.detail.get("draft_kv", 0.0))  # the draft's pages share the pool
        available = (budget.per_device[0] / MIB - part.weights - part.compute - part.overhead - fixed_extras) * MIB
        tp = len(footprint_mib)
        spec = model.spec
        s = VllmSettings(budget.per_device[0], tp=tp, gpu_memory_utilization=1.0,
                         max_num_seqs=int(budget.settings.get("max_num_seqs", 0)) or None,
                         max_num_batched_tokens=int(budget.settings.get("max_num_batched_tokens", 0)) or None,
                         kv_cache_dtype=kv, block_size=opts.block_size).resolved()
        n_full, n_swa, _ = spec.layer_counts()
        page = layer_page_bytes(spec, kv, tp, opts.block_size)
        if opts.speculative is not None:  # every block also holds the draft layers' pages: the target gets its share
            ex = self.extras(model, quant, kv, self.startup(model, quant, kv, [Device("GPU", 0.0, budget.per_device[0]
                                                                                   / MIB)] * tp, opts), opts)
            ours = page * (n_full + n_swa)
            available *= ours / (ours + ex.draft_page_bytes * ex.draft_layers)
        st = Startup(budget.per_device[0], part.weights * MIB, part.compute * MIB, part.overhead * MIB, 0.0,
                     available, page, n_full + n_swa, 0.0, s)
        return {"kv_capacity_mib": st.kv_capacity_mib, "kv_capacity_tokens": float(st.kv_capacity_tokens),
                "max_concurrency": max_concurrency(spec, st, ctx)}

    def notes(self, model: ResolvedModel, devices: Sequence[Device], opts: EngineOptions) -> tuple[str, ...]:
        s = self.settings(devices, "auto", opts, self.utilization(opts))
        notes = [f"vLLM {s.release.label} on this GPU: --max-num-seqs {s.max_num_seqs}, --max-num-batched-tokens "
                 f"{s.max_num_batched_tokens}; its start-up profile (sampler over max-num-seqs rows of the "
                 "vocabulary) is taken from the KV cache",
                 "vLLM takes its whole budget at start and fills what the model leaves with KV blocks: nvidia-smi "
                 "shows the budget, whatever the context; the parts show what one request of each context needs"]
        cal = self.calibration(opts)
        if s.release.flashinfer_sampler and cal.sampler_native_bytes > cal.sampler_flashinfer_bytes:
            # vllm/v1/sample/ops/topk_topp_sampler.py: without the flashinfer package the top-k/top-p
            # sampler runs in PyTorch, whose profile peak is larger (the wild record -019: gpt-oss-120b
            # on 0.10 logged -2.14 GiB of KV, what the PyTorch path predicts, where FlashInfer's fits)
            rows = min(s.max_num_seqs or 0, s.max_num_batched_tokens or 0)
            more = rows * model.spec.vocab_size * (cal.sampler_native_bytes - cal.sampler_flashinfer_bytes) / MIB
            notes.append(f"without the flashinfer package, vLLM's sampler takes {more:,.0f} MiB more at start "
                         f"(--set sampler_flashinfer_bytes={cal.sampler_native_bytes:g} plans for that)")
        return tuple(notes)

    # --- plans ---------------------------------------------------------------------------------
    def plan(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
             budget: Budget, opts: EngineOptions) -> Plan:
        """The plan at `ctx`, or at the longest `--max-model-len` vLLM accepts when it would refuse
        `ctx` (its KV cache too small, or past the model's trained length)."""
        spec, tp = model.spec, len(devices)
        notes = []
        fp = self.footprint(model, quant, kv, devices, opts)
        longest = max_fitting(lambda c: fp(c).over(budget), 0.0, self.granularity(opts), max(ctx, spec.max_context))
        if ctx > spec.max_context:  # only a context the user asked for gets here (plans stop at the trained length)
            notes.append(f"--max-model-len {ctx:,} is past the model's trained {spec.max_context:,}: vLLM refuses it "
                         "unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (the command sets it), and quality may drop")
        if 0 < longest < ctx:
            notes.append(f"vLLM refuses --max-model-len {ctx:,}: one request needs more KV cache than it has; "
                         f"planned at the longest it accepts, {longest:,}")
            ctx = longest
        base = super().plan(model, quant, kv, ctx, devices, budget, opts)
        if spec.n_kv_heads < tp and not spec.mla:
            notes.append(f"{spec.n_kv_heads} KV heads < TP {tp}: each rank keeps a replicated KV head")
        if spec.mla and tp > 1:
            notes.append("MLA: the latent KV cache is replicated on every rank")
        util = self.launch_utilization(base, devices, opts, budget)
        notes.append(f"vLLM takes {util:g} of each GPU's memory at start (--gpu-memory-utilization)")
        return replace(base, notes=tuple(notes), settings={**budget.settings, "gpu_memory_utilization": util})

    def launch_utilization(self, plan: Plan, devices: Sequence[Device], opts: EngineOptions, budget: Budget) -> float:
        """vLLM takes `utilization x total` on each GPU at start (and refuses to start unless that much
        is free), then fits its KV cache in what is left: the configured value when that much is in the
        plan's budget on every GPU, else just enough for the plan (others hold the rest)."""
        configured = budget.settings.get("gpu_memory_utilization", self.utilization(opts))
        pairs = [(share, d.total_mib) for share, d in zip(plan.devices, devices, strict=True) if d.total_mib]
        if not pairs or all(configured * total <= share.budget_mib + 1e-6 for share, total in pairs):
            return configured
        need = max(share.total_mib / total for share, total in pairs)
        return min(configured, max(0.05, math.ceil(need * 1000) / 1000))

    def startup_need_mib(self, share: DeviceShare, device: Device, plan: Plan) -> float:
        util = plan.settings.get("gpu_memory_utilization")
        return util * device.total_mib if util is not None and device.total_mib else share.total_mib

    # --- a server that already runs ----------------------------------------------------------
    def running(self, config: EngineConfig, gpu_total_mib: float | None) -> Running:
        """A `vllm serve` as configured. It holds `gpu_memory_utilization x total` whatever the model, so
        that is the prediction; the estimate's part is the KV capacity it should find in it."""
        if not config.model:
            raise LanderError("vLLM does not say which model it serves")
        if not gpu_total_mib:
            raise LanderError("vLLM sizes itself from the GPU's total memory, and its GPU is not known")
        if not config.context:
            raise LanderError("vLLM does not say its max_model_len")
        release = VllmRelease.parse(config.version)
        # its release decides its defaults and start-up profile (`--set release_minor` in the CLI)
        overrides = {"release_minor": float(release.minor)} if release.major == 0 else {}
        util = config.gpu_memory_utilization or release.default_utilization
        model = served_model(config.model, self.label)
        opts = EngineOptions(gpu_memory_utilization=util, block_size=config.block_size or 16,
                             max_num_seqs=config.parallel, overrides=overrides)
        kv = served_kv(config.kv_type)
        shown = {"max_model_len": config.context, "kv_type": kv, "gpu_memory_utilization": util,
                 "block_size": opts.block_size, "release": release.label}
        notes = ("vLLM holds gpu_memory_utilization x total; the KV capacity is where the estimate shows",)
        return Running(model, served_quant(model, config.quant), kv, config.context, opts, shown,
                       held_mib=util * gpu_total_mib, notes=notes)

    def restart_options(self, run: Running) -> EngineOptions:
        """A restart may take all it is given: the budget then plans at the utilization that fits."""
        return replace(run.options, gpu_memory_utilization=1.0)

    def restart_flags(self, run: Running, context: int, settings: Mapping[str, float]) -> tuple[int, str]:
        per = min(context, run.model.spec.max_context)
        per -= per % run.options.block_size if per >= run.options.block_size else 0
        util = settings.get("gpu_memory_utilization", run.options.gpu_memory_utilization)
        return per, f"--max-model-len {per} --gpu-memory-utilization {util:g}"

    def launch_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        if not plan.fits:
            raise LanderError(f"vLLM would refuse to start: one request of {plan.context:,} tokens needs more "
                              "KV cache than is left after the weights and its start-up profile")
        util = plan.settings.get("gpu_memory_utilization", self.utilization(opts))
        ckpt = hf_checkpoint(model, plan.quant)
        env = []
        if plan.context > model.spec.max_context:  # asked for: vLLM refuses it unless told
            env = ["VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"]
        args = [*env, "vllm", "serve", ckpt.ref, "--max-model-len", str(plan.context),
                "--gpu-memory-utilization", f"{util:g}"]
        if plan.kv_cache not in ("auto", "bf16", "f16"):
            args += ["--kv-cache-dtype", plan.kv_cache]
        if plan.tensor_parallel > 1:
            args += ["--tensor-parallel-size", str(plan.tensor_parallel)]
        # the plan's profiling peak depends on these: pass them when the user chose them
        if opts.max_num_seqs:
            args += ["--max-num-seqs", str(opts.max_num_seqs)]
        if opts.max_num_batched_tokens:
            args += ["--max-num-batched-tokens", str(opts.max_num_batched_tokens)]
        if opts.enforce_eager:
            args.append("--enforce-eager")
        q = _QUANT_FLAG.get(plan.quant.split("-")[0].upper())
        if q and ckpt.kind != "placeholder" and not native_format(model.spec):
            args += ["--quantization", q]  # quantize a 16-bit checkpoint on load (a quantized one says so itself)
        extra, notes = self.extra_args(model, plan, opts)
        return ckpt.comment() + "".join(f"# {n}\n" for n in notes) + shlex.join(args + extra)

    def extra_args(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> tuple[list[str], list[str]]:
        """`vllm serve` flags of what the plan loads beside the model (vllm/engine/arg_utils.py)."""
        args: list[str] = []
        notes: list[str] = []
        if opts.mmproj is False and model.spec.vision is not None:
            args.append("--language-model-only")  # MultiModalConfig.language_model_only: no vision tower, no profiling
        spec_dec = opts.speculative
        if spec_dec is not None:
            conf: dict[str, Any]
            if spec_dec.mtp:
                conf = {"method": "mtp", "num_speculative_tokens": spec_dec.tokens}
            else:
                dm = spec_dec.model
                assert dm is not None
                dckpt = hf_checkpoint(dm, spec_dec.quant or native_format(dm.spec) or plan.quant)
                conf = {"model": dckpt.ref, "num_speculative_tokens": spec_dec.tokens}
                if dckpt.note:
                    notes.append(f"draft: {dckpt.note}")
            args += ["--speculative-config", json.dumps(conf)]
        if opts.lora is not None:
            args += ["--enable-lora", "--max-loras", str(opts.lora.count), "--max-lora-rank",
                     str(lora_rank(opts.lora.rank))]
        return args, notes
