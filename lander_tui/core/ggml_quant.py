"""Predict the per-tensor GGML types llama.cpp's quantizer gives a mixed file type (Q4_K_M, Q3_K_L, ...).

A port of `src/llama-quant.cpp` (llama.cpp as vendored in llama-cpp-python 0.3.36, ggml-org/llama.cpp@0c1e57098):
`tensor_allows_quantization`, `tensor_get_category`, `llama_tensor_get_type_impl` and
`tensor_type_fallback`, walked in the quantizer's own tensor order (`weight_name_comparer` in
src/llama-model-loader.h: by layer, then by name), because its attn_v/ffn_down counters decide which layers
get more bits. The test suite quantizes real files with the real `llama-quantize` and compares every
tensor. Used only to predict a file we have not seen; a real GGUF header's types always win.

The source is what `convert_hf_to_gguf.py` writes (conversion/base.py): 1-D tensors, norms, routers,
conv1d kernels and biases in F32, other matrices in F16/BF16, and a checkpoint's native MXFP4 experts
(gpt-oss, conversion/gpt_oss.py) as MXFP4. llama-quantize refuses to requantize a quantized tensor without
`--allow-requantize` ("requantizing from type mxfp4 is disabled"), and the published gpt-oss quants pass
the experts through as MXFP4 at every level (bartowski: "all FFN kept at MXFP4"), so those stay MXFP4.
"""

from __future__ import annotations

import re

from lander_tui.core.formats import GGUF_FTYPE_DEFAULT, ggml_type
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.tensors import Tensor

