"""Ollama: llama-server underneath, with Ollama's own defaults and its own way of being started.

Ollama runs llama-server with `-c num_ctx*np -np np`, f16 KV and flash attention on supported GPUs.
Because it always passes `-c`, llama.cpp's `--fit` only moves layers: a model stays fully on the GPU
when the buffers plus fit's default 1024 MiB target fit in free memory (estimator-anchors §2.3).
Its automatic `num_ctx` depends on the GPU's memory, so the plan says which value to set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from lander_tui.core.checkpoint import gguf_checkpoint
from lander_tui.core.engines.base import EngineOptions, Running
from lander_tui.core.engines.llamacpp import LlamaCpp, LlamaCppCalibration
from lander_tui.core.engines.running import EngineConfig
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
    #: A Modelfile sets `num_gpu` (layers on the GPU) but has no way to keep only the experts on the CPU.
    moe_offload = False

    def calibration(self, opts: EngineOptions) -> LlamaCppCalibration:
        return LlamaCppCalibration(margin_mib=1024.0).with_overrides(opts.overrides)  # type: ignore[return-value]

    def notes(self, model: ResolvedModel, devices: Sequence[Device], opts: EngineOptions) -> tuple[str, ...]:
        free = sum(d.free_mib for d in devices)
        totals = [d.total_mib for d in devices]
        mem = sum(t for t in totals if t) if all(totals) else free
        return (f"Ollama picks num_ctx {default_context(mem):,} by itself on {mem / 1024:.0f} GiB; "
                "set OLLAMA_CONTEXT_LENGTH (or PARAMETER num_ctx) to the context you plan for",)

    def running(self, config: EngineConfig, gpu_total_mib: float | None) -> Running:
        """A runner (a llama-server with Ollama's flags) as configured. The 1024 MiB fit margin is memory
        Ollama keeps free beside a model when it places it, not memory the runner holds: left out here."""
        run = super().running(config, gpu_total_mib)
        return replace(run, options=replace(run.options, overrides={**run.options.overrides, "margin_mib": 0.0}))

    def restart_options(self, run: Running) -> EngineOptions:
        """A new runner is placed with the margin again (a model stays whole on the GPU only with it)."""
        rest = {k: v for k, v in run.options.overrides.items() if k != "margin_mib"}
        return replace(run.options, overrides=rest)

    def restart_flags(self, run: Running, context: int, settings: Mapping[str, float]) -> tuple[int, str]:
        """Its runner gets `-c num_ctx x parallel -np parallel` (above): the context each request gets is
        num_ctx, set by OLLAMA_CONTEXT_LENGTH (or PARAMETER num_ctx); OLLAMA_NUM_PARALLEL the slots."""
        per, _ = super().restart_flags(run, context, settings)
        par, _ = self._slots(run)
        return per, f"OLLAMA_CONTEXT_LENGTH={per}" + (f" OLLAMA_NUM_PARALLEL={par}" if par > 1 else "")

    def launch_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        flash = opts.flash_attn is not False
        env = [f"OLLAMA_CONTEXT_LENGTH={plan.context}", f"OLLAMA_KV_CACHE_TYPE={plan.kv_cache}",
               f"OLLAMA_FLASH_ATTENTION={1 if flash else 0}"]
        ckpt = gguf_checkpoint(model, plan.quant)
        # `FROM hf.co/ORG/NAME:QUANT` pulls only from GGUF repositories; anything else is a local GGUF file
        src = f"hf.co/{ckpt.ref}" if ckpt.kind == "gguf-repo" else ckpt.ref
        modelfile = f"FROM {src}\nPARAMETER num_ctx {plan.context}\n"
        if plan.gpu_layers <= plan.n_layers:
            modelfile += f"PARAMETER num_gpu {plan.gpu_layers}\n"
        return (ckpt.comment() + " ".join(env) + " ollama serve\n# or per model, in a Modelfile:\n"
                + "".join(f"#   {line}\n" for line in modelfile.splitlines())).rstrip("\n")
