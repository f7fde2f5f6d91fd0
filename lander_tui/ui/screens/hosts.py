"""`h`: every host of the fleet with its GPUs, sortable, with a short history from Prometheus.

The view follows the dashboard's readings (it never polls the fleet itself): when a new reading
arrives it rebuilds its rows (`ui/host_rows.py`) and the table draws the lines on screen. Histories
come from Prometheus' own storage (range queries, so they are there the moment the view opens):
every host's used memory when the view opens and once a minute, and per GPU for the host under
the cursor (for all GPUs when the fleet is small). Enter plans on the host's GPUs (a layer split or
tensor parallel, as on this machine's) or on one GPU.
"""

from __future__ import annotations

import time
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from lander_tui.ui.host_rows import HISTORY_POINTS, HISTORY_WINDOW_S, SORT_LABELS, SORTS, header, host_rows, summary
from lander_tui.ui.widgets.gpu_panel import Line
from lander_tui.ui.widgets.host_table import HostTable

#: Every host's history is fetched again this often (each point is a minute's mean at most).
HOST_HISTORY_EVERY_S = 60.0
#: Up to this many GPUs, every GPU's history is fetched at once; above, only the cursor host's.
ALL_GPU_HISTORY_MAX = 64
CHECK_EVERY_S = 0.5


class HostsScreen(Screen[tuple[int, ...] | None]):
    """Dismissed with the GPUs to plan on (Enter), or None (Esc)."""

    DEFAULT_CSS = """
    HostsScreen { layout: vertical; }
    HostsScreen #hosts-title { height: 1; background: $primary 30%; text-style: bold; padding: 0 1; }
    HostsScreen #hosts-header { height: 1; color: $text-muted; padding: 0 1; }
    HostsScreen HostTable { padding: 0 1; }
    HostsScreen #hosts-status { height: auto; color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,h", "dismiss(None)", "back"),
        Binding("s", "sort", "sort"),
        Binding("f", "fit", "where does it fit?"),
        Binding("enter", "choose", "plan on it"),
    ]

    def __init__(self, source: str, sort: str = "free") -> None:
        super().__init__()
        self.source = source
        self.sort = sort
        self.snapshot: Any = None
        self.host_history: dict[str, list[tuple[float, float]]] = {}
        self.gpu_history: dict[str, list[tuple[float, float]]] = {}
        self._history_host: str | None = None
        self._host_history_at = 0.0
        self.refreshes = 0  # rows rebuilt (tests and the benchmark read it)
        self.last_refresh_s = 0.0  # CPU time of the last rebuild (thread time)

    def compose(self) -> ComposeResult:
        yield Line("", id="hosts-title")
        yield Static(header(), id="hosts-header")
        yield HostTable(id="hosts-table")
        yield Line("", id="hosts-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(HostTable).focus()
        self.follow()
        self.set_interval(CHECK_EVERY_S, self.follow)

    # --- following the dashboard's readings --------------------------------------------------------
    def follow(self) -> None:
        """Rebuild when the dashboard has a newer reading (the same one is skipped at no cost)."""
        snap = getattr(self.app, "snapshot", None)
        if snap is not self.snapshot:
            self.snapshot = snap
            self.rebuild()
        if self._backend_history() is not None and time.monotonic() - self._host_history_at >= HOST_HISTORY_EVERY_S:
            self._host_history_at = time.monotonic()
            self._fetch_history(None)

    def rebuild(self) -> None:
        started = time.thread_time()
        planned = getattr(getattr(self.app, "form", None), "gpus", ())
        rows = host_rows(self.snapshot, self.sort, self.host_history, self.gpu_history, planned)
        table = self.query_one(HostTable)
        table.set_rows(rows)
        self.query_one("#hosts-title", Line).set(
            f"Hosts · {self.source} · {summary(self.snapshot, rows)} · sorted by {SORT_LABELS[self.sort]} (s)")
        if self.snapshot is not None and not self.snapshot.ok:
            self.query_one("#hosts-status", Line).set(self.snapshot.message)
        elif self._backend_history() is None:
            self.query_one("#hosts-status", Line).set("history: only a Prometheus source keeps one")
        elif self.snapshot is not None and self.snapshot.message:
            self.query_one("#hosts-status", Line).set(self.snapshot.message)
        self.refreshes += 1
        self.last_refresh_s = time.thread_time() - started

    # --- history from Prometheus ---------------------------------------------------------------------
    def _backend_history(self) -> Any:
        backend = getattr(self.app, "_backend", None)
        return getattr(backend, "history", None)

    @work(thread=True, exclusive=True, group="host-history", exit_on_error=False)
    def _fetch_history(self, host: str | None) -> None:
        """Every host's used memory (host=None), or one host's GPUs (all GPUs for a small fleet)."""
        fetch = self._backend_history()
        if fetch is None:
            return
        worker = get_current_worker()
        small = self.snapshot is not None and len(self.snapshot.gpus) <= ALL_GPU_HISTORY_MAX
        if host is None:
            hosts_h = fetch(HISTORY_WINDOW_S, HISTORY_POINTS, per_host=True)
            gpus_h = fetch(HISTORY_WINDOW_S, HISTORY_POINTS) if small else None
        else:
            hosts_h, gpus_h = None, fetch(HISTORY_WINDOW_S, HISTORY_POINTS, hosts=(host,))
        if not worker.is_cancelled:
            self.app.call_from_thread(self._history_ready, hosts_h, gpus_h, host)

    def _history_ready(self, hosts_h: Any, gpus_h: Any, host: str | None) -> None:
        problems = [h.message for h in (hosts_h, gpus_h) if h is not None and h.message]
        if hosts_h is not None and not hosts_h.message:
            self.host_history = hosts_h.series
        if gpus_h is not None and not gpus_h.message:
            self.gpu_history = gpus_h.series if host is None else {**self.gpu_history, **gpus_h.series}
        if problems:
            self.query_one("#hosts-status", Line).set(f"history: {problems[0]}")
        self.rebuild()

    @on(HostTable.Moved)
    def _moved(self, event: HostTable.Moved) -> None:
        small = self.snapshot is not None and len(self.snapshot.gpus) <= ALL_GPU_HISTORY_MAX
        if self._backend_history() is None or small or event.host == self._history_host:
            return
        self._history_host = event.host
        self._fetch_history(event.host)

    # --- keys ----------------------------------------------------------------------------------------
    def action_sort(self) -> None:
        keys = [k for k, _ in SORTS]
        self.sort = keys[(keys.index(self.sort) + 1) % len(keys)]
        self.rebuild()

    def action_choose(self) -> None:
        self.query_one(HostTable).action_choose()

    @on(HostTable.Chosen)
    def _chosen(self, event: HostTable.Chosen) -> None:
        row = event.row
        if not row.indices:
            what = "this GPU" if row.kind == "gpu" else f"{row.host or 'this machine'}"
            self.notify(f"{what} reports no free memory now (stale or lost): pick another", severity="warning")
            return
        self.dismiss(row.indices)

    def action_fit(self) -> None:
        run = getattr(self.app, "action_fit", None)
        if run is not None:
            run()
