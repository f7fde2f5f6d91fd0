"""Deterministic dashboards for tests, screenshots and measurements: fake GPUs on a clock the
caller moves, no polling thread, and a Hub search that is always offline."""

from __future__ import annotations

from functools import partial
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import DEMO_SCENARIO, FakeBackend
from lander_tui.ui.app import LanderApp
from lander_tui.ui.widgets.model_form import hub_search

NO_GPU_SCENARIO: dict[str, Any] = {"init_error": "library_missing", "gpus": []}
EPOCH = 1_800_000_000.0


class Clock:
    """Seconds since the fake backend started; tests move `t` by hand."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _offline(text: str, limit: int = 20) -> list[Any]:
    raise LanderError("offline (test)")


offline_search = partial(hub_search, search_models=_offline)


def frozen_app(scenario: dict[str, Any] | None = None, *, t: float = 0.0, demo: bool = True,
               **kw: Any) -> tuple[LanderApp, Clock]:
    clock = Clock(t)
    backend = FakeBackend(DEMO_SCENARIO if scenario is None else scenario, clock=clock, epoch=EPOCH)
    kw.setdefault("search", offline_search)
    app = LanderApp(backend, demo=demo, poll_interval=None, **kw)
    return app, clock


def warm_up(app: LanderApp, clock: Clock, seconds: int = 60) -> None:
    """Feed `seconds` readings ending at the clock's current time (fills the 60 s sparklines)."""
    end = clock.t
    for i in range(seconds):
        clock.t = end - seconds + 1 + i
        app.poll_now()
    clock.t = end


def screen_text(app: LanderApp) -> str:
    """The screen as a terminal would show it, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def settle(pilot: Any, app: LanderApp, timeout: float = 10.0) -> None:
    """Wait until nothing scheduled is left to draw (plan, chart, the narrow layout's first scroll):
    a condition, not a fixed time, so a loaded machine only waits longer."""
    import time

    deadline = time.monotonic() + timeout
    await pilot.pause()
    while not app.settled:
        if time.monotonic() > deadline:
            raise AssertionError(f"the dashboard did not settle within {timeout:.0f} s")
        await pilot.pause(0.02)
    await pilot.pause()
