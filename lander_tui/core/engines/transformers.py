"""Hugging Face Transformers 5.x (`generate` with a DynamicCache) GPU memory.

Weights as loaded (bf16/fp16, or GPTQ/AWQ/NF4 packed matrices), the DynamicCache (every layer
holds K and V for every token; sliding-window layers keep `window - 1`; DeepSeek MLA caches the
compressed latent, `kv_lora_rank + qk_rope_head_dim` per layer, as `DeepseekV2Attention` does since
5.x, and expands one layer's K/V at a time), the prefill activation peak, the caching allocator's
reserve above its peak, and the CUDA context outside torch's view.

The peaks come from the code path 5.17 runs (read in `models/*/modeling_*.py` and
`integrations/moe.py`) and were checked by tracing every allocation of the real model classes at
full size on the meta device (tests/data/ground-truth/method/hf_meta_trace.py): the traced peaks
equal `torch.cuda.max_memory_allocated` of the H100 rows within 0.003 %, and replaying the trace on
a model of PyTorch's CUDA caching allocator gives their `max_memory_reserved` to 2 MiB.
Calibrated on tests/data/ground-truth/transformers.jsonl (torch 2.11, transformers 5.17, H100).

What loads beside the model (the `extras` part): a multimodal checkpoint's vision tower, loaded with it in
16 bits (`AutoModelForImageTextToText`), and its forward over one image at the largest size; an assistant
model for assisted generation (`generate(assistant_model=...)`: its weights, its own DynamicCache at the
same context and its prefill peak); PEFT LoRA adapters (`load_adapter`: r x (in + out) per target matrix,
in the model's dtype, for every adapter loaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lander_tui.core.checkpoint import hf_checkpoint
from lander_tui.core.engines.base import Calibration, Engine, EngineOptions
from lander_tui.core.engines.hf_allocator import dense_reserve_fractions
from lander_tui.core.errors import LanderError
from lander_tui.core.extras import Lora, lora_tensors, projector_of
from lander_tui.core.formats import kv_bytes_per_value, weight_format
from lander_tui.core.memory import MIB, Breakdown, extras_detail
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.plan import Plan
from lander_tui.core.quant_config import native_format
from lander_tui.core.speed import EAGER, SpeedInputs, device_cards, speed_inputs
from lander_tui.core.weights import WeightSet, checkpoint_quants, hf_format, hf_weights, vision_tower_bytes

#: bitsandbytes on load: the BitsAndBytesConfig arguments per format.
_BNB = {"NF4": 'load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16',
        "INT8": "load_in_8bit=True"}


@dataclass(frozen=True)
class TransformersCalibration(Calibration):
    #: NVML process memory minus torch's reserved memory: CUDA context, cuBLAS workspace, kernels
    #: (686-694 MiB in every hf_ctx row, H100, torch 2.11).
    cuda_context_mib: float = 700.0
    #: Prefill peak per prompt token, in intermediate_size values (16-bit): the activated gate, up
    #: and their product are alive together in the last layer's MLP. Fitted on hf_ctx rows:
    #: (peak_allocated - weights - kv) / ctx; llama-3.1-8b minus qwen3-8b isolates 3.0 exactly.
    act_ff_tensors: float = 3.0
    #: ... plus this many hidden-size vectors (residual, normed input, attention output): 3.18 fitted.
    act_hidden_tensors: float = 3.2
    #: ... plus this many copies of one layer's K+V (projections before the cache takes them;
    #: large for MHA models such as Phi-3): 1.78 fitted.
    act_kv_tensors: float = 1.8
    #: The caching allocator holds 10-25 % more than its peak allocation on long prompts
    #: (peak_reserved / peak_allocated in the hf_ctx rows); budgeted on what grows with context.
    #: 0.24 keeps every measured maximum (hf_maxctx rows) at least one 256-token step inside.
    #: The replayed traces show it varies by model (dense: 11-25 %), as blocks pinned by each
    #: layer's cache entries split the segments the MLP transients need next.
    allocator_reserve: float = 0.24
    #: Dense decoders that `hf_allocator.dense_events` follows (gated MLP; no MoE, MLA, sliding window,
    #: recurrent layers or fused qkv) take their fraction from the replay instead, context by context
    #: (`Transformers._replayed_reserve`), plus this margin for contexts between the replayed ones.
    replayed_reserve_margin: float = 0.02
    #: ... for MoE blocks on the default `grouped_mm` experts path: their transients are several
    #: [tokens x top_k, hidden] tensors of one size that reuse each other's blocks; the replayed
    #: trace of Qwen3-30B-A3B at its maximum holds 9 % above its peak allocation.
    moe_allocator_reserve: float = 0.10
    #: ... for MLA models: each layer expands the whole context's K and V from the small latent cache
    #: and frees them, and the latent entries left behind pin those blocks; DeepSeek-V2-Lite's replayed
    #: trace holds 58 % above its peak allocation.
    mla_allocator_reserve: float = 0.60
    #: Vision forward over one image, per patch, in intermediate-size 16-bit values alive at its MLP peak
    #: (fc1 output and activation; a gated MLP adds one). From the module structure, not measured.
    encoder_ff_tensors: float = 2.0
    #: ... plus this many hidden-size vectors.
    encoder_hidden_tensors: float = 4.0

    def reserve(self, spec: ModelSpec) -> float:
        if spec.mla:
            return self.mla_allocator_reserve
        return self.moe_allocator_reserve if spec.moe else self.allocator_reserve


MIB_ = 1 << 20


def weights_reserved(sizes: list[int]) -> float:
    """What PyTorch's CUDA caching allocator reserves for tensors allocated one after another and
    kept (c10/cuda/CUDACachingAllocator.cpp): 512-byte rounding; up to 1 MiB from 2 MiB segments,
    up to 10 MiB from 20 MiB segments (best fit in what earlier segments left), larger ones in their
    own segment rounded up to 2 MiB. Llama-3.1-8B: each layer's 8 MiB K and V share a 20 MiB segment,
    4 MiB of it left: 128 MiB over 32 layers (hf_load rows: 130 MiB reserved above allocated)."""
    total = 0.0
    holes: dict[int, list[int]] = {2: [], 20: []}  # free space in open segments, by pool
    for n in sizes:
        n = -(-n // 512) * 512
        if n >= 10 * MIB_:
            total += -(-n // (2 * MIB_)) * 2 * MIB_
            continue
        pool = 2 if n <= MIB_ else 20
        fits = [h for h in holes[pool] if h >= n]
        if fits:
            best = min(fits)
            holes[pool].remove(best)
            holes[pool].append(best - n)
        else:
            total += pool * MIB_
            holes[pool].append(pool * MIB_ - n)
    return total


#: Architectures whose router hands fp32 top-k weights to the experts (DeepseekV2TopkRouter), so the
#: weighted expert outputs and their reordered copy are fp32 (traced: 49152 B/token for 6 x 2048).
FP32_ROUTING = ("deepseek_v2", "deepseek_v3")


class Transformers(Engine):
    name = "transformers"
    label = "Transformers"
    aliases = ("hf", "huggingface")
    order = 50
    command_name = "Transformers"
    parallel_help = "Transformers generate() batch size: one KV cache per sequence"
    quants = ("BF16", "NF4")
    kv_types = ("bf16",)
    kv_cycle = ("", "bf16")
    builtin = True
    runtime = EAGER
    options_read = frozenset({"n_parallel", "mmproj", "speculative", "lora"})

    def default_quants(self, model: ResolvedModel) -> tuple[str, ...]:
        return checkpoint_quants(model.spec, self.quants)

    def check_quant(self, quant: str) -> None:
        hf_format(quant)

    def check_kv(self, kv: str) -> None:
        kv_bytes_per_value(kv, ("F16", "BF16", "F32"), "Transformers' DynamicCache")

    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        return hf_weights(model.spec, quant)

    @staticmethod
    def _act_per_token(spec: ModelSpec, kv_layer: float, cal: TransformersCalibration) -> float:
        """Prefill peak above the cache, bytes per prompt token.

        Dense MLPs keep gate/up/product of the whole prompt alive. MoE blocks on 5.x's default
        `grouped_mm_experts_forward` (integrations/moe.py) sort the `tokens x top_k` routed rows by
        expert and keep, at their peak, the gathered inputs, the expert outputs, the weighted outputs
        and their copy back in token order: `top_k x hidden x (2 + 2 + 2 w)` bytes, `w` the routing
        weights' size, beside four hidden-size vectors. MLA attention expands one layer's K and V
        from the latent for the whole prompt (`expand_kv`). Leading dense layers peak while only their
        own layers' cache exists, so they count only beyond the cache the later layers add.
        """
        common = cal.act_hidden_tensors * spec.hidden_size * 2 + cal.act_kv_tensors * kv_layer
        if not spec.moe:
            return cal.act_ff_tensors * spec.intermediate_size * 2 + common
        m = spec.moe
        w = 4 if spec.arch in FP32_ROUTING else 2
        experts = m.n_used * spec.hidden_size * (4 + 2 * w) + 4 * spec.hidden_size * 2 + m.n_experts * 10
        attn = 0.0
        if spec.mla:
            a = spec.mla
            qk = a.qk_nope_head_dim + a.qk_rope_head_dim
            # q, the concatenated query, the expanded key, kv_b_proj's K|V output, the attention output
            attn = spec.n_heads * (3 * qk + a.qk_nope_head_dim + 2 * a.v_head_dim) * 2 + common
        moe = max(experts, cal.act_ff_tensors * m.shared_ff * 2 + common, attn)
        if not m.dense_layers:
            return moe
        later_cache = kv_layer * (spec.n_layers - len(m.dense_layers))
        return max(moe, cal.act_ff_tensors * spec.intermediate_size * 2 + common - later_cache)

    @staticmethod
    def _replayed(spec: ModelSpec) -> bool:
        """Dense Llama-style decoders, whose prefill and decode `hf_allocator.dense_events` follows."""
        _, n_swa, n_rec = spec.layer_counts()
        return not (spec.moe or spec.mla or n_swa or n_rec or spec.fused_qkv or not spec.gated_ffn)

    @staticmethod
    def _replayed_reserve(spec: ModelSpec, per_token: float, tokens: np.ndarray,
                          cal: TransformersCalibration) -> np.ndarray:
        """The caching allocator's fraction above the cache + activations at each context (tokens x
        batch), from PyTorch's CUDACachingAllocator.cpp replayed on the traced prefill and decode
        (`hf_allocator.dense_reserve_fractions`, a few replayed contexts per model shape, cached). A
        context between two replayed ones takes the larger of their fractions, plus
        `replayed_reserve_margin`, which stops at the flat `allocator_reserve` unless the replay itself
        says more."""
        points, fractions = dense_reserve_fractions(
            spec.hidden_size, spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.intermediate_size,
            spec.n_layers, spec.qk_norm, float(per_token), int(min(spec.max_context or 0, 1 << 17)))
        f = np.asarray(fractions)
        pair = np.maximum(f, np.append(f[1:], f[-1]))  # [points[i], points[i + 1]): the larger end
        i = np.clip(np.searchsorted(np.asarray(points), tokens, side="right") - 1, 0, len(f) - 1)
        r = pair[i]
        return np.maximum(r, np.minimum(r + cal.replayed_reserve_margin, cal.allocator_reserve))

    def memory(self, model: ResolvedModel, quant: str, kv_type: str, ctx: np.ndarray,
               opts: EngineOptions) -> Breakdown:
        spec: ModelSpec = model.spec
        cal = TransformersCalibration().with_overrides(opts.overrides)
        assert isinstance(cal, TransformersCalibration)
        kv_bytes_per = kv_bytes_per_value(kv_type, ("F16", "BF16", "F32"), "Transformers' DynamicCache")
        w = self.weights(model, quant)
        weights = float(w.total_bytes)
        ctx = np.asarray(ctx, dtype=np.int64)
        batch = opts.n_parallel or 1
        k_vals, v_vals = spec.kv_values_per_token()  # MLA: the latent (DeepseekV2Attention, 5.x)
        per_tok_layer = (k_vals + v_vals) * kv_bytes_per
        n_full, n_swa, n_rec = spec.layer_counts()
        kv = (per_tok_layer * ctx * n_full).astype(np.float64)
        if n_swa:
            kv = kv + n_swa * per_tok_layer * np.minimum(ctx, (spec.sliding_window or 1) - 1)
        if n_rec and spec.recurrent:
            kv = kv + n_rec * (spec.recurrent.conv + spec.recurrent.ssm) * kv_bytes_per
        kv = kv * batch
        act = self._act_per_token(spec, per_tok_layer, cal) * ctx * batch
        if n_swa:  # during prefill the windowed layers still hold the whole prompt's K/V
            act = act + n_swa * per_tok_layer * np.maximum(0, ctx - ((spec.sliding_window or 1) - 1)) * batch
        if weight_format(quant).kind == "nf4":
            # bitsandbytes dequantizes a whole 4-bit matrix to 16 bits for every prefill matmul
            act = act + 2.0 * max((t.tensor.n_elements for t in w.tensors if t.dtype == "NF4"), default=0)
        fraction: float | np.ndarray = cal.reserve(spec)
        if kv_bytes_per == 2 and self._replayed(spec):  # the replay's DynamicCache is 16-bit
            per_token = per_tok_layer * n_full + self._act_per_token(spec, per_tok_layer, cal)
            fraction = self._replayed_reserve(spec, per_token, ctx * batch, cal)
        reserve = fraction * (kv + act) + weights_reserved([t.nbytes for t in w.tensors]) - weights
        ctx_mib = cal.cuda_context_mib * MIB
        projector, draft, lora = self.extras(model, quant, kv_type, ctx, opts, cal, np.asarray(act, dtype=np.float64))
        return Breakdown(weights, kv, np.asarray(act, dtype=np.float64), reserve + ctx_mib, np.zeros(ctx.shape),
                         {"cuda_context": np.full(ctx.shape, ctx_mib), "allocator_reserve": reserve,
                          **extras_detail(projector, draft, lora)},
                         projector + draft + lora, context=ctx)

    def extras(self, model: ResolvedModel, quant: str, kv_type: str, ctx: np.ndarray, opts: EngineOptions,
               cal: TransformersCalibration, act: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vision tower + one image's forward, assistant model, LoRA adapters) bytes at each context.

        The assistant prefills the prompt before the model verifies it (`AssistedCandidateGenerator`), so
        its prefill peak and the model's (`act`) do not add up: the draft costs its weights, its cache, its
        allocator reserve and what its peak exceeds the model's by."""
        spec = model.spec
        full = np.ones(np.shape(ctx))
        projector = np.zeros(np.shape(ctx))
        vision = projector_of(model, opts.mmproj)
        if opts.mmproj is False and spec.vision is not None:
            raise LanderError("Transformers loads the vision tower with the checkpoint: --no-mmproj applies to "
                              "llama.cpp, Ollama, vLLM and SGLang")
        if vision is not None:
            patches = (vision.image_size // vision.patch_size) ** 2
            ff = cal.encoder_ff_tensors + (1 if vision.gated_ffn else 0)
            forward = patches * (ff * vision.intermediate_size + cal.encoder_hidden_tensors * vision.hidden_size) * 2
            projector = (vision_tower_bytes(spec) + forward) * full
        draft = np.zeros(np.shape(ctx))
        spec_dec = opts.speculative
        if spec_dec is not None:
            if spec_dec.mtp or spec_dec.model is None:
                raise LanderError("Transformers drafts with an assistant model (--draft MODEL), not MTP layers")
            dm = spec_dec.model
            dquant = spec_dec.quant or native_format(dm.spec) or quant
            bd = self.memory(dm, dquant, kv_type, ctx, replace(opts, speculative=None, lora=None, mmproj=False))
            draft = np.asarray(bd.weights + bd.kv + np.maximum(0.0, bd.compute - act) + bd.overhead
                               - cal.cuda_context_mib * MIB, dtype=np.float64) * full
        lora = np.zeros(np.shape(ctx))
        if opts.lora is not None:
            bf16 = Lora(rank=opts.lora.rank, count=opts.lora.count, targets=opts.lora.targets, dtype="BF16")
            one = sum(t.nbytes or 0 for t in lora_tensors(spec, bf16 if opts.lora.tensors is None else opts.lora))
            lora = float(one) * opts.lora.count * full
        return projector, draft, lora

    def speed_inputs(self, model: ResolvedModel, quant: str, kv: str, devices: Sequence[Device],
                     opts: EngineOptions, plan: Plan | None = None) -> SpeedInputs:
        """`generate` runs the whole prompt in one forward pass (no micro-batches) on the GPUs' summed
        memory; SDPA attention (a fused kernel, like FlashAttention), MLA cached expanded per head."""
        whole = 1 << 30
        return speed_inputs(model.spec, self.weights(model, quant), device_cards(devices), kv_type=kv,
                            runtime=self.runtime, flash_attn=True, n_ubatch=whole, n_batch=whole,
                            concurrency=opts.n_parallel or 1)

    def launch_command(self, model: ResolvedModel, plan: Plan, opts: EngineOptions) -> str:
        """A Python snippet: load the checkpoint as planned and generate within the planned context."""
        ckpt = hf_checkpoint(model, plan.quant)
        quant = plan.quant.split("-")[0].upper()
        imports = ["AutoModelForCausalLM", "AutoTokenizer"]
        kwargs = ['device_map="auto"']
        if ckpt.kind == "placeholder" or native_format(model.spec):
            kwargs.append('dtype="auto"')  # a quantized checkpoint brings its own quantization_config
        elif quant in _BNB:
            imports.append("BitsAndBytesConfig")
            kwargs += ["dtype=torch.bfloat16", f"quantization_config=BitsAndBytesConfig({_BNB[quant]})"]
        elif quant == "FP8":
            imports.append("FineGrainedFP8Config")
            kwargs += ["dtype=torch.bfloat16", "quantization_config=FineGrainedFP8Config()"]
        else:
            kwargs.append("dtype=torch.bfloat16" if quant != "F16" else "dtype=torch.float16")
        auto = "AutoModelForImageTextToText" if projector_of(model, opts.mmproj) is not None else "AutoModelForCausalLM"
        imports[0] = auto
        notes: list[str] = []
        load = [f"model = {auto}.from_pretrained({ckpt.ref!r}, {', '.join(kwargs)})"]
        gen = ""
        spec_dec = opts.speculative
        if spec_dec is not None and spec_dec.model is not None:
            dm = spec_dec.model
            dckpt = hf_checkpoint(dm, spec_dec.quant or native_format(dm.spec) or plan.quant)
            if auto != "AutoModelForCausalLM":
                imports.append("AutoModelForCausalLM")
            load.append(f'assistant = AutoModelForCausalLM.from_pretrained({dckpt.ref!r}, device_map="auto", '
                        'dtype="auto")')
            gen = f", assistant_model=assistant, num_assistant_tokens={spec_dec.tokens}"
            if dckpt.note:
                notes.append(f"draft: {dckpt.note}")
        if opts.lora is not None:
            refs = [opts.lora.ref] if opts.lora.tensors is not None else \
                [f"<LoRA adapter {i + 1} of rank {opts.lora.rank}>" for i in range(opts.lora.count)]
            if opts.lora.tensors is None:
                notes.append("replace each <LoRA adapter ...> with a PEFT adapter folder or Hub id")
            load += [f"model.load_adapter({ref!r}, adapter_name='a{i + 1}')" for i, ref in enumerate(refs)]
        lines = ["import torch", f"from transformers import {', '.join(dict.fromkeys(imports))}", *load,
                 f"tok = AutoTokenizer.from_pretrained({ckpt.ref!r})",
                 f"# prompt + new tokens must stay within {plan.context} tokens",
                 'ids = tok("Hello", return_tensors="pt").to(model.device)',
                 f"out = model.generate(**ids, max_new_tokens=min(512, {plan.context} - ids.input_ids.shape[1]){gen})"]
        return ckpt.comment() + "".join(f"# {n}\n" for n in notes) + "\n".join(lines)
