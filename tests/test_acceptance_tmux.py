"""Acceptance: the real installed `lander-tui --demo`, driven through a tmux pane the way a user
drives it over SSH (keys in, screen text out), at 120x40 and at 80x24.

Nothing here imports the dashboard: the app runs as its own process from the installed console
script, and every check reads the screen tmux holds. Each wait polls the pane until its condition
holds or a deadline passes, so the tests are quick on a fast machine and patient on a busy one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lander_tui.core.gpu import DEMO_SCENARIO

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not on PATH: these tests drive the real app inside a tmux pane")

#: The console script installed next to the interpreter running the tests (`uv run pytest`
#: runs `<repo>/.venv/bin/python`, so this is `<repo>/.venv/bin/lander-tui`).
LANDER = Path(sys.executable).parent / "lander-tui"

FIRST_FRAME_S = 20.0  # start-up on a busy 2-core machine: imports, first GPU poll, first estimate
REACT_S = 10.0  # a keystroke's answer
EXIT_S = 10.0
SETTLE_S = 0.05  # a frame is settled when it reads the same this long later

#: A results-table row: optional ★, quant, KV type, max context (1,234), then the GiB columns.
ROW = re.compile(r"[★ ] (?P<quant>[A-Za-z0-9][\w.+-]*) +(?P<kv>[a-z0-9][\w.]*) +"
                 r"(?P<ctx>\d{1,3}(?:,\d{3})*)↑? +\d+\.\d+ ")  # ↑: past the trained maximum
#: The demo GPUs as the panel names them (the vendor prefix may be dropped).
DEMO_NAMES = [g["name"].removeprefix("NVIDIA ") for g in DEMO_SCENARIO["gpus"]]


class Pane:
    """One app in one tmux pane on a private server (its own socket, no user config)."""

    def __init__(self, socket: str, conf: Path) -> None:
        assert TMUX is not None
        self._base = [TMUX, "-u", "-L", socket, "-f", str(conf)]
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        env.setdefault("LANG", "C.UTF-8")
        self._env = env
        self.target = "acc"

    def tmux(self, *args: str) -> str:
        done = subprocess.run([*self._base, *args], env=self._env, capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=15)
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def start(self, command: str, width: int, height: int) -> None:
        self.tmux("new-session", "-d", "-s", self.target, "-x", str(width), "-y", str(height), command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target)

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.target, *keys)

    def fmt(self, spec: str) -> str:
        return self.tmux("display-message", "-p", "-t", self.target, spec).strip()

    def dead(self) -> bool:
        return self.fmt("#{pane_dead}") == "1"

    def wait_for(self, what: str, check: Callable[[str], bool], timeout: float = REACT_S) -> str:
        """Poll the screen until `check(screen)` holds on a settled frame; fail with the last screen
        if it never does. tmux may be captured half-way through drawing a frame, so a screen only
        counts once a second capture a moment later shows the same text."""
        deadline = time.monotonic() + timeout
        screen = ""
        while True:
            screen = self.screen()
            if check(screen):
                time.sleep(SETTLE_S)
                if self.screen() == screen:
                    return screen
            if self.dead():
                pytest.fail(f"lander-tui exited while waiting for {what}; last screen:\n{screen}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:.0f} s; last screen:\n{screen}")
            time.sleep(0.1)

    def wait_dead(self, timeout: float = EXIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.dead():
            if time.monotonic() > deadline:
                pytest.fail(f"lander-tui still running {timeout:.0f} s after q; screen:\n{self.screen()}")
            time.sleep(0.1)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Pane]]:
    """`launch(width, height, *args)`: `lander-tui --demo` (or `lander-tui ARGS`) in a detached tmux
    session of that size."""
    if not LANDER.is_file():
        pytest.fail(f"the lander-tui console script is not installed next to {sys.executable} "
                    f"(looked for {LANDER}); run `uv sync`")
    conf = tmp_path / "tmux.conf"
    # keep the pane (and its exit status) after the app quits; no status line: the app gets every row
    conf.write_text("set -g remain-on-exit on\nset -g status off\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    socket = f"lander-acc-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    pane = Pane(socket, conf)
    started = False

    def start(width: int, height: int, *args: str) -> Pane:
        nonlocal started
        assert not started, "one app per test"
        env = {"TERM": "xterm-256color", "COLORTERM": "truecolor", "HF_HUB_OFFLINE": "1",
               "LANDER_TUI_CACHE_DIR": str(cache), "HOME": str(tmp_path)}
        command = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # --no-scan: engines that happen to run on this machine stay out of the screens compared here
        command += f" {shlex.quote(str(LANDER))} " + (" ".join(shlex.quote(a) for a in (*args, "--no-scan"))
                                                     if args else "--demo")
        pane.start(command, width, height)
        started = True
        return pane

    try:
        yield start
    finally:
        try:
            socket_path = pane.fmt("#{socket_path}") if started else ""
        except (AssertionError, subprocess.TimeoutExpired):
            socket_path = ""
        subprocess.run([TMUX or "tmux", "-L", socket, "kill-server"], capture_output=True, timeout=15)
        if socket_path.endswith(socket):
            Path(socket_path).unlink(missing_ok=True)


def rows(screen: str) -> list[re.Match[str]]:
    return [m for line in screen.splitlines() for m in [ROW.search(line)] if m]


def kv_types(screen: str) -> set[str]:
    return {m["kv"] for m in rows(screen)}


def quants(screen: str) -> set[str]:
    return {m["quant"] for m in rows(screen)}


def results_shown(screen: str) -> bool:
    return "max ctx" in screen and any(int(m["ctx"].replace(",", "")) > 0 for m in rows(screen))


def full_dashboard(screen: str) -> bool:
    """Both demo GPUs by name, and the results table with exactly one recommended (★) row."""
    return (all(screen.count(name) >= DEMO_NAMES.count(name) for name in DEMO_NAMES)
            and "GPU 0" in screen and "GPU 1" in screen and results_shown(screen)
            and sum(m.group(0).startswith("★") for m in rows(screen)) == 1)


def test_demo_dashboard_by_keys(launch: Callable[..., Pane]) -> None:
    pane = launch(120, 40)
    first = pane.wait_for("first full screen (GPU panel and results table)", full_dashboard, FIRST_FRAME_S)

    # what a user sees first (the wait checked both demo GPUs by name and one ★ row): the demo
    # GPUs, side by side with a table of max contexts
    assert "lander-tui" in first.splitlines()[0], first
    assert "demo" in first.splitlines()[0], "the top bar should say these GPUs are the demo's fakes"
    gpu_line = next(line for line in first.splitlines() if "GPU 0" in line)
    assert re.search(r"GPU 0 .*│.*│", gpu_line), f"at 120 columns the panels stand side by side:\n{first}"
    assert max(int(m["ctx"].replace(",", "")) for m in rows(first)) >= 1024, f"a real max context:\n{first}"
    start_kv, start_quants = kv_types(first), quants(first)
    assert "ollama" not in first.lower(), first  # so seeing it later means `b` did it

    # k: the next KV-cache type; every row is now planned with that one type
    pane.send("k")
    after_k = pane.wait_for("one KV type after k",
                            lambda s: len(kv_types(s)) == 1 and kv_types(s) != start_kv and results_shown(s))
    (kv1,) = kv_types(after_k)
    assert quants(after_k) == start_quants, after_k
    pane.send("k")
    after_kk = pane.wait_for("the next KV type after k k",
                             lambda s: len(kv_types(s)) == 1 and kv_types(s) != {kv1} and results_shown(s))
    assert quants(after_kk) == start_quants, after_kk

    # b: llama.cpp -> Ollama -> vLLM; vLLM loads other weight formats, so every quant row changes
    pane.send("b")
    pane.wait_for("Ollama after b", lambda s: "ollama" in s.lower() and results_shown(s))
    pane.send("b")
    after_bb = pane.wait_for("vLLM's quants after b b",
                             lambda s: bool(quants(s)) and not quants(s) & start_quants)
    assert "max ctx" in after_bb

    # ?: the help screen lists the keys; Esc closes it and the dashboard is back
    pane.send("?")
    help_screen = pane.wait_for("help screen after ?",
                                lambda s: all(key in s for key in ("Next KV-cache type", "Next engine", "Quit")))
    assert not ROW.search(help_screen), f"the help screen should cover the results table:\n{help_screen}"
    pane.send("Escape")
    back = pane.wait_for("dashboard after Esc",
                         lambda s: "Next KV-cache type" not in s and results_shown(s))
    assert quants(back) and not quants(back) & start_quants, f"closing help should not change the plan:\n{back}"

    # q: the app exits, cleanly
    pane.send("q")
    pane.wait_dead()
    assert pane.fmt("#{pane_dead_status}") in ("0", ""), pane.screen()  # empty: tmux too old to say


def test_narrow_terminal_still_shows_results(launch: Callable[..., Pane]) -> None:
    pane = launch(80, 24)
    # stacked from the first settled frame: the form sits under the GPU panel, not beside it
    # (the form, or the results when the dashboard has already scrolled them into view: on a loaded
    # machine the first capture can come after that scroll)
    titles = ("Model and knobs", "─ Results")
    first = pane.wait_for("the first frame at 80x24", lambda s: any(t in s for t in titles), FIRST_FRAME_S)
    title_line = next(line for line in first.splitlines() if any(t in line for t in titles))
    assert title_line.startswith(("╭─ Model and knobs", "╭─ Results")), \
        f"the first frame should already be one column:\n{first}"

    def results_in_view(screen: str) -> bool:
        # the whole condition, waited for: on a loaded machine a frame with the table half scrolled
        # into view can stay still for longer than the settle time, and checking after the wait failed
        lines = screen.splitlines()
        return results_shown(screen) and any(line.startswith("╭─ Results") for line in lines) \
            and sum(1 for line in lines if ROW.search(line)) >= 2

    screen = pane.wait_for("the results scrolled into view at 80x24", results_in_view, FIRST_FRAME_S)
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), screen
    # one column: the results box spans the width instead of standing beside the GPU panel
    title = next((line for line in lines if "Results" in line), None)
    assert title is not None, f"the Results panel should be in view:\n{screen}"
    assert title.startswith("╭"), f"Results should start at the left edge when panels stack:\n{screen}"
    assert not any("││" in line for line in lines if ROW.search(line)), \
        f"no panel should stand beside the results at 80 columns:\n{screen}"
    assert sum(1 for line in lines if ROW.search(line)) >= 2, screen

    pane.send("q")
    pane.wait_dead()


# --- issue 11, D6-D8: the report's key sequences, one consistent screen --------------------------

#: The plan line ("▶ plan Q8_0/q8_0 @ 131,072", "✓ plan ... loads") and the breakdown bar's label.
PLAN_LINE = re.compile(r"plan (?P<quant>[\w.+-]+)/(?P<kv>[\w.]+) @ (?P<ctx>[\d,]+)")
BAR_LABEL = re.compile(r"plan @(?P<ctx>[\d.]+[kM]?):")
NO_GPU = {"init_error": "library_missing", "gpus": []}


def capture(pane: Pane, name: str, screen: str) -> None:
    """Keep the screen as evidence when LANDER_ACCEPTANCE_CAPTURES names a folder."""
    folder = os.environ.get("LANDER_ACCEPTANCE_CAPTURES")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.txt").write_text(screen)


def focus_field(pane: Pane, label: str) -> None:
    """/ (the search box), then Tab until the knob `label` has focus: its label reads "▸ <label>".
    One key at a time, each waited for: a key sent before the last one is drawn lands elsewhere."""
    def marked(screen: str) -> str:
        found = re.search(r"▸✗? ([A-Z][\w -]*?)(?= {2}|$|│)", screen, re.MULTILINE)
        return found.group(1).strip() if found else ""

    pane.send("/")
    pane.wait_for("the search box focused", lambda s: "esc leave field" in s)
    current = ""
    for _ in range(12):
        pane.send("Tab")
        screen = pane.wait_for("focus on the next knob", lambda s, c=current: marked(s) not in ("", c))
        current = marked(screen)
        if current == label:
            return
    pytest.fail(f"Tab never reached {label}:\n{pane.screen()}")


def one_state(screen: str) -> tuple[str, str, int]:
    """The plan line and the breakdown bar agree on the plan (row and context); the plan's row is in
    the table. Returns the plan's (quant, KV, context)."""
    from lander_tui.ui.text import short_tokens

    plan = PLAN_LINE.search(screen)
    bar = BAR_LABEL.search(screen)
    assert plan and bar, f"no plan line or breakdown label:\n{screen}"
    ctx = int(plan["ctx"].replace(",", ""))
    assert bar["ctx"] == short_tokens(ctx), f"the bar and the plan line are about different contexts:\n{screen}"
    assert any((m["quant"], m["kv"]) == (plan["quant"], plan["kv"]) for m in rows(screen)), screen
    return plan["quant"], plan["kv"], ctx


