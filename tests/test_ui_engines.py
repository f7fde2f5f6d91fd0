"""Running engines in the dashboard, driven through Pilot: the real app, fake GPUs (the NVML stand-in
with the engines' PIDs attached) and the fake engine servers of tests/test_live_readers.py (recorded
answers in tests/data/live), as real processes under the engines' command lines or as loopback URLs.

Each engine shows next to its GPU (model, context, slots, KV use, held vs predicted, the restart
advice) or its state in place; the 1 s GPU tick goes on while an engine is slow; `u` and the palette
turn an engine's configuration into the form.
"""

from __future__ import annotations

import time

import pytest
from gguf_fixtures import write_llama_gguf
from live_fakes import FakeEngine, dead_url, free_port, fresh_readers, only_processes, spawn_engine  # noqa: F401
from textual.widgets import Input

from lander_tui import cli
from lander_tui.core.gpu import FakeBackend
from lander_tui.core.live import EngineConfig, LiveClient, LoadedModel, history, predict
from lander_tui.core.live.predict import restart
from lander_tui.ui.app import LanderApp
from lander_tui.ui.fixtures import frozen_app
from lander_tui.ui.widgets.engine_lines import EngineLines
from lander_tui.ui.widgets.gpu_panel import GpuCard

pytestmark = pytest.mark.usefixtures("fresh_readers")
SIZE = (120, 40)
HELD = 700.0
TOTAL, FREE_AT_START = 24564.0, None  # an RTX 4090


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    history.forget_session()
    yield
    history.forget_session()


@pytest.fixture
def llama(tmp_path):
    """A fake llama-server process (2 slots of 4096 over 8192 q8_0 cells, flash attention on) serving a
    real tiny GGUF, as `engines` tests use it."""
    model = write_llama_gguf(tmp_path / "tiny-Q4_K_M.gguf", n_layers=4, hidden=512, context=131072)
    port = free_port()
    sp = spawn_engine(tmp_path / "llama", "llama-server",
                      ["-m", str(model), "-c", "8192", "-np", "2", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on",
                       "--port", str(port), "--metrics"], kind="llama-server", version="2026", model_path=str(model))
    yield sp, port, model
    sp.stop()


def scenario(holders: dict[int, float]) -> dict:
    return {"driver": "580.159.04", "gpus": [
        {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-4090", "total_mib": TOTAL, "reserved_mib": 347,
         "processes": [{"pid": pid, "used_mib": mib, "command": "llama-server"} for pid, mib in holders.items()]},
        {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-4090-b", "total_mib": TOTAL, "reserved_mib": 347,
         "processes": []}]}


def expected_config(model) -> EngineConfig:
    return EngineConfig(model=str(model), context=4096, parallel=2, kv_cells=8192, kv_unified=False,
                        kv_type="q8_0", flash_attn=True)


async def until(pilot, done, limit: float = 20.0, what: str = "the engines to be read") -> None:
    """Let the app run until `done()` (readings arrive on their own threads); fail after `limit` s."""
    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await pilot.pause(0.05)


def card_lines(app: LanderApp, index: int) -> str:
    card = next(c for c in app.query(GpuCard) if c.index == index and not c.is_what_if)
    return card.query_one(EngineLines).text


def elsewhere(app: LanderApp) -> str:
    return app.query_one("#engines-elsewhere", EngineLines).text


async def test_each_engine_shows_next_to_its_gpu_or_its_state_in_place(llama, tmp_path):
    sp, port, model = llama
    slow = FakeEngine("vllm", "2026", "slow", delay_s=5.0)
    auth = FakeEngine("sglang", "2026", "auth")
    broken = FakeEngine("tgi", "3.3", "malformed")
    xllm = FakeEngine("xllm", "2026-01")
    tgi = FakeEngine("tgi", "1.4")
    dead = dead_url()
    urls = [f"vllm={slow.url}", f"sglang={auth.url}", f"tgi={broken.url}", f"xllm={xllm.url}", f"llama.cpp={dead}",
            f"tgi={tgi.url}"]
    app, _clock = frozen_app(scenario({sp.pid: HELD}), demo=False, engine_urls=urls, scan_engines=True,
                             engine_options={"discover_fn": only_processes(sp.pid),
                                             "client": LiveClient(connect_s=0.2, read_s=0.5, total_s=1.0)})
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.poll_now()
            await until(pilot, lambda: len(app.engines.rows) == 7 and all(
                r.comparison.engine.read_at for r in app.engines.rows) and any(
                r.comparison.held_mib and r.restart for r in app.engines.rows))
            await pilot.pause()
            mine = card_lines(app, 0)
            want = predict("llama-server", LoadedModel("x", expected_config(model)), TOTAL)
            free = app.snapshot.gpu(0).free_mib
            advice = restart("llama-server", LoadedModel("x", expected_config(model)), HELD + free, TOTAL)
            (st,) = [r.comparison.engine for r in app.engines.rows if r.comparison.engine.pid == sp.pid]
            assert mine.splitlines() == [
                f"▸ llama.cpp :{port} {model.name}",
                f"  ctx 4,096×2 · KV 0% · {st.tokens_per_s:,.1f} tok/s",  # the server's own gauge
                "  0/2 slots busy",
                f"  held {HELD:,.0f} · predicted {want.total_mib:,.0f}",
                f"  diff {HELD - want.total_mib:+,.0f} MiB ({100 * (HELD - want.total_mib) / want.total_mib:+.1f}%)",
                f"  ↻ {advice.context:,} ctx on {advice.available_mib:,.0f} MiB",
                f"    -c {2 * advice.context} -np 2",
            ]
            assert card_lines(app, 1) == ""  # nothing runs on GPU 1
            rest = elsewhere(app)
            assert rest.startswith("engines on no GPU shown here")
            for line in (f"▸ vLLM :{slow.port}", "✗ slow: no answer", f"▸ SGLang :{auth.port}",
                         "✗ auth required: http://", f"▸ TGI :{broken.port}", "✗ malformed:",
                         f"▸ llama.cpp :{dead.rsplit(':', 1)[1]}", "✗ dead: nothing answers",
                         f"▸ xLLM :{xllm.port}\n  no model loaded",
                         "no prediction: lander-tui has no memory model for TGI yet"):
                assert line in rest, f"{line!r} not in\n{rest}"
            assert "held ? MiB (not on a GPU here)" in rest  # TGI's model: read, but no process of ours holds it
            # the comparison went to the user's accuracy history, once
            (line,) = history.load()
            assert (line["engine"], line["held_mib"]) == ("llama-server", HELD)
            assert line["predicted_mib"] == pytest.approx(want.total_mib, abs=0.05)
    finally:
        for fake in (slow, auth, broken, xllm, tgi):
            fake.stop()


