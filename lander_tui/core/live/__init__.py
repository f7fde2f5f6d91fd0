"""Running engines on this machine: find them, read their own state, and set it against the plan.

No Textual here (the CLI and the dashboard share it). `discover()` finds engine servers from the
process table (and the URLs the user names), `read_all()` / `LivePoller` read them with short
timeouts, `compare()` puts lander-tui's prediction for each engine's exact configuration next to
the memory NVML says it holds, and `history` keeps those comparisons. One module per engine kind
(`llama_server`, `ollama`, `vllm`, `sglang`, `tgi`, `xllm`, `llama_cpp_python`) knows how to
recognise and read that engine, citing the engine's source for every field.
"""

from __future__ import annotations

from lander_tui.core.live.board import EngineRow, PlanInputs, board
from lander_tui.core.live.discovery import Endpoint, discover, parse_engine_url
from lander_tui.core.live.http import LiveClient, ReadFailure
from lander_tui.core.live.poller import LivePoller, read_all, read_endpoint
from lander_tui.core.live.predict import Comparison, Prediction, Restart, compare, predict, restart
from lander_tui.core.live.registry import READERS, kinds, reader_for
from lander_tui.core.live.state import (
    AUTH,
    DEAD,
    LOADING,
    MALFORMED,
    OK,
    SLOW,
    STATES,
    UNREACHABLE,
    EngineConfig,
    EngineState,
    LoadedModel,
)

__all__ = [
    "AUTH",
    "DEAD",
    "LOADING",
    "MALFORMED",
    "OK",
    "READERS",
    "SLOW",
    "STATES",
    "UNREACHABLE",
    "Comparison",
    "Endpoint",
    "EngineConfig",
    "EngineRow",
    "EngineState",
    "LiveClient",
    "LivePoller",
    "LoadedModel",
    "PlanInputs",
    "Prediction",
    "ReadFailure",
    "Restart",
    "board",
    "compare",
    "discover",
    "kinds",
    "parse_engine_url",
    "predict",
    "read_all",
    "read_endpoint",
    "reader_for",
    "restart",
]
