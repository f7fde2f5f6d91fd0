"""`lander-tui gpus`: the GPUs, their free memory and the processes holding it.

One-shot by default (a table, or `--json` for scripts), `--watch` to refresh in place,
`--what-if NAME` to plan with catalog GPUs, `--demo` for the built-in fake GPUs, `--prometheus URL`
for every host's GPUs from a Prometheus server (grouped by host). With no usable NVIDIA GPU it
exits 1 with one line saying why and how to plan anyway; a Prometheus that cannot be read exits 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from lander_tui.core.gpu import GpuBackend, GpuInfo, GpuProcess, Snapshot

MIN_INTERVAL_S = 0.25  # NVML answers in tens of µs, but faster refresh only costs the jobs watched
TOP_PROCESSES = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gpus",
        help="show the GPUs, their free memory and the processes holding it",
        description="Show every NVIDIA GPU: memory used/total/free, utilisation, temperature, power "
        "and the processes holding memory. Sizes are MiB, as nvidia-smi prints them.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of GPUs (one line per refresh with --watch)")
    p.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help=f"seconds between refreshes with --watch (default 1, at least {MIN_INTERVAL_S})")
    p.add_argument("--what-if", metavar="NAME",
                   help='show catalog GPUs as if present: "2x RTX 4090", "A100 80GB", g5.12xlarge; '
                   "`--what-if list` prints the catalog")
    # SUPPRESS: `lander-tui --demo gpus` (the dashboard's flag, given first) must not be reset to False
    p.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                   help="show the built-in fake GPUs (no NVIDIA GPU needed)")
    add_prometheus_argument(p)
    p.set_defaults(func=run)


def add_prometheus_argument(p: argparse.ArgumentParser, suppress: bool = True) -> None:
    """`--prometheus URL` for the dashboard, `gpus` and `serve` (SUPPRESS on sub-commands, so
    `lander-tui --prometheus URL gpus` keeps the value given before the sub-command)."""
    p.add_argument("--prometheus", metavar="URL", default=argparse.SUPPRESS if suppress else None,
                   help="read every host's GPUs from this Prometheus server (dcgm-exporter or nvitop-exporter "
                   "series); also $LANDER_TUI_PROMETHEUS or ~/.config/lander-tui/config.toml; `off` = this "
                   "machine. Credentials: $LANDER_TUI_PROMETHEUS_TOKEN or _USER/_PASSWORD")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lander_tui.core.errors import LanderError
    from lander_tui.core.gpu import open_backend, what_if, what_if_snapshot
    from lander_tui.core.settings import prometheus_url

    out = out or sys.stdout
    name = getattr(args, "what_if", None)
    demo = bool(getattr(args, "demo", False))
    flag = getattr(args, "prometheus", None)
    if args.interval < MIN_INTERVAL_S:
        raise LanderError(f"--interval must be at least {MIN_INTERVAL_S} s (got {args.interval:g})")
    if flag is not None and (demo or name is not None):
        raise LanderError("use --prometheus on its own, not with --demo or --what-if")
    url = prometheus_url(flag) if not (demo or name is not None) else None
    if name is not None:
        if demo:
            raise LanderError("use either --what-if or --demo, not both")
        if name.strip().lower() == "list":
            _print_catalog(out, args.json)
            return 0
        snap = what_if_snapshot(what_if(name))
        _emit(out, snap, args.json)
        return 0
    backend = open_backend(prometheus=url) if url is not None else open_backend(demo=demo)
    try:
        snap = backend.poll()
        if not snap.ok:
            raise LanderError(snap.message, exit_code=2 if url is not None else 1)
        if not args.watch:
            _emit(out, snap, args.json)
            return 0
        return _watch(out, backend, snap, args.interval, args.json)
    finally:
        backend.close()


def _watch(out: TextIO, backend: GpuBackend, snap: Snapshot, interval: float, as_json: bool) -> int:
    """Redraw every `interval` seconds on a fixed schedule; Ctrl-C is the normal way out (0)."""
    tty = out.isatty() and not as_json
    restore_term = _sigterm_as_interrupt()
    try:
        if tty:
            out.write("\x1b[?25l")  # hide the cursor while redrawing
        next_at = time.monotonic()
        while True:
            if tty:
                stamp = time.strftime("%H:%M:%S", time.localtime(snap.taken_at))
                out.write("\x1b[H\x1b[2J")
                out.write(f"lander-tui gpus  {stamp}  every {interval:g} s, Ctrl-C to quit\n\n")
            elif not as_json:
                out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(snap.taken_at))}\n")
            _emit(out, snap, as_json, compact=True)
            if not tty and not as_json:
                out.write("\n")
            out.flush()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
            snap = backend.poll()
    except KeyboardInterrupt:
        return 0
    finally:
        restore_term()
        if tty:
            out.write("\x1b[?25h")
            out.flush()


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Let `kill` end --watch like Ctrl-C does (cursor restored, exit 0); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def undo() -> None:
        signal.signal(signal.SIGTERM, previous)

    return undo


# -- output -----------------------------------------------------------------------------------


def _emit(out: TextIO, snap: Snapshot, as_json: bool, compact: bool = False) -> None:
    from lander_tui.core.gpu import fleet_to_json, snapshot_to_json

    fleet = snap.source == "prometheus"
    if as_json:
        data = fleet_to_json(snap) if fleet else snapshot_to_json(snap)
        out.write((json.dumps(data) if compact else json.dumps(data, indent=2)) + "\n")
        return
    out.write(render_fleet_table(snap, width=_width(out)) if fleet else render_table(snap, width=_width(out)))


def _width(out: TextIO) -> int | None:
    """Terminal width for truncating the process column; None (no truncation) when piped."""
    if not out.isatty():
        return None
    return shutil.get_terminal_size((120, 24)).columns


def _mib(v: float | None) -> str:
    return "N/A" if v is None else f"{v:.0f}"


def _short_command(command: str | None) -> str:
    if not command:
        return "?"
    first = command.split()[0]
    base = os.path.basename(first)
    if base.startswith("python") and len(command.split()) > 1:
        nxt = command.split()[1]
        if nxt == "-m" and len(command.split()) > 2:
            return command.split()[2]
        return os.path.basename(nxt)
    return base


def _process(p: GpuProcess) -> str:
    mem = "N/A" if p.used_mib is None else f"{p.used_mib:.0f}M"
    if not p.resolved:
        return f"?/{p.pid} host PID? ({mem})"
    return f"{p.user or '?'}:{_short_command(p.command)}/{p.pid} ({mem})"


def _row(g: GpuInfo) -> list[str]:
    name = g.name.removeprefix("NVIDIA ") + (" (what-if)" if g.what_if else "")
    if g.lost:
        return [g.label, name, "LOST", "-", "-", "-", "-", "-"]
    if g.stale:
        return [g.label, name, f"STALE / {_mib(g.total_mib)}", "-", "-", "-", "-", "-"]
    used = f"{_mib(g.used_mib)} / {_mib(g.total_mib)}"
    util = "N/A" if g.util_percent is None else f"{g.util_percent:.0f}%"
    temp = "N/A" if g.temp_c is None else f"{g.temp_c:.0f}C"
    if g.what_if:
        util = temp = power = "-"
    else:
        pw = "N/A" if g.power_w is None else f"{g.power_w:.0f}"
        cap = "N/A" if g.power_cap_w is None else f"{g.power_cap_w:.0f}"
        power = f"{pw} / {cap} W"
    procs = [_process(p) for p in g.processes[:TOP_PROCESSES]]
    if len(g.processes) > TOP_PROCESSES:
        procs.append(f"+{len(g.processes) - TOP_PROCESSES} more")
    return [g.label, name, used, _mib(g.free_mib), util, temp, power, ", ".join(procs) or "-"]


_HEADER = ["GPU", "NAME", "USED / TOTAL MiB", "FREE MiB", "UTIL", "TEMP", "POWER / CAP", "TOP PROCESSES"]
_RIGHT = {2, 3, 4, 5, 6}


def _lines(rows: list[list[str]], width: int | None, indent: str = "") -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(_HEADER) - 1)]
    lines = []
    for r in rows:
        cells = [r[c].rjust(widths[c]) if c in _RIGHT else r[c].ljust(widths[c]) for c in range(len(widths))]
        line = indent + "  ".join(cells) + "  " + r[-1]
        if width is not None and len(line) > width:
            line = line[: max(width - 1, 0)] + "…"
        lines.append(line.rstrip())
    return lines


def render_fleet_table(snap: Snapshot, width: int | None = None) -> str:
    """Every host of a Prometheus fleet: a title line (models, free of total, or STALE and why),
    then its GPUs as in the one-machine table, with columns aligned across the whole fleet."""
    from lander_tui.core.gpu import group_by_host

    groups = group_by_host(snap)
    rows = [_HEADER] + [_row(g) for h in groups for g in h.gpus]
    table = iter(_lines(rows, width, indent="  "))
    lines = [next(table)]
    for h in groups:
        if h.stale:
            lines.append(f"{h.host}  STALE  {h.models}  ({h.note})")
        else:
            free = "N/A" if h.free_mib is None else f"{h.free_mib:,.0f}"
            total = "N/A" if h.total_mib is None else f"{h.total_mib:,.0f}"
            lines.append(f"{h.host}  {h.models}  {free} of {total} MiB free")
        lines.extend(next(table) for _ in h.gpus)
    stale = sum(h.stale for h in groups)
    lines.append(f"{len(groups)} hosts, {len(snap.gpus)} GPUs"
                 + (f", {stale} stale (no free memory shown for them)" if stale else ""))
    if snap.message:
        lines.append(snap.message)
    return "\n".join(line[:width] if width else line for line in lines) + "\n"


def render_table(snap: Snapshot, width: int | None = None) -> str:
    """The plain-text table (no colours, so it pipes cleanly) plus notes below it."""
    rows = [_HEADER] + [_row(g) for g in snap.gpus]
    lines = _lines(rows, width)
    notes = [f"GPU {g.index}: {g.note}" for g in snap.gpus if g.note and not g.lost and not g.what_if]
    if snap.message:
        notes.append(snap.message)
    if snap.source == "fake":
        notes.append("demo: fake GPUs from a built-in scenario, not this machine's")
    elif snap.source == "what-if":
        sources = sorted({g.note.removeprefix("what-if (").removesuffix(" numbers)") for g in snap.gpus})
        notes.append(f"usable = total - driver reserve ({', '.join(sources)} numbers; "
                     "see lander_tui/core/gpu/catalog.py); the CUDA context is not subtracted")
    elif snap.source == "nvml":
        instance = _cloud_instance()
        if instance:
            notes.append(f"AWS instance {instance} (read from local DMI data)")
    if snap.driver and snap.source == "nvml":
        notes.append(f"NVIDIA driver {snap.driver}")
    return "\n".join(lines + notes) + "\n"


@functools.cache
def _cloud_instance() -> str | None:
    """Read DMI once per run, not on every --watch frame."""
    from lander_tui.core.gpu import detect_cloud_instance

    return detect_cloud_instance()


def _print_catalog(out: TextIO, as_json: bool) -> None:
    from lander_tui.core.gpu import GPUS, INSTANCES
    from lander_tui.core.gpu.catalog import not_watched_note

    if as_json:
        data = {
            "gpus": [
                {"name": g.name, "total_mib": g.total_mib, "usable_mib": g.usable_mib, "category": g.category,
                 "vendor": g.vendor, "source": g.source}
                for g in GPUS
            ],
            "instances": [
                {"name": i.name, "provider": i.provider, "gpu_count": i.count, "gpu": i.gpu.name} for i in INSTANCES
            ],
        }
        out.write(json.dumps(data, indent=2) + "\n")
        return
    w = max(len(g.name) for g in GPUS)
    out.write(f"{'GPU':<{w}}  {'TOTAL MiB':>9}  {'USABLE MiB':>10}  KIND         SOURCE\n")
    for g in GPUS:
        note = not_watched_note(g.vendor)  # as in the dashboard's what-if list
        out.write(f"{g.name:<{w}}  {g.total_mib:>9}  {g.usable_mib:>10}  {g.category:<11}  {g.source}"
                  + (f"  ({note})" if note else "") + "\n")
    out.write("\n")
    w = max(len(i.name) for i in INSTANCES)
    out.write(f"{'INSTANCE':<{w}}  PROVIDER  GPUS\n")
    for i in INSTANCES:
        out.write(f"{i.name:<{w}}  {i.provider:<8}  {i.count}x {i.gpu.name}\n")
