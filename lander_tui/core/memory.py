"""The memory parts of a plan, in one shape from engine to screen.

llama.cpp reports model / context / compute buffers per device; vLLM weights / KV cache /
activation peak / non-torch memory. Every engine here maps its allocations onto the same GPU
parts (plus host RAM), per device and summed by the same code, and every printer (JSON, CSV,
Markdown, the text report, the results table, the Plan view) reads the one `PARTS` table below.

What loads beside the model (a vision projector, a draft model, LoRA adapters: `core/extras.py`) is one
part, `extras`, whatever engine holds it: its weights, caches and compute together, so the model's own
parts read the same with and without them. One column keeps every table within 80 columns; the pieces
inside it (`EXTRAS`: projector, draft, lora) travel in `detail` and every printer names them where the
part is not zero (JSON `projector_mib`..., the text lines, the Plan view, the breakdown legend).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIB = 1024 * 1024


@dataclass(frozen=True)
class Part:
    """One GPU memory part: its attribute, its JSON key (MiB), its label, its plain-text key, and the
    short word the one-line summaries use."""

    attr: str
    json_key: str
    label: str
    plain_key: str
    short: str


#: The GPU parts, in the order every table shows them. `total` is their sum.
PARTS: tuple[Part, ...] = (
    Part("weights", "weights_mib", "weights", "model_weight_mib", "weights"),
    Part("kv", "kv_cache_mib", "KV cache", "kv_cache_mib", "kv"),
    Part("compute", "compute_mib", "compute", "compute_mib", "compute"),
    Part("overhead", "overhead_mib", "overhead", "overhead_mib", "overhead"),
    Part("extras", "extras_mib", "extras", "extras_mib", "extras"),
)


@dataclass(frozen=True)
class Extra:
    """One thing inside the `extras` part: its `detail` key, its JSON key (MiB) and its label."""

    key: str
    json_key: str
    label: str


#: What the `extras` part holds, each under its own `detail` key (bytes or MiB, like the part).
EXTRAS: tuple[Extra, ...] = (
    Extra("projector", "projector_mib", "vision projector"),
    Extra("draft", "draft_mib", "draft model"),
    Extra("lora", "lora_mib", "LoRA"),
)


def extras_detail(projector: Any = 0.0, draft: Any = 0.0, lora: Any = 0.0) -> dict[str, Any]:
    """The `detail` entries of the `extras` part."""
    return {"projector": projector, "draft": draft, "lora": lora}


def _num(x: Any, i: int | None) -> float:
    a = np.asarray(x)
    if i is None or not a.ndim:
        return float(a.flat[0]) if a.size == 1 else float(a)  # type: ignore[arg-type]
    return float(a.flat[i])


@dataclass(frozen=True)
class MemoryParts:
    """GPU memory by part (floats, or numpy arrays over context lengths) and the host RAM beside it.

    `weights`..`overhead` are on the GPU(s) and add up to `total`; `host` is system RAM the engine
    also needs. `detail` names the finer pieces inside a part (e.g. "cuda_context", "cuda_graphs"),
    so a reader can tell what "overhead" means for this engine without asking its name.
    Units are whatever the producer used: engines work in bytes, plans and rows in MiB (`to_mib`).
    """

    weights: Any = 0.0
    kv: Any = 0.0
    compute: Any = 0.0
    overhead: Any = 0.0
    host: Any = 0.0
    detail: Mapping[str, Any] = field(default_factory=dict)
    #: What loads beside the model (vision projector, draft model, LoRA: `EXTRAS` in `detail`).
    extras: Any = 0.0

    @property
    def total(self) -> Any:
        return self.weights + self.kv + self.compute + self.overhead + self.extras

    def _map(self, fn: Any) -> MemoryParts:
        return MemoryParts(fn(self.weights), fn(self.kv), fn(self.compute), fn(self.overhead), fn(self.host),
                           {k: fn(v) for k, v in self.detail.items()}, fn(self.extras))

    def __add__(self, other: MemoryParts) -> MemoryParts:
        keys = dict.fromkeys([*self.detail, *other.detail])
        return MemoryParts(self.weights + other.weights, self.kv + other.kv, self.compute + other.compute,
                           self.overhead + other.overhead, self.host + other.host,
                           {k: self.detail.get(k, 0.0) + other.detail.get(k, 0.0) for k in keys},
                           self.extras + other.extras)

    def at(self, i: int) -> MemoryParts:
        """The numbers at one context (position `i` of the arrays), as floats."""
        return self._map(lambda v: _num(v, i))

    def scaled(self, factor: float) -> MemoryParts:
        return self._map(lambda v: v * factor)

    def to_mib(self) -> MemoryParts:
        """Bytes -> MiB."""
        return self.scaled(1.0 / MIB)

    def extra_parts(self) -> dict[str, float]:
        """The pieces of `extras` that are not zero, by `Extra.key` (call on numbers at one context)."""
        return {e.key: float(self.detail[e.key]) for e in EXTRAS if float(self.detail.get(e.key, 0.0) or 0.0)}

    def as_json(self, digits: int = 2) -> dict[str, float]:
        """`weights_mib` .. `extras_mib` and what is inside it, `total_mib`, `host_mib` (call on MiB numbers)."""
        out = {p.json_key: round(float(getattr(self, p.attr)), digits) for p in PARTS}
        out.update({e.json_key: round(float(self.detail.get(e.key, 0.0) or 0.0), digits) for e in EXTRAS})
        out["total_mib"] = round(float(self.total), digits)
        out["host_mib"] = round(float(self.host), digits)
        return out


def total_parts(parts: list[MemoryParts] | tuple[MemoryParts, ...]) -> MemoryParts:
    """The sum over devices (the row a results table shows for a plan across several GPUs)."""
    out = MemoryParts()
    for p in parts:
        out = out + p
    return out


@dataclass(frozen=True)
class Breakdown(MemoryParts):
    """Memory of one configuration on one GPU at many context lengths, in bytes, and the context cells
    the engine really allocates for each asked length (llama.cpp pads to 256, vLLM to its block)."""

    context: Any = None
