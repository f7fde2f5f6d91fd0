"""What a user reads on screen (issue 11, D11, D14, D16, D18 and the "confusing" points): nothing
important cut off at 120x40, 130x40, 200x60 or 80x24, marks that read without colour, a footer that
lists only keys that work. Checked on the screen text the real app renders (Pilot, fake GPUs)."""

from __future__ import annotations

import re

import pytest
from textual.widgets import Input

from lander_tui.ui.fixtures import NO_GPU_SCENARIO, frozen_app, screen_text, settle
from lander_tui.ui.widgets.chart import VramChart
from lander_tui.ui.widgets.gpu_panel import GpuCard, GpuPanel, Line
from lander_tui.ui.widgets.table import RowTable

SIZE = (120, 40)
#: One H100 whose jobs leave 20 GB free, and 60 GB of host RAM: big contexts spill to the CPU.
ONE_GPU = {"host": {"total_mib": 65536, "available_mib": 61440},
           "gpus": [{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-a", "total_mib": 81559, "reserved_mib": 480,
                     "processes": [{"pid": 7, "user": "ana", "command": "train.py", "used_mib": 60000}]}]}


pytestmark = pytest.mark.usefixtures("ui_offline")



async def started(pilot, app) -> None:
    app.poll_now()
    await settle(pilot, app)


def region_text(app, widget) -> str:
    """The words a widget shows on screen, its wrapped lines joined (borders and padding dropped)."""
    r = widget.content_region
    lines = screen_text(app).splitlines()[r.y:r.bottom]
    return " ".join(" ".join(line[r.x:r.right].split()) for line in lines)


def line(app, selector: str) -> str:
    return app.query_one(selector, Line).text or ""


def footer(app) -> str:
    return screen_text(app).splitlines()[-1]


@pytest.mark.parametrize("size", [(120, 40), (130, 40), (200, 60)])
async def test_the_no_gpu_reason_and_the_what_if_hint_are_read_in_full(size):
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False)
    async with app.run_test(size=size) as pilot:
        await started(pilot, app)
        reason = app.snapshot.message.split(";")[0]
        assert "libnvidia-ml.so.1" in reason  # the fake's NVML_ERROR_LIBRARY_NOT_FOUND, as pynvml words it
        panel = region_text(app, app.query_one(GpuPanel))
        assert f"No GPU: {reason}" in panel, panel
        assert "planning for what-if RTX 4090 24GB (w: another)" in panel
        picker = app.query_one("#gpu-picker .picker-input", Input)
        assert len(picker.placeholder) <= picker.content_region.width, picker.placeholder


async def test_knobs_labels_and_marks_fit_at_120x40():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press("b", "b", "b", "b")  # Transformers: the longest engine name
        await settle(pilot, app)
        text = screen_text(app)
        assert "transformers  ▼" in text
        rows = text.splitlines()
        engine_row = next(i for i, r in enumerate(rows) if "transformers  ▼" in r)
        assert "Flash attn" in rows[engine_row + 1], "no empty row between the two rows of knobs"
        ctx = app.query_one("#context", Input)
        ctx.focus()
        await pilot.press(*"lots")
        await settle(pilot, app)
        label = app.query_one("#label-context")
        assert label.content_region.width >= len(line(app, "#label-context"))  # "▸✗ Target ctx", whole
        assert "✗" in region_text(app, label)
        error = region_text(app, app.query_one("#form-error"))
        assert error == f"✗ Target context: {app.draft.errors['context']}"  # the message, whole


async def test_facts_put_the_trained_context_first():
    app, _clock = frozen_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        facts = region_text(app, app.query_one("#facts"))
        assert f"trained ctx {app.model.spec.max_context:,}" in facts


