"""GGUF files for what loads beside a model: vision projectors (mmproj), LoRA adapters, draft models.

Written the way llama.cpp's converters write them, with random weights and few layers:

* `mmproj(case, path)`: a projector as `convert_hf_to_gguf.py --mmproj` writes it (conversion/base.py
  `MmprojModel`, conversion/gemma.py `Gemma3VisionModel`, conversion/qwenvl.py `Qwen2VLVisionModel`):
  arch `clip`, `clip.vision.*` keys, F16 matrices, F32 norms and biases (and the tensors each converter
  forces to F32), tensor names from tools/mtmd/clip-impl.h. `VisionCase` holds the Hugging Face
  `vision_config` a user's config.json carries beside the GGUF facts.
* `lora(base, path, rank, kinds)`: an adapter as `convert_lora_to_gguf.py` writes it (`general.type`
  adapter, `adapter.type` lora, `adapter.lora.alpha`; `<tensor>.lora_a` [n_in, r] and `.lora_b` [r, n_out],
  F32: the converter's default `--outtype`), for the layers of an `ArchCase`.
* `text_model(...)`: a small text model of any width (the projector's output width must equal the text
  model's `n_embd`, mtmd.cpp), through `arch_models`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter

from support.arch_models import VOCAB, ArchCase, _dense, write_random_tensors, write_source_gguf

TensorDef = tuple[str, tuple[int, ...], str]


@dataclass(frozen=True)
class VisionCase:
    """A projector: its Hugging Face config (what lander-tui reads) and the mmproj GGUF a converter writes."""

    id: str
    projector: str  # clip.projector_type
    hf_config: dict[str, Any]  # the whole multimodal config.json (vision_config + text_config)
    text_hidden: int
    hidden: int
    ff: int
    heads: int
    layers: int
    image_size: int
    patch: int
    extra_meta: dict[str, Any] = field(default_factory=dict)


def gemma3(layers: int = 2, image_size: int = 896, hidden: int = 1152, ff: int = 4304, heads: int = 16,
           text_hidden: int = 2560) -> VisionCase:
    """Gemma 3 4B's SigLIP-so400m at 896 px (google/gemma-3-4b-it config.json `vision_config`)."""
    cfg = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "mm_tokens_per_image": 256,
           "text_config": {"model_type": "gemma3_text", "hidden_size": text_hidden, "intermediate_size": 512,
                           "num_hidden_layers": 2, "sliding_window": 1024},
           "vision_config": {"model_type": "siglip_vision_model", "hidden_size": hidden, "image_size": image_size,
                             "intermediate_size": ff, "num_attention_heads": heads, "num_hidden_layers": layers,
                             "patch_size": 14, "vision_use_head": False},
           "torch_dtype": "bfloat16"}
    return VisionCase("gemma3", "gemma3", cfg, text_hidden, hidden, ff, heads, layers, image_size, 14)


def qwen25vl(layers: int = 4, hidden: int = 1280, ff: int = 3420, heads: int = 16,
             text_hidden: int = 3584) -> VisionCase:
    """Qwen2.5-VL-7B's vision tower (Qwen/Qwen2.5-VL-7B-Instruct config.json `vision_config`: depth 32, hidden
    1280, intermediate 3420, 16 heads, patch 14, merge 2, window attention with a full-attention block
    every 8th), fewer blocks, with the full-attention block every 2nd."""
    cfg = {"model_type": "qwen2_5_vl", "architectures": ["Qwen2_5_VLForConditionalGeneration"],
           "hidden_size": text_hidden, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 28,
           "num_key_value_heads": 4, "vocab_size": VOCAB, "max_position_embeddings": 128000,
           "vision_config": {"model_type": "qwen2_5_vl", "depth": layers, "hidden_size": hidden,
                             "intermediate_size": ff, "num_heads": heads, "in_chans": 3,
                             "out_hidden_size": text_hidden, "patch_size": 14, "spatial_merge_size": 2,
                             "temporal_patch_size": 2, "window_size": 112,
                             "fullatt_block_indexes": list(range(1, layers, 2))},
           "torch_dtype": "bfloat16"}
    return VisionCase("qwen2.5vl", "qwen2.5vl_merger", cfg, text_hidden, hidden, ff, heads, layers, 560, 14,
                      {"clip.vision.n_wa_pattern": 2})


def _t(name: str, *ne: int, kind: str = "F16") -> TensorDef:
    return (name, tuple(ne), kind)


def _v(name: str, n: int) -> TensorDef:
    return (name, (n,), "F32")


