"""SGLang: weights plus a token pool sized by `--mem-fraction-static`, written as a plugin would be.

SGLang measures the memory free after CUDA starts (`total_gpu_memory` in `ModelRunner.init_memory_pool`),
loads the weights, and gives the KV token pool what is left of `free x mem_fraction_static`
(`profile_max_num_token`, python/sglang/srt/model_executor/model_runner.py):

    rest_memory = available_after_weights - total_gpu_memory * (1 - mem_fraction_static)
    max_total_num_tokens = rest_memory // cell_size

with `cell_size = kv_heads_per_rank x head_dim x layers x 2 x dtype bytes` (MLA: the latent,
`(kv_lora_rank + qk_rope_head_dim) x layers x dtype bytes`). The other `1 - mem_fraction_static`
is left for activations of a chunked prefill and CUDA graphs. A request fits when its context fits
in the pool; the default `mem_fraction_static` comes from the GPU's memory and the TP size
(`ServerArgs._handle_gpu_memory_settings`, python/sglang/srt/server_args.py, 2026):

    reserved MB = 512 + max(chunked_prefill_size, 2048) x 1.5 + cuda_graph_max_bs x 2 + tp x pp / 8 x 1024
                  (at least 10 GiB on GPUs over 60 GB)
    mem_fraction_static = round((gpu_mem - reserved) / gpu_mem, 3)

What loads beside the model (the `extras` part):
- a vision tower, in 16 bits, and the share of memory SGLang holds back for it: with a `vision_config`
  the default `mem_fraction_static` is scaled by 0.95 x clamp(1 - 0.1 x (L h^2 / (24 x 1024^2) - 1), 0.8,
  1.05) (`ServerArgs.adjust_mem_fraction_for_vlm`), so `free x` that difference is kept out of the pool;
- a draft (`--speculative-algorithm STANDALONE --speculative-draft-model-path`, or the model's MTP
  layers with `EAGLE`): its weights, a draft token pool as large as the target's (one cell per token of
  each draft layer), and the 2 GiB `_handle_gpu_memory_settings` reserves for a draft and its graphs;
- LoRA (`--enable-lora --max-loras-per-batch N --max-lora-rank R`): the A/B buffers of
  `LoRAMemoryPool` for every linear layer of N adapters (python/sglang/srt/lora/mem_pool.py).

This module answers every engine question for SGLang and touches nothing else in lander-tui.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from lander_tui.core.checkpoint import hf_checkpoint
from lander_tui.core.engines.base import (
    REFERENCE_GPU,
    Budget,
    Calibration,
    Engine,
    EngineOptions,
    Footprint,
    FootprintFn,
    Running,
    first_device,
    pad,
    tensor_parallel_sizes,
)
from lander_tui.core.engines.running import EngineConfig, served_kv, served_model, served_quant
from lander_tui.core.errors import LanderError
from lander_tui.core.extras import lora_slot_bytes, projector_of
from lander_tui.core.formats import kv_bytes_per_value
from lander_tui.core.memory import MIB, Breakdown, MemoryParts, extras_detail
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.plan import Plan
from lander_tui.core.quant_config import native_format
from lander_tui.core.speed import SERVER
from lander_tui.core.weights import (
    WeightSet,
    checkpoint_quants,
    hf_format,
    hf_weights,
    shard_bytes,
    vision_tower_bytes,
)

GIB = 1024**3
#: (GPU memory below MiB, chunked_prefill_size, cuda_graph_max_bs at TP < 4, at TP >= 4), from
#: `_handle_gpu_memory_settings` (an L40S, 44.5 GiB, logs 4096 and 32); above the last row: 16384 and 512.
GPU_CLASSES = (
    (20 * 1024, 2048, 8, 8),  # T4, RTX 4080
    (35 * 1024, 2048, 24, 80),  # A10, RTX 4090/5090
    (60 * 1024, 4096, 32, 160),  # A100 40GB, L40
    (90 * 1024, 8192, 256, 512),  # H100, A100 80GB
    (160 * 1024, 8192, 256, 512),  # H20, H200
)
_QUANT_FLAG = {"AWQ": "awq", "GPTQ": "gptq", "FP8": "fp8", "NF4": "bitsandbytes"}


@dataclass(frozen=True)
class SGLangCalibration(Calibration):
    #: Memory CUDA and torch take before SGLang measures what is free (`total_gpu_memory`): an L40S
    #: with 44.52 GiB logged 40.99 GiB free after 3.03 GiB of weights (tests/data/ground-truth/wild,
    #: vllm-sglang-106), so about 0.5 GiB went before the measurement.
    cuda_context_mib: float = 512.0
    #: ... per rank with tensor parallelism (NCCL communicators, custom all-reduce buffers): the one
    #: TP record with a stated GPU (Qwen3-235B-A22B-FP8, 4x H100, mem_fraction_static 0.93,
    #: vllm-sglang-002) implies 2.3 GiB. Fitted on that record alone.
    tp_context_mib: float = 2.3 * 1024
    #: `--mem-fraction-static`; 0 = SGLang's own default for the GPU's size and the TP size.
    mem_fraction_static: float = 0.0

    def context_mib(self, tp: int) -> float:
        return self.tp_context_mib if tp > 1 else self.cuda_context_mib


def vlm_fraction_factor(spec: ModelSpec) -> float:
    """`adjust_mem_fraction_for_vlm` (python/sglang/srt/server_args.py): the default
    `mem_fraction_static` times 0.95, times 1 - 0.1 for every doubling of the ViT's `layers x hidden^2`
    over ViT-L/14's (24 x 1024^2), kept within 0.8..1.05."""
    v = spec.vision
    if v is None:
        return 1.0
    ratio = v.n_layers * v.hidden_size ** 2 / (24 * 1024 ** 2)
    return 0.95 * max(0.8, min(1.05, 1.0 - 0.1 * (ratio - 1.0)))


