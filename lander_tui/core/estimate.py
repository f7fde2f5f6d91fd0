"""One estimate: a model, GPUs and an engine in; a row per quant x KV type out.

This is the single entry point the CLI and the dashboard share. Every row carries the longest
context that fits (next to the model's trained maximum, never capped to it), the memory of every
part at the reported context, and whether it fits; the estimate recommends one row and says why.
`RowMemory` is the one memory function per row: the solver, the table, the curve and the plan
all read it, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lander_tui.core.engines import DEFAULT_ENGINE, Budget, Engine, EngineOptions, Footprint, get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import kv_cache_type, weight_format
from lander_tui.core.memory import EXTRAS, MIB, MemoryParts
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.plan import Plan
from lander_tui.core.solver import max_fitting
from lander_tui.core.speed import SpeedEstimate, speed_json, speed_unknown
from lander_tui.core.tensors import parameter_count

#: What the recommendation weighs (`--prefer`): the highest precision that reaches the target context
#: (the default), or the fastest decode at that context.
PREFERENCES = ("precision", "speed")


@dataclass(frozen=True)
class EstimateRequest:
    model: ResolvedModel
    engine: str = DEFAULT_ENGINE
    quants: tuple[str, ...] = ()
    kv_types: tuple[str, ...] = ()
    #: The GPUs to plan on (one or more). With several, rows hold the whole plan across them when the
    #: engine splits across GPUs (llama.cpp layer split, vLLM tensor parallel).
    devices: tuple[Device, ...] = ()
    context: int | None = None
    options: EngineOptions = field(default_factory=EngineOptions)
    prefer: str = "precision"  # one of PREFERENCES

    def __post_init__(self) -> None:
        if self.prefer not in PREFERENCES:
            raise LanderError(f"--prefer takes {' or '.join(PREFERENCES)}, not {self.prefer!r}")
        if not self.devices:
            raise LanderError("an estimate needs at least one GPU to plan on")
        if any(d.free_mib < 0 or (d.total_mib is not None and d.total_mib <= 0) for d in self.devices):
            raise LanderError("VRAM must be a positive number of MiB")
        if self.context is not None and self.context <= 0:
            raise LanderError("--context must be a positive number of tokens")

    @property
    def free_mib(self) -> float:
        return sum(d.free_mib for d in self.devices)

    @property
    def total_mib(self) -> float | None:
        totals = [d.total_mib for d in self.devices]
        return sum(t for t in totals if t) if all(totals) else None


@dataclass(frozen=True)
class ConfigResult:
    """One row: a quant x KV type, its longest context, and its memory (MiB, summed over the GPUs) at
    `context`, the context the numbers were taken at (the target, else the maximum)."""

    quant: str
    kv_cache: str
    max_context: int
    model_max_context: int
    context: int
    memory: MemoryParts
    fits: bool
    exact_weights: bool
    bits_per_weight: float
    capacity: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    devices: tuple[MemoryParts, ...] = ()  # per GPU, MiB
    #: How fast it runs everything on the GPUs at min(target, max_context) (`Engine.speed`); None when
    #: nothing loads or the speed is unknown (the estimate's notes say why).
    speed: SpeedEstimate | None = None

    @property
    def total_mib(self) -> float:
        return float(self.memory.total)

    @property
    def max_concurrency(self) -> float | None:
        return self.capacity.get("max_concurrency")

    @property
    def past_trained_max(self) -> bool:
        """The memory holds more than the model was trained for: engines refuse or degrade past it."""
        return self.max_context > self.model_max_context

    def capacity_json(self) -> dict[str, Any]:
        """What the engine says its KV cache holds (vLLM's `kv_capacity_mib` per GPU, `kv_capacity_tokens`,
        SGLang's token pool): present for the engines that size a cache of their own."""
        return {k: int(v) if k.endswith(("_tokens", "_context")) else v
                for k, v in self.capacity.items() if k != "max_concurrency"}

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"quant": self.quant, "kv_cache": self.kv_cache, "max_context": self.max_context,
                             "model_max_context": self.model_max_context,
                             "past_model_max_context": self.past_trained_max, "context": self.context,
                             **self.memory.as_json(), "fits": self.fits, "exact_weights": self.exact_weights,
                             "bits_per_weight": self.bits_per_weight, "max_concurrency": self.max_concurrency,
                             **self.capacity_json(), "error": self.error}
        return {**{k: (round(v, 2) if isinstance(v, float) else v) for k, v in d.items()}, **speed_json(self.speed)}


@dataclass(frozen=True)
class Recommendation:
    quant: str | None
    kv_cache: str | None
    reason: str
    prefer: str = "precision"


