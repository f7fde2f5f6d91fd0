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
from lander_tui.core.solver import max_fitting

#: Extra per-rank memory of NCCL and custom all-reduce buffers under tensor parallelism. vLLM PR #10511's
#: profiling sample (Meta-Llama-3-8B, H100) shows non-torch memory going from 1.79 GiB at TP 1 to 3.58 GiB
#: at TP 2; newer releases use less, so we take about half of that step.
VLLM_TP_COMM_MIB = 1024.0
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


@dataclass(frozen=True)
class _Layout:
    """Where every weight and layer of a llama.cpp model goes; independent of the context length."""

    units: list[int | None]
    weights: list[float]  # bytes per device
    kinds: list[dict[str, int]]  # per device: layer kind -> count (for the KV)
    cpu_kinds: dict[str, int]
    cpu_weights: float  # bytes of layers/experts on the CPU (token_embd excluded)
    embd: float
    out_dev: int | None
    used: list[int]


def _layout(eng: LlamaCpp, model: ResolvedModel, quant: str, n_dev: int, ngl: int,
            split: tuple[float, ...], cpu_moe: int) -> _Layout:
    spec, w, L = model.spec, eng.weights(model, quant), model.spec.n_layers
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
    return _Layout(units, wts, kinds, cpu_kinds, cpu_w, float(w.bytes_of("token_embd.weight")), out_dev, used)


def _device_totals(eng: LlamaCpp, model: ResolvedModel, kv_type: str, lay: _Layout, ctx: np.ndarray,
                   opts: EngineOptions) -> dict[str, np.ndarray]:
    """Per-device weights/kv/compute/overhead in bytes, shape (devices, contexts): one vectorised pass."""
    spec = model.spec
    cal = eng.calibration(opts)
    kv, fa = eng.check(spec, kv_type, opts)
    geo = eng.geometry(ctx, opts)
    per_kind = eng.kv_layer_bytes(spec, kv, geo)
    ph = eng.compute_phases(spec, kv, fa, geo, cal)
    n, m = len(lay.weights), geo.n_ctx.shape[0]
    kvs = np.zeros((n, m))
    compute = np.zeros((n, m))
    overhead = np.zeros((n, m))
    layer_phase = np.maximum(ph["attention"], ph["ffn"])
    pipelined = len(lay.used) > 1 and all(u is not None for u in lay.units)
    for i in range(n):
        for kind, count in lay.kinds[i].items():
            kvs[i] += per_kind[kind] * count
        if lay.out_dev == i:
            compute[i] = np.maximum(ph["logits"], layer_phase)
        elif lay.kinds[i]:
            compute[i] = layer_phase
        if pipelined and i in lay.used:
            compute[i] += (LLAMACPP_PIPELINE_COPIES - 1) * spec.hidden_size * geo.n_ub * 4
        if i in lay.used:
            overhead[i] = cal.device_overhead_mib() * MIB
    cpu_kv = sum((per_kind[k] * c for k, c in lay.cpu_kinds.items()), np.zeros(m))
    host = lay.embd + lay.cpu_weights + cpu_kv + ph["host"] + spec.vocab_size * 4
    weights = np.repeat(np.asarray(lay.weights)[:, None], m, axis=1)
    return {"weights": weights, "kv": kvs, "compute": compute, "overhead": overhead, "host": host,
            "n_ctx": geo.n_ctx}


def llamacpp_plan(model: ResolvedModel, quant: str, kv_type: str, ctx: int, devices: list[Device],
                  opts: EngineOptions, ngl: int | None = None, split: tuple[float, ...] | None = None,
                  cpu_moe: int = 0, backend: str = "llama.cpp") -> Plan:
    eng = get_engine(backend)
    assert isinstance(eng, LlamaCpp)
    if not devices:
        raise LanderError("a plan needs at least one GPU")
    L = model.spec.n_layers
    ngl = L + 1 if ngl is None else max(0, min(ngl, L + 1))
    split = split or opts.tensor_split or tuple(max(0.0, d.free_mib) for d in devices)
    lay = _layout(eng, model, quant, len(devices), ngl, split, cpu_moe)
    tot = _device_totals(eng, model, kv_type, lay, np.array([ctx]), opts)
    shares = []
    for i, d in enumerate(devices):
        holds = [il for il in range(L) if lay.units[il] == i]
        shares.append(DeviceShare(
            name=d.name, free_mib=d.free_mib, layers=(holds[0], holds[-1]) if holds else None,
            has_output=lay.out_dev == i, weights_mib=float(tot["weights"][i, 0]) / MIB,
            kv_cache_mib=float(tot["kv"][i, 0]) / MIB, compute_mib=float(tot["compute"][i, 0]) / MIB,
            overhead_mib=float(tot["overhead"][i, 0]) / MIB, budget_mib=d.free_mib,
        ))
    notes = []
    if ngl < L + 1 or cpu_moe:
        notes.append("layers and experts on the CPU run several times slower than on the GPU "
                     "(each token streams their weights from system RAM)")
    return Plan(backend=eng.name, quant=eng.weights(model, quant).quant, kv_cache=kv_type,
                context=int(tot["n_ctx"][0]), devices=tuple(shares), n_layers=L, gpu_layers=ngl, cpu_moe=cpu_moe,
                tensor_split=tuple(split), host_mib=float(tot["host"][0]) / MIB,
                cpu_weights_mib=lay.cpu_weights / MIB, gpu_weights_mib=sum(lay.weights) / MIB, notes=tuple(notes))


