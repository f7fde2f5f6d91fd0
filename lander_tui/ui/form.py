"""The dashboard's form as plain data, and the one place that turns it into an `EstimateRequest`.

Nothing here imports Textual: the widgets hold what the user typed (strings, kept as typed),
`build_request` validates every field, works out the memory to plan on from the selected GPUs (or
a what-if GPU) with the same rules as `lander-tui estimate` (core/planning_memory.py), and returns
a `Draft`: either a request or per-field error strings. The app only renders that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from lander_tui.core import planning_memory as pm
from lander_tui.core.engines import DEFAULT_ENGINE, Engine, EngineOptions, engine_names, get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.estimate import EstimateRequest
from lander_tui.core.formats import kv_cache_type, weight_format
from lander_tui.core.model import ResolvedModel
from lander_tui.core.parsing import (  # noqa: F401  (the form's parsers are the CLI's)
    MAX_CONTEXT_TOKENS,
    format_tokens,
    parse_mib,
    parse_tokens,
    split_list,
)
from lander_tui.core.planning_memory import PlanningMemory

FLASH_CHOICES = ("auto", "on", "off")
MEMORY_MODES = tuple(key for key, _label, _help in pm.MODES)
MEMORY_LABELS = {key: label for key, label, _help in pm.MODES}
DEFAULT_MARGIN = f"{pm.DEFAULT_MARGIN_MIB:.0f}"
MIN_CONTEXT_STEP = 1024
#: The field names errors are keyed by (one per form control).
FIELDS = ("model", "engine", "quants", "kv_types", "context", "parallel", "flash_attn", "margin", "memory",
          "what_if")
FIELD_LABELS = {"model": "Model", "engine": "Engine", "quants": "Quants", "kv_types": "KV cache",
                "context": "Target context", "parallel": "Parallel seqs", "flash_attn": "Flash attn",
                "margin": "Safety margin", "memory": "Memory", "what_if": "What-if GPU"}


@dataclass(frozen=True)
class FormValues:
    """Everything the user set, as typed. Empty quants/KV/context/parallel mean "engine default"."""

    engine: str = DEFAULT_ENGINE
    quants: str = ""
    kv_types: str = ""
    context: str = ""
    parallel: str = ""
    flash_attn: str = "auto"
    margin: str = DEFAULT_MARGIN
    memory: str = "free"
    what_if: str = ""
    gpus: tuple[int, ...] = ()  # selected real GPUs (NVML index); () = not chosen yet
    prefer: str = "precision"  # what ★ weighs: "precision" or "speed" (core.estimate.PREFERENCES)


@dataclass(frozen=True)
class Draft:
    """The outcome of one form + GPU state: a request, or why not (per field)."""

    request: EstimateRequest | None
    errors: dict[str, str] = field(default_factory=dict)
    memory: PlanningMemory | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.request is not None


# --- parsing: the same rules as the CLI (core/parsing.py) ------------------------------------

# --- validation ------------------------------------------------------------------------------


def field_errors(form: FormValues) -> dict[str, str]:
    """One short message per field that is wrong; every field is checked on every change."""
    errors: dict[str, str] = {}
    if form.engine not in engine_names():
        errors["engine"] = f"one of {', '.join(engine_names())}"
    engine = _engine(form)
    for q in split_list(form.quants):
        try:
            weight_format(q)
        except LanderError:
            errors["quants"] = f"unknown quant {q!r} (e.g. Q4_K_M, Q8_0, BF16, FP8, AWQ, NF4)"
            break
        problem = _engine_refuses(engine, "check_quant", q)
        if problem:  # the engine's own rule, as `estimate --backend` applies it
            errors["quants"] = f"{problem} (empty: {engine.label if engine else 'the engine'}'s defaults)"
            break
    for k in split_list(form.kv_types):
        try:
            kv_cache_type(k)
        except LanderError:
            errors["kv_types"] = f"unknown KV type {k!r} (e.g. f16, q8_0, q4_0, fp8)"
            break
        problem = _engine_refuses(engine, "check_kv", k)
        if problem:
            errors["kv_types"] = f"{problem} (empty: {engine.label if engine else 'the engine'}'s defaults)"
            break
    try:
        parse_tokens(form.context)
    except ValueError as err:
        errors["context"] = str(err)
    if form.parallel.strip():
        p = form.parallel.strip()
        if not p.isdigit() or not 1 <= int(p) <= 4096:
            errors["parallel"] = "a whole number from 1 to 4096"
    if form.flash_attn not in FLASH_CHOICES:
        errors["flash_attn"] = "auto, on or off"
    try:
        if parse_mib(form.margin) < 0:
            errors["margin"] = "0 or more MiB"
    except ValueError as err:
        errors["margin"] = str(err)
    if form.memory not in MEMORY_MODES:
        errors["memory"] = "free now, whole GPU or what-if"
    if form.memory == "what-if":
        try:
            _what_if(form.what_if)
        except LanderError as err:
            errors["what_if"] = str(err)
    return errors


def _engine_refuses(engine: Engine | None, check: str, value: str) -> str:
    """The engine's one-line reason it cannot take `value` ("" when it can)."""
    if engine is None:
        return ""
    try:
        getattr(engine, check)(value)
    except LanderError as err:
        return str(err)
    return ""


