"""The Prometheus GPU source against a REAL Prometheus scraping fake hosts every second.

Hosts (each its own HTTP exporter on 127.0.0.1, scraped by Debian's prometheus):
  gpu-a  dcgm-exporter, `Hostname` label (releases before #655), 8 x H100, lightly used
  gpu-b  dcgm-exporter, `hostname` label (after #655), 2 x A100 busy; ALSO an nvitop-exporter for
         the same GPUs under its default hostname (an IP): the same UUIDs must show once
  gpu-c  dcgm-exporter, 4 x L40S; stops answering mid-test
  gpu-d  nvitop-exporter only, 2 x RTX 4090 with processes
  gpu-e  dcgm-exporter serving explicit timestamps 40 s old (a stuck federation source)
  (no name) dcgm-exporter --no-hostname: Prometheus' `instance` names the host
"""

from __future__ import annotations

import io
import json
import time

import pytest

from lander_tui import cli
from lander_tui.core.gpu import snapshot as S
from lander_tui.core.gpu.prometheus_backend import PrometheusBackend
from tests.prom_fixtures import DcgmHost, Exporter, Gpu, NvitopHost, Prometheus, Started, polled, recipe, wait_until

FROZEN_AGE_S = 40


def _h100(i: int, used: int) -> Gpu:
    return Gpu(uuid=f"GPU-a{i:07d}-0000-4000-8000-000000000000", used=used, util=5 * i, temp=30 + i,
               power=70.5 + i)


def _fleet_hosts() -> dict[str, DcgmHost | NvitopHost]:
    a100 = [Gpu(uuid=f"GPU-b{i:07d}-0000-4000-8000-000000000000", model="NVIDIA A100-SXM4-80GB", total=81920,
                reserved=0, used=72000 + 1000 * i, util=100, temp=71, power=390.25) for i in range(2)]
    rtx = [Gpu(uuid=f"GPU-d{i:07d}-0000-4000-8000-000000000000", model="NVIDIA GeForce RTX 4090", total=24564,
               reserved=347, used=9000 * (1 - i), util=60 * (1 - i), temp=55, power=310.0, power_cap=450.0,
               processes=[{"pid": 4242, "user": "ana", "command": "llama-server -m qwen3-8b.gguf", "used": 9000}]
               if i == 0 else []) for i in range(2)]
    return {
        "a": DcgmHost("gpu-a", [_h100(i, used=1000 * i) for i in range(8)]),
        "b": DcgmHost("gpu-b", a100, host_label="hostname"),
        "b-nvitop": NvitopHost("10.0.0.2", a100),
        "c": DcgmHost("gpu-c", [Gpu(uuid=f"GPU-c{i:07d}-0000-4000-8000-000000000000", model="NVIDIA L40S",
                                    total=46068, reserved=500, used=2000) for i in range(4)]),
        "d": NvitopHost("gpu-d", rtx),
        "e": DcgmHost("gpu-e", [_h100(90, used=500)], frozen_at_ms=int((time.time() - FROZEN_AGE_S) * 1000)),
        "nameless": DcgmHost("ignored", [_h100(91, used=100)], host_label=""),
    }


@recipe("backend")
def _start(tmp):
    exporters = {key: Exporter(host) for key, host in _fleet_hosts().items()}
    prom = Prometheus(tmp, {
        "dcgm": [exporters[k].address for k in ("a", "b", "c", "e", "nameless")],
        "nvitop": [exporters[k].address for k in ("b-nvitop", "d")],
    })
    return Started({"main": prom}, exporters)


@pytest.fixture(scope="module")
def fleet(prometheus_farm):
    started = prometheus_farm.take("backend")
    prom, exporters = started.proms["main"], started.exporters
    hosts = {"gpu-a", "gpu-b", "gpu-c", "gpu-d", exporters["nameless"].address}

    def all_fresh(backend):
        return hosts <= {g.host for g in backend.poll().gpus if not g.stale}

    with polled(started, "scrape of every live host", all_fresh) as backend:
        yield prom, exporters, backend


