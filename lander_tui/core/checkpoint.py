"""Which file or repository a launch command loads, so the command runs as printed.

An engine can only load a format it can make or find: llama.cpp and Ollama load GGUF files (a local
file, or a GGUF repository on the Hub by `repo:quant`); vLLM, SGLang and Transformers load a Hugging
Face checkpoint and can quantize a 16-bit one to FP8 or bitsandbytes on load, but AWQ and GPTQ need a
checkpoint made with those quantizers. When the model at hand is not such a file, the command names a
placeholder and says what to put there, instead of a repository that would not load as planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lander_tui.core.formats import weight_format
from lander_tui.core.model import ResolvedModel
from lander_tui.core.quant_config import native_format

#: Weight kinds that only exist in a checkpoint made by their quantizer (formats.WeightFormat.kind).
PRE_QUANTIZED_KINDS = ("grouped",)


@dataclass(frozen=True)
class Checkpoint:
    """`ref` goes into the command; `note` (one line) says what the user must do, when anything."""

    ref: str
    kind: str  # "hub", "file", "gguf-repo" or "placeholder"
    note: str = ""

    def comment(self) -> str:
        return f"# {self.note}\n" if self.note else ""


def repo_of(model: ResolvedModel) -> str:
    return model.spec.hf_repo or model.detail or model.spec.name


def hf_checkpoint(model: ResolvedModel, quant: str) -> Checkpoint:
    """A Hugging Face checkpoint holding `quant`: the model's own unless the format must be pre-made."""
    repo = repo_of(model)
    fmt = weight_format(quant)
    native = native_format(model.spec)
    same = native is not None and native.split("-")[0].upper() == fmt.name.split("-")[0].upper()
    if fmt.kind in PRE_QUANTIZED_KINDS and not same:
        family = fmt.name.split("-")[0]
        return Checkpoint(f"<{family} checkpoint of {repo}>", "placeholder",
                          f"{family} needs a checkpoint quantized with {family} (search the Hub for "
                          f"'{repo.split('/')[-1]} {family}'); replace the <...> below with it")
    return Checkpoint(repo, "hub")


def gguf_checkpoint(model: ResolvedModel, quant: str) -> Checkpoint:
    """A GGUF file in `quant`: the file read, a Hub GGUF repository (`repo:quant`), or a placeholder."""
    if model.origin == "gguf" and model.detail:
        return Checkpoint(str(Path(model.detail).resolve()), "file")
    repo = repo_of(model)
    if model.gguf_files:
        return Checkpoint(f"{repo}:{quant}", "gguf-repo")
    name = f"{repo.split('/')[-1]}-{quant}.gguf"
    return Checkpoint(name, "placeholder",
                      f"{name}: a GGUF of {repo} in {quant} (convert it with llama.cpp's convert_hf_to_gguf.py "
                      f"and llama-quantize, or download one)")