def test_d6_a_wrong_target_leaves_one_consistent_screen(launch: Callable[..., Pane], tmp_path: Path) -> None:
    scenario = tmp_path / "no-gpu.json"
    scenario.write_text(json.dumps(NO_GPU))
    pane = launch(120, 40, "--gpu-scenario", str(scenario))
    first = pane.wait_for("the first plan", lambda s: bool(PLAN_LINE.search(s)) and results_shown(s), FIRST_FRAME_S)
    one_state(first)
    focus_field(pane, "Target ctx")
    pane.tmux("send-keys", "-t", pane.target, "-l", "--", "1e6")  # one read, as the report typed it
    screen = pane.wait_for("the wrong target marked", lambda s: "last valid input" in s and "✗" in s)
    time.sleep(0.5)  # the plan follows a frame after the table: give it every chance to disagree
    screen = pane.wait_for("a settled screen", lambda s: "last valid input" in s)
    capture(pane, "d6-target-1e6", screen)
    quant, kv, ctx = one_state(screen)
    reason = next(line for line in screen.splitlines() if "last valid input" in line)
    assert "Target context" in reason, reason
    assert "1e6" in screen and "✗ Target ctx" in screen, screen


def test_d7_an_unknown_what_if_leaves_one_consistent_screen(launch: Callable[..., Pane], tmp_path: Path) -> None:
    scenario = tmp_path / "no-gpu.json"
    scenario.write_text(json.dumps(NO_GPU))
    pane = launch(120, 40, "--gpu-scenario", str(scenario))
    pane.wait_for("the first plan", lambda s: bool(PLAN_LINE.search(s)) and results_shown(s), FIRST_FRAME_S)
    before = pane.wait_for("what-if RTX 4090", lambda s: "planning for what-if RTX 4090" in s.splitlines()[0])
    plan_before = one_state(before)
    pane.send("w")
    pane.wait_for("the what-if dialog", lambda s: "Esc back" in s)
    pane.send("C-u")
    time.sleep(0.2)
    pane.send("Enter")  # empty: used to plan on the first card of the list
    empty = pane.wait_for("the empty Enter refused", lambda s: "type a GPU or instance name" in s)
    capture(pane, "d7-dialog-empty-enter", empty)
    pane.tmux("send-keys", "-t", pane.target, "-l", "--", "banana 9000")
    pane.send("Enter")
    refused = pane.wait_for("the unknown name refused", lambda s: "no catalog GPU matches" in s)
    capture(pane, "d7-dialog-banana", refused)
    pane.send("Escape")
    # the same name typed into the form's What-if field
    pane.wait_for("the dialog closed", lambda s: "Esc back" not in s)
    focus_field(pane, "What-if GPU")
    pane.send("C-u")
    # the cleared field is refused first (twice, in full-suite runs on a loaded machine, text typed
    # while that refusal was drawn did not reach the field; not reproduced in isolation)
    pane.wait_for("the cleared field refused", lambda s: "✗ What-if GPU: type a GPU or instance" in s)
    pane.tmux("send-keys", "-t", pane.target, "-l", "--", "banana 9000")
    screen = pane.wait_for("the wrong what-if marked", lambda s: "last valid input" in s and "banana 9000" in s,
                           FIRST_FRAME_S)  # eleven keys, each a new check of the form: patient under load
    time.sleep(0.5)
    screen = pane.wait_for("a settled screen", lambda s: "last valid input" in s)
    capture(pane, "d7-what-if-banana", screen)
    lines = screen.splitlines()
    assert "banana" not in lines[0] and "planning for what-if RTX 4090" in lines[0], lines[0]
    assert any("RTX 4090 24GB" in line and "▶ plan" in line for line in lines), screen  # the card stays
    assert one_state(screen) == plan_before and "what-if RTX 4090 24GB" in screen
    assert "What-if GPU RTX 4090" in screen and "✗ What-if GPU" in screen


