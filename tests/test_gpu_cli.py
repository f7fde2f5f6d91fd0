"""`lander-tui gpus`: table, --json, --watch, --what-if and --demo, through the real CLI entry."""

from __future__ import annotations

import io
import json

import pytest

import lander_tui.core.gpu as gpu_api
from lander_tui import cli
from lander_tui.commands import gpus as gpus_cmd
from lander_tui.core.gpu import GPUS, INSTANCES, FakeBackend, snapshot_to_json, what_if

SCENARIO = {
    "driver": "580.159.04",
    "gpus": [
        {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1111", "total_mib": 81559, "reserved_mib": 480,
         "util_percent": 63, "temp_c": 57, "power_w": 412, "power_cap_w": 700,
         "processes": [
             {"pid": 101, "user": "ana", "command": "/usr/bin/llama-server -m m.gguf",
              "used_mib": {"linear": [[0, 1000], [10, 11000]]}},
             {"pid": 102, "user": "ben", "command": "python -m vllm.entrypoints.openai.api_server",
              "used_mib": 30000},
             {"pid": 103, "user": "cy", "command": "python train.py", "used_mib": 500},
             {"pid": 104, "host_pid": True, "used_mib": 200},
         ]},
        {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-2222", "total_mib": 24564, "reserved_mib": 347,
         "unsupported": ["power"], "lost_at": 100},
    ],
}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake(monkeypatch):
    """Make `lander-tui gpus` see SCENARIO on a clock the test moves."""
    clock = Clock()
    made: list[FakeBackend] = []

    def open_backend(demo: bool = False, scenario: dict | None = None) -> FakeBackend:
        b = FakeBackend(SCENARIO, clock=clock, epoch=1_700_000_000.0)
        made.append(b)
        return b

    monkeypatch.setattr(gpu_api, "open_backend", open_backend)
    return clock, made


def reference(t: float):
    clock = Clock()
    clock.t = t
    return FakeBackend(SCENARIO, clock=clock, epoch=1_700_000_000.0).poll()


def test_table_shows_each_gpu_from_the_snapshot(fake, capsys):
    clock, made = fake
    clock.t = 5
    assert cli.main(["gpus"]) == 0
    out = capsys.readouterr().out
    snap = reference(5)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["GPU", "NAME", "USED"]
    for g in snap.gpus:
        row = next(line for line in lines if line.startswith(f"{g.index}  "))
        assert g.name.removeprefix("NVIDIA ") in row
        assert f"{g.used_mib:.0f} / {g.total_mib:.0f}" in row
        assert f" {g.free_mib:.0f} " in row
        assert f"{g.util_percent:.0f}%" in row and f"{g.temp_c:.0f}C" in row
    h100_row = lines[1]
    assert "412 / 700 W" in h100_row
    # top three processes, biggest first, then how many more
    assert h100_row.index("ben:vllm.entrypoints.openai.api_server/102 (30000M)") < h100_row.index(
        "ana:llama-server/101 (6000M)") < h100_row.index("cy:train.py/103 (500M)")
    assert "+1 more" in h100_row
    assert snap.gpus[1].power_w is None
    assert f"N/A / {snap.gpus[1].power_cap_w:.0f} W" in lines[2]  # power unsupported, the cap still shown
    assert made[0].nvml.initialised == 0  # closed after one shot


