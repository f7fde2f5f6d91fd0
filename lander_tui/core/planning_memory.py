"""The memory a plan is made on: which GPUs, how much of each, and where the numbers came from.

One place for the rules the CLI and the dashboard share: the freest GPU now, a whole GPU (total
minus the driver's reserve), free now less a safety margin, a what-if card from the catalog, or
numbers the user typed. No GPU at all: both plan on the same what-if card and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.model import Device

#: The card both front ends plan for when this machine shows no GPU.
NO_GPU_WHAT_IF = "RTX 4090"
#: Live free memory must move by at least this much before a plan follows it, and a shown headroom
#: before it is redrawn: a job's memory jitters by a few MiB every second and the screen should stay
#: calm (the GPU panel always shows the exact number).
HYSTERESIS_MIB = 64.0
#: What "free now" keeps aside by default, MiB.
DEFAULT_MARGIN_MIB = 512.0
#: What numbers typed by hand say instead of a speed.
NO_CARD = "speed unknown: memory was given as numbers; name the card with --gpu-model NAME"
#: Memory modes: (key, label, what it means).
MODES: tuple[tuple[str, str, str], ...] = (
    ("free", "free now", "each chosen GPU's free memory now, less the safety margin (re-checked every second)"),
    ("whole", "whole GPU", "each chosen GPU's total less the driver's reserve, as if nothing else ran on it"),
    ("what-if", "what-if", "a catalog GPU or cloud instance instead of this machine's GPUs"),
)


@dataclass(frozen=True)
class PlanningMemory:
    """The GPUs to plan on, with a label ("GPU 1 free now"), the arithmetic behind it ("26,821 - 512
    margin"), and `key`: what it is about (mode, GPUs, margin), under which the numbers may drift."""

    devices: tuple[Device, ...]
    label: str
    detail: str
    key: tuple[Any, ...]
    source: str = ""  # the one line `estimate` prints as `memory:`
    #: Per device of real GPUs, how the screen names it: "GPU 1" here, "gpu-a:3" on a fleet's host.
    gpu_labels: tuple[str, ...] = ()
    set_label: str = ""  # all of them: "GPU 0+1", "gpu-a:0+1"
    host: str = ""  # the machine the GPUs are in ("" = this one)
    host_gpus: tuple[int | None, ...] = ()  # their numbers there (for CUDA_VISIBLE_DEVICES)

    @property
    def mode(self) -> str:
        return str(self.key[0])

    @property
    def free_mib(self) -> float:
        return float(sum(d.free_mib for d in self.devices))

    @property
    def total_mib(self) -> float | None:
        totals = [d.total_mib for d in self.devices]
        return float(sum(t for t in totals if t)) if all(totals) else None

    @property
    def indices(self) -> tuple[int, ...]:
        """The real GPUs (nvidia-smi index) behind the devices; () for numbers or what-if cards."""
        return tuple(d.index for d in self.devices if d.index is not None)

    @property
    def live(self) -> bool:
        """Free memory of real GPUs right now: a plan made on it can be re-checked at every reading."""
        return self.mode == "free" and bool(self.indices)

    def merged(self) -> PlanningMemory:
        """All devices as one (for an engine that does not split across GPUs: their summed memory)."""
        if len(self.devices) < 2:
            return self
        cards = {d.card for d in self.devices}
        card = cards.pop() if len(cards) == 1 else None
        note = "" if card else next((d.card_note for d in self.devices if d.card_note),
                                    "speed unknown: the summed GPUs are different cards")
        one = Device(self.label, self.free_mib, self.total_mib, card=card, card_note=note)
        return PlanningMemory((one,), self.label, self.detail, self.key, self.source)

    def with_card(self, name: str) -> PlanningMemory:
        """Every device as the card `name` (`--gpu-model`): for numbers typed by hand, or a GPU the
        speed table does not know."""
        from lander_tui.core.gpu.specs import named_card

        card = named_card(name)
        devices = tuple(replace(d, card=card, card_note="") for d in self.devices)
        return replace(self, devices=devices)


def given(free_mib: Sequence[float]) -> PlanningMemory:
    """Free memory the user typed (`--free-vram A,B`), used as it is."""
    devices = tuple(Device(f"GPU{i}", float(v), card_note=NO_CARD) for i, v in enumerate(free_mib))
    text = " + ".join(f"{v:,.0f}" for v in free_mib)
    return PlanningMemory(devices, "given", f"{text} MiB given", ("given", tuple(free_mib)), "given")


def whole_numbers(total_mib: Sequence[float]) -> PlanningMemory:
    """Whole, empty GPUs of the sizes the user typed (`--total-vram A,B`)."""
    devices = tuple(Device(f"GPU{i}", float(v), float(v), card_note=NO_CARD) for i, v in enumerate(total_mib))
    text = " + ".join(f"{v:,.0f}" for v in total_mib)
    return PlanningMemory(devices, "whole GPU", f"{text} MiB total", ("whole-numbers", tuple(total_mib)),
                          "whole GPU")


def what_if(name: str) -> PlanningMemory:
    """A catalog GPU or cloud instance: its usable memory (total less the driver's reserve)."""
    from lander_tui.core.gpu import what_if as find
    from lander_tui.core.gpu.specs import catalog_card

    if not name.strip():
        raise LanderError('name a GPU or instance, e.g. "RTX 4090", "2x A100 80GB", g5.12xlarge')
    w = find(name)
    devices = tuple(Device(g.name, g.usable_mib, g.total_mib, None, *catalog_card(g.name)) for g in w.gpus)
    detail = "catalog, usable" + (f", {len(w.gpus)} GPUs" if len(w.gpus) > 1 else "")
    label = f"what-if {w.label.removeprefix('1x ')}"
    return PlanningMemory(devices, label, detail, ("what-if", w.label), f"what-if {w.label}")


def usable_gpus(snapshot: Any) -> list[Any]:
    """Real GPUs a plan can target right now: not lost, memory known."""
    if snapshot is None or not snapshot.ok:
        return []
    return [g for g in snapshot.gpus if not g.lost and not g.what_if and g.free_mib is not None
            and g.total_mib is not None]


def freest_gpu(snapshot: Any) -> tuple[int, ...]:
    """The GPU with the most free memory (what you would pick by eye), or () when none."""
    gpus = usable_gpus(snapshot)
    if not gpus:
        return ()
    best = max(gpus, key=lambda g: (g.free_mib, -g.index))
    return (best.index,)


def on_gpus(snapshot: Any, indices: Sequence[int], mode: str = "free",
            margin_mib: float = 0.0) -> PlanningMemory:
    """Real GPUs in this reading: free now less `margin_mib` (split over the GPUs), or whole."""
    if snapshot is None:
        raise LanderError("waiting for the first GPU reading")
    if not snapshot.ok:
        raise LanderError(snapshot.message, exit_code=1)
    if not indices:
        raise LanderError("no GPU reports its memory right now; plan for a what-if GPU instead", exit_code=1)
    by_index = {g.index: g for g in snapshot.gpus}
    gpus = []
    for i in indices:
        g = by_index.get(i)
        if g is None:
            have = ", ".join(str(x.index) for x in snapshot.gpus)
            raise LanderError(f"there is no GPU {i}; this machine has GPU {have} (see `lander-tui gpus`)",
                              exit_code=1)
        if g.lost:
            raise LanderError(f"{gpu_name(g)} ({g.name}) is lost ({g.note or 'fell off the bus'}); pick another",
                              exit_code=1)
        if g.free_mib is None or g.total_mib is None:
            why = "its host is stale" if g.stale else "it does not report its memory right now"
            raise LanderError(f"{gpu_name(g)} ({g.name}): {why}; pick another, or plan with a what-if GPU",
                              exit_code=1)
        gpus.append(g)
    hosts = sorted({g.host for g in gpus})
    if len(hosts) > 1:
        raise LanderError(f"GPUs of {len(hosts)} hosts ({', '.join(hosts)}) cannot hold one plan; pick GPUs of "
                          "one host", exit_code=1)
    names = set_name(gpus)
    where = {"gpu_labels": tuple(gpu_name(g) for g in gpus), "set_label": names, "host": gpus[0].host,
             "host_gpus": tuple(g.host_index for g in gpus) if gpus[0].host else ()}
    cards = [_card(g) for g in gpus]
    if mode == "whole":
        devices = tuple(Device(f"{_short(g)}: {g.name}", g.total_mib - (g.reserved_mib or 0.0), g.total_mib, g.index,
                               *card) for g, card in zip(gpus, cards, strict=True))
        return PlanningMemory(devices, f"{names} whole", "total - driver reserve", ("whole", tuple(indices)),
                              f"{names} whole", **where)
    problem = margin_problem(gpus, margin_mib)
    if problem:
        raise LanderError(problem)
    raw = sum(g.free_mib for g in gpus)
    share = margin_mib / len(gpus)
    devices = tuple(Device(f"{_short(g)}: {g.name}", max(0.0, g.free_mib - share), g.total_mib, g.index, *card)
                    for g, card in zip(gpus, cards, strict=True))
    detail = f"{raw:,.0f} - {margin_mib:,.0f} margin" if margin_mib else f"{raw:,.0f} free"
    source = f"{names} ({gpus[0].name}) free now" if len(gpus) == 1 else f"{names} free now"
    if margin_mib:
        source += f", less a {margin_mib:,.0f} MiB margin"
    return PlanningMemory(devices, f"{names} free now", detail, ("free", tuple(indices), margin_mib), source,
                          **where)


def _short(g: Any) -> str:
    """A GPU in a device name: its index here, `host:3` on a fleet's host."""
    return g.label if g.host else str(g.index)


def gpu_name(g: Any) -> str:
    """How a plan names one GPU: "GPU 3" on this machine, "gpu-a:3" on a fleet's host."""
    return g.label if g.host else f"GPU {g.index}"


def set_name(gpus: Sequence[Any]) -> str:
    """"GPU 0+1" here, "gpu-a:0+1" for GPUs of one fleet host (plans never span hosts)."""
    hosts = {g.host for g in gpus}
    if len(hosts) == 1 and gpus[0].host:
        return f"{gpus[0].host}:" + "+".join("?" if g.host_index is None else str(g.host_index) for g in gpus)
    return "GPU " + "+".join(_short(g) for g in gpus)


def _card(g: Any) -> tuple[Any, str]:
    """The speed facts of a live GPU: by its NVML name, else from NVML's clocks when reported."""
    from lander_tui.core.gpu.specs import live_card

    return live_card(g.name, g.total_mib, getattr(g, "mem_clock_mhz", None), getattr(g, "bus_width_bits", None),
                     getattr(g, "compute_capability", None), getattr(g, "sm_count", None) or 0,
                     getattr(g, "sm_clock_mhz", None) or 0.0)


def margin_problem(gpus: Sequence[Any], margin_mib: float) -> str:
    """Why a safety margin cannot be kept on these GPUs ("" when it can): one larger than the cards
    themselves is a typo, and one that takes all the free memory leaves nothing to plan on (every
    row would read "nothing fits" for a reason that is not the model's)."""
    if margin_mib <= 0 or not gpus:
        return ""
    names = set_name(gpus)
    total = sum(float(g.total_mib or 0.0) for g in gpus)
    if total and margin_mib >= total:
        return f"{margin_mib:,.0f} MiB is more than {names} holds ({total:,.0f} MiB)"
    free = sum(float(g.free_mib or 0.0) for g in gpus)
    if margin_mib >= free:
        return (f"{margin_mib:,.0f} MiB is all of the {free:,.0f} MiB free on {names} now; "
                f"keep less than {free:,.0f}")
    return ""


def default_memory(snapshot: Any, margin_mib: float = 0.0) -> PlanningMemory:
    """No memory named: the GPU with the most free memory now (less the margin), else the what-if card
    (and say so)."""
    best = freest_gpu(snapshot)
    if best:
        return on_gpus(snapshot, best, "free", margin_mib)
    w = what_if(NO_GPU_WHAT_IF)
    return PlanningMemory(w.devices, w.label, w.detail, w.key,
                          f"no GPU seen: {w.label} (use --free-vram, --gpu or --what-if)")


def settle(previous: PlanningMemory | None, new: PlanningMemory,
           threshold: float = HYSTERESIS_MIB) -> PlanningMemory:
    """Keep the previous memory while the same GPUs' free memory moved less than `threshold` MiB."""
    if previous is None or previous.key != new.key or previous.total_mib != new.total_mib:
        return new
    if abs(previous.free_mib - new.free_mib) < threshold:
        return previous
    return new
