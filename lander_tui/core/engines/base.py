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
from typing import TYPE_CHECKING, Any

import numpy as np

from lander_tui.core.engines.running import EngineConfig
from lander_tui.core.errors import LanderError
from lander_tui.core.extras import Lora, Speculative
from lander_tui.core.formats import kv_cache_type, weight_format
from lander_tui.core.memory import MIB, Breakdown, MemoryParts, total_parts
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.plan import DeviceShare, Plan
from lander_tui.core.weights import WeightSet

if TYPE_CHECKING:
    from lander_tui.core.speed import SpeedEstimate, SpeedInputs


def pad(x: Any, n: int) -> Any:
    """GGML_PAD / a ceil to a multiple of n, for ints or int arrays."""
    return -(-np.asarray(x, dtype=np.int64) // n) * n


def tensor_parallel_sizes(n_heads: int, n_gpus: int) -> tuple[int, ...]:
    """Tensor-parallel sizes on one machine of `n_gpus`: powers of two that divide the attention heads
    (vLLM and SGLang refuse a size that does not; powers of two are what NVLink boxes are cut into)."""
    out, k = [], 1
    while k <= n_gpus:
        if n_heads % k == 0:
            out.append(k)
        k *= 2
    return tuple(out)


@dataclass(frozen=True)
class EngineOptions:
    """The knobs users turn. `None` means "the engine's own default"."""

    flash_attn: bool | None = None
    n_parallel: int | None = None
    n_ubatch: int = 512
    n_batch: int = 2048
    kv_unified: bool = True
    gpu_memory_utilization: float | None = None  # vLLM; None = its own default (0.92 today)
    max_num_batched_tokens: int | None = None  # vLLM; None = its default for the GPU's class
    max_num_seqs: int | None = None  # vLLM; None = its default for the GPU's class
    block_size: int = 16
    enforce_eager: bool = False  # vLLM --enforce-eager: no CUDA graphs
    tensor_split: tuple[float, ...] | None = None  # llama.cpp --tensor-split; None = by free memory
    host_bw_gbs: float | None = None  # host RAM bandwidth for layers on the CPU; None = read it (SMBIOS) or a default
    #: llama.cpp front end whose defaults apply (engines/llamacpp.py FRONT_ENDS): "llama-server" (what the
    #: launch command runs), "llama-cli", or "bindings" (the C API defaults: llama-cpp-python ...).
    front_end: str = "llama-server"
    #: llama.cpp full-size sliding-window cache (`--swa-full`, C API `swa_full`); None = the front end's default.
    swa_full: bool | None = None
    #: The vision projector (`core/extras.py`): None = loaded when the model has one (every engine's own
    #: default), False = left out (`--no-mmproj`), True = asked for (an error when the model has none).
    mmproj: bool | None = None
    #: Speculative decoding (`--draft`): a draft model, or the model's own MTP layers; None = off.
    speculative: Speculative | None = None
    #: LoRA adapters (`--lora RANK[xN]` or an adapter file); None = none.
    lora: Lora | None = None
    overrides: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_parallel is not None and self.n_parallel < 1:
            raise LanderError("--parallel must be at least 1")
        if self.gpu_memory_utilization is not None and not 0.05 <= self.gpu_memory_utilization <= 1.0:
            raise LanderError("--gpu-memory-utilization must be between 0.05 and 1.0")
        if self.n_ubatch < 1 or self.n_batch < 1:
            raise LanderError("batch sizes must be at least 1")
        if any(v is not None and v < 1 for v in (self.max_num_seqs, self.max_num_batched_tokens)):
            raise LanderError("--max-num-seqs and --max-num-batched-tokens must be at least 1")


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
        negative = sorted(k for k, v in overrides.items() if v < 0)
        if negative:
            raise LanderError(f"{negative[0]} must be 0 or more, not {overrides[negative[0]]:g}")
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

#: The GPU `memory()` answers for, for engines that size themselves by the GPU (vLLM, SGLang).
REFERENCE_GPU = Device("GPU", 80 * 1024.0, 80 * 1024.0)


def first_device(fp: Footprint) -> Breakdown:
    """The first GPU of a footprint as a `Breakdown` (bytes, with the context cells allocated)."""
    d = fp.devices[0]
    return Breakdown(d.weights, d.kv, d.compute, d.overhead, fp.host, d.detail, d.extras, context=fp.context)


@dataclass(frozen=True)
class Running:
    """A running server's configuration as this engine's estimator inputs (`Engine.running`)."""

    model: ResolvedModel
    quant: str | None  # None: the engine's default for the model (a GGUF file: its own type)
    kv: str
    context: int  # what the estimate is taken at, in the engine's own unit (llama.cpp: every KV cell)
    options: EngineOptions
    config: Mapping[str, Any]  # what was predicted, as the screen and the history show it
    #: A server that sizes itself from the GPU (vLLM, SGLang) holds this much whatever its context;
    #: None: it holds the footprint of its configuration.
    held_mib: float | None = None
    notes: tuple[str, ...] = ()


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
    #: The `EngineOptions` fields this engine's numbers depend on (a flag for any other is ignored,
    #: and the CLI says so). `overrides` always applies.
    options_read: frozenset[str] = frozenset({"n_parallel"})
    #: How it runs a token, for the speed model (`core/speed.py` GGML, SERVER or EAGER); "" = no speed
    #: model (a plugin that does not say).
    runtime: str = ""
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
            one = MemoryParts(bd.weights, bd.kv, bd.compute, bd.overhead, 0.0, bd.detail, bd.extras)
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

    # --- many GPU sets at once ("where does it fit?", core/fit.py) ------------------------------
    def set_sizes(self, model: ResolvedModel, n_gpus: int) -> tuple[int, ...]:
        """How many of one machine's `n_gpus` GPUs a plan may take: any number (an engine that does not
        split across GPUs gets them as one summed device, as `estimate` plans it)."""
        return tuple(range(1, n_gpus + 1))

    def fit_sets(self, model: ResolvedModel, quant: str, kv: str, ctx: int, sets: Sequence[Sequence[Device]],
                 opts: EngineOptions) -> tuple[np.ndarray, np.ndarray]:
        """For m sets of n GPUs: what each GPU holds at `ctx` and what the engine may use on it (its
        `budget`), MiB, both shaped (m, n); a set loads when no need is above its budget, and a set the
        engine refuses needs `inf`. This default asks `footprint` once per set, which is right for any
        engine; the built-ins share one footprint among the sets it is the same for, since a fleet has
        thousands of sets (tests/test_fit.py holds every override equal to this)."""
        budgets = self.set_budgets(sets, opts)
        need = np.full(budgets.shape, np.inf)
        for i, devices in enumerate(sets):
            try:
                fp = self.footprint(model, quant, kv, devices, opts)(np.array([ctx]))
            except LanderError:
                continue
            except Exception:
                if self.builtin:
                    raise
                continue  # a plugin's bug: that set is not offered
            need[i] = [float(np.asarray(d.total).flat[0]) / MIB for d in fp.devices]
        return need, budgets

    def set_budgets(self, sets: Sequence[Sequence[Device]], opts: EngineOptions) -> np.ndarray:
        """`budget` of each set, MiB, shaped (m, n)."""
        return np.array([self.budget(devices, opts).per_device for devices in sets], dtype=np.float64) / MIB

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

    # --- a server that already runs --------------------------------------------------------------
    def running(self, config: EngineConfig, gpu_total_mib: float | None) -> Running:
        """The estimator inputs of a server of this engine running with `config` (what its live reader
        read) on a GPU of `gpu_total_mib`; a one-line LanderError says why there are none."""
        raise LanderError(f"lander-tui cannot predict a running {self.label} server yet")

    def restart_options(self, run: Running) -> EngineOptions:
        """The options a restart of that server on other memory is planned with (by default the same)."""
        return run.options

    def restart_flags(self, run: Running, context: int, settings: Mapping[str, float]) -> tuple[int, str]:
        """For the longest context the estimator found on a restart (`context`, in `Running.context`'s
        unit; `settings` from its budget): the context one request then gets, and the flags that set it."""
        return min(context, run.model.spec.max_context), ""

    # --- speed ---------------------------------------------------------------------------------
    def speed_inputs(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                     opts: EngineOptions, plan: Plan | None = None) -> SpeedInputs:
        """The speed model's view of a placement: `plan`, or the row's own (everything on the GPUs, as
        `footprint` places it). By default tensor parallel over several GPUs (every rank reads its share
        at once), prompts in chunks of `max_num_batched_tokens`."""
        from lander_tui.core.speed import device_cards, speed_inputs

        tp = plan.tensor_parallel if plan is not None else len(devices)
        chunk = self.prefill_chunk(devices, opts)
        return speed_inputs(model.spec, self.weights(model, quant), device_cards(devices), kv_type=kv,
                            runtime=self.runtime, tensor_parallel=tp > 1, flash_attn=opts.flash_attn is not False,
                            n_ubatch=chunk, n_batch=chunk, concurrency=opts.n_parallel or 1)

    def prefill_chunk(self, devices: Sequence[Device], opts: EngineOptions) -> int:
        """Prompt tokens one forward pass takes (a server's `max_num_batched_tokens`)."""
        return opts.max_num_batched_tokens or 8192

    def offload_step(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                     opts: EngineOptions, plan: Plan) -> tuple[SpeedInputs, str] | None:
        """The plan with one more layer (or one more layer's experts) on the CPU, and that step in the
        engine's flags ("-ngl 42"); None when this engine does not run layers on the CPU."""
        return None

    def speed(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
              opts: EngineOptions, plan: Plan | None = None) -> SpeedEstimate | None:
        """Decode tokens/s at `ctx`, prefill of a `ctx`-token prompt and time to first token, for `plan`
        (with the cost of one more offload step) or the row's own placement. None when the engine has no
        speed model or a GPU's card is unknown (`core.speed.speed_unknown` says which)."""
        from lander_tui.core.speed import estimate_speed, speed_unknown

        if not self.runtime or speed_unknown(devices):
            return None
        inp = self.speed_inputs(model, quant, kv, devices, opts, plan)
        step = self.offload_step(model, quant, kv, devices, opts, plan) if plan is not None else None
        if step is None:
            return estimate_speed(inp, ctx, prompt=ctx)
        return estimate_speed(inp, ctx, prompt=ctx, step=step[0], step_label=step[1])

    def bench_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        """The command that measures what `speed` predicts for the plan, on the user's machine."""
        raise LanderError(f"{self.label} has no benchmark command here (llama.cpp and Ollama plans have one)")

    # --- running it ----------------------------------------------------------------------------
    def command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        """`launch_command`, with a plugin's own bug turned into one line (a built-in's stays a bug)."""
        try:
            return self.launch_command(model, plan, opts)
        except LanderError:
            raise
        except Exception as err:
            if self.builtin:
                raise
            raise LanderError(f"the {self.label} plugin failed to write its command: {type(err).__name__}: {err}") \
                from None

    def launch_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        """The command (or snippet) that runs the plan as planned; `core.checkpoint` says which file."""
        raise LanderError(f"{self.label} has no launch command")
