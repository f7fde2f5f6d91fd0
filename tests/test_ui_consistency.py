"""One state on screen (issue 11, D6-D8, D10, D12): after any wrong input the table, ★, breakdown bar,
chart, plan line, title and GPU panel all show the last valid input, and the screen says which.

Driven through Pilot on the real app with fake GPUs; keys are pressed the way a user types them (the
plan is solved a frame after the table, so a quick second key used to land between the two).
"""

from __future__ import annotations

import asyncio

import pytest
from textual import events
from textual.widgets import Input, Select

from lander_tui.core.gpu import what_if
from lander_tui.ui import app as app_module
from lander_tui.ui.fixtures import NO_GPU_SCENARIO, frozen_app, screen_text, settle
from lander_tui.ui.text import short_tokens
from lander_tui.ui.widgets.chart import VramChart
from lander_tui.ui.widgets.gpu_panel import GpuCard, Line
from lander_tui.ui.widgets.results import Results
from lander_tui.ui.widgets.table import RowTable
from lander_tui.ui.widgets.what_if import WhatIfScreen

SIZE = (120, 40)


pytestmark = pytest.mark.usefixtures("ui_offline")



def line(app, selector: str) -> str:
    return app.query_one(selector, Line).text or ""


def burst(app, text: str) -> None:
    """Keys arriving together, as a terminal delivers a paste or `tmux send-keys -l 1e6` in one read:
    no frame (and no timer) runs between them."""
    for ch in text:
        event = events.Key(ch, ch)
        event.set_sender(app)
        app._driver.send_message(event)


async def started(pilot, app) -> None:
    app.poll_now()
    await settle(pilot, app)


def assert_one_state(app) -> None:
    """The table, the ★, the breakdown bar, the chart and the plan line all come from one estimate."""
    est = app.query_one(Results)._est  # what the table shows
    table = app.query_one(RowTable)
    assert [c[0].lstrip("★ ").strip() for c in table.rows] == [r.quant for r in est.results]
    rec = est.recommendation
    assert [c[0].startswith("★") for c in table.rows] == [(r.quant, r.kv_cache) == (rec.quant, rec.kv_cache)
                                                          for r in est.results]
    chart = app.query_one(VramChart)._data
    rows = {f"{r.quant}/{r.kv_cache}": r.max_context for r in est.results}
    assert chart is not None and all(rows[s.label] == s.max_context for s in chart.series)
    chosen = app.chosen
    assert chosen is not None and chosen.plan is not None
    row = est.row(*chosen.row)
    if chart.target:
        assert chosen.plan.context == row.context, (chosen.plan.context, row.context)
    else:
        assert chosen.plan.context == min(chart.model_max, row.max_context)
    assert f"@ {chosen.plan.context:,}" in line(app, "#plan-status")
    # the breakdown bar is the plan's, at the plan's context (not the row at its own maximum)
    assert line(app, "#breakdown-label").startswith(f"plan @{short_tokens(chosen.plan.context)}:")


@pytest.mark.parametrize(("typed", "used", "tokens"), [
    ("1e6", "1", 1),  # the report's D6: "1" is a valid target on the way to a wrong one
    ("99999999999", "9999999", 9_999_999),  # 8 digits and more are past 16,777,216
])
async def test_a_wrong_target_leaves_one_consistent_screen(typed, used, tokens, monkeypatch):
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#context", Input).focus()
        await pilot.pause()
        # typing faster than the plan follows the table (a loaded machine, or quick fingers): the plan
        # for the valid prefix is still pending when the next key makes the field wrong
        monkeypatch.setattr(app_module, "PLAN_DELAY_S", 0.5)
        await pilot.press(*typed)
        await settle(pilot, app)
        assert app.form.context == typed and "context" in app.draft.errors
        assert app.query_one("#knob-context").has_class("-invalid")
        assert_one_state(app)
        # which valid input the screen shows depends on how the keys were read (one by one: the
        # prefix; in one read: the input before); the screen says which, and it is the one drawn
        reason = line(app, "#reason")
        assert reason.startswith("✗ Target context")
        if app.query_one(VramChart)._data.target is None:
            assert "last valid input: Target context (empty: the default)" in reason
        else:
            assert app.query_one(VramChart)._data.target == tokens
            assert f"last valid input: Target context {used}" in reason