def test_json_is_the_snapshot_as_a_list(fake, capsys):
    clock, _ = fake
    clock.t = 7.5
    assert cli.main(["gpus", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == snapshot_to_json(reference(7.5))
    for obj in data:
        assert {"gpu_index", "gpu_name", "total_vram_mib", "used_vram_mib", "free_vram_mib", "processes"} <= set(obj)
    assert data[0]["used_vram_mib"] == pytest.approx(8500 + 30000 + 500 + 200)
    assert [p["pid"] for p in data[0]["processes"]] == [102, 101, 103, 104]
    assert data[0]["processes"][-1] == {"pid": 104, "used_vram_mib": 200.0, "command": None, "user": None,
                                         "kind": "C", "resolved": False}


def test_lost_gpu_row_and_message(fake, capsys):
    clock, _ = fake
    clock.t = 150
    assert cli.main(["gpus"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("1  "))
    assert "LOST" in row and "GPU 1 lost" in out


def test_watch_refreshes_until_ctrl_c_and_exits_0(fake, monkeypatch, capsys):
    clock, made = fake
    frames = []

    def sleep(seconds: float) -> None:
        frames.append(seconds)
        if len(frames) == 3:
            raise KeyboardInterrupt
        clock.t += 1.0

    monkeypatch.setattr(gpus_cmd.time, "sleep", sleep)
    assert cli.main(["gpus", "--watch", "--json", "--interval", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    used = [json.loads(line)[0]["used_vram_mib"] for line in lines]
    assert used == [pytest.approx(u) for u in (1000 + 30700, 2000 + 30700, 3000 + 30700)]  # the job grows
    assert made[0].nvml.initialised == 0


def test_watch_on_a_terminal_redraws_in_place_and_restores_the_cursor(fake, monkeypatch):
    clock, _ = fake

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    n = []

    def sleep(seconds: float) -> None:
        n.append(1)
        if len(n) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(gpus_cmd.time, "sleep", sleep)
    out = Tty()
    args = cli.build_parser().parse_args(["gpus", "--watch"])
    assert gpus_cmd.run(args, out=out) == 0
    text = out.getvalue()
    assert text.startswith("\x1b[?25l") and text.endswith("\x1b[?25h")
    assert text.count("\x1b[H\x1b[2J") == 2 and text.count("Ctrl-C to quit") == 2


def test_no_gpu_is_exit_1_with_one_line(monkeypatch, capsys):
    failing = {"init_error": "driver_not_loaded", "gpus": []}
    monkeypatch.setattr(gpu_api, "open_backend", lambda demo=False, scenario=None: FakeBackend(failing))
    message = FakeBackend(failing).poll().message
    for argv in (["gpus"], ["gpus", "--json"], ["gpus", "--watch"]):
        assert cli.main(argv) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.splitlines() == [f"lander-tui: {message}"]
        assert "modprobe" in message and "--what-if" in message


def test_demo_needs_no_gpu(capsys):
    assert cli.main(["gpus", "--demo"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 2 and "demo: fake GPUs" in out
    assert cli.main(["gpus", "--demo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["gpu_index"] for d in data] == [0, 1] and all(d["processes"] for d in data)


def test_what_if_table_and_json(capsys):
    assert cli.main(["gpus", "--what-if", "2x RTX 4090"]) == 0
    out = capsys.readouterr().out
    card = what_if("RTX 4090").gpus[0]
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 2
    for row in rows:
        assert "(what-if)" in row and f"0 / {card.total_mib}" in row and f" {card.usable_mib} " in row
    assert "what-if: 2x RTX 4090 24GB" in out
    assert cli.main(["gpus", "--what-if", "p4d.24xlarge", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    a100 = what_if("A100 40GB").gpus[0]
    assert len(data) == 8 and all(d["what_if"] and d["free_vram_mib"] == a100.usable_mib for d in data)


def test_what_if_list_prints_the_whole_catalog(capsys):
    assert cli.main(["gpus", "--what-if", "list"]) == 0
    out = capsys.readouterr().out
    for g in GPUS:
        assert g.name in out
    for i in INSTANCES:
        assert i.name in out
    assert cli.main(["gpus", "--what-if", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["gpus"]) == len(GPUS) and len(data["instances"]) == len(INSTANCES)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["gpus", "--what-if", "a100"], "matches several GPUs"),
        (["gpus", "--what-if", "warp drive 3000"], "unknown what-if GPU"),
        (["gpus", "--what-if", "T4", "--demo"], "either --what-if or --demo"),
        (["gpus", "--watch", "--interval", "0.1"], "--interval must be at least"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, words, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lander-tui: ") and words in lines[0]


def test_table_is_cut_to_the_terminal_width():
    text = gpus_cmd.render_table(reference(5), width=70)
    table = [line for line in text.splitlines() if line[:1].isdigit() or line.startswith("GPU ")]
    assert table and all(len(line) <= 70 for line in table)
    assert any(line.endswith("…") for line in table)
    wide = gpus_cmd.render_table(reference(5), width=None)
    assert "cy:train.py/103" in wide


def test_top_level_demo_flag_reaches_the_gpus_command(capsys):
    assert cli.main(["--demo", "gpus", "--json"]) == 0  # the dashboard's --demo, given first
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_kill_ends_watch_like_ctrl_c():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "lander_tui", "gpus", "--demo", "--watch", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert len(json.loads(first)) == 2
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and err == ""


def test_demo_watch_moves_like_the_dashboard_demo(monkeypatch, capsys):
    # issue 11 D18: `gpus --demo --watch` read as static. It is the dashboard's demo (same scenario,
    # same start at t=45 s): the training job on GPU 1 grows at t=50 s and the vLLM server on GPU 0
    # stops at t=100 s, so frames move within seconds; this pins that, on a clock the test moves.
    clock = Clock()
    asked: list[bool] = []

    def open_backend(demo: bool = False, scenario: dict | None = None) -> FakeBackend:
        asked.append(demo)
        return FakeBackend(gpu_api.DEMO_SCENARIO, clock=clock, epoch=1_700_000_000.0)

    def sleep(seconds: float) -> None:
        clock.t += 1.0
        if clock.t > 60:
            raise KeyboardInterrupt

    monkeypatch.setattr(gpu_api, "open_backend", open_backend)
    monkeypatch.setattr(gpus_cmd.time, "sleep", sleep)
    assert cli.main(["gpus", "--demo", "--watch", "--json"]) == 0
    assert asked == [True]
    frames = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    used = [[g["used_vram_mib"] for g in f] for f in frames]
    assert used[0] != used[5], "GPU 1's training job grows 5 s in"
    assert len({tuple(u) for u in used}) >= 3  # and more than once in a minute