async def test_an_unknown_model_error_is_read_in_full_and_points_to_the_search():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        search = app.query_one("#search", Input)
        search.focus()
        search.value = "zzz-nosuch-llama"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = region_text(app, app.query_one("#search-status"))
        assert status.startswith("✗ unknown model 'zzz-nosuch-llama'") and status.endswith("(still planning for "
                                                                                             "llama-3.1-8b)")
        assert "--list-models" not in status and "type part of its name" in status
        hits = app.query_one("#hits")
        assert hits.display and hits.option_count  # catalog models close to "llama"


async def test_long_kv_names_keep_every_column_and_more_rows_say_so():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#kv_types", Input).focus()
        await pilot.press(*"q4_0,q5_1,iq4_nl", "escape")
        await settle(pilot, app)
        table = app.query_one(RowTable)
        assert table.row_count == 9 and table.size.height - 1 < 9
        shown = region_text(app, table)
        header = screen_text(app).splitlines()[table.content_region.y]
        assert re.search(r"↓\d+ more", header), header
        for r in app.estimate.results[:table.size.height - 1]:
            assert re.search(rf"{re.escape(r.kv_cache)} .* (yes|NO)\b", shown), (r.kv_cache, shown)
        await pilot.press("down", "down", "down", "down", "down", "down", "down", "down")
        header = screen_text(app).splitlines()[table.content_region.y]
        assert re.search(r"↑\d+ more", header), header


async def test_the_table_scales_its_columns_to_the_room_it_has():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.query_one(RowTable)
        full = table.column_layout(200)
        narrow = table.column_layout(60)
        assert full[2] == 2 and full[0] == table.headers
        assert narrow[0] == table.short_headers and sum(narrow[1]) + narrow[2] * (len(narrow[1]) - 1) <= 60


async def test_80x24_footer_keeps_help_and_quit():
    app, _clock = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        text = footer(app)
        assert "? help" in text and "q quit" in text, text


async def test_footer_lists_only_keys_that_work():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert "/ search" in footer(app) and "+ ctx+" in footer(app) and "esc" not in footer(app)
        await pilot.press("slash")  # in a text field every printable key types
        await pilot.pause()
        text = footer(app)
        assert "esc leave field" in text and "/ search" not in text and "ctx+" not in text, text
        await pilot.press("escape", "p")
        await pilot.pause()
        assert app.paused and "p resume" in footer(app) and "p pause" not in footer(app)
        await pilot.press("p")
        await pilot.pause()
        assert not app.paused and "p pause" in footer(app)


async def test_palette_commands_still_run_from_a_text_field():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#context", Input).focus()
        await pilot.pause()
        await app._palette_run("cycle_engine")
        assert app.form.engine == "ollama"


async def test_ctrl_c_quits():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#quants", Input).focus()
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


async def test_focus_shows_without_colour():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.query_one(RowTable)
        table.focus()
        await pilot.pause()
        assert region_text(app, table).count("▸") == 1
        card = app.query(GpuCard).first()
        card.focus()
        await pilot.pause()
        assert "▸ GPU 0" in screen_text(app)
        assert region_text(app, table).count("›") == 1 and "▸" not in region_text(app, table)
        app.query_one("#engine").focus()
        await pilot.pause()
        await pilot.pause()
        assert line(app, "#label-engine") == "▸ Engine" and "▸ GPU 0" not in screen_text(app)


async def test_page_keys_in_the_table_do_not_change_the_plan_row():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        row = app.chosen.row
        await pilot.press("pageup", "home", "pagedown", "end")
        await settle(pilot, app)
        assert app.chosen.row == row
        await pilot.press("up")  # an arrow picks a row: the plan line says it is not the ★ row
        await settle(pilot, app)
        assert app.chosen.row != row and f"your row (★ is {row[0]}/{row[1]})" in line(app, "#plan-status")


async def test_palette_goes_back_to_live_gpus():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.set_form(app.form.__class__(**{**app.form.__dict__, "memory": "what-if", "what_if": "RTX 4090"}))
        await settle(pilot, app)
        assert "what-if" in app.chosen.memory.label
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Back to live GPUs (free now)" in titles
        await app._palette_run("live_gpus")
        await settle(pilot, app)
        assert app.form.memory == "free" and app.chosen.memory.label == "GPU 1 free now"


