"""CPU cost of watching engines: a process-table discovery, one reading per engine, and the poller.

    uv run python scripts/bench_live_poll.py [--seconds 30]

Three fake engines run as real processes under engines' command lines (llama-server, ollama serve
with a runner, vllm serve; tests/live_fakes.py), so discovery scans the real process table and
reads their listening sockets, and every reading goes through the real HTTP client, Prometheus
parser and readers. Printed: the wall time of one discovery and of one round of readings, and the
CPU the `LivePoller` thread costs this process at its default pace (3 s per engine, a new
discovery every 15 s), as a share of one core. Budget (issue 14, for the dashboard as a whole):
under 2 % of a core idle; the engine poller's share should be a small part of it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from live_fakes import free_port, spawn_engine  # noqa: E402

from lander_tui.core.live import LiveClient, LivePoller, discover, read_all  # noqa: E402

BUDGET_POLLER_PERCENT = 0.5


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lander-live-bench-"))
    started = []
    try:
        started.append(spawn_engine(tmp / "a", "llama-server", ["--port", str(free_port()), "-c", "8192", "-np", "2",
                                                                "--metrics"], kind="llama-server", version="2026"))
        api = free_port()
        started.append(spawn_engine(tmp / "b", "ollama", ["serve"], kind="ollama", version="2026",
                                    env={"OLLAMA_HOST": f"127.0.0.1:{api}"}, listen_port=api,
                                    children=[["llama-server", "--model", "/x", "--port", str(free_port())]]))
        started.append(spawn_engine(tmp / "c", "vllm", ["serve", "Qwen/Qwen2.5-0.5B", "--port", str(free_port())],
                                    kind="vllm", version="2026"))
        pids = {s.pid for s in started}

        walls = []
        for _ in range(10):
            t0 = time.perf_counter()
            eps = [e for e in discover() if e.pid in pids]
            walls.append(time.perf_counter() - t0)
        print(f"discovery (process table + sockets): median {1000 * statistics.median(walls):.1f} ms wall")
        client = LiveClient()
        rounds = []
        for _ in range(10):
            t0 = time.perf_counter()
            states = read_all(eps, client)
            rounds.append(time.perf_counter() - t0)
        print(f"one reading of {len(eps)} engines (concurrent): median {1000 * statistics.median(rounds):.1f} ms wall, "
              f"states {[s.state for s in states]}")

        updates = []
        others = [(e.kind, e.pid) for e in discover() if e.pid not in pids]
        if others:
            print(f"(other engines on this machine, left out of the measurement: {others})")

        def ours(*a: object, **k: object) -> list:
            return [e for e in discover(*a, **k) if e.pid in pids]  # type: ignore[arg-type]

        poller = LivePoller(on_update=lambda s: updates.append(len(s)), discover_fn=ours)
        cpu0, t0 = time.process_time(), time.monotonic()
        poller.start()
        time.sleep(args.seconds)
        poller.stop()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        share = 100 * cpu / wall
        print(f"LivePoller, {len(eps)} engines, {wall:.0f} s: {share:.2f} % of a core "
              f"({poller.discoveries} discoveries, {len(updates)} updates); budget {BUDGET_POLLER_PERCENT} %")
        return 0 if share <= BUDGET_POLLER_PERCENT else 1
    finally:
        for s in started:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
