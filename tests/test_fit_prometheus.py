""""Where does it fit?" and the hosts view against a REAL Prometheus scraping fake dcgm-exporters.

Hosts (each its own exporter on 127.0.0.1, scraped every second by Debian's prometheus):
  idle  2 x H100, nothing running
  dead  1 x H100, lightly used; stops answering in the last test
  pair  2 x L40S, 20 GB used on each
  busy  2 x H100, 60 and 70 GB used
The ranking, the free memory and what each set needs are checked against the numbers served and
against a single `estimate` on the same GPU; the dashboard is the real app driven by Pilot.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from textual.widgets import Input, OptionList

from lander_tui import cli
from lander_tui.core.estimate import EstimateRequest, run_estimate
from lander_tui.core.fit import FitRequest, where_it_fits
from lander_tui.core.model import Device
from lander_tui.core.model_source import resolve_model
from lander_tui.ui.app import LanderApp
from lander_tui.ui.live_plan import export_data
from lander_tui.ui.plan_text import table_lines
from lander_tui.ui.screens.fit import FitScreen
from lander_tui.ui.screens.hosts import HostsScreen
from lander_tui.ui.text import SPARK
from lander_tui.ui.widgets.host_table import HostTable
from tests.prom_fixtures import DcgmHost, Exporter, Gpu, Prometheus, Started, polled, recipe, wait_until

MARGIN = 512.0


def _hosts() -> dict[str, DcgmHost]:
    def h100(tag: str, i: int, used: int, util: float = 0.0) -> Gpu:
        return Gpu(uuid=f"GPU-{tag}{i:07d}-0000-4000-8000-000000000000", used=used, util=util)

    return {
        "idle": DcgmHost("idle", [h100("1", i, 0) for i in range(2)]),
        "dead": DcgmHost("dead", [h100("2", 0, 2000, util=10)]),
        "pair": DcgmHost("pair", [Gpu(uuid=f"GPU-3{i:07d}-0000-4000-8000-000000000000", model="NVIDIA L40S",
                                      total=46068, reserved=500, used=20000, util=40) for i in range(2)]),
        "busy": DcgmHost("busy", [h100("4", 0, 60000, util=95), h100("4", 1, 70000, util=99)]),
    }


@recipe("fit")
def _start(tmp):
    exporters = {name: Exporter(host) for name, host in _hosts().items()}
    return Started({"main": Prometheus(tmp, {"dcgm": [e.address for e in exporters.values()]})}, exporters)


@pytest.fixture(scope="module")
def fleet(prometheus_farm):
    started = prometheus_farm.take("fit")
    prom, exporters = started.proms["main"], started.exporters
    with polled(started, "a scrape of every host",
                lambda b: {g.host for g in b.poll().gpus if not g.stale} == set(exporters)) as backend:
        yield prom, exporters, backend


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LANDER_TUI_PROMETHEUS", raising=False)
    monkeypatch.setenv("LANDER_TUI_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


def _served(exporters) -> dict[str, list[Gpu]]:
    return {name: e.host.gpus for name, e in exporters.items()}


def _fit_json(capsys, prom, *args: str) -> dict:
    code = cli.main(["fit", *args, "--prometheus", prom.url, "--json"])
    out = capsys.readouterr().out
    data = json.loads(out)
    data["exit"] = code
    return data


def test_fit_ranks_hosts_by_the_numbers_served(fleet, capsys):
    prom, exporters, _ = fleet
    data = _fit_json(capsys, prom, "llama-3.1-8b", "-q", "Q8_0", "-k", "f16", "-c", "32k")
    assert data["exit"] == 0 and data["hosts"] == 4 and data["gpus"] == 7
    served = _served(exporters)
    # one GPU each; the idle H100 first, the lightly used one next, the busy host (21 GB free) last
    assert [(f["host"], f["gpus"]) for f in data["fits"]] == [("idle", [0]), ("dead", [0]), ("pair", [0]),
                                                             ("busy", [0])]
    model = resolve_model("llama-3.1-8b")
    for f in data["fits"]:
        gpu = served[f["host"]][f["gpus"][0]]
        assert f["free_mib"] == gpu.free  # what the exporter served
        est = run_estimate(EstimateRequest(model, "llama.cpp", ("Q8_0",), ("f16",),
                                           (Device("x", gpu.free - MARGIN, gpu.total),), 32768))
        row = est.results[0]
        assert row.fits and f["needs_mib"] == pytest.approx(row.total_mib, abs=0.1)
        assert f["headroom_mib"] == pytest.approx(gpu.free - MARGIN - row.total_mib, abs=0.1)
    headroom = [f["headroom_mib"] for f in data["fits"]]
    assert headroom == sorted(headroom, reverse=True)
    best = data["best"]
    assert best["host"] == "idle" and best["gpus"] == [0] and best["plan"]["fits"]
    lines = best["launch"].splitlines()
    assert lines[0] == "# on idle"
    assert any(line.startswith("CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=0 llama-server ") for line in lines)


def test_fit_table(fleet, capsys):
    prom, _, _ = fleet
    assert cli.main(["fit", "llama-3.1-70b", "-q", "Q4_K_M", "-c", "16k", "--prometheus", prom.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("llama-3.1-70b Q4_K_M + KV f16 at 16,384 tokens (llama.cpp): loads on ")
    table = out[out.index(next(line for line in out if line.startswith("#  HOST"))):]
    assert table[1].split()[:3] == ["1", "idle", "0"]
    # the 43 GB of weights fit on one idle H100, or on the two L40S together; the busy host cannot load it
    pair = next(line for line in table if " pair " in line)
    assert pair.split()[2] == "0,1"
    assert any(line.startswith("cannot load it now: busy (short ") for line in out)
    assert any(line.startswith("CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=0 llama-server") for line in out)


def test_a_set_across_hosts_is_never_offered(fleet, capsys):
    _, _, backend = fleet
    snap = backend.poll()
    model = resolve_model("llama-3.1-70b")
    # F16 weights (131 GiB) and a 96k cache: more than any one host has free, less than all of them
    req = FitRequest(model, "llama.cpp", "F16", "f16", 96 * 1024, margin_mib=MARGIN)
    ans = where_it_fits(req, snap)
    assert ans.ranked == () and {s.host for s in ans.short} == {"idle", "dead", "pair", "busy"}
    pooled = replace(snap, gpus=tuple(replace(g, host="pool", host_index=i) for i, g in enumerate(snap.gpus)))
    together = where_it_fits(req, pooled, plan_best=False)
    assert together.ranked and together.ranked[0].size > 2  # only GPUs of several hosts together hold it
    for s in where_it_fits(replace(req, context=4096, quant="Q4_K_M"), snap).ranked:
        hosts = {g.host for g in snap.gpus if g.index in s.indices}
        assert hosts == {s.host}


def test_fit_errors_are_one_line(fleet, capsys):
    prom, exporters, _ = fleet
    for argv in (["--quant", "Q4_K_M,Q8_0"], ["--context", "zero"], ["--top", "0"], ["-b", "nope"],
                 ["--margin", "lots"], ["-k", "fp8"]):
        assert cli.main(["fit", "llama-3.1-8b", *argv, "--prometheus", prom.url]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lander-tui: "), (argv, err)
    # an exporter is a web server, but not Prometheus
    assert cli.main(["fit", "llama-3.1-8b", "--prometheus", f"http://{exporters['idle'].address}"]) == 2
    assert "is not a Prometheus API" in capsys.readouterr().err


async def test_hosts_view_sorts_and_plans_on_a_host(fleet):
    _, _, backend = fleet
    app = LanderApp(backend, model="llama-3.1-8b", poll_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        app.poll_now()
        await pilot.pause()
        assert "GPUs from Prometheus" in app.query_one("#topbar").text
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HostsScreen)
        table = screen.query_one(HostTable)
        hosts = [r.host for r in table.rows if r.kind == "host"]
        assert hosts == ["idle", "dead", "pair", "busy"]  # most free first
        assert len(table.rows) == 4 + 7
        busy = next(r for r in table.rows if r.key == "host:busy")
        assert "2 x H100 80GB HBM3" in busy.text and "130,000 / 163,118" in busy.text and "97%" in busy.text
        await pilot.press("s")
        assert [r.host for r in table.rows if r.kind == "host"] == ["busy", "dead", "idle", "pair"]  # by name
        await pilot.press("s")
        assert [r.host for r in table.rows if r.kind == "host"] == ["idle", "dead", "pair", "busy"]  # least busy
        # the history comes from Prometheus' storage: every host's used memory, at once
        await wait_for(pilot, lambda: set(screen.host_history) == {"idle", "dead", "pair", "busy"})
        assert screen.host_history["busy"][-1][1] == 130000
        assert screen.gpu_history["busy:1"][-1][1] == 70000  # a small fleet: every GPU's too
        spark = next(r for r in table.rows if r.key == "host:busy").text.rstrip()[-1]
        assert spark == SPARK[round(130000 / 163118 * (len(SPARK) - 1))]  # 80 % used: a tall bar
        # Enter on the pair host: both L40S, a layer split, named pair:0 and pair:1
        table.cursor = next(i for i, r in enumerate(table.rows) if r.key == "host:pair")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, HostsScreen)
        pair = tuple(g.index for g in app.snapshot.gpus if g.host == "pair")
        assert app.form.gpus == pair
        chosen = app.chosen
        assert chosen is not None and chosen.plan is not None and len(chosen.plan.devices) == 2
        assert chosen.memory.label == "pair:0+1 free now"
        assert [n.label for n in chosen.needs] == ["pair:0", "pair:1"]
        assert "CUDA_VISIBLE_DEVICES=0,1 llama-server" in chosen.launch and "--tensor-split" in chosen.launch
        assert chosen.launch.startswith("# on pair\n")
        exported = export_data(app.draft.request, app.estimate, chosen, app.live)["planned_on"]
        assert (exported["host"], exported["host_gpus"], exported["label"]) == ("pair", [0, 1], "pair:0+1 free now")
        lines, _ = table_lines(chosen, app.live)
        assert [line.split()[0] for line in lines[1:]] == ["pair:0", "pair:1"]  # not "GPU 14"


async def wait_for(pilot, check, tries: int = 100):
    for _ in range(tries):
        if check():
            return
        await pilot.pause(0.1)
    raise AssertionError("condition not met in time")


async def test_fit_list_in_the_dashboard_and_enter_plans_there(fleet):
    _, _, backend = fleet
    app = LanderApp(backend, model="llama-3.1-8b", poll_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        app.poll_now()
        await pilot.pause()
        app.set_form(replace(app.form, context="32k", quants="Q8_0", kv_types="f16"))
        await pilot.pause()
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, FitScreen)
        await wait_for(pilot, lambda: screen.answer is not None or screen.error)
        answer = screen.answer
        want = where_it_fits(screen.request, app.snapshot, plan_best=False)
        assert [s.host for s in answer.ranked] == [s.host for s in want.ranked] == ["idle", "dead", "pair", "busy"]
        options = screen.query_one(OptionList)
        assert options.option_count == 4 and "idle" in str(options.get_option_at_index(0).prompt)
        assert "# on idle" in str(screen.query_one("#fit-best").render())
        await pilot.press("down", "down", "down", "enter")  # the busy host, last
        await pilot.pause()
        assert not isinstance(app.screen, FitScreen)
        busy0 = next(g.index for g in app.snapshot.gpus if g.label == "busy:0")
        assert app.form.gpus == (busy0,)
        assert app.chosen.memory.label == "busy:0 free now"
        assert app.chosen.plan.fits and app.chosen.row == ("Q8_0", "f16")
        assert "CUDA_VISIBLE_DEVICES=0 llama-server" in app.chosen.launch


async def test_a_host_that_dies_turns_stale_in_the_view_and_leaves_the_ranking(fleet, capsys):
    prom, exporters, backend = fleet
    exporters["dead"].stop()
    wait_until("the dead host to turn stale",
               lambda: any(g.host == "dead" and g.stale for g in backend.poll().gpus))
    data = _fit_json(capsys, prom, "llama-3.1-8b", "-q", "Q8_0", "-c", "32k")
    assert "dead" not in [f["host"] for f in data["fits"]] and data["not_reporting"] == ["dead"]
    app = LanderApp(backend, model="llama-3.1-8b", poll_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        app.poll_now()
        await pilot.pause()
        await pilot.press("h")
        table = app.screen.query_one(HostTable)
        dead = next(r for r in table.rows if r.key == "host:dead")
        # why, as Prometheus saw the scrape fail ("connection refused", or "reset" mid-scrape)
        assert dead.stale and "STALE" in dead.text and "Prometheus: connection " in dead.text
        assert [r.host for r in table.rows if r.kind == "host"][-1] == "dead"  # no free memory: last
        assert "1 stale" in app.screen.query_one("#hosts-title").text
        table.cursor = table.rows.index(dead)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HostsScreen)  # nothing to plan on: it says so and stays
        assert app.form.gpus != tuple(g.index for g in app.snapshot.gpus if g.host == "dead")
