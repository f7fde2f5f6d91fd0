"""The chosen plan as plain text: the Plan view's lines, the status line, and the clipboard (`c`).
No Textual here."""

from __future__ import annotations

from lander_tui.core.engines import get_engine
from lander_tui.core.estimate import Estimate, EstimateRequest
from lander_tui.core.memory import PARTS
from lander_tui.core.report import seconds_text, tps_text
from lander_tui.core.speed import speed_unknown
from lander_tui.ui.live_plan import ChosenPlan, LiveCheck
from lander_tui.ui.text import gib, short_tokens


def _labels(chosen: ChosenPlan) -> list[str]:
    """A short name per planned device: "GPU 1" for real GPUs, "#0" for what-if ones."""
    n = len(chosen.plan.devices) if chosen.plan is not None else 0
    idx = chosen.memory.indices
    labels = chosen.memory.gpu_labels or tuple(f"GPU {i}" for i in idx)  # "gpu-a:3" on a fleet's host
    if idx and len(idx) == n:
        return list(labels)
    if idx:
        return [chosen.memory.set_label] * n
    return [f"#{i}" for i in range(n)] if n > 1 else ["GPU"] * n


def headline(chosen: ChosenPlan, recommended: bool) -> str:
    """Which row, at what context, and how much of the model is on the GPUs."""
    quant, kv = chosen.row
    star = "★ " if recommended else ""
    p = chosen.plan
    if p is None:
        return f"{star}{quant} + KV {kv}: no plan"
    where = f"on {chosen.memory.label} ({chosen.memory.free_mib:,.0f} MiB)"
    return f"{star}{quant} + KV {kv} at {p.context:,} tokens{trained_note(chosen)} {where}"


def trained_note(chosen: ChosenPlan) -> str:
    """The plan's context against the model's trained maximum: capped there (the row could hold
    more), or past it (a target the user set)."""
    p = chosen.plan
    if p is None or not chosen.model_max:
        return ""
    if p.context > chosen.model_max:
        return f" (past the trained {chosen.model_max:,}: quality may drop, vLLM refuses it)"
    if p.context == chosen.model_max and chosen.row_max > chosen.model_max:
        return f" (capped at the trained maximum; this row holds {chosen.row_max:,})"
    return ""


def offload_line(chosen: ChosenPlan) -> str:
    """Layers on the GPU, Ollama's CPU/GPU split, and a plain warning when part runs on the CPU."""
    p = chosen.plan
    if p is None:
        return f"✗ {chosen.error}"
    layers = f"{min(p.gpu_layers, p.n_layers + 1)}/{p.n_layers + 1} layers on GPU"
    if p.tensor_parallel > 1:
        layers = f"tensor parallel {p.tensor_parallel} (every layer split across the GPUs)"
    split = p.cpu_gpu_split()
    if p.fully_offloaded:
        return f"{layers} · {split}" + ("" if p.fits else " · does NOT fit")
    if p.cpu_moe:
        what = f"the experts of {p.cpu_moe} layers stay on the CPU (--n-cpu-moe {p.cpu_moe})"
    else:
        what = f"{chosen.cpu_layers} of {p.n_layers + 1} layers run on the CPU (-ngl {p.gpu_layers})"
    return f"⚠ partial offload, {split}: {what}"


