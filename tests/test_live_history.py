"""The history of predicted vs held: written when there is news, bounded, read back, shown as a table."""

from __future__ import annotations

import json

import pytest

from lander_tui.commands.engines import render_history
from lander_tui.core.live import EngineConfig, EngineState, LoadedModel, history
from lander_tui.core.live.predict import Comparison, Prediction


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    history.forget_session()
    yield
    history.forget_session()


def comparison(held: float | None, predicted: float = 1000.0, model: str = "m") -> Comparison:
    st = EngineState("llama-server", "http://127.0.0.1:8080", version="b0-0c1e57098", pid=5)
    m = LoadedModel(model, EngineConfig(model=f"/models/{model}.gguf", context=4096))
    p = Prediction("llama.cpp", model, {"kv_cells": 4096, "kv_type": "f16"}, predicted)
    return Comparison(st, m, p, held_mib=held, gpus=(0,), gpu_names=("NVIDIA GeForce RTX 4090",))


def test_a_comparison_is_written_once_until_its_numbers_move():
    assert history.history_path().parent.name == "cache"
    assert history.record([comparison(1100.0)]) == 1
    assert history.record([comparison(1101.0)]) == 0  # NVML wander, not news
    assert history.record([comparison(1200.0)]) == 1
    assert history.record([comparison(None), comparison(1200.0, model="other")]) == 1  # no held figure: nothing
    rows = history.load()
    assert [(r["model"], r["held_mib"], r["diff_mib"]) for r in rows] == [("m", 1100.0, 100.0), ("m", 1200.0, 200.0),
                                                                         ("other", 1200.0, 200.0)]
    assert rows[0]["engine"] == "llama-server" and rows[0]["version"] == "b0-0c1e57098"
    assert rows[0]["gpu"] == "NVIDIA GeForce RTX 4090" and rows[0]["config"] == {"kv_cells": 4096, "kv_type": "f16"}
    assert rows[0]["diff_pct"] == pytest.approx(10.0)


def test_damaged_lines_are_skipped_and_the_file_stays_bounded(monkeypatch):
    path = history.history_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"not": "an entry"}\nnot json\n')
    monkeypatch.setattr(history, "MAX_BYTES", 2000)
    for i in range(40):
        history.record([comparison(1000.0 + 10 * i)])
    assert path.stat().st_size <= 2000 + 400
    rows = history.load()
    assert rows and rows[-1]["held_mib"] == 1390.0  # the newest survive trimming
    assert all("predicted_mib" in r for r in rows)


def test_an_unwritable_cache_is_not_an_error(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(blocker / "sub"))
    assert history.record([comparison(1100.0)]) == 0


def test_the_history_table_and_its_summary():
    entries = [history.entry(comparison(h), at=1_800_000_000 + i) for i, h in enumerate((1050.0, 980.0, 1300.0))]
    text = render_history([e for e in entries if e])
    lines = text.splitlines()
    assert lines[0].split() == ["WHEN", "ENGINE", "GPU", "MODEL", "CONFIG", "PREDICTED", "HELD", "DIFF"]
    assert "+50 (+5.0%)" in lines[1] and "-20 (-2.0%)" in lines[2] and "+300 (+30.0%)" in lines[3]
    assert lines[-1] == ("3 comparisons (MiB); median |held - predicted| 50 MiB (5.0%), worst 300 MiB (30.0%)")
    assert json.loads(json.dumps(entries))  # entries are plain JSON
