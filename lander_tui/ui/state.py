"""The dashboard's form as plain data, and the one place that turns it into an `EstimateRequest`.

Nothing here imports Textual: the widgets hold what the user typed (strings, kept as typed),
`build_plan` validates every field, works out the memory to plan for from the selected GPUs (or a
what-if GPU) and returns either a request or per-field error strings. The app only renders that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from lander_tui.core.engines import ENGINES, EngineOptions
from lander_tui.core.errors import LanderError
from lander_tui.core.estimate import DEFAULT_KV, DEFAULT_QUANTS, EstimateRequest
from lander_tui.core.formats import kv_cache_type, weight_format
from lander_tui.core.model_source import ResolvedModel

ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
FLASH_CHOICES = ("auto", "on", "off")
MEMORY_MODES = ("free", "whole", "what-if")
#: Engines whose rows plan every GPU's own share (llama.cpp layer split, vLLM tensor parallel).
MULTI_GPU_ENGINES = ("llama.cpp", "ollama", "vllm")
MEMORY_LABELS = {"free": "free now", "whole": "whole GPU", "what-if": "what-if"}
DEFAULT_MARGIN = "512"
#: Live free VRAM must move by at least this much before the plan follows it (keeps the screen calm
#: while a job's memory jitters by a few MiB; the GPU panel always shows the exact number).
FREE_HYSTERESIS_MIB = 64.0
MAX_CONTEXT_TOKENS = 1 << 24
MIN_CONTEXT_STEP = 1024
#: What `k` cycles through, per engine ("" = the engine's default pair).
KV_CYCLE: dict[str, tuple[str, ...]] = {
    "llama.cpp": ("", "f16", "q8_0", "q4_0"),
    "ollama": ("", "f16", "q8_0", "q4_0"),
    "vllm": ("", "auto", "fp8"),
    "transformers": ("", "bf16"),
}
#: The field names errors are keyed by (one per form control).
FIELDS = ("model", "engine", "quants", "kv_types", "context", "parallel", "flash_attn", "margin", "memory",
          "what_if")
FIELD_LABELS = {"model": "Model", "engine": "Engine", "quants": "Quants", "kv_types": "KV cache",
                "context": "Target context", "parallel": "Parallel seqs", "flash_attn": "Flash attn",
                "margin": "Safety margin", "memory": "Memory", "what_if": "What-if GPU"}


@dataclass(frozen=True)
class FormValues:
    """Everything the user set, as typed. Empty quants/KV/context/parallel mean "engine default"."""

    engine: str = "llama.cpp"
    quants: str = ""
    kv_types: str = ""
    context: str = ""
    parallel: str = ""
    flash_attn: str = "auto"
    margin: str = DEFAULT_MARGIN
    memory: str = "free"
    what_if: str = ""
    gpus: tuple[int, ...] = ()  # selected real GPUs (NVML index); () = not chosen yet


@dataclass(frozen=True)
class PlanMemory:
    """The memory a plan may use. `free_mib` is after the safety margin (free-now mode only)."""

    free_mib: float
    total_mib: float | None
    label: str  # where it comes from, e.g. "GPU 1 free now" or "what-if 2x RTX 4090 24GB"
    detail: str  # the arithmetic, e.g. "26,821 - 512 margin"
    key: tuple[Any, ...]  # what it is about (mode, GPUs); numbers may drift under the same key
    devices: tuple[tuple[str, float, float | None], ...] = ()  # (name, free, total) per GPU, for plans
    indices: tuple[int, ...] = ()  # the real GPUs (NVML index) behind `devices`; () for what-if

    @property
    def count(self) -> int:
        return max(1, len(self.devices))

    @property
    def live(self) -> bool:
        """Free memory of real GPUs right now: a plan made on it can be re-checked at every reading."""
        return self.key[0] == "free" and bool(self.indices)

    def core_devices(self) -> list[Any]:
        """`multi_gpu.Device`s to plan on (one per GPU, free after the margin's share)."""
        from lander_tui.core.multi_gpu import Device

        return [Device(name, free, total) for name, free, total in self.devices] or [
            Device(self.label, self.free_mib, self.total_mib)]


@dataclass(frozen=True)
class Plan:
    """The outcome of one form + GPU state: a request, or why not (per field)."""

    request: EstimateRequest | None
    errors: dict[str, str] = field(default_factory=dict)
    memory: PlanMemory | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.request is not None


# --- parsing ---------------------------------------------------------------------------------

_TOKENS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mib|mb|m|gib|gb|g)?\s*$", re.IGNORECASE)