def margin_error(form: FormValues, snapshot: Any) -> str:
    """A safety margin the chosen GPUs cannot keep (larger than the card, or all that is free now);
    only "free now" uses the margin, so only it is checked."""
    if form.memory != "free" or snapshot is None or not snapshot.ok:
        return ""
    try:
        margin = parse_mib(form.margin)
    except ValueError:
        return ""
    chosen = form.gpus or pm.freest_gpu(snapshot)
    gpus = [g for g in pm.usable_gpus(snapshot) if g.index in chosen]
    return pm.margin_problem(gpus, margin)


def _what_if(name: str) -> PlanningMemory:
    if not name.strip():
        raise LanderError('type a GPU or instance, e.g. "RTX 4090", "2x A100 80GB", g5.12xlarge (w picks)')
    found = _what_if_lookup(name)
    if isinstance(found, str):
        raise LanderError(found)
    return found


@lru_cache(maxsize=64)
def _what_if_lookup(name: str) -> PlanningMemory | str:
    """The catalog's answer for a typed name, or why not. Asked several times per keystroke (field
    check, memory, GPU panel) and a fuzzy miss costs up to ~70 ms, so it is remembered."""
    try:
        return pm.what_if(name)
    except LanderError as err:
        return str(err)


def field_hint(name: str, form: FormValues, model: ResolvedModel | None = None) -> str:
    """One line on what a field means, shown while it has focus (and no error)."""
    engine = _engine(form)
    label = engine.label if engine is not None else "the engine"
    if name == "quants":
        defaults = ", ".join(default_quants(form.engine, model))
        return f"weight formats, comma-separated; empty: {label}'s defaults ({defaults})"
    if name == "kv_types":
        return f"KV-cache types, comma-separated; empty: {', '.join(default_kv(form.engine, model))}; k cycles them"
    if name == "context":
        return "tokens, like 32k or 131072; empty: the model's trained maximum; + and - double and halve it"
    if name == "parallel":
        return f"{engine.parallel_help if engine is not None else 'requests at once'}; empty: 1"
    if name == "margin":
        unused = "" if form.memory == "free" else f" (Memory is {MEMORY_LABELS.get(form.memory, form.memory)}: unused)"
        return f"MiB kept free on the planned GPUs; only Memory = free now uses it{unused}"
    if name == "memory":
        return "; ".join(f"{label_}: {help_}" for _key, label_, help_ in pm.MODES[:2]) + "; what-if: w picks"
    if name == "what_if":
        return "a catalog GPU or cloud instance, e.g. 2x A100 80GB; w opens the list"
    if name == "engine":
        return "b cycles the engines; the fields below keep what you typed for each"
    if name == "flash_attn":
        return "auto: the engine's own choice"
    return ""


