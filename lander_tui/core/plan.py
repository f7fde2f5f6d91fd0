"""A plan: one results row placed on the GPUs (and the CPU), device by device.

Engines make plans (`Engine.plan`); the CLI, the Plan view, the live check and the exports read
them. Sizes are MiB. A `DeviceShare` is what one GPU holds and may hold; the plan's `memory` is
their sum, so a row and its plan always add up the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lander_tui.core.memory import MemoryParts, total_parts

if TYPE_CHECKING:
    from lander_tui.core.speed import SpeedEstimate


def cpu_gpu_split(size: float, size_vram: float) -> str:
    """`ollama ps` PROCESSOR (cmd/cmd.go): "100% GPU", "100% CPU" or "48%/52% CPU/GPU", with
    `cpu% = round((size - size_vram) / size x 100)` (any unit, e.g. /api/ps `size`/`size_vram`)."""
    if size <= 0 or size_vram >= size:
        return "100% GPU"
    if size_vram <= 0:
        return "100% CPU"
    cpu = round((size - size_vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


@dataclass(frozen=True)
class DeviceShare:
    """What one GPU holds in a plan (MiB) against what it may hold (`budget_mib`)."""

    name: str
    free_mib: float
    budget_mib: float
    memory: MemoryParts
    layers: tuple[int, int] | None = None  # [first, last] layer held (layer split); None: all or none
    has_output: bool = True
    index: int | None = None  # the real GPU, when planned on one

    @property
    def total_mib(self) -> float:
        return float(self.memory.total)

    @property
    def headroom_mib(self) -> float:
        return self.budget_mib - self.total_mib

    @property
    def fits(self) -> bool:
        return self.total_mib <= self.budget_mib

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "free_mib": self.free_mib, "layers": self.layers, "has_output": self.has_output,
                **{k: v for k, v in self.memory.as_json().items() if k != "host_mib"},
                "headroom_mib": round(self.headroom_mib, 2), "fits": self.fits}


@dataclass(frozen=True)
class Plan:
    engine: str
    quant: str
    kv_cache: str
    context: int
    devices: tuple[DeviceShare, ...]
    n_layers: int
    gpu_layers: int  # offloaded units incl. output (llama.cpp -ngl); n_layers + 1 = everything
    cpu_moe: int = 0  # layers whose experts stay on the CPU (llama.cpp --n-cpu-moe N)
    tensor_split: tuple[float, ...] = ()
    tensor_parallel: int = 1
    host_mib: float = 0.0
    cpu_weights_mib: float = 0.0
    gpu_weights_mib: float = 0.0
    notes: tuple[str, ...] = ()
    #: Engine settings the plan was made with and its command must pass (e.g. gpu_memory_utilization).
    settings: Mapping[str, float] = field(default_factory=dict)
    #: How fast it runs at `context` (`Engine.speed`, filled by `estimate.plan_row`); None: not known.
    speed: SpeedEstimate | None = None

    @property
    def memory(self) -> MemoryParts:
        return total_parts([d.memory for d in self.devices])

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    @property
    def fully_offloaded(self) -> bool:
        return self.gpu_layers >= self.n_layers + 1 and not self.cpu_moe

    @property
    def cpu_layers(self) -> int:
        return max(0, self.n_layers + 1 - self.gpu_layers)

    def cpu_gpu_split(self) -> str:
        """Ollama's `ollama ps` PROCESSOR for this plan, from where its weights are."""
        if self.fully_offloaded:
            return "100% GPU"
        return cpu_gpu_split(self.cpu_weights_mib + self.gpu_weights_mib, self.gpu_weights_mib)

    def as_json(self) -> dict[str, Any]:
        from lander_tui.core.speed import speed_json

        return {
            "backend": self.engine, "quant": self.quant, "kv_cache": self.kv_cache, "context": self.context,
            "fits": self.fits, "n_layers": self.n_layers, "gpu_layers": self.gpu_layers, "cpu_moe": self.cpu_moe,
            "tensor_split": [round(x, 3) for x in self.tensor_split], "tensor_parallel": self.tensor_parallel,
            "host_mib": round(self.host_mib, 2), "cpu_gpu": self.cpu_gpu_split(),
            "devices": [d.as_json() for d in self.devices],
            **speed_json(self.speed, detail=True),
            "notes": list(self.notes),
        }
