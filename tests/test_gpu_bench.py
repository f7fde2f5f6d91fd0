"""Poll cost budget: 8 GPUs with processes under 5 ms of CPU, a 1 Hz poller under 0.5 % of a core.

Uses scripts/bench_gpu_poll.py's own measuring functions (so the script stays runnable) over
the scenario fake; NVML's C calls are not included (no GPU here; see the script docstring).
"""

from __future__ import annotations

import os
import statistics

import pytest
from script_module import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_gpu_poll")


@pytest.fixture
def sleepers(bench):
    procs = bench.spawn_sleepers(8)
    yield [p.pid for p in procs]
    for p in procs:
        p.kill()
        p.wait()


def test_poll_of_8_gpus_with_processes_is_under_5_ms_cpu(bench, sleepers):
    b = bench.make_backend(8, 4, sleepers + [os.getpid()])
    first = b.poll()
    assert len(first.gpus) == 8 and sum(len(g.processes) for g in first.gpus) == 32
    assert sum(p.resolved for g in first.gpus for p in g.processes) == 9
    costs = bench.poll_cpu_ms(b, 50)
    b.close()
    assert statistics.median(costs) < bench.BUDGET_POLL_MS, costs


def test_poller_thread_stays_under_half_a_percent_of_a_core_at_1_hz(bench, sleepers):
    # 20 polls in 1 s: CPU per poll x 1 Hz must stay under 0.5 % of a core (5 ms per second)
    b = bench.make_backend(8, 4, sleepers)
    b.poll()
    n, cpu, wall = bench.poller_cost(b, interval=0.05, seconds=1.0)
    b.close()
    assert n >= 10
    per_poll_percent_at_1hz = 100 * (cpu / n) / 1.0
    assert per_poll_percent_at_1hz < bench.BUDGET_POLLER_PERCENT, (n, cpu)


@pytest.mark.bench
def test_bench_poll_8_gpus(benchmark, bench):
    b = bench.make_backend(8, 4, [os.getpid()])
    b.poll()
    snap = benchmark(b.poll)
    b.close()
    assert len(snap.gpus) == 8
