"""Immutable GPU snapshots: what every GPU holds at one instant, and why when we cannot tell.

A poll never raises for a hardware or driver problem; it returns a `Snapshot` whose `state`
names the problem and whose `message` is one actionable line, so the CLI can print it and the
dashboard can show it in place. Per-GPU trouble (a card lost mid-run, unified memory, fields
the card does not report) lives on the `GpuInfo` itself, so the other cards stay visible.
Memory is in MiB (2**20 bytes), as nvidia-smi prints it; `None` always means N/A.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Snapshot.state values. Everything except OK means "no GPU to show" and comes with a message.
OK = "ok"
LIBRARY_MISSING = "library_missing"  # no libnvidia-ml.so.1 (no driver installed) or no nvidia-ml-py
DRIVER_NOT_LOADED = "driver_not_loaded"  # library present, kernel module not loaded
DRIVER_MISMATCH = "driver_mismatch"  # user-space library and kernel module from different drivers
NO_PERMISSION = "no_permission"  # /dev/nvidia* not accessible to this user
NO_GPUS = "no_gpus"  # NVML works but sees no device (or all are hidden)
NVML_ERROR = "nvml_error"  # any other NVML start-up failure
# A fleet source (Prometheus, core/gpu/prometheus_backend.py) fails in its own ways:
UNREACHABLE = "unreachable"  # no connection, timeout, TLS failure
NOT_PROMETHEUS = "not_prometheus"  # something answered, but not the Prometheus HTTP API (or it redirected)
AUTH_FAILED = "auth_failed"  # HTTP 401/403: credentials missing or refused
QUERY_ERROR = "query_error"  # Prometheus answered {"status": "error"} (bad query, timeout, too many samples)
NO_GPU_SERIES = "no_gpu_series"  # Prometheus works but holds no DCGM or nvitop GPU series
STATES = (OK, LIBRARY_MISSING, DRIVER_NOT_LOADED, DRIVER_MISMATCH, NO_PERMISSION, NO_GPUS, NVML_ERROR,
          UNREACHABLE, NOT_PROMETHEUS, AUTH_FAILED, QUERY_ERROR, NO_GPU_SERIES)

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """One process holding GPU memory. `resolved` is False when psutil cannot see the PID
    (typically a host PID seen from inside a container); it is still listed with its memory."""

    pid: int
    used_mib: float | None  # None: the driver does not report per-process memory (WDDM, MIG)
    command: str | None = None
    user: str | None = None
    kind: str = "C"  # "C" compute, "G" graphics, "C+G" both
    resolved: bool = True


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One GPU at one instant. `free_mib` is what a new process can allocate (NVML memory v2).

    GPUs of other machines (a fleet read from Prometheus) carry their `host`; their `index` is
    then their position in the snapshot (unique across hosts, what the UI selects by) and
    `host_index` / `cuda_index` the GPU's number on its own host. A `stale` GPU is one whose
    host stopped reporting: only its identity (and total memory) is kept, never its free memory.
    """

    index: int  # NVML index = nvidia-smi index (PCI order); for fleet GPUs, the position in the snapshot
    name: str
    uuid: str = ""
    cuda_index: int | None = None  # position under CUDA_VISIBLE_DEVICES; None = hidden from CUDA
    total_mib: float | None = None
    used_mib: float | None = None
    free_mib: float | None = None
    reserved_mib: float | None = None  # driver/firmware reserve; None on drivers without memory v2
    util_percent: float | None = None
    mem_bw_percent: float | None = None  # NVML "memory utilisation" is bandwidth, not capacity
    temp_c: float | None = None
    power_w: float | None = None
    power_cap_w: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    what_if: bool = False
    lost: bool = False
    unified_memory: bool = False  # memory shared with the host: figures come from host RAM
    note: str = ""  # one line about anything unusual on this GPU
    host: str = ""  # the machine it is in, for GPUs read from a fleet source; "" = this machine
    host_index: int | None = None  # its nvidia-smi index on `host` (the exporter's gpu/index label)
    stale: bool = False  # its host's samples are too old (or gone): nothing about it is current
    #: Fixed facts for the speed of a card the speed table does not know (read once; None = N/A):
    #: NVML's maximum memory clock (half the data rate), bus width, compute capability, SMs, SM clock.
    mem_clock_mhz: float | None = None
    bus_width_bits: int | None = None
    compute_capability: tuple[int, int] | None = None
    sm_count: int | None = None
    sm_clock_mhz: float | None = None

    @property
    def label(self) -> str:
        """`0`, `0 (cuda 1)` when CUDA numbers it differently, `0 (hidden)` when
        CUDA_VISIBLE_DEVICES leaves it out (so a job started here would not see it);
        `HOST:3` for a GPU of another machine."""
        if self.host:
            return f"{self.host}:{'?' if self.host_index is None else self.host_index}"
        if self.cuda_index is None:
            return f"{self.index} (hidden)"
        if self.cuda_index != self.index:
            return f"{self.index} (cuda {self.cuda_index})"
        return str(self.index)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All GPUs at one instant (`taken_at`, seconds since the epoch)."""

    gpus: tuple[GpuInfo, ...]
    state: str = OK
    message: str = ""  # one line; for OK snapshots a warning about lost/odd GPUs, else empty
    taken_at: float = 0.0
    driver: str | None = None
    source: str = "nvml"  # "nvml", "fake", "what-if" or "prometheus"

    @property
    def ok(self) -> bool:
        return self.state == OK

    def gpu(self, index: int) -> GpuInfo | None:
        for g in self.gpus:
            if g.index == index:
                return g
        return None


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def gpu_to_dict(g: GpuInfo) -> dict[str, Any]:
    """The `lander-tui gpus --json` object for one GPU (sizes in MiB, like nvidia-smi)."""
    return {
        "gpu_index": g.index,
        "cuda_index": g.cuda_index,
        "gpu_name": g.name,
        "uuid": g.uuid,
        "total_vram_mib": _r(g.total_mib),
        "used_vram_mib": _r(g.used_mib),
        "free_vram_mib": _r(g.free_mib),
        "reserved_vram_mib": _r(g.reserved_mib),
        "util_percent": g.util_percent,
        "mem_bw_percent": g.mem_bw_percent,
        "temp_c": g.temp_c,
        "power_w": _r(g.power_w),
        "power_cap_w": _r(g.power_cap_w),
        "what_if": g.what_if,
        "lost": g.lost,
        "unified_memory": g.unified_memory,
        "note": g.note,
        "host": g.host,
        "host_gpu_index": g.host_index,
        "stale": g.stale,
        "processes": [
            {
                "pid": p.pid,
                "used_vram_mib": _r(p.used_mib),
                "command": p.command,
                "user": p.user,
                "kind": p.kind,
                "resolved": p.resolved,
            }
            for p in g.processes
        ],
    }


def snapshot_to_json(s: Snapshot) -> list[dict[str, Any]]:
    return [gpu_to_dict(g) for g in s.gpus]
