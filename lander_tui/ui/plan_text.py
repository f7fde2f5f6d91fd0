"""The plan as plain text, for the clipboard (`c`). No Textual here."""

from __future__ import annotations

from typing import Any

from lander_tui.core.errors import LanderError


def plan_text(req: Any, est: Any, memory: Any, form: Any) -> str:
    """What `lander-tui estimate` prints for the same inputs, plus where the memory came from and the
    command that runs the recommended row (when one fits)."""
    from lander_tui.core.plan_view import format_plain

    lines = [f"# lander-tui plan: {memory.label} ({memory.detail}), engine {est.backend}"]
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
    launch = launch_line(req, est, memory, form)
    if launch:
        lines += ["# run it:", launch]
    return "\n".join(lines) + "\n"


def devices_of(memory: Any) -> list[Any]:
    from lander_tui.core.multi_gpu import Device

    return [Device(name, free, total) for name, free, total in memory.devices] or [
        Device(memory.label, memory.free_mib, memory.total_mib)]


def launch_line(req: Any, est: Any, memory: Any, form: Any) -> str:
    """The recommended row's command line (llama-server, ollama, vllm serve, Transformers)."""
    if est.recommendation.quant is None:
        return ""
    try:
        from lander_tui.core.launch import launch_command
        from lander_tui.core.plan_view import plan_for_estimate

        plan = plan_for_estimate(req, est, devices_of(memory))
        if plan is None:
            return ""
        name = req.model.spec.hf_repo or req.model.detail or req.model.spec.name
        return launch_command(est.backend, name, plan, flash_attn=req.options.flash_attn is not False,
                              n_parallel=req.options.n_parallel or 1,
                              gpu_memory_utilization=req.options.gpu_memory_utilization)
    except (LanderError, StopIteration, ValueError) as err:
        return f"# (no launch command: {err})"


def split_text(req: Any, est: Any, memory: Any, quant: str, kv: str) -> str:
    """One line per GPU of a multi-GPU plan for one row (llama.cpp layer split / vLLM TP)."""
    if memory.count < 2 or est.backend == "transformers":
        return ""
    try:
        from lander_tui.core.multi_gpu import plan_for

        plan = plan_for(req.model, est.backend, quant, kv, devices_of(memory), req.options, context=req.context)
    except LanderError as err:
        return f"split: {err}"
    parts = []
    for d in plan.devices:
        where = f"layers {d.layers[0]}-{d.layers[1]}" if d.layers else "TP rank"
        parts.append(f"{d.name.split(':')[0]}: {where} {d.total_mib / 1024:.1f}/{d.budget_mib / 1024:.1f} GiB")
    verdict = "fits" if plan.fits else "does NOT fit"
    return f"split at {plan.context:,} tokens ({verdict}): " + " · ".join(parts)
