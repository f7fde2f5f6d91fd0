"""Reading every engine at once, on a schedule, without one sick engine holding up the others.

`read_all` is the one-shot form (the `engines` command): every endpoint is read in its own daemon
thread and the call returns when all have answered or `deadline_s` has passed; a reading still
running then is reported SLOW (its thread is left to finish on its own and never blocks exit).

`LivePoller` is the dashboard's form, like its GPU poller: one worker thread that rediscovers
engines every `rediscover_s`, starts a reading for each engine whose turn has come (never two for
the same engine), and publishes the states through `on_update` whenever any reading finishes. An
engine that fails is read less often (the interval doubles up to `max_interval_s`) and back at the
normal pace as soon as it answers. Tokens/s come from the engine's generated-token counter between
two readings.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lander_tui.core.live.base import take_reading
from lander_tui.core.live.discovery import Endpoint, discover
from lander_tui.core.live.http import LiveClient, ReadFailure
from lander_tui.core.live.registry import READERS, reader_for
from lander_tui.core.live.state import AUTH, MALFORMED, OK, SLOW, UNREACHABLE, EngineState

#: Base pace: engines change slowly next to the 1 s GPU tick; every 3 s keeps the panel current
#: at a few requests per engine.
INTERVAL_S = 3.0
#: Slowest pace for an engine that keeps failing (dead, slow, wants a key).
MAX_INTERVAL_S = 30.0
#: How often the process table is scanned again for engines that started or stopped.
REDISCOVER_S = 15.0


def identify_kind(client: LiveClient, url: str) -> str:
    """The kind of engine answering at `url` (a URL the user gave without one)."""
    for reader in READERS:
        try:
            if reader.identify(client, url):
                return reader.kind
        except ReadFailure as err:  # slow or dead: say so for the URL, not for the probe's path
            reason = "connection refused" if "refused" in str(err) else str(err).rsplit("(", 1)[-1].rstrip(")")
            msg = f"nothing answers at {url} ({reason})" if err.state != SLOW else f"no answer from {url} in time"
            raise ReadFailure(err.state, msg) from None
    tried = ", ".join(r.kind for r in READERS)
    raise ReadFailure(MALFORMED, f"{url} does not answer like any engine lander-tui reads ({tried}); "
                                 "name it as KIND=URL")


def read_endpoint(client: LiveClient, ep: Endpoint) -> EngineState:
    """One reading of one endpoint; never raises."""
    if ep.problem:
        return EngineState(ep.kind or "?", ep.url, UNREACHABLE, ep.problem, pid=ep.pid, gpu_pids=ep.gpu_pids,
                           read_at=time.time())
    kind = ep.kind
    if kind is None:
        started = time.monotonic()
        try:
            kind = identify_kind(client, ep.url)
        except ReadFailure as err:
            return EngineState("?", ep.url, err.state, str(err), read_at=time.time(),
                               elapsed_s=time.monotonic() - started)
    return take_reading(reader_for(kind), client, ep.url, ep.proc, ep.gpu_pids)


def _slow(ep: Endpoint, waited: float) -> EngineState:
    return EngineState(ep.kind or "?", ep.url, SLOW, f"no answer from {ep.url} within {waited:.1f} s",
                       pid=ep.pid, gpu_pids=ep.gpu_pids, read_at=time.time(), elapsed_s=waited)


def read_all(endpoints: Sequence[Endpoint], client: LiveClient | None = None,
             deadline_s: float | None = None) -> list[EngineState]:
    """Read every endpoint concurrently; results in the endpoints' order."""
    own = client is None
    cl = client or LiveClient()
    limit = deadline_s if deadline_s is not None else cl.connect_s + cl.total_s + 0.5
    results: queue.Queue[tuple[int, EngineState]] = queue.Queue()
    for i, ep in enumerate(endpoints):
        threading.Thread(target=lambda i=i, ep=ep: results.put((i, read_endpoint(cl, ep))), daemon=True,
                         name=f"lander-engine-{i}").start()
    started = time.monotonic()
    got: dict[int, EngineState] = {}
    while len(got) < len(endpoints):
        left = limit - (time.monotonic() - started)
        if left <= 0:
            break
        try:
            i, st = results.get(timeout=left)
        except queue.Empty:
            break
        got[i] = st
    waited = time.monotonic() - started
    if own and len(got) == len(endpoints):
        cl.close()
    return [got.get(i) or _slow(ep, waited) for i, ep in enumerate(endpoints)]


@dataclass
class _Track:
    endpoint: Endpoint
    interval: float
    next_due: float = 0.0
    in_flight: bool = False
    last: EngineState | None = None
    counter: tuple[float, float] | None = None  # (tokens_total, read_at) of the last OK reading