def _by_host(snap):
    out: dict[str, list] = {}
    for g in snap.gpus:
        out.setdefault(g.host, []).append(g)
    return out


def test_every_host_and_gpu_as_served(fleet):
    prom, exporters, backend = fleet
    snap = backend.poll()
    assert snap.ok and snap.source == "prometheus"
    hosts = _by_host(snap)
    nameless = exporters["nameless"].address
    assert set(hosts) == {"gpu-a", "gpu-b", "gpu-c", "gpu-d", "gpu-e", nameless}
    assert [len(hosts[h]) for h in ("gpu-a", "gpu-b", "gpu-c", "gpu-d", "gpu-e", nameless)] == [8, 2, 4, 2, 1, 1]
    assert len({g.index for g in snap.gpus}) == len(snap.gpus)  # unique across hosts (stable ids, may have gaps)
    assert [g.label for g in hosts["gpu-a"]] == [f"gpu-a:{i}" for i in range(8)]
    served = {g.uuid: g for key in ("a", "b", "c", "d", "nameless") for g in exporters[key].host.gpus}
    for g in snap.gpus:
        if g.host == "gpu-e":
            continue
        want = served[g.uuid]
        assert not g.stale, g
        assert (g.used_mib, g.free_mib, g.total_mib) == (want.used, want.free, want.total), g.label
        assert g.reserved_mib == want.reserved, g.label
        assert (g.util_percent, g.temp_c, g.power_w) == (int(want.util), int(want.temp), want.power), g.label
        assert g.name == want.model
        assert g.host_index == g.cuda_index == int(g.label.rsplit(":", 1)[1])
    # nvitop-only host: power cap and processes come from its own series
    rtx0 = hosts["gpu-d"][0]
    assert rtx0.power_cap_w == 450.0
    assert [(p.pid, p.user, p.command, p.used_mib) for p in rtx0.processes] == [
        (4242, "ana", "llama-server -m qwen3-8b.gguf", 9000.0)]
    # the A100s reported by both exporters appear once, from dcgm-exporter (it reports the reserve)
    assert "10.0.0.2" not in hosts
    assert all(g.reserved_mib == 0 and g.power_cap_w is None for g in hosts["gpu-b"])


def test_old_samples_are_stale_never_free(fleet):
    _, exporters, backend = fleet
    snap = backend.poll()
    (e,) = [g for g in snap.gpus if g.host == "gpu-e"]
    assert e.stale and e.free_mib is None and e.used_mib is None
    age = int(e.note.split("newest sample ")[1].split(" s old")[0])
    # the samples carry the time the exporter was made (the session's start, minutes ago in a full run)
    served_age = time.time() - exporters["e"].host.frozen_at_ms / 1000
    assert FROZEN_AGE_S <= age and abs(age - served_age) < 10, (e.note, served_age)
    assert "scraped every 1 s" in e.note


def test_a_change_on_a_busy_host_shows_on_the_next_scrape(fleet):
    _, exporters, backend = fleet

    def free_gpu0(host):
        host.gpus[0].used = 20000

    exporters["b"].change(free_gpu0)
    want = exporters["b"].host.gpus[0].free

    def seen():
        g = next(g for g in backend.poll().gpus if g.label == "gpu-b:0")
        return g if g.free_mib == want else None

    g = wait_until("the new used memory of gpu-b:0", seen, timeout=10)
    assert g.used_mib == 20000