def test_d8_switching_engine_never_shows_text_the_table_ignores(launch: Callable[..., Pane]) -> None:
    pane = launch(120, 40)
    pane.wait_for("first full screen", full_dashboard, FIRST_FRAME_S)
    focus_field(pane, "Quants")
    pane.tmux("send-keys", "-t", pane.target, "-l", "--", "Q4_K_M")
    pane.send("Tab")
    pane.wait_for("KV cache focused", lambda s: "▸ KV cache" in s)
    pane.tmux("send-keys", "-t", pane.target, "-l", "--", "q8_0")
    pane.send("Escape")
    typed = pane.wait_for("Q4_K_M/q8_0 only", lambda s: quants(s) == {"Q4_K_M"} and kv_types(s) == {"q8_0"})
    capture(pane, "d8-llamacpp-typed", typed)
    pane.send("b", "b")  # Ollama, then vLLM
    screen = pane.wait_for("vLLM's rows", lambda s: "vllm" in s and bool(quants(s)) and "Q4_K_M" not in quants(s),
                           FIRST_FRAME_S)  # two engines' estimates in a row: patient on a loaded machine
    time.sleep(0.5)
    screen = pane.wait_for("a settled screen", lambda s: "vllm" in s and bool(quants(s)))
    capture(pane, "d8-vllm", screen)
    knobs = next(line for line in screen.splitlines() if "vllm" in line and "▼" in line)
    assert "Q4_K_M" not in knobs and "q8_0" not in knobs, knobs  # the fields show what the table uses
    assert kv_types(screen) <= {"auto", "fp8"}, screen
    one_state(screen)
