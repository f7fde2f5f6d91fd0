"""The max-context search: exact on any monotone memory function, never a linear scan."""

from __future__ import annotations

import numpy as np
import pytest

from lander_tui.core.solver import max_fitting


@pytest.mark.parametrize("seed", range(20))
def test_matches_brute_force_on_random_monotone_functions(seed):
    rng = np.random.default_rng(seed)
    g = int(rng.choice([16, 256]))
    steps = rng.integers(0, 50, size=5000).cumsum().astype(float)  # monotone, with plateaus
    base = float(rng.uniform(0, 1000))

    calls = []

    def total_of(ctx):
        calls.append(len(np.atleast_1d(ctx)))
        k = np.minimum(np.asarray(ctx) // g, len(steps) - 1)
        return base + steps[k]

    budget = float(rng.uniform(base, base + steps[-1]))
    expected = max((k * g for k in range(1, len(steps)) if base + steps[k] <= budget), default=0)
    got = max_fitting(total_of, budget, g, hi_tokens=(len(steps) - 1) * g)
    assert got == expected
    assert len(calls) < 12  # a handful of vectorised rounds, not a scan


def test_nothing_fits_returns_zero():
    assert max_fitting(lambda c: np.asarray(c) * 0 + 10.0, 5.0, 256) == 0
