"""SGLang: weights plus a token pool sized by `--mem-fraction-static`, written as a plugin would be.

SGLang measures the memory free after CUDA starts (`total_gpu_memory` in `ModelRunner.init_memory_pool`),
loads the weights, and gives the KV token pool what is left of `free x mem_fraction_static`
(`profile_max_num_token`, python/sglang/srt/model_executor/model_runner.py):

    rest_memory = available_after_weights - total_gpu_memory * (1 - mem_fraction_static)
    max_total_num_tokens = rest_memory // cell_size

with `cell_size = kv_heads_per_rank x head_dim x layers x 2 x dtype bytes` (MLA: the latent,
`(kv_lora_rank + qk_rope_head_dim) x layers x dtype bytes`). The other `1 - mem_fraction_static`
is left for activations of a chunked prefill and CUDA graphs. A request fits when its context fits
in the pool; the default `mem_fraction_static` comes from the GPU's memory and the TP size
(`ServerArgs._handle_gpu_memory_settings`, python/sglang/srt/server_args.py, 2026):

    reserved MB = 512 + max(chunked_prefill_size, 2048) x 1.5 + cuda_graph_max_bs x 2 + tp x pp / 8 x 1024
                  (at least 10 GiB on GPUs over 60 GB)
    mem_fraction_static = round((gpu_mem - reserved) / gpu_mem, 3)

This module answers every engine question for SGLang and touches nothing else in lander-tui.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lander_tui.core.engines.base import Budget, Calibration, Engine, EngineOptions, Footprint, FootprintFn, pad
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import kv_bytes_per_value
from lander_tui.core.memory import MIB, Breakdown, MemoryParts
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.plan import Plan
from lander_tui.core.weights import WeightSet, hf_format, hf_weights, shard_bytes

GIB = 1024**3
#: (GPU memory below MiB, chunked_prefill_size, cuda_graph_max_bs at TP < 4, at TP >= 4), from
#: `_handle_gpu_memory_settings` (an L40S, 44.5 GiB, logs 4096 and 32); above the last row: 16384 and 512.
GPU_CLASSES = (
    (20 * 1024, 2048, 8, 8),  # T4, RTX 4080
    (35 * 1024, 2048, 24, 80),  # A10, RTX 4090/5090
    (60 * 1024, 4096, 32, 160),  # A100 40GB, L40
    (90 * 1024, 8192, 256, 512),  # H100, A100 80GB
    (160 * 1024, 8192, 256, 512),  # H20, H200
)
_QUANT_FLAG = {"AWQ": "awq", "GPTQ": "gptq", "FP8": "fp8", "NF4": "bitsandbytes"}


@dataclass(frozen=True)
class SGLangCalibration(Calibration):
    #: Memory CUDA and torch take before SGLang measures what is free (`total_gpu_memory`): an L40S
    #: with 44.52 GiB logged 40.99 GiB free after 3.03 GiB of weights (tests/data/ground-truth/wild,
    #: vllm-sglang-106), so about 0.5 GiB went before the measurement.
    cuda_context_mib: float = 512.0
    #: ... per rank with tensor parallelism (NCCL communicators, custom all-reduce buffers): the one
    #: TP record with a stated GPU (Qwen3-235B-A22B-FP8, 4x H100, mem_fraction_static 0.93,
    #: vllm-sglang-002) implies 2.3 GiB. Fitted on that record alone.
    tp_context_mib: float = 2.3 * 1024
    #: `--mem-fraction-static`; 0 = SGLang's own default for the GPU's size and the TP size.
    mem_fraction_static: float = 0.0

    def context_mib(self, tp: int) -> float:
        return self.tp_context_mib if tp > 1 else self.cuda_context_mib


def default_settings(gpu_mib: float, tp: int, speculative: bool = False) -> tuple[int, int, float]:
    """(chunked_prefill_size, cuda_graph_max_bs, mem_fraction_static) SGLang picks for a GPU of this size."""
    chunk, graphs = 16384, 512
    for below, c, small_tp, big_tp in GPU_CLASSES:
        if gpu_mib < below:
            chunk, graphs = c, small_tp if tp < 4 else big_tp
            break
    reserved = 512 + max(chunk, 2048) * 1.5 + graphs * 2 + tp / 8 * 1024
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if speculative:
        reserved += 2 * 1024  # an EAGLE draft model and its CUDA graphs
    return chunk, graphs, round((gpu_mib - reserved) / gpu_mib, 3)


class SGLang(Engine):
    name = "sglang"
    label = "SGLang"
    order = 40
    command_name = "sglang.launch_server"
    parallel_help = "SGLang requests at once, each up to the full context (max ctx is per request)"
    quants = ("BF16", "FP8", "AWQ")
    kv_types = ("auto", "fp8")
    kv_cycle = ("", "auto", "fp8")
    splits_across_gpus = True
    builtin = True

    def granularity(self, opts: EngineOptions) -> int:
        return 1  # the pool counts tokens (page size 1 by default)

    def calibration(self, opts: EngineOptions) -> SGLangCalibration:
        return SGLangCalibration().with_overrides(opts.overrides)  # type: ignore[return-value]

    def check_quant(self, quant: str) -> None:
        hf_format(quant)

    def check_kv(self, kv: str) -> None:
        kv_bytes_per_value(kv, ("F16", "BF16", "fp8", "F32"), "SGLang")

    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        return hf_weights(model.spec, quant)

    def mem_fraction_static(self, device: Device, tp: int, opts: EngineOptions) -> float:
        """The user's `--mem-fraction-static` (`--set mem_fraction_static=F`), else SGLang's default."""
        given = self.calibration(opts).mem_fraction_static
        if given:
            if not 0.05 <= given < 1.0:
                raise LanderError("mem_fraction_static must be between 0.05 and 1")
            return given
        return default_settings(device.total_mib or device.free_mib, tp)[2]

    def cell_bytes(self, model: ResolvedModel, kv: str, tp: int) -> float:
        """KV bytes of one token in the pool, on one rank."""
        spec = model.spec
        if kv.lower() == "auto":  # the model's dtype
            kv = {"float32": "f32", "float16": "f16"}.get(str(spec.torch_dtype), "bf16")
        per_value = kv_bytes_per_value(kv, ("F16", "BF16", "fp8", "F32"), "SGLang")
        if spec.mla:
            return (spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim) * spec.n_layers * per_value
        if spec.n_kv_heads < tp and tp % spec.n_kv_heads == 0:
            heads = 1  # get_num_kv_heads: each rank keeps one replicated head
        else:
            heads = max(1, spec.n_kv_heads // tp)
        return heads * (spec.head_dim + spec.head_dim_v) * spec.n_layers * per_value

    def footprint(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                  opts: EngineOptions) -> FootprintFn:
        """Per rank: the weights, the pool tokens a context takes, the `1 - mem_fraction_static` share
        kept for activations and CUDA graphs, and the CUDA context."""
        tp = len(devices)
        spec = model.spec
        if spec.n_heads % tp:
            raise LanderError(f"--tp-size {tp} must divide the {spec.n_heads} attention heads")
        cal = self.calibration(opts)
        weights = shard_bytes(spec, self.weights(model, quant), tp)
        cell = self.cell_bytes(model, kv, tp)
        ctx_bytes = cal.context_mib(tp) * MIB
        free = min(d.free_mib for d in devices) * MIB
        reserve = max(0.0, free - ctx_bytes) * (1 - self.mem_fraction_static(devices[0], tp, opts))
        n_req = opts.n_parallel or 1

        def at(ctx: np.ndarray) -> Footprint:
            ctx = np.asarray(ctx, dtype=np.int64)
            shape = ctx.shape
            one = MemoryParts(np.full(shape, weights), (ctx * cell * n_req).astype(np.float64),
                              np.full(shape, reserve), np.full(shape, ctx_bytes), 0.0,
                              {"cuda_context": np.full(shape, ctx_bytes),
                               "activations_and_graphs": np.full(shape, reserve)})
            return Footprint(pad(ctx, 1), (one,) * tp, np.zeros(shape))

        return at

    def memory(self, model: ResolvedModel, quant: str, kv: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown:
        fp = self.footprint(model, quant, kv, [Device("GPU", 80 * 1024.0, 80 * 1024.0)], opts)(np.asarray(ctx))
        d = fp.devices[0]
        return Breakdown(d.weights, d.kv, d.compute, d.overhead, fp.host, d.detail, context=fp.context)

    def capacity(self, model: ResolvedModel, quant: str, kv: str, ctx: int, footprint_mib: Sequence[MemoryParts],
                 budget: Budget, opts: EngineOptions) -> dict[str, float]:
        """The token pool (`max_total_num_tokens`) and how many requests of this context it holds."""
        part, b = footprint_mib[0], budget.per_device[0] / MIB
        pool_mib = max(0.0, b - part.weights - part.compute - part.overhead)
        tokens = int(pool_mib * MIB // self.cell_bytes(model, kv, len(footprint_mib)))
        return {"kv_capacity_mib": pool_mib, "kv_capacity_tokens": float(tokens),
                "max_concurrency": tokens / (ctx * (opts.n_parallel or 1))}

    def plan(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
             budget: Budget, opts: EngineOptions) -> Plan:
        base = super().plan(model, quant, kv, ctx, devices, budget, opts)
        return replace(base, settings={"mem_fraction_static": self.mem_fraction_static(devices[0], len(devices), opts)})

    def launch_command(self, model_ref: str, plan: Plan, opts: EngineOptions) -> str:
        args = ["python", "-m", "sglang.launch_server", "--model-path", model_ref,
                "--context-length", str(plan.context)]
        mfs = plan.settings.get("mem_fraction_static")
        if mfs is not None:
            args += ["--mem-fraction-static", f"{mfs:g}"]
        if plan.tensor_parallel > 1:
            args += ["--tp-size", str(plan.tensor_parallel)]
        if plan.kv_cache.lower() not in ("auto", "bf16", "f16"):
            args += ["--kv-cache-dtype", "fp8_e4m3" if plan.kv_cache.lower() == "fp8" else plan.kv_cache]
        q = _QUANT_FLAG.get(plan.quant.split("-")[0].upper())
        if q:
            args += ["--quantization", q]
        return shlex.join(args)

