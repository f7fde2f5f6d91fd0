"""Where does it fit? The hosts and GPU sets that can load one configuration now, best first.

For a model, engine, quant, KV type and context, every host of a snapshot (a Prometheus fleet, or
this machine as one host) is offered as GPU sets of the sizes the engine takes (`Engine.set_sizes`:
any count for a llama.cpp layer split, powers of two for vLLM/SGLang tensor parallel), each the
host's GPUs with the most free memory now. Sets never span hosts. All sets of one size go to the
engine at once (`Engine.fit_sets`), which computes what does not depend on the set once and shares
it (one layer placement for every single GPU, one TP rank per card), so a 4,000-GPU fleet takes
milliseconds. Each host is offered with its fewest GPUs that load it (the rest stay free for other
jobs); hosts are ranked by that count, then by headroom: what is left within the engine's budget on
the set's fullest GPU. The best set is then planned the way `estimate` plans (`run_estimate`,
`plan_row`), and its launch command names the host and carries the GPUs' numbers there in
`CUDA_VISIBLE_DEVICES`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lander_tui.core import planning_memory as pm
from lander_tui.core.engines import EngineOptions, get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.estimate import EstimateRequest, plan_row, run_estimate
from lander_tui.core.gpu.fleet import group_by_host, natural_key
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.plan import Plan

#: How `CUDA_VISIBLE_DEVICES` numbers are read: CUDA enumerates the fastest GPU first unless told
#: `CUDA_DEVICE_ORDER=PCI_BUS_ID` (CUDA C Programming Guide, "CUDA Environment Variables"); the
#: exporters' GPU numbers are nvidia-smi's, which are PCI bus order. Both together name the GPUs meant.
CUDA_ORDER = "CUDA_DEVICE_ORDER=PCI_BUS_ID"
THIS_MACHINE = "this machine"


@dataclass(frozen=True)
class FitRequest:
    """One configuration to place: a row of the results table at a target context."""

    model: ResolvedModel
    engine: str
    quant: str
    kv: str
    context: int
    options: EngineOptions = field(default_factory=EngineOptions)
    margin_mib: float = 0.0  # kept free on each set, split over its GPUs (as "free now" plans)

    def __post_init__(self) -> None:
        if self.context <= 0:
            raise LanderError("the context must be a positive number of tokens")
        if self.margin_mib < 0:
            raise LanderError("the margin must be 0 or more MiB")


@dataclass(frozen=True)
class GpuSet:
    """Some GPUs of one host and how this configuration sits on them (MiB)."""

    host: str
    indices: tuple[int, ...]  # snapshot indices, host order (what the dashboard selects by)
    host_gpus: tuple[int | None, ...]  # the GPUs' numbers on their host (nvidia-smi / exporter `gpu`)
    models: str  # "2 x H100 80GB HBM3"
    free_mib: float  # free on these GPUs now, before the margin
    need_mib: float  # what the configuration holds on them, summed
    headroom_mib: float  # budget - need on the fullest GPU (< 0: short by that much)
    host_gpu_count: int  # usable GPUs the host has

    @property
    def fits(self) -> bool:
        return self.headroom_mib >= 0

    @property
    def size(self) -> int:
        return len(self.indices)

    @property
    def gpus_text(self) -> str:
        """`0,3` (the GPUs' numbers on their host)."""
        return ",".join("?" if i is None else str(i) for i in self.host_gpus)

    @property
    def host_name(self) -> str:
        return self.host or THIS_MACHINE

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host_name, "gpus": list(self.host_gpus), "gpu_index": list(self.indices),
                "models": self.models, "free_mib": round(self.free_mib, 1), "needs_mib": round(self.need_mib, 1),
                "headroom_mib": round(self.headroom_mib, 1), "fits": self.fits}


