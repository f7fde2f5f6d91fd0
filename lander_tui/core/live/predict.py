"""What lander-tui predicts a running engine holds, next to what it really holds.

`estimate_memory` is the ONE call into the estimator from the live package (a seam: the estimator's
API is being reshaped, and only this function has to follow). Everything else turns a running
engine's configuration into that call and compares the answer with the memory NVML says the
engine's processes hold:

* llama-server, Ollama (its runner is a llama-server) and llama-cpp-python: the model is a GGUF
  file on this machine (`model_path`, Ollama's blob) whose header is read, at exactly the engine's
  KV cells, slots, KV type, flash attention and ubatch, all layers on one GPU. Ollama's 1024 MiB
  fit margin is memory it keeps free, not memory it holds, so the llama.cpp model is used for it.
* vLLM takes `gpu_memory_utilization x total` whatever the model (the estimator's vLLM budget), and
  fills what its weights and activations leave with KV blocks: the prediction is that budget, plus
  the KV capacity in tokens the estimator expects, to set against vLLM's own num_gpu_blocks.
* SGLang, TGI and xLLM have no memory model in lander-tui yet: no prediction, and the reason.
Held - predicted is the DIFF (positive: the engine holds more than predicted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.live.state import EngineConfig, EngineState, LoadedModel
from lander_tui.core.memory import PARTS

#: Budget handed to the estimator when only the memory of one configuration is asked for: large
#: enough that any real configuration "fits", so the numbers are taken at the engine's context.
_UNBOUNDED_MIB = float(1 << 22)  # 4 TiB


@dataclass(frozen=True)
class Prediction:
    estimator: str  # the estimator backend that answered ("llama.cpp", "vllm")
    model: str  # the model as the estimator resolved it
    config: dict[str, Any]  # the configuration predicted, as passed to the estimator
    total_mib: float  # GPU memory of that configuration
    parts_mib: dict[str, float] = field(default_factory=dict)  # weights / kv / compute / overhead
    kv_capacity_tokens: int | None = None  # vLLM: tokens its KV blocks should hold
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "model": self.model, "config": self.config,
                "total_mib": round(self.total_mib, 1),
                "parts_mib": {k: round(v, 1) for k, v in self.parts_mib.items()},
                "kv_capacity_tokens": self.kv_capacity_tokens, "notes": list(self.notes)}


@dataclass(frozen=True)
class Comparison:
    """One engine model: the prediction (or why there is none) against NVML's held memory."""

    engine: EngineState
    model: LoadedModel | None
    prediction: Prediction | None
    why_not: str = ""  # no prediction: the reason, one line
    held_mib: float | None = None  # NVML: memory of the processes that hold this model
    gpus: tuple[int, ...] = ()  # the GPU indices those processes are on
    gpu_names: tuple[str, ...] = ()
    gpu_known: bool = False  # a GPU reading was there to look in (else "not on a GPU" means "unknown")

    @property
    def diff_mib(self) -> float | None:
        if self.prediction is None or self.held_mib is None:
            return None
        return self.held_mib - self.prediction.total_mib

    @property
    def diff_pct(self) -> float | None:
        d = self.diff_mib
        if d is None or not self.prediction or self.prediction.total_mib <= 0:
            return None
        return 100.0 * d / self.prediction.total_mib


def estimate_memory(model: Any, backend: str, kv_type: str | None, context: int, options: Any,
                    free_mib: float, total_mib: float | None) -> Any:
    """THE seam into the estimator: one configuration's ConfigResult (MiB figures at `context`)."""
    from lander_tui.core.estimate import EstimateRequest, run_estimate
    from lander_tui.core.model import Device

    req = EstimateRequest(model=model, engine=backend, kv_types=(kv_type,) if kv_type else (),
                          devices=(Device("live", free_mib, total_mib),), context=context, options=options)
    row = run_estimate(req).results[0]
    if row.error:
        raise LanderError(row.error)
    return row


_CACHE: dict[tuple[str, EngineConfig, float | None], Prediction | str] = {}
_CACHE_SIZE = 64


def predict(kind: str, model: LoadedModel, gpu_total_mib: float | None = None) -> Prediction:
    """The memory lander-tui predicts for this engine's model as configured; LanderError says why not.

    Answers are remembered per (engine kind, configuration, GPU size): a poller asks every few
    seconds, and a configuration only changes when the engine restarts.
    """
    key = (kind, model.config, gpu_total_mib)
    hit = _CACHE.get(key)
    if hit is None:
        try:
            hit = _predict(kind, model.config, gpu_total_mib)
        except LanderError as err:
            hit = str(err)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = hit
    if isinstance(hit, str):
        raise LanderError(hit)
    return hit


def _predict(kind: str, c: EngineConfig, gpu_total_mib: float | None) -> Prediction:
    if kind in ("llama-server", "ollama", "llama-cpp-python"):
        return _predict_llamacpp(c)
    if kind == "vllm":
        return _predict_vllm(c, gpu_total_mib)
    raise LanderError(f"lander-tui has no memory model for {kind} yet")


