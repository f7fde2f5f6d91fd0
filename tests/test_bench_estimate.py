"""Speed target: one full estimate (3 quants x 2 KV types x solver x 256-point curve) under 5 ms.

Run with `uv run pytest tests/test_bench_estimate.py --benchmark-enable` to see the figures; in the
normal run it executes once as a correctness check of the same code path.
"""

from __future__ import annotations

from lander_tui.core.estimate import EstimateRequest, curve, run_estimate
from lander_tui.core.model_source import resolve_model


def full_estimate(req: EstimateRequest) -> int:
    est = run_estimate(req)
    row = next(r for r in est.results if (r.quant, r.kv_cache) == (est.recommendation.quant,
                                                                     est.recommendation.kv_cache))
    xs, ys = curve(req, row.quant, row.kv_cache, 256, max_context=row.max_context)
    return len(est.results) + len(xs)


def test_full_estimate_speed(benchmark):
    req = EstimateRequest(resolve_model("llama-3.1-8b"), "llama.cpp", ("Q4_K_M", "Q6_K", "Q8_0"),
                          ("f16", "q8_0"), free_mib=20000)
    run_estimate(req)  # warm the per-model caches, as the dashboard does after the first pick
    assert benchmark(full_estimate, req) == 6 + 256
