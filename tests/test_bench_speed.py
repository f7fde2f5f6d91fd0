"""Speed target of issue 15: the speed model adds under 1 ms to a full estimate.

The same full estimate as tests/test_bench_estimate.py (3 quants x 2 KV types, each solved, the VRAM
curves and the plan of the recommended row), once on a GPU whose card is known (every row and the plan
get decode / prefill / time to first token, the plan also the cost of one more offload step) and once on
the same memory given as bare numbers (no card: no speed). The difference is what the speed model costs.
`uv run pytest tests/test_bench_speed.py --benchmark-enable` prints both; in the normal run each executes
once and checks that the speed is there, or not, as it should be.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lander_tui.core.estimate import EstimateRequest, plan_row, run_estimate
from lander_tui.core.gpu.specs import SPECS
from lander_tui.core.model import Device
from lander_tui.core.model_source import resolve_model
from lander_tui.ui.chart_data import chart_data

CARD = SPECS["RTX 4090 24GB"]
QUANTS, KVS = ("Q4_K_M", "Q6_K", "Q8_0"), ("f16", "q8_0")


def full_estimate(req: EstimateRequest) -> int:
    est = run_estimate(req)
    chart = chart_data(req, est)
    plan = plan_row(req, est)
    assert plan is not None
    timed = sum(r.speed is not None for r in est.results) + (plan.speed is not None)
    return len(chart.series) + 10 * timed


def _request(devices: tuple[Device, ...], model: str = "llama-3.1-8b", context: int | None = 32768) -> EstimateRequest:
    return EstimateRequest(resolve_model(model), "llama.cpp", QUANTS, KVS, devices=devices, context=context)


@pytest.mark.bench
@pytest.mark.parametrize("card", [True, False], ids=["with-speed", "without-speed"])
def test_full_estimate_with_and_without_speed(benchmark, card):
    dev = Device("GPU", 20000, card=CARD if card else None)
    req = _request((dev,))
    run_estimate(req)  # warm the per-model caches, as the dashboard does after the first pick
    assert benchmark(full_estimate, req) == 6 + (70 if card else 0)


@pytest.mark.bench
@pytest.mark.parametrize("card", [True, False], ids=["with-speed", "without-speed"])
def test_two_gpu_offload_estimate_with_and_without_speed(benchmark, card):
    """The heavier case: two GPUs, a 70B model whose plan runs part of it on the CPU at 128k."""
    devs = tuple(Device(n, 20000, card=CARD if card else None) for n in ("A", "B"))
    req = _request(devs, "llama-3.1-70b", 131072)
    est = run_estimate(req)
    assert not plan_row(req, est).fully_offloaded
    timed = sum(1 for r in est.results if r.max_context > 0) + 1 if card else 0
    assert benchmark(full_estimate, replace(req)) == 6 + 10 * timed


@pytest.mark.bench
@pytest.mark.parametrize("cold", [False, True], ids=["placements-seen", "placements-new"])
def test_speed_part_of_a_full_estimate(benchmark, cold):
    """Only the speed calls a full estimate makes (six rows at the target, the plan with its offload
    step): the added cost itself, measured without the rest of the estimate's noise. `placements-new`
    empties the speed model's input cache before every round (a model, quant or GPU never seen);
    `placements-seen` is the dashboard re-running an estimate whose placements it has met (a new
    context, free memory moving)."""
    from lander_tui.core import speed
    from lander_tui.core.engines import get_engine

    req = _request((Device("GPU", 20000, card=CARD),))
    est = run_estimate(req)
    plan = plan_row(req, est)
    engine, m, opts = get_engine(req.engine), req.model, req.options

    def speed_calls() -> int:
        rows = [engine.speed(m, q, kv, 32768, req.devices, opts) for q in QUANTS for kv in KVS]
        with_step = engine.speed(m, plan.quant, plan.kv_cache, plan.context, req.devices, opts, plan)
        return sum(r is not None for r in rows) + (with_step.offload_step_cost is not None)

    if cold:
        assert benchmark.pedantic(speed_calls, setup=speed._INPUTS.clear, rounds=300) == 7
    else:
        assert benchmark(speed_calls) == 7
