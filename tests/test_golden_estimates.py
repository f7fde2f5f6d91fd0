"""What `lander-tui estimate` prints for a fixed set of invocations (every engine, one and several GPUs,
offload, nothing fits, every format) stays what it was recorded as. A refactor must change none of it;
a deliberate change re-records it (`uv run python scripts/golden_estimates.py --write`) so the diff shows
what moved."""

from __future__ import annotations

import json

import pytest
from script_module import load_script

golden = load_script("golden_estimates")

RECORDED = json.loads(golden.GOLDEN.read_text())


def test_the_recorded_set_is_the_set_the_script_runs():
    assert sorted(RECORDED) == sorted(golden.invocations())


@pytest.mark.parametrize("line", sorted(RECORDED))
def test_output_is_unchanged(line, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert golden.run_one(line) == RECORDED[line]
