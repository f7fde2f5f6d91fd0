"""The plan for one row of an estimate, and the plain-text forms of both: shared by `lander-tui
estimate` and the dashboard (so both show the same numbers, split, offload and host RAM)."""

from __future__ import annotations

from typing import Any

from lander_tui.core.multi_gpu import DeviceShare, Plan, plan_for


def plan_for_estimate(req: Any, est: Any, devices: list[Any], quant: str | None = None,
                      kv: str | None = None) -> Plan | None:
    """The plan for one row (default: the recommended row, else the first) on all the GPUs given.
    None when that row loads nowhere and no target context was asked for (Transformers, one-GPU vLLM)."""
    rec = est.recommendation
    quant = quant or rec.quant or est.results[0].quant
    kv = kv or rec.kv_cache or est.results[0].kv_cache
    split = req.options.tensor_split
    if est.backend == "transformers" or (len(devices) == 1 and est.backend == "vllm"):
        row = next(r for r in est.results if (r.quant, r.kv_cache) == (quant, kv))
        if row.max_context <= 0 and not req.context:
            return None
        ctx = req.context or min(row.max_context, req.model.spec.max_context)
        d = devices[0]
        share = DeviceShare(d.name, d.free_mib, None, True, row.weights_mib, row.kv_cache_mib, row.compute_mib,
                            row.overhead_mib, est.budget_mib)
        spec = req.model.spec
        return Plan(est.backend, quant, kv, ctx, (share,), spec.n_layers, spec.n_layers + 1,
                    gpu_weights_mib=row.weights_mib)
    return plan_for(req.model, est.backend, quant, kv, devices, req.options, context=req.context, split=split)


def host_available_mib() -> float:
    """Host RAM available now (psutil), MiB."""
    import psutil

    return float(psutil.virtual_memory().available) / 2**20


def format_plan(plan: Plan, host_available: float | None = None) -> str:
    """The plan as `lander-tui estimate` prints it: one line per GPU, host RAM, notes."""
    lines = [f"plan: {plan.quant} kv {plan.kv_cache} at {plan.context} tokens, "
             f"{plan.gpu_layers}/{plan.n_layers + 1} layers on GPU ({plan.cpu_gpu_split()}), fits: {plan.fits}"]
    for d in plan.devices:
        layers = f"layers {d.layers[0]}-{d.layers[1]}" if d.layers else "all layers (TP rank)"
        lines.append(f"  {d.name}: {layers}{' +output' if d.has_output else ''}: weights {d.weights_mib:.0f} "
                     f"+ kv {d.kv_cache_mib:.0f} + compute {d.compute_mib:.0f} + overhead {d.overhead_mib:.0f} "
                     f"= {d.total_mib:.0f} of {d.budget_mib:.0f} MiB")
    if plan.host_mib:
        avail = host_available_mib() if host_available is None else host_available
        lines.append(f"  host RAM: {plan.host_mib:.0f} MiB needed, {avail:.0f} MiB available now"
                     + ("" if plan.host_mib <= avail else " (NOT ENOUGH)"))
    lines += [f"  note: {n}" for n in plan.notes]
    return "\n".join(lines)


def format_plain(est: Any) -> str:
    """The estimate in LLM-Lander's plain format (what `lander-tui estimate` prints)."""
    quants = ",".join(dict.fromkeys(r.quant for r in est.results))
    lines = [f"=== {est.model} (quant={quants}) (params={est.params / 1e9:.2f}B) [{est.backend}] ===",
             f"free_vram_mb: {est.free_mib:.2f}"]
    if est.budget_mib != est.free_mib:
        lines.append(f"budget_mb: {est.budget_mib:.2f}")
    for r in est.results:
        lines.append(f"[{r.quant}, kv {r.kv_cache}]")
        if r.error:
            lines.append(f"  error: {r.error}")
            continue
        lines += [
            f"  max_context_length: {r.max_context}",
            f"  model_max_context: {r.model_max_context}",
            f"  at_context: {r.context}",
            f"  model_weight_mb: {r.weights_mib:.2f}",
            f"  kv_cache_mb: {r.kv_cache_mib:.2f}",
            f"  compute_mb: {r.compute_mib:.2f}",
            f"  overhead_mb: {r.overhead_mib:.2f}",
            f"  total_memory_mb: {r.total_mib:.2f}",
            f"  fits_in_vram: {r.fits}",
        ]
        if r.max_concurrency is not None:
            lines.append(f"  max_concurrency: {r.max_concurrency:.2f}")
    rec = est.recommendation
    lines.append(f"recommendation: {rec.quant or '-'} kv {rec.kv_cache or '-'} ({rec.reason})")
    lines += [f"note: {n}" for n in est.notes]
    return "\n".join(lines)
