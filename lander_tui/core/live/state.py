"""What one running engine says about itself, in one shape for every engine kind.

A reader never raises for a sick engine: a refused connection, a timeout, a 401 or a body that is
not what the engine's source says it sends all come back as an `EngineState` whose `state` names
the problem and whose `message` is one line a user can act on, so the CLI prints it and the
dashboard shows it in place while the other engines keep updating.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lander_tui.core.engines.running import EngineConfig

# EngineState.state values
OK = "ok"
LOADING = "loading"  # the engine answers but its model is not ready yet (llama-server 503, xLLM "offline")
SLOW = "slow"  # no answer within the read timeout
DEAD = "dead"  # connection refused / reset: nothing listens there (any more)
AUTH = "auth"  # 401/403: the engine wants a key we do not have
MALFORMED = "malformed"  # it answered, but not with the fields its source says it sends
UNREACHABLE = "unreachable"  # we will not contact it (not on loopback, unix socket): see message
STATES = (OK, LOADING, SLOW, DEAD, AUTH, MALFORMED, UNREACHABLE)


@dataclass(frozen=True)
class LoadedModel:
    """One model an engine has loaded (Ollama and xLLM can hold several; the others one)."""

    name: str
    config: EngineConfig = field(default_factory=EngineConfig)
    size_bytes: int | None = None  # what the engine says the model takes in all (Ollama `size`)
    vram_bytes: int | None = None  # ... and of that on the GPU (Ollama `size_vram`)
    expires_at: str | None = None  # Ollama keep-alive end (RFC 3339)
    runner_pid: int | None = None  # the process that holds this model's memory (Ollama's llama-server)
    details: dict[str, Any] = field(default_factory=dict)  # the engine's own descriptive fields

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "config": self.config.as_json()}
        for key in ("size_bytes", "vram_bytes", "expires_at", "runner_pid"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.details:
            d["details"] = self.details
        return d


@dataclass(frozen=True)
class EngineState:
    """One engine at one reading. Fractions are 0..1; memory in bytes as engines report it."""

    kind: str  # reader kind: "llama-server", "ollama", "vllm", "sglang", "tgi", "xllm", "llama-cpp-python"
    url: str
    state: str = OK
    message: str = ""
    pid: int | None = None  # the server process (None for a URL the user gave that we could not tie to one)
    gpu_pids: tuple[int, ...] = ()  # the server and its workers/runners: the processes that hold its GPU memory
    version: str | None = None
    models: tuple[LoadedModel, ...] = ()
    slots_total: int | None = None
    slots_busy: int | None = None
    running: int | None = None  # requests being decoded
    waiting: int | None = None  # requests queued
    kv_used: float | None = None  # fraction of the KV cache in use
    kv_capacity_tokens: int | None = None  # tokens the KV cache can hold (vLLM blocks x block size, SGLang)
    tokens_total: float | None = None  # generated-token counter, to turn into tokens/s between two reads
    tokens_per_s: float | None = None  # the engine's own rate, or the counter's slope between two reads
    engine_bytes: int | None = None  # memory the engine says it holds (weights + KV + graphs ...)
    read_at: float = 0.0  # time.time() when the reading finished
    elapsed_s: float = 0.0  # how long the reading took
    notes: tuple[str, ...] = ()  # things worth knowing that are not errors (e.g. "/metrics not enabled")

    @property
    def ok(self) -> bool:
        return self.state == OK

    def with_(self, **changes: Any) -> EngineState:
        return replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "url": self.url,
            "state": self.state,
            "message": self.message,
            "pid": self.pid,
            "gpu_pids": list(self.gpu_pids),
            "version": self.version,
            "models": [m.as_json() for m in self.models],
        }
        for key in ("slots_total", "slots_busy", "running", "waiting", "kv_used", "kv_capacity_tokens",
                    "tokens_total", "tokens_per_s", "engine_bytes"):
            d[key] = getattr(self, key)
        d["read_at"] = round(self.read_at, 3)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        d["notes"] = list(self.notes)
        return d