@dataclass(frozen=True)
class BestPlan:
    """The first-ranked set, planned as `estimate` plans it, and the command that runs it there."""

    gpus: GpuSet
    memory: pm.PlanningMemory
    plan: Plan
    launch: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FitAnswer:
    request: FitRequest
    engine_label: str
    ranked: tuple[GpuSet, ...]  # one per host that loads it: its fewest GPUs, best first
    short: tuple[GpuSet, ...]  # one per host that cannot: its closest set, least short first
    skipped: tuple[str, ...]  # hosts with no usable GPU now (stale, lost, memory not reported)
    hosts: int
    gpus: int
    best: BestPlan | None = None

    @property
    def summary(self) -> str:
        """One line: where it fits and where it does not."""
        req = self.request
        what = f"{req.model.spec.name} {req.quant} + KV {req.kv} at {req.context:,} tokens ({self.engine_label})"
        hosts = f"{self.hosts:,} host" + ("" if self.hosts == 1 else "s")
        loads = f"loads on {len(self.ranked):,} of {hosts}" if self.ranked else f"loads on none of {hosts} now"
        extra = f", {len(self.skipped)} not reporting" if self.skipped else ""
        return f"{what}: {loads}{extra}"

    def as_json(self) -> dict[str, Any]:
        req = self.request
        out: dict[str, Any] = {
            "model": req.model.spec.name, "backend": req.engine, "quant": req.quant, "kv_cache": req.kv,
            "context": req.context, "margin_mib": req.margin_mib, "hosts": self.hosts, "gpus": self.gpus,
            "fits": [s.as_json() for s in self.ranked], "cannot": [s.as_json() for s in self.short],
            "not_reporting": list(self.skipped), "summary": self.summary,
        }
        if self.best is not None:
            out["best"] = {"host": self.best.gpus.host_name, "gpus": list(self.best.gpus.host_gpus),
                           "memory_source": self.best.memory.source, "plan": self.best.plan.as_json(),
                           "launch": self.best.launch, "notes": list(self.best.notes)}
        return out


def _usable(g: Any) -> bool:
    return not g.lost and not g.stale and not g.what_if and g.free_mib is not None and g.total_mib is not None


def _models(gpus: Sequence[Any]) -> str:
    names: dict[str, int] = {}
    for g in gpus:
        name = g.name.removeprefix("NVIDIA ")
        names[name] = names.get(name, 0) + 1
    return " + ".join(f"{n} x {name}" for name, n in names.items())


def where_it_fits(req: FitRequest, snapshot: Any, plan_best: bool = True) -> FitAnswer:
    """Every host's best set for `req` in this reading, ranked (see the module docstring). Raises a
    one-line LanderError for a reading with no GPUs or a configuration the engine refuses."""
    engine = get_engine(req.engine)
    engine.check_quant(req.quant)
    engine.check_kv(req.kv)
    if snapshot is None:
        raise LanderError("waiting for the first GPU reading")
    if not snapshot.ok:
        raise LanderError(snapshot.message)
    groups = group_by_host(snapshot)
    skipped: list[str] = []
    hosts: list[_Host] = []
    sizes_of: dict[int, tuple[int, ...]] = {}
    for h in groups:
        usable = [g for g in h.gpus if _usable(g)]
        if not usable:
            skipped.append(h.host or THIS_MACHINE)
            continue
        n = len(usable)
        if n not in sizes_of:
            sizes_of[n] = engine.set_sizes(req.model, n)
        hosts.append(_Host(h.host, usable, sizes_of[n]))
    found: dict[int, GpuSet] = {}  # host position -> its fewest-GPU set that loads
    closest: dict[int, tuple[float, int, tuple[Any, ...], float, float]] = {}  # while none loads
    for k in sorted({k for sizes in sizes_of.values() for k in sizes}):
        todo = [i for i, h in enumerate(hosts) if k in h.sizes and i not in found]  # a host that loads stops
        if not todo:
            continue
        sets = [hosts[i].top(k) for i in todo]
        free_now, need, headroom = _evaluate(req, engine, sets)
        for row, i in enumerate(todo):
            room = float(headroom[row])
            if room >= 0:
                found[i] = hosts[i].gpu_set(sets[row], float(free_now[row]), float(need[row]), room)
            elif i not in closest or room > closest[i][0]:
                closest[i] = (room, k, sets[row], float(free_now[row]), float(need[row]))
    ranked = sorted(found.values(), key=lambda s: (s.size, -s.headroom_mib, natural_key(s.host)))
    short = sorted((hosts[i].gpu_set(gpus, free, need, room) for i, (room, _, gpus, free, need) in closest.items()
                    if i not in found), key=lambda s: (-s.headroom_mib, natural_key(s.host)))
    answer = FitAnswer(req, engine.label, tuple(ranked), tuple(short), tuple(skipped), len(groups),
                       len(snapshot.gpus))
    if plan_best and ranked:
        answer = replace(answer, best=plan_on(req, snapshot, ranked[0]))
    return answer


