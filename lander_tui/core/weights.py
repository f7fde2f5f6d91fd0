"""Weight bytes per tensor for a model stored in a given format.

GGUF formats use a real file's tensor types when we have the header, else llama.cpp's quantizer
rules (`ggml_quant.py`). Hugging Face formats (BF16/FP8/GPTQ/AWQ/NF4) store the 2-D matrices in the
format and keep norms, biases, routers, embeddings and the LM head in the checkpoint dtype, as
vLLM and Transformers load them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

from lander_tui.core.errors import LanderError
from lander_tui.core.formats import FLOAT_FORMATS, WeightFormat, ggml_type, torch_dtype_format, weight_format
from lander_tui.core.ggml_quant import predict_tensor_types
from lander_tui.core.model_spec import ModelSpec
from lander_tui.core.quant_config import checkpoint_quant, native_format
from lander_tui.core.tensors import Tensor, model_tensors


@dataclass(frozen=True)
class SizedTensor:
    tensor: Tensor
    dtype: str
    nbytes: int


@dataclass(frozen=True)
class WeightSet:
    """Every tensor with its storage type and exact bytes; `exact` when read from a real file."""

    quant: str
    tensors: tuple[SizedTensor, ...]
    exact: bool

    @cached_property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @cached_property
    def _by_name(self) -> dict[str, int]:
        return {t.tensor.name: t.nbytes for t in self.tensors}

    def bytes_of(self, name: str) -> int:
        return self._by_name.get(name, 0)

    def has(self, name: str) -> bool:
        return name in self._by_name

    def layer_bytes(self) -> dict[int | None, int]:
        out: dict[int | None, int] = {}
        for t in self.tensors:
            out[t.tensor.layer] = out.get(t.tensor.layer, 0) + t.nbytes
        return out

    @cached_property
    def bits_per_weight(self) -> float:
        n = sum(t.tensor.n_elements for t in self.tensors)
        return 8.0 * self.total_bytes / max(1, n)


def gguf_format(quant: str) -> WeightFormat:
    """The format of a GGUF file type, or a one-line error for a format llama.cpp cannot load."""
    fmt = weight_format("MXFP4_MOE" if quant.strip().upper() == "MXFP4" else quant)
    if fmt.kind != "gguf":
        raise LanderError(f"{quant} is not a GGUF type; llama.cpp/Ollama take e.g. Q4_K_M, Q8_0, F16")
    return fmt


def hf_format(quant: str) -> WeightFormat:
    """The format of a Hugging Face checkpoint, or a one-line error for a GGUF-only type."""
    fmt = weight_format(quant)
    if fmt.kind == "gguf" and fmt.name not in FLOAT_FORMATS:
        raise LanderError(f"{quant} is a GGUF type; vLLM/Transformers take BF16, FP16, FP8, INT8, GPTQ, AWQ or NF4")
    return fmt


def checkpoint_quants(spec: ModelSpec, alternatives: tuple[str, ...]) -> tuple[str, ...]:
    """The formats vLLM, SGLang and Transformers rows offer by default: the checkpoint as it ships
    (its own quantization, e.g. gpt-oss's MXFP4, else its dtype) first, then the engine's usual
    alternatives (16-bit ones stand for the checkpoint's dtype)."""
    dtype = torch_dtype_format(spec.torch_dtype)
    out = [native_format(spec) or dtype, dtype]
    out += [dtype if weight_format(q).name in FLOAT_FORMATS else q for q in alternatives]
    return tuple(dict.fromkeys(out))


def gguf_weights(spec: ModelSpec, quant: str, file_tensors: tuple[Tensor, ...] | None = None,
                 file_quant: str | None = None) -> WeightSet:
    """llama.cpp weights. A real file's tensors are exact when `quant` is that file's type."""
    fmt = gguf_format(quant)
    if file_tensors is not None and (file_quant is None or file_quant.upper() == fmt.name):
        return WeightSet(fmt.name, tuple(
            SizedTensor(t, t.ggml_type or "F32", t.nbytes if t.nbytes is not None
                        else ggml_type(t.ggml_type or "F32").nbytes(t.n_elements))
            for t in file_tensors), exact=True)
    if file_tensors:
        # another quant of this file's model: the file's own tensor list, re-typed as the quantizer would
        # from the converter's output (its types say nothing about another file type's choices)
        return _predicted_gguf(spec, fmt.name, tuple(replace(t, ggml_type=None, nbytes=None) for t in file_tensors))
    return _predicted_gguf(spec, fmt.name)


@lru_cache(maxsize=512)
def _predicted_gguf(spec: ModelSpec, ftype: str, tensors: tuple[Tensor, ...] | None = None) -> WeightSet:
    tensors = tensors if tensors is not None else model_tensors(spec)
    types = predict_tensor_types(spec, tensors, ftype)
    return WeightSet(ftype, tuple(
        SizedTensor(t, types[t.name], ggml_type(types[t.name]).nbytes(t.n_elements)) for t in tensors
    ), exact=False)


_KEEP_DTYPE = ("token_embd", "output.weight", "ffn_gate_inp")


@lru_cache(maxsize=512)
def hf_weights(spec: ModelSpec, quant: str) -> WeightSet:
    """Weights as vLLM/Transformers hold them for a Hugging Face checkpoint in format `quant`.

    A pre-quantized checkpoint asked for in its own format (`quant_config.native_format`) is sized
    as it ships: its quantized layers in that format, the layers it leaves out at the checkpoint dtype.
    """
    cq = checkpoint_quant(spec)
    if cq is not None and quant.strip().upper() == cq.label.upper():
        return _checkpoint_weights(spec)
    fmt = hf_format("MXFP4" if quant.strip().upper() == "MXFP4_MOE" else quant)
    mxfp4 = ggml_type("MXFP4")
    base_bytes = 4 if spec.torch_dtype == "float32" else 2
    sized = []
    for t in model_tensors(spec):
        if fmt.kind == "gguf":  # F32/F16/BF16: every tensor in that dtype
            nbytes = t.n_elements * (4 if fmt.name == "F32" else 2)
            dtype = fmt.name
        elif fmt.kind == "mxfp4":  # only the routed experts are MXFP4 (gpt-oss quantization_config)
            if t.is_matrix and t.n_experts and "_exps." in t.name:
                nbytes, dtype = mxfp4.nbytes(t.n_elements), "MXFP4"
            else:
                nbytes, dtype = t.n_elements * base_bytes, "BF16" if base_bytes == 2 else "F32"
        elif t.is_matrix and not t.name.startswith(_KEEP_DTYPE):
            nbytes, dtype = round(fmt.matrix_bytes(t.n_elements)), fmt.name
        else:
            nbytes, dtype = t.n_elements * base_bytes, "BF16" if base_bytes == 2 else "F32"
        sized.append(SizedTensor(t, dtype, nbytes))
    return WeightSet(fmt.name, tuple(sized), exact=False)


def vision_tower_bytes(spec: ModelSpec) -> float:
    """A multimodal checkpoint's vision tower and projector as vLLM, SGLang and Transformers load them:
    in the checkpoint's 16-bit dtype, whatever the language model is quantized to (the quantization
    configs of published VLM checkpoints leave the vision tower out). Engines show it as the projector
    (`core/extras.py`), not as the model's weights."""
    from lander_tui.core.vision import vision_param_count

    if spec.vision is None:
        return 0.0
    return float(vision_param_count(spec.vision)) * (4 if spec.torch_dtype == "float32" else 2)


@lru_cache(maxsize=256)
def _checkpoint_weights(spec: ModelSpec) -> WeightSet:
    cq = checkpoint_quant(spec)
    assert cq is not None
    base_bytes = 4 if spec.torch_dtype == "float32" else 2
    sized = []
    for t in model_tensors(spec):
        if cq.quantizes(t):
            sized.append(SizedTensor(t, cq.label, cq.scheme.matrix_bytes(t)))
        else:
            sized.append(SizedTensor(t, "BF16" if base_bytes == 2 else "F32", t.n_elements * base_bytes))
    return WeightSet(cq.label, tuple(sized), exact=False)


def shard_bytes(spec: ModelSpec, w: WeightSet, tp: int) -> float:
    """Weights on one tensor-parallel rank (vLLM and SGLang shard alike): matrices split across the
    ranks (vocab-parallel embeddings and LM head too), 1-D tensors (norms, sinks) replicated, and K/V
    projections kept in whole heads, so past `n_kv_heads` ranks each holds one replicated head."""
    total = 0.0
    for t in w.tensors:
        nbytes = float(t.nbytes)
        if not t.tensor.is_matrix:
            total += nbytes
        elif t.tensor.kind in ("attn_k", "attn_v") and spec.n_kv_heads < tp:
            total += nbytes / spec.n_kv_heads
        else:
            total += nbytes / tp
    return total
