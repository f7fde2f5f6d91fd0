"""Measure the dashboard as a user's terminal sees it, in a pseudo-terminal.

Prints, per run:
  first_frame_s      launch -> the first half-screen of bytes (what ../shared/tools/pty_measure.py reports)
  full_screen_s      launch -> the results table is on screen (its recommended row "★" has been drawn)
  key_to_table_ms    keystroke ('k' next KV type, '+'/'-' target context, alternating) -> the first
                     frame of the answer,
                     which carries the new table, recommendation and breakdown (median and max)
  key_to_chart_ms    the same keystroke -> the end of the output burst, the redrawn chart (or, with
                     --plan, the Plan view) included
  idle_bytes_per_s   bytes written per second while nobody types, GPUs ticking every second
  idle_cpu_percent   CPU (user+sys, all threads) of the dashboard over that idle window, % of one core

Usage:
  python scripts/measure_dashboard.py [--cols 120 --rows 40] [--idle 20] [--scenario ticking|demo]
                                      [--truecolor] [--engines N] [-- CMD ...]
CMD defaults to `.venv/bin/lander-tui` beside this script (measure an installed entry point: `uv run`
adds its own start-up). `--scenario ticking` (default) is two GPUs whose utilisation, power and
temperature change every second while the jobs' memory jitters by a few MiB; `demo` is `--demo`
(jobs start, grow and stop, so the plan itself changes now and then). `--engines N` (1-3, ticking only)
starts N fake engines from tests/data/live (a llama-server with a tiny GGUF, a vLLM, an SGLang) as
processes under their engines' command lines, their PIDs holding memory on the ticking GPUs: the
dashboard finds them by itself and polls them (every 3 s), as it would real ones. On a machine where
other engines come and go, run it in a PID namespace of its own so the dashboard sees only these:
`unshare --pid --fork --mount-proc uv run python scripts/measure_dashboard.py --engines 3` (root).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import random
import select
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def ticking_scenario(seconds: int = 600, seed: int = 7, engines: dict[int, list[tuple[int, float, str]]] | None = None
                     ) -> dict:
    """Two busy H100s: util/power/temp move every second, memory jitters +-24 MiB around steady jobs.
    `engines`: GPU index -> [(pid, MiB, command)] of engine processes holding memory there too."""
    rnd = random.Random(seed)

    def steps(lo: float, hi: float) -> list[list[float]]:
        return [[t, round(rnd.uniform(lo, hi))] for t in range(seconds)]

    gpus = []
    for i, (job, mib) in enumerate((("python train.py --bs 8", 52210), ("llama-server -m model.gguf", 9874))):
        gpus.append({
            "name": "NVIDIA H100 80GB HBM3", "uuid": f"GPU-tick-{i}", "total_mib": 81559, "reserved_mib": 480,
            "util_percent": steps(60, 99), "mem_bw_percent": steps(20, 70), "temp_c": steps(55, 72),
            "power_w": steps(300, 690), "power_cap_w": 700,
            "processes": [{"pid": 5000 + i, "user": "ana", "command": job,
                           "used_mib": [[t, mib + rnd.randint(-24, 24)] for t in range(seconds)]}],
        })
        for pid, held, command in (engines or {}).get(i, []):  # an idle engine's memory does not move
            gpus[-1]["processes"].append({"pid": pid, "user": "ana", "command": command, "used_mib": held})
    return {"name": "ticking", "loop_s": seconds, "gpus": gpus}


def start_engines(n: int, tmp: Path) -> tuple[list, dict[int, list[tuple[int, float, str]]]]:
    """N fake engines as processes under their engines' command lines (tests/live_fakes.py), and where
    each holds memory: the llama-server and the SGLang beside the jobs on GPU 1, the vLLM on GPU 0."""
    sys.path.insert(0, str(REPO / "tests"))
    from gguf_fixtures import write_llama_gguf
    from live_fakes import free_port, spawn_engine

    model = write_llama_gguf(tmp / "tiny-Q4_K_M.gguf", n_layers=4, hidden=512, context=131072)
    specs = [
        ("llama-server", "2026", "llama-server", None,
         ["-m", str(model), "-c", "8192", "-np", "2", "--metrics", "--port", str(free_port())], 1, 700.0),
        ("vllm", "2026", "vllm", None, ["serve", "Qwen/Qwen2.5-0.5B", "--gpu-memory-utilization", "0.3",
                                         "--port", str(free_port())], 0, 24400.0),
        ("sglang", "2026", None, "sglang.launch_server",
         ["--model-path", "Qwen/Qwen2.5-0.5B", "--port", str(free_port())], 1, 9000.0),
    ][:n]
    started, holders = [], {}
    for kind, version, program, module, args, gpu, held in specs:
        sp = spawn_engine(tmp / kind, program, args, kind=kind, version=version, module=module,
                          model_path=str(model))
        started.append(sp)
        holders.setdefault(gpu, []).append((sp.pid, held, " ".join([program or f"python -m {module}", *args])))
    return started, holders


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


class Pty:
    def __init__(self, cmd: list[str], cols: int, rows: int, env: dict[str, str]) -> None:
        self.t0 = time.monotonic()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ.update(env)
            os.execvp(cmd[0], cmd)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.total = 0
        self.buf = bytearray()
        self.last_byte = self.t0

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except OSError:
            return b""
        self.total += len(chunk)
        self.buf += chunk
        self.last_byte = time.monotonic()
        return chunk

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.read(max(0.0, min(0.05, end - time.monotonic())))

    def wait_for(self, needle: bytes, limit: float) -> float | None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            self.read(0.01)
            if needle in self.buf:
                return time.monotonic() - self.t0
        return None

    def burst_after_key(self, key: bytes, quiet: float = 0.15, limit: float = 2.0) -> tuple[float, float] | None:
        """(first byte, last byte) seconds after writing `key`, the burst ending once the output has
        been quiet for `quiet` s. The first frame carries the table; the chart follows in the next."""
        sent = time.monotonic()
        os.write(self.fd, key)
        first = None
        end = sent + limit
        while time.monotonic() < end:
            if self.read(0.002):
                if first is None:
                    first = self.last_byte - sent
            elif first is not None and time.monotonic() - self.last_byte >= quiet:
                return first, self.last_byte - sent
        return None

    def close(self) -> None:
        try:
            os.write(self.fd, b"q")
        except OSError:
            pass
        self.drain(1.0)
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)


def measure(cmd: list[str], cols: int, rows: int, idle_s: float, presses: int, truecolor: bool,
            plan: bool = False) -> dict:
    env = {"TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows), "HF_HUB_OFFLINE": "1"}
    if truecolor:
        env["COLORTERM"] = "truecolor"
    else:
        os.environ.pop("COLORTERM", None)
    p = Pty(cmd, cols, rows, env)
    first = None
    while time.monotonic() - p.t0 < 15 and first is None:
        p.read(0.01)
        if p.total > cols * rows // 2:
            first = time.monotonic() - p.t0
    full = p.wait_for("★".encode(), 15)
    if plan:
        os.write(p.fd, b"v")  # the Plan view instead of the curves (its live headroom line included)
    p.drain(3.0)  # let the first readings and the sparkline settle
    # idle: nobody types, the GPU panel ticks once a second
    bytes0, ticks0, t0 = p.total, cpu_ticks(p.pid), time.monotonic()
    p.drain(idle_s)
    idle_wall = time.monotonic() - t0
    idle_bytes = (p.total - bytes0) / idle_wall
    idle_cpu = 100.0 * (cpu_ticks(p.pid) - ticks0) / CLK_TCK / idle_wall
    # keystrokes, alternating 'k' (next KV type: every row changes, and their number when it
    # goes to or from the default pair) and '+'/'-' (target context: every number changes)
    firsts, lasts, sizes = [], [], []
    for i in range(presses):
        p.drain(0.35)
        before = p.total
        d = p.burst_after_key(b"k" if i % 2 == 0 else b"+-"[(i // 2) % 2:][:1])
        sizes.append(p.total - before)
        if d is not None:
            firsts.append(d[0] * 1000)
            lasts.append(d[1] * 1000)
    p.close()
    return {
        "first_frame_s": round(first, 3) if first else None,
        "full_screen_s": round(full, 3) if full else None,
        "key_to_table_ms_median": round(statistics.median(firsts), 1) if firsts else None,
        "key_to_table_ms_max": round(max(firsts), 1) if firsts else None,
        "key_to_chart_ms_median": round(statistics.median(lasts), 1) if lasts else None,
        "key_to_chart_ms_max": round(max(lasts), 1) if lasts else None,
        "key_bytes_median": round(statistics.median(sizes)) if sizes else None,
        "idle_bytes_per_s": round(idle_bytes),
        "idle_cpu_percent": round(idle_cpu, 2),
        "idle_window_s": round(idle_wall, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--idle", type=float, default=20.0, help="idle window, seconds")
    ap.add_argument("--presses", type=int, default=12)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--scenario", choices=["ticking", "demo"], default="ticking")
    ap.add_argument("--truecolor", action="store_true", help="COLORTERM=truecolor (default: 256 colours, as over SSH)")
    ap.add_argument("--plan", action="store_true", help="press v first: measure with the Plan view shown")
    ap.add_argument("--engines", type=int, default=0, choices=range(4), metavar="N",
                    help="also run N (1-3) fake engines the dashboard finds and polls (ticking scenario)")
    ap.add_argument("cmd", nargs="*", help="the dashboard command (after --)")
    args = ap.parse_args()
    cmd = args.cmd or [str(REPO / ".venv" / "bin" / "lander-tui")]
    with tempfile.TemporaryDirectory() as tmp:
        engines: list = []
        try:
            if args.scenario == "ticking":
                engines, holders = start_engines(args.engines, Path(tmp)) if args.engines else ([], {})
                path = Path(tmp) / "ticking.json"
                path.write_text(json.dumps(ticking_scenario(engines=holders)))
                cmd = [*cmd, "--gpu-scenario", str(path)]
            else:
                cmd = [*cmd, "--demo"]
            for i in range(args.runs):
                result = measure(cmd, args.cols, args.rows, args.idle, args.presses, args.truecolor, args.plan)
                result.update(run=i + 1, size=f"{args.cols}x{args.rows}", scenario=args.scenario,
                              colors="truecolor" if args.truecolor else "256", view="plan" if args.plan else "curves",
                              engines=len(engines))
                print(json.dumps(result))
                sys.stdout.flush()
        finally:
            for sp in engines:
                sp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
