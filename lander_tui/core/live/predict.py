"""What lander-tui predicts a running engine holds, next to what it really holds.

Each reader names the estimator engine that predicts for it (`EngineReader.engine`), and that engine
turns the configuration the reader read into its own estimator inputs (`Engine.running`): the model
(a GGUF file on this machine, whose header is read, or a checkpoint through the profile cache/Hub),
the KV type, the context and the options, and for a server that sizes itself from the GPU (vLLM,
SGLang) the memory it takes whatever its context. `estimate_memory` is the ONE call into the
estimator from the live package; nothing here knows one engine from another.

Held - predicted is the DIFF (positive: the engine holds more than predicted). `restart` asks the
same estimator what the engine could run on the memory it holds plus what is free now, and the
engine says which flags give that context.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from lander_tui.core.engines import Running, get_engine
from lander_tui.core.engines.running import EngineConfig
from lander_tui.core.errors import LanderError
from lander_tui.core.live.registry import reader_for
from lander_tui.core.live.state import EngineState, LoadedModel
from lander_tui.core.memory import PARTS
from lander_tui.core.model import Device

#: Budget handed to the estimator when only the memory of one configuration is asked for: large
#: enough that any real configuration "fits", so the numbers are taken at the engine's context.
_UNBOUNDED_MIB = float(1 << 22)  # 4 TiB


@dataclass(frozen=True)
class Prediction:
    estimator: str  # the estimator engine that answered (its registry name)
    model: str  # the model as the estimator resolved it
    config: dict[str, Any]  # the configuration predicted, as passed to the estimator
    total_mib: float  # GPU memory of that configuration
    parts_mib: dict[str, float] = field(default_factory=dict)  # weights / kv / compute / overhead
    kv_capacity_tokens: int | None = None  # vLLM, SGLang: tokens their KV cache should hold
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "model": self.model, "config": self.config,
                "total_mib": round(self.total_mib, 1),
                "parts_mib": {k: round(v, 1) for k, v in self.parts_mib.items()},
                "kv_capacity_tokens": self.kv_capacity_tokens, "notes": list(self.notes)}


@dataclass(frozen=True)
class Comparison:
    """One engine model: the prediction (or why there is none) against NVML's held memory."""

    engine: EngineState
    model: LoadedModel | None
    prediction: Prediction | None
    why_not: str = ""  # no prediction: the reason, one line
    held_mib: float | None = None  # NVML: memory of the processes that hold this model
    gpus: tuple[int, ...] = ()  # the GPU indices those processes are on
    gpu_names: tuple[str, ...] = ()
    gpu_known: bool = False  # a GPU reading was there to look in (else "not on a GPU" means "unknown")

    @property
    def diff_mib(self) -> float | None:
        if self.prediction is None or self.held_mib is None:
            return None
        return self.held_mib - self.prediction.total_mib

    @property
    def diff_pct(self) -> float | None:
        d = self.diff_mib
        if d is None or not self.prediction or self.prediction.total_mib <= 0:
            return None
        return 100.0 * d / self.prediction.total_mib


def estimate_memory(run: Running, engine: str, device: Device, context: int | None = None) -> Any:
    """THE seam into the estimator: one configuration's row (MiB figures at `context`; None: at the
    longest that fits) and the budget it was planned in."""
    from lander_tui.core.estimate import EstimateRequest, run_estimate

    req = EstimateRequest(model=run.model, engine=engine, quants=(run.quant,) if run.quant else (),
                          kv_types=(run.kv,), devices=(device,), context=context, options=run.options)
    est = run_estimate(req)
    row = est.results[0]
    if row.error:
        raise LanderError(row.error)
    return row, est.budget


_Key = tuple[str, EngineConfig, float | None]
_RUNNING: dict[_Key, Running | str] = {}
_CACHE: dict[_Key, Prediction | str] = {}
_RESTARTS: dict[tuple[_Key, int], Restart | str] = {}
_CACHE_SIZE = 64
_LOCK = threading.Lock()  # the dashboard's readings finish on several threads


def _remember(cache: dict[Any, Any], key: Any, make: Any) -> Any:
    """`make()` once per key (its LanderError remembered as its message), in a small FIFO cache:
    a poller asks every few seconds, and a configuration only changes when the engine restarts."""
    with _LOCK:
        hit = cache.get(key)
    if hit is None:
        try:
            hit = make()
        except LanderError as err:
            hit = str(err)
        with _LOCK:
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = hit
    if isinstance(hit, str):
        raise LanderError(hit)
    return hit


def engine_for(kind: str) -> str:
    """The estimator engine that predicts for a server kind; LanderError when there is none."""
    reader = reader_for(kind)
    if reader.engine is None:
        raise LanderError(f"lander-tui has no memory model for {reader.label} yet")
    return reader.engine


def running(kind: str, model: LoadedModel, gpu_total_mib: float | None = None) -> Running:
    """The engine's estimator inputs for this model as configured; LanderError says why there are none."""
    key = (kind, model.config, gpu_total_mib)
    return _remember(_RUNNING, key, lambda: get_engine(engine_for(kind)).running(model.config, gpu_total_mib))


def predict(kind: str, model: LoadedModel, gpu_total_mib: float | None = None) -> Prediction:
    """The memory lander-tui predicts for this engine's model as configured; LanderError says why not."""
    return _remember(_CACHE, (kind, model.config, gpu_total_mib), lambda: _predict(kind, model, gpu_total_mib))


def _device(gpu_total_mib: float | None, free_mib: float | None = None) -> Device:
    return Device("live", free_mib if free_mib is not None else (gpu_total_mib or _UNBOUNDED_MIB), gpu_total_mib)


