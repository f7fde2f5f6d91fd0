"""One estimate: a model, a memory budget and an engine in; a row per quant x KV type out.

This is the single entry point the CLI and the dashboard share. Every row carries the longest
context that fits (next to the model's trained maximum, never capped to it), the memory of every
part at the reported context, and whether it fits; the estimate recommends one row and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import kv_cache_type, weight_format
from lander_tui.core.model_source import ResolvedModel
from lander_tui.core.solver import curve_points, max_fitting

DEFAULT_QUANTS = {
    "llama.cpp": ("Q4_K_M", "Q6_K", "Q8_0"),
    "ollama": ("Q4_K_M", "Q6_K", "Q8_0"),
    "vllm": ("BF16", "FP8", "AWQ"),
    "transformers": ("BF16", "NF4"),
}
DEFAULT_KV = {
    "llama.cpp": ("f16", "q8_0"),
    "ollama": ("f16", "q8_0"),
    "vllm": ("auto", "fp8"),
    "transformers": ("bf16",),
}


@dataclass(frozen=True)
class EstimateRequest:
    model: ResolvedModel
    backend: str = "llama.cpp"
    quants: tuple[str, ...] = ()
    kv_types: tuple[str, ...] = ()
    free_mib: float = 0.0
    total_mib: float | None = None
    context: int | None = None
    options: EngineOptions = field(default_factory=EngineOptions)
    #: Several GPUs (multi_gpu.Device): rows then hold the whole plan (llama.cpp layer split by free
    #: memory, vLLM tensor parallel) and free_mib/total_mib are their sums.
    devices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.free_mib < 0 or (self.total_mib is not None and self.total_mib <= 0):
            raise LanderError("VRAM must be a positive number of MiB")
        if self.context is not None and self.context <= 0:
            raise LanderError("--context must be a positive number of tokens")


@dataclass(frozen=True)
class ConfigResult:
    quant: str
    kv_cache: str
    max_context: int
    model_max_context: int
    context: int  # where the memory numbers below were taken
    weights_mib: float
    kv_cache_mib: float
    compute_mib: float
    overhead_mib: float
    total_mib: float
    host_mib: float
    fits: bool
    exact_weights: bool
    bits_per_weight: float
    max_concurrency: float | None = None
    error: str | None = None
    parts: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        keys = ("quant", "kv_cache", "max_context", "model_max_context", "context", "weights_mib",
                "kv_cache_mib", "compute_mib", "overhead_mib", "total_mib", "host_mib", "fits",
                "exact_weights", "bits_per_weight", "max_concurrency", "error")
        d = {k: getattr(self, k) for k in keys}
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass(frozen=True)
class Recommendation:
    quant: str | None
    kv_cache: str | None
    reason: str


@dataclass(frozen=True)
class Estimate:
    model: str
    params: int
    backend: str
    free_mib: float
    budget_mib: float
    target_context: int
    results: tuple[ConfigResult, ...]
    recommendation: Recommendation
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params,
            "backend": self.backend,
            "free_vram_mib": round(self.free_mib, 2),
            "budget_mib": round(self.budget_mib, 2),
            "target_context": self.target_context,
            "results": [r.as_json() for r in self.results],
            "recommendation": {"quant": self.recommendation.quant, "kv_cache": self.recommendation.kv_cache,
                               "reason": self.recommendation.reason},
            "notes": list(self.notes),
        }


def vllm_fitting_utilization(free_mib: float, total_mib: float) -> float:
    """The largest --gpu-memory-utilization (3 decimals) whose budget is free now."""
    return max(0.05, math.floor(free_mib / total_mib * 1000) / 1000)


def budget_bytes(req: EstimateRequest) -> tuple[float, list[str]]:
    """The memory the engine may use. vLLM takes a fraction of *total* and refuses to start if less is free,
    so when less is free the rows are planned at the utilization that does fit, and a note says which."""
    notes: list[str] = []
    free = req.free_mib * MIB
    if req.backend in ("vllm",) and req.total_mib:
        util = req.options.gpu_memory_utilization
        want = req.total_mib * util * MIB
        if want <= free:
            return want, notes
        fit = vllm_fitting_utilization(req.free_mib, req.total_mib)
        notes.append(
            f"vLLM needs {req.total_mib * util:,.0f} MiB free at --gpu-memory-utilization {util}; only "
            f"{req.free_mib:,.0f} MiB is: planned at --gpu-memory-utilization {fit:.3f}"
        )
        return req.total_mib * fit * MIB, notes
    return free, notes


def _choices(req: EstimateRequest, engine_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    quants = req.quants or (
        (req.model.file_quant,) if req.model.file_quant and engine_name in ("llama.cpp", "ollama")
        else DEFAULT_QUANTS[engine_name]
    )
    kvs = req.kv_types or DEFAULT_KV[engine_name]
    for q in quants:
        weight_format(q)
    for k in kvs:
        kv_cache_type(k)
    return tuple(quants), tuple(kvs)


def run_estimate(req: EstimateRequest) -> Estimate:
    engine = get_engine(req.backend)
    quants, kvs = _choices(req, engine.name)
    budget, notes = budget_bytes(req)
    if engine.name == "ollama":
        notes.append(ollama_default_context_note(req.total_mib or req.free_mib))
    spec = req.model.spec
    target = req.context or spec.max_context
    results = []
    for q in quants:
        for kv in kvs:
            results.append(_one(req, engine, q, kv, budget))
    if all(r.error for r in results):
        raise LanderError(results[0].error or "no configuration could be estimated")
    return Estimate(
        model=spec.name, params=spec.params, backend=engine.name, free_mib=req.free_mib,
        budget_mib=budget / MIB, target_context=target, results=tuple(results),
        recommendation=recommend(results, target), notes=tuple(notes),
    )


def _error_row(spec: Any, quant: str, kv: str, err: LanderError) -> ConfigResult:
    """A row the engine refused (e.g. a quantized V cache without flash attention): the reason, no numbers."""
    return ConfigResult(quant, kv, 0, spec.max_context, 0, 0, 0, 0, 0, 0, 0, False, False, 0.0, error=str(err))


def _one(req: EstimateRequest, engine: Any, quant: str, kv: str, budget: float) -> ConfigResult:
    if len(req.devices) > 1:
        return _one_multi(req, engine, quant, kv)
    spec, opts, g = req.model.spec, req.options, engine.granularity(req.options)

    def total_of(ctx: np.ndarray) -> np.ndarray:
        return np.asarray(engine.memory(req.model, quant, kv, ctx, opts).total)

    try:
        max_ctx = max_fitting(total_of, budget, g)
        at = req.context or max(max_ctx, g)
        bd = engine.memory(req.model, quant, kv, np.array([at]), opts)
        w = engine.weights(req.model, quant)
    except LanderError as err:
        return _error_row(spec, quant, kv, err)
    nums = bd.at(0)
    concurrency = None
    if engine.name == "vllm":
        fixed = bd.weights + float(bd.compute[0]) + float(bd.overhead[0])
        per_req = float(bd.kv[0]) / max(1, opts.n_parallel or 1)
        concurrency = max(0.0, (budget - fixed) / per_req) if per_req else None
    parts = {k[:-4]: v for k, v in nums.items() if k.endswith("_mib") and k[:-4] not in
             ("weights", "kv_cache", "compute", "overhead", "total", "host")}
    return ConfigResult(
        quant=w.quant, kv_cache=kv, max_context=max_ctx, model_max_context=spec.max_context,
        context=int(nums["context"]), weights_mib=nums["weights_mib"], kv_cache_mib=nums["kv_cache_mib"],
        compute_mib=nums["compute_mib"], overhead_mib=nums["overhead_mib"], total_mib=nums["total_mib"],
        host_mib=nums["host_mib"], fits=nums["total_mib"] * MIB <= budget, exact_weights=w.exact,
        bits_per_weight=w.bits_per_weight, max_concurrency=concurrency, parts=parts,
    )


def _one_multi(req: EstimateRequest, engine: Any, quant: str, kv: str) -> ConfigResult:
    """A row for several GPUs: the longest context with everything on them, and the plan's sums."""
    from lander_tui.core import multi_gpu as mg

    spec, opts, devs = req.model.spec, req.options, list(req.devices)
    g = engine.granularity(opts)
    try:
        if engine.name in ("llama.cpp", "ollama"):
            max_ctx = mg.llamacpp_max_context(req.model, quant, kv, devs, opts, backend=engine.name)
            plan = mg.llamacpp_plan(req.model, quant, kv, req.context or max(max_ctx, g), devs, opts,
                                    backend=engine.name)
        elif engine.name == "vllm":
            max_ctx = mg.vllm_tp_max_context(req.model, quant, kv, devs, opts)
            plan = mg.vllm_tp_plan(req.model, quant, kv, req.context or max(max_ctx, g), devs, opts)
        else:
            raise LanderError(f"{engine.label} across several GPUs is not modelled; plan one GPU at a time")
        w = engine.weights(req.model, quant)
    except LanderError as err:
        return _error_row(spec, quant, kv, err)
    d = plan.devices

    def tot(attr: str) -> float:
        return sum(getattr(x, attr) for x in d)

    return ConfigResult(
        quant=w.quant, kv_cache=kv, max_context=max_ctx, model_max_context=spec.max_context, context=plan.context,
        weights_mib=tot("weights_mib"), kv_cache_mib=tot("kv_cache_mib"), compute_mib=tot("compute_mib"),
        overhead_mib=tot("overhead_mib"), total_mib=tot("total_mib"), host_mib=plan.host_mib, fits=plan.fits,
        exact_weights=w.exact, bits_per_weight=w.bits_per_weight,
        parts={f"gpu{i}_total": x.total_mib for i, x in enumerate(d)},
    )


