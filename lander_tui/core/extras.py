"""What loads beside a model and surprises people: a vision projector, a draft model, LoRA adapters.

Each engine holds these its own way (llama.cpp: an mmproj file and its clip graph, a second model and
context for `-md`, adapter tensors beside their base layers; vLLM: the vision tower, the encoder's
profiling run, a draft model sharing the KV pool, LoRA slots it pre-allocates), so the memory is the
engine's to answer (`Engine.footprint`, as the `extras` part, `core/memory.py`). This module holds what
the user asks for, in one shape for every engine:

* `Projector`: an mmproj file (its tensors, exactly, from its header) beside a GGUF model;
* `Speculative`: a draft model (any model lander-tui resolves) or the model's own multi-token-prediction
  layers (`Speculative.mtp`), and the tokens drafted per step;
* `Lora`: adapters of one rank (`--lora RANK[xN]`) or a GGUF adapter file (its tensors, exactly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lander_tui.core.errors import LanderError
from lander_tui.core.formats import ggml_type
from lander_tui.core.model import Projector
from lander_tui.core.model_spec import ModelSpec, Vision
from lander_tui.core.tensors import Tensor, model_tensors

if TYPE_CHECKING:
    from lander_tui.core.model import ResolvedModel

__all__ = ["Projector"]


#: llama.cpp's draft length when none is given (common/common.h `common_params_speculative_draft::n_max`).
DEFAULT_DRAFT_TOKENS = 3


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding: a draft model (`model`) or the model's own MTP layers (`mtp`), drafting
    `tokens` tokens per step. `quant`: the draft's weights (None: the draft file's own type, else the
    row's quant); `kv`: its cache type (None: the engine's default, f16 in llama.cpp's `-ctkd`)."""

    model: ResolvedModel | None = None
    tokens: int = DEFAULT_DRAFT_TOKENS
    mtp: bool = False
    quant: str | None = None
    kv: str | None = None
    ref: str = ""  # what the user named (a catalog name, a path, a Hub id), for commands and notes

    def __post_init__(self) -> None:
        if self.tokens < 1:
            raise LanderError("--draft-tokens must be at least 1")
        if (self.model is None) == (not self.mtp):
            raise LanderError("a draft is either a model or the model's own MTP layers")

    @property
    def label(self) -> str:
        return "MTP layers" if self.mtp else f"draft {self.ref or (self.model.spec.name if self.model else '')}"


#: The matrices of a decoder layer adapters usually train (PEFT `target_modules="all-linear"`), by the GGUF
#: tensor kind they attach to.
ALL_LINEAR = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@dataclass(frozen=True)
class Lora:
    """LoRA adapters: `count` of rank `rank` on the `targets` matrices of every layer, or the tensors of a
    GGUF adapter file (`tensors`, exact). `dtype` is how an adapter file stores them (the llama.cpp
    converter's default is F32: convert_lora_to_gguf.py `--outtype f32`)."""

    rank: int = 0
    count: int = 1
    targets: tuple[str, ...] = ALL_LINEAR
    tensors: tuple[Tensor, ...] | None = None
    ref: str = ""
    dtype: str = "F32"

    def __post_init__(self) -> None:
        if self.count < 1:
            raise LanderError("--lora needs at least one adapter (RANKxN with N >= 1)")
        if self.tensors is None and not 1 <= self.rank <= 4096:
            raise LanderError(f"--lora rank must be between 1 and 4096, not {self.rank}")

    @property
    def label(self) -> str:
        if self.tensors is not None:
            return f"LoRA {self.ref} (rank {self.rank})"
        return f"{self.count} LoRA adapter{'s' if self.count > 1 else ''} of rank {self.rank}"


_LORA = re.compile(r"^\s*(\d+)\s*(?:[x*]\s*(\d+))?\s*$", re.IGNORECASE)


def parse_lora(text: str) -> Lora:
    """`--lora 16` (one adapter of rank 16), `--lora 64x4` (four of rank 64), or `--lora FILE.gguf`."""
    raw = text.strip()
    if raw.lower().endswith(".gguf"):
        return lora_from_file(raw)
    m = _LORA.match(raw)
    if not m:
        raise LanderError(f"--lora takes RANK, RANKxN (e.g. 16 or 64x4) or an adapter .gguf, got {text!r}")
    return Lora(rank=int(m.group(1)), count=int(m.group(2) or 1))


def lora_from_file(path: str) -> Lora:
    """An adapter GGUF (convert_lora_to_gguf.py): its `.lora_a`/`.lora_b` tensors, exactly."""
    from pathlib import Path

    from lander_tui.core.gguf_file import read_gguf_metadata

    p = Path(path).expanduser()
    if not p.is_file():
        raise LanderError(f"no such LoRA adapter file: {path}")
    meta, tensors = read_gguf_metadata(p)
    if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
        raise LanderError(f"{p.name} is not a LoRA adapter GGUF (general.type {meta.get('general.type')!r})")
    ranks = {t.rows for t in tensors if t.name.endswith(".lora_a")}
    return Lora(rank=max(ranks, default=0), tensors=tuple(tensors), ref=str(p.resolve()))