@dataclass(frozen=True)
class Estimate:
    model: str
    params: int
    engine: str
    free_mib: float
    budget: Budget
    target_context: int
    results: tuple[ConfigResult, ...]
    recommendation: Recommendation
    notes: tuple[str, ...] = ()

    @property
    def budget_mib(self) -> float:
        return self.budget.total / MIB

    def row(self, quant: str, kv: str) -> ConfigResult:
        for r in self.results:
            if (r.quant, r.kv_cache) == (quant, kv):
                return r
        raise LanderError(f"no row {quant} + KV {kv} in this estimate")

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params,
            "backend": self.engine,
            "free_vram_mib": round(self.free_mib, 2),
            "budget_mib": round(self.budget_mib, 2),
            "target_context": self.target_context,
            "results": [r.as_json() for r in self.results],
            "recommendation": {"quant": self.recommendation.quant, "kv_cache": self.recommendation.kv_cache,
                               "reason": self.recommendation.reason, "prefer": self.recommendation.prefer},
            "notes": list(self.notes),
        }


class RowMemory:
    """One row's memory on the planned GPUs as a function of context (vectorised): the one function
    the solver, the results table, the VRAM curve and the plan all call."""

    def __init__(self, engine: Engine, req: EstimateRequest, quant: str, kv: str, budget: Budget) -> None:
        self.engine, self.req, self.quant, self.kv, self.budget = engine, req, quant, kv, budget
        self._at = engine.footprint(req.model, quant, kv, req.devices, req.options)

    def at(self, ctx: np.ndarray) -> Footprint:
        return self._at(np.asarray(ctx, dtype=np.int64))

    def total_mib(self, ctx: np.ndarray) -> np.ndarray:
        """GPU memory summed over the planned GPUs at each context, MiB."""
        return np.asarray(self.at(ctx).summed().total, dtype=np.float64) / MIB

    def max_context(self) -> int:
        """The longest context with everything on the GPUs, each within its budget (0: none)."""
        return max_fitting(lambda ctx: self.at(ctx).over(self.budget), 0.0,
                           self.engine.granularity(self.req.options))


def choices(req: EstimateRequest, engine: Engine) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The quants and KV types the rows cover: the user's, else the engine's defaults for this model."""
    quants = req.quants or engine.default_quants(req.model)
    kvs = req.kv_types or engine.default_kvs(req.model)
    for q in quants:
        weight_format(q)
    for k in kvs:
        kv_cache_type(k)
    return tuple(quants), tuple(kvs)


def run_estimate(req: EstimateRequest) -> Estimate:
    engine = get_engine(req.engine)
    quants, kvs = choices(req, engine)
    budget = engine.budget(req.devices, req.options)
    notes = [*budget.notes, *engine.notes(req.model, req.devices, req.options)]
    spec = req.model.spec
    target = req.context or spec.max_context
    timed = bool(engine.runtime) and not speed_unknown(req.devices)
    results = [_row(req, engine, q, kv, budget, target if timed else 0) for q in quants for kv in kvs]
    if all(r.error for r in results):
        raise LanderError(results[0].error or "no configuration could be estimated")
    if not engine.runtime:
        notes.append(f"speed unknown: the {engine.label} engine does not model speed")
    elif not timed:
        notes.append(speed_unknown(req.devices))
    return Estimate(
        model=spec.name, params=parameter_count(spec), engine=engine.name, free_mib=req.free_mib, budget=budget,
        target_context=target, results=tuple(results), recommendation=recommend(results, target, req.prefer),
        notes=tuple(notes),
    )


def _error_row(req: EstimateRequest, quant: str, kv: str, message: str) -> ConfigResult:
    """A row the engine refused (e.g. a quantized V cache without flash attention): the reason, no numbers."""
    return ConfigResult(quant, kv, 0, req.model.spec.max_context, 0, MemoryParts(), False, False, 0.0,
                        error=message)


def _row(req: EstimateRequest, engine: Engine, quant: str, kv: str, budget: Budget, target: int) -> ConfigResult:
    """One row; its speed at min(`target`, its longest context) when `target` (0: no speed)."""
    try:
        row = RowMemory(engine, req, quant, kv, budget)
        max_ctx = row.max_context()
        fp = row.at(np.array([req.context or max(max_ctx, engine.granularity(req.options))]))
        w = engine.weights(req.model, quant)
        per_gpu = tuple(d.at(0).to_mib() for d in fp.devices)
        capacity = engine.capacity(req.model, quant, kv, int(fp.context[0]), per_gpu, budget, req.options)
        speed = None
        if target and max_ctx > 0:
            speed = engine.speed(req.model, quant, kv, min(target, max_ctx), req.devices, req.options)
    except LanderError as err:
        return _error_row(req, quant, kv, str(err))
    except Exception as err:
        if engine.builtin:
            raise
        return _error_row(req, quant, kv, f"the {engine.label} plugin failed: {type(err).__name__}: {err}")
    summed = fp.summed().at(0).to_mib()
    fits = bool(fp.over(budget)[0] <= 0)
    return ConfigResult(
        quant=w.quant, kv_cache=kv, max_context=max_ctx, model_max_context=req.model.spec.max_context,
        context=int(fp.context[0]), memory=summed, fits=fits, exact_weights=w.exact,
        bits_per_weight=w.bits_per_weight, capacity=capacity, devices=per_gpu, speed=speed,
    )


def row_memory(req: EstimateRequest, est: Estimate, quant: str, kv: str) -> RowMemory:
    """The memory function behind one row of `est` (for curves and plans)."""
    return RowMemory(get_engine(req.engine), req, quant, kv, est.budget)


def curve(req: EstimateRequest, est: Estimate, quant: str, kv: str, xs: np.ndarray) -> np.ndarray:
    """VRAM (MiB, summed over the planned GPUs) against context for one row: the same numbers the
    table shows at the row's context, at every x."""
    return row_memory(req, est, quant, kv).total_mib(xs)