def ollama_default_context(total_mib: float) -> int:
    """Ollama's automatic num_ctx by GPU memory (server/routes.go, 2026): >= 47 GiB 262144, >= 23 GiB 32768."""
    gib = total_mib / 1024
    return 262144 if gib >= 47 else 32768 if gib >= 23 else 4096


def ollama_default_context_note(total_mib: float) -> str:
    return (f"Ollama picks num_ctx {ollama_default_context(total_mib):,} by itself on {total_mib / 1024:.0f} GiB; "
            "set OLLAMA_CONTEXT_LENGTH (or PARAMETER num_ctx) to the context you plan for")


def recommend(results: list[ConfigResult], target: int) -> Recommendation:
    ok = [r for r in results if not r.error]
    loads = [r for r in ok if r.max_context > 0]
    if not loads:
        short = min(ok, key=lambda r: r.total_mib, default=None)
        need = f" (smallest needs {short.total_mib:,.0f} MiB at {short.context:,} tokens)" if short else ""
        return Recommendation(None, None, f"nothing fits in this memory{need}")
    reach = [r for r in loads if r.max_context >= target]
    if reach:
        best = max(reach, key=lambda r: (r.bits_per_weight, kv_cache_bits(r.kv_cache), r.max_context))
        return Recommendation(best.quant, best.kv_cache,
                              f"highest precision that still reaches {target:,} tokens")
    best = max(loads, key=lambda r: (r.max_context, r.bits_per_weight))
    return Recommendation(best.quant, best.kv_cache,
                          f"no choice reaches {target:,} tokens; this gives the longest context ({best.max_context:,})")


def kv_cache_bits(name: str) -> float:
    try:
        return kv_cache_type(name).bits_per_weight
    except LanderError:
        return 16.0


def curve(req: EstimateRequest, quant: str, kv: str, n: int = 256,
          max_context: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """VRAM (MiB) against context for one configuration, `n` points, one vectorised call.

    Pass the row's `max_context` (from `run_estimate`) to avoid solving again.
    """
    engine = get_engine(req.backend)
    if max_context is None:
        max_context = _one(req, engine, quant, kv, budget_bytes(req)[0]).max_context
    xs = curve_points(max_context, req.model.spec.max_context, engine.granularity(req.options), n)
    ys = np.asarray(engine.memory(req.model, quant, kv, xs, req.options).total) / MIB
    return xs, ys
