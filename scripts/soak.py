"""Soak the dashboard: does its memory stay flat over hours of GPU readings?

Two runs, one script:

  python scripts/soak.py live --seconds 3600 [--every 10] [--csv FILE]
      The installed `lander-tui --demo` in a private tmux server (120x40), left alone the way a user
      leaves it on a second screen; its RSS (and USS) is sampled every `--every` seconds.

  python scripts/soak.py fast --ticks 86400 [--every 3600] [--csv FILE]
      24 hours of readings in minutes: the real app, headless, on the demo's fake GPUs whose clock the
      script moves one second per reading; each reading goes through the same message the polling
      thread posts (`GpuSnapshotReady`). Every `--every` readings it samples RSS and the things that
      could pile up (GPU history, notifications, workers, timers, widgets, Python objects).

Both print the samples and a summary: first/last/peak RSS, the growth after the warm-up (the first
10 % of the run, when imports, caches and the first plots settle) and its rate per hour.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def _mem(proc: psutil.Process) -> tuple[float, float]:
    """(RSS, USS) in MiB."""
    try:
        info = proc.memory_full_info()
        return info.rss / MIB, info.uss / MIB
    except psutil.AccessDenied:
        rss = proc.memory_info().rss / MIB
        return rss, float("nan")


def summary(rows: list[dict[str, float]], clock_key: str, per_hour: float) -> str:
    """First/last/peak RSS and the growth after the warm-up (the first 10 % of the samples)."""
    rss = [r["rss_mib"] for r in rows]
    warm = rows[max(1, len(rows) // 10)]
    last = rows[-1]
    span = last[clock_key] - warm[clock_key]
    growth = last["rss_mib"] - warm["rss_mib"]
    rate = growth / span * per_hour if span > 0 else 0.0
    return (f"samples {len(rows)} · RSS first {rss[0]:.1f} MiB, after warm-up {warm['rss_mib']:.1f}, "
            f"last {last['rss_mib']:.1f}, peak {max(rss):.1f} · growth after warm-up {growth:+.1f} MiB "
            f"({rate:+.2f} MiB per {'hour of readings' if clock_key == 'tick' or per_hour != 3600 else 'hour'})")


def _write(rows: list[dict[str, float]], path: Path | None) -> None:
    if path is None or not rows:
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# --- live: the installed app in tmux -----------------------------------------------------------


def app_main(speed: float, census: Path | None) -> None:
    """The dashboard on the demo's fake GPUs with its clock `speed` times real time and a reading
    every 1/speed s (the app polls at most every 0.05 s): `speed` readings of the real polling
    thread, real driver and real terminal per second. With `census`, a line every 60 s of the
    Python objects alive and the types that grew most since the first line."""
    import threading
    from collections import Counter

    sys.path.insert(0, str(REPO))
    from lander_tui.core.gpu import DEMO_SCENARIO, FakeBackend
    from lander_tui.ui.app import LanderApp

    start = time.monotonic()
    backend = FakeBackend(DEMO_SCENARIO, clock=lambda: (time.monotonic() - start) * speed)
    app = LanderApp(backend, demo=True, poll_interval=1.0 / speed)
    if census is not None:
        def count() -> None:
            first: Counter[str] | None = None
            while True:
                gc.collect()
                now = Counter(type(o).__name__ for o in gc.get_objects())
                first = first or now
                grew = (now - first).most_common(5)
                with census.open("a") as f:
                    f.write(f"{time.monotonic() - start:.0f}s objects {sum(now.values())} grew {grew}\n")
                time.sleep(60)

        threading.Thread(target=count, daemon=True).start()
    app.run()


def live(seconds: float, every: float, out: Path | None, cmd: str) -> list[dict[str, float]]:
    tmux = shutil.which("tmux")
    if tmux is None:
        sys.exit("soak live needs tmux (Debian: apt-get install tmux)")
    socket = f"lander-soak-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="lander-soak-"))
    conf = tmp / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g status off\n")
    base = [tmux, "-u", "-L", socket, "-f", str(conf)]
    env = f"env TERM=xterm-256color HF_HUB_OFFLINE=1 LANDER_TUI_CACHE_DIR={tmp / 'cache'} HOME={tmp}"
    demo = "" if " app " in f" {cmd} " else " --demo"
    subprocess.run([*base, "new-session", "-d", "-s", "soak", "-x", "120", "-y", "40", f"{env} {cmd}{demo}"],
                   check=True)
    rows: list[dict[str, float]] = []
    try:
        pid = int(subprocess.run([*base, "display", "-p", "-t", "soak", "#{pane_pid}"], check=True,
                                 capture_output=True, text=True).stdout.strip())
        proc = psutil.Process(pid)
        start = time.monotonic()
        while True:
            now = time.monotonic() - start
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                print("lander-tui exited", file=sys.stderr)
                break
            rss, uss = _mem(proc)
            cpu = proc.cpu_times()
            row = {"seconds": round(now, 1), "rss_mib": round(rss, 2), "uss_mib": round(uss, 2),
                   "cpu_s": round(cpu.user + cpu.system, 2), "threads": proc.num_threads()}
            rows.append(row)
            print(",".join(str(v) for v in row.values()), flush=True)
            if now >= seconds:
                break
            time.sleep(max(0.0, every - (time.monotonic() - start - now)))
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    _write(rows, out)
    return rows


# --- fast: a day of readings, in-process ----------------------------------------------------------


def fast(ticks: int, every: int, out: Path | None, trace: int = 0) -> list[dict[str, float]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LANDER_TUI_CACHE_DIR", tempfile.mkdtemp(prefix="lander-soak-cache-"))
    sys.path.insert(0, str(REPO))
    from lander_tui.ui.app import GpuSnapshotReady
    from lander_tui.ui.fixtures import frozen_app
    from lander_tui.ui.widgets.gpu_panel import GpuPanel

    app, clock = frozen_app()
    proc = psutil.Process()
    rows: list[dict[str, float]] = []

    baseline = None

    async def drive() -> None:
        nonlocal baseline
        async with app.run_test(size=(120, 40)) as pilot:
            start = time.monotonic()
            for tick in range(ticks + 1):
                clock.t = float(tick)
                app.post_message(GpuSnapshotReady(app._backend.poll()))
                await pilot.pause()
                if tick % every:
                    continue
                gc.collect()
                rss, uss = _mem(proc)
                panel = app.query_one(GpuPanel)
                row = {"tick": tick, "wall_s": round(time.monotonic() - start, 1), "rss_mib": round(rss, 2),
                       "uss_mib": round(uss, 2), "estimates": app.estimates_run,
                       "history_points": sum(len(h) for h in panel._history.values()),
                       "notifications": len(app._notifications), "workers": len(app.workers),
                       "timers": len(app._timers) + len(app.screen._timers),
                       "widgets": len(list(app.screen.walk_children())), "gc_objects": len(gc.get_objects())}
                rows.append(row)
                print(",".join(str(v) for v in row.values()), flush=True)
                if trace and tick >= ticks // 10 and baseline is None:
                    baseline = tracemalloc.take_snapshot()

    if trace:
        tracemalloc.start(trace)
    asyncio.run(drive())
    if trace and baseline is not None:
        # what grew after the warm-up, by the line that allocated it (the culprit of a leak, if any)
        gc.collect()
        stats = tracemalloc.take_snapshot().compare_to(baseline, "traceback" if trace > 1 else "lineno")
        for stat in stats[:8]:
            print(f"{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks")
            for frame in stat.traceback.format()[-8:]:
                print("   ", frame)
    _write(rows, out)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    lv = sub.add_parser("live", help="the installed app in tmux, wall-clock time")
    lv.add_argument("--seconds", type=float, default=3600)
    lv.add_argument("--every", type=float, default=10)
    lv.add_argument("--cmd", default=str(REPO / ".venv" / "bin" / "lander-tui"))
    lv.add_argument("--csv", type=Path)
    lv.add_argument("--speed", type=float, default=0.0,
                    help="run this script's `app` at this many readings per second instead of the installed "
                         "`lander-tui --demo` (20: a day of readings in 72 minutes)")
    lv.add_argument("--census", type=Path, help="with --speed: where the app writes its object census")
    ap_ = sub.add_parser("app", help="(used by live --speed) the dashboard on a sped-up demo clock")
    ap_.add_argument("--speed", type=float, default=20.0)
    ap_.add_argument("--census", type=Path)
    fs = sub.add_parser("fast", help="a day of readings in-process, one second of fake-GPU time per reading")
    fs.add_argument("--ticks", type=int, default=86400)
    fs.add_argument("--every", type=int, default=3600)
    fs.add_argument("--csv", type=Path)
    fs.add_argument("--trace", type=int, default=0, metavar="FRAMES",
                    help="print what grew after the warm-up (tracemalloc, this many frames per allocation)")
    args = ap.parse_args()
    if args.mode == "app":
        app_main(args.speed, args.census)
        return 0
    if args.mode == "live":
        cmd = args.cmd
        if args.speed:
            cmd = f"{sys.executable} {Path(__file__).resolve()} app --speed {args.speed:g}"
            cmd += f" --census {args.census.resolve()}" if args.census else ""
        rows = live(args.seconds, args.every, args.csv, cmd)
        key, per_hour = "seconds", 3600.0 / (args.speed or 1.0)  # wall seconds per hour of readings
    else:
        rows = fast(args.ticks, args.every, args.csv, args.trace)
        key, per_hour = "tick", 3600.0
    if rows:
        print(summary(rows, key, per_hour))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
