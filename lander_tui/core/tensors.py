"""Every weight tensor of a model, named as llama.cpp names them in a GGUF file.

One list serves three jobs: the exact parameter count, the per-tensor types llama.cpp's quantizer
would pick for a mixed file type (`ggml_quant.py`), and where each tensor lives on the GPU/CPU
(`engines/llamacpp.py`). A real GGUF header replaces this list with the file's own tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lander_tui.core.model_spec import RECURRENT, ModelSpec

# Per-arch naming that the HF config does not tell (src/models/*.cpp load_arch_tensors):
_POST_ATTN_NORM_ARCHS = {"gpt_oss", "qwen3_next"}  # second norm is post_attention_norm, no ffn_norm
_GATED_Q_ARCHS = {"qwen3_next"}  # attn_q is [n_embd, 2 * n_head * head_dim]
_SHARED_EXPERT_GATE_ARCHS = {"qwen2_moe", "qwen3_next"}  # ffn_gate_inp_shexp [n_embd]
_FUSED_GATE_UP_ARCHS = {"phi3"}  # one ffn_up [n_embd, 2 * n_ff] holds gate and up


@dataclass(frozen=True)
class Tensor:
    """One weight. `row` is ggml's ne0 (the length quantization blocks run along)."""

    name: str
    row: int
    rows: int
    layer: int | None = None
    n_experts: int = 0
    ggml_type: str | None = None  # set when read from a real file
    nbytes: int | None = None  # exact size when read from a real file

    @property
    def n_elements(self) -> int:
        return self.row * self.rows * max(1, self.n_experts)

    @property
    def is_matrix(self) -> bool:
        return self.rows > 1

    @property
    def kind(self) -> str:
        """The name without `blk.N.` and `.weight`: `attn_v`, `ffn_down_exps`, `token_embd`..."""
        base = self.name.split(".", 2)[-1] if self.name.startswith("blk.") else self.name
        return base.rsplit(".", 1)[0]


@lru_cache(maxsize=256)
def model_tensors(spec: ModelSpec) -> tuple[Tensor, ...]:
    H, V = spec.hidden_size, spec.vocab_size
    out: list[Tensor] = [Tensor("token_embd.weight", H, V)]
    for il, kind in enumerate(spec.kinds()):
        out += _layer(spec, il, kind)
    out.append(Tensor("output_norm.weight", H, 1))
    if spec.norm_bias:
        out.append(Tensor("output_norm.bias", H, 1))
    if not spec.tie_embeddings:
        out.append(Tensor("output.weight", H, V))
    return tuple(out)


@lru_cache(maxsize=256)
def total_elements(spec: ModelSpec) -> int:
    return sum(t.n_elements for t in model_tensors(spec))


def parameter_count(spec: ModelSpec) -> int:
    """Exact parameter count: a real file's own count, else the sum of every tensor's elements (tied
    embeddings once)."""
    return spec.exact_params or total_elements(spec)


@lru_cache(maxsize=256)
def active_parameter_count(spec: ModelSpec) -> int:
    """Parameters one token runs through: the experts it is routed to, not all of them."""
    if not spec.moe:
        return parameter_count(spec)
    return sum(t.n_elements // t.n_experts * spec.moe.n_used if t.n_experts else t.n_elements
               for t in model_tensors(spec))