async def test_clearing_then_a_wrong_target_plans_on_what_the_table_shows(monkeypatch):
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        ctx = app.query_one("#context", Input)
        ctx.focus()
        await pilot.press(*"1M")
        await settle(pilot, app)
        assert app.chosen.plan.context == 1 << 20
        monkeypatch.setattr(app_module, "PLAN_DELAY_S", 0.5)
        await pilot.press("ctrl+u", "-", "5")  # clear (model max is valid), then a wrong "-5"
        await settle(pilot, app)
        assert_one_state(app)
        assert app.query_one(VramChart)._data.target is None
        assert "Target context (empty: the default)" in line(app, "#reason")


async def test_back_to_the_valid_input_clears_the_mark_without_estimating_again():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#quants", Input).focus()
        runs = app.estimates_run
        await pilot.press(*"Q8_0x")
        await settle(pilot, app)
        assert "last valid input" in line(app, "#reason") and app.estimates_run == runs + 1
        await pilot.press("backspace")
        await settle(pilot, app)
        assert "last valid input" not in line(app, "#reason") and app.estimates_run == runs + 1


async def test_unknown_what_if_keeps_the_last_one_everywhere():
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        wi = app.query_one("#what_if", Input)
        assert wi.value == "RTX 4090" and "what-if RTX 4090" in line(app, "#topbar")
        wi.focus()
        await pilot.press("ctrl+u", *"banana 9000")
        await settle(pilot, app)
        assert app.query_one("#knob-what_if").has_class("-invalid")
        # the title, the GPU panel and the results all still plan for the RTX 4090
        assert "banana" not in line(app, "#topbar") and "what-if RTX 4090" in line(app, "#topbar")
        cards = list(app.query(GpuCard))
        assert len(cards) == 1 and cards[0].has_class("-selected") and "RTX 4090" in str(
            cards[0].query_one(".gpu-title").render())
        assert app.chosen.memory.label == "what-if RTX 4090 24GB"
        assert app.query_one(Results)._est.budget_mib == what_if("RTX 4090").usable_mib
        assert "What-if GPU RTX 4090" in line(app, "#reason")
        assert_one_state(app)


async def test_the_what_if_dialog_refuses_a_name_it_cannot_find_and_an_empty_enter():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press("w")
        assert isinstance(app.screen, WhatIfScreen)
        await pilot.press("enter")  # empty: used to plan on the first card in the list (RTX 3060)
        await pilot.pause()
        assert isinstance(app.screen, WhatIfScreen) and app.form.memory == "free"
        assert "type a GPU" in str(app.screen.query_one(".picker-label").render())
        await pilot.press(*"banana 9000", "enter")
        await pilot.pause()
        assert isinstance(app.screen, WhatIfScreen) and app.form.memory == "free"
        assert "no catalog GPU matches" in str(app.screen.query_one(".picker-label").render())
        await pilot.press("ctrl+u", *"2x a100 80", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, WhatIfScreen)
        assert app.form.what_if == "2x A100 80GB" and app.form.memory == "what-if"


async def test_switching_engine_never_keeps_text_the_table_ignores():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#quants", Input).focus()
        await pilot.press(*"Q4_K_M", "tab", *"q8_0", "escape")
        await settle(pilot, app)
        assert {(r.quant, r.kv_cache) for r in app.estimate.results} == {("Q4_K_M", "q8_0")}
        await pilot.press("b")  # Ollama loads the same GGUF types: the text stays and is used
        await settle(pilot, app)
        assert app.query_one("#quants", Input).value == "Q4_K_M"
        assert {(r.quant, r.kv_cache) for r in app.estimate.results} == {("Q4_K_M", "q8_0")}
        await pilot.press("b")  # vLLM cannot: its own (empty) fields, and the table uses what they show
        await settle(pilot, app)
        assert app.form.engine == "vllm"
        for name in ("quants", "kv_types"):
            assert app.query_one(f"#{name}", Input).value == getattr(app.form, name) == ""
        quants = app.query_one("#quants", Input).placeholder.split(",")
        assert len({r.quant for r in app.estimate.results}) == len(quants)
        assert all(any(r.quant.startswith(q) for r in app.estimate.results) for q in quants)
        # typed for vLLM, a GGUF type is a ✗ on the field, as the CLI refuses it
        app.query_one("#quants", Input).focus()
        await pilot.press(*"Q4_K_M")
        await settle(pilot, app)
        assert app.query_one("#knob-quants").has_class("-invalid")
        assert "GGUF type" in app.draft.errors["quants"] and "last valid input" in line(app, "#reason")
        app.query_one("#kv_types", Input).focus()
        await pilot.press(*"q8_0")
        await settle(pilot, app)
        assert "not q8_0" in app.draft.errors["kv_types"]
        await pilot.press("escape", "b", "b", "b")  # round to llama.cpp: its own text comes back
        await settle(pilot, app)
        assert app.form.engine == "llama.cpp" and app.query_one("#quants", Input).value == "Q4_K_M"
        assert not app.draft.errors


