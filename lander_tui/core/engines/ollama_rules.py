"""Ollama's own rules in 2026 (llama-server era), as pure functions the Ollama engine can call.

Ollama now launches `llama-server -c num_ctx*np -np np` and lets llama.cpp's `--fit` place the
layers (`llm/llama_server.go`). What it decides itself:
- the default context when neither the model nor `OLLAMA_CONTEXT_LENGTH` sets one
  (`server/routes.go`): the sum over GPUs of (total - overhead) >= 47 GiB -> 262144, >= 23 GiB ->
  32768, else 4096; llama-server gets `num_ctx x OLLAMA_NUM_PARALLEL` cells;
- `ollama ps` PROCESSOR (`cmd/cmd.go`): "100% GPU", "100% CPU", or "cpu%/gpu% CPU/GPU" with
  `cpu% = round((size - size_vram) / size x 100)`.
Sources: shared/research/estimator-anchors.md §2.3 (ollama/ollama @ fb30760).
"""

from __future__ import annotations

GIB = 1024**3

#: (at least this much GPU memory, GiB) -> default num_ctx, largest first (server/routes.go).
DEFAULT_CTX_TIERS: tuple[tuple[float, int], ...] = ((47.0, 262144), (23.0, 32768), (0.0, 4096))


def default_num_ctx(gpu_total_bytes: list[float], overhead_bytes: float = 0.0) -> int:
    """num_ctx Ollama uses by itself for these GPUs (`OLLAMA_GPU_OVERHEAD` = `overhead_bytes` each)."""
    usable = sum(max(0.0, t - overhead_bytes) for t in gpu_total_bytes) / GIB
    return next(ctx for floor, ctx in DEFAULT_CTX_TIERS if usable >= floor)


def server_context(num_ctx: int, num_parallel: int = 1) -> int:
    """The `-c` llama-server gets: the context is per request, multiplied by OLLAMA_NUM_PARALLEL."""
    return num_ctx * max(1, num_parallel)


def processor(size_bytes: float, size_vram_bytes: float) -> str:
    """The PROCESSOR column of `ollama ps`."""
    if size_vram_bytes <= 0:
        return "100% CPU"
    if size_vram_bytes >= size_bytes:
        return "100% GPU"
    cpu = round((size_bytes - size_vram_bytes) / size_bytes * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"
