"""The solver, the results table, the VRAM curve and the plan read one memory function per row, so they
agree: the curve passes through the row's total at the row's maximum, and crosses the free-memory line
there, on one GPU and on several (where the curve sums every GPU's share of the split)."""

from __future__ import annotations

import numpy as np
import pytest

from lander_tui.core.estimate import EstimateRequest, plan_row, row_memory, run_estimate
from lander_tui.core.model import Device
from lander_tui.core.model_source import resolve_model
from lander_tui.ui.chart_data import chart_data


@pytest.mark.parametrize(("engine", "devices"), [
    ("llama.cpp", (Device("A", 20000),)),
    ("llama.cpp", (Device("A", 10000), Device("B", 10000))),  # the case the chart used to get wrong
    ("llama.cpp", (Device("A", 14000), Device("B", 6000), Device("C", 9000))),
    ("vllm", (Device("A", 40000, 40960), Device("B", 40000, 40960))),
    ("sglang", (Device("A", 23000, 24564),)),
])
def test_curve_equals_table_at_the_maximum(engine, devices):
    req = EstimateRequest(resolve_model("llama-3.1-8b"), engine, devices=devices)
    est = run_estimate(req)
    chart = chart_data(req, est, limit=10)
    assert chart.series
    for series in chart.series:
        row = est.row(*series.label.split("/"))
        if not 0 < row.max_context <= chart.x_top:
            continue
        assert series.y_at_max == pytest.approx(row.total_mib / 1024, abs=0.001)
        # and the curve is the same function the solver bounded: at the maximum every GPU fits, one
        # granule later the fullest one does not
        mem = row_memory(req, est, row.quant, row.kv_cache)
        g = mem.engine.granularity(req.options)
        over = mem.at(np.array([row.max_context, row.max_context + g])).over(est.budget)
        assert over[0] <= 0 < over[1]


def test_the_plan_at_the_rows_context_is_the_rows_memory():
    req = EstimateRequest(resolve_model("llama-3.1-8b"), "llama.cpp", ("Q4_K_M",), ("f16",), context=32768,
                          devices=(Device("A", 10000), Device("B", 10000)))
    est = run_estimate(req)
    row = est.results[0]
    plan = plan_row(req, est)
    assert plan is not None and plan.context == row.context == 32768
    for share, part in zip(plan.devices, row.devices, strict=True):
        assert share.memory.total == pytest.approx(part.total)
    assert plan.memory.total == pytest.approx(row.total_mib)
