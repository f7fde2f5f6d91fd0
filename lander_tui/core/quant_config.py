"""A pre-quantized checkpoint's own storage, read from its config's `quantization_config`.

vLLM, SGLang and Transformers load such a checkpoint in the form it ships in: gpt-oss keeps its
MoE experts in MXFP4 and everything else in bf16; an FP8 checkpoint stores one byte per weight plus
its scales; GPTQ/AWQ pack 4-bit integers with per-group scales. Which layers stay unquantized comes
from the config (`modules_to_not_convert`, `ignore`, `exclude_modules`, `llm_int8_skip_modules`)
and from what every quantizer leaves alone (embeddings, LM head, routers, norms, biases).

Byte counts are format facts (sources in each `Scheme` builder): MXFP4 = e2m1 nibbles + one e8m0
scale per 32 (OCP MX spec; vLLM `quantization/mxfp4.py` stores uint8 blocks and uint8 scales);
NVFP4 = nibbles + one fp8 scale per 16 + fp32 global scales (modelopt, compressed-tensors
`nvfp4-pack-quantized`); FP8 block = one fp32 scale per 128x128 tile (DeepSeek-V3
`weight_block_size`); GPTQ/AWQ = packed ints + fp16 scale + packed zero per group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.tensors import Tensor

#: GGUF tensor kind -> the module path Hugging Face checkpoints use under `model.layers.N.`.
_HF_MODULE = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_qkv": "self_attn.qkv_proj", "attn_output": "self_attn.o_proj",
    "attn_q_a": "self_attn.q_a_proj", "attn_q_b": "self_attn.q_b_proj",
    "attn_kv_a_mqa": "self_attn.kv_a_proj_with_mqa", "attn_kv_b": "self_attn.kv_b_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    "ffn_gate_inp": "mlp.gate", "ffn_gate_exps": "mlp.experts.gate_proj", "ffn_up_exps": "mlp.experts.up_proj",
    "ffn_down_exps": "mlp.experts.down_proj", "ffn_gate_shexp": "mlp.shared_experts.gate_proj",
    "ffn_up_shexp": "mlp.shared_experts.up_proj", "ffn_down_shexp": "mlp.shared_experts.down_proj",
    "ssm_in": "linear_attn.in_proj",
}
#: Never quantized by any of these quantizers (they only replace nn.Linear layers of the blocks).
_NEVER = ("token_embd", "output", "ffn_gate_inp", "exp_probs_b")


def hf_name(t: Tensor) -> str:
    """The checkpoint's module name for one of our tensors (`model.layers.3.mlp.down_proj`)."""
    if t.name.startswith("token_embd"):
        return "model.embed_tokens"
    if t.name.startswith("output."):
        return "lm_head"
    if t.layer is None:
        return "model.norm"
    return f"model.layers.{t.layer}.{_HF_MODULE.get(t.kind.removesuffix('.weight'), t.kind)}"


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return (fnmatch(name, pattern) or fnmatch(name, pattern + ".*") or name.endswith("." + pattern)
            or f".{pattern}." in f".{name}.")


