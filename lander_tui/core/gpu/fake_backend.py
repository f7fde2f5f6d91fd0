"""A scenario-driven stand-in for NVML: tests, screenshots and `--demo` without a GPU.

A scenario is plain data (a dict, or the same as JSON):

    {"driver": "580.159.04", "loop_s": 120, "start_s": 45,  # optional: repeat / start mid-way
     "init_error": "driver_not_loaded",                  # optional: nvmlInit fails with this
     "cuda_visible_devices": "1,0",                      # optional, instead of the real env
     "host": {"total_mib": 131072, "available_mib": 90000},  # for unified-memory GPUs
     "gpus": [{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...",
               "total_mib": 81559, "reserved_mib": 480,
               "used_mib": ...,          # optional; default: sum of the live processes
               "util_percent": 35, "mem_bw_percent": 10, "temp_c": 41,
               "power_w": 120, "power_cap_w": 700,
               "lost_at": 30,            # from t=30 s every call says GPU_IS_LOST
               "unsupported": ["power", "temp"],          # NVML_ERROR_NOT_SUPPORTED
               "fail": {"memory_v2": "function_not_found"},  # any NVML error on a field
               "processes": [{"pid": 4242, "used_mib": ..., "from": 0, "until": 60,
                              "command": "python train.py", "user": "ana",
                              "kind": "C", "host_pid": false}]}]}

A number field may vary with time: a number, a list of `[t, value]` steps, or
`{"linear": [[t, value], ...]}` (interpolated, clamped at the ends). `used_mib: null` on a
process means the driver does not report it. A process without `command` is looked up with
psutil like a real one; `host_pid: true` makes it unresolvable, as from inside a container.

Fields for `unsupported`/`fail`: handle, name, uuid, memory, memory_v2, util, temp, temp_v,
power, power_cap, processes, processes_v3, graphics_processes, clocks, bus_width, compute_capability,
cores. A GPU may also state its fixed card facts, which NVML reports once: `max_mem_clock_mhz`,
`max_sm_clock_mhz`, `bus_width_bits`, `compute_capability` ([8, 9]) and `cuda_cores` (absent: the
call says NOT_SUPPORTED). The fake imitates `pynvml` and runs under the real `NvmlBackend`, so
probing, fallbacks and failure states are the real code.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.gpu.nvml_backend import NvmlBackend
from lander_tui.core.gpu.procs import ProcessResolver, ProcInfo
from lander_tui.core.gpu.snapshot import MIB, Snapshot

ERRORS = {  # scenario error name -> NVML return code
    "not_supported": 3,
    "no_permission": 4,
    "driver_not_loaded": 9,
    "timeout": 10,
    "library_missing": 12,
    "library_not_found": 12,
    "function_not_found": 13,
    "gpu_is_lost": 15,
    "driver_mismatch": 18,
    "lib_rm_version_mismatch": 18,
    "argument_version_mismatch": 25,
    "gpu_not_found": 28,
    "unknown": 999,
}
FIELDS = {
    "handle", "name", "uuid", "memory", "memory_v2", "util", "temp", "temp_v", "power", "power_cap",
    "processes", "processes_v3", "graphics_processes", "clocks", "bus_width", "compute_capability", "cores",
}
#: Fixed card facts a scenario GPU may state (read once, like NVML's max clocks); absent = NOT_SUPPORTED.
_CARD_KEYS = {"max_mem_clock_mhz", "max_sm_clock_mhz", "bus_width_bits", "compute_capability", "cuda_cores"}
_GPU_KEYS = {
    "name", "uuid", "total_mib", "reserved_mib", "used_mib", "util_percent", "mem_bw_percent", "temp_c",
    "power_w", "power_cap_w", "lost_at", "unsupported", "fail", "processes", *_CARD_KEYS,
}
_PROC_KEYS = {"pid", "used_mib", "from", "until", "command", "user", "kind", "host_pid"}
_NA = 0xFFFFFFFF


# -- scenario data ----------------------------------------------------------------------------


def value_at(spec: Any, t: float) -> float | None:
    """A scenario number at time t (see the module docstring for the three forms)."""
    if spec is None or isinstance(spec, int | float):
        return spec
    if isinstance(spec, dict):
        points = spec["linear"]
        if t <= points[0][0]:
            return points[0][1]
        for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
            if t <= t1:
                if v0 is None or v1 is None:
                    return v0
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1
        return points[-1][1]
    value = spec[0][1]
    for t0, v in spec:
        if t >= t0:
            value = v
        else:
            break
    return value


def _check_series(spec: Any, where: str) -> None:
    def points(p: Any) -> None:
        ok = isinstance(p, list) and p and all(
            isinstance(x, list) and len(x) == 2 and isinstance(x[0], int | float)
            and (x[1] is None or isinstance(x[1], int | float)) for x in p
        )
        if not ok or [x[0] for x in p] != sorted(x[0] for x in p):
            raise LanderError(f"GPU scenario: {where} must be a number, [[t, value], ...] sorted by t, "
                              "or {\"linear\": [[t, value], ...]}")

    if spec is None or (isinstance(spec, int | float) and not isinstance(spec, bool)):
        return
    if isinstance(spec, dict):
        if set(spec) != {"linear"}:
            raise LanderError(f"GPU scenario: {where} dict form is {{\"linear\": [[t, value], ...]}}")
        points(spec["linear"])
        return
    points(spec)


def load_scenario(scenario: dict[str, Any] | str | Path) -> dict[str, Any]:
    """Validate a scenario (dict, JSON text or a .json path); bad input is one LanderError line."""
    if isinstance(scenario, Path) or (isinstance(scenario, str) and not scenario.lstrip().startswith("{")):
        try:
            scenario = Path(scenario).read_text()
        except OSError as e:
            raise LanderError(f"GPU scenario: cannot read {scenario}: {e.strerror}") from None
    if isinstance(scenario, str):
        try:
            scenario = json.loads(scenario)
        except json.JSONDecodeError as e:
            raise LanderError(f"GPU scenario: invalid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(scenario, dict):
        raise LanderError("GPU scenario: expected an object with a \"gpus\" list")
    gpus = scenario.get("gpus", [])
    if not isinstance(gpus, list):
        raise LanderError("GPU scenario: \"gpus\" must be a list")
    init_error = scenario.get("init_error")
    if init_error is not None and init_error not in ERRORS:
        raise LanderError(f"GPU scenario: unknown init_error {init_error!r}; one of {', '.join(sorted(ERRORS))}")
    loop = scenario.get("loop_s")
    if loop is not None and not (isinstance(loop, int | float) and loop > 0):
        raise LanderError("GPU scenario: loop_s must be a positive number of seconds")
    start = scenario.get("start_s")
    if start is not None and not (isinstance(start, int | float) and start >= 0):
        raise LanderError("GPU scenario: start_s must be a number of seconds >= 0")
    host = scenario.get("host")
    if host is not None:
        if not isinstance(host, dict) or set(host) - {"total_mib", "available_mib"}:
            raise LanderError('GPU scenario: "host" is {"total_mib": ..., "available_mib": ...}')
        for key in ("total_mib", "available_mib"):
            _check_series(host.get(key), f"host.{key}")
    for i, g in enumerate(gpus):
        where = f"gpus[{i}]"
        if not isinstance(g, dict):
            raise LanderError(f"GPU scenario: {where} must be an object")
        unknown = set(g) - _GPU_KEYS
        if unknown:
            raise LanderError(f"GPU scenario: {where} has unknown keys {sorted(unknown)}")
        if not isinstance(g.get("name"), str) or not g["name"]:
            raise LanderError(f"GPU scenario: {where} needs a \"name\"")
        total = g.get("total_mib")
        if not isinstance(total, int | float) or isinstance(total, bool) or total <= 0:
            raise LanderError(f"GPU scenario: {where}.total_mib must be a positive number of MiB")
        for key in ("used_mib", "util_percent", "mem_bw_percent", "temp_c", "power_w", "power_cap_w"):
            _check_series(g.get(key), f"{where}.{key}")
        for key in ("reserved_mib", "lost_at"):
            v = g.get(key)
            if v is not None and not (isinstance(v, int | float) and v >= 0):
                raise LanderError(f"GPU scenario: {where}.{key} must be a number >= 0")
        for key in _CARD_KEYS - {"compute_capability"}:
            v = g.get(key)
            if v is not None and not (isinstance(v, int | float) and not isinstance(v, bool) and v > 0):
                raise LanderError(f"GPU scenario: {where}.{key} must be a positive number")
        cc = g.get("compute_capability")
        if cc is not None and not (isinstance(cc, list) and len(cc) == 2 and all(isinstance(x, int) for x in cc)):
            raise LanderError(f"GPU scenario: {where}.compute_capability is [major, minor], e.g. [8, 9]")
        fails = dict(g.get("fail") or {})
        for f in g.get("unsupported") or []:
            fails.setdefault(f, "not_supported")
        for f, kind in fails.items():
            if f not in FIELDS:
                raise LanderError(f"GPU scenario: {where} unknown field {f!r}; one of {', '.join(sorted(FIELDS))}")
            if kind not in ERRORS:
                raise LanderError(f"GPU scenario: {where}.fail.{f}: unknown error {kind!r}")
        for j, p in enumerate(g.get("processes") or []):
            pw = f"{where}.processes[{j}]"
            if not isinstance(p, dict) or not isinstance(p.get("pid"), int) or p["pid"] <= 0:
                raise LanderError(f"GPU scenario: {pw} needs a positive integer \"pid\"")
            if set(p) - _PROC_KEYS:
                raise LanderError(f"GPU scenario: {pw} has unknown keys {sorted(set(p) - _PROC_KEYS)}")
            if p.get("kind", "C") not in ("C", "G", "C+G"):
                raise LanderError(f"GPU scenario: {pw}.kind must be C, G or C+G")
            _check_series(p.get("used_mib"), f"{pw}.used_mib")
    return scenario


# -- a pynvml look-alike ----------------------------------------------------------------------


class _Handle:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class FakeNvml:
    """The slice of `pynvml` that `NvmlBackend` calls, answering from a scenario at time `t()`.

    It raises the real `pynvml.NVMLError` subclasses and counts every call in `calls`
    (keyed by function name and GPU index) so tests can check what is asked, and how often.
    """

    def __init__(self, scenario: dict[str, Any], t: Callable[[], float]) -> None:
        import pynvml

        self.NVMLError = pynvml.NVMLError
        self.nvmlMemory_v2 = pynvml.nvmlMemory_v2
        self.NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
        self._sc = scenario
        self._t = t
        self._gpus: list[dict[str, Any]] = list(scenario.get("gpus", []))
        self._fails: list[dict[str, str]] = []
        for g in self._gpus:
            fails = dict(g.get("fail") or {})
            for f in g.get("unsupported") or []:
                fails.setdefault(f, "not_supported")
            self._fails.append(fails)
        self.calls: Counter[tuple[str, int]] = Counter()
        self.initialised = 0

    def _error(self, kind: str) -> Exception:
        return self.NVMLError(ERRORS[kind])

    # system
    def nvmlInit(self) -> None:
        self.calls["nvmlInit", -1] += 1
        if self._sc.get("init_error"):
            raise self._error(self._sc["init_error"])
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown", -1] += 1
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._sc.get("driver", "580.159.04"))

    def nvmlDeviceGetCount(self) -> int:
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._device("nvmlDeviceGetHandleByIndex", _Handle(index), "handle")
        return _Handle(index)

    # per device
    def _device(self, fn: str, h: _Handle, *fields: str) -> tuple[dict[str, Any], float]:
        self.calls[fn, h.index] += 1
        g = self._gpus[h.index]
        t = self._t()
        if g.get("lost_at") is not None and t >= g["lost_at"]:
            raise self._error("gpu_is_lost")
        for f in fields:
            kind = self._fails[h.index].get(f)
            if kind:
                raise self._error(kind)
        return g, t

    def nvmlDeviceGetName(self, h: _Handle) -> str:
        g, _ = self._device("nvmlDeviceGetName", h, "name")
        return str(g["name"])

    def nvmlDeviceGetUUID(self, h: _Handle) -> str:
        g, _ = self._device("nvmlDeviceGetUUID", h, "uuid")
        return str(g.get("uuid") or f"GPU-fake-{h.index:04d}")

    def _live(self, g: dict[str, Any], t: float) -> list[tuple[dict[str, Any], float | None]]:
        out = []
        for p in g.get("processes") or []:
            if p.get("from", 0) <= t < (p.get("until") if p.get("until") is not None else float("inf")):
                out.append((p, value_at(p.get("used_mib"), t)))
        return out

    def _used(self, g: dict[str, Any], t: float) -> float:
        if "used_mib" in g:
            return float(value_at(g["used_mib"], t) or 0.0)
        return sum(m or 0.0 for _, m in self._live(g, t))

    def nvmlDeviceGetMemoryInfo(self, h: _Handle, version: int | None = None) -> SimpleNamespace:
        fields = ("memory_v2", "memory") if version else ("memory",)
        g, t = self._device("nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo", h, *fields)
        total = int(g["total_mib"] * MIB)
        reserved = int(g.get("reserved_mib", 0) * MIB)
        used = min(int(self._used(g, t) * MIB), total - reserved)
        free = total - reserved - used
        if version:
            return SimpleNamespace(version=version, total=total, reserved=reserved, free=free, used=used)
        return SimpleNamespace(total=total, free=free, used=used + reserved)

    def _card(self, fn: str, h: _Handle, field: str, key: str) -> Any:
        g, _ = self._device(fn, h, field)
        if g.get(key) is None:
            raise self._error("not_supported")
        return g[key]

    def nvmlDeviceGetMaxClockInfo(self, h: _Handle, clock_type: int) -> int:
        # nvmlClockType_t: NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2
        key = {1: "max_sm_clock_mhz", 2: "max_mem_clock_mhz"}.get(clock_type)
        if key is None:
            raise self._error("not_supported")
        return int(self._card("nvmlDeviceGetMaxClockInfo", h, "clocks", key))

    def nvmlDeviceGetMemoryBusWidth(self, h: _Handle) -> int:
        return int(self._card("nvmlDeviceGetMemoryBusWidth", h, "bus_width", "bus_width_bits"))

    def nvmlDeviceGetCudaComputeCapability(self, h: _Handle) -> tuple[int, int]:
        major, minor = self._card("nvmlDeviceGetCudaComputeCapability", h, "compute_capability",
                                  "compute_capability")
        return int(major), int(minor)

    def nvmlDeviceGetNumGpuCores(self, h: _Handle) -> int:
        return int(self._card("nvmlDeviceGetNumGpuCores", h, "cores", "cuda_cores"))

    def nvmlDeviceGetUtilizationRates(self, h: _Handle) -> SimpleNamespace:
        g, t = self._device("nvmlDeviceGetUtilizationRates", h, "util")
        return SimpleNamespace(gpu=int(value_at(g.get("util_percent", 0), t) or 0),
                               memory=int(value_at(g.get("mem_bw_percent", 0), t) or 0))

    def nvmlDeviceGetTemperatureV(self, h: _Handle, sensor: int) -> int:
        g, t = self._device("nvmlDeviceGetTemperatureV", h, "temp_v", "temp")
        return int(value_at(g.get("temp_c", 40), t) or 0)

    def nvmlDeviceGetTemperature(self, h: _Handle, sensor: int) -> int:
        g, t = self._device("nvmlDeviceGetTemperature", h, "temp")
        return int(value_at(g.get("temp_c", 40), t) or 0)

    def nvmlDeviceGetPowerUsage(self, h: _Handle) -> int:
        g, t = self._device("nvmlDeviceGetPowerUsage", h, "power")
        return int((value_at(g.get("power_w", 60), t) or 0) * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: _Handle) -> int:
        g, t = self._device("nvmlDeviceGetEnforcedPowerLimit", h, "power_cap")
        return int((value_at(g.get("power_cap_w", 300), t) or 0) * 1000)

    def _procs(self, fn: str, h: _Handle, kinds: Iterable[str], *fields: str) -> list[SimpleNamespace]:
        g, t = self._device(fn, h, *fields)
        out = []
        for p, mem in self._live(g, t):
            if p.get("kind", "C") in kinds:
                used = None if mem is None else int(mem * MIB)
                out.append(SimpleNamespace(pid=p["pid"], usedGpuMemory=used, gpuInstanceId=_NA,
                                           computeInstanceId=_NA))
        return out

    def nvmlDeviceGetComputeRunningProcesses_v3(self, h: _Handle) -> list[SimpleNamespace]:
        return self._procs("nvmlDeviceGetComputeRunningProcesses_v3", h, ("C", "C+G"), "processes_v3", "processes")

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: _Handle) -> list[SimpleNamespace]:
        return self._procs("nvmlDeviceGetComputeRunningProcesses_v2", h, ("C", "C+G"), "processes")

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, h: _Handle) -> list[SimpleNamespace]:
        return self._procs("nvmlDeviceGetGraphicsRunningProcesses_v3", h, ("G", "C+G"), "graphics_processes")

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, h: _Handle) -> list[SimpleNamespace]:
        return self._procs("nvmlDeviceGetGraphicsRunningProcesses_v2", h, ("G", "C+G"), "graphics_processes")


# -- the backend ------------------------------------------------------------------------------


class _ScenarioResolver:
    """Scenario processes with a `command` (or `host_pid`) answer from the scenario, so a demo
    PID never shows whatever real process happens to have that number; others use psutil."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        self._known: dict[int, ProcInfo] = {}
        for g in scenario.get("gpus", []):
            for p in g.get("processes") or []:
                if p.get("host_pid"):
                    self._known[p["pid"]] = ProcInfo(None, None, False)
                elif p.get("command") is not None:
                    self._known[p["pid"]] = ProcInfo(p["command"], p.get("user"), True)
        self._real = ProcessResolver()

    def __call__(self, pid: int) -> ProcInfo:
        info = self._known.get(pid)
        return info if info is not None else self._real(pid)

    def retain(self, pids: Iterable[int]) -> None:
        self._real.retain(pids)


