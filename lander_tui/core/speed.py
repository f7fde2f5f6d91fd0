"""How fast a plan runs: decode tokens/s, prefill tokens/s and time to first token, from first principles.

Decode (one token at a time) is bound by memory traffic. Each token reads every weight on the GPU
that the token uses (for MoE only the experts it is routed to) and the KV cache up to its position;
a layer split runs the devices one after another, so their times add; tensor parallel runs them at
once and adds two all-reduces per layer. Layers or experts left on the CPU are read from host RAM
at host bandwidth, with a PCIe round trip per such layer. Time per token:

    t = sum over devices [ bytes / (bandwidth x eff) + bytes / (SMs x GHz x sm_stream) + layers x t_layer ]
        + t_token + host part

`eff` is the fraction of peak bandwidth llama.cpp's matrix-vector kernels reach with enough work in
flight; `sm_stream` caps what each SM can keep in flight (Little's law), which is what holds
big-bandwidth HBM cards below GDDR ones in the measurements; `t_layer` and `t_token` are kernel
launch, synchronisation and sampling costs.

Prefill (a prompt in micro-batches of `-ub` tokens) is bound by tensor-core throughput in the
format's kernel path (`kernel_path`): llama.cpp runs quantized weights through its MMQ kernels on
INT8 tensor cores (Turing on), DP4A (Pascal, GTX 16xx), FP16 cuBLAS after dequantizing (Volta, P100,
builds before PR #8075) or FP4 tensor cores (MXFP4 on Blackwell, PR #17906); F16 weights go to cuBLAS.
Each micro-batch costs its matmul FLOPs (2 per active weight per token, inflated when a matrix sees
few tokens, as MoE experts do), the attention FLOPs (which grow with the context: the quadratic
part), and one read of the weights it touches:

    t_ubatch = flops / (peak x eff_path) x (1 + m0 / tokens_per_matrix) + attention / (fp16 peak x eff_attn)
               + weights / bandwidth + t_ubatch0

All fitted constants are named fields of `SpeedCalibration`; `core/speed_eval.py` fits them on the
measured rows in tests/data/speed, holding each GPU out in turn, and `scripts/speed_report.py`
prints how well that held. `speed_inputs` is the one seam that turns a plan into `SpeedInputs`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # a type only: importing the GPU package costs ~0.1 s at start-up
    from lander_tui.core.gpu.specs import GpuSpec

GB = 1e9

# Build numbers where llama.cpp's kernel choice changed (see `kernel_path`).
#: PR ggml-org/llama.cpp#8075 (2024-06-24): MMQ instead of dequantize + FP16 cuBLAS by default.
MMQ_DEFAULT_BUILD = 3216
#: PR ggml-org/llama.cpp#17906 (2025-12): native MXFP4 tensor-core MMQ on Blackwell.
NATIVE_MXFP4_BUILD = 7400
#: That PR's own measurement: 1.26x prompt speed for gpt-oss-20b on an RTX PRO 6000 (pp512..pp8192).
NATIVE_MXFP4_SPEEDUP = 1.26
#: llama-bench's defaults (tools/llama-bench/llama-bench.cpp `cmd_params_defaults`).
DEFAULT_N_BATCH, DEFAULT_N_UBATCH = 2048, 512
_FLOAT_TYPES = {"F16", "BF16", "F32"}

# How an engine runs a token: this picks the kernels and the per-step costs. Each engine module says
# which it is (`Engine.speed`); the speed model never asks an engine's name.
#: llama.cpp's CUDA backend (llama.cpp, Ollama): MMQ / cuBLAS / DP4A kernel choice, CUDA graphs.
GGML = "ggml"
#: A batched PyTorch server with CUDA graphs and a scheduler step per token (vLLM, SGLang).
SERVER = "server"
#: PyTorch eager: one Python call and kernel launch per op (Transformers `generate`).
EAGER = "eager"
RUNTIMES = (GGML, SERVER, EAGER)


@dataclass(frozen=True)
class SpeedCalibration:
    """Fitted and documented constants. The fitted ones are the least-squares fit (relative error,
    Huber-weighted) on the 607 single-GPU full-offload CUDA rows of tests/data/speed (`speed_eval.fit`;
    `scripts/speed_report.py --fit` reprints them); efficiencies are capped at 1. With bw_efficiency
    at its cap, what limits decode below peak bandwidth is the per-SM stream rate; with mmq_efficiency
    at its cap, MMQ prompt speed is set by its SM-side work (`matmul_sm_flops_per_clk`)."""

    #: Fraction of peak memory bandwidth the decode kernels reach (fitted, llama.cpp CUDA rows).
    bw_efficiency: float = 1.0
    #: Bytes per second one SM keeps streaming, per GHz of its clock (fitted): the in-flight limit.
    sm_stream_gbs_per_ghz: float = 14.03
    #: Fixed cost per decoded token: sampling, graph launch, host sync (fitted).
    token_overhead_s: float = 0.0
    #: Cost per layer per decoded token beyond its bytes: kernel launches and tails (fitted).
    layer_overhead_s: float = 3.55e-5
    #: Extra cost per MoE layer per decoded token: router, top-k, expert-id kernels (fitted).
    moe_layer_overhead_s: float = 4.47e-5
    #: Fraction of peak tensor throughput per kernel path for prompt matmuls (fitted).
    mmq_efficiency: float = 1.0
    cublas_efficiency: float = 0.721
    dp4a_efficiency: float = 0.765
    #: Matmul FLOPs one SM's non-tensor side (dequantisation, loads, shared memory) sustains per clock
    #: (fitted). Peak tensor rates grew faster than this (GA100/GH100 doubled INT8 per SM, the rest did
    #: not), so MMQ reaches a much smaller share of the peak on A100/H100 than on GeForce cards.
    matmul_sm_flops_per_clk: float = 1012.0
    #: MoE expert matmuls (MUL_MAT_ID: tokens gathered per expert, then scattered back), fraction of
    #: the path's peak (fitted; at its cap once the routing below is counted apart).
    moe_efficiency: float = 1.0
    #: Tokens per matrix at which a matmul runs at half its large-batch rate (fitted): small batches
    #: and MoE experts that see few tokens each.
    small_batch_tokens: float = 128.0
    #: Fraction of the FP16 tensor peak attention reaches in prefill (fitted; FlashAttention on).
    attention_efficiency: float = 0.411
    #: The same without flash attention (KQ materialised; fitted).
    attention_efficiency_nofa: float = 0.0734
    #: Fixed cost per micro-batch per layer (fitted).
    ubatch_layer_overhead_s: float = 1.53e-4
    #: Seconds per prompt token per MoE layer that do not scale with the GPU (fitted): sorting tokens
    #: by expert before MUL_MAT_ID. llama.cpp's `mmq_ids_helper` (ggml-cuda/mmq.cu) runs one warp per
    #: expert walking every token of the micro-batch in order, so this work takes as long on a 170-SM
    #: card as on a 48-SM one (earlier builds copied the ids to the host and synchronised instead).
    #: Fitted at 2.6 us: for gpt-oss-20b (24 MoE layers) 62 us per prompt token, what the RTX 5070 Ti
    #: and RTX 5090 rows alone give for the part of prompt time that does not shrink with SMs (~60 us).
    moe_route_token_s: float = 2.59e-6
    #: Host RAM: fraction of peak DDR bandwidth a CPU matrix-vector pass reaches. Not fitted (the data
    #: has 9 usable offload rows on 4 machines); STREAM-triad on desktop DDR4/DDR5 reaches 70-85 %
    #: and llama.cpp's CPU kernels somewhat less.
    host_bw_efficiency: float = 0.65
    #: PCIe: fraction of the link's peak a bulk host-to-device copy reaches (pinned memory, ~80 % is
    #: what `cudaMemcpy` bandwidth tests show on gen3/gen4 x16).
    pcie_efficiency: float = 0.8
    #: One hop of the hidden state between devices or CPU and GPU (launch + copy + sync), per token.
    hop_latency_s: float = 2.0e-5
    #: One all-reduce of a token's hidden state across tensor-parallel ranks (NCCL small-message
    #: latency is ~10 us over PCIe, less over NVLink; vLLM's custom all-reduce is faster still).
    allreduce_latency_s: float = 1.0e-5
    #: vLLM/SGLang: not fitted (no rows in the data). Their Marlin/CUTLASS decode kernels reach a
    #: higher fraction of bandwidth than llama.cpp's; the per-step cost is the scheduler's Python
    #: loop with CUDA graphs (vLLM's own benchmarks show ~1-3 ms steps for small models).
    vllm_bw_efficiency: float = 0.85
    vllm_step_overhead_s: float = 1.5e-3
    vllm_matmul_efficiency: float = 0.6
    #: Transformers eager: every op is a Python call and a kernel launch; a decoder layer is ~20-30
    #: of them at 10-20 us each (PyTorch eager dispatch), so ~0.4 ms per layer per token.
    eager_layer_overhead_s: float = 4.0e-4

    def with_overrides(self, overrides: dict[str, float]) -> SpeedCalibration:
        known = set(self.__dataclass_fields__)
        bad = sorted(set(overrides) - known)
        if bad:
            raise ValueError(f"unknown speed setting {bad[0]!r}")
        return replace(self, **overrides)


_DEFAULT_CAL = SpeedCalibration()


@dataclass(frozen=True)
class DeviceLoad:
    """What one GPU carries for the speed model."""

    gpu: GpuSpec
    #: Weight bytes one decoded token reads here (MoE: routed experts only, n_used / n_experts).
    decode_bytes: float
    #: Weight bytes a large micro-batch reads here (MoE: every expert).
    all_bytes: float
    #: KV bytes per token of context on full-attention layers held here, and on sliding-window
    #: layers (which stop growing at `swa_window`).
    kv_bytes_per_token: float
    swa_kv_bytes_per_token: float = 0.0
    swa_window: int = 0
    #: Constant per-token state bytes (recurrent layers) read each step.
    state_bytes: float = 0.0
    layers: int = 0
    moe_layers: int = 0
    #: Matrix weights held here (a dequantize-then-cuBLAS pass writes and reads each as FP16).
    matrix_params: float = 0.0
    #: Matmul FLOPs per token on this device: dense part and routed-expert part (2 per weight used).
    dense_flops: float = 0.0
    expert_flops: float = 0.0
    #: Attention FLOPs per token per token of context here (4 x heads x head dim x layers), full and SWA.
    attn_flops_per_ctx: float = 0.0
    swa_attn_flops_per_ctx: float = 0.0
    #: Heads x full-attention layers: the KQ matrix a non-FlashAttention step writes and reads.
    kq_heads: int = 0
    #: Query-key head size: an attention tile does work in proportion to it per K/V element loaded.
    head_dim: int = 128


@dataclass(frozen=True)
class HostLoad:
    """Layers or experts left in host RAM (llama.cpp `-ngl` below all, `--n-cpu-moe`, `-ot ...=CPU`)."""

    decode_bytes: float
    all_bytes: float
    bandwidth_gbs: float
    layers: int = 0  # whole layers on the CPU
    moe_layers: int = 0  # layers whose experts only are on the CPU (two PCIe hops each per token)
    kv_bytes_per_token: float = 0.0
    #: CPU GEMM throughput for prompts too small to ship the weights to the GPU, TFLOPS.
    tflops: float = 0.5


@dataclass(frozen=True)
class SpeedInputs:
    """Everything the speed model needs about one plan. Engines fill it via `speed_inputs`."""

    runtime: str  # GGML, SERVER or EAGER
    devices: tuple[DeviceLoad, ...]
    weight_type: str  # ggml type of the big matrices (Q4_K, MXFP4, F16...) or HF format (BF16, FP8...)
    n_layers: int
    hidden_size: int
    host: HostLoad | None = None
    split: str = "layer"  # "layer" (devices in turn), "tensor" (all at once, all-reduce per layer)
    flash_attn: bool = True
    n_ubatch: int = DEFAULT_N_UBATCH
    n_batch: int = DEFAULT_N_BATCH
    moe_experts: int = 0
    moe_used: int = 0
    build: int | None = None  # llama.cpp build number; None = current
    concurrency: int = 1
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class SpeedEstimate:
    decode_tps: float
    prefill_tps: float
    ttft_s: float
    bound: str  # what limits decode, e.g. "memory-bound: 4.3 GB read per token"
    prefill_bound: str
    context: int
    prompt: int
    decode_bytes: float  # bytes read per decoded token (all devices + host)
    offload_step_cost: float | None = None  # decode tok/s lost by moving one more layer (or its experts) to CPU
    offload_step: str = ""  # that step in the engine's terms, e.g. "--n-cpu-moe 20" or "-ngl 42"
    aggregate_tps: float | None = None  # vLLM/SGLang: all streams at `concurrency`
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """Everything, nested (the model's own view); `speed_json` is what results and plans print."""
        return {"decode_tps": round(self.decode_tps, 2), "prefill_tps": round(self.prefill_tps, 1),
                "ttft_s": round(self.ttft_s, 4), "bound": self.bound, "prefill_bound": self.prefill_bound,
                "context": self.context, "prompt": self.prompt,
                "offload_step_cost": None if self.offload_step_cost is None else round(self.offload_step_cost, 2),
                "aggregate_tps": None if self.aggregate_tps is None else round(self.aggregate_tps, 1),
                "notes": list(self.notes)}


#: The speed keys of a result's JSON (and CSV/Markdown columns), in order.
SPEED_KEYS = ("decode_tps", "prefill_tps", "ttft_s")


def speed_json(est: SpeedEstimate | None, detail: bool = False) -> dict[str, Any]:
    """The flat speed fields a result (or, with `detail`, a plan) carries in JSON: decode tok/s at the
    context, prefill tok/s of a prompt that long, seconds to the first token, and what bounds decode.
    All None when the speed is unknown."""
    if est is None:
        out: dict[str, Any] = {k: None for k in (*SPEED_KEYS, "speed_context", "speed_bound")}
        if detail:
            out |= {"prefill_bound": None, "offload_step_cost_tps": None, "offload_step": None, "aggregate_tps": None,
                    "speed_notes": []}
        return out
    out = {"decode_tps": round(est.decode_tps, 1), "prefill_tps": round(est.prefill_tps, 1),
           "ttft_s": round(est.ttft_s, 3), "speed_context": est.context, "speed_bound": est.bound}
    if detail:
        out |= {"prefill_bound": est.prefill_bound,
                "offload_step_cost_tps": None if est.offload_step_cost is None else round(est.offload_step_cost, 2),
                "offload_step": est.offload_step or None,
                "aggregate_tps": None if est.aggregate_tps is None else round(est.aggregate_tps, 1),
                "speed_notes": list(est.notes)}
    return out


def speed_unknown(devices: Sequence[Any]) -> str:
    """Why no speed can be given for these planned GPUs (`core/model.Device`), or "" when every card
    is known."""
    return next((d.card_note or f"speed unknown: no speed facts for {d.name}" for d in devices if d.card is None), "")


def device_cards(devices: Sequence[Any]) -> list[GpuSpec]:
    """The cards of planned GPUs, for `speed_inputs`; a ValueError when one is unknown (ask
    `speed_unknown` first)."""
    why = speed_unknown(devices)
    if why:
        raise ValueError(why)
    return [d.card for d in devices]


# --- kernel paths ---------------------------------------------------------------------------------


def _cc(gpu: GpuSpec) -> float:
    return float(gpu.compute_capability)


def kernel_path(gpu: GpuSpec, weight_type: str, build: int | None = None, runtime: str = GGML) -> str:
    """Which matmul kernel runs a prompt's weights, and so which peak bounds it.

    llama.cpp (ggml/src/ggml-cuda `ggml_cuda_should_use_mmq`, PR #8075): quantized types use MMQ on
    INT8 tensor cores from Turing (cc 7.5) on, DP4A MMQ on Pascal cc 6.1 and GTX 16xx, FP16 cuBLAS
    after dequantizing on Volta (no INT8 MMA) and P100/older (no DP4A), and everywhere before PR #8075.
    MXFP4 on Blackwell uses FP4 tensor cores since PR #17906. vLLM/SGLang/Transformers run their
    format on the matching tensor unit (BF16, FP8, INT8 W8A8) or dequantize to BF16 (GPTQ/AWQ/NF4).
    """
    wt = weight_type.upper()
    cc = _cc(gpu)
    if runtime != GGML:
        if wt == "FP8" and gpu.fp8:
            return "fp8"
        if wt == "INT8" and gpu.int8 and gpu.tensor_cores:
            return "int8"
        return "bf16" if gpu.bf16 else "fp16"
    if wt in _FLOAT_TYPES:
        return "fp16" if gpu.fp16 and gpu.fp16 > gpu.fp32 else "fp32"
    modern = build is None or build >= MMQ_DEFAULT_BUILD
    if wt == "MXFP4" and gpu.fp4 and (build is None or build >= NATIVE_MXFP4_BUILD):
        return "fp4"
    if gpu.tensor_cores and cc >= 7.5 and modern:
        return "mmq"
    if gpu.tensor_cores and cc >= 7.0:
        return "cublas"
    if cc >= 6.1 and gpu.int8:
        return "dp4a"
    return "cublas" if gpu.fp16 and gpu.fp16 > gpu.fp32 else "fp32"


def path_peak_tflops(gpu: GpuSpec, path: str) -> float:
    """The peak the path runs at (TFLOPS or TOPS, dense)."""
    return {
        "mmq": gpu.int8, "dp4a": gpu.int8, "fp4": (gpu.int8 or 0) * NATIVE_MXFP4_SPEEDUP, "cublas": gpu.fp16,
        "fp16": gpu.fp16, "bf16": gpu.bf16, "fp8": gpu.fp8, "int8": gpu.int8, "fp32": gpu.fp32,
    }.get(path) or gpu.fp32


def _path_efficiency(cal: SpeedCalibration, path: str, runtime: str) -> float:
    if runtime != GGML:
        return cal.vllm_matmul_efficiency
    return {"mmq": cal.mmq_efficiency, "fp4": cal.mmq_efficiency, "dp4a": cal.dp4a_efficiency}.get(
        path, cal.cublas_efficiency)


# --- decode ---------------------------------------------------------------------------------------


def _kv_read(d: DeviceLoad, ctx: float) -> float:
    swa = d.swa_kv_bytes_per_token * min(ctx, d.swa_window or ctx)
    return d.kv_bytes_per_token * ctx + swa + d.state_bytes


def _kq_traffic(d: DeviceLoad, ctx: float, flash_attn: bool) -> float:
    """Without FlashAttention each layer writes the KQ scores (f32), softmaxes them in place and reads
    them back: about four passes of heads x ctx x 4 bytes."""
    return 0.0 if flash_attn else 16.0 * d.kq_heads * ctx


def device_decode_seconds(d: DeviceLoad, ctx: float, cal: SpeedCalibration, flash_attn: bool = True,
                          bw_efficiency: float | None = None) -> float:
    g = d.gpu
    nbytes = d.decode_bytes + _kv_read(d, ctx) + _kq_traffic(d, ctx, flash_attn)
    eff = bw_efficiency or cal.bw_efficiency
    stream = g.sms * g.boost_mhz / 1000 * cal.sm_stream_gbs_per_ghz * GB if g.sms and g.boost_mhz else math.inf
    return (nbytes / (g.mem_bw_gbs * GB * eff) + nbytes / stream + d.layers * cal.layer_overhead_s
            + d.moe_layers * cal.moe_layer_overhead_s)


def _host_decode_seconds(h: HostLoad, ctx: float, cal: SpeedCalibration) -> float:
    nbytes = h.decode_bytes + h.kv_bytes_per_token * ctx
    hops = 2 * h.moe_layers + (2 if h.layers else 0)
    return nbytes / (h.bandwidth_gbs * GB * cal.host_bw_efficiency) + hops * cal.hop_latency_s


def decode_seconds(inp: SpeedInputs, ctx: float, cal: SpeedCalibration) -> float:
    """Seconds per decoded token with `ctx` tokens already in the cache."""
    vllm = inp.runtime == SERVER
    eager = inp.runtime == EAGER
    eff = cal.vllm_bw_efficiency if vllm else None
    per = [device_decode_seconds(d, ctx, cal, inp.flash_attn, eff) for d in inp.devices]
    if inp.split == "tensor" and len(per) > 1:
        tp = len(per)
        link = max(min(d.gpu.nvlink_gbs / 2 or d.gpu.pcie_gbs for d in inp.devices), 1.0) * GB
        allreduce = 2 * inp.n_layers * (cal.allreduce_latency_s + 2 * (tp - 1) / tp * inp.hidden_size * 2 / link)
        t = max(per) + allreduce
    else:
        t = sum(per) + max(0, len(per) - 1) * cal.hop_latency_s
    if inp.host is not None:
        t += _host_decode_seconds(inp.host, ctx, cal)
    if vllm:
        t += cal.vllm_step_overhead_s
    elif eager:
        t += inp.n_layers * cal.eager_layer_overhead_s
    else:
        t += cal.token_overhead_s
    return t


# --- prefill --------------------------------------------------------------------------------------
# Every function below takes the micro-batch sizes `n` and start positions `pos` as arrays (one entry
# per micro-batch), so a 128k-token prompt (256 micro-batches) costs a few vector operations.


def _matmul_seconds(d: DeviceLoad, n: np.ndarray, inp: SpeedInputs, cal: SpeedCalibration) -> np.ndarray:
    """Tensor-core time at the path's peak, plus the SM-side work that does not scale with it."""
    path = kernel_path(d.gpu, inp.weight_type, inp.build, inp.runtime)
    peak = path_peak_tflops(d.gpu, path) * 1e12
    per_expert = n * inp.moe_used / inp.moe_experts if inp.moe_experts else n
    dense = d.dense_flops * n * (1 + cal.small_batch_tokens / n)
    expert = d.expert_flops * n * (1 + cal.small_batch_tokens / np.maximum(per_expert, 1.0))
    t = dense / (peak * _path_efficiency(cal, path, inp.runtime)) + expert / (peak * cal.moe_efficiency)
    if path in ("mmq", "dp4a", "fp4") and d.gpu.sms and d.gpu.boost_mhz:  # the kernels that dequantize in place
        t = t + (dense + expert) / (d.gpu.sms * d.gpu.boost_mhz * 1e6 * cal.matmul_sm_flops_per_clk)
    return t


def _attention_seconds(d: DeviceLoad, n: np.ndarray, pos: np.ndarray, flash_attn: bool,
                       cal: SpeedCalibration) -> np.ndarray:
    ctx = pos + n / 2  # causal: token i attends to pos + i earlier ones
    swa_ctx = np.minimum(ctx, d.swa_window) if d.swa_window else ctx
    flops = n * (d.attn_flops_per_ctx * ctx + d.swa_attn_flops_per_ctx * swa_ctx)
    peak = (d.gpu.fp16 if d.gpu.tensor_cores and d.gpu.fp16 else d.gpu.fp32) * 1e12
    # arithmetic intensity of a FlashAttention tile grows with the head size; below 128 the tile is
    # bound by loading K/V rather than by the tensor cores
    intensity = min(1.0, d.head_dim / 128)
    return flops / (peak * intensity * (cal.attention_efficiency if flash_attn else cal.attention_efficiency_nofa))


def device_ubatch_seconds(d: DeviceLoad, n: np.ndarray, pos: np.ndarray, inp: SpeedInputs,
                          cal: SpeedCalibration) -> np.ndarray:
    """Micro-batches of `n` tokens starting at positions `pos` on one device."""
    touched: Any = d.all_bytes
    if inp.moe_experts and d.all_bytes > d.decode_bytes:  # experts a small batch never reaches stay unread
        miss = 1 - inp.moe_used / inp.moe_experts
        touched = d.all_bytes - (d.all_bytes - d.decode_bytes) * miss ** n / miss
    if kernel_path(d.gpu, inp.weight_type, inp.build, inp.runtime) == "cublas" and inp.weight_type not in _FLOAT_TYPES:
        touched = touched + 4.0 * d.matrix_params  # dequantized to an FP16 copy (written, then read by the GEMM)
    mem = touched / (d.gpu.mem_bw_gbs * GB)
    return (_matmul_seconds(d, n, inp, cal) + _attention_seconds(d, n, pos, inp.flash_attn, cal) + mem
            + d.layers * cal.ubatch_layer_overhead_s + n * d.moe_layers * cal.moe_route_token_s)


def _host_ubatch_seconds(h: HostLoad, n: np.ndarray, inp: SpeedInputs, cal: SpeedCalibration) -> np.ndarray:
    """llama.cpp ships host-resident weights to the GPU for a micro-batch of 32+ tokens
    (`op_offload`, GGML_OP_OFFLOAD_MIN_BATCH in ggml-cuda), else the CPU computes them."""
    on_cpu = np.maximum(2 * h.decode_bytes * n / (h.tflops * 1e12),  # ~1 FLOP pair per byte read, quantized
                        h.decode_bytes / (h.bandwidth_gbs * GB * cal.host_bw_efficiency))
    if not inp.devices:
        return on_cpu
    link = min(d.gpu.pcie_gbs for d in inp.devices) * GB * cal.pcie_efficiency
    return np.where(n >= 32, h.all_bytes / link, on_cpu)


@lru_cache(maxsize=256)
def micro_batches(n_prompt: int, depth: int, n_batch: int, n_ubatch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How llama.cpp cuts a prompt: batches of `n_batch` tokens, each in micro-batches of `n_ubatch`.
    Returns each micro-batch's size, start position, and the index of its first micro-batch's batch
    (`starts`: where each batch begins in the first two arrays). Cached, read-only."""
    n_batch = max(1, n_batch)
    n_ubatch = max(1, min(n_ubatch, n_batch))
    n_b = -(-n_prompt // n_batch)
    bsz = np.full(n_b, n_batch, dtype=np.int64)
    bsz[-1] = n_prompt - n_batch * (n_b - 1)
    k = -(-bsz // n_ubatch)  # micro-batches per batch
    n = np.full(int(k.sum()), n_ubatch, dtype=np.int64)
    ends = np.cumsum(k)
    n[ends - 1] = bsz - (k - 1) * n_ubatch  # each batch's last micro-batch takes the rest
    pos = depth + np.cumsum(n) - n
    out = (n.astype(float), pos.astype(float), ends - k)
    for a in out:
        a.setflags(write=False)  # cached: shared by every caller
    return out


def prefill_seconds(inp: SpeedInputs, n_prompt: int, depth: int, cal: SpeedCalibration) -> float:
    """Seconds to process `n_prompt` tokens after `depth` tokens already in the cache.

    llama.cpp splits the prompt into batches of `n_batch` and those into micro-batches of `n_ubatch`;
    with a layer split the micro-batches of one batch flow through the devices as a pipeline
    (llama.cpp's pipeline parallelism), so a batch of k micro-batches on D devices takes about
    (k + D - 1) stage times instead of k x D.
    """
    n, pos, starts = micro_batches(max(1, n_prompt), depth, inp.n_batch, inp.n_ubatch)
    stages = np.array([device_ubatch_seconds(d, n, pos, inp, cal) for d in inp.devices])  # devices x micro-batches
    host = _host_ubatch_seconds(inp.host, n, inp, cal) if inp.host else np.zeros_like(n)
    n_dev = len(inp.devices)
    if inp.split == "tensor" and n_dev > 1:
        return float(stages.max(axis=0).sum() + len(n) * 2 * inp.n_layers * cal.allreduce_latency_s + host.sum())
    if n_dev == 1:
        return float(stages.sum() + host.sum())
    k = np.diff(np.append(starts, len(n)))
    slowest = np.maximum.reduceat(stages.max(axis=0), starts)
    in_turn = np.add.reduceat(stages.sum(axis=0), starts)
    return float(np.where(k > 1, (k + n_dev - 1) * slowest, in_turn).sum() + host.sum())


# --- the estimate ---------------------------------------------------------------------------------


def _bound_text(inp: SpeedInputs, ctx: float, cal: SpeedCalibration) -> tuple[str, float]:
    dev_bytes = sum(d.decode_bytes + _kv_read(d, ctx) for d in inp.devices)
    host_bytes = (inp.host.decode_bytes + inp.host.kv_bytes_per_token * ctx) if inp.host else 0.0
    total = dev_bytes + host_bytes
    if inp.host is not None:
        host_t = _host_decode_seconds(inp.host, ctx, cal)
        if host_t > 0.5 * decode_seconds(inp, ctx, cal):
            return (f"host-RAM-bound: {host_bytes / GB:.1f} GB per token from system RAM "
                    f"at {inp.host.bandwidth_gbs:.0f} GB/s"), total
    return f"memory-bound: {total / GB:.1f} GB read per token", total


def estimate_speed(inp: SpeedInputs, context: int, prompt: int | None = None,
                   cal: SpeedCalibration | None = None, step: SpeedInputs | None = None,
                   step_label: str = "") -> SpeedEstimate:
    """Decode speed at `context` tokens, prefill speed and time to first token for a `prompt`-token
    prompt (default: the context). `step` is the same plan with one more layer (or one more layer's
    experts) on the CPU; when given, `offload_step_cost` is the decode tok/s that step loses
    (`step_label` says what the step is, in the engine's flags)."""
    cal = cal or _DEFAULT_CAL
    prompt = context if prompt is None else prompt
    t_dec = decode_seconds(inp, context, cal)
    t_pre = prefill_seconds(inp, max(prompt, 1), 0, cal)
    bound, nbytes = _bound_text(inp, context, cal)
    pre_bound = "compute-bound: " + ", ".join(sorted({
        f"{kernel_path(d.gpu, inp.weight_type, inp.build, inp.runtime)} on {d.gpu.name}" for d in inp.devices}))
    if inp.host is not None and prompt >= 32:
        pre_bound += f" + PCIe for {inp.host.all_bytes / GB:.1f} GB of host weights per micro-batch"
    cost = None
    if step is not None:
        cost = 1 / t_dec - 1 / decode_seconds(step, context, cal)
    agg = None
    if inp.runtime == SERVER and inp.concurrency > 1:
        agg = aggregate_tps(inp, context, inp.concurrency, cal)
    return SpeedEstimate(decode_tps=1 / t_dec, prefill_tps=prompt / t_pre, ttft_s=t_pre + t_dec, bound=bound,
                         prefill_bound=pre_bound, context=context, prompt=prompt, decode_bytes=nbytes,
                         offload_step_cost=cost, offload_step=step_label if step is not None else "",
                         aggregate_tps=agg, notes=inp.notes)


def aggregate_tps(inp: SpeedInputs, ctx: float, concurrency: int, cal: SpeedCalibration) -> float:
    """All streams of a batched server (vLLM/SGLang) decoding together at `ctx` each: one step reads
    the weights once and every stream's KV cache, and computes `concurrency` tokens."""
    c = max(1, concurrency)
    step = 0.0
    for d in inp.devices:
        nbytes = d.all_bytes if inp.moe_experts and c * inp.moe_used >= inp.moe_experts else d.decode_bytes
        mem = (nbytes + c * _kv_read(d, ctx)) / (d.gpu.mem_bw_gbs * GB * cal.vllm_bw_efficiency)
        path = kernel_path(d.gpu, inp.weight_type, None, inp.runtime)
        peak = path_peak_tflops(d.gpu, path) * 1e12 * cal.vllm_matmul_efficiency
        comp = c * (d.dense_flops + d.expert_flops + d.attn_flops_per_ctx * ctx) / peak
        step = max(step, mem, comp) if inp.split == "tensor" else step + max(mem, comp)
    return c / (step + cal.vllm_step_overhead_s)


# --- the seam: a plan -> SpeedInputs --------------------------------------------------------------

#: Host RAM bandwidth when nothing better is known: dual-channel DDR5-4800 (2 x 8 bytes x 4800 MT/s).
DEFAULT_HOST_BW_GBS = 76.8


def speed_inputs(spec: Any, weights: Any, gpus: list[GpuSpec], *, units: list[int | None] | None = None,
                 cpu_moe: int = 0, cpu_override: str | None = None, kv_type: str = "f16",
                 runtime: str = GGML, tensor_parallel: bool = False, flash_attn: bool = True,
                 n_ubatch: int = DEFAULT_N_UBATCH, n_batch: int = DEFAULT_N_BATCH,
                 host_bw_gbs: float | None = None, build: int | None = None, concurrency: int = 1,
                 sliding_window: bool | None = None, mla_latent: bool | None = None) -> SpeedInputs:
    """THE seam: build `SpeedInputs` from what plans hold today.

    `spec` is a `ModelSpec`, `weights` the `WeightSet` of the chosen quant (per-tensor bytes), `gpus`
    one `GpuSpec` per device. `units` is llama.cpp's placement: the device index (or None = CPU) of each
    layer and, last, of the output layer (`engines.llamacpp.layer_devices(n_layers, ngl, split)` returns exactly
    this); None = everything on device 0. `cpu_moe` keeps the experts of the first N layers on the CPU
    (`--n-cpu-moe N`); `cpu_override` is an `-ot` pattern whose tensors stay on the CPU (regex search on
    the tensor name, as llama.cpp's `std::regex_search`). `tensor_parallel` splits every tensor evenly
    over the GPUs (vLLM/SGLang TP) instead. `runtime` is how the engine runs a token (GGML, SERVER,
    EAGER). `sliding_window`: whether sliding-window layers keep only the window (default: as llama.cpp
    does for GGML, whenever the model has a window otherwise); `mla_latent`: whether an MLA model caches
    the latent (default: all but EAGER, which caches K and V expanded per head). Adapt this one function
    when the plan shapes change.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; one of {', '.join(RUNTIMES)}")
    # the same placement comes back on every estimate the dashboard re-runs (a new context, a few MiB
    # of free memory moving): answer it from a small cache keyed by what it depends on
    key = (id(spec), id(weights), tuple(gpus), None if units is None else tuple(units), cpu_moe, cpu_override,
           kv_type, runtime, tensor_parallel, flash_attn, n_ubatch, n_batch, host_bw_gbs, build, concurrency,
           sliding_window, mla_latent)
    hit = _INPUTS.get(key)
    if hit is not None and hit[0] is spec and hit[1] is weights:
        return hit[2]
    inputs = _speed_inputs(spec, weights, gpus, units=units, cpu_moe=cpu_moe, cpu_override=cpu_override,
                           kv_type=kv_type, runtime=runtime, tensor_parallel=tensor_parallel, flash_attn=flash_attn,
                           n_ubatch=n_ubatch, n_batch=n_batch, host_bw_gbs=host_bw_gbs, build=build,
                           concurrency=concurrency, sliding_window=sliding_window, mla_latent=mla_latent)
    if len(_INPUTS) > 256:
        _INPUTS.clear()
    _INPUTS[key] = (spec, weights, inputs)  # holding spec and weights keeps their ids from being reused
    return inputs


_INPUTS: dict[tuple[Any, ...], tuple[Any, Any, SpeedInputs]] = {}


def _speed_inputs(spec: Any, weights: Any, gpus: list[GpuSpec], *, units: list[int | None] | None,
                  cpu_moe: int, cpu_override: str | None, kv_type: str, runtime: str, tensor_parallel: bool,
                  flash_attn: bool, n_ubatch: int, n_batch: int, host_bw_gbs: float | None, build: int | None,
                  concurrency: int, sliding_window: bool | None, mla_latent: bool | None) -> SpeedInputs:
    from lander_tui.core.formats import kv_cache_type

    L = spec.n_layers
    n_dev = len(gpus)
    if not n_dev:
        raise ValueError("a speed estimate needs at least one GPU")
    units = list(units) if units is not None else [0] * (L + 1)
    moe = spec.moe
    tab = _tensor_table(weights, L, moe.n_used / moe.n_experts if moe else 1.0)
    if tensor_parallel:
        slot = np.full(len(tab.layer), -1)
    else:
        dev_of_unit = np.array([n_dev if u is None else int(u) for u in units])
        slot = dev_of_unit[tab.layer]
        on_cpu = slot == n_dev
        if cpu_override:
            on_cpu |= _override_mask(weights, tab, cpu_override)
        if moe and cpu_moe:
            on_cpu |= tab.expert & (tab.layer < cpu_moe)
        slot = np.where(on_cpu, n_dev, slot)
    if tensor_parallel:
        sums = tab.columns.sum(axis=0)
        tcols = np.vstack([np.tile(sums / n_dev, (n_dev, 1)), np.zeros(len(sums))])
    else:
        tcols = _one_hot(slot, n_dev + 1) @ tab.columns  # per device (and the CPU, last): bytes, FLOPs
    acc = {key: tcols[:, j].tolist() for j, key in enumerate(("dec", "all", "dense", "exp", "params"))}
    kv = kv_cache_type(kv_type)
    if sliding_window is None:
        sliding_window = spec.llamacpp_uses_swa if runtime == GGML else bool(spec.sliding_window)
    swa_applies = bool(sliding_window and spec.sliding_window)
    latent = bool(spec.mla) and (runtime != EAGER if mla_latent is None else mla_latent)
    lt = _layer_table(spec, swa_applies, latent, kv.block_bytes / kv.block)
    if tensor_parallel:  # every rank holds a share of every layer
        sums = lt.sum(axis=0)
        row = sums / n_dev
        row[_COL["layers"]], row[_COL["moe"]] = sums[_COL["layers"]], sums[_COL["moe"]]
        row[_COL["kq"]] = np.count_nonzero(lt[:, _COL["kq"]]) * round(spec.n_heads / n_dev)
        cols = np.vstack([np.tile(row, (n_dev, 1)), np.zeros(len(row))])
        moe_cpu_layers = 0
    else:
        layer_dev = dev_of_unit[:L]
        cols = _one_hot(layer_dev, n_dev + 1) @ lt
        held = np.unique(tab.layer[tab.expert & (slot == n_dev) & (tab.layer < L)])
        moe_cpu_layers = int(np.count_nonzero(layer_dev[held] != n_dev))
    per = [dict(zip(_LAYER_COLS, map(float, c), strict=True)) for c in cols]
    window = int(spec.sliding_window or 0) if swa_applies else 0
    devices = tuple(DeviceLoad(
        gpu=g, decode_bytes=acc["dec"][i], all_bytes=acc["all"][i], kv_bytes_per_token=per[i]["kv"],
        swa_kv_bytes_per_token=per[i]["swa"], swa_window=window, state_bytes=per[i]["state"],
        layers=int(per[i]["layers"]), moe_layers=int(per[i]["moe"]), matrix_params=acc["params"][i],
        dense_flops=acc["dense"][i], expert_flops=acc["exp"][i],
        attn_flops_per_ctx=per[i]["attn"], swa_attn_flops_per_ctx=per[i]["swa_attn"], kq_heads=int(per[i]["kq"]),
        head_dim=spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim if spec.mla else spec.head_dim,
    ) for i, g in enumerate(gpus))
    host = None
    if acc["all"][n_dev] > 0:
        host = HostLoad(decode_bytes=acc["dec"][n_dev], all_bytes=acc["all"][n_dev],
                        bandwidth_gbs=host_bw_gbs or DEFAULT_HOST_BW_GBS, layers=int(per[n_dev]["layers"]),
                        moe_layers=moe_cpu_layers, kv_bytes_per_token=per[n_dev]["kv"])
    notes: list[str] = []
    if host is not None and host_bw_gbs is None:
        notes.append(f"host RAM bandwidth unknown: assumed {DEFAULT_HOST_BW_GBS:g} GB/s (dual-channel DDR5-4800; "
                     "--host-bandwidth sets it)")
    for g in gpus:
        if not g.known:
            notes.append(f"{g.name}: not in the GPU table; {g.source}")
    fmt = tab.matrix_type
    return SpeedInputs(runtime=runtime, devices=devices, weight_type=fmt, n_layers=L, hidden_size=spec.hidden_size,
                       host=host, split="tensor" if tensor_parallel else "layer", flash_attn=flash_attn,
                       n_ubatch=n_ubatch, n_batch=n_batch, moe_experts=moe.n_experts if moe else 0,
                       moe_used=moe.n_used if moe else 0, build=build, concurrency=concurrency, notes=tuple(notes))


_LAYER_COLS = ("kv", "swa", "state", "layers", "moe", "attn", "swa_attn", "kq")
_COL = {name: i for i, name in enumerate(_LAYER_COLS)}


@lru_cache(maxsize=256)
def _layer_table(spec: Any, swa_applies: bool, latent: bool, bytes_per_value: float) -> np.ndarray:
    """Per layer (rows) what it adds to the device holding it (`_LAYER_COLS`): KV bytes per token on
    full-attention and sliding-window layers, recurrent state bytes, 1 per layer and per MoE layer,
    attention FLOPs per token of context (full, SWA) and its heads (the KQ scores without FlashAttention)."""
    from lander_tui.core.model_spec import FULL, RECURRENT, SWA

    k_full, v_full = spec.kv_values_per_token(FULL, expanded_mla=bool(spec.mla) and not latent)
    kv = (k_full + v_full) * bytes_per_value
    if spec.mla and latent:
        qk = spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim
        attn = 2.0 * spec.n_heads * (qk + spec.mla.kv_lora_rank)
    else:
        attn = 2.0 * spec.n_heads * (spec.head_dim + spec.head_dim_v)
    state = (spec.recurrent.conv + spec.recurrent.ssm) * 4.0 if spec.recurrent else 0.0
    dense_layers = set(spec.moe.dense_layers) if spec.moe else set()
    rows = []
    for il, kind in enumerate(spec.kinds()):
        moe = 1.0 if spec.moe and il not in dense_layers else 0.0
        if kind == RECURRENT:
            rows.append((0.0, 0.0, state, 1.0, moe, 0.0, 0.0, 0.0))
        elif kind == SWA and swa_applies:
            rows.append((0.0, kv, 0.0, 1.0, moe, 0.0, attn, 0.0))
        else:
            rows.append((kv, 0.0, 0.0, 1.0, moe, attn, 0.0, float(spec.n_heads)))
    table = np.array(rows, dtype=float).reshape(-1, len(_LAYER_COLS))
    table.setflags(write=False)
    return table


@dataclass(frozen=True)
class _TensorTable:
    """Per-tensor numbers the seam aggregates per device, computed once per `WeightSet`."""

    layer: np.ndarray  # layer index, n_layers for the output layer (and a tied output's GPU copy)
    expert: np.ndarray  # routed-expert tensor
    nbytes: np.ndarray
    decode: np.ndarray  # bytes one token reads (experts: n_used / n_experts of them)
    dense_flops: np.ndarray  # per token, output matrix excluded (prompts compute one row of logits)
    expert_flops: np.ndarray
    params: np.ndarray  # matrix elements
    names: tuple[str, ...]
    matrix_type: str  # the storage type holding most matrix bytes (what prompt kernels run on)
    columns: np.ndarray  # decode, nbytes, dense_flops, expert_flops, params side by side (one matmul per plan)


def _one_hot(index: np.ndarray, n: int) -> np.ndarray:
    """An n x len(index) matrix with a 1 in row index[j] of column j: `_one_hot(i, n) @ x` sums the
    rows of x per index, like n bincounts at once."""
    out = np.zeros((n, len(index)))
    out[index, np.arange(len(index))] = 1.0
    return out


_TABLES: dict[int, tuple[Any, _TensorTable]] = {}


def _tensor_table(weights: Any, n_layers: int, used_frac: float) -> _TensorTable:
    hit = _TABLES.get(id(weights))
    if hit is not None and hit[0] is weights:
        return hit[1]
    rows = []
    by_type: dict[str, int] = {}
    for st in weights.tensors:
        t = st.tensor
        if t.name == "token_embd.weight":
            if weights.has("output.weight"):
                continue  # a row lookup per token; stays on the CPU
            t = replace(t, name="output.weight", layer=None)  # tied: the GPU copy is the output matrix
        expert = bool(t.n_experts)
        frac = used_frac if expert else 1.0
        flops = 0.0 if t.name.startswith("output") or not t.is_matrix else 2.0 * t.n_elements * frac
        rows.append((n_layers if t.layer is None else t.layer, expert, st.nbytes, st.nbytes * frac,
                     0.0 if expert else flops, flops if expert else 0.0, t.n_elements if t.is_matrix else 0, t.name))
        if t.is_matrix:
            by_type[st.dtype] = by_type.get(st.dtype, 0) + st.nbytes
    cols = list(zip(*rows, strict=True))
    nbytes, decode = np.array(cols[2], dtype=float), np.array(cols[3], dtype=float)
    dense, expert_f, params = (np.array(cols[i], dtype=float) for i in (4, 5, 6))
    table = _TensorTable(
        layer=np.array(cols[0], dtype=np.int64), expert=np.array(cols[1], dtype=bool),
        nbytes=nbytes, decode=decode, dense_flops=dense, expert_flops=expert_f, params=params, names=tuple(cols[7]),
        matrix_type=(max(by_type, key=lambda k: by_type[k]) if by_type else str(weights.quant)).upper(),
        columns=np.stack([decode, nbytes, dense, expert_f, params], axis=1))
    if len(_TABLES) > 64:
        _TABLES.clear()
    _TABLES[id(weights)] = (weights, table)  # holding the WeightSet keeps its id from being reused
    return table


def _override_mask(weights: Any, tab: _TensorTable, pattern: str) -> np.ndarray:
    import re

    rx = re.compile(pattern)
    return np.array([bool(rx.search(n)) for n in tab.names], dtype=bool)


def offload_step(spec: Any, weights: Any, gpus: list[GpuSpec], units: list[int | None] | None = None,
                 cpu_moe: int = 0, **kw: Any) -> SpeedInputs:
    """The same plan with one more step on the CPU: the next layer's experts (MoE, `--n-cpu-moe N+1`)
    or the next layer (`-ngl` one lower: llama.cpp offloads from the back, so the lowest GPU layer
    moves)."""
    L = spec.n_layers
    units = list(units) if units is not None else [0] * (L + 1)
    if spec.moe and cpu_moe < L:
        return speed_inputs(spec, weights, gpus, units=units, cpu_moe=cpu_moe + 1, **kw)
    first_gpu = next((i for i, u in enumerate(units[:L]) if u is not None), None)
    if first_gpu is not None:
        units[first_gpu] = None
    return speed_inputs(spec, weights, gpus, units=units, cpu_moe=cpu_moe, **kw)


# --- how to check it: the llama-bench line --------------------------------------------------------


def llama_bench_command(model_path: str, *, ngl: int | None = None, tensor_split: tuple[float, ...] = (),
                        cpu_moe: int = 0, cpu_override: str | None = None, flash_attn: bool | None = True,
                        n_ubatch: int | None = None, n_batch: int | None = None, prompt: int = 512,
                        gen: int = 128, depth: int = 0, kv_type: str = "f16") -> str:
    """The `llama-bench` line that measures what the estimate predicts. Flags as parsed by
    tools/llama-bench/llama-bench.cpp (ggml-org/llama.cpp @0104b151): `-ngl`, `-ts` with '/' between
    devices (',' would start a second test), `-ncmoe`/`--n-cpu-moe`, `-ot <regex>=CPU` (';' joins
    several, ',' starts another test), `-fa 1|0` (is_truthy/is_falsey), `-ub`, `-b`, `-p`, `-n`, `-d`
    (depth: tokens already in the cache before each test; llama-bench reports e.g. "tg128 @ d4096"),
    `-ctk`/`-ctv`. The prompt test reports prefill tok/s, the generation test decode tok/s."""
    import shlex

    parts = ["llama-bench", "-m", shlex.quote(model_path)]
    if ngl is not None:
        parts += ["-ngl", str(ngl)]
    if len(tensor_split) > 1:
        parts += ["-ts", "/".join(f"{x:g}" for x in tensor_split)]
    if cpu_moe:
        parts += ["--n-cpu-moe", str(cpu_moe)]
    if cpu_override:
        parts += ["-ot", shlex.quote(f"{cpu_override}=CPU")]
    if flash_attn is not None:
        parts += ["-fa", "1" if flash_attn else "0"]
    if n_batch is not None and n_batch != DEFAULT_N_BATCH:
        parts += ["-b", str(n_batch)]
    if n_ubatch is not None and n_ubatch != DEFAULT_N_UBATCH:
        parts += ["-ub", str(n_ubatch)]
    parts += ["-p", str(prompt), "-n", str(gen)]
    if depth:
        parts += ["-d", str(depth)]
    if kv_type.lower() != "f16":
        parts += ["-ctk", kv_type.lower(), "-ctv", kv_type.lower()]
    return " ".join(parts)