def describe_changes(shown: FormValues, typed: FormValues) -> str:
    """The fields where the screen (`shown`, the last valid input) differs from what is typed, with
    the values the screen uses: 'Target context 1; What-if GPU RTX 4090'."""
    out = []
    for name in FIELDS:
        if name == "model" or getattr(shown, name) == getattr(typed, name):
            continue
        value = str(getattr(shown, name)).strip()
        if name == "memory":
            value = MEMORY_LABELS.get(value, value)
        out.append(f"{FIELD_LABELS[name]} {value or '(empty: the default)'}")
    return "; ".join(out)


# --- GPUs ------------------------------------------------------------------------------------


def gpu_choices(snapshot: Any) -> list[tuple[int, ...]]:
    """What `g` cycles through: each usable GPU, then all of each host's together (one machine is
    one host; GPUs of a Prometheus fleet are never pooled across hosts)."""
    usable = pm.usable_gpus(snapshot)
    out: list[tuple[int, ...]] = [(g.index,) for g in usable]
    by_host: dict[str, list[int]] = {}
    for g in usable:
        by_host.setdefault(g.host, []).append(g.index)
    out += [tuple(idx) for idx in by_host.values() if len(idx) > 1]
    return out


def next_gpu_choice(form: FormValues, snapshot: Any) -> FormValues:
    choices = gpu_choices(snapshot)
    if not choices:
        return form
    current = tuple(sorted(form.gpus))
    pos = choices.index(current) + 1 if current in choices else 0
    if form.memory == "what-if":  # `g` means "back to my GPUs": keep the choice, leave what-if
        pos = pos - 1 if current in choices else 0
    return replace(form, gpus=choices[pos % len(choices)], memory="free" if form.memory == "what-if"
                   else form.memory)


def toggle_gpu(form: FormValues, index: int) -> FormValues:
    """Add or remove one GPU from the plan (never leaves the selection empty)."""
    sel = set(form.gpus)
    if index in sel and len(sel) > 1:
        sel.remove(index)
    else:
        sel.add(index)
    mem = "free" if form.memory == "what-if" else form.memory
    return replace(form, gpus=tuple(sorted(sel)), memory=mem)


def planning_memory(form: FormValues, snapshot: Any) -> PlanningMemory:
    """The memory to plan on; raises LanderError (one line) when there is none."""
    if form.memory == "what-if":
        return _what_if(form.what_if)
    if snapshot is not None and not snapshot.ok:
        raise LanderError(f"{snapshot.message} (press w to plan for a what-if GPU)")
    chosen = form.gpus or pm.freest_gpu(snapshot)
    if snapshot is not None and not chosen:
        raise LanderError("no GPU reports its memory right now; press w to plan for a what-if GPU")
    try:
        return pm.on_gpus(snapshot, chosen, form.memory, parse_mib(form.margin))
    except LanderError as err:
        raise LanderError(f"{err}; press g to pick another" if chosen and snapshot is not None else str(err)) \
            from None


# --- the request -----------------------------------------------------------------------------


def options_of(form: FormValues) -> EngineOptions:
    flash = {"auto": None, "on": True, "off": False}.get(form.flash_attn)
    par = int(form.parallel) if form.parallel.strip().isdigit() else None
    return EngineOptions(flash_attn=flash, n_parallel=par)


def build_request(form: FormValues, model: ResolvedModel | None, snapshot: Any,
                  previous: PlanningMemory | None = None) -> Draft:
    """Validate everything and build the one request the results show. Never raises."""
    errors = field_errors(form)
    if "margin" not in errors and margin_error(form, snapshot):
        errors["margin"] = margin_error(form, snapshot)
    memory: PlanningMemory | None = None
    if "what_if" not in errors and "margin" not in errors:
        try:
            memory = pm.settle(previous, planning_memory(form, snapshot))
        except LanderError as err:
            errors["memory"] = str(err)
    if model is None:
        errors["model"] = "pick a model: type to search, Enter to choose"
    notes: list[str] = []
    engine = _engine(form)
    count = len(memory.devices) if memory is not None else 0
    if memory is not None and count > 1 and engine is not None:
        if engine.splits_across_gpus:
            notes.append(f"{count} GPUs: each row is the whole plan across them (v shows the per-GPU split)")
        else:
            notes.append(f"{count} GPUs: {engine.label} spreads the layers with device_map='auto'; "
                         "the table plans on their summed memory")
    if errors or memory is None or model is None or engine is None:
        return Draft(None, errors, memory, tuple(notes))
    on = memory if engine.splits_across_gpus else memory.merged()
    try:
        req = EstimateRequest(
            model=model, engine=engine.name, quants=split_list(form.quants), kv_types=split_list(form.kv_types),
            devices=on.devices, context=parse_tokens(form.context), options=options_of(form), prefer=form.prefer,
        )
    except LanderError as err:  # the core's own checks; should be covered above
        return Draft(None, {"memory": str(err)}, memory, tuple(notes))
    return Draft(req, {}, memory, tuple(notes))


