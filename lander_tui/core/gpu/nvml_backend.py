"""Live GPU snapshots from NVML (`nvidia-ml-py`, imported as `pynvml`).

Shape, after nvitop and gpustat (see research/tui-anchors.md §2): initialise NVML once, keep
the handles, and make each poll a handful of cheap getters (~30-70 µs of NVML time per GPU on
an H100). Failing calls are the expensive ones (40-80x a good getter), so a field a card does
not support is probed once and then reported as N/A without asking again. API versions are
probed once too (memory v2 -> v1, temperature V -> legacy, processes v3 -> v2). Every failure
becomes a `Snapshot.state` or a per-GPU flag, never an exception out of `poll()`.

The module to call is injectable (`nvml=`): the fake backend passes a scenario-driven stand-in
for `pynvml`, so the tests exercise this exact code path.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import lander_tui.core.gpu.snapshot as S
from lander_tui.core.gpu.backend import cuda_indices
from lander_tui.core.gpu.procs import ProcessResolver, ProcInfo
from lander_tui.core.gpu.snapshot import MIB, GpuInfo, GpuProcess, Snapshot

PLAN_HINT = 'plan without one: --what-if NAME (e.g. --what-if "RTX 4090" or --what-if g5.12xlarge)'
DEFAULT_DMI_DIR = "/sys/devices/virtual/dmi/id"

# NVML return codes (nvml.h); the numbers are part of NVML's ABI, so no pynvml import is needed.
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FUNCTION_NOT_FOUND = 13
_GPU_IS_LOST = 15
_RESET_REQUIRED = 16
_LIB_RM_VERSION_MISMATCH = 18
_ARGUMENT_VERSION_MISMATCH = 25
_GPU_NOT_FOUND = 28
_UNKNOWN = 999

_PERMANENT = {_NOT_SUPPORTED, _NO_PERMISSION, _FUNCTION_NOT_FOUND, _ARGUMENT_VERSION_MISMATCH}
_LOST = {_GPU_IS_LOST, _RESET_REQUIRED, _GPU_NOT_FOUND}
_OLD_API = {_FUNCTION_NOT_FOUND, _ARGUMENT_VERSION_MISMATCH}
_UNKNOWN_POLLS_TO_LOST = 3  # NVML "Unknown Error" on memory this many polls running = lost
_NVML_TEMPERATURE_GPU = 0


class _Lost(Exception):
    """A device call said the GPU is gone; caught per device so the others still show."""


class _OldApi(Exception):
    """The driver lacks this API version; the caller falls back to the older one."""


@dataclass
class _Device:
    index: int
    handle: Any
    name: str
    uuid: str
    cuda_index: int | None = None
    unsupported: set[str] = field(default_factory=set)
    mem_v2: bool = True
    temp_v: bool = True
    proc_fns: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    lost: bool = False
    lost_why: str = ""
    unknown_streak: int = 0
    card: dict[str, Any] = field(default_factory=dict)  # `_card_facts`, read once


def _code(err: BaseException) -> int:
    value = getattr(err, "value", None)
    return value if isinstance(value, int) else _UNKNOWN


def _host_memory() -> tuple[float, float]:
    import psutil

    vm = psutil.virtual_memory()
    return vm.total / MIB, vm.available / MIB


def failure_message(state: str, detail: str = "", driver: str | None = None, hint: str = PLAN_HINT) -> str:
    """The one line shown for a snapshot that has no GPUs, with what to do about it."""
    if state == S.LIBRARY_MISSING:
        if detail == "pynvml":
            return f"nvidia-ml-py is not installed (cannot import pynvml): reinstall lander-tui, or {hint}"
        return f"no NVIDIA driver here (NVML library libnvidia-ml.so.1 not found); {hint}"
    if state == S.DRIVER_NOT_LOADED:
        return f"the NVIDIA driver is installed but not loaded (try `sudo modprobe nvidia`); or {hint}"
    if state == S.DRIVER_MISMATCH:
        return (
            "NVIDIA driver/library version mismatch, usually after a driver upgrade: reboot "
            f"(or reload the nvidia kernel modules); or {hint}"
        )
    if state == S.NO_PERMISSION:
        return f"no permission to use the NVIDIA devices (/dev/nvidia*): check groups or container flags; or {hint}"
    if state == S.NO_GPUS:
        drv = f"the NVIDIA driver {driver}" if driver else "NVML"
        return f"{drv} sees no GPU (check the card and CUDA_VISIBLE_DEVICES in containers); {hint}"
    return f"NVML failed to start ({detail or 'unknown error'}); {hint}"


def _init_state(code: int) -> str:
    return {
        _LIBRARY_NOT_FOUND: S.LIBRARY_MISSING,
        _DRIVER_NOT_LOADED: S.DRIVER_NOT_LOADED,
        _LIB_RM_VERSION_MISMATCH: S.DRIVER_MISMATCH,
        _NO_PERMISSION: S.NO_PERMISSION,
    }.get(code, S.NVML_ERROR)


class NvmlBackend:
    """`GpuBackend` over NVML. NVML starts on the first `poll()` (never on the UI thread: the
    dashboard polls from a worker), once; a start-up failure is sticky and cheap to re-report."""

    def __init__(
        self,
        nvml: Any = None,
        *,
        env: Mapping[str, str] | None = None,
        resolver: Callable[[int], ProcInfo] | None = None,
        host_memory: Callable[[], tuple[float, float]] | None = None,
        wall_clock: Callable[[], float] = time.time,
        dmi_dir: str | None = DEFAULT_DMI_DIR,
        source: str = "nvml",
    ) -> None:
        self._nvml = nvml
        self._env = os.environ if env is None else env
        self._resolve = resolver if resolver is not None else ProcessResolver()
        self._host_memory = host_memory or _host_memory
        self._wall = wall_clock
        self._dmi_dir = dmi_dir
        self._source = source
        self._lock = threading.Lock()
        self._started = False
        self._initialised = False
        self._failure: Snapshot | None = None
        self._devices: list[_Device] = []
        self._driver: str | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def poll(self) -> Snapshot:
        with self._lock:
            if not self._started:
                self._start()
            if self._failure is not None:
                return replace(self._failure, taken_at=self._wall())
            gpus = tuple(self._read(d) for d in self._devices)
            retain = getattr(self._resolve, "retain", None)
            if retain is not None:
                retain(p.pid for g in gpus for p in g.processes)
            lost = [g for g in gpus if g.lost]
            message = ""
            if lost:
                which = ", ".join(f"GPU {g.index}" for g in lost)
                rest = "the other GPUs are still shown" if len(lost) < len(gpus) else "no GPU is usable"
                message = f"{which} lost ({lost[0].note}); {rest}"
            return Snapshot(gpus, S.OK, message, self._wall(), self._driver, self._source)

    def close(self) -> None:
        with self._lock:
            if self._initialised:
                try:
                    self._nvml.nvmlShutdown()
                except Exception:  # noqa: BLE001 - shutting down must not fail the caller
                    pass
            self._initialised = False
            self._started = False
            self._failure = None
            self._devices = []

    def _hint(self) -> str:
        if self._dmi_dir is None:
            return PLAN_HINT
        from lander_tui.core.gpu.catalog import is_known_instance
        from lander_tui.core.gpu.dmi import detect_cloud_instance

        instance = detect_cloud_instance(self._dmi_dir)
        if instance and is_known_instance(instance):
            return f"this is an AWS {instance} (from DMI): plan with --what-if {instance}"
        return PLAN_HINT

    def _fail(self, state: str, detail: str = "") -> None:
        self._failure = Snapshot(
            (), state, failure_message(state, detail, self._driver, self._hint()), 0.0, self._driver, self._source
        )
        if self._initialised:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
            self._initialised = False

    def _start(self) -> None:
        self._started = True
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                self._fail(S.LIBRARY_MISSING, "pynvml")
                return
            if not hasattr(pynvml, "_nvmlGetFunctionPointer"):
                self._fail(S.NVML_ERROR, "the installed `pynvml` is not NVIDIA's nvidia-ml-py; uninstall `pynvml`")
                return
            self._nvml = pynvml
        nvml = self._nvml
        error = nvml.NVMLError
        try:
            nvml.nvmlInit()
        except error as e:
            self._fail(_init_state(_code(e)), str(e))
            return
        self._initialised = True
        try:
            self._driver = str(nvml.nvmlSystemGetDriverVersion())
        except error:
            self._driver = None
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except error as e:
            self._fail(_init_state(_code(e)), str(e))
            return
        if count == 0:
            self._fail(S.NO_GPUS)
            return
        first_error: BaseException | None = None
        for i in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
            except error as e:
                first_error = first_error or e
                dev = _Device(i, None, f"GPU {i}", "", lost=True, lost_why=f"unreachable: {e}")
                self._devices.append(dev)
                continue
            dev = _Device(i, handle, self._static(nvml.nvmlDeviceGetName, handle, f"GPU {i}"),
                          self._static(nvml.nvmlDeviceGetUUID, handle, ""))
            dev.temp_v = hasattr(nvml, "nvmlDeviceGetTemperatureV")
            dev.card = self._card_facts(handle)
            for kind, base in (("C", "nvmlDeviceGetComputeRunningProcesses"),
                               ("G", "nvmlDeviceGetGraphicsRunningProcesses")):
                fns = [getattr(nvml, base + v, None) for v in ("_v3", "_v2")]
                dev.proc_fns[kind] = [f for f in fns if f is not None]
            self._devices.append(dev)
        if all(d.handle is None for d in self._devices):
            self._devices = []
            self._fail(_init_state(_code(first_error)) if first_error else S.NVML_ERROR, str(first_error))
            return
        visible = self._env.get("CUDA_VISIBLE_DEVICES")
        for d, ci in zip(self._devices, cuda_indices(visible, [d.uuid for d in self._devices]), strict=True):
            d.cuda_index = ci

    def _card_facts(self, handle: Any) -> dict[str, Any]:
        """What the speed model needs of a card it does not know, read once at start (each an NVML
        call that does not change while the driver runs; a driver or card without one leaves it out):
        `nvmlDeviceGetMaxClockInfo` (NVML_CLOCK_MEM = 2, NVML_CLOCK_SM = 1, nvml.h `nvmlClockType_t`),
        `nvmlDeviceGetMemoryBusWidth` (bits), `nvmlDeviceGetCudaComputeCapability` -> (major, minor),
        `nvmlDeviceGetNumGpuCores` (CUDA cores; SMs = cores / cores per SM of the architecture)."""
        from lander_tui.core.gpu.specs import sm_count_from_cores

        nvml = self._nvml

        def ask(name: str, *args: Any) -> Any:
            fn = getattr(nvml, name, None)
            if fn is None:
                return None
            try:
                return fn(handle, *args)
            except nvml.NVMLError:
                return None

        cc = ask("nvmlDeviceGetCudaComputeCapability")
        cc = (int(cc[0]), int(cc[1])) if cc else None
        cores = ask("nvmlDeviceGetNumGpuCores")
        facts = {"mem_clock_mhz": ask("nvmlDeviceGetMaxClockInfo", getattr(nvml, "NVML_CLOCK_MEM", 2)),
                 "bus_width_bits": ask("nvmlDeviceGetMemoryBusWidth"), "compute_capability": cc,
                 "sm_count": sm_count_from_cores(int(cores), cc) if cores and cc else None,
                 "sm_clock_mhz": ask("nvmlDeviceGetMaxClockInfo", getattr(nvml, "NVML_CLOCK_SM", 1))}
        return {k: v for k, v in facts.items() if v}

    def _static(self, fn: Callable[..., Any], handle: Any, default: str) -> str:
        try:
            value = fn(handle)
        except self._nvml.NVMLError:
            return default
        return value.decode() if isinstance(value, bytes) else str(value)

    # -- one device ---------------------------------------------------------------------------

    def _get(
        self, d: _Device, name: str, fn: Callable[..., Any], *args: Any, old_api: bool = False, **kw: Any
    ) -> Any:
        """One NVML getter: None for N/A (remembered when permanent), `_Lost`, or `_OldApi`."""
        if name in d.unsupported:
            return None
        try:
            return fn(d.handle, *args, **kw)
        except self._nvml.NVMLError as e:
            code = _code(e)
            if code in _LOST:
                raise _Lost(str(e)) from None
            if old_api and code in _OLD_API:
                raise _OldApi from None
            if code in _PERMANENT:
                d.unsupported.add(name)
            return None

    def _memory(self, d: _Device) -> tuple[Any, bool]:
        """NVML memory info (v2 when the driver has it), or None when not available now."""
        nvml = self._nvml
        if d.mem_v2 and "memory" not in d.unsupported:
            try:
                return self._get(d, "memory", nvml.nvmlDeviceGetMemoryInfo, version=nvml.nvmlMemory_v2,
                                 old_api=True), True
            except _OldApi:
                d.mem_v2 = False
        return self._get(d, "memory", nvml.nvmlDeviceGetMemoryInfo), False

    def _temperature(self, d: _Device) -> Any:
        nvml = self._nvml
        if d.temp_v:
            try:
                return self._get(d, "temp", nvml.nvmlDeviceGetTemperatureV, _NVML_TEMPERATURE_GPU, old_api=True)
            except _OldApi:
                d.temp_v = False
        return self._get(d, "temp", nvml.nvmlDeviceGetTemperature, _NVML_TEMPERATURE_GPU)

    def _process_list(self, d: _Device, kind: str) -> list[Any] | None:
        name = "processes" if kind == "C" else "graphics_processes"
        if name in d.unsupported:
            return None
        fns = d.proc_fns.get(kind, [])
        while fns:
            try:
                found = self._get(d, name, fns[0], old_api=True)
            except _OldApi:
                fns.pop(0)  # this driver lacks the newer API: fall back once, for good
                continue
            return None if found is None else list(found)
        d.unsupported.add(name)
        return None

    def _read(self, d: _Device) -> GpuInfo:
        if d.lost:
            return self._lost_info(d)
        try:
            return self._read_live(d)
        except _Lost as e:
            d.lost, d.lost_why = True, f"{e}: reset the GPU or reboot"
            return self._lost_info(d)

    def _lost_info(self, d: _Device) -> GpuInfo:
        return GpuInfo(d.index, d.name, d.uuid, d.cuda_index, lost=True, note=d.lost_why)

    def _read_live(self, d: _Device) -> GpuInfo:
        nvml = self._nvml
        notes: list[str] = []
        mem, v2 = self._memory(d)
        unified = "memory" in d.unsupported or (mem is not None and not mem.total)
        total = used = free = reserved = None
        if unified:
            d.unsupported.add("memory")
            total, free = self._host_memory()
            used = total - free
            notes.append("unified memory: figures are host RAM shared with the GPU")
        elif mem is None:
            d.unknown_streak += 1
            if d.unknown_streak >= _UNKNOWN_POLLS_TO_LOST:
                raise _Lost("GPU stopped answering (NVML Unknown Error)")
        else:
            d.unknown_streak = 0
            total, free = mem.total / MIB, mem.free / MIB
            if v2:
                used, reserved = mem.used / MIB, mem.reserved / MIB
            else:
                used = mem.used / MIB
                notes.append("old driver: used includes the driver reserve")
        util = self._get(d, "util", nvml.nvmlDeviceGetUtilizationRates)
        temp = self._temperature(d)
        power = self._get(d, "power", nvml.nvmlDeviceGetPowerUsage)
        cap = self._get(d, "power_cap", nvml.nvmlDeviceGetEnforcedPowerLimit)
        processes = self._processes(d, notes)
        return GpuInfo(
            index=d.index,
            name=d.name,
            uuid=d.uuid,
            cuda_index=d.cuda_index,
            total_mib=total,
            used_mib=used,
            free_mib=free,
            reserved_mib=reserved,
            util_percent=None if util is None else float(util.gpu),
            mem_bw_percent=None if util is None else float(util.memory),
            temp_c=None if temp is None else float(temp),
            power_w=None if power is None else power / 1000.0,
            power_cap_w=None if cap is None else cap / 1000.0,
            processes=processes,
            unified_memory=unified,
            note="; ".join(notes),
            **d.card,
        )

    def _processes(self, d: _Device, notes: list[str]) -> tuple[GpuProcess, ...]:
        merged: dict[int, list[Any]] = {}  # pid -> [used bytes or None, kinds]
        compute = self._process_list(d, "C")
        graphics = self._process_list(d, "G")
        if compute is None:
            notes.append("process list not available (driver or permissions)")
        for kind, items in (("C", compute), ("G", graphics)):
            for item in items or ():
                pid = int(item.pid)
                mem = item.usedGpuMemory if isinstance(item.usedGpuMemory, int) else None
                entry = merged.setdefault(pid, [mem, ""])
                if entry[0] is None:
                    entry[0] = mem
                if kind not in entry[1]:
                    entry[1] = kind if not entry[1] else "C+G"
        out = []
        unknown_mem = False
        for pid, (mem, kind) in merged.items():
            info = self._resolve(pid)
            unknown_mem = unknown_mem or mem is None
            out.append(GpuProcess(pid, None if mem is None else mem / MIB, info.command, info.user, kind,
                                  info.resolved))
        if unknown_mem:
            notes.append("per-process memory not reported by the driver (WDDM or MIG)")
        out.sort(key=lambda p: (p.used_mib is None, -(p.used_mib or 0.0), p.pid))
        return tuple(out)
