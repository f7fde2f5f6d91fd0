"""The engine interface: everything that differs between inference engines is answered here.

An engine is one module in `core/engines/` (or a third-party package) exposing an `Engine`
subclass through the `lander_tui.engines` entry-point group. It answers, for a model: which quants
and KV types it offers, what memory it may use on the GPUs it is given (`budget`), what a
configuration holds on each GPU at any context (`footprint`, vectorised over contexts, so the
solver, the table, the curve and the plan all run the same code), how it places a row on the GPUs
(`plan`), what its KV cache can hold (`capacity`), what must be free for it to start, and the
command that runs it. Callers never ask an engine its name to decide anything.

Like vLLM's `KVCacheSpec` classes, each engine carries its own memory rules; like harlequin's
adapters, the app only talks to this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from lander_tui.core.errors import LanderError
from lander_tui.core.formats import kv_cache_type, weight_format
from lander_tui.core.memory import MIB, Breakdown, MemoryParts, total_parts
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.plan import DeviceShare, Plan
from lander_tui.core.weights import WeightSet


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
    overrides: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_parallel is not None and self.n_parallel < 1:
            raise LanderError("--parallel must be at least 1")
        if not 0.05 <= self.gpu_memory_utilization <= 1.0:
            raise LanderError("--gpu-memory-utilization must be between 0.05 and 1.0")
        if self.n_ubatch < 1 or self.n_batch < 1:
            raise LanderError("batch sizes must be at least 1")


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


@dataclass(frozen=True)
class Budget:
    """What an engine may use on each GPU (bytes), why, and the settings that make it so."""

    per_device: tuple[float, ...]
    notes: tuple[str, ...] = ()
    settings: Mapping[str, float] = field(default_factory=dict)  # e.g. the gpu_memory_utilization it assumes

    @property
    def total(self) -> float:
        return float(sum(self.per_device))


@dataclass(frozen=True)
class Footprint:
    """One configuration with everything on the given GPUs, at many contexts: per device (bytes,
    arrays over contexts), the host RAM beside them, and the context cells really allocated."""

    context: np.ndarray
    devices: tuple[MemoryParts, ...]
    host: Any = 0.0

    def summed(self) -> MemoryParts:
        s = total_parts(self.devices)
        return replace(s, host=np.broadcast_to(np.asarray(self.host, dtype=np.float64), self.context.shape))

    def over(self, budget: Budget) -> np.ndarray:
        """How far the fullest device is above its budget (<= 0: everything fits), per context."""
        return np.max([np.asarray(d.total) - b for d, b in zip(self.devices, budget.per_device, strict=True)],
                      axis=0)


FootprintFn = Callable[[np.ndarray], Footprint]


class Engine:
    """Base class of every engine. Subclasses set the class attributes and override what differs."""

    #: The name users type (`--backend NAME`) and the registry key.
    name: str = ""
    #: How the screen writes it.
    label: str = ""
    #: Other names users type for it.
    aliases: tuple[str, ...] = ()
    #: Position in `--help` and the dashboard's `b` cycle (built-ins 10..50; plugins after).
    order: int = 100
    #: What its launch command runs, for titles ("llama-server", "vllm serve").
    command_name: str = ""
    #: Quants and KV-cache types offered when the user names none.
    quants: tuple[str, ...] = ()
    kv_types: tuple[str, ...] = ()
    #: What the dashboard's `k` steps through after the default pair ("" = the defaults).
    kv_cycle: tuple[str, ...] = ("",)
    #: Whether a row on several GPUs is planned GPU by GPU (layer split, tensor parallel). When not,
    #: the dashboard plans on the GPUs' summed memory and says so.
    splits_across_gpus: bool = False
    #: Part of lander-tui itself (a plugin's errors are contained, a built-in's are bugs).
    builtin: bool = False
    #: What "parallel sequences" means for this engine, in one line, shown where the user sets it.
    parallel_help: str = "requests at once"
    #: Host RAM the engine always holds beside the GPU parts, in a few words ("" when none to mention):
    #: the results say it next to the weights column, which counts only the GPU.
    host_note: str = ""

    def __repr__(self) -> str:
        return f"<engine {self.name}>"

    # --- choices -------------------------------------------------------------------------------
    def default_quants(self, model: ResolvedModel) -> tuple[str, ...]:
        return self.quants

    def default_kvs(self, model: ResolvedModel) -> tuple[str, ...]:
        return self.kv_types

    def granularity(self, opts: EngineOptions) -> int:
        """Contexts are multiples of this (llama.cpp's 256 cells, vLLM's block size)."""
        return 256

    def check_quant(self, quant: str) -> None:
        """Raise a one-line LanderError when this engine cannot load weights in this format."""
        weight_format(quant)

    def check_kv(self, kv: str) -> None:
        """Raise a one-line LanderError when this engine has no such KV-cache type."""
        kv_cache_type(kv)

    # --- memory --------------------------------------------------------------------------------
    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        raise NotImplementedError

    def budget(self, devices: Sequence[Device], opts: EngineOptions) -> Budget:
        """What the engine may use on each GPU: by default all that is free."""
        return Budget(tuple(d.free_mib * MIB for d in devices))

    def footprint(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                  opts: EngineOptions) -> FootprintFn:
        """The memory of this configuration on these GPUs as a function of context. Heavy set-up
        (weights, layer placement) happens here, once; the returned function is cheap and vectorised.
        By default one GPU only; an engine that splits across GPUs overrides this."""
        if len(devices) != 1:
            raise LanderError(f"{self.label} across several GPUs is not modelled; plan one GPU at a time")

        def at(ctx: np.ndarray) -> Footprint:
            bd = self.memory(model, quant, kv, ctx, opts)
            one = MemoryParts(bd.weights, bd.kv, bd.compute, bd.overhead, 0.0, bd.detail)
            return Footprint(np.asarray(bd.context), (one,), bd.host)

        return at

    def memory(self, model: ResolvedModel, quant: str, kv: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown:
        """Everything on one GPU at each context, bytes."""
        raise NotImplementedError

    # --- plans ---------------------------------------------------------------------------------
    def fallback_context(self, model: ResolvedModel) -> int | None:
        """The context to plan at when nothing loads fully on the GPUs (an engine that can run part of
        the model on the CPU plans that); None: there is no plan."""
        return None

    def plan(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
             budget: Budget, opts: EngineOptions) -> Plan:
        """The row placed on the GPUs at `ctx`: by default everything on them, as `footprint` says."""
        fp = self.footprint(model, quant, kv, devices, opts)(np.array([ctx]))
        shares = tuple(
            DeviceShare(d.name, d.free_mib, b / MIB, part.at(0).to_mib(), index=d.index)
            for d, part, b in zip(devices, fp.devices, budget.per_device, strict=True))
        spec = model.spec
        return Plan(self.name, self.weights(model, quant).quant, kv, int(fp.context[0]), shares, spec.n_layers,
                    spec.n_layers + 1, tensor_parallel=len(devices) if len(devices) > 1 else 1,
                    gpu_weights_mib=sum(s.memory.weights for s in shares),
                    host_mib=float(np.asarray(fp.host).flat[0]) / MIB, settings=budget.settings)

    def capacity(self, model: ResolvedModel, quant: str, kv: str, ctx: int, footprint_mib: Sequence[MemoryParts],
                 budget: Budget, opts: EngineOptions) -> dict[str, float]:
        """What the KV cache holds beyond one request (vLLM's maximum concurrency); {} when the engine
        sizes its cache to the context asked for."""
        return {}

    def notes(self, model: ResolvedModel, devices: Sequence[Device], opts: EngineOptions) -> tuple[str, ...]:
        """Anything the user must know about this engine's own defaults on these GPUs."""
        return ()

    def startup_need_mib(self, share: DeviceShare, device: Device, plan: Plan) -> float:
        """What must be free on this GPU for the plan to start (by default what it holds)."""
        return share.total_mib

    # --- running it ----------------------------------------------------------------------------
    def launch_command(self, model_ref: str, plan: Plan, opts: EngineOptions) -> str:
        raise LanderError(f"{self.label} has no launch command")