def _engine(form: FormValues) -> Engine | None:
    try:
        return get_engine(form.engine)
    except LanderError:
        return None


# --- keyboard shortcuts as pure steps --------------------------------------------------------


def switch_engine(form: FormValues, engine: str, saved: dict[str, tuple[str, str]]) -> FormValues:
    """Change engine. Each engine keeps the quants/KV text typed for it; an engine not typed for yet
    takes the text on screen when it can load every entry, else starts empty (its defaults). Either
    way the fields show exactly what is planned; an entry typed that the engine cannot take gets a
    ✗ on its field (`field_errors`)."""
    saved[form.engine] = (form.quants, form.kv_types)
    if engine in saved:
        quants, kvs = saved[engine]
    else:
        new = _engine(FormValues(engine=engine))
        quants = form.quants if _takes_all(new, "check_quant", form.quants) else ""
        kvs = form.kv_types if _takes_all(new, "check_kv", form.kv_types) else ""
    return replace(form, engine=engine, quants=quants, kv_types=kvs)


def _takes_all(engine: Engine | None, check: str, text: str) -> bool:
    for value in split_list(text):
        try:
            weight_format(value) if check == "check_quant" else kv_cache_type(value)
        except LanderError:
            return False
        if _engine_refuses(engine, check, value):
            return False
    return True


def next_engine(form: FormValues, saved: dict[str, tuple[str, str]]) -> FormValues:
    names = list(engine_names())
    pos = names.index(form.engine) + 1 if form.engine in names else 0
    return switch_engine(form, names[pos % len(names)], saved)


def next_kv(form: FormValues) -> FormValues:
    engine = _engine(form)
    cycle = engine.kv_cycle if engine is not None else ("",)
    current = form.kv_types.strip().lower()
    pos = cycle.index(current) + 1 if current in cycle else 0
    return replace(form, kv_types=cycle[pos % len(cycle)])


def toggle_prefer(form: FormValues) -> FormValues:
    """`s`: ★ goes to the fastest row that reaches the target context, or back to the highest precision."""
    return replace(form, prefer="precision" if form.prefer == "speed" else "speed")


def step_context(form: FormValues, model_max: int, up: bool) -> FormValues:
    """`+`/`-`: the next power of two above/below the target (blank = the model's own maximum)."""
    try:
        current = parse_tokens(form.context) or model_max
    except ValueError:
        current = model_max
    if up:
        k = math.floor(math.log2(max(1, current))) + 1
    else:
        k = math.ceil(math.log2(max(1, current))) - 1
    value = min(MAX_CONTEXT_TOKENS, max(MIN_CONTEXT_STEP, 1 << max(0, k)))
    return replace(form, context=format_tokens(value))


def default_quants(engine: str, model: ResolvedModel | None = None) -> tuple[str, ...]:
    """What the Quants field means when left empty (a GGUF file: its own type)."""
    e = _engine(FormValues(engine=engine))
    if e is None:
        return ()
    return e.default_quants(model) if model is not None else e.quants


def default_kv(engine: str, model: ResolvedModel | None = None) -> tuple[str, ...]:
    e = _engine(FormValues(engine=engine))
    if e is None:
        return ()
    return e.default_kvs(model) if model is not None else e.kv_types
