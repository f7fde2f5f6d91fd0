"""Hugging Face Transformers (`generate` with a DynamicCache) GPU memory.

Weights as loaded (bf16/fp16, or GPTQ/AWQ/NF4 packed matrices), the DynamicCache (every layer
holds K and V for every token; sliding-window layers keep `window - 1`; DeepSeek MLA is cached
expanded per head), the prefill activation peak (MLP intermediates of the whole prompt), the
caching allocator's reserve above its peak, and the CUDA context outside torch's view.
Calibrated on tests/data/ground-truth/transformers.jsonl (torch 2.11, transformers 5.17, H100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lander_tui.core.engines.base import Calibration, Engine, EngineOptions
from lander_tui.core.formats import kv_bytes_per_value, weight_format
from lander_tui.core.memory import MIB, Breakdown
from lander_tui.core.model import ResolvedModel
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.plan import Plan
from lander_tui.core.weights import WeightSet, hf_format, hf_weights


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
    allocator_reserve: float = 0.24
    #: Reserve the allocator keeps above the weights after loading (reserved/allocated - 1).
    weights_reserve: float = 0.01


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

    def check_quant(self, quant: str) -> None:
        hf_format(quant)

    def check_kv(self, kv: str) -> None:
        kv_bytes_per_value(kv, ("F16", "BF16", "F32"), "Transformers' DynamicCache")

    def weights(self, model: ResolvedModel, quant: str) -> WeightSet:
        return hf_weights(model.spec, quant)

    @staticmethod
    def _act_per_token(spec: ModelSpec, kv_layer: float, cal: TransformersCalibration) -> float:
        """Prefill peak above the cache, bytes per prompt token.

        Dense MLPs keep gate/up/product of the whole prompt alive. MoE blocks run the experts one
        at a time on the tokens routed to them (small), but build an int64 one-hot routing mask
        [tokens, top_k, experts] and f32 router logits; leading dense layers peak while only their
        own layers' cache exists, so they count only beyond the cache the later layers add.
        """
        common = cal.act_hidden_tensors * spec.hidden_size * 2 + cal.act_kv_tensors * kv_layer
        if not spec.moe:
            return cal.act_ff_tensors * spec.intermediate_size * 2 + common
        m = spec.moe
        moe = m.n_experts * m.n_used * 8 + m.n_experts * 4 * 2 + cal.act_ff_tensors * m.shared_ff * 2 + common
        if not m.dense_layers:
            return moe
        later_cache = kv_layer * (spec.n_layers - len(m.dense_layers))
        return max(moe, cal.act_ff_tensors * spec.intermediate_size * 2 + common - later_cache)

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
        k_vals, v_vals = spec.kv_values_per_token(expanded_mla=True)
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
        reserve = cal.allocator_reserve * (kv + act) + cal.weights_reserve * weights
        ctx_mib = cal.cuda_context_mib * MIB
        return Breakdown(weights, kv, np.asarray(act, dtype=np.float64), reserve + ctx_mib, np.zeros(ctx.shape),
                         {"cuda_context": np.full(ctx.shape, ctx_mib), "allocator_reserve": reserve},
                         context=ctx)

    def launch_command(self, model_ref: str, plan: Plan, opts: EngineOptions) -> str:
        """A Python snippet: load the checkpoint as planned and generate within the planned context."""
        quant = plan.quant.upper()
        lines = ["import torch", "from transformers import AutoModelForCausalLM, AutoTokenizer"]
        kwargs = ['device_map="auto"', "dtype=torch.bfloat16"]
        if quant == "NF4":
            lines[-1] += ", BitsAndBytesConfig"
            kwargs.append('quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", '
                          "bnb_4bit_compute_dtype=torch.bfloat16)")
        lines += [
            f'model = AutoModelForCausalLM.from_pretrained("{model_ref}", {", ".join(kwargs)})',
            f'tok = AutoTokenizer.from_pretrained("{model_ref}")',
            f"# prompt + new tokens must stay within {plan.context} tokens",
            'ids = tok("Hello", return_tensors="pt").to(model.device)',
            f"out = model.generate(**ids, max_new_tokens=min(512, {plan.context} - ids.input_ids.shape[1]))",
        ]
        return "\n".join(lines)