async def test_engine_select_straight_to_vllm_empties_the_typed_gguf_fields():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#quants", Input).focus()
        await pilot.press(*"Q4_K_M", "tab", *"q8_0")
        await settle(pilot, app)
        app.query_one("#engine", Select).value = "vllm"  # the Select, not `b`: no Ollama step between
        await settle(pilot, app)
        assert app.form.engine == "vllm" and not app.draft.errors
        for name in ("quants", "kv_types"):
            assert app.query_one(f"#{name}", Input).value == getattr(app.form, name) == ""
        assert "Q4_K_M" not in {r.quant for r in app.estimate.results}


@pytest.mark.parametrize(("margin", "words"), [
    ("99999", "more than GPU 1 holds (81,559 MiB)"),
    ("30000", "all of the 26,821 MiB free on GPU 1 now"),
])
async def test_a_margin_the_gpu_cannot_keep_is_an_error_on_the_margin(margin, words):
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        field = app.query_one("#margin", Input)
        field.focus()
        await pilot.press("ctrl+u")
        burst(app, margin)
        await settle(pilot, app)
        assert list(app.draft.errors) == ["margin"] and words in app.draft.errors["margin"]
        assert app.query_one("#knob-margin").has_class("-invalid")
        text = screen_text(app)
        assert "tensor-split" not in text and "Planning on 0 MiB" not in text
        # the valid input the screen shows: "" after ctrl+u, or a prefix, as the keys were read
        shown = app.shown.form.margin
        assert margin.startswith(shown) and shown != margin
        assert f"last valid input: Safety margin {shown or '(empty: the default)'}" in line(app, "#reason")
        assert_one_state(app)


async def test_the_title_never_says_live_gpus_without_a_gpu():
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False, what_if="2x H100 80GB", model="llama-3.1-70b")
    async with app.run_test(size=SIZE) as pilot:
        assert "live GPUs" not in line(app, "#topbar")  # before the first reading too
        await started(pilot, app)
        top = line(app, "#topbar")
        assert "live GPUs" not in top and "no GPU" in top and "what-if 2x H100 80GB" in top


async def test_timers_after_the_app_closes_do_not_touch_the_screen(monkeypatch):
    # run_test closes the screens before it stops the app's timers; on a loaded machine the plan,
    # chart and scroll timers fired in between and met an empty screen stack (ScreenStackError)
    app, _clock = frozen_app()
    close_all = app._close_all

    async def slow_close_all() -> None:
        await close_all()
        await asyncio.sleep(0.4)  # what load does: the pending timers fire now

    monkeypatch.setattr(app, "_close_all", slow_close_all)
    async with app.run_test(size=(80, 24)):
        app.poll_now()  # first results: plan, chart and the narrow layout's scroll are all pending


async def test_a_stale_select_message_does_not_flip_the_plan():
    # a Select announces its first value ("free now") when it mounts; with no GPU the first reading
    # switches the plan to what-if, and in a real terminal that reading (from the polling thread) comes
    # before the mount-time message is handled: acting on it flipped the plan to free now and back,
    # removing the what-if card while it mounted (NoMatches, the app crashed; seen in tmux)
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        memory = app.query_one("#memory", Select)
        assert memory.value == app.form.memory == "what-if"
        cards = list(app.query(GpuCard))
        memory.post_message(Select.Changed(memory, "free"))  # the late mount-time message
        await settle(pilot, app)
        assert app.form.memory == "what-if" and list(app.query(GpuCard)) == cards