async def test_the_legend_is_under_the_plot_not_on_the_curves():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        series = app.query_one(VramChart)._data.series
        plot = str(app.query_one(VramChart).render())
        legend = region_text(app, app.query_one("#legend"))
        for s in series:
            assert s.label not in plot, "a label drawn inside the plot area covers the curves"
            assert s.label in legend


async def test_margin_field_says_it_applies_to_free_now_only():
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert line(app, "#label-margin") == "Margin: unused" and app.query_one("#knob-margin").has_class("-unused")
        app.query_one("#margin", Input).focus()
        await pilot.pause()
        hint = region_text(app, app.query_one("#form-error"))
        assert "only Memory = free now uses it" in hint and "unused" in hint


@pytest.mark.parametrize(("engine_presses", "words"), [
    (0, "-c is the whole KV cache"), (2, "each up to the full context")])
async def test_parallel_seqs_says_what_it_means_for_the_engine(engine_presses, words):
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press(*["b"] * engine_presses)
        app.query_one("#parallel", Input).focus()
        await pilot.pause()
        assert words in region_text(app, app.query_one("#form-error"))


async def test_what_if_card_says_usable_total_and_source():
    app, _clock = frozen_app(NO_GPU_SCENARIO, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        card = region_text(app, app.query(GpuCard).first())
        assert "MiB usable" in card and "of 24,564 total" in card and "what-if card" in card
        assert "usable = total - 347 MiB driver reserve (typical driver figures)" in card


async def test_rows_past_the_trained_maximum_are_marked_and_the_plan_says_it_is_capped():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        trained = app.model.spec.max_context
        table = app.query_one(RowTable)
        for cells, r in zip(table.rows, app.estimate.results, strict=True):
            assert cells[2].endswith("↑") == (r.max_context > trained), cells
        assert f"↑ past trained {trained:,}" in line(app, "#summary")
        await pilot.press("v")
        await settle(pilot, app)
        head = line(app, "#plan-head")
        assert app.chosen.plan.context == trained
        assert f"capped at the trained maximum; this row holds {app.chosen.row_max:,}" in head


async def test_the_summary_says_what_the_columns_mean():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert "GiB at each row's max ctx" in line(app, "#summary")
        assert "token_embd in host RAM" in line(app, "#summary")
        app.query_one(RowTable).focus()
        await pilot.press("minus")
        await settle(pilot, app)
        assert "GiB at the 64k target, max ctx per row" in line(app, "#summary")


async def test_an_offload_plan_says_it_spills_to_the_cpu_on_the_plan_line():
    app, _clock = frozen_app(ONE_GPU)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#context", Input).focus()
        await pilot.press(*"1M", "escape")
        await settle(pilot, app)
        plan = app.chosen.plan
        assert not plan.fully_offloaded
        status = line(app, "#plan-status")
        assert f"spills to the CPU ({plan.cpu_gpu_split()})" in status
        assert ("host RAM enough" in status) == (plan.host_mib <= app.chosen.host_available_mib)


async def test_the_what_if_list_marks_cards_nvml_cannot_watch():
    from textual.widgets import OptionList

    from lander_tui.core.gpu.catalog import GPUS, vendor_of

    assert {g.vendor for g in GPUS} - {"NVIDIA"}, "the catalog has a non-NVIDIA card to mark"
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press("w", *"mi300")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert prompts and all("AMD: catalog numbers only, no NVML" in p for p in prompts), prompts
        await pilot.press("ctrl+u", *"4090")
        await pilot.pause()
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert prompts and not any("NVML" in p for p in prompts)
        assert vendor_of("Standard_ND96isr_MI300X_v5") == "AMD" and vendor_of("g5.12xlarge") == "NVIDIA"
