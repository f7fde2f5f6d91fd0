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
#: llama-server's /props before the OpenAI-style /v1/models that several engines share). For an
#: engine's name (`llama.cpp=URL`) the first reader it predicts for is its own server.
READERS: tuple[EngineReader, ...] = (Ollama(), Xllm(), LlamaServer(), SGLang(), Tgi(), Vllm(), LlamaCppPython())


def reader_for(kind: str) -> EngineReader:
    """The reader of a server kind, one of its aliases, or an estimator engine's name or alias."""
    key = kind.strip().lower()
    for r in READERS:
        if key == r.kind or key in r.aliases:
            return r
    from lander_tui.core.engines import registry

    engine = registry().find(key)
    if engine is not None:
        for r in READERS:
            if r.engine is not None and registry().find(r.engine) is engine:
                return r
    raise LanderError(f"unknown engine kind {kind!r}; one of: {', '.join(kinds())}")


def kinds() -> list[str]:
    return [r.kind for r in READERS]


def forget_all() -> None:
    """Forget what readers remember between readings (versions, Ollama's /api/show answers)."""
    for r in READERS:
        forget = getattr(r, "forget", None)
        if forget is not None:
            forget()
