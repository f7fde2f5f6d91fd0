"""Check the estimator against measured engine runs (the format of tests/data/ground-truth).

Each measured row names a model shape (a config.json in `configs/`), the engine settings and what
the GPU really held. `llamacpp_rows`/`transformers_rows` rerun the estimator on the same settings
and return predicted-vs-measured rows; the test suite asserts the tolerances and
`scripts/ground_truth_report.py` prints the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.engines.transformers import TransformersCalibration
from lander_tui.core.model_source import ResolvedModel
from lander_tui.core.model_spec import from_hf_config
from lander_tui.core.solver import max_fitting


@dataclass(frozen=True)
class Row:
    case: str
    measured: dict[str, float]
    predicted: dict[str, float]


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _model(gt: Path, name: str) -> ResolvedModel:
    cfg = json.loads((gt / "configs" / f"{name}.json").read_text())
    return ResolvedModel(from_hf_config(cfg, name=name), "config")


def _split_name(tag: str) -> tuple[str, str]:
    name, _, quant = tag.rpartition("-")
    return name, quant


def llamacpp_rows(gt: Path) -> list[Row]:
    eng = get_engine("llama.cpp")
    rows = []
    for r in _read(gt / "llama.cpp.jsonl"):
        name, quant = _split_name(r["model"])
        model = _model(gt, name)
        if r["kind"] == "lcpp_run":
            # measured with llama-completion, which reserves a ubatch of logits (core/llamacpp_front_ends.py)
            opts = EngineOptions(flash_attn=r["fa"] == "on", n_ubatch=r.get("n_ubatch", 512),
                                 n_batch=r.get("n_batch", 2048), front_end="llama-cli")
            bd = eng.memory(model, quant, r["kv"], np.array([r["ctx"]]), opts).at(0)
            cuda = r["bd_cuda"]
            rows.append(Row(
                f"{r['model']} ctx={r['ctx']} kv={r['kv']} fa={r['fa']}",
                {"total": r["nvml_peak_mib"], "model": r.get("cuda_model_mib", cuda["model"]),
                 "context": r.get("kv_size_mib", cuda["context"]),
                 "compute": r.get("cuda_compute_mib", cuda["compute"])},
                {"total": bd["total_mib"], "model": bd["weights_mib"], "context": bd["kv_cache_mib"],
                 "compute": bd["compute_mib"]},
            ))
        elif r["kind"] == "lcpp_maxctx":
            opts = EngineOptions(flash_attn=True, front_end="llama-cli")

            def total_of(ctx: np.ndarray, model: ResolvedModel = model, quant: str = quant,
                         kv: str = r["kv"], opts: EngineOptions = opts) -> np.ndarray:
                return np.asarray(eng.memory(model, quant, kv, ctx, opts).total)

            pred = max_fitting(total_of, r["free_mib_measured"] * MIB, eng.granularity(opts))
            rows.append(Row(f"{r['model']} max ctx kv={r['kv']} free={r['free_mib_measured']}",
                            {"max_context": r["max_ctx_ok"], "first_fail": r["first_fail"]},
                            {"max_context": pred}))
    return rows


def transformers_rows(gt: Path) -> list[Row]:
    eng = get_engine("transformers")
    cal = TransformersCalibration()
    rows = []
    configs = {p.stem: json.loads(p.read_text()) for p in (gt / "configs").glob("*.json")}
    for r in _read(gt / "transformers.jsonl"):
        model = _model(gt, r["model"])
        opts = EngineOptions()
        if r["kind"] == "hf_ctx":
            bd = eng.memory(model, "BF16", "bf16", np.array([r["ctx"]]), opts).at(0)
            rows.append(Row(f"{r['model']} ctx={r['ctx']}",
                            {"total": r["nvml_process"] / MIB, "kv": r["kv_bytes"] / MIB},
                            {"total": bd["total_mib"], "kv": bd["kv_cache_mib"]}))
        elif r["kind"] == "hf_maxctx":
            # The allocator was capped at budget_bytes; the CUDA context sits outside that cap.
            free = r["budget_bytes"] + cal.cuda_context_mib * MIB

            def total_of(ctx: np.ndarray, model: ResolvedModel = model,
                         opts: EngineOptions = opts) -> np.ndarray:
                return np.asarray(eng.memory(model, "BF16", "bf16", ctx, opts).total)

            pred = max_fitting(total_of, free, 256)
            cfg = configs[r["model"]]
            capped = r["first_fail"] >= int(cfg.get("max_position_embeddings", 1 << 30))
            rows.append(Row(f"{r['model']} max ctx budget={r['budget_bytes'] / MIB:.0f}MiB",
                            {"max_context": r["max_ctx_ok"], "capped_by_model": float(capped)},
                            {"max_context": pred}))
    return rows


def format_table(rows: list[Row]) -> str:
    out = []
    for row in rows:
        cells = []
        for k, m in row.measured.items():
            if k in row.predicted:
                p = row.predicted[k]
                err = (p - m) / m * 100 if m else 0.0
                cells.append(f"{k}: {m:9.1f} -> {p:9.1f} ({err:+5.1f}%)")
        out.append(f"{row.case:55} " + "  ".join(cells))
    return "\n".join(out)
