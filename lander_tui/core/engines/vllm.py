"""vLLM GPU memory: a budget of `total x gpu_memory_utilization`, and the KV cache gets the rest.

vLLM sizes itself, not the model: it takes `total_memory x gpu_memory_utilization` (a fraction of
*total*, default 0.9; newer releases 0.92), subtracts the weights, the activation peak of a dummy
forward of `max_num_batched_tokens`, non-torch memory and the CUDA-graph estimate, and fills the
rest with 16-token KV blocks. A context fits when one request of that length fits in those blocks;
"maximum concurrency" is how many such requests fit at once (vllm/v1/core/kv_cache_utils.py).
Tensor parallel: weights and KV heads split per rank (`max(1, kv_heads // tp)`, so KV heads are
replicated past that), the MLA latent on every rank, and each rank has its own fixed overheads and
`total x utilization` budget.
Sources: shared/research/estimator-anchors.md §3.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lander_tui.core.engines.base import Budget, Calibration, Engine, EngineOptions, Footprint, FootprintFn, pad
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import kv_bytes_per_value, torch_dtype_format
from lander_tui.core.memory import MIB, Breakdown, MemoryParts
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.plan import DeviceShare, Plan
from lander_tui.core.weights import WeightSet, hf_format, hf_weights

#: Extra per-rank memory of NCCL and custom all-reduce buffers under tensor parallelism. vLLM PR #10511's
#: profiling sample (Meta-Llama-3-8B, H100) shows non-torch memory going from 1.79 GiB at TP 1 to 3.58 GiB
#: at TP 2; newer releases use less, so we take about half of that step.
TP_COMM_MIB = 1024.0
_QUANT_FLAG = {"AWQ": "awq", "GPTQ": "gptq", "FP8": "fp8", "NF4": "bitsandbytes"}


@dataclass(frozen=True)
class VllmCalibration(Calibration):
    #: Non-torch memory: CUDA context growth, cuBLAS workspace (vLLM logs on one GPU: 0.09-0.2 GiB in
    #: V1 releases, 1.79 GiB in the PR #10511 sample for Llama-3-8B on an H100).
    non_torch_mib: float = 512.0
    #: CUDA-graph memory, reserved inside the budget since v0.21 ("measured 0.26-0.6 GiB in logs").
    cuda_graph_mib: float = 512.0
    #: Activation peak of the profiling forward, per batched token, in hidden-size units (f16/bf16):
    #: hidden, residual, qkv and attention output. With the two below this gives 1.28 GiB for
    #: Llama-3-8B at 8192 tokens; vLLM PR #10511 logged "PyTorch activation peak memory 1.26GiB".
    act_hidden_tensors: float = 6.0
    #: ... and in intermediate-size units (gate/up and the activated product).
    act_ff_tensors: float = 3.0
    #: Sampler rows of logits (f32) and probabilities kept during profiling, per sequence.
    sampler_logit_copies: float = 2.0


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

    def granularity(self, opts: EngineOptions) -> int:
        return opts.block_size

    def check_quant(self, quant: str) -> None:
        hf_format(quant)

    def check_kv(self, kv: str) -> None:
        kv_bytes_per_value(kv, ("F16", "BF16", "fp8", "F32"), "vLLM")

    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        return hf_weights(model.spec, quant)

    def default_quant(self, model: ResolvedModel) -> str:
        return torch_dtype_format(model.spec.torch_dtype)

    def budget(self, devices: Sequence[Device], opts: EngineOptions) -> Budget:
        """`total x utilization` on each GPU. vLLM refuses to start if that much is not free, so when
        less is free the rows are planned at the utilization that does fit, and a note says which."""
        util = opts.gpu_memory_utilization
        if not all(d.total_mib for d in devices):
            return Budget(tuple(d.free_mib * MIB for d in devices))
        need = [d.total_mib * util for d in devices if d.total_mib]
        if all(n <= d.free_mib for n, d in zip(need, devices, strict=True)):
            return Budget(tuple(n * MIB for n in need), settings={"gpu_memory_utilization": util})
        fit = min(fitting_utilization(d.free_mib, d.total_mib) for d in devices if d.total_mib)
        free = sum(d.free_mib for d in devices)
        note = (f"vLLM needs {sum(need):,.0f} MiB free at --gpu-memory-utilization {util}; only "
                f"{free:,.0f} MiB is: planned at --gpu-memory-utilization {fit:.3f}")
        return Budget(tuple(d.total_mib * fit * MIB for d in devices if d.total_mib), (note,),
                      {"gpu_memory_utilization": fit})

    def memory(self, model: ResolvedModel, quant: str, kv_type: str, ctx: np.ndarray,
               opts: EngineOptions) -> Breakdown:
        """Everything on one GPU, bytes."""
        spec: ModelSpec = model.spec
        cal = VllmCalibration().with_overrides(opts.overrides)
        assert isinstance(cal, VllmCalibration)
        kvb = kv_bytes_per_value(kv_type, ("F16", "BF16", "fp8", "F32"), "vLLM")  # auto = the model dtype
        w = self.weights(model, quant)
        weights = float(w.total_bytes)
        ctx = np.asarray(ctx, dtype=np.int64)
        block = opts.block_size
        n_req = opts.n_parallel or 1
        k_vals, v_vals = spec.kv_values_per_token()
        page = block * (k_vals + v_vals) * kvb  # bytes of one block of one layer
        T = opts.max_num_batched_tokens
        n_full, n_swa, n_rec = spec.layer_counts()
        kv = ((-(-ctx // block)) * page * n_full).astype(np.float64)
        if n_swa:
            blocks = -(-np.minimum((spec.sliding_window or 1) - 1 + T, ctx) // block) + 1
            kv = kv + n_swa * blocks * page
        if n_rec and spec.recurrent:
            kv = kv + n_rec * 2 * (spec.recurrent.conv + spec.recurrent.ssm) * kvb  # 'align' mode: 2 pages
        kv = kv * n_req
        ff = spec.active_ff
        act = T * (cal.act_hidden_tensors * spec.hidden_size + cal.act_ff_tensors * ff) * 2 \
            + opts.max_num_seqs * spec.vocab_size * 4 * cal.sampler_logit_copies
        graphs = cal.cuda_graph_mib * MIB if opts.cuda_graphs else 0.0
        overhead = np.full(ctx.shape, cal.non_torch_mib * MIB + graphs)
        return Breakdown(weights, kv, np.full(ctx.shape, float(act)), overhead, np.zeros(ctx.shape),
                         {"cuda_graphs": np.full(ctx.shape, graphs),
                          "non_torch": np.full(ctx.shape, cal.non_torch_mib * MIB)},
                         context=pad(ctx, block))

    def rank(self, model: ResolvedModel, quant: str, kv_type: str, ctx: np.ndarray, tp: int,
             opts: EngineOptions) -> Breakdown:
        """One tensor-parallel rank at each context, bytes (all ranks are alike)."""
        spec = model.spec
        if spec.n_heads % tp:
            raise LanderError(f"--tensor-parallel-size {tp} must divide the {spec.n_heads} attention heads")
        one = self.memory(model, quant, kv_type, ctx, opts)
        if tp == 1:
            return one
        kv_scale = 1.0 if spec.mla else max(1, spec.n_kv_heads // tp) / max(1, spec.n_kv_heads)
        act = np.asarray(one.compute)
        # intermediate-size activations split across ranks; hidden-size ones and the sampler do not
        act_rank = act / tp + act * (1 - 1 / tp) * 0.25
        return replace(one, weights=np.full(act.shape, one.weights / tp), kv=np.asarray(one.kv) * kv_scale,
                       compute=act_rank, overhead=np.asarray(one.overhead) + TP_COMM_MIB * MIB)

    def footprint(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                  opts: EngineOptions) -> FootprintFn:
        tp = len(devices)

        def at(ctx: np.ndarray) -> Footprint:
            r = self.rank(model, quant, kv, np.asarray(ctx), tp, opts)
            one = MemoryParts(r.weights, r.kv, r.compute, r.overhead, 0.0, r.detail)
            return Footprint(np.asarray(r.context), (one,) * tp, r.host)

        return at

    def plan(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
             budget: Budget, opts: EngineOptions) -> Plan:
        base = super().plan(model, quant, kv, ctx, devices, budget, opts)
        spec, tp = model.spec, len(devices)
        notes = []
        if spec.n_kv_heads < tp and not spec.mla:
            notes.append(f"{spec.n_kv_heads} KV heads < TP {tp}: each rank keeps a replicated KV head")
        if spec.mla and tp > 1:
            notes.append("MLA: the latent KV cache is replicated on every rank")
        util = self.launch_utilization(base, devices, opts)
        notes.append(f"vLLM takes {util:g} of each GPU's memory at start (--gpu-memory-utilization)")
        return replace(base, notes=tuple(notes), settings={"gpu_memory_utilization": util})

    @staticmethod
    def launch_utilization(plan: Plan, devices: Sequence[Device], opts: EngineOptions) -> float:
        """vLLM takes `utilization x total` on each GPU at start (and refuses to start unless that much
        is free), then fits its KV cache in what is left: the configured value when that much is in the
        plan's budget on every GPU, else just enough for the plan (others hold the rest)."""
        configured = opts.gpu_memory_utilization
        pairs = [(share, d.total_mib) for share, d in zip(plan.devices, devices, strict=True) if d.total_mib]
        if not pairs or all(configured * total <= share.budget_mib for share, total in pairs):
            return configured
        need = max(share.total_mib / total for share, total in pairs)
        return min(configured, max(0.05, math.ceil(need * 1000) / 1000))

    def capacity(self, model: ResolvedModel, quant: str, kv: str, ctx: int, footprint_mib: Sequence[MemoryParts],
                 budget: Budget, opts: EngineOptions) -> dict[str, float]:
        """How many requests of this context the KV blocks hold at once (the least on any rank)."""
        out = []
        for part, b in zip(footprint_mib, budget.per_device, strict=True):
            fixed = part.weights + part.compute + part.overhead
            per_req = part.kv / max(1, opts.n_parallel or 1)
            if not per_req:
                return {}
            out.append(max(0.0, (b / MIB - fixed) / per_req))
        return {"max_concurrency": min(out)}

    def startup_need_mib(self, share: DeviceShare, device: Device, plan: Plan) -> float:
        util = plan.settings.get("gpu_memory_utilization")
        return util * device.total_mib if util is not None and device.total_mib else share.total_mib

    def launch_command(self, model_ref: str, plan: Plan, opts: EngineOptions) -> str:
        util = plan.settings.get("gpu_memory_utilization", opts.gpu_memory_utilization)
        args = ["vllm", "serve", model_ref, "--max-model-len", str(plan.context),
                "--gpu-memory-utilization", f"{util:g}"]
        if plan.kv_cache not in ("auto", "bf16", "f16"):
            args += ["--kv-cache-dtype", plan.kv_cache]
        if plan.tensor_parallel > 1:
            args += ["--tensor-parallel-size", str(plan.tensor_parallel)]
        q = _QUANT_FLAG.get(plan.quant.split("-")[0].upper())
        if q:
            args += ["--quantization", q]
        return shlex.join(args)
