"""Who a GPU process is (command, user), looked up once per PID with psutil.

psutil lookups, not NVML, dominate the cost of a 1 Hz GPU panel (see the research notes), so
each PID is resolved once and cached while the driver keeps listing it. A PID psutil cannot
see (a host PID seen from inside a container) is remembered as unresolved, not retried.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psutil

_MAX_COMMAND = 240


@dataclass(frozen=True, slots=True)
class ProcInfo:
    command: str | None
    user: str | None
    resolved: bool


UNRESOLVED = ProcInfo(None, None, False)


def _lookup(pid: int) -> ProcInfo:
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            try:
                cmd = " ".join(p.cmdline()) or p.name()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmd = p.name()
            try:
                user: str | None = p.username()
            except (psutil.AccessDenied, KeyError):
                user = None
    except (psutil.Error, ProcessLookupError, ValueError):  # gone, hidden, or another PID namespace
        return UNRESOLVED
    if len(cmd) > _MAX_COMMAND:
        cmd = cmd[: _MAX_COMMAND - 1] + "…"
    return ProcInfo(cmd, user, True)


class ProcessResolver:
    """Callable `pid -> ProcInfo` with a cache trimmed to the PIDs seen in the last poll."""

    def __init__(self) -> None:
        self._cache: dict[int, ProcInfo] = {}

    def __call__(self, pid: int) -> ProcInfo:
        info = self._cache.get(pid)
        if info is None:
            info = self._cache[pid] = _lookup(pid)
        return info

    def retain(self, pids: Iterable[int]) -> None:
        """Forget PIDs no GPU lists any more, so a reused PID is looked up afresh."""
        keep = set(pids)
        for pid in [p for p in self._cache if p not in keep]:
            del self._cache[pid]
