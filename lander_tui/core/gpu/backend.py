"""The one interface every GPU source implements, and CUDA_VISIBLE_DEVICES numbering.

The dashboard polls a `GpuBackend` once a second from a worker thread; the CLI polls it once.
NVML, the scenario-driven fake and the what-if catalog all produce the same `Snapshot`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lander_tui.core.gpu.snapshot import Snapshot


@runtime_checkable
class GpuBackend(Protocol):
    """`poll()` never raises for hardware trouble: failures come back as `Snapshot.state`."""

    def poll(self) -> Snapshot: ...

    def close(self) -> None: ...


def cuda_indices(visible: str | None, uuids: Sequence[str]) -> list[int | None]:
    """CUDA's number for each NVML GPU under `CUDA_VISIBLE_DEVICES` (None = hidden from CUDA).

    Follows CUDA's rules: entries are indices or (prefixes of) `GPU-` UUIDs, and the list stops
    at the first entry that names no GPU (so `0,-1,1` shows only GPU 0). Integer entries are read
    as NVML (PCI) indices, which is CUDA's order with `CUDA_DEVICE_ORDER=PCI_BUS_ID` and on the
    usual boxes of identical cards; MIG entries are not mapped.
    """
    n = len(uuids)
    if visible is None:
        return list(range(n))
    out: list[int | None] = [None] * n
    position = 0
    for raw in visible.split(","):
        entry = raw.strip()
        target: int | None = None
        if entry.lstrip("+").isdigit():
            i = int(entry)
            target = i if i < n else None
        elif entry.upper().startswith("GPU-"):
            hits = [i for i, u in enumerate(uuids) if u and u.lower().startswith(entry.lower())]
            target = hits[0] if len(hits) == 1 else None
        if target is None or out[target] is not None:
            break
        out[target] = position
        position += 1
    return out
