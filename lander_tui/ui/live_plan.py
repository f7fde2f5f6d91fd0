"""The chosen plan (one results row on the GPUs the form targets), its launch command, and its
live check against the GPUs' free memory. No Textual here.

A plan is solved once, when what it is about changes (model, engine, row, GPUs, knobs), and then
kept: when another job grows, the plan that was shown (and maybe already copied and started) is
checked against the new free memory every second rather than quietly solved again. `r` re-plans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lander_tui.core.engines import get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.estimate import Estimate, EstimateRequest, plan_row
from lander_tui.core.plan import Plan
from lander_tui.core.planning_memory import HYSTERESIS_MIB, PlanningMemory


@dataclass(frozen=True)
class Need:
    """What must be free on some GPUs for the plan to load."""

    indices: tuple[int, ...]  # real GPUs (several for a Transformers device_map over summed memory)
    label: str  # "GPU 1"
    mib: float


@dataclass(frozen=True)
class ChosenPlan:
    key: tuple[Any, ...]  # (inputs, row): solved again only when this changes
    inputs: Any
    row: tuple[str, str]  # (quant, KV type) of the results row
    engine: str
    memory: PlanningMemory  # what it was solved on
    plan: Plan | None
    error: str = ""  # why there is no plan
    launch: str = ""
    needs: tuple[Need, ...] = ()
    host_available_mib: float | None = None
    row_max: int = 0  # the row's longest context on these GPUs
    model_max: int = 0  # the model's trained maximum (a plan without a target stops there)
    #: Per GPU index, pid -> MiB each process held when the plan was made (to say who grew).
    baseline: dict[int, dict[int, float]] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.plan is not None and self.memory.live and bool(self.needs)

    @property
    def cpu_layers(self) -> int:
        return 0 if self.plan is None else self.plan.cpu_layers


@dataclass(frozen=True)
class GpuHeadroom:
    label: str
    free_mib: float | None  # None: the GPU is gone or lost
    need_mib: float
    note: str = ""  # who took the memory, when it is short

    @property
    def headroom_mib(self) -> float:
        return -math.inf if self.free_mib is None else self.free_mib - self.need_mib

    @property
    def state(self) -> str:
        return "short" if self.free_mib is None or self.headroom_mib < 0 else "ok"


@dataclass(frozen=True)
class LiveCheck:
    gpus: tuple[GpuHeadroom, ...]

    @property
    def state(self) -> str:
        return "short" if any(g.state == "short" for g in self.gpus) else "ok"

    @property
    def loads(self) -> bool:
        return self.state != "short"


# --- solving ---------------------------------------------------------------------------------


def _needs(req: EstimateRequest, plan: Plan, memory: PlanningMemory) -> tuple[Need, ...]:
    """What must be free on each real GPU for the plan to start (as the engine starts)."""
    idx = memory.indices
    if not idx:
        return ()
    labels = memory.gpu_labels or tuple(f"GPU {i}" for i in idx)
    if len(plan.devices) != len(idx):  # an engine that does not split: one total, their summed free
        return (Need(idx, memory.set_label, plan.devices[0].total_mib),)
    engine = get_engine(plan.engine)
    return tuple(Need((i,), label, engine.startup_need_mib(share, device, plan))
                 for i, label, share, device in zip(idx, labels, plan.devices, memory.devices, strict=True))


def _baseline(snapshot: Any, indices: tuple[int, ...]) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {}
    if snapshot is None or not snapshot.ok:
        return out
    for g in snapshot.gpus:
        if g.index in indices:
            out[g.index] = {p.pid: float(p.used_mib or 0.0) for p in g.processes}
    return out


def choose(req: EstimateRequest, est: Estimate, memory: PlanningMemory, row: tuple[str, str], inputs: Any, *,
           snapshot: Any = None, host_available_mib: float | None = None) -> ChosenPlan:
    """Solve the plan for one row (the same call `lander-tui estimate` makes) and its launch command."""
    try:
        row_max = est.row(*row).max_context
    except LanderError:
        row_max = 0
    base = {"key": (inputs, row), "inputs": inputs, "row": row, "engine": est.engine, "memory": memory,
            "row_max": row_max, "model_max": req.model.spec.max_context}
    try:
        plan = plan_row(req, est, row[0], row[1])
    except LanderError as err:
        return ChosenPlan(plan=None, error=str(err), **base)
    if plan is None:
        return ChosenPlan(plan=None, error=f"{row[0]} + KV {row[1]} loads nowhere here: nothing to launch", **base)
    try:
        launch = get_engine(est.engine).command(req.model, plan, req.options)
        if memory.host:  # a fleet host's GPUs: say where, and which of its GPUs
            from lander_tui.core.fit import on_host

            launch = on_host(launch, memory.host, memory.host_gpus)
    except LanderError as err:
        launch = f"# (no launch command: {err})"
    host = host_available_mib
    if host is None and plan.host_mib and not plan.fully_offloaded:
        from lander_tui.core.report import host_available_mib as read_host

        host = read_host()
    return ChosenPlan(plan=plan, launch=launch, needs=_needs(req, plan, memory), host_available_mib=host,
                      baseline=_baseline(snapshot, memory.indices) if memory.live else {}, **base)


# --- the live check --------------------------------------------------------------------------


def _who_grew(chosen: ChosenPlan, gpu: Any) -> str:
    before = chosen.baseline.get(gpu.index, {})
    grown = [(float(p.used_mib or 0.0) - before.get(p.pid, 0.0), p) for p in gpu.processes]
    grown = [(d, p) for d, p in grown if d > 0]
    if not grown:
        return "free memory dropped"
    delta, p = max(grown, key=lambda x: x[0])
    who = " ".join(x for x in (p.user, (p.command or "").split(" ")[0].rsplit("/", 1)[-1]) if x)
    what = f"pid {p.pid}" + (f" ({who})" if who else "")
    if p.pid not in before:
        return f"a new job, {what}, took {delta:,.0f} MiB"
    return f"a job grew: {what} +{delta:,.0f} MiB"


def check(chosen: ChosenPlan, snapshot: Any) -> LiveCheck | None:
    """The plan's needs against the GPUs' free memory in this reading (no solving: a few subtractions)."""
    if not chosen.live or snapshot is None:
        return None
    by_index = {g.index: g for g in snapshot.gpus} if snapshot.ok else {}
    out = []
    for need in chosen.needs:
        gpus = [by_index.get(i) for i in need.indices]
        if any(g is None or g.lost or g.free_mib is None for g in gpus):
            out.append(GpuHeadroom(need.label, None, need.mib, "the GPU is gone"))
            continue
        free = sum(g.free_mib for g in gpus if g is not None)
        note = ""
        if free < need.mib:
            note = "; ".join(_who_grew(chosen, g) for g in gpus if g is not None)
        out.append(GpuHeadroom(need.label, free, need.mib, note))
    return LiveCheck(tuple(out))


def settle(shown: LiveCheck | None, new: LiveCheck | None, threshold: float = HYSTERESIS_MIB) -> LiveCheck | None:
    """Keep what is shown while every GPU's state is unchanged and its headroom moved less than
    `threshold` MiB; a GPU falling short (or fitting again) always shows at once."""
    if shown is None or new is None or len(shown.gpus) != len(new.gpus):
        return new
    for a, b in zip(shown.gpus, new.gpus, strict=True):
        if a.state != b.state or a.label != b.label:
            return new
        if a.free_mib is not None and b.free_mib is not None and abs(a.headroom_mib - b.headroom_mib) >= threshold:
            return new
    return shown


# --- export ----------------------------------------------------------------------------------


def export_data(req: EstimateRequest, est: Estimate, chosen: ChosenPlan | None,
                live: LiveCheck | None) -> dict[str, Any]:
    """The estimate's JSON with the chosen plan, its launch command and the live headroom added."""
    data = est.as_json()
    if chosen is None:
        return data
    mem = chosen.memory
    data["planned_on"] = {"label": mem.label, "detail": mem.detail, "gpus": list(mem.indices),
                          "free_mib": round(mem.free_mib, 2)}
    if mem.host:  # a fleet host's GPUs: which machine, and their numbers there
        data["planned_on"].update(host=mem.host, host_gpus=list(mem.host_gpus))
    if chosen.plan is not None:
        data["plan"] = chosen.plan.as_json()
        if chosen.host_available_mib is not None:
            data["plan"]["host_available_mib"] = round(chosen.host_available_mib, 2)
        data["launch"] = chosen.launch
    else:
        data["plan_error"] = chosen.error
    if live is not None:
        data["live"] = {"loads": live.loads, "gpus": [
            {"gpu": g.label, "free_mib": g.free_mib, "needs_mib": round(g.need_mib, 2),
             "headroom_mib": None if g.free_mib is None else round(g.headroom_mib, 2)} for g in live.gpus]}
    return data


def md_trailer(data: dict[str, Any], when: datetime) -> str:
    """Where the plan was made and, for live GPUs, how it stood against the free memory at export."""
    where = data.get("planned_on")
    if not where:
        return ""
    out = ["", f"Planned on {where['label']} ({where['detail']}), exported {when:%Y-%m-%d %H:%M:%S}."]
    live = data.get("live")
    if live:
        rooms = ", ".join(f"{g['gpu']} {g['headroom_mib']:,.0f} MiB" if g["headroom_mib"] is not None
                          else f"{g['gpu']} gone" for g in live["gpus"])
        verdict = "loads" if live["loads"] else "does NOT load"
        out.append(f"Against the free memory then: it {verdict}; headroom {rooms}.")
    return "\n".join(out) + "\n"


def export_path(model: str, fmt: str, when: datetime, cwd: Path, fallback: Path) -> Path:
    """`lander-plan-<model>-<time>.<fmt>` in `cwd` when it is writable, else in `fallback`."""
    import os
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    name = f"lander-plan-{slug}-{when.strftime('%Y%m%d-%H%M%S')}.{fmt}"
    folder = cwd if os.access(cwd, os.W_OK) else fallback
    return folder / name