def plan_row(req: EstimateRequest, est: Estimate, quant: str | None = None, kv: str | None = None) -> Plan | None:
    """The plan for one row (default: the recommended row, else the first) on the request's GPUs: at the
    target context, else the longest that loads up to the model's trained maximum (engines refuse or
    warn past it). None when nothing loads and the engine cannot run part of it on the CPU."""
    rec = est.recommendation
    quant = quant or rec.quant or est.results[0].quant
    kv = kv or rec.kv_cache or est.results[0].kv_cache
    row = est.row(quant, kv)
    if row.error:
        raise LanderError(row.error)
    engine = get_engine(req.engine)
    ctx = req.context or min(req.model.spec.max_context, row.max_context)
    if ctx <= 0:
        fallback = engine.fallback_context(req.model)
        if fallback is None:
            return None
        ctx = fallback
    plan = engine.plan(req.model, quant, kv, ctx, req.devices, est.budget, req.options)
    plan = replace(plan, notes=(*plan.notes, *extras_notes(plan)))
    if speed_unknown(req.devices):
        return plan
    return replace(plan, speed=engine.speed(req.model, quant, kv, plan.context, req.devices, req.options, plan))


def extras_notes(plan: Plan) -> tuple[str, ...]:
    """What the plan's extras column holds, GPU by GPU ("extras on GPU 0: vision projector 933 MiB ...")."""
    out = []
    for d in plan.devices:
        pieces = d.memory.extra_parts()
        if pieces:
            labels = {e.key: e.label for e in EXTRAS}
            out.append(f"extras on {d.name}: " + ", ".join(f"{labels[k]} {v:,.0f} MiB" for k, v in pieces.items()))
    return tuple(out)


def recommend(results: list[ConfigResult], target: int, prefer: str = "precision") -> Recommendation:
    """The row to use: of those reaching `target`, the highest precision (or with `prefer="speed"` the
    fastest decode at the target); else the longest context."""
    ok = [r for r in results if not r.error]
    loads = [r for r in ok if r.max_context > 0]
    if not loads:
        short = min(ok, key=lambda r: r.total_mib, default=None)
        need = f" (smallest needs {short.total_mib:,.0f} MiB at {short.context:,} tokens)" if short else ""
        return Recommendation(None, None, f"nothing fits in this memory{need}", prefer)
    reach = [r for r in loads if r.max_context >= target]
    if reach:
        timed = [r for r in reach if r.speed is not None]
        if prefer == "speed" and timed:
            fast = max(timed, key=lambda r: (_decode_tps(r), r.bits_per_weight, kv_cache_bits(r.kv_cache)))
            return Recommendation(fast.quant, fast.kv_cache, f"fastest that reaches {target:,} tokens "
                                  f"({_decode_tps(fast):,.0f} tok/s decode there)", prefer)
        best = max(reach, key=lambda r: (r.bits_per_weight, kv_cache_bits(r.kv_cache), r.max_context))
        why = "; speed unknown, so by precision" if prefer == "speed" else ""
        return Recommendation(best.quant, best.kv_cache,
                              f"highest precision that still reaches {tokens(target)}{why}", prefer)
    best = max(loads, key=lambda r: (r.max_context, r.bits_per_weight))
    return Recommendation(best.quant, best.kv_cache,
                          f"no choice reaches {tokens(target)}; this gives the longest context ({best.max_context:,})",
                          prefer)


def _decode_tps(r: ConfigResult) -> float:
    return r.speed.decode_tps if r.speed is not None else 0.0


def tokens(n: int) -> str:
    """`1 token`, `131,072 tokens`."""
    return f"{n:,} token" + ("" if n == 1 else "s")


def kv_cache_bits(name: str) -> float:
    try:
        return kv_cache_type(name).bits_per_weight
    except LanderError:
        return 16.0
