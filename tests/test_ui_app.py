"""The dashboard's flows, driven through Textual's Pilot on the real app with fake GPUs."""

from __future__ import annotations

import pytest
from textual.widgets import Input, OptionList

from lander_tui.core.gpu import DEMO_SCENARIO
from lander_tui.ui.app import GpuSnapshotReady, LanderApp
from lander_tui.ui.fixtures import NO_GPU_SCENARIO, frozen_app, warm_up
from lander_tui.ui.screens.help import HelpScreen
from lander_tui.ui.widgets.chart import VramChart
from lander_tui.ui.widgets.gpu_panel import GpuCard, GpuPanel
from lander_tui.ui.widgets.table import RowTable
from lander_tui.ui.widgets.what_if import WhatIfScreen

SIZE = (120, 40)


pytestmark = pytest.mark.usefixtures("ui_offline")



def rows(app: LanderApp) -> list[tuple[str, str, int]]:
    return [(r.quant, r.kv_cache, r.max_context) for r in app.estimate.results]


def text_of(app: LanderApp, selector: str) -> str:
    return str(app.query_one(selector).render())


async def started(pilot, app: LanderApp) -> None:
    app.poll_now()
    await pilot.pause()


async def test_first_screen_plans_on_the_gpu_with_most_free_memory():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.form.gpus == (1,)  # GPU 1 has 26,821 MiB free at the demo's start, GPU 0 10,395
        assert app.draft.memory.free_mib == 26821 - 512
        assert app.estimate is not None and app.estimate.results
        table = app.query_one(RowTable)
        assert table.row_count == len(app.estimate.results) == 6
        rec = app.estimate.recommendation
        first_cell = table.rows[table.cursor][0]
        assert "★" in first_cell and rec.quant in first_cell
        chart = app.query_one(VramChart)
        assert chart._data is not None and len(chart._data.series) == 6 and chart._data.series[0].recommended
        cards = app.query(GpuCard)
        assert len(cards) == 2 and cards[1].has_class("-selected") and not cards[0].has_class("-selected")


async def test_search_pick_results():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        before = app.estimate
        await pilot.press("slash")
        assert app.focused.id == "search"
        app.query_one("#search", Input).value = ""
        await pilot.press(*"qwen3 8b")
        await pilot.pause(0.4)  # the 250 ms debounce
        await app.workers.wait_for_complete()
        await pilot.pause()
        hits = app.query_one("#hits", OptionList)
        assert hits.display and hits.option_count >= 1
        assert "offline: catalog results" in text_of(app, "#search-status")
        await pilot.press("down", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "qwen3-8b" in app.model.spec.name.lower()
        assert app.estimate is not before and app.estimate.model == app.model.spec.name
        assert not hits.display
        assert "36 layers" in text_of(app, "#facts")
        assert isinstance(app.focused, RowTable)  # the answer has focus; single keys work again


async def test_escape_closes_the_search_list_and_keeps_the_text():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("slash", *"gemma")
        await pilot.pause(0.4)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.query_one("#hits", OptionList).display
        await pilot.press("escape")
        assert not app.query_one("#hits", OptionList).display
        assert app.query_one("#search", Input).value == "gemma" and app.model.spec.name == "llama-3.1-8b"
        assert isinstance(app.focused, RowTable)


async def test_unknown_model_keeps_the_typed_text_and_the_previous_plan():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        model = app.model
        search = app.query_one("#search", Input)
        search.focus()
        search.value = "no-such-model-xyz"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert search.value == "no-such-model-xyz"
        assert app.model is model
        assert "still planning for llama-3.1-8b" in text_of(app, "#search-status")


async def test_changing_quant_changes_table_and_chart():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        chart = app.query_one(VramChart)
        draws = chart.draws
        quants = app.query_one("#quants", Input)
        quants.focus()
        await pilot.press(*"Q5_K_M")
        await pilot.pause()
        assert {r[0] for r in rows(app)} == {"Q5_K_M"}
        assert app.query_one(RowTable).row_count == 2
        assert chart.draws > draws
        assert all(s.label.startswith("Q5_K_M/") for s in chart._data.series)


async def test_a_half_typed_field_says_why_and_keeps_the_last_results():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        est = app.estimate
        app.query_one("#quants", Input).focus()
        await pilot.press(*"Q4_")
        await pilot.pause()
        assert app.query_one("#quants", Input).value == "Q4_"
        assert "✗ Quants" in text_of(app, "#label-quants")
        assert app.query_one("#knob-quants").has_class("-invalid")
        assert "last valid input" in text_of(app, "#reason")
        assert app.estimate is None and app.query_one(RowTable).row_count == 6
        await pilot.press(*"K_M")
        assert app.estimate is not None and {r[0] for r in rows(app)} == {"Q4_K_M"}
        assert "last valid input" not in text_of(app, "#reason") and est is not app.estimate


async def test_job_growing_lowers_max_context():
    app, clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)  # demo t=45 s: the training job on GPU 1 holds 52,210 MiB
        before = dict(((q, k), m) for q, k, m in rows(app))
        clock.t = 10  # t=55 s: it grew to 66,830 MiB
        app.poll_now()
        await pilot.pause()
        after = dict(((q, k), m) for q, k, m in rows(app))
        assert app.draft.memory.free_mib < 26821 - 512 - 10000
        assert all(after[k] < before[k] for k in before)