def default_settings(gpu_mib: float, tp: int, speculative: bool = False) -> tuple[int, int, float]:
    """(chunked_prefill_size, cuda_graph_max_bs, mem_fraction_static) SGLang picks for a GPU of this size."""
    chunk, graphs = 16384, 512
    for below, c, small_tp, big_tp in GPU_CLASSES:
        if gpu_mib < below:
            chunk, graphs = c, small_tp if tp < 4 else big_tp
            break
    reserved = 512 + max(chunk, 2048) * 1.5 + graphs * 2 + tp / 8 * 1024
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if speculative:
        reserved += 2 * 1024  # an EAGLE draft model and its CUDA graphs
    return chunk, graphs, round((gpu_mib - reserved) / gpu_mib, 3)


class SGLang(Engine):
    name = "sglang"
    label = "SGLang"
    order = 40
    command_name = "sglang.launch_server"
    parallel_help = "SGLang requests at once, each up to the full context (max ctx is per request)"
    quants = ("BF16", "FP8", "AWQ")
    kv_types = ("auto", "fp8")
    kv_cycle = ("", "auto", "fp8")
    splits_across_gpus = True
    builtin = True
    runtime = SERVER
    options_read = frozenset({"n_parallel", "mmproj", "speculative", "lora"})

    def granularity(self, opts: EngineOptions) -> int:
        return 1  # the pool counts tokens (page size 1 by default)

    def calibration(self, opts: EngineOptions) -> SGLangCalibration:
        return SGLangCalibration().with_overrides(opts.overrides)  # type: ignore[return-value]

    def default_quants(self, model: ResolvedModel) -> tuple[str, ...]:
        return checkpoint_quants(model.spec, self.quants)

    def check_quant(self, quant: str) -> None:
        hf_format(quant)

    def check_kv(self, kv: str) -> None:
        kv_bytes_per_value(kv, ("F16", "BF16", "fp8", "F32"), "SGLang")

    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        return hf_weights(model.spec, quant)

    def mem_fraction_static(self, device: Device, tp: int, opts: EngineOptions, model: ResolvedModel | None = None,
                            extras: bool = True) -> float:
        """The user's `--mem-fraction-static` (`--set mem_fraction_static=F`), else SGLang's default for the
        GPU, with a draft's reserve and the vision tower's reduction when `extras` (and a model) say so."""
        given = self.calibration(opts).mem_fraction_static
        if given:
            if not 0.05 <= given < 1.0:
                raise LanderError("mem_fraction_static must be between 0.05 and 1")
            return given
        spec_dec = extras and opts.speculative is not None
        mfs = default_settings(device.total_mib or device.free_mib, tp, speculative=spec_dec)[2]
        if extras and model is not None and projector_of(model, opts.mmproj) is not None:
            mfs = round(mfs * vlm_fraction_factor(model.spec), 3)
        return mfs

    def draft_cell_and_weights(self, model: ResolvedModel, quant: str, kv: str, tp: int,
                               opts: EngineOptions) -> tuple[float, float]:
        """(KV bytes of one token in the draft pool, the draft's weights) on one rank."""
        spec_dec = opts.speculative
        if spec_dec is None:
            return 0.0, 0.0
        if spec_dec.mtp:
            spec = model.spec
            if not spec.mtp_layers:
                raise LanderError(f"{spec.name} has no multi-token-prediction layers (num_nextn_predict_layers); "
                                  "name a draft model with --draft MODEL")
            last = self.weights(model, quant).layer_bytes().get(spec.n_layers - 1, 0)
            cell = self.cell_bytes(model, kv, tp) / spec.n_layers * spec.mtp_layers
            return cell, float(last) * spec.mtp_layers / tp
        assert spec_dec.model is not None
        dm = spec_dec.model
        dquant = spec_dec.quant or native_format(dm.spec) or quant
        return self.cell_bytes(dm, kv, tp), shard_bytes(dm.spec, hf_weights(dm.spec, dquant), tp)

    def cell_bytes(self, model: ResolvedModel, kv: str, tp: int) -> float:
        """KV bytes of one token in the pool, on one rank."""
        spec = model.spec
        if kv.lower() == "auto":  # the model's dtype
            kv = {"float32": "f32", "float16": "f16"}.get(str(spec.torch_dtype), "bf16")
        per_value = kv_bytes_per_value(kv, ("F16", "BF16", "fp8", "F32"), "SGLang")
        if spec.mla:
            return (spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim) * spec.n_layers * per_value
        if spec.n_kv_heads < tp and tp % spec.n_kv_heads == 0:
            heads = 1  # get_num_kv_heads: each rank keeps one replicated head
        else:
            heads = max(1, spec.n_kv_heads // tp)
        return heads * (spec.head_dim + spec.head_dim_v) * spec.n_layers * per_value

    def footprint(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                  opts: EngineOptions) -> FootprintFn:
        """Per rank: the weights, the pool tokens a context takes, the `1 - mem_fraction_static` share
        kept for activations and CUDA graphs, and the CUDA context."""
        tp = len(devices)
        spec = model.spec
        if spec.n_heads % tp:
            raise LanderError(f"--tp-size {tp} must divide the {spec.n_heads} attention heads")
        cal = self.calibration(opts)
        weights = shard_bytes(spec, self.weights(model, quant), tp)
        cell = self.cell_bytes(model, kv, tp)
        ctx_bytes = cal.context_mib(tp) * MIB
        free = max(0.0, min(d.free_mib for d in devices) * MIB - ctx_bytes)
        # the model's own reserve, and what the vision tower and a draft make SGLang hold back beyond it
        reserve = free * (1 - self.mem_fraction_static(devices[0], tp, opts, model, extras=False))
        vlm_cut = free * (self.mem_fraction_static(devices[0], tp, opts, model, extras=False)
                          - self.mem_fraction_static(devices[0], tp, replace(opts, speculative=None), model))
        spec_cut = free * (self.mem_fraction_static(devices[0], tp, replace(opts, mmproj=False), model, extras=False)
                           - self.mem_fraction_static(devices[0], tp, replace(opts, mmproj=False), model))
        projector = 0.0
        if projector_of(model, opts.mmproj) is not None:
            projector = vision_tower_bytes(spec) / tp + vlm_cut
        draft_cell, draft_weights = self.draft_cell_and_weights(model, quant, kv, tp, opts)
        lora = 0.0
        if opts.lora is not None:
            lora = lora_slot_bytes(spec, opts.lora.rank, opts.lora.count, tp, embeddings=False)
        n_req = opts.n_parallel or 1

        def at(ctx: np.ndarray) -> Footprint:
            ctx = np.asarray(ctx, dtype=np.int64)
            shape = ctx.shape
            full = np.ones(shape)
            draft = (draft_weights + spec_cut + ctx * draft_cell * n_req) * full
            one = MemoryParts(np.full(shape, weights), (ctx * cell * n_req).astype(np.float64),
                              np.full(shape, reserve), np.full(shape, ctx_bytes), 0.0,
                              {"cuda_context": np.full(shape, ctx_bytes),
                               "activations_and_graphs": np.full(shape, reserve),
                               **extras_detail(projector * full, draft, lora * full),
                               "draft_kv": ctx * draft_cell * n_req * full},
                              (projector + lora) * full + draft)
            return Footprint(pad(ctx, 1), (one,) * tp, np.zeros(shape))

        return at

    def set_sizes(self, model: ResolvedModel, n_gpus: int) -> tuple[int, ...]:
        return tensor_parallel_sizes(model.spec.n_heads, n_gpus)

    def memory(self, model: ResolvedModel, quant: str, kv: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown:
        return first_device(self.footprint(model, quant, kv, [REFERENCE_GPU], opts)(np.asarray(ctx)))

    def capacity(self, model: ResolvedModel, quant: str, kv: str, ctx: int, footprint_mib: Sequence[MemoryParts],
                 budget: Budget, opts: EngineOptions) -> dict[str, float]:
        """The token pool (`max_total_num_tokens`) and how many requests of this context it holds."""
        part, b = footprint_mib[0], budget.per_device[0] / MIB
        fixed_extras = part.extras - float(part.detail.get("draft_kv", 0.0))
        pool_mib = max(0.0, b - part.weights - part.compute - part.overhead - fixed_extras)
        tp = len(footprint_mib)
        draft_cell, _ = self.draft_cell_and_weights(model, quant, kv, tp, opts)
        tokens = int(pool_mib * MIB // (self.cell_bytes(model, kv, tp) + draft_cell))
        return {"kv_capacity_mib": pool_mib, "kv_capacity_tokens": float(tokens),
                "max_concurrency": tokens / (ctx * (opts.n_parallel or 1))}

    def plan(self, model: ResolvedModel, quant: str, kv: str, ctx: int, devices: Sequence[Device],
             budget: Budget, opts: EngineOptions) -> Plan:
        base = super().plan(model, quant, kv, ctx, devices, budget, opts)
        mfs = self.mem_fraction_static(devices[0], len(devices), opts, model)
        return replace(base, settings={"mem_fraction_static": mfs})

    # --- a server that already runs ----------------------------------------------------------
    def running(self, config: EngineConfig, gpu_total_mib: float | None) -> Running:
        """A `sglang.launch_server` as configured (its /server_info). It keeps `mem_fraction_static` of
        the memory free at its start for weights and the token pool, whatever the context: predicted as
        the CUDA context plus that share of the rest of the card (an otherwise empty GPU at start); its
        CUDA graphs come on top, out of the other share. The estimate's part is the pool in tokens, to
        set against the server's own `max_total_num_tokens`."""
        if not config.model:
            raise LanderError("SGLang does not say which model it serves")
        if not gpu_total_mib:
            raise LanderError("SGLang sizes its token pool from the GPU's memory, and its GPU is not known")
        tp = 1  # one GPU per server here: the live view reads the GPU its processes are on
        mfs = config.gpu_memory_utilization or default_settings(gpu_total_mib, tp)[2]
        model = served_model(config.model, self.label)
        opts = EngineOptions(n_parallel=1, overrides={"mem_fraction_static": mfs})
        self.mem_fraction_static(Device("GPU", gpu_total_mib, gpu_total_mib), tp, opts)  # checks the range
        kv = served_kv(config.kv_type)
        context = config.context or model.spec.max_context
        cuda = self.calibration(opts).context_mib(tp)
        shown = {"context_length": context, "kv_type": kv, "mem_fraction_static": mfs}
        notes = ("SGLang holds mem_fraction_static of what was free at its start, plus its CUDA graphs; "
                 "the token pool is where the estimate shows",)
        return Running(model, served_quant(model, config.quant), kv, context, opts, shown,
                       held_mib=cuda + (gpu_total_mib - cuda) * mfs, notes=notes)

    def restart_flags(self, run: Running, context: int, settings: Mapping[str, float]) -> tuple[int, str]:
        """The pool grows with the memory free at start by itself; `--context-length` lets one request
        use it (past the model's trained length only with SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN)."""
        per = min(context, run.model.spec.max_context)
        return per, f"--context-length {per}"

    def launch_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        ckpt = hf_checkpoint(model, plan.quant)
        env = ["SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"] if plan.context > model.spec.max_context else []
        args = [*env, "python", "-m", "sglang.launch_server", "--model-path", ckpt.ref,
                "--context-length", str(plan.context)]
        mfs = plan.settings.get("mem_fraction_static")
        if mfs is not None:
            args += ["--mem-fraction-static", f"{mfs:g}"]
        if plan.tensor_parallel > 1:
            args += ["--tp-size", str(plan.tensor_parallel)]
        if plan.kv_cache.lower() not in ("auto", "bf16", "f16"):
            args += ["--kv-cache-dtype", "fp8_e4m3" if plan.kv_cache.lower() == "fp8" else plan.kv_cache]
        q = _QUANT_FLAG.get(plan.quant.split("-")[0].upper())
        if q and ckpt.kind != "placeholder" and not native_format(model.spec):
            args += ["--quantization", q]
        notes: list[str] = []
        if opts.mmproj is False and model.spec.vision is not None:
            args.append("--language-only")  # load the language model alone (ServerArgs.language_only)
        spec_dec = opts.speculative
        if spec_dec is not None:
            steps = str(spec_dec.tokens)
            if spec_dec.mtp:
                args += ["--speculative-algorithm", "EAGLE"]  # the MTP layers as the draft (DeepSeek's recipe)
            else:
                dm = spec_dec.model
                assert dm is not None
                dckpt = hf_checkpoint(dm, spec_dec.quant or native_format(dm.spec) or plan.quant)
                args += ["--speculative-algorithm", "STANDALONE", "--speculative-draft-model-path", dckpt.ref]
                if dckpt.note:
                    notes.append(f"draft: {dckpt.note}")
            args += ["--speculative-num-steps", steps, "--speculative-eagle-topk", "1",
                     "--speculative-num-draft-tokens", str(spec_dec.tokens + 1)]
        if opts.lora is not None:
            args += ["--enable-lora", "--max-lora-rank", str(opts.lora.rank), "--max-loras-per-batch",
                     str(opts.lora.count), "--lora-target-modules", "all"]
        return ckpt.comment() + "".join(f"# {n}\n" for n in notes) + shlex.join(args)

