"""A multimodal model's image encoder and projector: its shape, its tensors, and what running it costs.

The same encoder is loaded differently by each engine: llama.cpp reads a separate `mmproj` GGUF (the file
`convert_hf_to_gguf.py --mmproj` writes, or one published beside the model's GGUFs) and reserves a
compute graph for one image at start-up; vLLM, SGLang and Transformers load the vision tower from the
checkpoint in 16 bits. This module answers, from a Hugging Face `vision_config` or an mmproj header:

* `vision_from_config` / `vision_from_mmproj`: the encoder's shape (`model_spec.Vision`);
* `vision_tensors`: every tensor of the projector, named and typed as the mmproj converter writes it
  (llama.cpp tools/mtmd/clip-impl.h names; conversion/base.py `MmprojModel`: F16 matrices, F32 vectors,
  and the tensors each model's converter forces to F32), hence its exact parameter count;
* `clip_compute_bytes`: the compute buffer llama.cpp's clip reserves for its warm-up image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lander_tui.core.formats import ggml_type
from lander_tui.core.model_spec import DYNAMIC_MAX_SIDE, Vision, vision_from_config
from lander_tui.core.tensors import Tensor

__all__ = ["DYNAMIC_MAX_SIDE", "vision_from_config"]

F32 = 4

# --- shape from an mmproj GGUF header -------------------------------------------------------------


def vision_from_mmproj(meta: Mapping[str, Any], tensors: Sequence[Tensor]) -> Vision:
    """The encoder an mmproj file describes (its `clip.vision.*` keys, tools/mtmd/clip-impl.h)."""

    def get(key: str, default: int = 0) -> int:
        val = meta.get(f"clip.vision.{key}", default)
        return int(val) if isinstance(val, int | float) else default

    proj = str(meta.get("clip.projector_type") or meta.get("clip.vision.projector_type") or "")
    hidden = get("embedding_length")
    merge = get("projector.scale_factor") or get("spatial_merge_size")
    if not merge:
        merge = {"gemma3": 4, "qwen2vl_merger": 2, "qwen2.5vl_merger": 2, "qwen3vl_merger": 2}.get(proj, 1)
    names = {t.name for t in tensors}
    image = DYNAMIC_MAX_SIDE.get(proj) or get("image_size")
    return Vision(proj or "vit", hidden, get("feed_forward_length"), get("block_count"), get("attention.head_count"),
                  image, get("patch_size") or 14, merge=merge, text_hidden=get("projection_dim"),
                  gated_ffn="v.blk.0.ffn_gate.weight" in names, windowed=bool(get("n_wa_pattern")),
                  params=sum(t.n_elements for t in tensors))


def is_mmproj(meta: Mapping[str, Any]) -> bool:
    return meta.get("general.architecture") == "clip" or "clip.has_vision_encoder" in meta


# --- the tensors of a projector -------------------------------------------------------------------


def vision_tensors(v: Vision) -> tuple[Tensor, ...]:
    """Every tensor of the projector as the mmproj converter writes it, with its type (F16 matrices, F32
    vectors and the tensors the model's converter forces to F32)."""
    h, f, L = v.hidden_size, v.intermediate_size, v.n_layers
    out: list[Tensor] = []

    def add(name: str, row: int, rows: int = 1, dtype: str | None = None) -> None:
        dt = dtype or ("F16" if rows > 1 else "F32")
        out.append(Tensor(name, row, rows, None, 0, dt, ggml_type(dt).nbytes(row * rows)))

    n_pos = (v.image_size // v.patch_size) ** 2
    ps = v.patch_size
    patch = 3 * ps * h  # a conv kernel [ps, ps, 3, h]: rows of `ps` values
    norm_bias = v.projector not in ("qwen2.5vl_merger", "pixtral")  # RMS norms have no bias
    lin_bias = v.projector != "pixtral"
    if v.projector == "gemma3":  # Gemma3VisionModel.tensor_force_quant: ".embeddings." -> F32
        add("v.patch_embd.weight", ps, patch, "F32")
        add("v.patch_embd.bias", h)
        add("v.position_embd.weight", h, n_pos, "F32")
    elif v.projector in ("qwen2vl_merger", "qwen2.5vl_merger"):  # the Conv3D split in two Conv2Ds
        add("v.patch_embd.weight", ps, patch)
        add("v.patch_embd.weight.1", ps, patch)
    elif v.projector == "pixtral":
        add("v.patch_embd.weight", ps, patch)
        add("v.pre_ln.weight", h)
    else:
        add("v.patch_embd.weight", ps, patch)
        add("v.patch_embd.bias", h)
        add("v.position_embd.weight", h, n_pos + (1 if v.projector == "mlp" else 0))
        if v.projector == "mlp":
            add("v.class_embd", h)
            add("v.pre_ln.weight", h)
            add("v.pre_ln.bias", h)
    for i in range(L):
        p = f"v.blk.{i}."
        add(p + "ln1.weight", h)
        if norm_bias:
            add(p + "ln1.bias", h)
        for m in ("attn_q", "attn_k", "attn_v", "attn_out"):
            add(p + m + ".weight", h, h)
            if lin_bias:
                add(p + m + ".bias", h)
        add(p + "ln2.weight", h)
        if norm_bias:
            add(p + "ln2.bias", h)
        ffn = ("ffn_gate", "ffn_up", "ffn_down") if v.gated_ffn else ("ffn_up", "ffn_down")
        for m in ffn:
            row, rows = (f, h) if m == "ffn_down" else (h, f)
            add(p + m + ".weight", row, rows)
            if lin_bias:
                add(p + m + ".bias", rows)
    t = v.text_hidden or h
    if v.projector == "gemma3":
        add("v.post_ln.weight", h)
        add("v.post_ln.bias", h)
        add("mm.input_projection.weight", t, h)
        add("mm.soft_emb_norm.weight", h)
    elif v.projector in ("qwen2vl_merger", "qwen2.5vl_merger"):
        add("v.post_ln.weight", h)
        if norm_bias:
            add("v.post_ln.bias", h)
        merged = v.merge * v.merge * h
        add("mm.0.weight", merged, merged)
        add("mm.0.bias", merged)
        add("mm.2.weight", merged, t)
        add("mm.2.bias", t)
    elif v.projector == "pixtral":
        add("mm.input_norm.weight", h)
        if v.merge > 1:
            add("mm.patch_merger.weight", v.merge * v.merge * h, h)
        add("mm.1.weight", h, t)
        add("mm.1.bias", t)
        add("mm.2.weight", t, t)
        add("mm.2.bias", t)
    elif v.projector == "mlp":
        add("mm.0.weight", h, t)
        add("mm.0.bias", t)
        add("mm.2.weight", t, t)
        add("mm.2.bias", t)
    else:
        add("v.post_ln.weight", h)
        add("v.post_ln.bias", h)
        add("mm.0.weight", h, t)
        add("mm.0.bias", t)
    return tuple(out)


def vision_param_count(v: Vision) -> int:
    """The tower and projector's parameters: a file's own count, else every tensor `vision_tensors` lists."""
    return v.params or sum(t.n_elements for t in vision_tensors(v))


# --- what the encoder costs to run ---------------------------------------------------------------


#: Warm-up image of the dynamic-resolution projectors, in language-model tokens (clip.cpp
#: `set_warmup_n_tokens`: Qwen-VL 46 x 46 "to avoid OOM on warmup", Pixtral 16 x 16); the others warm up
#: on a square image of `image_size`.
WARMUP_TOKENS = {"qwen2vl_merger": 46 * 46, "qwen2.5vl_merger": 46 * 46, "qwen3vl_merger": 46 * 46, "pixtral": 256}


def warmup_patches(v: Vision) -> int:
    """Patches of the image clip.cpp reserves its graph for (`clip_model_loader::get_dummy_batch`)."""
    tokens = WARMUP_TOKENS.get(v.projector)
    if tokens is None:
        side = v.image_size // v.patch_size
        return side * side
    return tokens * max(1, v.merge) ** 2


@dataclass(frozen=True)
class ClipGraph:
    """Named constants of clip's worst-case graph, from the real llama.cpp (tests/test_extras_real.py).

    With flash attention one ViT layer peaks in its MLP, where the up projection (n x n_ff f32) is alive
    beside `fa_embd_tensors` n x n_embd f32 tensors (residual, the normed input, the output being
    written): Gemma 3's SigLIP at 896 px reserves exactly 4096 x (4304 + 3 x 1152) x 4 B = 121.25 MiB.
    Without it the attention scores of every head (n_head x n x n f32) sit beside `nofa_embd_tensors`
    such tensors (1132.00 MiB for the same encoder). Window attention (Qwen2.5-VL) adds an [n, n] f32 mask
    and, with flash attention, its f16 copy; this formula is within 9 % of the real buffer there."""

    fa_embd_tensors: float = 3.0
    nofa_embd_tensors: float = 6.0


CLIP_GRAPH = ClipGraph()


def clip_compute_bytes(v: Vision, flash_attn: bool, graph: ClipGraph = CLIP_GRAPH) -> float:
    """The compute buffer llama.cpp's clip reserves for its warm-up image (`reserve_compute_meta`)."""
    n = warmup_patches(v)
    h, f = v.hidden_size, v.intermediate_size
    if flash_attn:
        out = n * (f + graph.fa_embd_tensors * h) * F32
        if v.windowed:
            out += n * n * (F32 + 2)
    else:
        out = v.n_heads * n * n * F32 + n * graph.nofa_embd_tensors * h * F32
        if v.windowed:
            out += n * n * F32
    return float(out)
