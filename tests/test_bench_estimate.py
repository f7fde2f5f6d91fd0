"""Speed target: one full estimate as the dashboard runs it (3 quants x 2 KV types, each solved, the
VRAM curves of every row and the plan of the recommended row) under 5 ms.

It measures the code the dashboard calls, not a copy: `run_estimate`, `chart_data` (whose curves come
from the same `RowMemory` the solver uses) and `plan_row`. Run with
`uv run pytest tests/test_bench_estimate.py --benchmark-enable` to see the figures; in the normal run
it executes once as a correctness check of the same code path.
"""

from __future__ import annotations

from lander_tui.core.estimate import EstimateRequest, plan_row, run_estimate
from lander_tui.core.model import Device
from lander_tui.core.model_source import resolve_model
from lander_tui.ui.chart_data import chart_data


def full_estimate(req: EstimateRequest) -> int:
    est = run_estimate(req)
    chart = chart_data(req, est)
    plan = plan_row(req, est)
    assert plan is not None
    return len(est.results) + sum(len(s.xs) for s in chart.series) + len(plan.devices)


def test_full_estimate_speed(benchmark):
    req = EstimateRequest(resolve_model("llama-3.1-8b"), "llama.cpp", ("Q4_K_M", "Q6_K", "Q8_0"),
                          ("f16", "q8_0"), devices=(Device("GPU", 20000),))
    run_estimate(req)  # warm the per-model caches, as the dashboard does after the first pick
    assert benchmark(full_estimate, req) == 6 + 6 * 96 + 1


def test_two_gpu_estimate_speed(benchmark):
    req = EstimateRequest(resolve_model("llama-3.1-8b"), "llama.cpp", ("Q4_K_M", "Q6_K", "Q8_0"),
                          ("f16", "q8_0"), devices=(Device("A", 10000), Device("B", 10000)))
    run_estimate(req)
    assert benchmark(full_estimate, req) == 6 + 6 * 96 + 2