class _Host:
    """One host's usable GPUs, freest first, and the set sizes the engine takes there."""

    def __init__(self, host: str, usable: list[Any], sizes: tuple[int, ...]) -> None:
        self.host, self.sizes = host, sizes
        self.position = {g.index: i for i, g in enumerate(usable)}
        self.by_free = sorted(usable, key=lambda g: (-(g.free_mib or 0.0), self.position[g.index]))

    def top(self, k: int) -> tuple[Any, ...]:
        """The `k` freest GPUs, in host order (the order a plan on them lists, and splits, them)."""
        return tuple(sorted(self.by_free[:k], key=lambda g: self.position[g.index]))

    def gpu_set(self, gpus: tuple[Any, ...], free: float, need: float, headroom: float) -> GpuSet:
        numbers = tuple(g.host_index if g.host else g.index for g in gpus)  # this machine: nvidia-smi's index
        return GpuSet(self.host, tuple(g.index for g in gpus), numbers, _models(gpus),
                      free, need, headroom, len(self.by_free))


def _evaluate(req: FitRequest, engine: Any, sets: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sets of `k` GPUs at once (the engine's `fit_sets`): per set its free memory now, what the
    configuration holds on it, and the headroom of its fullest GPU (MiB). Each GPU is planned as
    `planning_memory.on_gpus` plans it: free now less the margin split over the set's GPUs."""
    k = len(sets[0])
    share = req.margin_mib / k
    devices = [tuple(Device(g.name, max(0.0, g.free_mib - share), g.total_mib, g.index) for g in gpus)
               for gpus in sets]
    if not engine.splits_across_gpus:  # one device of their summed memory (PlanningMemory.merged)
        devices = [(Device(ds[0].name, sum(d.free_mib for d in ds), sum(d.total_mib or 0.0 for d in ds)),)
                   for ds in devices]
    need, budget = engine.fit_sets(req.model, req.quant, req.kv, req.context, devices, req.options)
    raw = np.array([sum(g.free_mib for g in gpus) for gpus in sets], dtype=np.float64)
    return raw, need.sum(axis=1), (budget - need).min(axis=1)


def plan_on(req: FitRequest, snapshot: Any, gpus: GpuSet) -> BestPlan:
    """The set planned the way `estimate --gpu` plans it, and its command for that host."""
    engine = get_engine(req.engine)
    memory = pm.on_gpus(snapshot, gpus.indices, "free", req.margin_mib)
    notes: list[str] = []
    if len(memory.devices) > 1 and not engine.splits_across_gpus:
        memory = memory.merged()
        notes.append(f"{gpus.size} GPUs: {engine.label} spreads the layers with device_map='auto'; "
                     "planned on their summed memory")
    est_req = EstimateRequest(req.model, engine.name, (req.quant,), (req.kv,), memory.devices, req.context,
                              req.options)
    est = run_estimate(est_req)
    row = est.results[0]
    if row.error:
        raise LanderError(row.error)
    plan = plan_row(est_req, est, row.quant, row.kv_cache)
    if plan is None:  # not reachable for a set that fits; said plainly rather than asserted
        raise LanderError(f"{est.recommendation.reason}, so there is no command to print")
    launch = on_host(engine.command(req.model, plan, req.options), gpus.host, gpus.host_gpus)
    return BestPlan(gpus, memory, plan, launch, (*est.notes, *notes, *plan.notes))


def on_host(command: str, host: str, host_gpus: Sequence[int | None]) -> str:
    """The command as run on `host` with only these GPUs visible: a `# on HOST` line, and
    `CUDA_VISIBLE_DEVICES` (numbers in PCI order) before the first line that is not a comment."""
    if any(i is None for i in host_gpus):
        raise LanderError(f"the exporter on {host or THIS_MACHINE} gives no GPU numbers; "
                          "set CUDA_VISIBLE_DEVICES by hand")
    visible = f"{CUDA_ORDER} CUDA_VISIBLE_DEVICES={shlex.quote(','.join(str(i) for i in host_gpus))} "
    lines = command.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if first is not None:
        lines[first] = visible + lines[first]
    head = f"# on {host}" if host else f"# on {THIS_MACHINE}"
    return "\n".join([head, *lines])
