"""What the VRAM-vs-context chart shows, as plain comparable data (no Textual).

The curves come from the same memory function as the results table (`core.estimate.curve`, summed
over the planned GPUs), so a curve crosses the free-memory line exactly at its row's maximum. The
chart redraws only when this value changes, so it is built from rounded numbers: two estimates that
would draw the same picture compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lander_tui.core.engines import get_engine
from lander_tui.core.estimate import Estimate, EstimateRequest, row_memory

MAX_SERIES = 6
POINTS = 96


@dataclass(frozen=True)
class Series:
    label: str
    xs: tuple[int, ...]
    ys: tuple[float, ...]  # GiB
    max_context: int
    y_at_max: float | None  # GiB at max_context, None when that point is off the chart
    recommended: bool


@dataclass(frozen=True)
class ChartData:
    title: str
    series: tuple[Series, ...]
    budget_gib: float
    x_top: int
    target: int | None
    model_max: int
    hidden: int = 0  # configurations left off (more than MAX_SERIES)


def chart_data(req: EstimateRequest, est: Estimate, limit: int = MAX_SERIES, points: int = POINTS) -> ChartData:
    """Curves for the estimate's rows (recommended first), on one shared context axis."""
    engine = get_engine(req.engine)
    g = engine.granularity(req.options)
    spec = req.model.spec
    target = req.context
    x_top = int(max(spec.max_context, target or 0) * 1.1)
    x_top = max(x_top, g * 4)
    rows = [r for r in est.results if not r.error]
    rec = est.recommendation
    rows.sort(key=lambda r: (not (r.quant == rec.quant and r.kv_cache == rec.kv_cache)))
    shown, hidden = rows[:limit], max(0, len(rows) - limit)
    xs = np.unique((np.maximum(1, np.round(np.linspace(g, x_top, points) / g)) * g).astype(np.int64))
    series = []
    for r in shown:
        memory = row_memory(req, est, r.quant, r.kv_cache)
        ys = np.round(memory.total_mib(xs) / 1024, 3)
        y_max = None
        if 0 < r.max_context <= x_top:
            y_max = round(float(memory.total_mib(np.array([r.max_context]))[0]) / 1024, 3)
        series.append(Series(f"{r.quant}/{r.kv_cache}", tuple(int(x) for x in xs), tuple(float(y) for y in ys),
                             r.max_context, y_max, r.quant == rec.quant and r.kv_cache == rec.kv_cache))
    title = f"{est.model} · {est.engine}"
    return ChartData(title, tuple(series), round(est.budget_mib / 1024, 3), x_top, target,
                     spec.max_context, hidden)