_IQ2_FAMILY = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}
_LOW_IQ_OUTPUT = {"IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}
_FLOAT = {"F32", "F16", "BF16"}
# Names llama.cpp never quantizes (tensor_allows_quantization), besides 1-D tensors and non-`weight` names.
_KEEP = ("_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
         "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
         "indexer.q_proj.weight", "mm.a.code_embd", "time_mix_first.weight", "time_mix_w0.weight",
         "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
         "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
         "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
         "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd")
_KEEP_EXACT = ("position_embd.weight", "token_types.weight")
# tensor_type_fallback: a row that is not a whole number of blocks of the chosen type.
_FALLBACK = {
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "TQ1_0": "Q4_0", "TQ2_0": "Q4_0",
    "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}
_LAYER = re.compile(r"^blk\.(\d+)\.")
_EXPERT_SOURCE_MXFP4 = {"gpt_oss"}  # checkpoints whose experts ship as MXFP4 (conversion/gpt_oss.py)


def _layer_of(name: str) -> int:
    m = _LAYER.match(name)
    return int(m.group(1)) if m else -1


def quantizer_order(tensors: tuple[Tensor, ...]) -> list[Tensor]:
    """The order llama-quantize walks tensors: non-layer tensors first, then by layer, then by name."""
    return sorted(tensors, key=lambda t: (_layer_of(t.name), t.name))


def allows_quantization(t: Tensor) -> bool:
    """llama-quant.cpp tensor_allows_quantization (default params: the output tensor is quantized)."""
    name = t.name
    if not t.is_matrix or not name.endswith("weight"):
        return False
    return not any(k in name for k in _KEEP) and name not in _KEEP_EXACT


def category(name: str) -> str:
    """llama-quant.cpp tensor_get_category: substring tests, in its order."""
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for key, cat in (("attn_qkv.weight", "attn_qkv"), ("attn_kv_b.weight", "attn_kv_b"),
                     ("attn_v.weight", "attn_v"), ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"),
                     ("attn_output.weight", "attn_output"), ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"),
                     ("ffn_down", "ffn_down")):
        if key in name:
            return cat
    return "other"


def _attn_v_like(cat: str) -> bool:
    return cat in ("attn_v", "attn_qkv", "attn_kv_b")


def source_type(spec: ModelSpec, t: Tensor, source: str = "F16") -> str:
    """The type a tensor has in the converter's output (or the file's own type when read from one)."""
    if t.ggml_type:
        return t.ggml_type
    if not allows_quantization(t):
        return "F32"
    if spec.arch in _EXPERT_SOURCE_MXFP4 and t.n_experts and "_exps." in t.name:
        return "MXFP4"
    return source


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


class _State:
    """quantize_state_impl: the counters the type choice reads."""

    def __init__(self, spec: ModelSpec, tensors: list[Tensor], imatrix: bool) -> None:
        self.n_attention_wv = sum(1 for t in tensors if _attn_v_like(category(t.name)))
        self.n_layer = spec.n_layers  # n_ffn_down = n_ffn_gate = n_ffn_up = n_layer_all
        self.i_attention_wv = self.i_ffn_down = self.i_ffn_gate = self.i_ffn_up = 0
        self.tied = not any(t.name == "output.weight" for t in tensors)
        self.imatrix = imatrix
        self.n_expert = spec.moe.n_experts if spec.moe else 0
        self.gqa = spec.n_heads // max(1, spec.n_kv_heads)
        self.arch = spec.arch
        self.is_70b = spec.n_layers == 80 and spec.hidden_size == 8192  # llama.cpp LLM_TYPE_70B

    def layer_info(self, counter: int, name: str) -> tuple[int, int]:
        if max(1, self.n_expert) > 1:  # experts are not consecutive: read the layer from the name
            return _layer_of(name), self.n_layer
        return counter, self.n_layer


def _get_type_impl(qs: _State, new: str, t: Tensor, ftype: str, cat: str) -> str:
    """llama-quant.cpp llama_tensor_get_type_impl, branch for branch."""
    falcon = qs.arch == "falcon"
    if cat == "output" or (qs.tied and cat == "token_embd"):
        if ftype == "MXFP4_MOE" or falcon or t.row % ggml_type(new).block:
            return "Q8_0"
        if ftype in _LOW_IQ_OUTPUT:
            return "Q5_K"
        return new if new == "Q8_0" else "Q6_K"
    if ftype == "MXFP4_MOE":
        return "MXFP4" if t.n_experts > 1 else "Q8_0"  # MoE tensors -> MXFP4, other tensors -> Q8_0
    if cat == "token_embd":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        if ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return "IQ3_S"
        if ftype in ("TQ1_0", "TQ2_0"):
            return "Q4_K"
        return new
    if ftype in _IQ2_FAMILY:
        if _attn_v_like(cat):
            qs.i_attention_wv += 1
            if qs.gqa >= 4 or qs.n_expert >= 4:
                return "Q4_K"
            return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
        if qs.n_expert == 8 and cat == "attn_k":
            return "Q4_K"
        if cat == "ffn_down":
            i = qs.i_ffn_down
            qs.i_ffn_down += 1
            if i < qs.n_layer // 8:
                return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            return new
        if cat == "attn_output":
            if qs.n_expert == 8:
                return "Q5_K"
            if ftype in ("IQ1_S", "IQ1_M"):
                return "IQ2_XXS"
            if ftype in ("IQ2_S", "IQ2_M"):
                return "IQ3_S"
        return new
    if _attn_v_like(cat):
        new = _attn_v(qs, ftype, new)
        if qs.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        if qs.n_expert == 8:
            new = "Q8_0"
        qs.i_attention_wv += 1
        return new
    if cat == "attn_k":
        if qs.n_expert == 8:
            return "Q8_0"
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ftype, new)
    if cat == "attn_q":
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ftype, new)
    if cat == "ffn_down":
        i, n = qs.layer_info(qs.i_ffn_down, t.name)
        qs.i_ffn_down += 1
        return _ffn_down(qs, ftype, new, i, n)
    if cat == "attn_output":
        if not falcon:
            if qs.n_expert == 8:
                if ftype in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M",
                             "IQ3_S", "IQ3_M", "IQ4_XS"):
                    return "Q5_K"
                return new
            return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K",
                    "IQ3_M": "Q4_K"}.get(ftype, new)
        return "Q4_K" if ftype == "Q3_K_L" else new
    if cat in ("ffn_gate", "ffn_up"):
        counter = qs.i_ffn_gate if cat == "ffn_gate" else qs.i_ffn_up
        i, n = qs.layer_info(counter, t.name)
        if cat == "ffn_gate":
            qs.i_ffn_gate += 1
        else:
            qs.i_ffn_up += 1
        if ftype == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
            return "IQ3_XXS"
    return new


