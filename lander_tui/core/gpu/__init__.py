"""GPUs for lander-tui: live NVML snapshots, a scenario-driven fake, and what-if GPUs.

No Textual here: the CLI, the dashboard and scripts share this package. The public API is what
this module exports; everything fails as a `Snapshot.state` (polling) or a one-line
`LanderError` (asking for a GPU that is not there).
"""

from __future__ import annotations

import time
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.gpu.backend import GpuBackend, cuda_indices
from lander_tui.core.gpu.catalog import (
    GPUS,
    INSTANCES,
    CatalogGpu,
    CloudInstance,
    WhatIf,
    catalog_names,
    find_gpu,
    find_instance,
    what_if,
)
from lander_tui.core.gpu.dmi import DMI_DIR, detect_cloud_instance
from lander_tui.core.gpu.fake_backend import DEMO_SCENARIO, FakeBackend, load_scenario
from lander_tui.core.gpu.fleet import HostGroup, fleet_to_json, group_by_host
from lander_tui.core.gpu.nvml_backend import NvmlBackend
from lander_tui.core.gpu.snapshot import (
    OK,
    STATES,
    GpuInfo,
    GpuProcess,
    Snapshot,
    gpu_to_dict,
    snapshot_to_json,
)

__all__ = [
    "DEMO_SCENARIO",
    "DMI_DIR",
    "GPUS",
    "INSTANCES",
    "OK",
    "STATES",
    "CatalogGpu",
    "CloudInstance",
    "FakeBackend",
    "GpuBackend",
    "GpuInfo",
    "GpuProcess",
    "HostGroup",
    "NvmlBackend",
    "Snapshot",
    "WhatIf",
    "catalog_names",
    "cuda_indices",
    "detect_cloud_instance",
    "find_gpu",
    "find_instance",
    "fleet_to_json",
    "free_mib_of_gpu",
    "gpu_to_dict",
    "group_by_host",
    "load_scenario",
    "open_backend",
    "snapshot_to_json",
    "what_if",
    "what_if_snapshot",
]


def open_backend(demo: bool = False, scenario: dict[str, Any] | None = None,
                 prometheus: str | None = None) -> GpuBackend:
    """NVML (a failing start shows up as `poll().state`), the fake for a scenario / `--demo`, or
    every host's GPUs from the Prometheus server at `prometheus`. Cheap and non-blocking: NVML
    starts, and Prometheus is first asked, on the first poll. A malformed URL or credential
    setting is a one-line LanderError here."""
    if prometheus is not None:
        from lander_tui.core.gpu.prometheus_backend import PrometheusBackend

        return PrometheusBackend(prometheus)
    if scenario is not None:
        return FakeBackend(scenario)
    if demo:
        return FakeBackend(DEMO_SCENARIO)
    return NvmlBackend()


def free_mib_of_gpu(index: int, backend: GpuBackend | None = None) -> tuple[str, float, float]:
    """(name, free MiB, total MiB) of GPU `index` (nvidia-smi numbering) right now."""
    own = backend is None
    b = open_backend() if backend is None else backend
    try:
        snap = b.poll()
    finally:
        if own:
            b.close()
    if not snap.ok:
        raise LanderError(snap.message, exit_code=1)
    gpu = snap.gpu(index)
    if gpu is None:
        have = ", ".join(str(g.index) for g in snap.gpus)
        raise LanderError(f"there is no GPU {index}; this machine has GPU {have} (see `lander-tui gpus`)",
                          exit_code=1)
    if gpu.lost:
        raise LanderError(f"GPU {index} ({gpu.name}) is lost ({gpu.note}); pick another with --gpu", exit_code=1)
    if gpu.free_mib is None or gpu.total_mib is None:
        raise LanderError(f"GPU {index} ({gpu.name}) does not report its memory right now; try again, "
                          "or plan with --what-if NAME", exit_code=1)
    return gpu.name, gpu.free_mib, gpu.total_mib


def what_if_snapshot(w: WhatIf) -> Snapshot:
    """What-if GPUs as a Snapshot (`what_if=True`, all usable memory free), so the UI can show
    them exactly like real ones."""
    gpus = tuple(
        GpuInfo(
            index=i,
            name=g.name,
            uuid=f"what-if-{i}",
            cuda_index=i,
            total_mib=float(g.total_mib),
            used_mib=0.0,
            free_mib=float(g.usable_mib),
            reserved_mib=float(g.reserve_mib),
            what_if=True,
            note=f"what-if ({g.source} numbers)",
        )
        for i, g in enumerate(w.gpus)
    )
    return Snapshot(gpus, OK, f"what-if: {w.label}; not real GPUs", time.time(), None, "what-if")