def _predict(kind: str, model: LoadedModel, gpu_total_mib: float | None) -> Prediction:
    run = running(kind, model, gpu_total_mib)
    engine = engine_for(kind)
    row, _budget = estimate_memory(run, engine, _device(gpu_total_mib), run.context)
    capacity = row.capacity.get("kv_capacity_tokens")
    if capacity is None and row.max_concurrency:
        capacity = row.max_concurrency * row.context
    config = {"model": model.config.model, "quant": row.quant, **run.config}
    total = run.held_mib if run.held_mib is not None else row.total_mib
    return Prediction(get_engine(engine).name, run.model.spec.name, config, total, _parts(row),
                      kv_capacity_tokens=int(capacity) if capacity is not None else None, notes=run.notes)


@dataclass(frozen=True)
class Restart:
    """What the GPU could give a running engine: the longest context if it were restarted on the memory
    it holds plus what is free now, per the same estimator, and the flags that set it."""

    available_mib: float  # held + free now
    context: int  # tokens one request then gets
    flags: str

    def as_json(self) -> dict[str, Any]:
        return {"available_mib": round(self.available_mib, 1), "context": self.context, "flags": self.flags}


#: Free memory moves by a few MiB every second; the restart answer is asked again only when what
#: would be available moved by this much (it changes the answer by at most a few hundred tokens), so
#: the advice does not flicker with every job's jitter.
RESTART_STEP_MIB = 64.0
_LAST_RESTART: dict[_Key, Restart] = {}


def restart(kind: str, model: LoadedModel, available_mib: float, gpu_total_mib: float | None) -> Restart:
    """The longest context this engine's configuration reaches on `available_mib` of one GPU (rounded
    down to RESTART_STEP_MIB; the last answer while what is available moved less than that)."""
    config = (kind, model.config, gpu_total_mib)
    with _LOCK:
        last = _LAST_RESTART.get(config)
    if last is not None and last.available_mib <= available_mib < last.available_mib + 2 * RESTART_STEP_MIB:
        return last
    step = int(available_mib // RESTART_STEP_MIB)
    answer = _remember(_RESTARTS, (config, step),
                       lambda: _restart(kind, model, step * RESTART_STEP_MIB, gpu_total_mib))
    with _LOCK:
        if len(_LAST_RESTART) >= _CACHE_SIZE:
            _LAST_RESTART.pop(next(iter(_LAST_RESTART)))
        _LAST_RESTART[config] = answer
    return answer


def _restart(kind: str, model: LoadedModel, available_mib: float, gpu_total_mib: float | None) -> Restart:
    run = running(kind, model, gpu_total_mib)
    engine = get_engine(engine_for(kind))
    again = replace(run, options=engine.restart_options(run))
    row, budget = estimate_memory(again, engine.name, _device(gpu_total_mib, available_mib))
    if not row.fits or row.max_context <= 0:
        raise LanderError(f"nothing loads on {available_mib:,.0f} MiB")
    context, flags = engine.restart_flags(run, row.max_context, budget.settings)
    return Restart(available_mib, context, flags)


def _parts(row: Any) -> dict[str, float]:
    return {p.json_key.removesuffix("_mib"): float(getattr(row.memory, p.attr)) for p in PARTS}


def compare(states: list[EngineState], snapshot: Any = None) -> list[Comparison]:
    """One Comparison per loaded model of every engine (one per engine when it reports none)."""
    by_pid = _gpu_memory(snapshot)
    known = snapshot is not None and bool(getattr(snapshot, "ok", False))
    out = []
    for st in states:
        models: list[LoadedModel | None] = list(st.models) or [None]
        for m in models:
            pids = (m.runner_pid,) if m is not None and m.runner_pid else (st.gpu_pids or ((st.pid,) if st.pid else ()))
            held, gpus = _held(pids, by_pid)
            names = tuple(_gpu_name(snapshot, g) for g in gpus)
            total = _gpu_total(snapshot, gpus[0]) if gpus else None
            if m is None:
                out.append(Comparison(st, None, None, "no model loaded", held, gpus, names, known))
                continue
            try:
                p = predict(st.kind, m, total)
                out.append(Comparison(st, m, p, "", held, gpus, names, known))
            except LanderError as err:
                out.append(Comparison(st, m, None, str(err), held, gpus, names, known))
    return out


def _gpu_memory(snapshot: Any) -> _ByPid:
    """pid -> [(GPU index, MiB)] from a GPU Snapshot."""
    out: _ByPid = {}
    if snapshot is None or not getattr(snapshot, "ok", False):
        return out
    for g in snapshot.gpus:
        for p in g.processes:
            out.setdefault(p.pid, []).append((g.index, p.used_mib))
    return out


_ByPid = dict[int, list[tuple[int, float | None]]]


def _held(pids: tuple[int, ...], by_pid: _ByPid) -> tuple[float | None, tuple[int, ...]]:
    rows = [r for pid in pids for r in by_pid.get(pid, [])]
    if not rows:
        return None, ()
    gpus = tuple(sorted({g for g, _ in rows}))
    if any(mib is None for _, mib in rows):
        return None, gpus
    return float(sum(mib or 0.0 for _, mib in rows)), gpus


def _gpu_name(snapshot: Any, index: int) -> str:
    g = snapshot.gpu(index) if snapshot is not None else None
    return g.name if g is not None else f"GPU {index}"


def _gpu_total(snapshot: Any, index: int) -> float | None:
    g = snapshot.gpu(index) if snapshot is not None else None
    return g.total_mib if g is not None else None