def _attn_v(qs: _State, ftype: str, new: str) -> str:
    i, n, gqa = qs.i_attention_wv, qs.n_attention_wv, qs.gqa
    if ftype == "Q2_K":
        return "Q4_K" if gqa >= 4 else "Q3_K"
    if ftype == "Q2_K_S" and gqa >= 4:
        return "Q4_K"
    if ftype == "IQ3_XXS":
        return "Q4_K" if gqa >= 4 else ("IQ3_XXS" if qs.imatrix else "IQ3_S")
    if ftype in ("IQ3_XS", "IQ3_S") and gqa >= 4:
        return "Q4_K"
    if ftype == "IQ3_M":
        return "Q4_K"
    if ftype == "Q3_K_M":
        return "Q5_K" if i < 2 else "Q4_K"
    if ftype == "Q3_K_L":
        return "Q5_K"
    if ftype in ("IQ4_NL", "IQ4_XS") and gqa >= 4:
        return "Q5_K"
    if ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
        return "Q6_K"
    if ftype == "Q4_K_S" and i < 4:
        return "Q5_K"
    return new


def _ffn_down(qs: _State, ftype: str, new: str, i: int, n: int) -> str:
    falcon = qs.arch == "falcon"
    if ftype == "Q2_K":
        return "Q3_K"
    if ftype == "Q2_K_S":
        return "Q4_K" if i < n // 8 else new
    if ftype == "IQ3_XXS" and not qs.imatrix:
        return "Q4_K" if i < n // 8 else "Q3_K"
    if ftype == "Q3_K_M":
        if i < n // 16:
            return "Q5_K"
        return "Q4_K" if not falcon or _use_more_bits(i, n) else "Q3_K"
    if ftype == "IQ3_M" and (i < n // 8 or (qs.n_expert == 8 and _use_more_bits(i, n))):
        return "Q4_K"
    if ftype == "Q3_K_L":
        return "Q4_K" if falcon else "Q5_K"
    if ftype == "Q4_K_M":
        if falcon:
            return "Q6_K" if i < n // 16 else ("Q5_K" if _use_more_bits(i, n) else new)
        return "Q6_K" if _use_more_bits(i, n) else new
    if i < n // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not qs.imatrix:
        return "Q5_K"
    if ftype == "Q5_K_M" and _use_more_bits(i, n):
        return "Q6_K"
    if ftype == "Q4_K_S" and not falcon and i < n // 8:
        return "Q5_K"
    if ftype in ("Q4_0", "Q5_0") and qs.imatrix and i < n // 8:
        return "Q4_1" if ftype == "Q4_0" else "Q5_1"
    return new


def _fallback(t: Tensor, new: str) -> str:
    """tensor_type_fallback: a row that is not a whole number of blocks takes a smaller block, else F16."""
    if t.row % ggml_type(new).block == 0:
        return new
    alt = _FALLBACK.get(new, new if ggml_type(new).block <= 32 else "F16")
    return alt if t.row % ggml_type(alt).block == 0 else "F16"


def predict_tensor_types(spec: ModelSpec, tensors: tuple[Tensor, ...], ftype: str, *,
                         imatrix: bool = False) -> dict[str, str]:
    """Map tensor name -> GGML type name for `ftype` (a key of GGUF_FTYPE_DEFAULT).

    `imatrix` says the file was made with an importance matrix (a few rules differ, llama-quant.cpp).
    """
    ftype = ftype.upper()
    default = GGUF_FTYPE_DEFAULT[ftype]
    ordered = quantizer_order(tensors)
    qs = _State(spec, ordered, imatrix)
    out: dict[str, str] = {}
    for t in ordered:
        src = source_type(spec, t, default if default in _FLOAT else "F16")
        if not allows_quantization(t):
            out[t.name] = src
            continue
        if default in _FLOAT:
            new = default
        else:
            new = _fallback(t, _get_type_impl(qs, default, t, ftype, category(t.name)))
        if src not in _FLOAT and src != new:
            new = src  # a quantized source (MXFP4 experts) is passed through, never requantized
        out[t.name] = new
    return out
