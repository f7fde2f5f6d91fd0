"""A 500-host x 8-GPU fleet through a real Prometheus: every GPU read right, and the dashboard
still starts, shows a bounded panel and answers keys; the hosts view lists all 4,500 lines and
rebuilds only on a new reading; "where does it fit?" ranks all 500 hosts. What a refresh costs is
measured by scripts/bench_prometheus_fleet.py (figures, not asserts) and `--benchmark-enable` here.
"""

from __future__ import annotations

import pytest

from lander_tui.core.fit import FitRequest, where_it_fits
from lander_tui.core.gpu import group_by_host
from lander_tui.core.model_source import resolve_model
from lander_tui.ui.host_rows import host_rows
from lander_tui.ui.widgets.gpu_panel import MAX_CARDS, GpuCard, GpuPanel
from tests.prom_fixtures import Exporter, Prometheus, Started, make_fleet, polled, recipe

HOSTS, PER_HOST = 500, 8


@recipe("fleet")
def _start(tmp):
    fleet = make_fleet(HOSTS, PER_HOST)
    exporter = Exporter(fleet)
    return Started({"main": Prometheus(tmp, {"fleet": [exporter.address]}, interval_s=2)}, {"fleet": exporter},
                   {"fleet": fleet})


@pytest.fixture(scope="module")
def big(prometheus_farm):
    started = prometheus_farm.take("fleet")
    fleet, prom = started.extra["fleet"], started.proms["main"]
    with polled(started, "the whole fleet", lambda b: len(b.poll().gpus) == HOSTS * PER_HOST, every=1.0) as backend:
        yield fleet, prom, backend


def test_every_gpu_of_a_4000_gpu_fleet(big):
    fleet, _, backend = big
    snap = backend.poll()
    groups = group_by_host(snap)
    assert [h.host for h in groups] == [h.name for h in fleet.hosts]
    assert all(len(h.gpus) == PER_HOST and not h.stale for h in groups)
    served = {g.uuid: g for h in fleet.hosts for g in h.gpus}
    assert {g.uuid for g in snap.gpus} == set(served)
    assert all(g.free_mib == served[g.uuid].free and g.used_mib == served[g.uuid].used for g in snap.gpus)
    assert sum(h.free_mib for h in groups) == sum(g.free for g in served.values())
    t = backend.api.traffic
    assert t.requests >= 1 and 0 < t.wire_bytes <= t.body_bytes  # gzip on the wire


async def test_dashboard_stays_bounded_with_4000_gpus(big):
    from lander_tui.ui.app import LanderApp

    _, _, backend = big
    app = LanderApp(backend, model="llama-3.1-8b", poll_interval=None)  # a catalog model: no Hub
    async with app.run_test(size=(140, 45)) as pilot:
        app.poll_now()
        await pilot.pause()
        panel = app.query_one(GpuPanel)
        cards = list(panel.query(GpuCard))
        assert len(cards) == MAX_CARDS
        message = panel.query_one("#gpu-message").text
        assert f"{MAX_CARDS} of 4,000 GPUs on 500 hosts shown" in message
        # the plan's GPU is one with the most free memory in the fleet, and its card is shown
        best = max(g.free_mib for g in app.snapshot.gpus)
        (chosen,) = app.form.gpus
        assert next(g for g in app.snapshot.gpus if g.index == chosen).free_mib == best
        assert chosen in {c.index for c in cards}
        before = app.form.gpus
        await pilot.press("g")
        await pilot.pause()
        assert app.form.gpus != before and len(app.form.gpus) == 1
        app.poll_now()  # a second refresh reuses the mounted cards
        await pilot.pause()
        assert len(list(panel.query(GpuCard))) == MAX_CARDS


@pytest.mark.bench
def test_bench_fleet_refresh(big, benchmark):
    _, _, backend = big
    snap = benchmark(backend.poll)
    assert len(snap.gpus) == HOSTS * PER_HOST


async def test_hosts_view_of_4000_gpus_rebuilds_only_on_a_new_reading(big):
    from lander_tui.ui.app import LanderApp
    from lander_tui.ui.screens.hosts import HostsScreen
    from lander_tui.ui.widgets.host_table import HostTable

    _, _, backend = big
    app = LanderApp(backend, model="llama-3.1-8b", poll_interval=None)
    async with app.run_test(size=(140, 45)) as pilot:
        app.poll_now()
        await pilot.pause()
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HostsScreen)
        table = screen.query_one(HostTable)
        assert len(table.rows) == HOSTS + HOSTS * PER_HOST
        assert "500 hosts, 4,000 GPUs" in screen.query_one("#hosts-title").text
        free = {h.host: h.free_mib for h in group_by_host(app.snapshot)}
        frees = [free[r.host] for r in table.rows if r.kind == "host"]
        assert frees == sorted(frees, reverse=True)  # most free first
        assert f"{frees[0]:,.0f}" in table.rows[0].text
        built = screen.refreshes
        screen.follow()
        screen.follow()
        assert screen.refreshes == built  # the same reading costs nothing
        app.poll_now()
        screen.follow()
        assert screen.refreshes == built + 1
        await pilot.press("end")
        assert table.cursor == len(table.rows) - 1 and table.scroll_offset.y > 0
        await pilot.press("home", "enter")  # the host with the most free memory: all 8 of its GPUs
        await pilot.pause()
        assert not isinstance(app.screen, HostsScreen)
        assert len(app.form.gpus) == PER_HOST
        assert len({g.host for g in app.snapshot.gpus if g.index in app.form.gpus}) == 1
        assert app.chosen is not None and len(app.chosen.plan.devices) == PER_HOST  # a layer split over 8


def test_fit_over_4000_gpus(big):
    _, _, backend = big
    snap = backend.poll()
    req = FitRequest(resolve_model("llama-3.1-8b"), "llama.cpp", "Q8_0", "f16", 32768, margin_mib=512.0)
    ans = where_it_fits(req, snap)
    assert ans.hosts == HOSTS and len(ans.ranked) + len(ans.short) == HOSTS
    assert all(s.size == 1 for s in ans.ranked)  # an 8B fits on one H100 wherever it fits at all
    best_free = max(g.free_mib for g in snap.gpus)
    assert ans.ranked[0].free_mib == best_free  # one card type: most headroom = most free
    assert ans.best is not None and ans.best.gpus is ans.ranked[0]
    big_req = FitRequest(resolve_model("llama-3.1-70b"), "vllm", "BF16", "auto", 32768, margin_mib=512.0)
    tp = where_it_fits(big_req, snap, plan_best=False)
    assert {s.size for s in tp.ranked} <= {4, 8} and all(s.size in (4, 8) for s in tp.ranked)


@pytest.mark.bench
def test_bench_fit_4000_gpus(big, benchmark):
    _, _, backend = big
    snap = backend.poll()
    req = FitRequest(resolve_model("llama-3.1-70b"), "llama.cpp", "Q4_K_M", "q8_0", 32768, margin_mib=512.0)
    ans = benchmark(where_it_fits, req, snap)
    assert ans.hosts == HOSTS


@pytest.mark.bench
def test_bench_hosts_view_rows(big, benchmark):
    _, _, backend = big
    snap = backend.poll()
    rows = benchmark(host_rows, snap, "free")
    assert len(rows) == HOSTS * (PER_HOST + 1)
