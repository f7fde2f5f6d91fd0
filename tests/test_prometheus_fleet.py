"""A 500-host x 8-GPU fleet through a real Prometheus: every GPU read right, and the dashboard
still starts, shows a bounded panel and answers keys. What a refresh costs is measured by
scripts/bench_prometheus_fleet.py (figures, not asserts) and `--benchmark-enable` here.
"""

from __future__ import annotations

import pytest

from lander_tui.core.gpu import group_by_host
from lander_tui.core.gpu.prometheus_backend import PrometheusBackend
from lander_tui.ui.widgets.gpu_panel import MAX_CARDS, GpuCard, GpuPanel
from tests.prom_fixtures import Exporter, Prometheus, Started, make_fleet, recipe, wait_until

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
    backend = None
    try:
        prom.wait_ready()
        backend = PrometheusBackend(prom.url, env={}, min_interval_s=0)
        wait_until("the whole fleet", lambda: len(backend.poll().gpus) == HOSTS * PER_HOST, every=1.0)
        yield fleet, prom, backend
    finally:
        if backend is not None:
            backend.close()
        started.stop()


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
