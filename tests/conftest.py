"""Shared fixtures: where the read-only reference data lives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.is_dir():  # a checkout somewhere else: look beside the repo
    SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def model_facts(shared_dir: Path) -> list[dict]:
    return json.loads((shared_dir / "data" / "model_facts.json").read_text())