async def test_nothing_changes_nothing_is_recomputed_or_redrawn():
    app, clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        runs, draws = app.estimates_run, app.query_one(VramChart).draws
        for t in (1, 2, 3):  # the demo's memory is steady here; temperatures tick
            clock.t = t
            app.poll_now()
            await pilot.pause()
        assert (app.estimates_run, app.query_one(VramChart).draws) == (runs, draws)
        await pilot.press("escape")
        assert (app.estimates_run, app.query_one(VramChart).draws) == (runs, draws)


async def test_no_gpu_offers_what_if():
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        message = text_of(app, "#gpu-message")
        assert message.startswith("No GPU: no NVIDIA driver here")
        assert app.query_one("#gpu-picker").display
        assert app.form.memory == "what-if" and app.estimate is not None  # plans for a 24 GB card meanwhile
        await pilot.press("escape", "w")
        assert isinstance(app.screen, WhatIfScreen)
        await pilot.press(*"A100 80GB", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, WhatIfScreen)
        assert "A100 80GB" in app.draft.memory.label
        from lander_tui.core.gpu import what_if

        assert app.draft.memory.free_mib == what_if("A100 80GB").usable_mib
        cards = app.query(GpuCard)
        assert len(cards) == 1 and cards[0].has_class("-what-if") and "WHAT-IF" in text_of(app, ".gpu-title")


async def test_inline_what_if_picker_in_the_no_gpu_panel():
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#gpu-picker .picker-input", Input).focus()
        await pilot.press(*"2x l40s", "down", "enter")
        await pilot.pause()
        assert app.form.what_if == "2x L40S 48GB"
        assert len(app.draft.memory.devices) == 2


async def test_keys_cycle_engine_kv_gpu_and_context():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press("b")
        assert app.form.engine == "ollama"
        await pilot.press("b")
        assert app.form.engine == "vllm" and {r[0] for r in rows(app)} >= {"BF16", "FP8"}
        await pilot.press("k")
        assert {r[1] for r in rows(app)} == {"auto"}
        await pilot.press("b")
        assert app.form.engine == "sglang" and {r[0] for r in rows(app)} >= {"BF16", "FP8"}
        await pilot.press("b", "b")
        assert app.form.engine == "llama.cpp"
        await pilot.press("k")
        assert {r[1] for r in rows(app)} == {"f16"}
        await pilot.press("minus")
        assert app.form.context == "64k" and all(r.context == 65536 for r in app.estimate.results)
        await pilot.press("plus", "plus")
        assert app.form.context == "256k"
        assert app.query_one("#context", Input).value == "256k"
        await pilot.press("g")
        assert app.form.gpus == (0, 1) and len(app.draft.memory.devices) == 2
        await pilot.pause(0.1)
        assert [d.name.split(":")[0] for d in app.chosen.plan.devices] == ["0", "1"]  # the plan spans both
        await pilot.press("g")
        assert app.form.gpus == (0,)


async def test_pause_freezes_the_live_plan():
    app, clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press("p")
        assert app.paused and "PAUSED" in text_of(app, "#topbar")
        before = rows(app)
        clock.t = 10
        app.post_message(GpuSnapshotReady(app._backend.poll()))
        await pilot.pause()
        assert rows(app) == before
        await pilot.press("p")
        assert not app.paused