def test_history_comes_from_range_queries(fleet):
    _, exporters, backend = fleet
    for used in (1111, 3333):
        exporters["d"].change(lambda h, u=used: setattr(h.gpus[1], "used", u))
        wait_until(f"gpu-d:1 at {used} MiB",
                   lambda u=used: any(g.label == "gpu-d:1" and g.used_mib == u for g in backend.poll().gpus),
                   timeout=10)
    hist = backend.history(window_s=30, points=30, hosts=("gpu-d",))
    assert hist.state == S.OK and set(hist.series) == {"gpu-d:0", "gpu-d:1"}
    values = [v for _, v in hist.series["gpu-d:1"]]
    assert 1111 in values and 3333 in values and values.index(1111) < values.index(3333)
    times = [t for t, _ in hist.series["gpu-d:1"]]
    assert times == sorted(times) and times[-1] - times[0] <= 30
    per_host = backend.history(window_s=10, points=10, hosts=("gpu-b",), per_host=True)
    assert set(per_host.series) == {"gpu-b"}
    now = {g.uuid: g.used_mib for g in backend.poll().gpus if g.host == "gpu-b"}
    assert per_host.series["gpu-b"][-1][1] == sum(now.values())


def test_gpus_cli_groups_by_host(fleet, capsys):
    prom, exporters, _ = fleet
    assert cli.main(["gpus", "--prometheus", prom.url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    nameless = exporters["nameless"].address
    assert [h["host"] for h in data] == [nameless, "gpu-a", "gpu-b", "gpu-c", "gpu-d", "gpu-e"]  # natural order
    a = data[1]
    assert a["stale"] is False and len(a["gpus"]) == 8
    assert a["free_vram_mib"] == sum(g["free_vram_mib"] for g in a["gpus"])
    assert a["gpus"][3]["host_gpu_index"] == 3 and a["gpus"][3]["used_vram_mib"] == 3000
    e = next(h for h in data if h["host"] == "gpu-e")
    assert e["stale"] is True and e["free_vram_mib"] is None
    assert cli.main(["gpus", "--prometheus", prom.url]) == 0
    table = capsys.readouterr().out
    assert "gpu-a  8 x H100 80GB HBM3" in table
    assert "gpu-e  STALE" in table
    row = next(line for line in table.splitlines() if line.lstrip().startswith("gpu-b:1"))
    assert "73000 / 81920" in row


def test_a_host_that_stops_answering_turns_stale(fleet):
    prom, exporters, backend = fleet
    before = {g.uuid: g for g in backend.poll().gpus if g.host == "gpu-c"}
    assert before and not any(g.stale for g in before.values())
    exporters["c"].stop()

    def stale_c():
        snap = backend.poll()
        c = [g for g in snap.gpus if g.host == "gpu-c"]
        return snap if c and all(g.stale for g in c) else None

    snap = wait_until("gpu-c to turn stale", stale_c, timeout=15)
    for g in (g for g in snap.gpus if g.host == "gpu-c"):
        assert g.free_mib is None and g.used_mib is None and g.util_percent is None
        assert g.total_mib == before[g.uuid].total_mib  # identity and size are still shown
        # the scrape error Prometheus reports: refused (usually), or the scrape cut off as it stopped
        # (EOF, connection reset, broken pipe: which one depends on where the exporter's socket closed)
        assert "; Prometheus: " in g.note and any(w in g.note for w in ("refused", "EOF", "reset", "broken pipe")), \
            g.note
    assert all(not g.stale for g in snap.gpus if g.host in ("gpu-a", "gpu-b", "gpu-d"))
    assert snap.message.startswith("2 of 6 hosts stale (gpu-c, gpu-e)")
    # A backend that never saw gpu-c alive still lists it (Prometheus remembers it), as stale.
    fresh = PrometheusBackend(prom.url, env={}, min_interval_s=0)
    try:
        c = [g for g in fresh.poll().gpus if g.host == "gpu-c"]
    finally:
        fresh.close()
    assert len(c) == 4 and all(g.stale and g.free_mib is None for g in c)
    assert all(g.name == "NVIDIA L40S" and g.total_mib == 46068 for g in c)  # size from the last samples
    # the CLI says it too, and --json carries the flag
    out = io.StringIO()
    from lander_tui.commands import gpus as gpus_cmd

    args = cli.build_parser().parse_args(["gpus", "--prometheus", prom.url])
    assert gpus_cmd.run(args, out=out) == 0
    assert "gpu-c  STALE" in out.getvalue()