def _predict_llamacpp(c: EngineConfig) -> Prediction:
    from lander_tui.core.engines import EngineOptions
    from lander_tui.core.model_source import resolve_model

    if not c.model:
        raise LanderError("the engine does not say which model file it loaded")
    if not c.model.lower().endswith(".gguf") and not _is_gguf(c.model):
        raise LanderError(f"model {c.model} is not a GGUF file on this machine")
    if not Path(c.model).is_file():
        raise LanderError(f"model file {c.model} is not readable here (another machine or container?)")
    if c.gpu_layers is not None and c.gpu_layers.strip() in ("0",):
        raise LanderError("it runs on the CPU (0 GPU layers), so it holds no GPU memory to predict")
    cells = c.cells()
    if cells is None:
        raise LanderError("the engine does not say its context size")
    resolved = _resolve_gguf(c.model, resolve_model)
    parallel = c.parallel or 1
    opts = EngineOptions(flash_attn=c.flash_attn, n_parallel=parallel, n_ubatch=c.n_ubatch or 512,
                         n_batch=c.n_batch or 2048, kv_unified=bool(c.kv_unified) or parallel == 1)
    kv = c.kv_type or "f16"
    row = estimate_memory(resolved, "llama.cpp", kv, cells, opts, _UNBOUNDED_MIB, None)
    notes = []
    if c.gpu_layers not in (None, "", "auto", "-1") and not _all_layers(c.gpu_layers, resolved):
        notes.append(f"predicted with every layer on the GPU; it runs with -ngl {c.gpu_layers}")
    config = {"model": c.model, "quant": row.quant, "kv_cells": cells, "parallel": parallel,
              "kv_unified": opts.kv_unified, "kv_type": kv, "flash_attn": c.flash_attn, "n_ubatch": opts.n_ubatch}
    return Prediction("llama.cpp", resolved.spec.name, config, row.total_mib, _parts(row), notes=tuple(notes))


def _predict_vllm(c: EngineConfig, gpu_total_mib: float | None) -> Prediction:
    from lander_tui.core.engines import EngineOptions
    from lander_tui.core.model_source import resolve_model

    if not c.model:
        raise LanderError("vLLM does not say which model it serves")
    if not gpu_total_mib:
        raise LanderError("vLLM sizes itself from the GPU's total memory, and its GPU is not known")
    if not c.context:
        raise LanderError("vLLM does not say its max_model_len")
    util = c.gpu_memory_utilization or 0.9
    resolved = resolve_model(c.model)
    opts = EngineOptions(gpu_memory_utilization=util, block_size=c.block_size or 16)
    row = estimate_memory(resolved, "vllm", c.kv_type or "auto", c.context, opts, gpu_total_mib, gpu_total_mib)
    budget = util * gpu_total_mib
    capacity = int(row.max_concurrency * row.context) if row.max_concurrency else None
    config = {"model": c.model, "quant": row.quant, "max_model_len": c.context, "kv_type": c.kv_type or "auto",
              "gpu_memory_utilization": util, "block_size": opts.block_size}
    notes = ("vLLM holds gpu_memory_utilization x total; the KV capacity is where the estimate shows",)
    return Prediction("vllm", resolved.spec.name, config, budget, _parts(row), kv_capacity_tokens=capacity,
                      notes=notes)


def _is_gguf(path: str) -> bool:
    """Ollama's blobs (sha256-...) have no extension: look at the magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def _resolve_gguf(path: str, resolve_model: Any) -> Any:
    if path.lower().endswith(".gguf"):
        return resolve_model(path)
    from lander_tui.core.gguf_file import read_gguf
    from lander_tui.core.model_source import ResolvedModel

    g = read_gguf(Path(path))
    return ResolvedModel(g.spec, "gguf", tensors=g.tensors, file_quant=g.file_type, detail=path)


def _all_layers(ngl: str, resolved: Any) -> bool:
    try:
        return int(ngl) >= resolved.spec.n_layers
    except (ValueError, AttributeError):
        return False


def _parts(row: Any) -> dict[str, float]:
    return {p.json_key.removesuffix("_mib"): float(getattr(row.memory, p.attr)) for p in PARTS}


def compare(states: list[EngineState], snapshot: Any = None) -> list[Comparison]:
    """One Comparison per loaded model of every engine (one per engine when it reports none)."""
    by_pid = _gpu_memory(snapshot)
    known = snapshot is not None and bool(getattr(snapshot, "ok", False))
    out = []
    for st in states:
        models: list[LoadedModel | None] = list(st.models) or [None]
        for m in models:
            pids = (m.runner_pid,) if m is not None and m.runner_pid else (st.gpu_pids or ((st.pid,) if st.pid else ()))
            held, gpus = _held(pids, by_pid)
            names = tuple(_gpu_name(snapshot, g) for g in gpus)
            total = _gpu_total(snapshot, gpus[0]) if gpus else None
            if m is None:
                out.append(Comparison(st, None, None, "no model loaded", held, gpus, names, known))
                continue
            try:
                p = predict(st.kind, m, total)
                out.append(Comparison(st, m, p, "", held, gpus, names, known))
            except LanderError as err:
                out.append(Comparison(st, m, None, str(err), held, gpus, names, known))
    return out


def _gpu_memory(snapshot: Any) -> _ByPid:
    """pid -> [(GPU index, MiB)] from a GPU Snapshot."""
    out: _ByPid = {}
    if snapshot is None or not getattr(snapshot, "ok", False):
        return out
    for g in snapshot.gpus:
        for p in g.processes:
            out.setdefault(p.pid, []).append((g.index, p.used_mib))
    return out


_ByPid = dict[int, list[tuple[int, float | None]]]


def _held(pids: tuple[int, ...], by_pid: _ByPid) -> tuple[float | None, tuple[int, ...]]:
    rows = [r for pid in pids for r in by_pid.get(pid, [])]
    if not rows:
        return None, ()
    gpus = tuple(sorted({g for g, _ in rows}))
    if any(mib is None for _, mib in rows):
        return None, gpus
    return float(sum(mib or 0.0 for _, mib in rows)), gpus


def _gpu_name(snapshot: Any, index: int) -> str:
    g = snapshot.gpu(index) if snapshot is not None else None
    return g.name if g is not None else f"GPU {index}"


def _gpu_total(snapshot: Any, index: int) -> float | None:
    g = snapshot.gpu(index) if snapshot is not None else None
    return g.total_mib if g is not None else None
