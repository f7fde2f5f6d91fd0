"""The dashboard shows speed where the decision is made (Pilot, real app, fake GPUs): a tok/s column
in the results table, the Plan view's decode / prefill / first-token lines with what bounds them and
what one more offload step costs, and `s` moving ★ to the fastest row that reaches the target."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from lander_tui.core.estimate import plan_row
from lander_tui.core.report import seconds_text, tps_text
from lander_tui.ui.fixtures import NO_GPU_SCENARIO, frozen_app
from lander_tui.ui.widgets.gpu_panel import Line
from lander_tui.ui.widgets.results import HEADERS
from lander_tui.ui.widgets.table import RowTable

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LANDER_TUI_DMI_TABLES", "/nonexistent/DMI")
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


async def started(pilot, app) -> None:
    app.poll_now()
    await pilot.pause()
    await pilot.pause(0.1)  # the plan is solved a frame after the table


@pytest.mark.parametrize(("scenario", "size"), [(None, SIZE), (NO_GPU_SCENARIO, SIZE), (None, (80, 24))])
async def test_the_results_table_has_a_whole_tok_s_column(scenario, size):
    app, _clock = frozen_app(scenario, demo=scenario is None)
    async with app.run_test(size=size) as pilot:
        await started(pilot, app)
        table = app.query_one(RowTable)
        assert table.headers[-1] == HEADERS[-1] == "tok/s"
        est = app.estimate
        for r, cells in zip(est.results, table.rows, strict=True):
            assert r.speed is not None and r.speed.context == min(est.target_context, r.max_context)
            assert cells[-1] == (tps_text(r.speed.decode_tps) if r.fits else "-")
        # the rendered table keeps every column, the last cells included, on the screen
        shown = table.render().plain.splitlines()
        assert shown[0].rstrip().endswith("tok/s")
        for line_text, cells in zip(shown[1:], table.rows, strict=False):
            assert line_text.rstrip().endswith(cells[-1])


async def test_the_plan_view_says_how_fast_and_what_bounds_it():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("v")
        plan = app.chosen.plan
        ref = plan_row(app.draft.request, app.estimate, *app.chosen.row)
        assert plan.speed == ref.speed and plan.speed is not None  # what `estimate` gives for the same row
        s = plan.speed
        text = app.query_one("#plan-speed", Line).text or ""
        head, bound, step = text.splitlines()[:3]
        assert head == (f"speed: decode {tps_text(s.decode_tps)} tok/s at 128k · prefill {tps_text(s.prefill_tps)} "
                        f"tok/s · TTFT {seconds_text(s.ttft_s)}")
        assert bound.strip() == f"memory-bound: {s.decode_bytes / 1e9:.1f} GB read per token"
        assert all(len(x) <= 76 for x in text.splitlines())  # the Plan view's width at 120 columns
        after = tps_text(s.decode_tps - s.offload_step_cost)
        assert f"one more step on the CPU (-ngl 32): decode {tps_text(s.decode_tps)} -> {after} tok/s" in step
        assert app.query_one("#plan-speed").display


async def test_s_puts_the_star_on_the_fastest_row_that_reaches_the_target():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        before = app.estimate.recommendation
        await pilot.press("s")
        await pilot.pause(0.1)
        est = app.estimate
        reach = [r for r in est.results if r.max_context >= est.target_context]
        fastest = max(reach, key=lambda r: r.speed.decode_tps)
        rec = est.recommendation
        assert (rec.quant, rec.kv_cache) == (fastest.quant, fastest.kv_cache) != (before.quant, before.kv_cache)
        assert "fastest" in (app.query_one("#reason", Line).text or "")
        assert app.chosen.row == (rec.quant, rec.kv_cache)  # the plan follows ★
        await pilot.press("s")
        await pilot.pause(0.1)
        assert (app.estimate.recommendation.quant, app.estimate.recommendation.kv_cache) == (before.quant,
                                                                                              before.kv_cache)
