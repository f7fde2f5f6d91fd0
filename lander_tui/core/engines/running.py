"""A server that already runs: the configuration it reports, in one shape for every engine.

The live readers (core/live) fill an `EngineConfig` from an engine's own answers and command line;
each engine module turns it into its estimator inputs (`Engine.running`), so the memory predicted
for a running server is the estimate of exactly that configuration, and a restart on more memory is
planned by the same estimator. Helpers here are shared by the engines that read a model the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.model import ResolvedModel


@dataclass(frozen=True)
class EngineConfig:
    """The configuration an engine runs with, as far as it (or its command line) tells us.

    Exactly what the estimator needs to predict the memory of that configuration: the model file or
    id, the context each sequence gets, how many sequences run in parallel, the KV-cache type and
    flash attention. `None` means "not known", never "the default".
    """

    model: str | None = None  # a GGUF path on this machine, a model folder, or a Hub id
    context: int | None = None  # tokens of context ONE sequence/request can use
    parallel: int | None = None  # slots / parallel sequences
    kv_cells: int | None = None  # total KV-cache cells (llama.cpp -c), when it differs from context x parallel
    kv_unified: bool | None = None  # llama.cpp: one KV buffer shared by all slots
    kv_type: str | None = None  # f16, q8_0, fp8, auto ...
    flash_attn: bool | None = None  # None: the engine decides (llama.cpp "auto")
    n_ubatch: int | None = None
    n_batch: int | None = None
    gpu_layers: str | None = None  # llama.cpp -ngl as given ("auto", "99", ...)
    gpu_memory_utilization: float | None = None  # vLLM gpu_memory_utilization / SGLang mem_fraction_static
    block_size: int | None = None  # vLLM KV block size
    quant: str | None = None  # weight format when the engine says (vLLM dtype, Ollama quantization_level)
    version: str | None = None  # the engine's release, where its memory depends on it (vLLM)

    def cells(self) -> int | None:
        """Total KV-cache cells: -c when known, else one sequence's context x sequences (x 1 when
        the cache is unified and every slot may use all of it)."""
        if self.kv_cells:
            return self.kv_cells
        if not self.context:
            return None
        return self.context if self.kv_unified or not self.parallel else self.context * self.parallel

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def local_gguf(path: str | None) -> ResolvedModel:
    """The GGUF file a llama.cpp-based server loaded, read from this machine (header only)."""
    from lander_tui.core.gguf_file import is_gguf_file
    from lander_tui.core.model_source import resolve_model

    if not path:
        raise LanderError("the engine does not say which model file it loaded")
    if not path.lower().endswith(".gguf") and not is_gguf_file(path):
        raise LanderError(f"model {path} is not a GGUF file on this machine")
    if not Path(path).is_file():
        raise LanderError(f"model file {path} is not readable here (another machine or container?)")
    return resolve_model(path)


def served_model(ref: str | None, label: str) -> ResolvedModel:
    """The checkpoint a Hugging Face-style server loaded: a local folder, or a Hub id (through the
    profile cache, else the Hub)."""
    from lander_tui.core.model_source import resolve_model

    if not ref:
        raise LanderError(f"{label} does not say which model it serves")
    return resolve_model(ref)


#: dtype names servers report (vLLM `--dtype`, SGLang `dtype`) -> lander-tui's weight formats.
_DTYPES = {"half": "F16", "float16": "F16", "fp16": "F16", "bfloat16": "BF16", "bf16": "BF16",
           "float32": "F32", "float": "F32", "fp32": "F32"}


def served_quant(model: ResolvedModel, given: str | None) -> str:
    """The weight format a server loads: what it says (`--quantization fp8`, `--dtype half`), else
    the checkpoint's own (a quantized checkpoint ships its format, else its torch dtype)."""
    from lander_tui.core.formats import torch_dtype_format, weight_format
    from lander_tui.core.quant_config import native_format

    text = (given or "").strip().lower()
    if text in _DTYPES:
        return _DTYPES[text]
    if text and text != "auto":
        try:
            return weight_format(text.upper()).name
        except LanderError:
            pass  # a method lander-tui does not model (e.g. "compressed-tensors"): the checkpoint says
    return native_format(model.spec) or torch_dtype_format(model.spec.torch_dtype)


def served_kv(given: str | None) -> str:
    """A KV-cache dtype as servers report it (vLLM `cache_dtype`, SGLang `kv_cache_dtype`: "auto",
    "fp8_e4m3", "fp8_e5m2", "bfloat16" ...) in lander-tui's names."""
    text = (given or "auto").strip().lower()
    if text.startswith("fp8"):
        return "fp8"
    return {"bfloat16": "bf16", "float16": "f16", "half": "f16", "float32": "f32"}.get(text, text)
