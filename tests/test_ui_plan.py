"""The Plan view, live headroom, export and copy, driven through Pilot on the real app with fake GPUs.

Every expected number is computed here from the core (plan_row, Device) or from the scenario's own
memory figures, never read back from the widget under test.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest
from commands import command_lines

from lander_tui.core.estimate import EstimateRequest, plan_row, run_estimate
from lander_tui.core.gpu.specs import live_card
from lander_tui.core.model import Device
from lander_tui.core.model_source import resolve_model
from lander_tui.ui import live_plan
from lander_tui.ui.fixtures import frozen_app
from lander_tui.ui.widgets.gpu_panel import Line
from lander_tui.ui.widgets.plan_view import PlanTable
from lander_tui.ui.widgets.table import RowTable

SIZE = (120, 40)
H100 = "NVIDIA H100 80GB HBM3"
TOTAL, RESERVED, MARGIN = 81559, 480, 512
#: The demo's GPU 1 as the dashboard plans on it (its card matched by the NVML name, for the speed).
GPU1 = Device(f"1: {H100}", 26821 - MARGIN, TOTAL, 1, *live_card(H100, TOTAL))
#: One H100 whose only job grows by 20 GB at t=10 s and shrinks back at t=20 s; the GPU is lost at 30 s.
GROWING_JOB = {"gpus": [{"name": H100, "uuid": "GPU-grow", "total_mib": TOTAL, "reserved_mib": RESERVED,
                         "lost_at": 30,
                         "processes": [{"pid": 4242, "user": "ana", "command": "python train.py",
                                        "used_mib": [[0, 50000], [10, 70000], [20, 50000]]}]}]}


pytestmark = pytest.mark.usefixtures("ui_offline")



@pytest.fixture(scope="module")
def llama():
    return resolve_model("llama-3.1-8b")


async def started(pilot, app) -> None:
    app.poll_now()
    await pilot.pause()
    await pilot.pause(0.1)  # the plan is solved a frame after the table


def line(app, selector: str) -> str:
    return app.query_one(selector, Line).text or ""


def parse_llama_server(cmd: str) -> argparse.Namespace:
    words = shlex.split(command_lines(cmd)[0][0])
    assert words[0] == "llama-server"
    p = argparse.ArgumentParser(prefix_chars="-", add_help=False)
    for flag, kind in (("-m", str), ("-c", int), ("-ngl", int), ("-ctk", str), ("-ctv", str), ("-fa", str),
                       ("-np", int), ("--tensor-split", str), ("--n-cpu-moe", int), ("-fit", str)):
        p.add_argument(flag, type=kind, dest=flag.lstrip("-").replace("-", "_"))
    return p.parse_args(words[1:])


def notes_of(app) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []
    app.notify = lambda message, **kw: seen.append((message, kw))
    return seen


async def test_plan_view_shows_the_core_plan_for_the_recommended_row_and_c_copies_it(llama):
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        rec = app.estimate.recommendation
        assert app.chosen.row == (rec.quant, rec.kv_cache) == ("Q8_0", "f16")
        # the demo's GPU 1 has 26,821 MiB free at the start; the plan gets it minus the 512 MiB margin
        req = EstimateRequest(llama, "llama.cpp", devices=(GPU1,))
        ref = plan_row(req, run_estimate(req), "Q8_0", "f16")
        assert app.chosen.plan == ref
        await pilot.press("v")
        assert app.query_one("#plan").display and not app.query_one("#chart").display
        assert f"at {ref.context:,} tokens" in line(app, "#plan-head") and "★" in line(app, "#plan-head")
        assert "33/33 layers on GPU · 100% GPU" in line(app, "#plan-offload")
        table = app.query_one(PlanTable)._lines
        d = ref.devices[0]
        cells = table[1].split()
        assert cells[:4] == ["GPU", "1", "0-31", "+out"]
        assert cells[4:10] == [f"{v / 1024:.2f}" for v in (d.memory.weights, d.memory.kv, d.memory.compute,
                                                           d.memory.overhead, d.memory.extras, d.total_mib)]
        headroom = 26821 - d.total_mib  # free now minus what the plan needs
        assert cells[10] == f"{headroom:,.0f}" and headroom > MARGIN
        ns = parse_llama_server(line(app, "#plan-launch"))
        assert (ns.c, ns.ngl, ns.ctk, ns.ctv, ns.fa, ns.np) == (ref.context, 999, "f16", "f16", "on", 1)
        assert ns.tensor_split is None and ns.n_cpu_moe is None
        await pilot.press("v")
        assert app.query_one("#chart").display and "v: plan" in app.query_one("#lower").border_title
        await pilot.press("c")  # the clipboard (OSC 52) carries the same plan and its command
        copied = app.clipboard
        assert app.chosen.launch in copied and copied.count("llama-server") == 1
        assert f"plan: Q8_0 kv f16 at {ref.context} tokens" in copied and "recommendation: Q8_0 kv f16" in copied


async def test_moving_the_cursor_plans_that_row_and_back_on_star_follows_star(llama):
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(RowTable).focus()
        await pilot.press("up")  # Q6_K/q8_0, just above the ★ row
        await pilot.pause(0.1)
        assert app.chosen.row == ("Q6_K", "q8_0")
        req = EstimateRequest(llama, "llama.cpp", devices=(GPU1,))
        ref = plan_row(req, run_estimate(req), "Q6_K", "q8_0")
        assert app.chosen.plan == ref
        ns = parse_llama_server(app.chosen.launch)
        assert (ns.c, ns.ctk, ns.ctv) == (ref.context, "q8_0", "q8_0") and "Q6_K" in ns.m
        await pilot.press("minus")  # a new target context: the picked row stays picked
        await pilot.pause(0.1)
        assert app.chosen.row == ("Q6_K", "q8_0") and app.chosen.plan.context == 65536
        await pilot.press("down")  # back on ★: the plan follows the recommendation again
        await pilot.pause(0.1)
        assert app.chosen.row == (app.estimate.recommendation.quant, app.estimate.recommendation.kv_cache)


async def test_live_headroom_warns_when_a_job_grows_and_clears_when_it_shrinks():
    app, clock = frozen_app(GROWING_JOB, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        seen = notes_of(app)
        chosen = app.chosen
        need = chosen.plan.devices[0].total_mib
        free0 = TOTAL - RESERVED - 50000
        assert app.live.loads and app.live.gpus[0].headroom_mib == pytest.approx(free0 - need)
        assert line(app, "#plan-status").startswith("✓") and f"headroom GPU 0 {free0 - need:,.0f} MiB" in \
            line(app, "#plan-status")

        clock.t = 10  # the job grows by 20,000 MiB
        app.poll_now()
        await pilot.pause()
        free1 = TOTAL - RESERVED - 70000
        status = line(app, "#plan-status")
        assert status.startswith("✗") and "no longer loads" in status
        assert f"GPU 0 short by {need - free1:,.0f} MiB" in status
        assert "pid 4242 (ana python) +20,000 MiB" in status  # who took the memory
        assert app.query_one("#plan-status").has_class("-short")
        assert app.query_one(PlanTable)._short == (False, True)  # the GPU's row is marked short
        assert app.chosen is chosen  # the shown plan is checked, not silently solved again
        assert app.estimate.results[0].max_context < 50000  # while the table follows the free memory
        assert [kw.get("severity") for _m, kw in seen] == ["error"] and "short by" in seen[0][0]

        clock.t = 20  # it shrinks back
        app.poll_now()
        await pilot.pause()
        status = line(app, "#plan-status")
        assert status.startswith("✓") and "no longer loads" not in status
        assert app.live.loads and app.chosen is chosen
        assert seen[-1][1]["title"] == "The plan loads again"


async def test_jitter_does_not_redraw_and_r_replans_on_what_is_free_now():
    app, clock = frozen_app(GROWING_JOB, demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        shown = app.live
        # a few MiB of jitter: the same LiveCheck object stays on screen (nothing is redrawn)
        snap = app._backend.poll()
        gpu = snap.gpus[0]
        from dataclasses import replace

        jittered = replace(snap, gpus=(replace(gpu, free_mib=gpu.free_mib - 20),), taken_at=snap.taken_at + 0.5)
        app.apply_snapshot(jittered)
        await pilot.pause()
        assert app.live is shown
        clock.t = 10
        app.poll_now()
        await pilot.pause()
        assert not app.live.loads
        old = app.chosen
        await pilot.press("r")
        await pilot.pause()
        assert app.chosen is not old and app.chosen.plan.fits and app.live.loads
        assert app.chosen.plan.context < old.plan.context
        assert app.chosen.row == (app.estimate.recommendation.quant, app.estimate.recommendation.kv_cache)
        assert line(app, "#plan-status").startswith("✓")
        clock.t = 30  # the GPU falls off the bus: no results, so no plan is shown or checked
        app.poll_now()
        await pilot.pause()
        assert app.estimate is None and app.chosen is None and line(app, "#plan-status") == ""


async def test_two_gpus_and_partial_offload_commands_parse_back():
    app, _clock = frozen_app(model="qwen3-30b-a3b")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("v", "g")  # GPU 1 -> GPUs 0 and 1: a layer split by their free memory
        await pilot.pause(0.1)
        assert app.form.gpus == (0, 1)
        plan = app.chosen.plan
        ns = parse_llama_server(line(app, "#plan-launch"))
        assert ns.c == plan.context and ns.ngl == 999 and plan.fully_offloaded
        free = [10395 - MARGIN / 2, 26821 - MARGIN / 2]
        assert [float(x) for x in ns.tensor_split.split(",")] == pytest.approx([f / sum(free) for f in free],
                                                                                abs=0.001)
        lines = app.query_one(PlanTable)._lines
        assert len(lines) == 3 and lines[1].startswith("GPU 0") and lines[2].startswith("GPU 1")
        assert "+out" in lines[2]  # the output layer on the last GPU
        await pilot.press("g")  # GPU 0 alone: 30B MoE in ~10 GB, the experts of some layers on the CPU
        await pilot.pause(0.1)
        assert app.form.gpus == (0,)
        plan = app.chosen.plan
        assert plan.cpu_moe > 0 and not plan.fully_offloaded and plan.fits
        ns = parse_llama_server(app.chosen.launch)
        assert (ns.c, ns.n_cpu_moe, ns.ctk, ns.tensor_split) == (plan.context, plan.cpu_moe, plan.kv_cache, None)
        assert "partial offload" in line(app, "#plan-offload") and plan.cpu_gpu_split() in line(app, "#plan-offload")
        assert f"{plan.host_mib / 1024:.1f} GiB needed" in line(app, "#plan-host")
        assert "slower" in line(app, "#plan-notes")
        assert "CPU/GPU" in line(app, "#plan-status")


async def test_vllm_command_takes_what_the_plan_needs_and_what_if_is_not_live():
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("b", "b")  # vLLM on GPU 1 (26,821 MiB free of 81,559: 0.9 x total is not free)
        await pilot.pause(0.1)
        chosen = app.chosen
        words = shlex.split(command_lines(chosen.launch)[0][0])
        assert words[:2] == ["vllm", "serve"]
        util = float(words[words.index("--gpu-memory-utilization") + 1])
        assert int(words[words.index("--max-model-len") + 1]) == chosen.plan.context
        assert chosen.plan.devices[0].total_mib <= util * TOTAL <= 26821  # enough for the plan, and free
        assert app.live.loads
        await pilot.press("w", *"2x RTX 4090", "enter")
        await pilot.pause(0.1)
        assert app.chosen.plan.tensor_parallel == 2 and app.live is None
        assert "what-if GPUs: nothing live to check" in line(app, "#plan-status")


async def test_e_writes_the_plan_and_says_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        seen = notes_of(app)
        await pilot.press("e")
        md_path = app.last_export
        assert md_path is not None and md_path.parent == tmp_path and md_path.suffix == ".md"
        assert md_path.name.startswith("lander-plan-llama-3.1-8b-")
        assert seen[-1][0] == str(md_path) and seen[-1][1]["title"] == "Plan written (md)"
        md = md_path.read_text()
        plan = app.chosen.plan
        assert f"## Plan: Q8_0 with KV f16 at {plan.context} tokens" in md
        assert f"| {plan.devices[0].name} | 0-31 +output |" in md
        assert f"```sh\n{app.chosen.launch}\n```" in md
        headroom = app.live.gpus[0].headroom_mib
        assert f"Against the free memory then: it loads; headroom GPU 1 {headroom:,.0f} MiB." in md

        await app.run_action("export('json')")  # the palette's JSON export
        await pilot.pause()
        data = json.loads(app.last_export.read_text())
        assert data["plan"] == json.loads(json.dumps(plan.as_json()))
        assert data["launch"] == app.chosen.launch and data["live"]["loads"] is True
        assert data["planned_on"]["gpus"] == [1] and data["recommendation"]["quant"] == "Q8_0"
        ns = parse_llama_server(data["launch"])
        assert ns.c == data["plan"]["context"] and ns.ctk == data["plan"]["kv_cache"]


async def test_export_falls_back_to_the_cache_folder(tmp_path, monkeypatch):
    missing = tmp_path / "gone"  # a working directory that cannot be written
    monkeypatch.setattr(Path, "cwd", classmethod(lambda cls: missing))
    app, _clock = frozen_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await app.run_action("export('csv')")
        await pilot.pause()
        assert app.last_export is not None and app.last_export.parent == tmp_path / "cache"
        assert app.last_export.read_text().splitlines()[0].startswith("model,backend,free_vram_mib,quant")


def test_e_and_v_are_in_the_footer_help_and_palette():
    from lander_tui.ui.app import ACTIONS, PALETTE_EXTRAS, LanderApp

    shown = {b.key: b for b in LanderApp.BINDINGS if getattr(b, "show", False)}
    assert {"e", "v", "c"} <= set(shown) and "r" not in shown  # r: help and palette only
    assert {a for _k, a, *_ in ACTIONS} >= {"export('md')", "toggle_view", "replan"}
    assert [a for a, *_ in PALETTE_EXTRAS] == ["live_gpus", "export('json')", "export('csv')"]


def test_export_path_slug_and_folder(tmp_path):
    from datetime import datetime

    when = datetime(2026, 3, 4, 5, 6, 7)
    p = live_plan.export_path("Qwen/Qwen3-8B:Q4_K_M", "md", when, tmp_path, tmp_path / "cache")
    assert p == tmp_path / "lander-plan-Qwen_Qwen3-8B_Q4_K_M-20260304-050607.md"
    p = live_plan.export_path("x", "json", when, tmp_path / "missing", tmp_path / "cache")
    assert p.parent == tmp_path / "cache"
