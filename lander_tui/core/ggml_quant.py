"""Predict the per-tensor GGML types llama.cpp's quantizer gives a mixed file type (Q4_K_M, Q3_K_L, ...).

A port of the decision rules in llama.cpp `src/llama-quant.cpp` (`llama_tensor_get_type`), summarised
in shared/research/estimator-anchors.md §1.11. Used only to predict a file that we have not seen;
a real GGUF header's types always win.
"""

from __future__ import annotations

from lander_tui.core.formats import GGUF_FTYPE_DEFAULT, ggml_type
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.tensors import Tensor

# Fallback when a row is not a whole number of blocks (llama-quant.cpp tensor_type_fallback).
_FALLBACK = {
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
    "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL", "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL",
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ4_XS": "IQ4_NL", "TQ1_0": "Q4_0", "TQ2_0": "Q4_0",
}
_NEVER_QUANTIZED = ("_norm", "ffn_gate_inp", "ssm_conv1d", "attn_sinks", "exp_probs_b", "pos_embd")
_LOW_IQ = {"IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def predict_tensor_types(spec: ModelSpec, tensors: tuple[Tensor, ...], ftype: str) -> dict[str, str]:
    """Map tensor name -> GGML type name for `ftype` (a key of GGUF_FTYPE_DEFAULT)."""
    ftype = ftype.upper()
    default = GGUF_FTYPE_DEFAULT[ftype]
    n_layer = spec.n_layers
    gqa = spec.n_heads // max(1, spec.n_kv_heads)
    n_expert = spec.moe.n_experts if spec.moe else 0
    has_output = any(t.name == "output.weight" for t in tensors)
    is_70b = spec.n_layers == 80 and spec.hidden_size == 8192
    out: dict[str, str] = {}
    for t in tensors:
        if not t.is_matrix or any(s in t.name for s in _NEVER_QUANTIZED):
            out[t.name] = "F32"
            continue
        if default in ("F32", "F16", "BF16"):
            out[t.name] = default
            continue
        il = t.layer or 0
        kind = t.kind
        new = default
        if t.name == "output.weight" or (not has_output and t.name == "token_embd.weight"):
            if ftype == "MXFP4_MOE" or spec.arch == "falcon" or t.row % ggml_type(default).block:
                new = "Q8_0"
            elif ftype in _LOW_IQ:
                new = "Q5_K"
            elif new != "Q8_0":
                new = "Q6_K"
        elif t.name == "token_embd.weight":
            if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
                new = "Q2_K"
            elif ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
                new = "IQ3_S"
            elif ftype in ("TQ1_0", "TQ2_0"):
                new = "Q4_K"
        elif kind == "attn_v":
            new = _attn_v(ftype, default, il, n_layer, gqa)
            if is_70b and new in ("Q3_K", "Q4_K"):
                new = "Q5_K"
            if n_expert == 8:
                new = "Q8_0"
        elif kind == "attn_k":
            if n_expert == 8:
                new = "Q8_0"
            elif ftype == "IQ3_XS":
                new = "IQ3_XXS"
            elif ftype in ("IQ2_S", "IQ2_M"):
                new = "IQ3_XXS"
        elif kind == "attn_q" and ftype in ("IQ3_XS", "IQ2_S", "IQ2_M"):
            new = "IQ3_XXS"
        elif kind.startswith("ffn_down"):
            new = _ffn_down(ftype, default, il, n_layer, spec.arch, n_expert)
        elif kind == "attn_output":
            if spec.arch != "falcon":
                if n_expert == 8:
                    if ftype in ("Q2_K", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M",
                                 "IQ3_S", "IQ3_M", "IQ4_XS"):
                        new = "Q5_K"
                else:
                    new = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K",
                           "IQ3_M": "Q4_K"}.get(ftype, new)
            elif ftype == "Q3_K_L":
                new = "Q4_K"
        elif kind == "attn_qkv":
            new = {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "IQ3_M": "Q4_K", "Q4_K_M": "Q5_K",
                   "Q5_K_M": "Q6_K"}.get(ftype, new)
        elif kind.startswith(("ffn_gate", "ffn_up")) and ftype == "IQ3_XS":
            if n_layer // 8 <= il < 7 * n_layer // 8:
                new = "IQ3_XXS"
        if t.row % ggml_type(new).block:
            new = _FALLBACK.get(new, "F16")
        out[t.name] = new
    return out


def _attn_v(ftype: str, new: str, i: int, n: int, gqa: int) -> str:
    if ftype == "Q2_K":
        return "Q4_K" if gqa >= 4 else "Q3_K"
    if ftype == "Q2_K_S" and gqa >= 4:
        return "Q4_K"
    if ftype == "IQ3_XXS":
        return "IQ3_S"
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


def _ffn_down(ftype: str, new: str, i: int, n: int, arch: str, n_expert: int) -> str:
    if ftype == "Q2_K":
        return "Q3_K"
    if ftype == "Q2_K_S":
        return "Q4_K" if i < n // 8 else new
    if ftype == "IQ3_XXS":
        return "Q4_K" if i < n // 8 else "Q3_K"
    if ftype == "Q3_K_M":
        if i < n // 16:
            return "Q5_K"
        return "Q4_K" if arch != "falcon" or _use_more_bits(i, n) else "Q3_K"
    if ftype == "IQ3_M" and (i < n // 8 or (n_expert == 8 and _use_more_bits(i, n))):
        return "Q4_K"
    if ftype == "Q3_K_L":
        return "Q4_K" if arch == "falcon" else "Q5_K"
    if ftype == "Q4_K_M":
        if arch == "falcon":
            return "Q6_K" if i < n // 16 else ("Q5_K" if _use_more_bits(i, n) else new)
        return "Q6_K" if _use_more_bits(i, n) else new
    if ftype in ("IQ4_NL", "IQ4_XS") and i < n // 8:
        return "Q5_K"
    if ftype == "Q5_K_M" and _use_more_bits(i, n):
        return "Q6_K"
    if ftype == "Q4_K_S" and arch != "falcon" and i < n // 8:
        return "Q5_K"
    return new
