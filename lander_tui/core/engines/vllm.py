"""vLLM GPU memory: a budget of `total x gpu_memory_utilization`, and the KV cache gets the rest.

vLLM sizes itself, not the model: it takes `total_memory x gpu_memory_utilization` (a fraction of
*total*, default 0.9; newer releases 0.92), subtracts the weights, the activation peak of a dummy
forward of `max_num_batched_tokens`, non-torch memory and the CUDA-graph estimate, and fills the
rest with 16-token KV blocks. A context fits when one request of that length fits in those blocks;
"maximum concurrency" is how many such requests fit at once (vllm/v1/core/kv_cache_utils.py).
Sources: shared/research/estimator-anchors.md §3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lander_tui.core.engines.base import MIB, Breakdown, Calibration, EngineOptions, pad
from lander_tui.core.formats import kv_bytes_per_value, torch_dtype_format
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.weights import WeightSet, hf_weights


@dataclass(frozen=True)
class VllmCalibration(Calibration):
    #: Non-torch memory: CUDA context growth, cuBLAS workspace (vLLM logs on one GPU: 0.09-0.2 GiB in
    #: V1 releases, 1.79 GiB in the PR #10511 sample for Llama-3-8B on an H100).
    non_torch_mib: float = 512.0
    #: CUDA-graph memory, reserved inside the budget since v0.21 ("measured 0.26-0.6 GiB in logs").
    cuda_graph_mib: float = 512.0
    #: Activation peak of the profiling forward, per batched token, in hidden-size units (f16/bf16):
    #: hidden, residual, qkv and attention output. With the two below this gives 1.28 GiB for
    #: Llama-3-8B at 8192 tokens; vLLM PR #10511 logged "PyTorch activation peak memory 1.26GiB".
    act_hidden_tensors: float = 6.0
    #: ... and in intermediate-size units (gate/up and the activated product).
    act_ff_tensors: float = 3.0
    #: Sampler rows of logits (f32) and probabilities kept during profiling, per sequence.
    sampler_logit_copies: float = 2.0


@dataclass(frozen=True)
class Vllm:
    name: str = "vllm"
    label: str = "vLLM"

    def granularity(self, opts: EngineOptions) -> int:
        return opts.block_size

    def weights(self, model: Any, quant: str) -> WeightSet:
        return hf_weights(model.spec, quant)

    def default_quant(self, model: Any) -> str:
        return torch_dtype_format(model.spec.torch_dtype)

    def default_kv(self) -> str:
        return "auto"

    def memory(self, model: Any, quant: str, kv_type: str, ctx: np.ndarray, opts: EngineOptions) -> Breakdown:
        spec: ModelSpec = model.spec
        cal = VllmCalibration().with_overrides(opts.overrides)
        assert isinstance(cal, VllmCalibration)
        kvb = kv_bytes_per_value(kv_type, ("F16", "BF16", "fp8", "F32"), "vLLM")  # auto = the model dtype
        w = self.weights(model, quant)
        weights = float(w.total_bytes)
        ctx = np.asarray(ctx, dtype=np.int64)
        block = opts.block_size
        n_req = opts.n_parallel or 1
        k_vals, v_vals = spec.kv_values_per_token()
        page = block * (k_vals + v_vals) * kvb  # bytes of one block of one layer
        T = opts.max_num_batched_tokens
        n_full, n_swa, n_rec = spec.layer_counts()
        kv = ((-(-ctx // block)) * page * n_full).astype(np.float64)
        if n_swa:
            blocks = -(-np.minimum((spec.sliding_window or 1) - 1 + T, ctx) // block) + 1
            kv = kv + n_swa * blocks * page
        if n_rec and spec.recurrent:
            kv = kv + n_rec * 2 * (spec.recurrent.conv + spec.recurrent.ssm) * kvb  # 'align' mode: 2 pages
        kv = kv * n_req
        ff = spec.active_ff
        act = T * (cal.act_hidden_tensors * spec.hidden_size + cal.act_ff_tensors * ff) * 2 \
            + opts.max_num_seqs * spec.vocab_size * 4 * cal.sampler_logit_copies
        graphs = cal.cuda_graph_mib * MIB if opts.cuda_graphs else 0.0
        overhead = np.full(ctx.shape, cal.non_torch_mib * MIB + graphs)
        return Breakdown(
            context=pad(ctx, block), weights=weights, kv=kv, compute=np.full(ctx.shape, float(act)),
            overhead=overhead, host=np.zeros(ctx.shape),
            parts={"cuda_graphs": np.full(ctx.shape, graphs), "non_torch": np.full(ctx.shape, cal.non_torch_mib * MIB)},
        )