async def test_the_gpu_tick_goes_on_while_an_engine_is_slow(tmp_path):
    """A reading that takes 30 s: GPU snapshots keep being applied while it is in flight."""
    slow = FakeEngine("vllm", "2026", "slow", delay_s=30.0)
    backend = FakeBackend(scenario({}))
    app = LanderApp(backend, demo=True, poll_interval=0.05, engine_urls=[f"vllm={slow.url}"],
                    engine_options={"client": LiveClient(read_s=30.0, total_s=30.0), "interval_s": 0.1})
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.engines.poller.in_flight() == 1, what="the slow reading to start")
            applied = app.snapshots_applied
            await until(pilot, lambda: app.snapshots_applied >= applied + 10, what="10 more GPU readings")
            assert app.engines.poller.in_flight() == 1 and app.engines.rows == ()  # still waiting on vLLM
    finally:
        slow.stop()


async def test_u_and_the_palette_turn_the_engine_into_the_form(llama, tmp_path):
    sp, port, model = llama
    app, _clock = frozen_app(scenario({sp.pid: HELD}), demo=False, scan_engines=True,
                             engine_options={"discover_fn": only_processes(sp.pid)})
    async with app.run_test(size=SIZE) as pilot:
        app.poll_now()
        await until(pilot, lambda: app.engines.rows and app.engines.rows[0].inputs is not None
                    and app.engines.rows[0].inputs.gpus == (0,))
        await pilot.press("g")  # plan on GPU 1 first: u must move the plan to the engine's GPU
        await pilot.press("u")
        await app.workers.wait_for_complete()
        await pilot.pause()
        f = app.form
        assert (f.engine, f.quants, f.kv_types, f.context, f.parallel, f.flash_attn) == (
            "llama.cpp", "Q4_K_M", "q8_0", "8k", "2", "on")
        assert (f.gpus, f.memory) == ((0,), "whole")
        assert app.model.detail == str(model)
        req = app.draft.request
        assert req.context == 8192 and req.options.n_parallel == 2 and req.options.flash_attn is True
        assert req.kv_types == ("q8_0",) and req.quants == ("Q4_K_M",)

        # the palette offers the same, by the engine's name
        await pilot.press("b")  # move away (the next engine) so the palette's effect shows
        assert app.form.engine != "llama.cpp"
        await pilot.press("ctrl+p")
        await pilot.press(*f":{port}")  # only the engine's own command ("Plan from llama.cpp :PORT ...") has it
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.form.engine == "llama.cpp" and app.form.context == "8k"


async def test_u_without_engines_says_what_it_looked_for():
    app, _clock = frozen_app(scenario({}), demo=False)
    async with app.run_test(size=SIZE) as pilot:
        app.poll_now()
        await pilot.press("u")
        await pilot.pause()
        (note,) = [n.message for n in app._notifications]
        assert note.startswith("no running engine seen (looked for llama-server") and "--engine URL" in note


def test_dashboard_engine_flag_bad_url_is_one_line(capsys):
    assert cli.main(["--engine", "ftp://x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--engine takes URL or KIND=URL" in err


def test_long_flags_wrap_under_their_indent_and_other_lines_stay_one_row():
    from lander_tui.ui.widgets.engine_lines import _rows

    lines = [("  ↻ 32,768 ctx on 28,800 MiB", "dim"),
             ("    --max-model-len 32768 --gpu-memory-utilization 0.353", "flags"),
             ("  ✗ dead: nothing answers at http://127.0.0.1:9/props (connection refused)", "bad")]
    rows = _rows(lines, 34)
    assert rows[0] == lines[0] and rows[-1] == lines[2]  # too long, but cut with … when drawn
    assert [t for t, _ in rows[1:-1]] == ["    --max-model-len 32768", "    --gpu-memory-utilization 0.353"]
