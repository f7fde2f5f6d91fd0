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
    return 0


if __name__ == "__main__":
    sys.exit(main())
