"""Plans across several GPUs and the CPU: llama.cpp layer splits and offload, vLLM tensor parallel.

llama.cpp (`load_tensors` in src/llama-model.cpp): `n_layer + 1` offloadable units (the output
layer is the +1), offloaded from the back (`i_gpu_start = n_layer + 1 - ngl`), each unit on the
device whose cumulative `--tensor-split` share it falls in (default: proportional to free memory).
Each device holds its layers' weights and KV and a compute buffer; the logits phase only where the
output layer is. `token_embd` stays on the CPU. For MoE models `--cpu-moe` first moves every
expert tensor to the CPU. vLLM tensor parallel: weights and KV heads split per rank
(`max(1, kv_heads // tp)`, so KV heads are replicated past that), the MLA latent on every rank,
and each rank has its own fixed overheads and `total x utilization` budget.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.engines.llamacpp import LlamaCpp
from lander_tui.core.engines.vllm import Vllm
from lander_tui.core.errors import LanderError
from lander_tui.core.model_source import ResolvedModel
from lander_tui.core.model_spec import FULL, ModelSpec
from lander_tui.core.solver import max_fitting

#: Extra per-rank memory of NCCL and custom all-reduce buffers under tensor parallelism
#: (vLLM logs show non-torch memory growing to 1-2 GiB with TP; estimator-anchors §3.1).
VLLM_TP_COMM_MIB = 512.0
#: llama.cpp pipeline parallelism keeps GGML_SCHED_MAX_COPIES = 4 copies of the inputs per device.
LLAMACPP_PIPELINE_COPIES = 4


@dataclass(frozen=True)
class Device:
    """A GPU to plan for: what is free on it (MiB) and, when known, its total."""

    name: str
    free_mib: float
    total_mib: float | None = None


@dataclass(frozen=True)
class DeviceShare:
    name: str
    free_mib: float
    layers: tuple[int, int] | None  # [first, last] layer index held; None for TP ranks
    has_output: bool
    weights_mib: float
    kv_cache_mib: float
    compute_mib: float
    overhead_mib: float
    budget_mib: float

    @property
    def total_mib(self) -> float:
        return self.weights_mib + self.kv_cache_mib + self.compute_mib + self.overhead_mib

    @property
    def headroom_mib(self) -> float:
        return self.budget_mib - self.total_mib

    @property
    def fits(self) -> bool:
        return self.total_mib <= self.budget_mib


@dataclass(frozen=True)
class Plan:
    backend: str
    quant: str
    kv_cache: str
    context: int
    devices: tuple[DeviceShare, ...]
    n_layers: int
    gpu_layers: int  # offloaded units incl. output (llama.cpp -ngl); n_layers + 1 = everything
    cpu_moe: int = 0  # layers whose experts stay on the CPU (llama.cpp --n-cpu-moe N)
    tensor_split: tuple[float, ...] = ()
    tensor_parallel: int = 1
    host_mib: float = 0.0
    cpu_weights_mib: float = 0.0
    gpu_weights_mib: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    @property
    def fully_offloaded(self) -> bool:
        return self.gpu_layers >= self.n_layers + 1 and not self.cpu_moe

    def cpu_gpu_split(self) -> str:
        """Ollama's `ollama ps` wording: "100% GPU", "100% CPU" or "48%/52% CPU/GPU"."""
        total = self.cpu_weights_mib + self.gpu_weights_mib
        if total <= 0 or self.fully_offloaded:
            return "100% GPU"
        if self.gpu_weights_mib <= 0:
            return "100% CPU"
        cpu = round(self.cpu_weights_mib / total * 100)
        return f"{cpu}%/{100 - cpu}% CPU/GPU"

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "quant": self.quant, "kv_cache": self.kv_cache, "context": self.context,
            "fits": self.fits, "n_layers": self.n_layers, "gpu_layers": self.gpu_layers, "cpu_moe": self.cpu_moe,
            "tensor_split": [round(x, 3) for x in self.tensor_split], "tensor_parallel": self.tensor_parallel,
            "host_mib": round(self.host_mib, 2), "cpu_gpu": self.cpu_gpu_split(),
            "devices": [{"name": d.name, "free_mib": d.free_mib, "layers": d.layers, "has_output": d.has_output,
                         "weights_mib": round(d.weights_mib, 2), "kv_cache_mib": round(d.kv_cache_mib, 2),
                         "compute_mib": round(d.compute_mib, 2), "overhead_mib": round(d.overhead_mib, 2),
                         "total_mib": round(d.total_mib, 2), "headroom_mib": round(d.headroom_mib, 2),
                         "fits": d.fits} for d in self.devices],
            "notes": list(self.notes),
        }


# --- llama.cpp ---------------------------------------------------------------------------------


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


