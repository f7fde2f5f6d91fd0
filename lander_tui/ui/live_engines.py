"""The dashboard's running engines: a `LivePoller` the app owns, and the form inputs they turn into.

The poller reads each engine in its own thread (never on the 1 s GPU tick), fed the latest GPU
snapshot; each time a reading finishes, the engine rows (comparison, restart advice, form inputs:
`core.live.board`) are worked out on that same thread, each comparison that is news goes to the
history (`engines --history`), and they are posted to the app as one `EnginesReady` message. Newer
messages replace older ones still queued, and a late one never overwrites a newer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from textual.message import Message

from lander_tui.core.live import EngineRow, PlanInputs
from lander_tui.core.parsing import format_tokens
from lander_tui.ui.engine_text import label, where
from lander_tui.ui.form import FormValues

LOOKED_FOR = "llama-server, ollama serve, vllm serve, sglang, text-generation-launcher, xllm serve"


class EnginesReady(Message):
    """The latest engine rows (`seq` orders them: readings finish on several threads)."""

    def __init__(self, rows: tuple[EngineRow, ...], seq: int, error: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.seq = seq
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EnginesReady)


class EngineWatch:
    """Owns the LivePoller. `snapshot()` gives the latest GPU reading; `post(message)` hands a
    message to the app (thread-safe)."""

    def __init__(self, snapshot: Any, post: Any, urls: Sequence[str] = (), scan: bool = True,
                 options: Mapping[str, Any] | None = None) -> None:
        from lander_tui.core.live import LivePoller

        self._snapshot = snapshot
        self._post = post
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.applied = 0  # seq of the rows on screen
        self.rows: tuple[EngineRow, ...] = ()
        self._gpu_pids: frozenset[int] | None = None
        self.poller = LivePoller(urls=urls, scan=scan, snapshot=snapshot, on_update=self._read, **(options or {}))

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()

    def saw(self, snapshot: Any) -> None:
        """Each GPU reading: when the processes on the GPUs changed, look for engines again now."""
        pids = frozenset(p.pid for g in snapshot.gpus for p in g.processes) if snapshot.ok else frozenset()
        if pids != self._gpu_pids:
            self._gpu_pids = pids
            self.poller.rescan()

    def _read(self, states: list[Any]) -> None:
        """On a reading thread: predictions and advice are worked out here, not on the UI thread."""
        from lander_tui.core.live import board, history

        with self._lock:
            seq = next(self._seq)
        try:
            rows = board(states, self._snapshot())
            history.record(r.comparison for r in rows)  # the user's accuracy table (`engines --history`)
        except Exception as err:  # a bug must show in place, not end the reading threads silently
            self._post(EnginesReady(self.rows, seq, f"{type(err).__name__}: {err}"))
            return
        self._post(EnginesReady(rows, seq))

    def accept(self, message: EnginesReady) -> bool:
        """Whether `message` is newer than what is shown (then it is what is shown)."""
        if message.seq <= self.applied:
            return False
        self.applied = message.seq
        self.rows = message.rows
        return True


def plannable(rows: Sequence[EngineRow]) -> list[EngineRow]:
    """The rows whose configuration the form can take (an estimator engine predicts for them)."""
    return [r for r in rows if r.inputs is not None]


def next_row(rows: Sequence[EngineRow], last: str | None, prefer_gpus: Sequence[int] = ()) -> EngineRow | None:
    """`u` steps through the engines; the first press takes one on the preferred GPUs (the focused card,
    else the plan's) when there is one."""
    rows = plannable(rows)
    if not rows:
        return None
    keys = [r.key for r in rows]
    if last in keys:
        return rows[(keys.index(last) + 1) % len(rows)]
    return next((r for r in rows if set(r.comparison.gpus) & set(prefer_gpus)), rows[0])


def title(row: EngineRow) -> str:
    c = row.comparison
    name = c.model.name if c.model is not None else ""
    return f"{label(c.engine.kind)} {where(c.engine.url)} {name}".strip()


def form_from(form: FormValues, inputs: PlanInputs) -> FormValues:
    """The form set to a running engine's configuration, on the GPUs it holds memory on (whole: the
    memory it holds counts, as on a restart)."""
    flash = {True: "on", False: "off", None: "auto"}[inputs.flash_attn]
    on_gpus = bool(inputs.gpus)
    return replace(form, engine=inputs.engine, quants=inputs.quant or "", kv_types=inputs.kv,
                   context=format_tokens(inputs.context),
                   parallel=str(inputs.parallel) if inputs.parallel and inputs.parallel > 1 else "",
                   flash_attn=flash, gpus=inputs.gpus if on_gpus else form.gpus,
                   memory="whole" if on_gpus else form.memory)
