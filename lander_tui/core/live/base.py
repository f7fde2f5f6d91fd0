"""What every engine module in core/live provides, and the one way a reading is taken.

Each server kind is one small module (`llama_server.py`, `ollama.py`, `vllm.py`, ...) with a class
that knows three things about its engine: how to recognise its server process from the command
line (and which port that process serves), how to tell its HTTP API apart from the others (for a
URL the user names), and how to read its state. The generic parts (timing, turning failures into
states, shape checks) live here so the engine modules stay short and can later move next to their
memory models in core/engines. Each reader names the engine module that predicts for it (`engine`),
and that module turns what the reader read into its own estimator inputs (`Engine.running`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient, ReadFailure
from lander_tui.core.live.metrics import Metrics, parse_metrics
from lander_tui.core.live.state import DEAD, MALFORMED, SLOW, EngineState


class EngineReader(Protocol):
    kind: str  # short id used in JSON and --engine KIND=URL: "llama-server", "ollama", "vllm" ...
    label: str  # what the table shows: "llama.cpp", "Ollama", "vLLM" ...
    #: The estimator engine (its registry name, core/engines) that predicts this server's memory from
    #: its configuration; None when lander-tui has no memory model for it.
    engine: str | None
    aliases: tuple[str, ...]  # other names `--engine KIND=URL` accepts (the engine's own come from the registry)
    default_port: int  # the port the server listens on when its command line does not say

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        """The port this process serves when it is this engine's server, else None."""
        ...

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        """The address the server binds to, from its flags/environment/defaults (None: all)."""
        ...

    def identify(self, client: LiveClient, base_url: str) -> bool:
        """Whether `base_url` answers like this engine (for `--engine URL` without a kind)."""
        ...

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        """The engine's state; raises ReadFailure when it cannot be read at all."""
        ...


def take_reading(reader: EngineReader, client: LiveClient, base_url: str, proc: ProcessView | None = None,
                 gpu_pids: tuple[int, ...] = ()) -> EngineState:
    """Read one engine; never raises. A failure is an EngineState with that state and one line."""
    started = time.monotonic()
    pid = proc.pid if proc else None
    try:
        st = reader.read(client, base_url, proc)
    except ReadFailure as err:
        st = EngineState(reader.kind, base_url, err.state, str(err), pid=pid)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        # A field of the wrong type deep in an answer: report it, do not crash the poller.
        st = EngineState(reader.kind, base_url, MALFORMED,
                         f"{base_url} answered in a shape lander-tui does not know ({type(err).__name__}: {err})",
                         pid=pid)
    return st.with_(pid=pid if st.pid is None else st.pid, gpu_pids=gpu_pids or st.gpu_pids,
                    read_at=time.time(), elapsed_s=time.monotonic() - started)


def url_join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def need_dict(value: Any, what: str) -> dict[str, Any]:
    """`value` as a JSON object, or a MALFORMED failure naming what was expected."""
    if not isinstance(value, dict):
        raise ReadFailure(MALFORMED, f"{what} is not a JSON object ({type(value).__name__})")
    return value


def need_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ReadFailure(MALFORMED, f"{what} is not a JSON list ({type(value).__name__})")
    return value


def need_key(d: dict[str, Any], key: str, what: str) -> Any:
    if key not in d:
        raise ReadFailure(MALFORMED, f"{what} has no {key!r} field")
    return d[key]


def optional(fn: Any, *args: Any) -> tuple[Any, ReadFailure | None]:
    """Call a client method for an endpoint that may be missing or disabled: its failure is returned,
    not raised. A slow or dead engine still raises, so one reading never waits on it twice."""
    try:
        return fn(*args), None
    except ReadFailure as err:
        if err.state in (SLOW, DEAD):
            raise
        return None, err


def optional_metrics(client: LiveClient, base_url: str, path: str = "/metrics") -> tuple[Metrics | None,
                                                                                         ReadFailure | None]:
    """An engine's Prometheus page when it serves one (often behind a flag); its failure otherwise."""
    text, err = optional(client.get_text, url_join(base_url, path))
    if err is not None or not text:
        return None, err
    return parse_metrics(text, url_join(base_url, path)), None


class Remembered:
    """Answers that do not change while a server runs (its version), asked again after `ttl_s`.

    Each reading then costs one request fewer; an engine upgraded in place is seen within a minute.
    """

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, ask: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._seen.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = ask()
        with self._lock:
            self._seen[key] = (now, value)
        return value

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()
