"""What the VRAM-vs-context chart shows, as plain comparable data (no Textual).

The chart redraws only when this value changes, so it is built from rounded numbers: two
estimates that would draw the same picture compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lander_tui.core.engines import MIB, get_engine

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


def chart_data(req: Any, est: Any, limit: int = MAX_SERIES, points: int = POINTS) -> ChartData:
    """Curves for the estimate's rows (recommended first), on one shared context axis."""
    engine = get_engine(req.backend)
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
        total = np.asarray(engine.memory(req.model, r.quant, r.kv_cache, xs, req.options).total)
        ys = np.round(np.broadcast_to(total, xs.shape) / MIB / 1024, 3)
        y_max = None
        if 0 < r.max_context <= x_top:
            at = np.asarray(engine.memory(req.model, r.quant, r.kv_cache, np.array([r.max_context]),
                                          req.options).total)
            y_max = round(float(at.flat[0]) / MIB / 1024, 3)
        series.append(Series(f"{r.quant}/{r.kv_cache}", tuple(int(x) for x in xs), tuple(float(y) for y in ys),
                             r.max_context, y_max, r.quant == rec.quant and r.kv_cache == rec.kv_cache))
    title = f"{est.model} · {est.backend}"
    return ChartData(title, tuple(series), round(est.budget_mib / 1024, 3), x_top, target,
                     spec.max_context, hidden)
