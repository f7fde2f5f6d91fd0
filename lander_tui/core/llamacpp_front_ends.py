"""What each llama.cpp front end asks llama.cpp to allocate, when the user sets nothing.

The same GGUF costs different memory depending on the program that opens it, because the front ends
fill `llama_context_params` differently (llama.cpp as vendored in llama-cpp-python 0.3.36,
ggml-org/llama.cpp@0c1e57098):

* `swa_full`: `llama_context_default_params()` (src/llama-context.cpp) sets `swa_full = true`, so the C API
  and every binding that keeps its defaults (llama-cpp-python `Llama(...)`, ...) give sliding-window
  layers a full-size cache; `common_params` (common/common.h: `bool swa_full = false`) is what
  llama-server, llama-cli and llama-completion start from, so they keep only window + ubatch cells
  (src/llama-kv-cache-iswa.cpp). `--swa-full` turns it on there.
* the logits rows of the worst-case graph: llama_context::sched_reserve reserves the prompt graph for
  `min(n_ubatch, n_outputs_max)` outputs (src/llama-context.cpp). `n_outputs_max = 0` means `n_batch`
  (llama_context constructor), which is the C API's and common_params' default (common/common.h), so the
  bindings and llama-cli reserve a full ubatch of f32 logits (n_vocab x 512 x 4 bytes: 297 MiB for a
  152k vocabulary). llama-server sets `n_outputs_max = min(n_batch, n_parallel x (1 + n_draft))`
  (tools/server/server-context.cpp `server_output_limits`, common/speculative.cpp
  `common_speculative_get_output_limits`), so it reserves one row per slot (85 MiB instead of
  301.75 MiB of CUDA compute buffer for Qwen3-4B at 8k).
"""

from __future__ import annotations

from dataclasses import dataclass

from lander_tui.core.errors import LanderError


@dataclass(frozen=True)
class FrontEnd:
    name: str
    #: Default of `swa_full` (full-size sliding-window cache) in this front end.
    swa_full: bool
    #: True: the graph is reserved for one logits row per parallel sequence (llama-server);
    #: False: for a whole ubatch of rows (n_outputs_max = n_batch).
    logits_per_sequence: bool
    summary: str


FRONT_ENDS: dict[str, FrontEnd] = {
    "llama-server": FrontEnd("llama-server", False, True,
                             "llama-server (and Ollama-style servers on common_params): window-sized SWA cache, "
                             "one logits row per slot"),
    "llama-cli": FrontEnd("llama-cli", False, False,
                          "llama-cli / llama-completion / llama-bench: window-sized SWA cache, a ubatch of logits"),
    "bindings": FrontEnd("bindings", True, False,
                         "the C API defaults (llama-cpp-python and other bindings): full-size SWA cache, "
                         "a ubatch of logits"),
}
DEFAULT_FRONT_END = "llama-server"


def front_end(name: str) -> FrontEnd:
    try:
        return FRONT_ENDS[name]
    except KeyError:
        raise LanderError(f"unknown llama.cpp front end {name!r}; use one of: {', '.join(FRONT_ENDS)}") from None


def logits_rows(name: str, n_ubatch: int, n_batch: int, n_parallel: int) -> int:
    """Logits rows in the reserved prompt graph: min(n_ubatch, n_outputs_max)."""
    n_ub = min(n_ubatch, n_batch)
    if front_end(name).logits_per_sequence:
        return max(1, min(n_ub, n_batch, n_parallel))
    return n_ub