class FakeBackend:
    """`GpuBackend` driven by a scenario. `clock()` gives elapsed seconds (default: since
    construction); scenario time is `start_s + clock()`, wrapped by `loop_s`. `taken_at` is
    `epoch + clock()` (default epoch: the wall time at construction)."""

    def __init__(
        self,
        scenario: dict[str, Any] | str | Path,
        *,
        clock: Callable[[], float] | None = None,
        epoch: float | None = None,
    ) -> None:
        self.scenario = load_scenario(scenario)
        if clock is None:
            start = time.monotonic()

            def clock() -> float:
                return time.monotonic() - start

        self._clock = clock
        self._epoch = time.time() if epoch is None else epoch
        loop = self.scenario.get("loop_s")
        self._loop = float(loop) if loop else None
        self._start = float(self.scenario.get("start_s") or 0.0)
        self.nvml = FakeNvml(self.scenario, self.t)
        host = self.scenario.get("host")
        host_memory = None
        if host is not None:
            def host_memory() -> tuple[float, float]:
                t = self.t()
                total = float(value_at(host.get("total_mib", 65536), t) or 0.0)
                return total, float(value_at(host.get("available_mib", total / 2), t) or 0.0)

        env = {}
        if self.scenario.get("cuda_visible_devices") is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(self.scenario["cuda_visible_devices"])
        self._inner = NvmlBackend(
            self.nvml,
            env=env,
            resolver=_ScenarioResolver(self.scenario),
            host_memory=host_memory,
            wall_clock=lambda: self._epoch + self._clock(),
            dmi_dir=None,
            source="fake",
        )

    def t(self) -> float:
        t = self._start + self._clock()
        return t % self._loop if self._loop else t

    def poll(self) -> Snapshot:
        return self._inner.poll()

    def close(self) -> None:
        self._inner.close()


