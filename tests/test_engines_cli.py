"""`lander-tui engines` end to end: fake engines as real processes under engines' command lines, a fake
GPU (the NVML stand-in) listing their PIDs, the real CLI entry: --json, the table, --watch, --history,
and one-line errors.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gguf_fixtures import write_llama_gguf
from live_fakes import dead_url, free_port, fresh_readers, spawn_engine  # noqa: F401 - the fixture

from lander_tui import cli
from lander_tui.commands import engines as engines_cmd
from lander_tui.core.live import EngineConfig, LoadedModel, history, predict

pytestmark = pytest.mark.usefixtures("fresh_readers")


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    history.forget_session()
    started = []
    yield tmp_path, started
    for sp in started:
        sp.stop()
    history.forget_session()


def scenario(tmp_path, holders: dict[int, float]) -> str:
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps({"driver": "580.159.04", "gpus": [
        {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-4090", "total_mib": 24564, "reserved_mib": 347,
         "processes": [{"pid": pid, "used_mib": mib} for pid, mib in holders.items()]}]}))
    return str(path)


@pytest.fixture
def llama(env):
    """A fake llama-server process (2 slots over 8192 cells) serving a real tiny GGUF."""
    tmp, started = env
    (tmp / "models").mkdir()
    model = write_llama_gguf(tmp / "models" / "tiny-Q4_K_M.gguf", n_layers=4, hidden=512)
    port = free_port()
    sp = spawn_engine(tmp / "llama", "llama-server", ["-m", str(model), "-c", "8192", "-np", "2", "--port", str(port),
                                                      "--metrics"], kind="llama-server", version="2026",
                      model_path=str(model))
    started.append(sp)
    cfg = EngineConfig(model=str(model), context=4096, parallel=2, kv_cells=8192, kv_unified=False)
    return sp, port, model, predict("llama-server", LoadedModel("tiny", cfg))


def rows_of(out: str, pid: int) -> list[dict]:
    return [r for r in json.loads(out)["rows"] if r["pid"] == pid]


def test_json_shows_the_engine_its_configuration_and_predicted_vs_held(llama, env, capsys):
    tmp, _ = env
    sp, port, model, expected = llama
    held = round(expected.total_mib) + 64
    assert cli.main(["engines", "--json", "--gpu-scenario", scenario(tmp, {sp.pid: held})]) == 0
    (row,) = rows_of(capsys.readouterr().out, sp.pid)
    assert (row["engine"], row["state"], row["url"]) == ("llama-server", "ok", f"http://127.0.0.1:{port}")
    assert row["config"]["model"] == str(model) and row["config"]["kv_cells"] == 8192
    assert (row["config"]["context"], row["config"]["parallel"]) == (4096, 2)
    assert (row["name"], row["slots_total"], row["slots_busy"]) == (model.name, 2, 0)
    assert row["gpus"] == [0] and row["processor"] == "GPU" and row["held_mib"] == held
    assert row["predicted"]["total_mib"] == pytest.approx(expected.total_mib, abs=0.05)
    assert row["diff_mib"] == pytest.approx(held - expected.total_mib, abs=0.1)
    assert row["diff_pct"] == pytest.approx(100 * (held - expected.total_mib) / expected.total_mib, abs=0.01)
    (line,) = [e for e in history.load() if e["model"] == row["name"]]
    assert line["held_mib"] == held and line["gpu"] == "NVIDIA GeForce RTX 4090"


def test_the_table(llama, env, capsys):
    tmp, _ = env
    sp, port, _, expected = llama
    assert cli.main(["engines", "--gpu-scenario", scenario(tmp, {sp.pid: 700})]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "ENGINE", "PID", "GPU", "SIZE", "PROCESSOR", "CONTEXT", "KV", "USE",
                              "PREDICTED", "DIFF", "STATE"]
    (row,) = [line for line in out if f" {sp.pid} " in line]
    assert row.startswith("tiny-Q4_K_M.gguf") and "llama.cpp" in row and "700 MiB" in row
    assert "4096 x2" in row and f"{expected.total_mib:,.0f} MiB" in row and row.endswith("ok")
    assert "DIFF = held - predicted" in out[-1]


def test_ollama_row_per_model_held_by_its_runner(env, capsys):
    tmp, started = env
    (tmp / "blobs").mkdir()
    blob = write_llama_gguf(tmp / "blobs" / "sha256-0badc0ffee", n_layers=4, hidden=512)
    api = free_port()
    runner = ["llama-server", "--model", str(blob), "--port", str(free_port()), "--host", "127.0.0.1", "-c", "8192",
              "-np", "2"]
    sp = spawn_engine(tmp / "ollama", "ollama", ["serve"], kind="ollama", version="2026", model_path=str(blob),
                      env={"OLLAMA_HOST": f"127.0.0.1:{api}"}, listen_port=api, children=[runner])
    started.append(sp)
    (runner_pid,) = sp.children
    assert cli.main(["engines", "--json", "--gpu-scenario", scenario(tmp, {runner_pid: 900})]) == 0
    (row,) = rows_of(capsys.readouterr().out, sp.pid)
    assert (row["name"], row["engine"], row["held_mib"], row["processor"]) == ("gemma3:270m", "ollama", 900,
                                                                               "100% GPU")
    assert row["config"]["kv_cells"] == 8192 and row["config"]["context"] == 4096
    assert row["predicted"] is not None and row["diff_mib"] == pytest.approx(900 - row["predicted"]["total_mib"],
                                                                             abs=0.1)


def test_given_urls_only(env, capsys):
    url = dead_url()
    assert cli.main(["engines", "--no-scan", "--engine", url, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert (row["url"], row["state"]) == (url, "dead") and "connection refused" in row["message"]


def test_nothing_found_is_one_line_saying_what_was_looked_for(env, monkeypatch, capsys):
    monkeypatch.setattr("lander_tui.core.live.discovery.process_table", lambda: {})
    assert cli.main(["engines", "--gpu-scenario", scenario(env[0], {})]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("no engines found: looked for llama-server")
    assert "ollama serve" in out and "vllm serve" in out and "--engine URL" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["engines", "--engine", "ftp://x"], "--engine takes URL or KIND=URL"),
    (["engines", "--engine", "nosuch=http://127.0.0.1:1"], "unknown engine kind 'nosuch'"),
    (["engines", "--no-scan"], "--no-scan reads only the --engine URLs"),
    (["engines", "--watch", "--interval", "0.1"], "--interval must be at least"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_watch_refreshes_and_keeps_tokens_per_second(llama, env, monkeypatch, capsys):
    tmp, _ = env
    sp, *_ = llama
    frames = []

    def sleep(seconds: float) -> None:
        frames.append(seconds)
        if len(frames) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(engines_cmd.time, "sleep", sleep)
    assert cli.main(["engines", "--watch", "--json", "--interval", "1", "--gpu-scenario",
                     scenario(tmp, {sp.pid: 700})]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    first, second = (rows_of(line, sp.pid)[0] for line in lines)
    assert first["tokens_per_s"] == pytest.approx(1.8, abs=0.01)  # the engine's own gauge on the first reading
    assert second["tokens_per_s"] == 0.0  # then the counter's slope: the recorded counter did not move


def test_history_after_a_run(llama, env, capsys):
    tmp, _ = env
    sp, *_ = llama
    assert cli.main(["engines", "--history"]) == 0
    assert capsys.readouterr().out.startswith("no comparisons recorded yet")
    assert cli.main(["engines", "--json", "--gpu-scenario", scenario(tmp, {sp.pid: 700})]) == 0
    capsys.readouterr()
    assert cli.main(["engines", "--history"]) == 0
    out = capsys.readouterr().out
    assert "tiny-Q4_K_M.gguf" in out and "llama-server b1-0c1e57098" in out and "1 comparisons" in out
    assert cli.main(["engines", "--history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"][0]["held_mib"] == 700


def test_as_a_separate_process(llama, env):
    tmp, _ = env
    sp, port, *_ = llama
    out = subprocess.run([sys.executable, "-m", "lander_tui", "engines", "--json", "--gpu-scenario",
                          scenario(tmp, {sp.pid: 700})], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ})
    assert out.returncode == 0, out.stderr
    (row,) = rows_of(out.stdout, sp.pid)
    assert row["url"] == f"http://127.0.0.1:{port}" and row["predicted"] and row["held_mib"] == 700
