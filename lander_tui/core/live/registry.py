"""Every engine kind lander-tui can read, in the order discovery and `--engine URL` try them."""

from __future__ import annotations

from lander_tui.core.errors import LanderError
from lander_tui.core.live.base import EngineReader
from lander_tui.core.live.llama_cpp_python import LlamaCppPython
from lander_tui.core.live.llama_server import LlamaServer
from lander_tui.core.live.ollama import Ollama
from lander_tui.core.live.sglang import SGLang
from lander_tui.core.live.tgi import Tgi
from lander_tui.core.live.vllm import Vllm
from lander_tui.core.live.xllm import Xllm

#: Identification order for a bare URL: the most specific answers first (xLLM's /v0/health and
#: llama-server's /props before the OpenAI-style /v1/models that several engines share).
READERS: tuple[EngineReader, ...] = (Ollama(), Xllm(), LlamaServer(), SGLang(), Tgi(), Vllm(), LlamaCppPython())
_BY_KIND = {r.kind: r for r in READERS}
_ALIASES = {"llama.cpp": "llama-server", "llamacpp": "llama-server", "llama_cpp": "llama-server",
            "text-generation-inference": "tgi", "llama-cpp-python": "llama-cpp-python"}


def reader_for(kind: str) -> EngineReader:
    key = kind.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _BY_KIND:
        raise LanderError(f"unknown engine kind {kind!r}; one of: {', '.join(_BY_KIND)}")
    return _BY_KIND[key]


def kinds() -> list[str]:
    return list(_BY_KIND)


def forget_all() -> None:
    """Forget what readers remember between readings (versions, Ollama's /api/show answers)."""
    for r in READERS:
        forget = getattr(r, "forget", None)
        if forget is not None:
            forget()