def _layer(spec: ModelSpec, il: int, kind: str) -> list[Tensor]:
    H = spec.hidden_size
    p = f"blk.{il}."
    t: list[Tensor] = []

    def add(name: str, row: int, rows: int, n_experts: int = 0) -> None:
        t.append(Tensor(p + name, row, rows, il, n_experts))

    add("attn_norm.weight", H, 1)
    if spec.norm_bias:
        add("attn_norm.bias", H, 1)
    if kind == RECURRENT and spec.recurrent and spec.recurrent.v_heads:
        # Gated DeltaNet (Qwen3-Next), as src/models/qwen3next.cpp loads it
        r = spec.recurrent
        key, value = r.k_heads * r.k_dim, r.v_heads * r.v_dim
        add("attn_qkv.weight", H, 2 * key + value)
        add("attn_gate.weight", H, value)
        add("ssm_conv1d.weight", r.d_conv, 2 * key + value)
        add("ssm_dt.bias", r.v_heads, 1)
        add("ssm_a", r.v_heads, 1)
        add("ssm_ba.weight", H, 2 * r.v_heads)
        add("ssm_norm.weight", r.v_dim, 1)
        add("ssm_out.weight", value, H)
    elif kind == RECURRENT and spec.recurrent:
        # Mixer weights of a linear-attention/Mamba layer, counted as one block of parameters.
        add("ssm_in.weight", H, max(1, spec.recurrent.params // H))
    elif spec.mla:
        m, nh = spec.mla, spec.n_heads
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            add("attn_q_a.weight", H, m.q_lora_rank)
            add("attn_q_a_norm.weight", m.q_lora_rank, 1)
            add("attn_q_b.weight", m.q_lora_rank, nh * qk)
        else:
            add("attn_q.weight", H, nh * qk)
        add("attn_kv_a_mqa.weight", H, m.kv_lora_rank + m.qk_rope_head_dim)
        add("attn_kv_a_norm.weight", m.kv_lora_rank, 1)
        # the converter splits kv_b for the absorbed MLA (conversion/deepseek.py): k_b [nope, rank, heads]
        # and v_b [rank, v, heads]; a 3-D tensor is kept as its 2-D rows (same bytes, same ne0)
        add("attn_k_b.weight", m.qk_nope_head_dim, m.kv_lora_rank * nh)
        add("attn_v_b.weight", m.kv_lora_rank, m.v_head_dim * nh)
        add("attn_output.weight", nh * m.v_head_dim, H)
    else:
        q, k, v = spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim_v
        if spec.arch in _GATED_Q_ARCHS:
            q *= 2  # the query projection also yields the output gate
        if spec.fused_qkv:
            add("attn_qkv.weight", H, q + k + v)
            if spec.qkv_bias:
                add("attn_qkv.bias", q + k + v, 1)
        else:
            add("attn_q.weight", H, q)
            add("attn_k.weight", H, k)
            add("attn_v.weight", H, v)
            if spec.qkv_bias:
                add("attn_q.bias", q, 1)
                add("attn_k.bias", k, 1)
                add("attn_v.bias", v, 1)
        if spec.qk_norm:
            add("attn_q_norm.weight", spec.head_dim, 1)
            add("attn_k_norm.weight", spec.head_dim, 1)
        add("attn_output.weight", spec.n_heads * spec.head_dim_v, H)
        if spec.o_bias:
            add("attn_output.bias", H, 1)
        if spec.attn_sinks:
            add("attn_sinks.weight", spec.n_heads, 1)
    if spec.norms_per_layer >= 4:
        add("post_attention_norm.weight", H, 1)
        add("post_ffw_norm.weight", H, 1)
    if spec.norms_per_layer >= 2:
        add("post_attention_norm.weight" if spec.arch in _POST_ATTN_NORM_ARCHS else "ffn_norm.weight", H, 1)
    moe = spec.moe
    if moe and il not in moe.dense_layers:
        E, F = moe.n_experts, moe.expert_ff
        add("ffn_gate_inp.weight", H, E)
        if moe.router_bias:
            add("ffn_gate_inp.bias", E, 1)
        if moe.score_bias:
            add("exp_probs_b.bias", E, 1)
        add("ffn_gate_exps.weight", H, F, E)
        add("ffn_up_exps.weight", H, F, E)
        add("ffn_down_exps.weight", F, H, E)
        if moe.expert_bias:
            add("ffn_gate_exps.bias", F, 1, E)
            add("ffn_up_exps.bias", F, 1, E)
            add("ffn_down_exps.bias", H, 1, E)
        if moe.n_shared and moe.shared_ff:
            if spec.arch in _SHARED_EXPERT_GATE_ARCHS:
                add("ffn_gate_inp_shexp.weight", H, 1)
            add("ffn_gate_shexp.weight", H, moe.shared_ff)
            add("ffn_up_shexp.weight", H, moe.shared_ff)
            add("ffn_down_shexp.weight", moe.shared_ff, H)
    else:
        F = spec.intermediate_size
        if spec.gated_ffn and spec.arch in _FUSED_GATE_UP_ARCHS:
            add("ffn_up.weight", H, 2 * F)
        else:
            if spec.gated_ffn:
                add("ffn_gate.weight", H, F)
            add("ffn_up.weight", H, F)
        add("ffn_down.weight", F, H)
    return t
