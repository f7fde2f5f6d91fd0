"""The two things every estimate is about: a resolved model and a GPU to plan on.

A leaf module (it imports only the model shape and the tensor list), so the Hub client, the model
resolver, the engines and the UI can all name these types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lander_tui.core.model_spec import RECURRENT, SWA, ModelSpec, Vision
from lander_tui.core.tensors import Tensor, parameter_count

if TYPE_CHECKING:
    from lander_tui.core.gpu.specs import GpuSpec


@dataclass(frozen=True)
class Projector:
    """A vision projector file (mmproj GGUF) beside a GGUF model: where it is and what it holds.

    `ref` is what a command names (a local path, or the file name in a Hub repo), `tensors` the header's
    tensors with their exact types and bytes, `vision` the encoder its `clip.vision.*` keys describe."""

    ref: str
    tensors: tuple[Tensor, ...]
    vision: Vision
    file_type: str | None = None
    local: bool = True

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes or 0 for t in self.tensors)


@dataclass(frozen=True)
class ResolvedModel:
    """A model plus what we know exactly about its weights.

    `tensors` holds a real GGUF file's tensors (exact types and bytes) when we read one, and
    `file_quant` that file's type (e.g. "Q4_K_M"). `gguf_files` maps quant -> file size in bytes for
    a Hub GGUF repo; `dtype_params` maps a safetensors dtype to its exact parameter count. `projector` is
    the vision projector file (mmproj GGUF) beside a GGUF model: a Hub repo's, or one the user named.
    """

    spec: ModelSpec
    origin: str
    tensors: tuple[Tensor, ...] | None = None
    file_quant: str | None = None
    gguf_files: dict[str, int] = field(default_factory=dict)
    dtype_params: dict[str, int] = field(default_factory=dict)
    detail: str = ""
    projector: Projector | None = None


@dataclass(frozen=True)
class Device:
    """A GPU to plan on: what is free on it (MiB) and, when known, its total.

    `index` is the real GPU (nvidia-smi numbering) behind it, None for numbers given by hand or a
    what-if card; a plan on real GPUs can be checked against every later reading.

    `card` is what the speed model knows of the GPU (bandwidth, tensor rates: `core/gpu/specs.py`):
    the catalog's row of a what-if card, a live GPU matched by its NVML name, or the card named with
    `--gpu-model`. None when it is not known; `card_note` then says why, in one line."""

    name: str
    free_mib: float
    total_mib: float | None = None
    index: int | None = None
    card: GpuSpec | None = None
    card_note: str = ""


def model_facts(spec: ModelSpec) -> dict[str, Any]:
    """The short facts the UI and `estimate` show about a model."""
    feats = []
    if spec.moe:
        feats.append(f"MoE {spec.moe.n_used}/{spec.moe.n_experts}")
    if spec.mla:
        feats.append("MLA")
    if spec.count(SWA):
        feats.append(f"SWA {spec.count(SWA)}/{spec.n_layers} w{spec.sliding_window}")
    if spec.count(RECURRENT):
        feats.append(f"linear {spec.count(RECURRENT)}/{spec.n_layers}")
    return {
        "params": parameter_count(spec),
        "layers": spec.n_layers,
        "hidden": spec.hidden_size,
        "heads": spec.n_heads,
        "kv_heads": spec.n_kv_heads,
        "head_dim": spec.head_dim,
        "vocab": spec.vocab_size,
        "context": spec.max_context,
        "features": feats,
    }