def llamacpp_max_context(model: ResolvedModel, quant: str, kv_type: str, devices: list[Device],
                         opts: EngineOptions, split: tuple[float, ...] | None = None,
                         backend: str = "llama.cpp") -> int:
    """Longest context with every layer on the GPUs (0 if the weights alone do not fit)."""
    eng = get_engine(backend)
    assert isinstance(eng, LlamaCpp)
    split = split or opts.tensor_split or tuple(max(0.0, d.free_mib) for d in devices)
    lay = _layout(eng, model, quant, len(devices), model.spec.n_layers + 1, split, 0)
    budgets = np.array([d.free_mib * MIB for d in devices])[:, None]

    def over(ctx: np.ndarray) -> np.ndarray:
        t = _device_totals(eng, model, kv_type, lay, np.asarray(ctx), opts)
        return np.max(t["weights"] + t["kv"] + t["compute"] + t["overhead"] - budgets, axis=0)

    return max_fitting(over, 0.0, eng.granularity(opts))


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


def _tp_rank(model: ResolvedModel, quant: str, kv_type: str, ctx: np.ndarray, tp: int,
             opts: EngineOptions) -> dict[str, np.ndarray]:
    """One rank's weights/kv/compute/overhead in bytes at each context (all ranks are alike)."""
    spec = model.spec
    if spec.n_heads % tp:
        raise LanderError(f"--tensor-parallel-size {tp} must divide the {spec.n_heads} attention heads")
    eng = get_engine("vllm")
    assert isinstance(eng, Vllm)
    one = eng.memory(model, quant, kv_type, ctx, opts)
    kv_scale = 1.0 if spec.mla else max(1, spec.n_kv_heads // tp) / max(1, spec.n_kv_heads)
    act = np.asarray(one.compute)
    # intermediate-size activations split across ranks; hidden-size ones and the sampler do not
    act_rank = act / tp + act * (1 - 1 / tp) * 0.25
    return {"weights": np.full(act.shape, one.weights / tp), "kv": np.asarray(one.kv) * kv_scale,
            "compute": act_rank,
            "overhead": np.asarray(one.overhead) + (VLLM_TP_COMM_MIB * MIB if tp > 1 else 0.0)}


def _tp_budget(d: Device, opts: EngineOptions) -> float:
    return min(d.free_mib, d.total_mib * opts.gpu_memory_utilization) if d.total_mib else d.free_mib


def vllm_tp_plan(model: ResolvedModel, quant: str, kv_type: str, ctx: int, devices: list[Device],
                 opts: EngineOptions) -> Plan:
    tp, spec = len(devices), model.spec
    r = {k: float(v[0]) / MIB for k, v in _tp_rank(model, quant, kv_type, np.array([ctx]), tp, opts).items()}
    shares = tuple(DeviceShare(name=d.name, free_mib=d.free_mib, layers=None, has_output=True,
                               weights_mib=r["weights"], kv_cache_mib=r["kv"], compute_mib=r["compute"],
                               overhead_mib=r["overhead"], budget_mib=_tp_budget(d, opts)) for d in devices)
    notes = []
    if spec.n_kv_heads < tp and not spec.mla:
        notes.append(f"{spec.n_kv_heads} KV heads < TP {tp}: each rank keeps a replicated KV head")
    if spec.mla and tp > 1:
        notes.append("MLA: the latent KV cache is replicated on every rank")
    return Plan(backend="vllm", quant=quant, kv_cache=kv_type, context=int(ctx), devices=shares,
                n_layers=spec.n_layers, gpu_layers=spec.n_layers + 1, tensor_parallel=tp, notes=tuple(notes),
                gpu_weights_mib=r["weights"] * tp)


def vllm_tp_max_context(model: ResolvedModel, quant: str, kv_type: str, devices: list[Device],
                        opts: EngineOptions) -> int:
    budget = min(_tp_budget(d, opts) for d in devices) * MIB

    def total(ctx: np.ndarray) -> np.ndarray:
        t = _tp_rank(model, quant, kv_type, np.asarray(ctx), len(devices), opts)
        return t["weights"] + t["kv"] + t["compute"] + t["overhead"]

    return max_fitting(total, budget, opts.block_size)


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


__all__ = ["Device", "DeviceShare", "Plan", "layer_devices", "llamacpp_best_offload",
           "llamacpp_max_context", "llamacpp_plan", "plan_for", "vllm_tp_max_context", "vllm_tp_plan"]
