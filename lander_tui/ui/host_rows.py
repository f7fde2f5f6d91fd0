"""The hosts view as plain rows: every host of a fleet reading, then its GPUs, sorted. No Textual here.

One line per host (its cards, free and used memory, mean utilisation, a sparkline of its used memory
from Prometheus' range queries) and one per GPU under it. A stale host shows why, never a free
figure. Rows are rebuilt once per reading (a few milliseconds for 4,000 GPUs); the widget draws only
the lines on screen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lander_tui.core.gpu.fleet import SORTS, HostGroup, group_by_host, sort_hosts
from lander_tui.ui.text import sparkline, truncate

SPARK_WIDTH = 20
HOST_WIDTH = 22
CARDS_WIDTH = 24
SORT_LABELS = dict(SORTS)
#: Where a history comes from, for the header: Prometheus keeps it, so it is there when the view opens.
HISTORY_WINDOW_S = 600.0
HISTORY_POINTS = SPARK_WIDTH


@dataclass(frozen=True)
class HostRow:
    key: str  # "host:NAME" or "gpu:INDEX": the cursor stays on it across refreshes and sorts
    kind: str  # "host" or "gpu"
    host: str
    indices: tuple[int, ...]  # the GPUs Enter plans on: a host's usable ones, or this GPU
    text: str
    stale: bool = False
    planned: bool = False  # in the dashboard's current plan


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def _usable(g: Any) -> bool:
    return not g.lost and not g.stale and g.free_mib is not None and g.total_mib is not None


def _why(h: HostGroup) -> str:
    """Why a host is stale, without the "stale: " its GPUs' notes start with."""
    return h.note.removeprefix("stale: ")


def header() -> str:
    return (f"  {'HOST / GPU':<{HOST_WIDTH}}  {'CARDS':<{CARDS_WIDTH}}  {'FREE MiB':>9}  {'USED / TOTAL MiB':>19}"
            f"  {'UTIL':>4}  USED, LAST {HISTORY_WINDOW_S / 60:.0f} MIN")


def _spark(series: Sequence[tuple[float, float]] | None, top: float | None) -> str:
    if not series or not top:
        return ""
    return sparkline([v for _, v in series], top, SPARK_WIDTH).rstrip()


def host_line(h: HostGroup, history: Mapping[str, Sequence[tuple[float, float]]], marked: bool) -> str:
    mark = "▶ " if marked else "  "
    name = truncate(h.host or "this machine", HOST_WIDTH)
    cards = truncate(h.models, CARDS_WIDTH)
    if h.stale:
        return f"{mark}{name:<{HOST_WIDTH}}  {cards:<{CARDS_WIDTH}}  {'STALE':>9}  {truncate(_why(h), 52)}"
    used = f"{_mib(h.used_mib)} / {_mib(h.total_mib)}"
    return (f"{mark}{name:<{HOST_WIDTH}}  {cards:<{CARDS_WIDTH}}  {_mib(h.free_mib):>9}  {used:>19}"
            f"  {_pct(h.util_percent):>4}  {_spark(history.get(h.host), h.total_mib)}")


def gpu_line(g: Any, history: Mapping[str, Sequence[tuple[float, float]]], marked: bool) -> str:
    mark = "▶   " if marked else "    "
    name = truncate(g.label, HOST_WIDTH - 2)
    card = truncate(g.name.removeprefix("NVIDIA "), CARDS_WIDTH)
    if g.stale or g.lost:
        return f"{mark}{name:<{HOST_WIDTH - 2}}  {card:<{CARDS_WIDTH}}  {'STALE' if g.stale else 'LOST':>9}"
    used = f"{_mib(g.used_mib)} / {_mib(g.total_mib)}"
    return (f"{mark}{name:<{HOST_WIDTH - 2}}  {card:<{CARDS_WIDTH}}  {_mib(g.free_mib):>9}  {used:>19}"
            f"  {_pct(g.util_percent):>4}  {_spark(history.get(g.label), g.total_mib)}")


def host_rows(snapshot: Any, sort: str = "free", host_history: Mapping[str, Sequence[tuple[float, float]]] = {},
              gpu_history: Mapping[str, Sequence[tuple[float, float]]] = {},
              planned: Sequence[int] = ()) -> list[HostRow]:
    """Every host (sorted by `sort`), each followed by its GPUs in the host's own order."""
    if snapshot is None or not snapshot.ok:
        return []
    chosen = set(planned)
    rows: list[HostRow] = []
    for h in sort_hosts(group_by_host(snapshot), sort):
        usable = tuple(g.index for g in h.gpus if _usable(g))
        marked = bool(chosen) and any(g.index in chosen for g in h.gpus)
        rows.append(HostRow(f"host:{h.host}", "host", h.host, usable, host_line(h, host_history, marked), h.stale,
                            marked))
        for g in h.gpus:
            mine = g.index in chosen
            rows.append(HostRow(f"gpu:{g.index}", "gpu", h.host, (g.index,) if _usable(g) else (),
                                gpu_line(g, gpu_history, mine), g.stale or g.lost, mine))
    return rows


def summary(snapshot: Any, rows: Sequence[HostRow]) -> str:
    """`6 hosts, 18 GPUs, 1 stale`, from the rows just built (no second pass over the fleet)."""
    if snapshot is None:
        return "waiting for the first reading"
    if not snapshot.ok:
        return snapshot.message
    hosts = [r for r in rows if r.kind == "host"]
    stale = sum(r.stale for r in hosts)
    return (f"{len(hosts):,} host" + ("" if len(hosts) == 1 else "s") + f", {len(snapshot.gpus):,} GPUs"
            + (f", {stale:,} stale" if stale else ""))


def host_title(h: HostGroup) -> str:
    """The line above a host's first card in the GPU panel."""
    if h.stale:
        return f"▾ {h.host} · STALE · {truncate(_why(h), 48)}"
    return f"▾ {h.host} · {h.models} · {_mib(h.free_mib)} of {_mib(h.total_mib)} MiB free"


def host_titles(snapshot: Any) -> dict[str, str]:
    """Host -> its title, for every host of a fleet reading ({} for this machine's GPUs)."""
    if snapshot is None or not snapshot.ok or not any(g.host for g in snapshot.gpus):
        return {}
    return {h.host: host_title(h) for h in group_by_host(snapshot)}
