"""An estimate and a plan as plain text: what `lander-tui estimate` prints and the dashboard copies."""

from __future__ import annotations

from lander_tui.core.estimate import Estimate
from lander_tui.core.memory import EXTRAS, PARTS
from lander_tui.core.plan import Plan
from lander_tui.core.speed import SpeedEstimate


def params_text(n: int) -> str:
    """8.03B, 0.50B, 2.1M: the size a person reads (not 0.00B for a small test model)."""
    if n >= 999.5e6:
        return f"{n / 1e9:.2f}B"
    if n >= 999.5e3:
        return f"{n / 1e6:.1f}M"
    return f"{n:,}"


def host_available_mib() -> float:
    """Host RAM available now (psutil), MiB."""
    import psutil

    return float(psutil.virtual_memory().available) / 2**20


def tps_text(tps: float | None) -> str:
    """Tokens per second as a table shows them: "83", "7.4", "1,564"; "?" when unknown."""
    if tps is None:
        return "?"
    if tps < 1:
        return f"{tps:.2f}"
    return f"{tps:.1f}" if tps < 10 else f"{tps:,.0f}"


def seconds_text(s: float) -> str:
    """A wait: "0.26 s", "5.5 s", "48 s", "3.2 min"."""
    if s < 1:
        return f"{s:.2f} s"
    if s < 10:
        return f"{s:.1f} s"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def speed_line(speed: SpeedEstimate) -> str:
    """Decode at the context with what bounds it, prefill of a prompt that long, time to first token."""
    return (f"decode {tps_text(speed.decode_tps)} tok/s at {speed.context:,} tokens ({speed.bound}) · "
            f"prefill {tps_text(speed.prefill_tps)} tok/s · first token after {seconds_text(speed.ttft_s)} "
            f"({speed.prompt:,}-token prompt)")


def offload_step_line(speed: SpeedEstimate) -> str:
    """What one more offload step costs in decode speed ("" when the engine has none)."""
    if speed.offload_step_cost is None:
        return ""
    after = max(0.0, speed.decode_tps - speed.offload_step_cost)
    return (f"one more step on the CPU ({speed.offload_step}): decode {tps_text(speed.decode_tps)} -> "
            f"{tps_text(after)} tok/s (-{tps_text(speed.offload_step_cost)})")


def loads_with_cpu_part(plan: Plan, host_available: float) -> bool:
    """Loads with some layers on the GPU and the rest in host RAM that is there now: an answer even
    when nothing fits on the GPU alone (a model that spills past the host RAM swaps or dies)."""
    return plan.fits and not plan.fully_offloaded and plan.gpu_layers > 0 and plan.host_mib <= host_available


def loads_text(plan: Plan, host_available: float) -> str:
    """Whether the plan loads, in words: on the GPUs alone, with part on the CPU, or not (and why)."""
    if not plan.fits:
        return "NO"
    if plan.fully_offloaded:
        return "yes"
    if loads_with_cpu_part(plan, host_available):
        return "yes, part on the CPU (slower)"
    if plan.host_mib > host_available:
        return "NO (not enough host RAM for the part on the CPU)"
    return "only on the CPU (no layer fits on the GPU)"


def format_plan(plan: Plan, host_available: float | None = None) -> str:
    """The plan as `lander-tui estimate` prints it: one line per GPU, host RAM, notes."""
    avail = (host_available_mib() if host_available is None else host_available) if plan.host_mib else 0.0
    lines = [f"plan: {plan.quant} kv {plan.kv_cache} at {plan.context} tokens, "
             f"{plan.gpu_layers}/{plan.n_layers + 1} layers on GPU ({plan.cpu_gpu_split()}), "
             f"loads: {loads_text(plan, avail)}"]
    for d in plan.devices:
        if d.layers:
            layers = f"layers {d.layers[0]}-{d.layers[1]}"
        elif plan.tensor_parallel > 1:
            layers = "all layers (TP rank)"
        else:
            # one GPU holding a whole model has no layer range; in a split, a GPU without one is idle
            layers = "all layers" if plan.fully_offloaded and len(plan.devices) == 1 else "no layers"
        parts = " + ".join(f"{p.short} {getattr(d.memory, p.attr):.0f}" for p in PARTS)
        lines.append(f"  {d.name}: {layers}{' +output' if d.has_output else ''}: {parts} "
                     f"= {d.total_mib:.0f} of {d.budget_mib:.0f} MiB")
    if plan.host_mib:
        lines.append(f"  host RAM: {plan.host_mib:.0f} MiB needed, {avail:.0f} MiB available now"
                     + ("" if plan.host_mib <= avail else " (NOT ENOUGH)"))
    if plan.speed is not None:
        lines.append(f"  speed: {speed_line(plan.speed)}")
        step = offload_step_line(plan.speed)
        if step:
            lines.append(f"  {step}")
        lines += [f"  speed note: {n}" for n in plan.speed.notes]
    lines += [f"  note: {n}" for n in plan.notes]
    return "\n".join(lines)


def format_plain(est: Estimate, extra_notes: list[str] | tuple[str, ...] = ()) -> str:
    """The estimate in LLM-Lander's plain format (what `lander-tui estimate` prints)."""
    quants = ",".join(dict.fromkeys(r.quant for r in est.results))
    lines = [f"=== {est.model} (quant={quants}) (params={params_text(est.params)}) [{est.engine}] ===",
             f"free_vram_mib: {est.free_mib:.2f}"]
    if est.budget_mib != est.free_mib:
        lines.append(f"budget_mib: {est.budget_mib:.2f}")
    for r in est.results:
        lines.append(f"[{r.quant}, kv {r.kv_cache}]")
        if r.error:
            lines.append(f"  error: {r.error}")
            continue
        past = f"  (past the trained {r.model_max_context:,}: engines refuse or degrade there)" \
            if r.past_trained_max else ""
        lines += [
            f"  max_context_length: {r.max_context}{past}",
            f"  model_max_context: {r.model_max_context}",
            f"  at_context: {r.context}",
            *[f"  {p.plain_key}: {getattr(r.memory, p.attr):.2f}" for p in PARTS],
            *[f"    {e.json_key}: {r.memory.detail[e.key]:.2f}" for e in EXTRAS if r.memory.detail.get(e.key)],
            f"  total_memory_mib: {r.total_mib:.2f}",
            f"  fits_in_vram: {r.fits}",
        ]
        if r.max_concurrency is not None:
            lines.append(f"  max_concurrency: {r.max_concurrency:.2f}")
        if r.speed is not None:
            lines += [f"  decode_tps: {r.speed.decode_tps:.2f}", f"  prefill_tps: {r.speed.prefill_tps:.2f}",
                      f"  ttft_s: {r.speed.ttft_s:.3f}", f"  speed_at_context: {r.speed.context}",
                      f"  speed_bound: {r.speed.bound}"]
    rec = est.recommendation
    if rec.quant:
        lines.append(f"recommendation: {rec.quant} kv {rec.kv_cache} ({rec.reason})")
    else:
        lines.append(f"recommendation: none ({rec.reason})")
    lines += [f"note: {n}" for n in (*est.notes, *extra_notes)]
    return "\n".join(lines)