def llamacpp_plan(model: ResolvedModel, quant: str, kv_type: str, ctx: int, devices: list[Device],
                  opts: EngineOptions, ngl: int | None = None, split: tuple[float, ...] | None = None,
                  cpu_moe: int = 0, backend: str = "llama.cpp") -> Plan:
    eng = get_engine(backend)
    assert isinstance(eng, LlamaCpp)
    spec: ModelSpec = model.spec
    if not devices:
        raise LanderError("a plan needs at least one GPU")
    cal = eng.calibration(opts)
    kv, fa = eng.check(spec, kv_type, opts)
    w = eng.weights(model, quant)
    L = spec.n_layers
    ngl = L + 1 if ngl is None else max(0, min(ngl, L + 1))
    split = split or tuple(max(0.0, d.free_mib) for d in devices)
    units = layer_devices(L, ngl, split)
    geo = eng.geometry(np.array([ctx]), opts)
    per_kind = eng.kv_layer_bytes(spec, kv, geo)
    ph = eng.compute_phases(spec, kv, fa, geo, cal)
    kinds = spec.kinds()

    n = len(devices)
    wts, kvs = [0.0] * n, [0.0] * n
    embd_w = float(w.bytes_of("token_embd.weight"))  # always on the CPU; not counted in the CPU/GPU split
    cpu_w, cpu_kv = 0.0, 0.0
    tied = not w.has("output.weight")
    for st in w.tensors:
        t = st.tensor
        if t.name == "token_embd.weight":
            continue
        unit = t.layer if t.layer is not None else L  # output and output_norm ride with the output unit
        dev = units[unit]
        if dev is None or (t.layer is not None and t.layer < cpu_moe and "_exps" in t.name):
            cpu_w += st.nbytes
        else:
            wts[dev] += st.nbytes
    out_unit = units[L]
    if tied and out_unit is not None:
        wts[out_unit] += w.bytes_of("token_embd.weight")  # the duplicated output
    for il, kind in enumerate(kinds):
        b = float(per_kind[kind][0])
        dev = units[il]
        if dev is None:
            cpu_kv += b
        else:
            kvs[dev] += b
    out_dev = units[L]
    shares = []
    used = [i for i in range(n) if any(u == i for u in units)]
    for i, d in enumerate(devices):
        holds = [il for il in range(L) if units[il] == i]
        if out_dev == i:
            compute = max(float(ph["logits"][0]), float(ph["attention"][0]), float(ph["ffn"][0]))
        elif holds:
            compute = max(float(ph["attention"][0]), float(ph["ffn"][0]))
        else:
            compute = 0.0
        if len(used) > 1 and i in used and ngl >= L + 1:
            embd_in = spec.hidden_size * float(geo.n_ub[0]) * 4
            compute += (LLAMACPP_PIPELINE_COPIES - 1) * embd_in
        overhead = (cal.cuda_context_mib + cal.margin_mib) * MIB if i in used else 0.0
        shares.append(DeviceShare(
            name=d.name, free_mib=d.free_mib, layers=(holds[0], holds[-1]) if holds else None,
            has_output=out_dev == i, weights_mib=wts[i] / MIB, kv_cache_mib=kvs[i] / MIB,
            compute_mib=compute / MIB, overhead_mib=overhead / MIB, budget_mib=d.free_mib,
        ))
    host = embd_w + cpu_w + cpu_kv + float(ph["host"][0]) + spec.vocab_size * 4
    notes = []
    if ngl < L + 1 or cpu_moe:
        notes.append("layers and experts on the CPU run several times slower than on the GPU "
                     "(each token streams their weights from system RAM)")
    return Plan(backend=eng.name, quant=w.quant, kv_cache=kv_type, context=int(geo.n_ctx[0]), devices=tuple(shares),
                n_layers=L, gpu_layers=ngl, cpu_moe=cpu_moe, tensor_split=tuple(split), host_mib=host / MIB,
                cpu_weights_mib=cpu_w / MIB, gpu_weights_mib=sum(wts) / MIB, notes=tuple(notes))


def llamacpp_max_context(model: ResolvedModel, quant: str, kv_type: str, devices: list[Device],
                         opts: EngineOptions, split: tuple[float, ...] | None = None,
                         backend: str = "llama.cpp") -> int:
    """Longest context with every layer on the GPUs."""
    def over(ctx: np.ndarray) -> np.ndarray:
        return np.array([max(d.total_mib - d.budget_mib for d in
                             llamacpp_plan(model, quant, kv_type, int(c), devices, opts, split=split,
                                           backend=backend).devices) for c in ctx])
    return max_fitting(over, 0.0, get_engine(backend).granularity(opts), hi_tokens=1 << 22)