def with_rate(st: EngineState, previous: tuple[float, float] | None) -> EngineState:
    """Tokens/s from the generated-token counter between two readings (a reset counter: no rate)."""
    if st.tokens_total is None or previous is None:
        return st
    tokens, at = previous
    dt = st.read_at - at
    if dt <= 0 or st.tokens_total < tokens:
        return st
    return st.with_(tokens_per_s=(st.tokens_total - tokens) / dt)


class LivePoller:
    """Polls every engine found here (and the URLs given) from one worker thread.

    `snapshot` returns the latest GPU Snapshot (or None) to tie GPU processes to engines;
    `on_update(states)` is called from worker threads: hand it on with call_from_thread/post_message.
    """

    def __init__(self, *, urls: Sequence[str] = (), scan: bool = True,
                 snapshot: Callable[[], Any] | None = None,
                 on_update: Callable[[list[EngineState]], None] | None = None,
                 interval_s: float = INTERVAL_S, max_interval_s: float = MAX_INTERVAL_S,
                 rediscover_s: float = REDISCOVER_S, client: LiveClient | None = None,
                 discover_fn: Callable[..., list[Endpoint]] = discover) -> None:
        self.urls = tuple(urls)
        self.scan = scan
        self.interval_s = interval_s
        self.max_interval_s = max_interval_s
        self.rediscover_s = rediscover_s
        self._snapshot = snapshot or (lambda: None)
        self._on_update = on_update
        self._client = client or LiveClient()
        self._discover = discover_fn
        self._tracks: dict[str, _Track] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_discovery = 0.0
        self.discoveries = 0  # how many process scans ran (tests and benchmarks)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="lander-engines")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        self._client.close()

    def rescan(self) -> None:
        """Look at the processes again now, then read every engine (the GPU processes changed: an engine
        may have started, stopped, or only now be tied to the memory it holds)."""
        with self._lock:
            self._next_discovery = 0.0
            for t in self._tracks.values():
                t.next_due = 0.0
        self._wake.set()

    def wake(self) -> None:
        """Read every engine now (a key press)."""
        with self._lock:
            for t in self._tracks.values():
                t.next_due = 0.0
        self._wake.set()

    # -- state ---------------------------------------------------------------------------------
    def states(self) -> list[EngineState]:
        """The latest reading of every engine known now, in discovery order (unread ones omitted)."""
        with self._lock:
            return [t.last for t in self._tracks.values() if t.last is not None]

    def in_flight(self) -> int:
        """How many readings are running now (tests and benchmarks)."""
        with self._lock:
            return sum(1 for t in self._tracks.values() if t.in_flight)

    def endpoints(self) -> list[Endpoint]:
        with self._lock:
            return [t.endpoint for t in self._tracks.values()]

    # -- the loop ------------------------------------------------------------------------------
    def rediscover(self) -> None:
        found = self._discover(self._snapshot(), self.urls, scan=self.scan)
        self.discoveries += 1
        with self._lock:
            old = self._tracks
            self._tracks = {}
            for ep in found:
                t = old.get(ep.url)
                if t is None or t.endpoint.pid != ep.pid:
                    t = _Track(ep, self.interval_s)
                else:
                    t.endpoint = ep
                self._tracks[ep.url] = t
        self._next_discovery = time.monotonic() + self.rediscover_s

    def poll_due(self) -> int:
        """Start a reading for every engine whose turn has come; returns how many started."""
        now = time.monotonic()
        started = 0
        with self._lock:
            due = [t for t in self._tracks.values() if not t.in_flight and now >= t.next_due]
            for t in due:
                t.in_flight = True
        for t in due:
            threading.Thread(target=self._read, args=(t,), daemon=True, name="lander-engine-read").start()
            started += 1
        return started

    def _read(self, t: _Track) -> None:
        st = read_endpoint(self._client, t.endpoint)
        with self._lock:
            st = with_rate(st, t.counter)
            if st.state == OK and st.tokens_total is not None:
                t.counter = (st.tokens_total, st.read_at)
            if st.state == OK:
                t.interval = self.interval_s
            elif st.state in (AUTH, UNREACHABLE):
                t.interval = self.max_interval_s  # will not change by itself soon
            else:
                t.interval = min(self.max_interval_s, t.interval * 2)
            t.next_due = time.monotonic() + t.interval
            t.last = st
            t.in_flight = False
        self._wake.set()
        if self._on_update is not None:
            self._on_update(self.states())

    def _run(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() >= self._next_discovery:
                try:
                    self.rediscover()
                except Exception:  # a process-table hiccup must not end the poller; try again later
                    self._next_discovery = time.monotonic() + self.rediscover_s
            self.poll_due()
            with self._lock:
                waits = [t.next_due for t in self._tracks.values() if not t.in_flight]
            until = min([self._next_discovery, *waits]) - time.monotonic()
            self._wake.wait(max(0.05, min(until, 1.0)))
            self._wake.clear()
