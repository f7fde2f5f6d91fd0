"""Ollama: llama-server underneath, with Ollama's own defaults and its own way of being started.

Ollama runs llama-server with `-c num_ctx*np -np np`, f16 KV and flash attention on supported GPUs.
Because it always passes `-c`, llama.cpp's `--fit` only moves layers: a model stays fully on the GPU
when the buffers plus fit's default 1024 MiB target fit in free memory (estimator-anchors §2.3).
Its automatic `num_ctx` depends on the GPU's memory, so the plan says which value to set.
"""

from __future__ import annotations

from collections.abc import Sequence

from lander_tui.core.engines.base import EngineOptions
from lander_tui.core.engines.llamacpp import LlamaCpp, LlamaCppCalibration
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.plan import Plan


def default_context(total_mib: float) -> int:
    """Ollama's automatic num_ctx by GPU memory (server/routes.go, 2026): >= 47 GiB 262144, >= 23 GiB 32768."""
    gib = total_mib / 1024
    return 262144 if gib >= 47 else 32768 if gib >= 23 else 4096


class Ollama(LlamaCpp):
    name = "ollama"
    label = "Ollama"
    aliases = ()
    order = 20
    command_name = "Ollama"
    parallel_help = "Ollama OLLAMA_NUM_PARALLEL requests at once, sharing the context (like llama.cpp -np)"

    def calibration(self, opts: EngineOptions) -> LlamaCppCalibration:
        return LlamaCppCalibration(margin_mib=1024.0).with_overrides(opts.overrides)  # type: ignore[return-value]

    def notes(self, model: ResolvedModel, devices: Sequence[Device], opts: EngineOptions) -> tuple[str, ...]:
        free = sum(d.free_mib for d in devices)
        totals = [d.total_mib for d in devices]
        mem = sum(t for t in totals if t) if all(totals) else free
        return (f"Ollama picks num_ctx {default_context(mem):,} by itself on {mem / 1024:.0f} GiB; "
                "set OLLAMA_CONTEXT_LENGTH (or PARAMETER num_ctx) to the context you plan for",)

    def launch_command(self, model_ref: str, plan: Plan, opts: EngineOptions) -> str:
        flash = opts.flash_attn is not False
        env = [f"OLLAMA_CONTEXT_LENGTH={plan.context}", f"OLLAMA_KV_CACHE_TYPE={plan.kv_cache}",
               f"OLLAMA_FLASH_ATTENTION={1 if flash else 0}"]
        tag = model_ref if ":" in model_ref else f"{model_ref}:{plan.quant}"
        src = f"hf.co/{tag}" if "/" in model_ref else tag
        modelfile = f"FROM {src}\nPARAMETER num_ctx {plan.context}\n"
        if plan.gpu_layers <= plan.n_layers:
            modelfile += f"PARAMETER num_gpu {plan.gpu_layers}\n"
        return (" ".join(env) + " ollama serve\n# or per model, in a Modelfile:\n"
                + "".join(f"#   {line}\n" for line in modelfile.splitlines())).rstrip("\n")