async def test_copy_plan_and_help_and_quit():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press("c")
        copied = app.clipboard
        assert "recommendation: Q8_0 kv f16" in copied and "GPU 1 free now" in copied
        assert "llama-server" in copied  # the command that runs the recommended row
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_escape_leaves_a_text_field_so_keys_work():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("slash")
        await pilot.press("b")  # typed into the search box, not a shortcut
        assert app.form.engine == "llama.cpp"
        await pilot.press("escape", "b")
        assert app.focused is app.query_one(RowTable) and app.form.engine == "ollama"


async def test_gpu_card_enter_adds_it_to_the_plan():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        cards = list(app.query(GpuCard))
        cards[0].focus()
        await pilot.press("enter")
        assert app.form.gpus == (0, 1)
        await pilot.press("space")
        assert app.form.gpus == (1,)


async def test_tab_order_follows_the_screen():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query(GpuCard).first().focus()
        order = []
        for _ in range(14):
            await pilot.press("tab")
            w = app.focused
            order.append(w.id or type(w).__name__)
        assert order[:12] == ["GpuCard", "search", "engine", "quants", "kv_types", "context", "parallel",
                              "flash_attn", "memory", "margin", "what_if", "table"]


async def test_palette_offers_the_same_actions():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Search models", "Next GPU choice", "What-if GPU…", "Next engine", "Next KV-cache type",
                      "Double the target context", "Pause / resume live updates", "Copy the plan", "Keys and help"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"next engine")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.form.engine == "ollama"


async def test_narrow_terminal_stacks_the_panels():
    app, _clock = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        assert app.screen.has_class("-narrow")
        gpus, form = app.query_one(GpuPanel).region, app.query_one("#form").region
        assert form.y >= gpus.bottom  # one column: the form below the GPUs
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.screen.has_class("-wide")
        assert app.query_one("#form").region.x >= app.query_one(GpuPanel).region.right


async def test_history_fills_the_sparkline():
    app, clock = frozen_app(t=0)
    async with app.run_test(size=SIZE) as pilot:
        warm_up(app, clock, 20)
        await pilot.pause()
        spark = str(app.query(".gpu-spark").first().render())
        assert spark.strip().endswith("60s") and len(spark.split()[0]) >= 10


def test_demo_scenario_is_the_one_the_screenshots_use():
    assert len(DEMO_SCENARIO["gpus"]) == 2


def test_hub_search_lines_and_offline_fallback():
    from lander_tui.core.errors import LanderError
    from lander_tui.core.hub import HubHit
    from lander_tui.ui.widgets.model_form import hub_search

    online = [HubHit("org/Big-70B-GGUF", downloads=1_234_567, params=70_600_000_000, gguf=True),
              HubHit("org/Small-1B", downloads=900, params=1_100_000_000, gated=True)]
    hits, status = hub_search("big", search_models=lambda text, limit: online)
    assert status == "Hub: 2 results"
    assert [h.id for h in hits] == ["org/Big-70B-GGUF", "org/Small-1B"]
    assert "70.6B" in hits[0].label and "↓1.2M" in hits[0].label and "GGUF" in hits[0].label
    assert "gated" in hits[1].label
    local = [HubHit("meta-llama/Llama-3.1-8B", params=8_030_261_248, source="catalog", note="offline")]
    assert hub_search("llama", search_models=lambda text, limit: local)[1] == "offline: catalog results"

    def down(text, limit):
        raise LanderError("cannot reach the Hub")

    hits, status = hub_search("llama 3.1 8b", search_models=down)
    assert status.startswith("offline: catalog results") and "cannot reach the Hub" in status
    assert any("llama-3.1-8b" in h.label for h in hits)


async def test_a_late_older_reading_is_dropped():
    app, clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        clock.t = 10
        newer = app._backend.poll()
        clock.t = 0
        older = app._backend.poll()
        app.apply_snapshot(newer)
        await pilot.pause()
        app.apply_snapshot(older)
        await pilot.pause()
        assert app.snapshot is newer


async def test_chart_draws_when_nothing_fits():
    # a 30B MoE model on the demo GPU once a job has grown: every curve starts above the free line
    app, _clock = frozen_app(model="qwen3-30b-a3b", t=10.0)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.pause(0.3)
        assert all(r.max_context == 0 for r in app.estimate.results)
        chart = app.query_one(VramChart)
        assert chart._data is not None and chart._data.series
        picture = str(chart.render())
        assert "could not be drawn" not in picture
        assert "max 0" in str(app.query_one("#legend").render())  # every curve is named under the plot
