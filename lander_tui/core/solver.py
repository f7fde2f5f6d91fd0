"""The longest context that fits, found exactly on the full memory function.

Memory is monotone in context but not linear (sliding windows saturate, compute buffers switch
phase), so we search instead of inverting a formula: each round evaluates 64 evenly spaced
multiples of the engine's granularity in one vectorised call and keeps the bracket around the
budget. Three or four rounds pin the answer to one granule, whatever the range.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

MAX_SEARCH_TOKENS = 1 << 24  # 16.7M tokens: beyond any model's context
_POINTS = 64


def max_fitting(total_of: Callable[[np.ndarray], np.ndarray], budget: float, granularity: int,
                hi_tokens: int = MAX_SEARCH_TOKENS) -> int:
    """Largest multiple of `granularity` whose total is <= budget; 0 if even one granule does not fit.

    The first round spaces its points geometrically (1 granule .. 16M tokens), so the bracket is
    within ~20 % after one call; linear rounds then close it.
    """
    g = max(1, int(granularity))
    hi_k = max(1, hi_tokens // g)
    ks = _geometric_grid(hi_k)
    lo_k, hi_k = _bracket(total_of, budget, g, ks, 0, hi_k + 1)
    while hi_k - lo_k > 1:
        ks = np.unique(np.linspace(lo_k, hi_k, num=min(_POINTS, hi_k - lo_k + 1)).astype(np.int64))
        lo_k, hi_k = _bracket(total_of, budget, g, ks, lo_k, hi_k)
    return lo_k * g


@lru_cache(maxsize=32)
def _geometric_grid(hi_k: int) -> np.ndarray:
    grid = np.unique(np.geomspace(1, hi_k, num=_POINTS).astype(np.int64))
    grid.setflags(write=False)
    return grid


def _bracket(total_of: Callable[[np.ndarray], np.ndarray], budget: float, g: int, ks: np.ndarray,
             lo_k: int, hi_k: int) -> tuple[int, int]:
    """Narrow (lo fits or is 0, hi does not fit or is past the range) using the points `ks`."""
    fits = np.asarray(total_of(ks * g)) <= budget
    if fits.any():
        lo_k = max(lo_k, int(ks[fits].max()))
    above = ks[(~fits) & (ks > lo_k)]
    if above.size:
        hi_k = min(hi_k, int(above.min()))
    return lo_k, hi_k


def curve_points(max_ctx: int, model_max: int, granularity: int, n: int = 256) -> np.ndarray:
    """Context lengths for a VRAM-vs-context plot: up to a bit beyond the larger of both limits."""
    top = max(granularity * 4, int(max(max_ctx, model_max) * 1.25))
    pts = np.linspace(granularity, top, n)
    return (np.maximum(1, np.round(pts / granularity)) * granularity).astype(np.int64)
