"""Per-engine memory accounting. `get_engine("vllm")` etc.; each engine lives in its own module."""

from __future__ import annotations

from lander_tui.core.engines.base import MIB, Breakdown, Engine, EngineOptions
from lander_tui.core.engines.llamacpp import LlamaCpp, Ollama
from lander_tui.core.engines.transformers import Transformers
from lander_tui.core.engines.vllm import Vllm
from lander_tui.core.errors import LanderError

_ALL: tuple[Engine, ...] = (LlamaCpp(), Ollama(), Vllm(), Transformers())
ENGINES: dict[str, Engine] = {e.name: e for e in _ALL}
_ALIASES = {"llamacpp": "llama.cpp", "llama-cpp": "llama.cpp", "llama": "llama.cpp", "llama-server": "llama.cpp",
            "hf": "transformers", "huggingface": "transformers"}


def get_engine(name: str) -> Engine:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in ENGINES:
        raise LanderError(f"unknown backend {name!r}; use one of: {', '.join(ENGINES)}")
    return ENGINES[key]


__all__ = ["ENGINES", "MIB", "Breakdown", "Engine", "EngineOptions", "get_engine"]
