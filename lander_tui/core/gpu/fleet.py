"""A fleet snapshot seen per host: what `lander-tui gpus --prometheus` prints and the hosts view sorts.

A host is stale when any of its GPUs is (staleness is per scrape target, so it is all or none in
practice); a stale host has no free memory (`None`), never its last known one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lander_tui.core.gpu.snapshot import GpuInfo, Snapshot, gpu_to_dict


@dataclass(frozen=True)
class HostGroup:
    host: str
    gpus: tuple[GpuInfo, ...]

    @property
    def stale(self) -> bool:
        return any(g.stale for g in self.gpus)

    @property
    def note(self) -> str:
        return next((g.note for g in self.gpus if g.stale), "")

    @property
    def free_mib(self) -> float | None:
        if self.stale or any(g.free_mib is None for g in self.gpus):
            return None
        return sum(g.free_mib or 0.0 for g in self.gpus)

    @property
    def total_mib(self) -> float | None:
        if any(g.total_mib is None for g in self.gpus):
            return None
        return sum(g.total_mib or 0.0 for g in self.gpus)

    @property
    def used_mib(self) -> float | None:
        if self.stale or any(g.used_mib is None for g in self.gpus):
            return None
        return sum(g.used_mib or 0.0 for g in self.gpus)

    @property
    def util_percent(self) -> float | None:
        """The mean utilisation of its GPUs that report one (None: none does, or the host is stale)."""
        values = [g.util_percent for g in self.gpus if g.util_percent is not None]
        return None if self.stale or not values else sum(values) / len(values)

    @property
    def models(self) -> str:
        """`8 x H100 80GB HBM3`, or `2 x A100 80GB + 1 x RTX 4090` for a mixed box."""
        counts = Counter(g.name.removeprefix("NVIDIA ") for g in self.gpus)
        return " + ".join(f"{n} x {name}" for name, n in counts.items())


def natural_key(text: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def group_by_host(snap: Snapshot) -> list[HostGroup]:
    """Hosts in natural order (`node-2` before `node-10`), GPUs in their host's own order."""
    hosts: dict[str, list[GpuInfo]] = {}
    for g in snap.gpus:
        hosts.setdefault(g.host, []).append(g)
    return [HostGroup(h, tuple(sorted(gs, key=lambda g: (g.host_index is None, g.host_index or 0, g.index))))
            for h, gs in sorted(hosts.items(), key=lambda kv: natural_key(kv[0]))]


#: How the hosts view sorts: (key, label). Stale hosts (no numbers) always come last.
SORTS: tuple[tuple[str, str], ...] = (("free", "most free"), ("name", "name"), ("util", "least busy"))


def sort_hosts(groups: list[HostGroup], by: str) -> list[HostGroup]:
    """Most free memory first, by name (natural order), or least utilised first; stale hosts last."""
    if by == "name":
        return list(groups)  # group_by_host gives natural order already
    if by == "free":
        return sorted(groups, key=lambda h: (h.free_mib is None, -(h.free_mib or 0.0)))
    if by == "util":
        return sorted(groups, key=lambda h: (h.util_percent is None, h.util_percent or 0.0))
    raise ValueError(f"unknown sort {by!r}; one of {', '.join(k for k, _ in SORTS)}")


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def fleet_to_json(snap: Snapshot) -> list[dict[str, Any]]:
    """The `lander-tui gpus --prometheus URL --json` list: one object per host, its GPUs inside."""
    return [
        {"host": h.host, "stale": h.stale, "note": h.note, "gpu_count": len(h.gpus), "models": h.models,
         "free_vram_mib": _r(h.free_mib), "total_vram_mib": _r(h.total_mib),
         "gpus": [gpu_to_dict(g) for g in h.gpus]}
        for h in group_by_host(snap)
    ]
