"""What one refresh of a big fleet costs through a real Prometheus (Debian's `prometheus`).

    uv run python scripts/bench_prometheus_fleet.py [--hosts 500] [--gpus 8] [--refreshes 10]

Starts a fake dcgm-exporter page holding every host (tests/prom_fixtures.py, one scrape target)
and a real Prometheus scraping it every 2 s, waits until all GPUs are in, then measures
`PrometheusBackend.poll()`: CPU of the polling thread (`time.thread_time`, so the exporter thread
serving scrapes in this same process is not counted), wall time, bytes on the wire (gzip) and
decoded, plus Prometheus' own CPU for the same refreshes (from /proc, minus its idle rate), and
the two history queries. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lander_tui.core.gpu.prometheus_backend import PrometheusBackend  # noqa: E402
from tests.prom_fixtures import Exporter, Prometheus, make_fleet  # noqa: E402


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(backend: PrometheusBackend, fn) -> tuple[float, float, int, int, object]:
    t = backend.api.traffic
    wire, body = t.wire_bytes, t.body_bytes
    cpu, wall = time.thread_time(), time.perf_counter()
    result = fn()
    return (time.thread_time() - cpu, time.perf_counter() - wall, t.wire_bytes - wire, t.body_bytes - body, result)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--refreshes", type=int, default=10)
    args = ap.parse_args()
    n = args.hosts * args.gpus
    fleet = make_fleet(args.hosts, args.gpus)
    exporter = Exporter(fleet)
    with tempfile.TemporaryDirectory() as tmp:
        prom = Prometheus(Path(tmp), {"fleet": [exporter.address]}, interval_s=2)
        try:
            prom.wait_ready()
            backend = PrometheusBackend(prom.url, env={}, min_interval_s=0)
            deadline = time.monotonic() + 60
            while len(backend.poll().gpus) < n:
                if time.monotonic() > deadline:
                    print("the fleet never showed up in full", file=sys.stderr)
                    return 1
                time.sleep(1)
            time.sleep(4)  # a few more scrapes, so range queries have points
            cold = PrometheusBackend(prom.url, env={}, min_interval_s=0)
            c_cpu, c_wall, c_wire, c_body, snap = measure(cold, cold.poll)
            cold.close()
            assert len(snap.gpus) == n, len(snap.gpus)
            idle0 = proc_cpu_s(prom.proc.pid)
            time.sleep(3)
            idle_rate = (proc_cpu_s(prom.proc.pid) - idle0) / 3
            rows = []
            p0, w0 = proc_cpu_s(prom.proc.pid), time.perf_counter()
            for _ in range(args.refreshes):
                rows.append(measure(backend, backend.poll))
            prom_cpu = proc_cpu_s(prom.proc.pid) - p0 - idle_rate * (time.perf_counter() - w0)
            h_cpu, h_wall, h_wire, h_body, hist = measure(backend, lambda: backend.history(600, 60))
            hh_cpu, hh_wall, hh_wire, hh_body, hhist = measure(backend, lambda: backend.history(600, 60, per_host=True))
            view = measure_view(backend, args.refreshes)
            fits = measure_fit(backend.poll())
            backend.close()
        finally:
            prom.stop()
            exporter.stop()

    def med(i: int) -> float:
        return statistics.median(r[i] for r in rows)

    print(f"fleet: {args.hosts} hosts x {args.gpus} GPUs = {n:,} GPUs, real Prometheus (Debian), 2 s scrapes")
    print(f"first poll (live + remembered + targets): CPU {c_cpu * 1e3:.0f} ms, wall {c_wall * 1e3:.0f} ms, "
          f"{c_wire / 1e3:,.0f} kB on the wire, {c_body / 1e6:.2f} MB decoded")
    print(f"refresh (median of {args.refreshes}): CPU {med(0) * 1e3:.0f} ms, wall {med(1) * 1e3:.0f} ms, "
          f"{med(2) / 1e3:,.0f} kB on the wire (gzip), {med(3) / 1e6:.2f} MB decoded")
    print(f"  per GPU: {med(0) / n * 1e6:.1f} µs CPU, {med(2) / n:.0f} B on the wire")
    print(f"  Prometheus' own CPU per refresh: {prom_cpu / args.refreshes * 1e3:.0f} ms")
    print(f"  at the default 5 s minimum between refreshes: {med(0) / 5 * 100:.1f} % of one core here")
    points = sum(len(v) for v in hist.series.values())
    print(f"history, used MiB per GPU (10 min, 60 steps; {points:,} points back): CPU {h_cpu * 1e3:.0f} ms, "
          f"wall {h_wall * 1e3:.0f} ms, {h_wire / 1e3:,.0f} kB wire, {h_body / 1e6:.2f} MB decoded")
    points = sum(len(v) for v in hhist.series.values())
    print(f"history, per host (10 min, 60 steps; {points:,} points): CPU {hh_cpu * 1e3:.0f} ms, "
          f"wall {hh_wall * 1e3:.0f} ms, {hh_wire / 1e3:,.0f} kB wire, {hh_body / 1e6:.2f} MB decoded")
    print("hosts view (h), per refresh on a new reading (median of "
          f"{args.refreshes}; CPU of the app's thread, the Prometheus query above not included):")
    print(f"  rows rebuilt ({n + args.hosts:,} lines): {view['rows'] * 1e3:.1f} ms; the whole refresh (GPU panel, "
          f"the form's request, the rows, drawing the lines on screen): {view['refresh'] * 1e3:.1f} ms")
    print(f"  the same reading again (the dashboard's 1 s tick between 5 s refreshes): {view['same'] * 1e6:.0f} µs")
    print(f"  its histories: every host, {view['hosts_wire'] / 1e3:,.0f} kB wire once a minute; one host's "
          f"{args.gpus} GPUs (the cursor's), {view['host_wire'] / 1e3:,.1f} kB wire")
    for label, (cpu, ans) in fits.items():
        print(f"where does it fit? {label}: {cpu * 1e3:.0f} ms CPU for {n:,} GPUs "
              f"({len(ans.ranked)} of {ans.hosts} hosts load it; best {ans.ranked[0].host}"
              f" GPUs {ans.ranked[0].gpus_text})" if ans.ranked else " (loads nowhere)")
    return 0


def measure_view(backend: PrometheusBackend, refreshes: int) -> dict[str, float]:
    """The hosts view open in the real app (headless): what one refresh costs the app's thread."""
    import asyncio

    from lander_tui.ui.app import LanderApp
    from lander_tui.ui.host_rows import HISTORY_POINTS, HISTORY_WINDOW_S, host_rows
    from lander_tui.ui.screens.hosts import HostsScreen

    out: dict[str, float] = {}

    async def run() -> None:
        app = LanderApp(backend, model="llama-3.1-8b", poll_interval=None)
        async with app.run_test(size=(140, 45)) as pilot:
            app.poll_now()
            await pilot.pause()
            await pilot.press("h")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, HostsScreen)
            whole, same, rows = [], [], []
            for _ in range(refreshes):
                snap = backend.poll()
                cpu = time.thread_time()
                app.apply_snapshot(snap)
                screen.follow()
                await pilot.pause()  # the frame: only the lines on screen are drawn
                whole.append(time.thread_time() - cpu)
                cpu = time.thread_time()
                app.apply_snapshot(snap)
                screen.follow()
                same.append(time.thread_time() - cpu)
                cpu = time.thread_time()
                host_rows(snap, "free")
                rows.append(time.thread_time() - cpu)
            out.update(refresh=statistics.median(whole), same=statistics.median(same), rows=statistics.median(rows))

    asyncio.run(run())
    t = backend.api.traffic
    wire = t.wire_bytes
    backend.history(HISTORY_WINDOW_S, HISTORY_POINTS, per_host=True)
    out["hosts_wire"], wire = t.wire_bytes - wire, t.wire_bytes
    backend.history(HISTORY_WINDOW_S, HISTORY_POINTS, hosts=("node-001",))
    out["host_wire"] = t.wire_bytes - wire
    return out


def measure_fit(snap) -> dict[str, tuple[float, object]]:
    """`where_it_fits` over the whole fleet (ranking and the best set's plan), CPU per engine."""
    from lander_tui.core.fit import FitRequest, where_it_fits
    from lander_tui.core.model_source import resolve_model

    out = {}
    for label, model, engine, quant, kv in (("llama.cpp, Llama-3.1-70B Q4_K_M at 32k", "llama-3.1-70b", "llama.cpp",
                                             "Q4_K_M", "q8_0"),
                                            ("vLLM, Llama-3.1-70B BF16 at 32k (TP)", "llama-3.1-70b", "vllm", "BF16",
                                             "auto"),
                                            ("SGLang, Qwen3-8B BF16 at 32k", "qwen3-8b", "sglang", "BF16", "auto")):
        req = FitRequest(resolve_model(model), engine, quant, kv, 32768, margin_mib=512.0)
        where_it_fits(req, snap)  # weights and tables cached, as in a running dashboard
        cpu = time.thread_time()
        ans = where_it_fits(req, snap)
        out[label] = (time.thread_time() - cpu, ans)
    return out


if __name__ == "__main__":
    sys.exit(main())
