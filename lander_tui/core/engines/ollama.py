"""Ollama as it runs in 2026: llama-server underneath, with Ollama's own defaults.

Since `9db4bdb` ("use llama-server exclusively for GGML models") Ollama launches
`llama-server -c num_ctx*np -np np` (`llm/llama_server.go`) with f16 KV and flash attention where
supported, and leaves the layers to llama.cpp's `--fit`. Because it always passes `-c`, `--fit`
only moves layers: a model stays fully on the GPU when the buffers plus fit's default 1024 MiB
target fit in free memory, and otherwise part of it runs on the CPU. What Ollama decides itself:
- `num_ctx` when neither the request, the Modelfile nor `OLLAMA_CONTEXT_LENGTH` sets one
  (`server/routes.go`): the GPUs' summed (total - `OLLAMA_GPU_OVERHEAD`) >= 47 GiB -> 262144,
  >= 23 GiB -> 32768, else 4096; clamped to the model's trained length (`llm/server.go`:
  "requested context size too large for model"); llama-server gets `num_ctx x OLLAMA_NUM_PARALLEL`.
- `ollama ps` PROCESSOR (`cmd/cmd.go`): `core/plan.cpu_gpu_split`.
- What loads beside the model (`llm/llama_server.go`): the projector layer goes to llama-server as
  `--mmproj`, kept on the CPU (`--no-mmproj-offload`) when the text layers are only partly on the GPU or a
  GPU has less than the projector + 1 GiB (`shouldDisableMMProjOffload`); `ADAPTER` files as `--lora`;
  speculative decoding only as `--spec-type draft-mtp` (the model's MTP layers, or an MTP/DFlash sidecar
  named by `DRAFT`), on when `draft_num_predict` is set (`appendDraftArgs`, `server/routes.go`).
So each row says what Ollama does by itself (`default_context`, and the GPU share `--fit` leaves it,
`default_gpu_percent`), and its longest context is the `num_ctx` to set to stay 100 % on the GPU.
Sources: shared/research/estimator-anchors.md §2.3 (ollama/ollama @ fb30760).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from lander_tui.core.checkpoint import gguf_checkpoint
from lander_tui.core.engines.base import Budget, EngineOptions, FootprintFn, Running
from lander_tui.core.engines.llamacpp import Layout, LlamaCpp, LlamaCppCalibration
from lander_tui.core.engines.running import EngineConfig
from lander_tui.core.errors import LanderError
from lander_tui.core.memory import MIB, MemoryParts
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.plan import Plan

#: (at least this much GPU memory, GiB) -> default num_ctx, largest first (server/routes.go).
DEFAULT_CTX_TIERS: tuple[tuple[float, int], ...] = ((47.0, 262144), (23.0, 32768), (0.0, 4096))


def default_num_ctx(gpu_total_mib: Sequence[float], overhead_mib: float = 0.0) -> int:
    """num_ctx Ollama uses by itself for these GPUs (`OLLAMA_GPU_OVERHEAD` = `overhead_mib` each)."""
    usable = sum(max(0.0, t - overhead_mib) for t in gpu_total_mib) / 1024
    return next(ctx for floor, ctx in DEFAULT_CTX_TIERS if usable >= floor)


def server_context(num_ctx: int, num_parallel: int = 1) -> int:
    """The `-c` llama-server gets: the context is per request, multiplied by OLLAMA_NUM_PARALLEL."""
    return num_ctx * max(1, num_parallel)


class Ollama(LlamaCpp):
    name = "ollama"
    label = "Ollama"
    aliases = ()
    order = 20
    command_name = "Ollama"
    #: A Modelfile sets `num_gpu` (layers on the GPU) but has no way to keep only the experts on the CPU.
    moe_offload = False
    parallel_help = "Ollama OLLAMA_NUM_PARALLEL requests at once, sharing the context (like llama.cpp -np)"

    def calibration(self, opts: EngineOptions) -> LlamaCppCalibration:
        return LlamaCppCalibration(margin_mib=1024.0).with_overrides(opts.overrides)  # type: ignore[return-value]

    def footprint(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                  opts: EngineOptions) -> FootprintFn:
        if opts.speculative is not None and not opts.speculative.mtp:
            raise LanderError("Ollama drafts only with the model's own MTP layers (`--draft mtp`: PARAMETER "
                              "draft_num_predict) or an MTP sidecar (DRAFT), not with a separate model")
        return super().footprint(model, quant, kv, devices, opts)

    def projector_on_gpu(self, model: ResolvedModel, lay: Layout) -> bool:
        """`shouldDisableMMProjOffload`: not when the text layers are only partly on the GPU."""
        return lay.ngl >= model.spec.n_layers + 1

    def budget(self, devices: Sequence[Device], opts: EngineOptions) -> Budget:
        """All that is free, as for llama.cpp, plus the num_ctx Ollama picks on these GPUs."""
        base = super().budget(devices, opts)
        totals = [d.total_mib or d.free_mib for d in devices]
        return Budget(base.per_device, base.notes, {**base.settings, "default_num_ctx": float(default_num_ctx(totals))})

    def default_context(self, model: ResolvedModel, budget: Budget, opts: EngineOptions) -> int:
        """What llama-server gets from Ollama by itself: its num_ctx for the GPUs, clamped to the
        model's trained length, times OLLAMA_NUM_PARALLEL."""
        num_ctx = min(int(budget.settings.get("default_num_ctx", 4096)), model.spec.max_context)
        return server_context(num_ctx, opts.n_parallel or 1)

    def capacity(self, model: ResolvedModel, quant: str, kv: str, ctx: int, footprint_mib: Sequence[MemoryParts],
                 budget: Budget, opts: EngineOptions) -> dict[str, float]:
        """What Ollama does with this row by itself: its own context, and the share of the weights
        `--fit` keeps on the GPUs there (100 = "100% GPU")."""
        default = self.default_context(model, budget, opts)
        devices = [Device(f"GPU{i}", b / MIB) for i, b in enumerate(budget.per_device)]
        plan = self.plan(model, quant, kv, default, devices, budget, opts)
        total = plan.cpu_weights_mib + plan.gpu_weights_mib
        gpu = 100.0 if plan.fully_offloaded or total <= 0 else 100.0 * plan.gpu_weights_mib / total
        return {"default_context": float(default), "default_gpu_percent": round(gpu, 1)}

    def notes(self, model: ResolvedModel, devices: Sequence[Device], opts: EngineOptions) -> tuple[str, ...]:
        totals = [d.total_mib or d.free_mib for d in devices]
        num_ctx = default_num_ctx(totals)
        clamp = (f", clamped to the model's {model.spec.max_context:,}" if model.spec.max_context < num_ctx else "")
        return (f"Ollama picks num_ctx {num_ctx:,} by itself on {sum(totals) / 1024:.0f} GiB{clamp} (x "
                "OLLAMA_NUM_PARALLEL); set OLLAMA_CONTEXT_LENGTH (or PARAMETER num_ctx) to the context you plan for",)

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
        n_par = max(1, opts.n_parallel or 1)
        num_ctx = plan.context // n_par  # Ollama gives llama-server num_ctx x OLLAMA_NUM_PARALLEL cells
        env = [f"OLLAMA_CONTEXT_LENGTH={num_ctx}", f"OLLAMA_KV_CACHE_TYPE={plan.kv_cache}",
               f"OLLAMA_FLASH_ATTENTION={1 if flash else 0}"]
        if n_par > 1:
            env.append(f"OLLAMA_NUM_PARALLEL={n_par}")
        ckpt = gguf_checkpoint(model, plan.quant)
        # `FROM hf.co/ORG/NAME:QUANT` pulls only from GGUF repositories; anything else is a local GGUF file
        src = f"hf.co/{ckpt.ref}" if ckpt.kind == "gguf-repo" else ckpt.ref
        modelfile = f"FROM {src}\n"
        extra_args, _ = self.extra_args(model, plan, opts, ckpt.kind)
        if "--mmproj" in extra_args:  # a projector GGUF named by FROM becomes the projector layer (server/create.go)
            modelfile += f"FROM {extra_args[extra_args.index('--mmproj') + 1]}\n"
        if opts.lora is not None:
            for adapter in extra_args[extra_args.index("--lora") + 1].split(","):
                modelfile += f"ADAPTER {adapter}\n"
        modelfile += f"PARAMETER num_ctx {num_ctx}\n"
        if plan.gpu_layers <= plan.n_layers:
            modelfile += f"PARAMETER num_gpu {plan.gpu_layers}\n"
        if opts.speculative is not None:
            modelfile += f"PARAMETER draft_num_predict {opts.speculative.tokens}\n"
        return (ckpt.comment() + " ".join(env) + " ollama serve\n# or per model, in a Modelfile:\n"
                + "".join(f"#   {line}\n" for line in modelfile.splitlines())).rstrip("\n")