def table_lines(chosen: ChosenPlan, live: LiveCheck | None) -> tuple[list[str], list[bool]]:
    """Header + one line per GPU (sizes in GiB, headroom in MiB), and which lines are short."""
    p = chosen.plan
    if p is None:
        return [], []
    labels = _labels(chosen)
    headroom_head = "headroom now" if live is not None else "headroom"
    head = ("", "layers", *(p.label.replace(" cache", "") for p in PARTS), "total", headroom_head)
    rows: list[tuple[str, ...]] = []
    short: list[bool] = [False]
    by_label = {g.label: g for g in live.gpus} if live is not None else {}
    for label, d in zip(labels, p.devices, strict=True):
        if d.layers is not None:
            layers = f"{d.layers[0]}-{d.layers[1]}" + (" +out" if d.has_output else "")
        elif d.has_output and p.gpu_layers > p.n_layers and not d.layers:
            layers = "all (TP)" if p.tensor_parallel > 1 else "all"
        else:
            layers = "output" if d.has_output else "none"
        g = by_label.get(label)
        if g is not None:
            room = "GPU gone" if g.free_mib is None else f"{g.headroom_mib:,.0f} MiB"
            short.append(g.state == "short")
        else:
            room = f"{d.headroom_mib:,.0f} MiB"
            short.append(not d.fits)
        rows.append((label, layers, *(gib(getattr(d.memory, p.attr), 2) for p in PARTS), gib(d.total_mib, 2), room))
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = []
    for r in (head, *rows):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [c.rjust(w) for c, w in zip(r[2:], widths[2:],
                                                                                             strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines, short


def host_line(chosen: ChosenPlan) -> str:
    """Host RAM the CPU part needs, against what psutil says is available (only when offloading)."""
    p = chosen.plan
    if p is None or p.fully_offloaded or not p.host_mib:
        return ""
    avail = chosen.host_available_mib
    text = f"host RAM: {gib(p.host_mib)} GiB needed for the CPU part"
    if avail is not None:
        text += f", {gib(avail)} GiB available now" + ("" if p.host_mib <= avail else " — NOT ENOUGH")
    return text


def speed_text(chosen: ChosenPlan) -> str:
    """How fast the plan runs: decode at its context and what bounds it, prefill and time to the first
    token for a prompt that long, what one more offload step costs; or why the speed is unknown."""
    p = chosen.plan
    if p is None:
        return ""
    s = p.speed
    if s is None:
        label = get_engine(chosen.engine).label
        return speed_unknown(chosen.memory.devices) or f"speed unknown: {label} has no speed model"
    pad = " " * len("speed: ")
    # decode and prefill are both at the plan's context (a prompt that long): one line of numbers, then
    # what bounds decode on its own line, so neither wraps in the 76-column Plan view
    lines = [f"speed: decode {tps_text(s.decode_tps)} tok/s at {short_tokens(s.context)} · prefill "
             f"{tps_text(s.prefill_tps)} tok/s · TTFT {seconds_text(s.ttft_s)}", f"{pad}{s.bound}"]
    if s.offload_step_cost is not None:
        after = max(0.0, s.decode_tps - s.offload_step_cost)
        lines.append(f"{pad}one more step on the CPU ({s.offload_step}): decode {tps_text(s.decode_tps)} -> "
                     f"{tps_text(after)} tok/s")
    if s.aggregate_tps is not None:
        lines.append(f"{pad}all requests together: {tps_text(s.aggregate_tps)} tok/s")
    lines += [f"{pad}{n}" for n in s.notes]
    return "\n".join(lines)


def notes_text(chosen: ChosenPlan) -> str:
    p = chosen.plan
    return "\n".join(f"note: {n}" for n in (p.notes if p is not None else ()))


def launch_title(chosen: ChosenPlan) -> str:
    engine = get_engine(chosen.engine)
    return f"Run it ({engine.command_name or engine.label}) · c copies the plan with it · e exports"


def status(chosen: ChosenPlan | None, live: LiveCheck | None) -> tuple[str, str]:
    """One line for the results panel, and its level: "ok", "short" or "off"."""
    if chosen is None:
        return "", "off"
    quant, kv = chosen.row
    p = chosen.plan
    if p is None:
        return f"✗ no plan for {quant} + KV {kv}: {chosen.error}", "short"
    what = f"plan {quant}/{kv} @ {p.context:,}"
    host_short = False
    if not p.fully_offloaded:
        # part of it runs on the CPU: say so on this line, and whether the host RAM holds that part
        avail = chosen.host_available_mib
        host_short = avail is not None and p.host_mib > avail
        ram = "" if avail is None else (" · host RAM NOT ENOUGH" if host_short else " · host RAM enough")
        what += f" ⚠ spills to the CPU ({p.cpu_gpu_split()}){ram}"
    if host_short:
        return f"✗ {what}: needs {p.host_mib / 1024:.1f} GiB, {chosen.host_available_mib / 1024:.1f} free", "short"
    if live is None:
        mode = chosen.memory.key[0]
        if mode == "what-if":
            return f"▶ {what} · what-if GPUs: nothing live to check", "off"
        return f"▶ {what} · whole GPUs: not checked against what is free now", "off"
    rooms = ", ".join(f"{g.label} {g.headroom_mib:,.0f}" for g in live.gpus if g.free_mib is not None)
    if live.state == "short":
        bad = next(g for g in live.gpus if g.state == "short")
        if bad.free_mib is None:
            return f"✗ {what} no longer loads: {bad.label} is gone · r re-plans", "short"
        why = f" — {bad.note}" if bad.note else ""
        return (f"✗ {what} no longer loads: {bad.label} short by {-bad.headroom_mib:,.0f} MiB{why} · "
                "r re-plans on what is free now"), "short"
    return f"✓ {what} loads · headroom {rooms} MiB", "ok"


def plan_text(req: EstimateRequest, est: Estimate, chosen: ChosenPlan | None) -> str:
    """For the clipboard: what `lander-tui estimate` prints for the same inputs, the chosen plan
    (split, offload, host RAM) and the command that runs it."""
    from lander_tui.core.report import format_plain, format_plan

    memory = chosen.memory if chosen is not None else None
    head = f"{memory.label} ({memory.detail}), " if memory is not None else ""
    lines = [f"# lander-tui plan: {head}engine {est.engine}"]
    opts = []
    if req.context:
        opts.append(f"target context {req.context:,}")
    if req.options.n_parallel:
        opts.append(f"parallel {req.options.n_parallel}")
    if req.options.flash_attn is not None:
        opts.append(f"flash attention {'on' if req.options.flash_attn else 'off'}")
    if opts:
        lines.append("# " + ", ".join(opts))
    lines.append(format_plain(est))
    if chosen is not None and chosen.plan is not None:
        lines.append(format_plan(chosen.plan, chosen.host_available_mib))
        if chosen.launch:
            lines += ["# run it:", chosen.launch]
    elif chosen is not None:
        lines.append(f"# no plan: {chosen.error}")
    return "\n".join(lines) + "\n"
