"""The estimator against real GPU memory measured on an H100 (tests/data/ground-truth).

Tolerances are the issue's: llama.cpp totals within 3 % (or 128 MiB) of NVML, each part within
64 MiB of llama.cpp's own breakdown, max context within 2 % and never above the measured maximum;
Transformers max context at most 7 % below the measured one (and never above).
"""

from __future__ import annotations

import pytest

from lander_tui.core.ground_truth import format_table, llamacpp_rows, transformers_rows


@pytest.fixture(scope="module")
def gt(data_dir):
    return data_dir / "ground-truth"


def test_llamacpp_runs_match_nvml_and_breakdown(gt):
    rows = [r for r in llamacpp_rows(gt) if "total" in r.measured]
    print("\n" + format_table(rows))
    assert len(rows) >= 10
    for r in rows:
        m, p = r.measured, r.predicted
        assert abs(p["total"] - m["total"]) <= max(128.0, 0.03 * m["total"]), r.case
        for part in ("model", "context", "compute"):
            assert abs(p[part] - m[part]) <= 64.0, (r.case, part)


def test_llamacpp_max_context_is_close_and_never_above(gt):
    rows = [r for r in llamacpp_rows(gt) if "max_context" in r.measured]
    print("\n" + format_table(rows))
    assert rows
    for r in rows:
        pred, ok = r.predicted["max_context"], r.measured["max_context"]
        assert pred <= ok, f"{r.case}: predicted {pred} would not load (measured max {ok})"
        assert pred >= 0.98 * ok, f"{r.case}: predicted {pred} is more than 2% below {ok}"


def test_transformers_kv_cache_is_exact_and_totals_close(gt):
    rows = [r for r in transformers_rows(gt) if "kv" in r.measured]
    print("\n" + format_table(rows))
    for r in rows:
        assert abs(r.predicted["kv"] - r.measured["kv"]) <= 0.01 * r.measured["kv"] + 0.01, r.case
        assert abs(r.predicted["total"] - r.measured["total"]) <= 0.06 * r.measured["total"], r.case


def test_transformers_max_context_within_7_percent_below(gt):
    rows = [r for r in transformers_rows(gt) if "max_context" in r.measured]
    print("\n" + format_table(rows))
    assert len(rows) >= 4
    for r in rows:
        pred, ok = r.predicted["max_context"], r.measured["max_context"]
        assert pred >= 0.93 * ok, f"{r.case}: predicted {pred} is more than 7% below {ok}"
        if not r.measured["capped_by_model"]:  # a search capped by the model's length is only a lower bound
            assert pred <= ok, f"{r.case}: predicted {pred} is above the measured maximum {ok}"
