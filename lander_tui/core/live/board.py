"""What the dashboard shows of each running engine, worked out off the UI thread.

For every engine model the poller read: the comparison of predicted and held memory (`compare`),
what its GPU could give it if it were restarted on the memory it holds plus what is free now
(`restart`, the same estimator), and the form inputs that plan from exactly its configuration
(`plan_inputs`). All of it is plain data, made in the poller's reading threads, so the 1 s GPU
tick never waits for a GGUF header or the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.live.predict import Comparison, Restart, compare, engine_for, restart, running
from lander_tui.core.live.state import EngineState


@dataclass(frozen=True)
class PlanInputs:
    """A running engine's configuration as the estimator's inputs (what the dashboard's form takes)."""

    engine: str  # estimator engine (registry name)
    model: str  # the model as the form's Model field takes it: a GGUF path, a folder or a Hub id
    quant: str | None
    kv: str
    context: int  # in the engine's context unit (llama.cpp: every KV cell)
    parallel: int | None
    flash_attn: bool | None
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class EngineRow:
    """One engine model next to its GPU: the comparison, the restart advice (or why there is none)."""

    comparison: Comparison
    restart: Restart | None = None
    restart_why: str = ""
    inputs: PlanInputs | None = None

    @property
    def key(self) -> str:
        """Stable identity across readings: the server and the model."""
        c = self.comparison
        return f"{c.engine.url}#{c.model.name if c.model else ''}"


def board(states: list[EngineState], snapshot: Any = None) -> tuple[EngineRow, ...]:
    """Every engine model with its comparison, restart advice and form inputs."""
    return tuple(_row(c, snapshot) for c in compare(states, snapshot))


def _row(c: Comparison, snapshot: Any) -> EngineRow:
    if c.model is None:
        return EngineRow(c)
    g = snapshot.gpu(c.gpus[0]) if snapshot is not None and c.gpus else None
    total = g.total_mib if g is not None else None
    inputs = _inputs(c, total)
    if c.prediction is None:
        return EngineRow(c, None, c.why_not, inputs)
    if len(c.gpus) != 1 or c.held_mib is None or g is None:
        why = ("not on a GPU here" if not c.gpus else
               f"on {len(c.gpus)} GPUs (the advice is per GPU)" if len(c.gpus) > 1 else "its memory is not reported")
        return EngineRow(c, None, why, inputs)
    if g.free_mib is None:
        return EngineRow(c, None, "its GPU does not report free memory", inputs)
    try:
        r = restart(c.engine.kind, c.model, c.held_mib + g.free_mib, total)
    except LanderError as err:
        return EngineRow(c, None, str(err), inputs)
    return EngineRow(c, r, "", inputs)


def _inputs(c: Comparison, total: float | None) -> PlanInputs | None:
    """The form inputs of this model's configuration, when an engine predicts for it."""
    assert c.model is not None
    try:
        run = running(c.engine.kind, c.model, total)  # cached: compare() asked the same
        engine = engine_for(c.engine.kind)
    except LanderError:
        return None
    quant = c.prediction.config.get("quant") if c.prediction else run.quant
    return PlanInputs(engine, c.model.config.model or run.model.spec.name, quant, run.kv, run.context,
                      run.options.n_parallel, run.options.flash_attn, c.gpus)
