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


@pytest.fixture
def ui_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The dashboard under test: the Hub offline, a private cache, colour on, no cursor blink."""
    from textual.widgets import Input

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)

def _llamacpp_line() -> str:
    from support import llamacpp

    secs = llamacpp.build_seconds()
    state = f"cached (its build took {secs:.0f} s)" if llamacpp.is_built() and secs is not None \
        else "not built yet: the first test that needs it builds it"
    return f"llama.cpp: {llamacpp.VERSION}, {llamacpp.install_dir()}, {state}"


def pytest_report_header(config) -> str:
    """Say which real llama.cpp the tests judge against (tests/support/llamacpp.py pins it)."""
    return _llamacpp_line()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The same line at the end, which `-q` (the default here) still shows."""
    terminalreporter.write_line(_llamacpp_line())