def lora_tensors(spec: ModelSpec, lora: Lora) -> tuple[Tensor, ...]:
    """Every adapter tensor (`<base>.lora_a` [n_in, r], `<base>.lora_b` [r, n_out]) with its bytes, for
    one adapter: the file's own, else rank `r` on each target matrix of the model (experts excluded)."""
    if lora.tensors is not None:
        return lora.tensors
    bt = ggml_type(lora.dtype)
    out: list[Tensor] = []
    for t in model_tensors(spec):
        if t.layer is None or t.n_experts or not t.is_matrix or t.kind not in lora.targets:
            continue
        out.append(Tensor(t.name + ".lora_a", t.row, lora.rank, t.layer, 0, lora.dtype,
                          bt.nbytes(t.row * lora.rank)))
        out.append(Tensor(t.name + ".lora_b", lora.rank, t.rows, t.layer, 0, lora.dtype,
                          bt.nbytes(t.rows * lora.rank)))
    return tuple(out)


def lora_bytes_by_layer(spec: ModelSpec, lora: Lora) -> dict[int | None, float]:
    """Bytes of all adapters on each layer (None: tensors outside the layers), for placing them with
    their base layers."""
    out: dict[int | None, float] = {}
    for t in lora_tensors(spec, lora):
        out[t.layer] = out.get(t.layer, 0.0) + float(t.nbytes or 0) * lora.count
    return out


def projector_of(model: ResolvedModel, enabled: bool | None) -> Vision | None:
    """The encoder this row loads: the model's, unless the user left it out (`--no-mmproj`)."""
    if enabled is False:
        return None
    vision = model.projector.vision if model.projector is not None else model.spec.vision
    if enabled and vision is None:
        raise LanderError(f"{model.spec.name} has no vision encoder that lander-tui knows of: no projector to load "
                          "(give the mmproj file with --mmproj FILE)")
    return vision


#: The matrices vLLM and SGLang wrap with LoRA slots, by GGUF kind; the row-parallel ones (their input
#: split across TP ranks) apart (vllm/lora/layers/base_linear.py `create_lora_weights`).
COLUMN_PARALLEL = ("attn_q", "attn_k", "attn_v", "attn_qkv", "ffn_gate", "ffn_up")
ROW_PARALLEL = ("attn_output", "ffn_down")


def lora_slot_bytes(spec: ModelSpec, rank: int, slots: int, tp: int = 1, value_bytes: float = 2.0,
                    embeddings: bool = True) -> float:
    """LoRA weights a server pre-allocates on one TP rank for `slots` adapters of up to `rank`
    (vllm/lora/layers/base_linear.py: `lora_a_stacked` [slots, 1, rank, in] and `lora_b_stacked`
    [slots, 1, out, rank] per linear layer, in the model's dtype; a column-parallel layer's output and a
    row-parallel layer's input are split across ranks), and with `embeddings` the input embedding
    (A [vocab, rank], B [hidden, rank]) and LM head (A [rank, hidden], B [vocab / tp, rank]) slots
    (vllm/lora/layers/vocal_parallel_embedding.py, logits_processor.py). Routed experts are left out."""
    values = 0.0
    for t in model_tensors(spec):
        if t.layer is None or t.n_experts or not t.is_matrix:
            continue
        if t.kind in COLUMN_PARALLEL:
            values += rank * t.row + t.rows / tp * rank
        elif t.kind in ROW_PARALLEL:
            values += rank * t.row / tp + t.rows * rank
    if embeddings:
        V, H = spec.vocab_size, spec.hidden_size
        values += V * rank + H * rank + rank * H + V / tp * rank
    return values * slots * value_bytes


def projector_from_file(path: str) -> Projector:
    """A local mmproj GGUF (`--mmproj FILE`): its tensors and its encoder's shape, from the header."""
    from pathlib import Path

    from lander_tui.core.gguf_file import read_gguf_metadata
    from lander_tui.core.vision import is_mmproj, vision_from_mmproj

    p = Path(path).expanduser()
    if not p.is_file():
        raise LanderError(f"no such projector file: {path}")
    meta, tensors = read_gguf_metadata(p)
    if not is_mmproj(meta):
        raise LanderError(f"{p.name} is not a vision projector (mmproj) GGUF: general.architecture is "
                          f"{meta.get('general.architecture')!r}, not 'clip'")
    ftype = meta.get("general.file_type")
    return Projector(str(p.resolve()), tuple(tensors), vision_from_mmproj(meta, tensors),
                     file_type=str(ftype) if ftype is not None else None, local=True)


def extras_json(model: ResolvedModel, mmproj: bool | None, speculative: Speculative | None,
                lora: Lora | None) -> dict[str, object]:
    """What the estimate loads beside the model, for the JSON (`extras`): each piece, or null."""
    vision = projector_of(model, mmproj)
    proj: dict[str, object] | None = None
    if vision is not None:
        from lander_tui.core.vision import vision_param_count

        proj = {"projector_type": vision.projector, "params": vision_param_count(vision),
                "file": model.projector.ref if model.projector is not None else None,
                "image_size": vision.image_size}
    spec: dict[str, object] | None = None
    if speculative is not None:
        spec = {"draft": "mtp" if speculative.mtp else speculative.ref or (
            speculative.model.spec.name if speculative.model else None), "tokens": speculative.tokens}
    lj: dict[str, object] | None = None
    if lora is not None:
        lj = {"rank": lora.rank, "count": lora.count, "file": lora.ref or None}
    return {"projector": proj, "speculative": spec, "lora": lj}
