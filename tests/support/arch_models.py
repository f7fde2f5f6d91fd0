"""Small GGUF models of real architectures, written the way `convert_hf_to_gguf.py` writes them.

Each `ArchCase` holds the Hugging Face `config.json` a user would hand lander-tui and the GGUF a
converter would make from that checkpoint: real head and KV shapes (the named model's head count,
head size, KV heads, MLA ranks, sliding window, DeltaNet heads), few layers, a small vocabulary and,
where the shape allows, a small hidden size. The tensor lists follow llama.cpp's own loaders
(`src/models/<arch>.cpp`, `load_arch_tensors`, in the pinned llama.cpp), independently of
lander-tui's `core/tensors.py`, so a test can compare the two. Weights are random: F16 matrices,
F32 norms/biases/routers/conv kernels (conversion/base.py), gpt-oss experts in MXFP4 as its converter
writes them (conversion/gpt_oss.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

TensorDef = tuple[str, tuple[int, ...], str]  # (name, ne with the row first, source ggml type)
VOCAB = 512


@dataclass(frozen=True)
class ArchCase:
    id: str
    gguf_arch: str
    hf_config: dict[str, Any]
    meta: dict[str, Any]
    tensors: list[TensorDef] = field(default_factory=list)

    @property
    def layers(self) -> int:
        return int(self.meta["block_count"])


def _t(name: str, *ne: int, kind: str = "F16") -> TensorDef:
    return (name, tuple(ne), kind)


def _norm(name: str, n: int) -> TensorDef:
    return (name, (n,), "F32")


def _head(H: int, tied: bool) -> list[TensorDef]:
    out = [_t("token_embd.weight", H, VOCAB), _norm("output_norm.weight", H)]
    if not tied:
        out.append(_t("output.weight", H, VOCAB))
    return out


def _dense_ffn(p: str, H: int, F: int) -> list[TensorDef]:
    return [_t(p + "ffn_gate.weight", H, F), _t(p + "ffn_up.weight", H, F), _t(p + "ffn_down.weight", F, H)]


def _qkvo(p: str, H: int, q: int, kv: int, o_in: int, bias: bool = False) -> list[TensorDef]:
    out = [_t(p + "attn_q.weight", H, q), _t(p + "attn_k.weight", H, kv), _t(p + "attn_v.weight", H, kv),
           _t(p + "attn_output.weight", o_in, H)]
    if bias:
        out += [_norm(p + "attn_q.bias", q), _norm(p + "attn_k.bias", kv), _norm(p + "attn_v.bias", kv)]
    return out


def _base_meta(H: int, L: int, nh: int, nkv: int, hd: int, ff: int, ctx: int) -> dict[str, Any]:
    return {"block_count": L, "embedding_length": H, "feed_forward_length": ff, "attention.head_count": nh,
            "attention.head_count_kv": nkv, "attention.key_length": hd, "attention.value_length": hd,
            "rope.dimension_count": hd, "attention.layer_norm_rms_epsilon": 1e-6, "context_length": ctx,
            "vocab_size": VOCAB}


def _hf(model_type: str, H: int, L: int, nh: int, nkv: int, hd: int, ff: int, ctx: int, tied: bool,
        **extra: Any) -> dict[str, Any]:
    return {"model_type": model_type, "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": nh,
            "num_key_value_heads": nkv, "head_dim": hd, "intermediate_size": ff, "vocab_size": VOCAB,
            "max_position_embeddings": ctx, "tie_word_embeddings": tied, "torch_dtype": "bfloat16", **extra}


def _dense(arch: str, H: int, L: int, nh: int, nkv: int, hd: int, F: int, ctx: int, *, tied: bool,
           bias: bool = False, qk_norm: bool = False) -> ArchCase:
    """A dense decoder as src/models/{llama,qwen2,qwen3}.cpp load it (q/k/v, optional biases and q/k norms)."""
    t = _head(H, tied=tied)
    for i in range(L):
        p = f"blk.{i}."
        t += [_norm(p + "attn_norm.weight", H), *_qkvo(p, H, nh * hd, nkv * hd, nh * hd, bias=bias)]
        if qk_norm:
            t += [_norm(p + "attn_q_norm.weight", hd), _norm(p + "attn_k_norm.weight", hd)]
        t += [_norm(p + "ffn_norm.weight", H), *_dense_ffn(p, H, F)]
    return ArchCase(arch, arch, _hf(arch, H, L, nh, nkv, hd, F, ctx, tied), _base_meta(H, L, nh, nkv, hd, F, ctx), t)


def llama() -> ArchCase:
    """Llama-3.1-8B attention (32 heads x 128, 8 KV heads)."""
    return _dense("llama", 256, 4, 32, 8, 128, 512, 131072, tied=False)


def qwen2() -> ArchCase:
    """Qwen2.5-0.5B (hidden 896 = 14 heads x 64, 2 KV heads, q/k/v biases, tied); qwen2 needs n_embd = heads x 64."""
    return _dense("qwen2", 896, 4, 14, 2, 64, 512, 32768, tied=True, bias=True)


def qwen3() -> ArchCase:
    """Qwen3-8B attention (32 heads x 128, 8 KV heads, q/k norms)."""
    return _dense("qwen3", 256, 4, 32, 8, 128, 512, 40960, tied=False, qk_norm=True)


def _experts(p: str, H: int, F: int, E: int, kind: str = "F16") -> list[TensorDef]:
    return [(p + "ffn_gate_inp.weight", (H, E), "F32"), (p + "ffn_gate_exps.weight", (H, F, E), kind),
            (p + "ffn_up_exps.weight", (H, F, E), kind), (p + "ffn_down_exps.weight", (F, H, E), kind)]


def qwen3moe() -> ArchCase:
    """Qwen3-30B-A3B attention (32 heads x 128, 4 KV heads) with 8 experts (llama.cpp's n_expert == 8 rules)."""
    H, L, nh, nkv, hd, F, E, ctx = 256, 4, 32, 4, 128, 256, 8, 40960
    t = _head(H, tied=False)
    for i in range(L):
        p = f"blk.{i}."
        t += [_norm(p + "attn_norm.weight", H), *_qkvo(p, H, nh * hd, nkv * hd, nh * hd),
              _norm(p + "attn_q_norm.weight", hd), _norm(p + "attn_k_norm.weight", hd),
              _norm(p + "ffn_norm.weight", H), *_experts(p, H, F, E)]
    meta = {**_base_meta(H, L, nh, nkv, hd, 768, ctx), "expert_count": E, "expert_used_count": 2,
            "expert_feed_forward_length": F}
    hf = _hf("qwen3_moe", H, L, nh, nkv, hd, 768, ctx, False, num_experts=E, num_experts_per_tok=2,
             moe_intermediate_size=F, decoder_sparse_step=1, mlp_only_layers=[])
    return ArchCase("qwen3moe", "qwen3moe", hf, meta, t)


def _gemma_layer(p: str, H: int, nh: int, nkv: int, hd: int, F: int, qk_norm: bool) -> list[TensorDef]:
    t = [_norm(p + "attn_norm.weight", H), *_qkvo(p, H, nh * hd, nkv * hd, nh * hd),
         _norm(p + "post_attention_norm.weight", H)]
    if qk_norm:
        t += [_norm(p + "attn_q_norm.weight", hd), _norm(p + "attn_k_norm.weight", hd)]
    return t + [_norm(p + "ffn_norm.weight", H), *_dense_ffn(p, H, F), _norm(p + "post_ffw_norm.weight", H)]


def gemma2() -> ArchCase:
    """Gemma-2-2B attention (8 heads x 256, 4 KV heads, window 4096, every other layer), src/models/gemma2.cpp."""
    H, L, nh, nkv, hd, F, ctx, win = 256, 4, 8, 4, 256, 512, 8192, 4096
    t = _head(H, tied=True)
    for i in range(L):
        t += _gemma_layer(f"blk.{i}.", H, nh, nkv, hd, F, qk_norm=False)
    meta = {**_base_meta(H, L, nh, nkv, hd, F, ctx), "attention.sliding_window": win,
            "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}
    hf = _hf("gemma2", H, L, nh, nkv, hd, F, ctx, True, sliding_window=win, query_pre_attn_scalar=hd)
    return ArchCase("gemma2", "gemma2", hf, meta, t)


def gemma3() -> ArchCase:
    """Gemma-3-270M (hidden 640, 4 heads x 256, 1 KV head, window 512, 5 SWA : 1 full), src/models/gemma3.cpp."""
    H, L, nh, nkv, hd, F, ctx, win = 640, 6, 4, 1, 256, 512, 32768, 512
    t = _head(H, tied=True)
    for i in range(L):
        t += _gemma_layer(f"blk.{i}.", H, nh, nkv, hd, F, qk_norm=True)
    meta = {**_base_meta(H, L, nh, nkv, hd, F, ctx), "attention.sliding_window": win}
    hf = _hf("gemma3_text", H, L, nh, nkv, hd, F, ctx, True, sliding_window=win, sliding_window_pattern=6,
             layer_types=["sliding_attention"] * 5 + ["full_attention"])
    return ArchCase("gemma3", "gemma3", hf, meta, t)


def deepseek2() -> ArchCase:
    """DeepSeek-V3 MLA (kv_lora 512, rope 64, nope 128, v 128) with q-LoRA, a dense first layer, 16 experts
    and a shared one, written as the converter does for the absorbed MLA (attn_k_b / attn_v_b)."""
    H, L, nh, F_dense, F, E, ctx = 256, 3, 8, 512, 256, 16, 163840
    rank, rope, nope, v, q_rank = 512, 64, 128, 128, 256
    t = _head(H, tied=False)
    for i in range(L):
        p = f"blk.{i}."
        t += [_norm(p + "attn_norm.weight", H), _norm(p + "attn_q_a_norm.weight", q_rank),
              _norm(p + "attn_kv_a_norm.weight", rank), _t(p + "attn_q_a.weight", H, q_rank),
              _t(p + "attn_q_b.weight", q_rank, nh * (nope + rope)), _t(p + "attn_kv_a_mqa.weight", H, rank + rope),
              _t(p + "attn_k_b.weight", nope, rank, nh), _t(p + "attn_v_b.weight", rank, v, nh),
              _t(p + "attn_output.weight", nh * v, H), _norm(p + "ffn_norm.weight", H)]
        if i == 0:
            t += _dense_ffn(p, H, F_dense)
        else:
            t += [*_experts(p, H, F, E), _norm(p + "exp_probs_b.bias", E),
                  _t(p + "ffn_gate_shexp.weight", H, F), _t(p + "ffn_up_shexp.weight", H, F),
                  _t(p + "ffn_down_shexp.weight", F, H)]
    meta = {**_base_meta(H, L, nh, 1, rank + rope, F_dense, ctx), "attention.value_length": rank,
            "rope.dimension_count": rope, "leading_dense_block_count": 1, "attention.kv_lora_rank": rank,
            "attention.q_lora_rank": q_rank, "attention.key_length_mla": nope + rope,
            "attention.value_length_mla": v, "expert_count": E, "expert_used_count": 2,
            "expert_shared_count": 1, "expert_feed_forward_length": F, "expert_weights_scale": 2.5,
            "expert_weights_norm": True, "expert_gating_func": 2}
    hf = _hf("deepseek_v3", H, L, nh, nh, nope + rope, F_dense, ctx, False, kv_lora_rank=rank, q_lora_rank=q_rank,
             qk_rope_head_dim=rope, qk_nope_head_dim=nope, v_head_dim=v, n_routed_experts=E, num_experts_per_tok=2,
             moe_intermediate_size=F, n_shared_experts=1, first_k_dense_replace=1, topk_method="noaux_tc")
    return ArchCase("deepseek2", "deepseek2", hf, meta, t)


def gpt_oss() -> ArchCase:
    """gpt-oss-20b attention at its real width (hidden 2880, 64 heads x 64, 8 KV heads, window 128,
    sinks, biases), 4 MXFP4 experts as the converter keeps them; src/models/openai-moe.cpp."""
    H, L, nh, nkv, hd, F, E, ctx, win = 2880, 2, 64, 8, 64, 128, 4, 131072, 128
    t = _head(H, tied=False)
    for i in range(L):
        p = f"blk.{i}."
        t += [_norm(p + "attn_norm.weight", H), _norm(p + "post_attention_norm.weight", H),
              *_qkvo(p, H, nh * hd, nkv * hd, nh * hd, bias=True), _norm(p + "attn_output.bias", H),
              _norm(p + "attn_sinks.weight", nh), *_experts(p, H, F, E, kind="MXFP4"),
              _norm(p + "ffn_gate_inp.bias", E), (p + "ffn_gate_exps.bias", (F, E), "F32"),
              (p + "ffn_up_exps.bias", (F, E), "F32"), (p + "ffn_down_exps.bias", (H, E), "F32")]
    meta = {**_base_meta(H, L, nh, nkv, hd, F, ctx), "attention.sliding_window": win, "expert_count": E,
            "expert_used_count": 2, "expert_feed_forward_length": F}
    hf = _hf("gpt_oss", H, L, nh, nkv, hd, F, ctx, False, num_local_experts=E, num_experts_per_tok=2,
             sliding_window=win, layer_types=["sliding_attention", "full_attention"],
             quantization_config={"quant_method": "mxfp4"})
    return ArchCase("gpt-oss", "gpt-oss", hf, meta, t)


def phi3() -> ArchCase:
    """Phi-3-mini heads (96 wide, as many KV heads as heads), fused qkv and gate_up; src/models/phi3.cpp."""
    H, L, nh, hd, F, ctx = 768, 4, 8, 96, 512, 4096
    t = _head(H, tied=False)
    for i in range(L):
        p = f"blk.{i}."
        t += [_norm(p + "attn_norm.weight", H), _t(p + "attn_qkv.weight", H, 3 * H),
              _t(p + "attn_output.weight", H, H), _norm(p + "ffn_norm.weight", H),
              _t(p + "ffn_up.weight", H, 2 * F), _t(p + "ffn_down.weight", F, H)]
    return ArchCase("phi3", "phi3", _hf("phi3", H, L, nh, nh, hd, F, ctx, False),
                    _base_meta(H, L, nh, nh, hd, F, ctx), t)


def qwen3next() -> ArchCase:
    """Qwen3-Next-80B-A3B heads: gated attention (16 x 256, 2 KV) every 4th layer, Gated DeltaNet
    (16 key heads x 128, 32 value heads x 128, conv 4) in the others, 16 experts + a shared one."""
    H, L, nh, nkv, hd, F, E, ctx = 256, 4, 16, 2, 256, 256, 16, 262144
    nk, dk, nv, dv, d_conv = 16, 128, 32, 128, 4
    key, value = nk * dk, nv * dv
    t = _head(H, tied=False)
    for i in range(L):
        p = f"blk.{i}."
        t += [_norm(p + "attn_norm.weight", H), _norm(p + "post_attention_norm.weight", H)]
        if (i + 1) % 4 == 0:
            t += [*_qkvo(p, H, 2 * nh * hd, nkv * hd, nh * hd), _norm(p + "attn_q_norm.weight", hd),
                  _norm(p + "attn_k_norm.weight", hd)]
        else:
            t += [_t(p + "attn_qkv.weight", H, 2 * key + value), _t(p + "attn_gate.weight", H, value),
                  (p + "ssm_conv1d.weight", (d_conv, 2 * key + value), "F32"), _norm(p + "ssm_dt.bias", nv),
                  _norm(p + "ssm_a", nv), _t(p + "ssm_ba.weight", H, 2 * nv), _norm(p + "ssm_norm.weight", dv),
                  _t(p + "ssm_out.weight", value, H)]
        t += [*_experts(p, H, F, E), _norm(p + "ffn_gate_inp_shexp.weight", H),
              _t(p + "ffn_gate_shexp.weight", H, F), _t(p + "ffn_up_shexp.weight", H, F),
              _t(p + "ffn_down_shexp.weight", F, H)]
    meta = {**_base_meta(H, L, nh, nkv, hd, 512, ctx), "rope.dimension_count": 64, "ssm.conv_kernel": d_conv,
            "ssm.inner_size": value, "ssm.state_size": dk, "ssm.time_step_rank": nv, "ssm.group_count": nk,
            "full_attention_interval": 4, "expert_count": E, "expert_used_count": 2,
            "expert_feed_forward_length": F, "expert_shared_feed_forward_length": F}
    hf = _hf("qwen3_next", H, L, nh, nkv, hd, 512, ctx, False, linear_conv_kernel_dim=d_conv,
             linear_key_head_dim=dk, linear_num_key_heads=nk, linear_value_head_dim=dv, linear_num_value_heads=nv,
             full_attention_interval=4, num_experts=E, num_experts_per_tok=2, moe_intermediate_size=F,
             shared_expert_intermediate_size=F, decoder_sparse_step=1, mlp_only_layers=[])
    return ArchCase("qwen3next", "qwen3next", hf, meta, t)


ALL: dict[str, Callable[[], ArchCase]] = {
    f().id: f for f in (llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, deepseek2, gpt_oss, phi3, qwen3next)
}


# --- writing ----------------------------------------------------------------------------------------------


def _random(ne: tuple[int, ...], kind: str, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
    shape = tuple(reversed(ne))
    if kind == "F32":
        return (1.0 + 0.01 * rng.standard_normal(shape)).astype(np.float32), None
    if kind == "F16":
        return (0.02 * rng.standard_normal(shape)).astype(np.float16), None
    qt = GGMLQuantizationType[kind]
    block, size = GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(*shape[:-1], ne[0] // block, size), dtype=np.uint8)
    if kind == "MXFP4":
        raw[..., 0] = rng.integers(118, 128, size=raw.shape[:-1])  # E8M0 scales near 1.0, never NaN (0xFF)
    return raw.reshape(*shape[:-1], ne[0] // block * size), qt


def write_source_gguf(case: ArchCase, path: Path, seed: int = 0) -> Path:
    """The case's model as a converter's F16 GGUF, random weights, a plain SPM vocabulary."""
    rng = np.random.default_rng(seed)
    w = GGUFWriter(path, case.gguf_arch)
    w.add_name("lander-tui test model")  # not the arch name: llama-vocab.cpp special-cases names like "phi3"
    w.add_file_type(1)  # MOSTLY_F16, what `convert_hf_to_gguf.py --outtype f16` writes
    for key, value in case.meta.items():
        full = f"{case.gguf_arch}.{key}"
        if isinstance(value, bool):
            w.add_bool(full, value)
        elif isinstance(value, int):
            w.add_uint32(full, value)
        elif isinstance(value, float):
            w.add_float32(full, value)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>" for i in range(VOCAB)])
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([1] * VOCAB)
    write_random_tensors(w, case.tensors, rng)
    return path


def write_random_tensors(w: GGUFWriter, tensors: list[TensorDef], rng: np.random.Generator) -> None:
    """Add `tensors` with random values of their types to a writer whose metadata is set, and write the file."""
    for name, ne, kind in tensors:
        arr, raw = _random(ne, kind, rng)
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