def mmproj_tensors(case: VisionCase) -> list[TensorDef]:
    """The projector's tensors, named and typed as the converter writes them."""
    h, f = case.hidden, case.ff
    t: list[TensorDef] = []
    if case.projector == "gemma3":
        n_pos = (case.image_size // case.patch) ** 2
        # Gemma3VisionModel.tensor_force_quant: ".embeddings." tensors F32, the input projection F16
        t += [("v.patch_embd.weight", (case.patch, case.patch, 3, h), "F32"), _v("v.patch_embd.bias", h),
              ("v.position_embd.weight", (h, n_pos), "F32")]
        for i in range(case.layers):
            p = f"v.blk.{i}."
            t += [_v(p + "ln1.weight", h), _v(p + "ln1.bias", h)]
            for m in ("attn_q", "attn_k", "attn_v", "attn_out"):
                t += [_t(p + m + ".weight", h, h), _v(p + m + ".bias", h)]
            t += [_v(p + "ln2.weight", h), _v(p + "ln2.bias", h), _t(p + "ffn_up.weight", h, f),
                  _v(p + "ffn_up.bias", f), _t(p + "ffn_down.weight", f, h), _v(p + "ffn_down.bias", h)]
        t += [_v("v.post_ln.weight", h), _v("v.post_ln.bias", h),
              _t("mm.input_projection.weight", case.text_hidden, h), _v("mm.soft_emb_norm.weight", h)]
    elif case.projector == "qwen2.5vl_merger":
        # Qwen2VLVisionModel: the Conv3D split into two Conv2Ds, qkv split into q/k/v, RMS norms, SwiGLU MLP
        t += [_t("v.patch_embd.weight", case.patch, case.patch, 3, h),
              _t("v.patch_embd.weight.1", case.patch, case.patch, 3, h)]
        for i in range(case.layers):
            p = f"v.blk.{i}."
            t += [_v(p + "ln1.weight", h)]
            for m in ("attn_q", "attn_k", "attn_v", "attn_out"):
                t += [_t(p + m + ".weight", h, h), _v(p + m + ".bias", h)]
            t += [_v(p + "ln2.weight", h), _t(p + "ffn_gate.weight", h, f), _v(p + "ffn_gate.bias", f),
                  _t(p + "ffn_up.weight", h, f), _v(p + "ffn_up.bias", f), _t(p + "ffn_down.weight", f, h),
                  _v(p + "ffn_down.bias", h)]
        t += [_v("v.post_ln.weight", h), _t("mm.0.weight", 4 * h, 4 * h), _v("mm.0.bias", 4 * h),
              _t("mm.2.weight", 4 * h, case.text_hidden), _v("mm.2.bias", case.text_hidden)]
    else:
        raise ValueError(case.projector)
    return t


def mmproj(case: VisionCase, path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w = GGUFWriter(path, "clip")
    w.add_type("mmproj")
    w.add_name("lander-tui test projector")
    w.add_file_type(1)
    w.add_clip_has_vision_encoder(True)
    w.add_clip_projector_type(case.projector)
    w.add_vision_projection_dim(case.text_hidden)
    w.add_vision_image_size(case.image_size)
    w.add_vision_patch_size(case.patch)
    w.add_vision_embedding_length(case.hidden)
    w.add_vision_feed_forward_length(case.ff)
    w.add_vision_block_count(case.layers)
    w.add_vision_head_count(case.heads)
    w.add_vision_attention_layernorm_eps(1e-6)
    w.add_vision_image_mean([0.5, 0.5, 0.5])
    w.add_vision_image_std([0.5, 0.5, 0.5])
    if case.projector == "gemma3":
        w.add_vision_use_gelu(True)
    else:
        w.add_vision_use_silu(True)
    for key, value in case.extra_meta.items():
        w.add_uint32(key, value)
    write_random_tensors(w, mmproj_tensors(case), rng)
    return path


def text_model(arch: str, hidden: int, heads: int, kv_heads: int, head_dim: int, layers: int = 2,
               ff: int = 512, ctx: int = 32768) -> ArchCase:
    """A small dense text model of a real width (llama, qwen2, gemma3 layer layouts)."""
    if arch == "gemma3":
        from support.arch_models import _base_meta, _gemma_layer, _head, _hf

        t = _head(hidden, tied=True)
        for i in range(layers):
            t += _gemma_layer(f"blk.{i}.", hidden, heads, kv_heads, head_dim, ff, qk_norm=True)
        win = 512
        meta = {**_base_meta(hidden, layers, heads, kv_heads, head_dim, ff, ctx), "attention.sliding_window": win}
        hf = _hf("gemma3_text", hidden, layers, heads, kv_heads, head_dim, ff, ctx, True, sliding_window=win,
                 sliding_window_pattern=6)
        return ArchCase("gemma3", "gemma3", hf, meta, t)
    return _dense(arch, hidden, layers, heads, kv_heads, head_dim, ff, ctx, tied=arch == "qwen2",
                  bias=arch == "qwen2")


def write_text_model(case: ArchCase, path: Path) -> Path:
    return write_source_gguf(case, path)


#: The matrices of a decoder layer LoRA adapters usually train (PEFT `target_modules="all-linear"`), by the
#: GGUF tensor kind they attach to.
ALL_LINEAR = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def lora_tensors(base: ArchCase, rank: int, kinds: tuple[str, ...] = ALL_LINEAR) -> list[TensorDef]:
    """`<tensor>.lora_a` [n_in, rank] and `.lora_b` [rank, n_out] for every base matrix of these kinds."""
    out: list[TensorDef] = []
    for name, ne, _ in base.tensors:
        kind = name.split(".")[2] if name.startswith("blk.") else ""
        if kind in kinds and len(ne) == 2:
            out += [(name + ".lora_a", (ne[0], rank), "F32"), (name + ".lora_b", (rank, ne[1]), "F32")]
    return out


def lora(base: ArchCase, path: Path, rank: int, kinds: tuple[str, ...] = ALL_LINEAR, alpha: float = 16.0,
         seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w = GGUFWriter(path, base.gguf_arch)
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", alpha)
    write_random_tensors(w, lora_tensors(base, rank, kinds), rng)
    return path


def with_layers(case: VisionCase, layers: int) -> VisionCase:
    v = {**case.hf_config["vision_config"]}
    v["num_hidden_layers" if "num_hidden_layers" in v else "depth"] = layers
    return replace(case, layers=layers, hf_config={**case.hf_config, "vision_config": v})