def parse_tokens(text: str) -> int | None:
    """`""` -> None, `32768` / `32k` / `128K` / `1M` / `131,072` -> tokens (k = 1024)."""
    raw = text.strip().replace(",", "").replace("_", "")
    if not raw:
        return None
    m = _TOKENS.match(raw)
    if not m:
        raise ValueError("a number of tokens, like 32768 or 32k")
    value = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if value < 1 or value != math.floor(value):
        raise ValueError("a whole number of tokens, at least 1")
    if value > MAX_CONTEXT_TOKENS:
        raise ValueError(f"at most {MAX_CONTEXT_TOKENS:,} tokens")
    return int(value)


def parse_mib(text: str) -> float:
    """`512`, `512M`, `1.5G`, `2GiB` -> MiB. Empty is 0."""
    raw = text.strip().replace(",", "").replace("_", "")
    if not raw:
        return 0.0
    m = _SIZE.match(raw)
    if not m:
        raise ValueError("MiB, like 512 or 1.5G")
    unit = (m.group(2) or "m").lower()
    return float(m.group(1)) * (1024.0 if unit.startswith("g") else 1.0)


def split_list(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in re.split(r"[,\s]+", text.strip()) if p))


def format_tokens(n: int) -> str:
    """131072 -> "128k", 1048576 -> "1M", 100000 -> "100,000"."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10}k"
    return f"{n:,}"


# --- validation ------------------------------------------------------------------------------


def field_errors(form: FormValues) -> dict[str, str]:
    """One short message per field that is wrong; every field is checked on every change."""
    errors: dict[str, str] = {}
    if form.engine not in ENGINES:
        errors["engine"] = f"one of {', '.join(ENGINES)}"
    for q in split_list(form.quants):
        try:
            weight_format(q)
        except LanderError:
            errors["quants"] = f"unknown quant {q!r} (e.g. Q4_K_M, Q8_0, BF16, FP8, AWQ, NF4)"
            break
    for k in split_list(form.kv_types):
        try:
            kv_cache_type(k)
        except LanderError:
            errors["kv_types"] = f"unknown KV type {k!r} (e.g. f16, q8_0, q4_0, fp8)"
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


def _what_if(name: str) -> Any:
    from lander_tui.core.gpu import what_if

    if not name.strip():
        raise LanderError('type a GPU or instance, e.g. "RTX 4090", "2x A100 80GB", g5.12xlarge (w picks)')
    return what_if(name)


# --- GPUs ------------------------------------------------------------------------------------


def usable_gpus(snapshot: Any) -> list[Any]:
    """Real GPUs a plan can target right now: not lost, memory known."""
    if snapshot is None or not snapshot.ok:
        return []
    return [g for g in snapshot.gpus if not g.lost and not g.what_if and g.free_mib is not None
            and g.total_mib is not None]


def default_gpus(snapshot: Any) -> tuple[int, ...]:
    """The GPU with the most free memory (what you would pick by eye), or () when none."""
    gpus = usable_gpus(snapshot)
    if not gpus:
        return ()
    best = max(gpus, key=lambda g: (g.free_mib, -g.index))
    return (best.index,)


def gpu_choices(snapshot: Any) -> list[tuple[int, ...]]:
    """What `g` cycles through: each usable GPU, then all of each host's together (one machine is
    one host; GPUs of a Prometheus fleet are never pooled across hosts)."""
    usable = usable_gpus(snapshot)
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


def planning_memory(form: FormValues, snapshot: Any) -> PlanMemory:
    """The memory to plan for; raises LanderError (one line) when there is none."""
    if form.memory == "what-if":
        w = _what_if(form.what_if)
        total = float(sum(g.total_mib for g in w.gpus))
        devices = tuple((g.name, float(g.usable_mib), float(g.total_mib)) for g in w.gpus)
        detail = "catalog, usable" + (f", {len(w.gpus)} GPUs" if len(w.gpus) > 1 else "")
        label = w.label.removeprefix("1x ")
        return PlanMemory(float(w.usable_mib), total, f"what-if {label}", detail, ("what-if", w.label), devices)
    if snapshot is None:
        raise LanderError("waiting for the first GPU reading")
    if not snapshot.ok:
        raise LanderError(f"{snapshot.message} (press w to plan for a what-if GPU)")
    chosen = form.gpus or default_gpus(snapshot)
    if not chosen:
        raise LanderError("no GPU reports its memory right now; press w to plan for a what-if GPU")
    by_index = {g.index: g for g in snapshot.gpus}
    gpus = []
    for i in chosen:
        g = by_index.get(i)
        if g is None:
            raise LanderError(f"GPU {i} is gone; press g to pick another")
        if g.lost:
            raise LanderError(f"GPU {i} is lost ({g.note or 'fell off the bus'}); press g to pick another")
        if g.free_mib is None or g.total_mib is None:
            raise LanderError(f"GPU {i} does not report its memory; press g to pick another")
        gpus.append(g)
    names = "GPU " + "+".join(str(g.index) for g in gpus)
    total = sum(g.total_mib for g in gpus)
    if form.memory == "whole":
        usable = [g.total_mib - (g.reserved_mib or 0.0) for g in gpus]
        free = sum(usable)
        devices = tuple((f"{g.index}: {g.name}", u, g.total_mib) for g, u in zip(gpus, usable, strict=True))
        detail = "total - driver reserve"
        return PlanMemory(free, total, f"{names} whole", detail, ("whole", tuple(chosen)), devices, tuple(chosen))
    margin = parse_mib(form.margin)
    raw = sum(g.free_mib for g in gpus)
    per_gpu_margin = margin / len(gpus)
    devices = tuple((f"{g.index}: {g.name}", max(0.0, g.free_mib - per_gpu_margin), g.total_mib) for g in gpus)
    detail = f"{raw:,.0f} - {margin:,.0f} margin" if margin else f"{raw:,.0f} free"
    return PlanMemory(max(0.0, raw - margin), total, f"{names} free now", detail, ("free", tuple(chosen), margin),
                      devices, tuple(chosen))


def settle(previous: PlanMemory | None, new: PlanMemory, threshold: float = FREE_HYSTERESIS_MIB) -> PlanMemory:
    """Keep the previous memory while the same GPUs' free memory moved less than `threshold` MiB."""
    if previous is None or previous.key != new.key or previous.total_mib != new.total_mib:
        return new
    if abs(previous.free_mib - new.free_mib) < threshold:
        return previous
    return new


