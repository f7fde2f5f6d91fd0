"""Write REAL small GGUF files with `gguf.GGUFWriter` for tests (no download, no weights worth reading).

Every tensor is written as zero bytes of exactly the size its ggml type needs, with the true
`raw_dtype`, so a header reader sees the same types, shapes and offsets as in a llama.cpp file.
Shapes are given the way GGUF stores them: `ne = (ne0, ne1[, ne2])`, ne0 being the row length.

Helpers (all return the path of the first file written):

* `write_gguf(path, arch, meta, tensors, ...)` — anything: metadata dict + `(name, ne, type)` list.
* `write_llama_gguf(path, ...)` — a tiny Llama with a Q4_K_M-like mix (F32 norms, Q4_K, Q6_K, Q8_0).
* `write_llama_gguf(path, tied=True)` — the tied-embedding variant (no `output.weight`).
* `write_moe_gguf(path, ...)` — a tiny Qwen3-MoE (3-D expert tensors, router, q/k norms).
* `write_mla_gguf(path, ...)` — a tiny DeepSeek-V2-Lite-like model (MLA, a leading dense layer,
  shared expert).
* `llama_tensors(...)` — the `(name, ne, type)` list `write_llama_gguf` writes, for expected values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, GGUFWriter

from lander_tui.core.gguf_file import FTYPE_IDS

TensorDef = tuple[str, tuple[int, ...], str]  # (name, ne (row length first), ggml type name)


def tensor_nbytes(ne: Sequence[int], type_name: str) -> int:
    """Bytes ggml stores for a tensor of shape `ne` in `type_name` (from the gguf package's table)."""
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    n = 1
    for d in ne:
        n *= d
    return n // block * size


def _zeros(ne: Sequence[int], type_name: str) -> np.ndarray:
    qt = GGMLQuantizationType[type_name]
    shape = tuple(reversed(ne))  # numpy order: last dim is the row
    if qt == GGMLQuantizationType.F32:
        return np.zeros(shape, dtype=np.float32)
    if qt == GGMLQuantizationType.F16:
        return np.zeros(shape, dtype=np.float16)
    block, size = GGML_QUANT_SIZES[qt]
    if ne[0] % block:
        raise ValueError(f"row {ne[0]} is not a multiple of the {type_name} block ({block})")
    return np.zeros((*shape[:-1], ne[0] // block * size), dtype=np.uint8)


def _add_meta(w: GGUFWriter, key: str, value: Any) -> None:
    if isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        w.add_uint32(key, value) if 0 <= value < 2**32 else w.add_int64(key, value)
    elif isinstance(value, float):
        w.add_float32(key, value)
    elif isinstance(value, str):
        w.add_string(key, value)
    elif isinstance(value, list | tuple):
        if value and isinstance(value[0], bool):
            w.add_key_value(key, list(value), GGUFValueType.ARRAY, sub_type=GGUFValueType.BOOL)
        elif value and isinstance(value[0], int):
            w.add_key_value(key, list(value), GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT32)
        else:
            w.add_array(key, list(value))
    else:
        raise TypeError(f"cannot write {key}={value!r}")


def write_gguf(path: str | Path, arch: str, meta: dict[str, Any], tensors: Iterable[TensorDef], *,
               file_type: str | None = None, n_tokens: int | None = None, name: str | None = None,
               split_max_tensors: int = 0) -> Path:
    """Write a GGUF file (or split set when `split_max_tensors` > 0).

    `meta` keys without a dot get the `<arch>.` prefix (`"block_count"` -> `"llama.block_count"`).
    `n_tokens` writes a `tokenizer.ggml.tokens` list of that many strings (it makes the header
    realistically long). `file_type` writes `general.file_type` (e.g. "Q4_K_M"); None leaves it out.
    Returns the path of the (first) file.
    """
    path = Path(path)
    w = GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    if name:
        w.add_name(name)
    if file_type is not None:
        w.add_file_type(FTYPE_IDS[file_type])
    for key, value in meta.items():
        _add_meta(w, key if key.startswith(("general.", "tokenizer.")) else f"{arch}.{key}", value)
    if n_tokens:
        w.add_tokenizer_model("llama")
        w.add_token_list([f"<tok{i}>" for i in range(n_tokens)])
    for tname, ne, ttype in tensors:
        qt = GGMLQuantizationType[ttype]
        arr = _zeros(ne, ttype)
        raw = None if qt in (GGMLQuantizationType.F32, GGMLQuantizationType.F16) else qt
        w.add_tensor(tname, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if split_max_tensors and len(w.tensors) > 1:
        return path.with_name(f"{path.stem}-00001-of-{len(w.tensors):05d}.gguf")
    return path


def llama_tensors(*, n_layers: int = 2, hidden: int = 256, n_heads: int = 4, n_kv_heads: int = 2,
                  ff: int = 512, vocab: int = 512, tied: bool = False) -> list[TensorDef]:
    """A Q4_K_M-like tensor mix: F32 norms, Q4_K matrices, Q6_K attn_v/ffn_down/output, Q8_0 embeddings."""
    hd = hidden // n_heads
    t: list[TensorDef] = [("token_embd.weight", (hidden, vocab), "Q8_0")]
    for i in range(n_layers):
        p = f"blk.{i}."
        t += [
            (p + "attn_norm.weight", (hidden,), "F32"),
            (p + "attn_q.weight", (hidden, n_heads * hd), "Q4_K"),
            (p + "attn_k.weight", (hidden, n_kv_heads * hd), "Q4_K"),
            (p + "attn_v.weight", (hidden, n_kv_heads * hd), "Q6_K"),
            (p + "attn_output.weight", (n_heads * hd, hidden), "Q4_K"),
            (p + "ffn_norm.weight", (hidden,), "F32"),
            (p + "ffn_gate.weight", (hidden, ff), "Q4_K"),
            (p + "ffn_up.weight", (hidden, ff), "Q4_K"),
            (p + "ffn_down.weight", (ff, hidden), "Q6_K"),
        ]
    t.append(("output_norm.weight", (hidden,), "F32"))
    if not tied:
        t.append(("output.weight", (hidden, vocab), "Q6_K"))
    return t


def write_llama_gguf(path: str | Path, *, n_layers: int = 2, hidden: int = 256, n_heads: int = 4,
                     n_kv_heads: int = 2, ff: int = 512, vocab: int = 512, context: int = 4096,
                     tied: bool = False, file_type: str | None = "Q4_K_M", name: str = "tiny-llama",
                     split_max_tensors: int = 0, extra_meta: dict[str, Any] | None = None) -> Path:
    """A tiny Llama GGUF (arch `llama`) with real header fields and a mixed-type tensor table.

    Tensor sizes must be multiples of 256 along rows for the K-quants: keep `hidden` and `ff`
    multiples of 256. `tied=True` leaves out `output.weight` (tied embeddings).
    """
    meta: dict[str, Any] = {
        "block_count": n_layers,
        "embedding_length": hidden,
        "feed_forward_length": ff,
        "attention.head_count": n_heads,
        "attention.head_count_kv": n_kv_heads,
        "context_length": context,
        "rope.dimension_count": hidden // n_heads,
        "attention.layer_norm_rms_epsilon": 1e-5,
        **(extra_meta or {}),
    }
    tensors = llama_tensors(n_layers=n_layers, hidden=hidden, n_heads=n_heads, n_kv_heads=n_kv_heads,
                            ff=ff, vocab=vocab, tied=tied)
    return write_gguf(path, "llama", meta, tensors, file_type=file_type, n_tokens=vocab, name=name,
                      split_max_tensors=split_max_tensors)


def write_moe_gguf(path: str | Path, *, n_layers: int = 2, hidden: int = 256, n_heads: int = 4,
                   n_kv_heads: int = 2, head_dim: int = 64, n_experts: int = 8, n_used: int = 2,
                   expert_ff: int = 256, vocab: int = 512, context: int = 40960,
                   file_type: str | None = "Q4_K_M", name: str = "tiny-qwen3moe") -> Path:
    """A tiny Qwen3-MoE GGUF (arch `qwen3moe`): 3-D `*_exps` tensors [ne0, ne1, n_expert], F32 router."""
    meta: dict[str, Any] = {
        "block_count": n_layers,
        "embedding_length": hidden,
        "feed_forward_length": 768,
        "attention.head_count": n_heads,
        "attention.head_count_kv": n_kv_heads,
        "attention.key_length": head_dim,
        "attention.value_length": head_dim,
        "context_length": context,
        "expert_count": n_experts,
        "expert_used_count": n_used,
        "expert_feed_forward_length": expert_ff,
    }
    t: list[TensorDef] = [("token_embd.weight", (hidden, vocab), "Q4_K")]
    for i in range(n_layers):
        p = f"blk.{i}."
        t += [
            (p + "attn_norm.weight", (hidden,), "F32"),
            (p + "attn_q.weight", (hidden, n_heads * head_dim), "Q4_K"),
            (p + "attn_k.weight", (hidden, n_kv_heads * head_dim), "Q4_K"),
            (p + "attn_v.weight", (hidden, n_kv_heads * head_dim), "Q6_K"),
            (p + "attn_q_norm.weight", (head_dim,), "F32"),
            (p + "attn_k_norm.weight", (head_dim,), "F32"),
            (p + "attn_output.weight", (n_heads * head_dim, hidden), "Q4_K"),
            (p + "ffn_norm.weight", (hidden,), "F32"),
            (p + "ffn_gate_inp.weight", (hidden, n_experts), "F32"),
            (p + "ffn_gate_exps.weight", (hidden, expert_ff, n_experts), "Q4_K"),
            (p + "ffn_up_exps.weight", (hidden, expert_ff, n_experts), "Q4_K"),
            (p + "ffn_down_exps.weight", (expert_ff, hidden, n_experts), "Q6_K"),
        ]
    t += [("output_norm.weight", (hidden,), "F32"), ("output.weight", (hidden, vocab), "Q6_K")]
    return write_gguf(path, "qwen3moe", meta, t, file_type=file_type, n_tokens=vocab, name=name)


def write_mla_gguf(path: str | Path, *, n_layers: int = 3, hidden: int = 256, n_heads: int = 4,
                   kv_lora_rank: int = 128, rope_dim: int = 32, nope_dim: int = 64, v_dim: int = 64,
                   n_experts: int = 4, n_used: int = 2, expert_ff: int = 256, n_shared: int = 1,
                   dense_ff: int = 512, n_dense: int = 1, vocab: int = 512, context: int = 163840,
                   file_type: str | None = "Q8_0", name: str = "tiny-deepseek2", legacy: bool = False) -> Path:
    """A tiny DeepSeek-V2-Lite-like GGUF (arch `deepseek2`).

    MLA without q-LoRA, `n_dense` leading dense layers, then MoE layers with `n_shared` shared
    experts. Matrices are Q8_0, norms and the router F32. Written as today's converter does
    (conversion/deepseek.py: `key_length_mla`, one KV head of the latent's width, `attn_k_b`/`attn_v_b`);
    `legacy=True` writes the older layout (a fused `attn_kv_b`, per-head key/value lengths), which
    llama.cpp runs as plain multi-head attention.
    """
    mla_meta: dict[str, Any] = {
        "attention.head_count_kv": n_heads,
        "attention.key_length": nope_dim + rope_dim,
        "attention.value_length": v_dim,
    } if legacy else {
        "attention.head_count_kv": 1,
        "attention.key_length": kv_lora_rank + rope_dim,
        "attention.value_length": kv_lora_rank,
        "attention.key_length_mla": nope_dim + rope_dim,
        "attention.value_length_mla": v_dim,
    }
    meta: dict[str, Any] = {
        "block_count": n_layers,
        "embedding_length": hidden,
        "feed_forward_length": dense_ff,
        "attention.head_count": n_heads,
        **mla_meta,
        "attention.kv_lora_rank": kv_lora_rank,
        "rope.dimension_count": rope_dim,
        "context_length": context,
        "leading_dense_block_count": n_dense,
        "expert_count": n_experts,
        "expert_used_count": n_used,
        "expert_shared_count": n_shared,
        "expert_feed_forward_length": expert_ff,
    }
    q = "Q8_0"
    t: list[TensorDef] = [("token_embd.weight", (hidden, vocab), q)]
    for i in range(n_layers):
        p = f"blk.{i}."
        t += [
            (p + "attn_norm.weight", (hidden,), "F32"),
            (p + "attn_q.weight", (hidden, n_heads * (nope_dim + rope_dim)), q),
            (p + "attn_kv_a_mqa.weight", (hidden, kv_lora_rank + rope_dim), q),
            (p + "attn_kv_a_norm.weight", (kv_lora_rank,), "F32"),
            *([(p + "attn_kv_b.weight", (kv_lora_rank, n_heads * (nope_dim + v_dim)), q)] if legacy else
              [(p + "attn_k_b.weight", (nope_dim, kv_lora_rank, n_heads), q),
               (p + "attn_v_b.weight", (kv_lora_rank, v_dim, n_heads), q)]),
            (p + "attn_output.weight", (n_heads * v_dim, hidden), q),
            (p + "ffn_norm.weight", (hidden,), "F32"),
        ]
        if i < n_dense:
            t += [
                (p + "ffn_gate.weight", (hidden, dense_ff), q),
                (p + "ffn_up.weight", (hidden, dense_ff), q),
                (p + "ffn_down.weight", (dense_ff, hidden), q),
            ]
        else:
            sh = expert_ff * n_shared
            t += [
                (p + "ffn_gate_inp.weight", (hidden, n_experts), "F32"),
                (p + "ffn_gate_exps.weight", (hidden, expert_ff, n_experts), q),
                (p + "ffn_up_exps.weight", (hidden, expert_ff, n_experts), q),
                (p + "ffn_down_exps.weight", (expert_ff, hidden, n_experts), q),
                (p + "ffn_gate_shexp.weight", (hidden, sh), q),
                (p + "ffn_up_shexp.weight", (hidden, sh), q),
                (p + "ffn_down_shexp.weight", (sh, hidden), q),
            ]
    t += [("output_norm.weight", (hidden,), "F32"), ("output.weight", (hidden, vocab), q)]
    return write_gguf(path, "deepseek2", meta, t, file_type=file_type, n_tokens=vocab, name=name)