@dataclass(frozen=True)
class Scheme:
    """How one quantized 2-D weight is stored: `bits` per value, plus `scale_bytes` per `group`
    values along a row (0 = per output row), plus `zero_bits` per group, plus `tile_scale` bytes per
    128x128 tile (FP8 block) and `tensor_bytes` per tensor (global scales)."""

    label: str
    bits: float
    group: int = 0
    scale_bytes: float = 0.0
    zero_bits: float = 0.0
    tile_scale: float = 0.0
    tensor_bytes: float = 0.0

    def matrix_bytes(self, t: Tensor) -> int:
        n = t.n_elements
        rows = t.rows * max(1, t.n_experts)
        groups = n / self.group if self.group else rows
        b = n * self.bits / 8 + groups * (self.scale_bytes + self.zero_bits / 8)
        if self.tile_scale:
            b += -(-t.rows // 128) * -(-t.row // 128) * max(1, t.n_experts) * self.tile_scale
        return round(b + self.tensor_bytes * max(1, t.n_experts))


@dataclass(frozen=True)
class CheckpointQuant:
    """A checkpoint's quantization: its `scheme` and the module patterns it leaves unquantized."""

    scheme: Scheme
    ignore: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.scheme.label

    def quantizes(self, t: Tensor) -> bool:
        if not t.is_matrix or t.kind in _NEVER:
            return False
        name = hf_name(t)
        return not any(_matches(name, p) for p in self.ignore)


def _grouped(method: str, bits: int, group: int, zeros: bool = True) -> Scheme:
    """GPTQ/AWQ/compressed-tensors pack-quantized: fp16 scale per group, packed zero if asymmetric."""
    group = group if group and group > 0 else 0
    label = f"{'AWQ' if method == 'awq' else 'GPTQ'}-{bits}bit" + ("" if group in (0, 128) else f"-g{group}")
    return Scheme(label, bits, group, 2.0, bits if zeros else 0.0)


def _compressed_tensors(q: dict[str, Any]) -> Scheme | None:
    fmt = str(q.get("format") or "")
    groups = q.get("config_groups") or {}
    w = next((g.get("weights") for g in groups.values() if isinstance(g, dict) and g.get("weights")), None)
    if not isinstance(w, dict):
        return None
    bits, typ = int(w.get("num_bits") or 8), str(w.get("type") or "int")
    strategy, group = str(w.get("strategy") or "channel"), int(w.get("group_size") or 0)
    if "nvfp4" in fmt or (typ == "float" and bits == 4):
        return Scheme("NVFP4", 4, 16, 1.0, tensor_bytes=8.0)
    if typ == "float" and bits == 8:
        if strategy == "block":
            return Scheme("FP8", 8, tile_scale=4.0)
        return Scheme("FP8", 8, 0, 4.0 if strategy == "channel" else 0.0, tensor_bytes=4.0)
    if bits == 8:
        return Scheme("INT8", 8, 0, 4.0)
    zeros = not bool(w.get("symmetric", True))
    return Scheme(f"INT{bits}", bits, group if strategy == "group" else 0, 2.0, bits if zeros else 0.0)


def checkpoint_quant(spec: ModelSpec) -> CheckpointQuant | None:
    """The storage of a pre-quantized checkpoint, or None for a plain bf16/fp16 one."""
    q = spec.quantization
    if not isinstance(q, dict):
        return None
    method = str(q.get("quant_method") or q.get("quant_algo") or "").lower()
    ignore = tuple(str(p) for key in ("modules_to_not_convert", "ignore", "exclude_modules", "llm_int8_skip_modules",
                                      "ignored_layers") for p in (q.get(key) or ()))
    scheme: Scheme | None = None
    if method == "mxfp4":
        scheme = Scheme("MXFP4", 4, 32, 1.0)
    elif method in ("fp8", "fbgemm_fp8"):
        block = q.get("weight_block_size")
        scheme = Scheme("FP8", 8, tile_scale=4.0) if block else Scheme("FP8", 8, 0, 4.0)
    elif method in ("gptq", "awq", "auto-round", "auto_round", "gptq_marlin", "awq_marlin"):
        bits = int(q.get("bits") or q.get("w_bit") or 4)
        group = int(q.get("group_size") or q.get("q_group_size") or 128)
        zeros = method.startswith("awq") or not q.get("sym", True) or method.startswith("gptq")
        scheme = _grouped("awq" if method.startswith("awq") else "gptq", bits, group, zeros)
    elif method == "compressed-tensors":
        scheme = _compressed_tensors(q)
    elif method == "modelopt":
        algo = str(q.get("quant_algo") or (q.get("quantization") or {}).get("quant_algo") or "").upper()
        scheme = Scheme("NVFP4", 4, 16, 1.0, tensor_bytes=8.0) if "FP4" in algo else Scheme("FP8", 8, tensor_bytes=4.0)
    elif method == "bitsandbytes":
        if q.get("load_in_4bit"):
            # 4-bit codes + absmax per 64 quantized to 8 bits + f32 per 256 absmax (double quant)
            scheme = Scheme("NF4", 4, 64, 1.0 + 4 / 256)
        else:
            scheme = Scheme("INT8", 8, 0, 4.0)
    if scheme is None:
        return None
    return CheckpointQuant(scheme, ignore)


def native_format(spec: ModelSpec) -> str | None:
    """The quant a pre-quantized checkpoint ships in ("MXFP4", "FP8", "AWQ", ...), which is what
    vLLM, SGLang and Transformers load it as by default; None for a plain 16-bit checkpoint."""
    cq = checkpoint_quant(spec)
    return cq.label if cq else None