def uniform_scenario(
    n_gpus: int = 8,
    processes_per_gpu: int = 4,
    pids: Iterable[int] = (),
    name: str = "NVIDIA H100 80GB HBM3",
    total_mib: float = 81559,
) -> dict[str, Any]:
    """N identical busy GPUs with processes, e.g. an 8-GPU box for the poll-cost benchmark.
    PIDs in `pids` are left for psutil to resolve (real processes); the rest are host PIDs."""
    real = list(pids)
    gpus = []
    for i in range(n_gpus):
        procs = []
        for j in range(processes_per_gpu):
            k = i * processes_per_gpu + j
            proc: dict[str, Any] = {"used_mib": 1024 + 512 * j}
            if k < len(real):
                proc["pid"] = real[k]
            else:
                proc.update(pid=4_000_000 + k, host_pid=True)
            procs.append(proc)
        gpus.append({"name": name, "uuid": f"GPU-{i:08x}-0000-0000-0000-000000000000", "total_mib": total_mib,
                     "reserved_mib": 480, "util_percent": 50 + i, "temp_c": 50, "power_w": 300,
                     "power_cap_w": 700, "processes": procs})
    return {"gpus": gpus}


# A two-GPU box for `--demo` and the dashboard: a llama-server loading then allocating its KV
# cache on GPU 0, a vLLM server arriving beside it and leaving, and a training run on GPU 1 that
# grows, plus a container process whose host PID cannot be resolved. Repeats every 120 s and
# starts at 45 s, so a one-shot `lander-tui gpus --demo` already shows every kind of row.
DEMO_SCENARIO: dict[str, Any] = {
    "name": "demo",
    "driver": "580.159.04",
    "loop_s": 120,
    "start_s": 45,
    "gpus": [
        {
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-3f1c9a52-7d1e-4b8e-9a53-0c1d2e3f4a01",
            "total_mib": 81559,
            "reserved_mib": 480,
            "util_percent": [[0, 3], [4, 62], [30, 88], [100, 41]],
            "mem_bw_percent": [[0, 1], [4, 35], [30, 57], [100, 20]],
            "temp_c": {"linear": [[0, 38], [30, 61], [100, 64], [120, 40]]},
            "power_w": [[0, 72], [4, 310], [30, 520], [100, 280]],
            "power_cap_w": 700,
            "processes": [
                {"pid": 27181, "user": "ana", "kind": "C",
                 "command": "llama-server -m qwen3-8b-q4_k_m.gguf -c 32768 -ngl 999 -fa on",
                 "used_mib": {"linear": [[0, 610], [4, 5420], [8, 9874]]}},
                {"pid": 31415, "user": "ben", "kind": "C", "from": 30, "until": 100,
                 "command": "python -m vllm.entrypoints.openai.api_server --model Qwen/Qwen3-30B-A3B "
                            "--gpu-memory-utilization 0.75",
                 "used_mib": {"linear": [[30, 702], [36, 58310], [40, 60810]]}},
            ],
        },
        {
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-8b2d4e6f-1a3c-4d5e-8f70-9a1b2c3d4e02",
            "total_mib": 81559,
            "reserved_mib": 480,
            "util_percent": [[0, 97], [80, 0]],
            "mem_bw_percent": [[0, 71], [80, 0]],
            "temp_c": {"linear": [[0, 70], [80, 72], [95, 45], [120, 70]]},
            "power_w": [[0, 655], [80, 68]],
            "power_cap_w": 700,
            "processes": [
                {"pid": 42424, "user": "chen", "kind": "C", "until": 80,
                 "command": "torchrun --nproc-per-node 1 train.py --config sft-8b.yaml",
                 "used_mib": [[0, 31744], [20, 52210], [50, 66830]]},
                {"pid": 902117, "kind": "C", "host_pid": True, "used_mib": 2048},
            ],
        },
    ],
}