# --- the request -----------------------------------------------------------------------------


def options_of(form: FormValues) -> EngineOptions:
    flash = {"auto": None, "on": True, "off": False}.get(form.flash_attn)
    par = int(form.parallel) if form.parallel.strip().isdigit() else None
    return EngineOptions(flash_attn=flash, n_parallel=par)


def build_plan(form: FormValues, model: ResolvedModel | None, snapshot: Any,
               previous: PlanMemory | None = None) -> Plan:
    """Validate everything and build the one request the results show. Never raises."""
    errors = field_errors(form)
    memory: PlanMemory | None = None
    if "what_if" not in errors and "margin" not in errors:
        try:
            memory = settle(previous, planning_memory(form, snapshot))
        except LanderError as err:
            errors["memory"] = str(err)
    if model is None:
        errors["model"] = "pick a model: type to search, Enter to choose"
    notes: list[str] = []
    split = memory is not None and memory.count > 1 and form.engine in MULTI_GPU_ENGINES
    if memory is not None and memory.count > 1:
        notes.append(f"{memory.count} GPUs: each row is the whole plan across them (v shows the per-GPU split)"
                     if split else f"{memory.count} GPUs: Transformers spreads the layers with device_map='auto'; "
                     "the table plans on their summed memory")
    if errors or memory is None or model is None:
        return Plan(None, errors, memory, tuple(notes))
    try:
        req = EstimateRequest(
            model=model, backend=form.engine, quants=split_list(form.quants), kv_types=split_list(form.kv_types),
            free_mib=memory.free_mib, total_mib=memory.total_mib, context=parse_tokens(form.context),
            options=options_of(form), devices=tuple(memory.core_devices()) if split else (),
        )
    except LanderError as err:  # the core's own checks; should be covered above
        return Plan(None, {"memory": str(err)}, memory, tuple(notes))
    return Plan(req, {}, memory, tuple(notes))


# --- keyboard shortcuts as pure steps --------------------------------------------------------


def switch_engine(form: FormValues, engine: str, saved: dict[str, tuple[str, str]]) -> FormValues:
    """Change engine, remembering each engine's own quants/KV text (nothing typed is lost)."""
    saved[form.engine] = (form.quants, form.kv_types)
    quants, kvs = saved.get(engine, ("", ""))
    return replace(form, engine=engine, quants=quants, kv_types=kvs)


def next_engine(form: FormValues, saved: dict[str, tuple[str, str]]) -> FormValues:
    names = list(ENGINE_NAMES)
    pos = names.index(form.engine) + 1 if form.engine in names else 0
    return switch_engine(form, names[pos % len(names)], saved)


def next_kv(form: FormValues) -> FormValues:
    cycle = KV_CYCLE.get(form.engine, ("",))
    current = form.kv_types.strip().lower()
    pos = cycle.index(current) + 1 if current in cycle else 0
    return replace(form, kv_types=cycle[pos % len(cycle)])


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


def default_quants(engine: str) -> tuple[str, ...]:
    return DEFAULT_QUANTS.get(engine, ())


def default_kv(engine: str) -> tuple[str, ...]:
    return DEFAULT_KV.get(engine, ())

