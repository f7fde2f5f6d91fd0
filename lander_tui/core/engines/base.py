"""What every engine's memory accounting shares: options, the breakdown it returns, calibration.

Engines compute memory for a whole numpy array of context lengths at once, so the solver, the
table and the 256-point curve all run the same code (and the curve stays cheap).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import numpy as np

from lander_tui.core.errors import LanderError
from lander_tui.core.llamacpp_front_ends import front_end

MIB = 1024 * 1024


def pad(x: Any, n: int) -> Any:
    """GGML_PAD / a ceil to a multiple of n, for ints or int arrays."""
    return -(-np.asarray(x, dtype=np.int64) // n) * n


@dataclass(frozen=True)
class EngineOptions:
    """The knobs users turn. `None` means "the engine's own default"."""

    flash_attn: bool | None = None
    n_parallel: int | None = None
    n_ubatch: int = 512
    n_batch: int = 2048
    kv_unified: bool = True
    gpu_memory_utilization: float = 0.9
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    block_size: int = 16
    cuda_graphs: bool = True
    tensor_split: tuple[float, ...] | None = None  # llama.cpp --tensor-split; None = by free memory
    #: llama.cpp front end whose defaults apply (core/llamacpp_front_ends.py): "llama-server" (what the
    #: launch command runs), "llama-cli", or "bindings" (the C API defaults: llama-cpp-python ...).
    front_end: str = "llama-server"
    #: llama.cpp full-size sliding-window cache (`--swa-full`, C API `swa_full`); None = the front end's default.
    swa_full: bool | None = None
    overrides: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_parallel is not None and self.n_parallel < 1:
            raise LanderError("--parallel must be at least 1")
        if not 0.05 <= self.gpu_memory_utilization <= 1.0:
            raise LanderError("--gpu-memory-utilization must be between 0.05 and 1.0")
        if self.n_ubatch < 1 or self.n_batch < 1:
            raise LanderError("batch sizes must be at least 1")
        front_end(self.front_end)


@dataclass(frozen=True)
class Breakdown:
    """Memory of one configuration at one or many context lengths, in bytes.

    `weights`..`overhead` are on the GPU(s) and add up to `total`; `host` is system RAM the engine
    also needs. `parts` names the finer pieces (e.g. "cuda_context", "logits") for the UI.
    """

    context: np.ndarray
    weights: float
    kv: np.ndarray
    compute: np.ndarray
    overhead: np.ndarray
    host: np.ndarray
    parts: dict[str, Any] = field(default_factory=dict)
    budget: float | None = None  # vLLM: the memory it may use (total x utilization), bytes

    @property
    def total(self) -> np.ndarray:
        return self.weights + self.kv + self.compute + self.overhead

    def at(self, i: int) -> dict[str, float]:
        """One context's numbers, in MiB."""
        def v(x: Any) -> float:
            a = np.asarray(x)
            return float(a.flat[i] if a.ndim else a) / MIB
        return {
            "context": v(self.context) * MIB,
            "weights_mib": v(self.weights),
            "kv_cache_mib": v(self.kv),
            "compute_mib": v(self.compute),
            "overhead_mib": v(self.overhead),
            "total_mib": v(self.total),
            "host_mib": v(self.host),
            **{f"{k}_mib": v(p) for k, p in self.parts.items()},
        }


@dataclass(frozen=True)
class Calibration:
    """Base for each engine's named constants. Override any with `EngineOptions.overrides`."""

    def with_overrides(self, overrides: dict[str, float]) -> Calibration:
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise LanderError(f"unknown setting {bad[0]!r} for this engine; known: {', '.join(sorted(known))}")
        return replace(self, **overrides)


class Engine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...

    def granularity(self, opts: EngineOptions) -> int: ...

    def weights(self, model: Any, quant: str) -> Any: ...

    def memory(self, model: Any, quant: str, kv_type: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown: ...

    def default_quant(self, model: Any) -> str: ...

    def default_kv(self) -> str: ...
