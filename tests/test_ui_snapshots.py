"""Screenshots of the dashboard compared with the SVGs in tests/__snapshots__ (pytest-textual-snapshot).

Fixed sizes, fake GPUs on a frozen clock (60 readings for the sparklines), the Hub offline and no
cursor blink, under the exact Textual version pinned in pyproject.toml. After a deliberate change:
`uv run pytest tests/test_ui_snapshots.py --snapshot-update`, then review the SVGs before committing.
"""

from __future__ import annotations

import pytest

from lander_tui.ui.fixtures import NO_GPU_SCENARIO, frozen_app, settle, warm_up

pytestmark = pytest.mark.usefixtures("ui_offline")



def _shot(snap_compare, scenario=None, size=(120, 40), demo=True, press=()):
    app, clock = frozen_app(scenario, demo=demo)

    async def run_before(pilot) -> None:
        warm_up(app, clock, 60)
        # wait for a condition, not a time: the plan, the chart and (narrow) the scroll to the results
        # are each a timer away, and a loaded machine ran them after a fixed 0.3 s pause
        await settle(pilot, app)

    return snap_compare(app, terminal_size=size, run_before=run_before, press=press)


def test_main_screen_two_gpus_with_jobs(snap_compare):
    assert _shot(snap_compare)


def test_no_gpu_screen_offers_what_if(snap_compare):
    assert _shot(snap_compare, NO_GPU_SCENARIO, demo=False)


def test_small_terminal_80x24(snap_compare):
    assert _shot(snap_compare, size=(80, 24))