def llamacpp_best_offload(model: ResolvedModel, quant: str, kv_type: str, ctx: int, devices: list[Device],
                          opts: EngineOptions, split: tuple[float, ...] | None = None,
                          backend: str = "llama.cpp") -> Plan:
    """The most units on the GPUs at this context: full offload, else (MoE) experts to the CPU first,
    else the largest -ngl that fits. Returns a plan that fits, or the all-CPU plan."""
    full = llamacpp_plan(model, quant, kv_type, ctx, devices, opts, split=split, backend=backend)
    if full.fits:
        return full
    L = model.spec.n_layers
    if model.spec.moe and llamacpp_plan(model, quant, kv_type, ctx, devices, opts, split=split,
                                        cpu_moe=L, backend=backend).fits:
        lo_n, hi_n = 1, L  # fewest layers whose experts must stay on the CPU (--n-cpu-moe)
        while lo_n < hi_n:
            mid = (lo_n + hi_n) // 2
            if llamacpp_plan(model, quant, kv_type, ctx, devices, opts, split=split, cpu_moe=mid,
                             backend=backend).fits:
                hi_n = mid
            else:
                lo_n = mid + 1
        return llamacpp_plan(model, quant, kv_type, ctx, devices, opts, split=split, cpu_moe=lo_n, backend=backend)
    lo, hi = 0, L  # lo fits (0 layers always "fits" apart from the context), hi = L+1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if llamacpp_plan(model, quant, kv_type, ctx, devices, opts, ngl=mid, split=split, backend=backend).fits:
            lo = mid
        else:
            hi = mid - 1
    return llamacpp_plan(model, quant, kv_type, ctx, devices, opts, ngl=lo, split=split, backend=backend)


# --- vLLM tensor parallel -------------------------------------------------------------------------


def vllm_tp_plan(model: ResolvedModel, quant: str, kv_type: str, ctx: int, devices: list[Device],
                 opts: EngineOptions) -> Plan:
    tp = len(devices)
    spec = model.spec
    if spec.n_heads % tp:
        raise LanderError(f"--tensor-parallel-size {tp} must divide the {spec.n_heads} attention heads")
    eng = get_engine("vllm")
    assert isinstance(eng, Vllm)
    one = eng.memory(model, quant, kv_type, np.array([ctx]), opts)
    kv_heads_rank = max(1, spec.n_kv_heads // tp)
    kv_scale = 1.0 if spec.mla else kv_heads_rank / max(1, spec.n_kv_heads)
    kv_rank = float(one.kv[0]) * kv_scale
    act = float(one.compute[0])
    # hidden-size activations are replicated, intermediate ones split; the sampler stays whole
    act_rank = act / tp + act * (1 - 1 / tp) * 0.25
    overhead = float(one.overhead[0]) + (VLLM_TP_COMM_MIB * MIB if tp > 1 else 0.0)
    util = opts.gpu_memory_utilization
    shares = []
    for d in devices:
        budget = min(d.free_mib, d.total_mib * util) if d.total_mib else d.free_mib
        shares.append(DeviceShare(name=d.name, free_mib=d.free_mib, layers=None, has_output=True,
                                  weights_mib=one.weights / tp / MIB, kv_cache_mib=kv_rank / MIB,
                                  compute_mib=act_rank / MIB, overhead_mib=overhead / MIB, budget_mib=budget))
    notes = []
    if spec.n_kv_heads < tp and not spec.mla:
        notes.append(f"{spec.n_kv_heads} KV heads < TP {tp}: each rank keeps a replicated KV head")
    if spec.mla and tp > 1:
        notes.append("MLA: the latent KV cache is replicated on every rank")
    return Plan(backend="vllm", quant=quant, kv_cache=kv_type, context=int(ctx), devices=tuple(shares),
                n_layers=spec.n_layers, gpu_layers=spec.n_layers + 1, tensor_parallel=tp, notes=tuple(notes),
                gpu_weights_mib=one.weights / MIB)


def vllm_tp_max_context(model: ResolvedModel, quant: str, kv_type: str, devices: list[Device],
                        opts: EngineOptions) -> int:
    def over(ctx: np.ndarray) -> np.ndarray:
        return np.array([max(d.total_mib - d.budget_mib for d in
                             vllm_tp_plan(model, quant, kv_type, int(c), devices, opts).devices) for c in ctx])
    return max_fitting(over, 0.0, opts.block_size, hi_tokens=1 << 22)


def plan_for(model: ResolvedModel, backend: str, quant: str, kv_type: str, devices: list[Device],
             opts: EngineOptions, context: int | None = None, split: tuple[float, ...] | None = None) -> Plan:
    """The plan a user gets: at `context`, or the longest that fits everything on the GPUs up to the
    model's trained maximum (engines refuse or warn past it, so a launch plan stops there)."""
    name = get_engine(backend).name
    cap = model.spec.max_context
    if name in ("llama.cpp", "ollama"):
        ctx = context or min(cap, llamacpp_max_context(model, quant, kv_type, devices, opts, split, backend=name))
        if ctx <= 0:
            ctx = min(cap, 4096)
        return llamacpp_best_offload(model, quant, kv_type, ctx, devices, opts, split, backend=name)
    if name == "vllm":
        ctx = context or min(cap, vllm_tp_max_context(model, quant, kv_type, devices, opts))
        return vllm_tp_plan(model, quant, kv_type, max(ctx, opts.block_size), devices, opts)
    raise LanderError("multi-GPU plans cover llama.cpp, Ollama and vLLM; Transformers spreads layers with "
                      "device_map='auto' (plan it per GPU)")


__all__ = ["FULL", "Device", "DeviceShare", "Plan", "layer_devices", "llamacpp_best_offload",
           "llamacpp_max_context", "llamacpp_plan", "plan_for", "vllm_tp_max_context", "vllm_tp_plan"]
