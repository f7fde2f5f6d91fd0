"""Shared fixtures: where the measured reference data lives (in the repository, under tests/data).

The data was copied from the project's shared reference folder with its READMEs and sources, so a
fresh clone runs every accuracy test; nothing here reads outside the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.prom_fixtures import prometheus_farm  # noqa: F401  (a session fixture: every Prometheus at once)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def model_facts() -> list[dict]:
    return json.loads((DATA / "models" / "model_facts.json").read_text())
