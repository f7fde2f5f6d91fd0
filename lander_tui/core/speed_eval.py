"""Check the speed model against measured llama-bench rows (tests/data/speed) and fit its constants.

`load_rows` turns each row into the plan it measured (`SpeedInputs` through the `speed_inputs` seam)
and a test (`pp512`, `tg128 @ d4096`, ...). `fit` fits the decode and prefill constants of
`SpeedCalibration` on single-GPU full-offload rows; `cross_validate` holds each GPU out in turn
(fits on every other GPU's rows, predicts the held-out GPU's rows), which is the number that says
how the model does on a card it has never seen. Multi-GPU and CPU-offload rows are never fitted on:
they are predicted with the constants fitted on single-GPU rows. The test suite asserts the targets;
`scripts/speed_report.py` prints the tables.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lander_tui.core.catalog import find_model
from lander_tui.core.gpu.catalog import match_gpu
from lander_tui.core.gpu.specs import SPECS, GpuSpec
from lander_tui.core.model_spec import ModelSpec, from_hf_config
from lander_tui.core.speed import (
    SpeedCalibration,
    SpeedInputs,
    decode_seconds,
    prefill_seconds,
    speed_inputs,
)
from lander_tui.core.weights import SizedTensor, WeightSet, gguf_weights

SINGLE, MULTI, OFFLOAD = "single", "multi", "offload"
_TEST = re.compile(r"^(pp|tg)(\d+)(?:\s*@\s*d(\d+))?$")
_BUILD = re.compile(r"\((\d+)\)|^b(\d+)$")
_RAM = re.compile(r"(DDR\d)[- ](\d{4})", re.IGNORECASE)


@dataclass(frozen=True)
class BenchRow:
    id: str
    gpu: GpuSpec
    gpu_reported: str
    model: str
    quant: str
    test: str  # "pp" or "tg"
    n: int
    depth: int
    kind: str  # SINGLE, MULTI, OFFLOAD
    measured: float  # tokens/s
    inputs: SpeedInputs
    source: str

    @property
    def label(self) -> str:
        return f"{self.test}{self.n}" + (f"@d{self.depth}" if self.depth else "")


@dataclass(frozen=True)
class Prediction:
    row: BenchRow
    predicted: float

    @property
    def error(self) -> float:
        """Signed relative error of the prediction, (predicted - measured) / measured."""
        return self.predicted / self.row.measured - 1.0


def predict(row: BenchRow, cal: SpeedCalibration) -> float:
    """Tokens/s the model gives for the row's test: llama-bench times `n` single-token decodes after
    `depth` cached tokens (the cache grows from depth to depth + n), or one `n`-token prompt."""
    if row.test == "tg":
        return 1.0 / decode_seconds(row.inputs, row.depth + row.n / 2, cal)
    return row.n / prefill_seconds(row.inputs, row.n, row.depth, cal)


# --- reading the rows ------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _model_table(path: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    data = json.loads(Path(path).read_text())
    return data["models"], data.get("quants", {})


def model_for(name: str, table_path: Path) -> ModelSpec | None:
    entries, _ = _model_table(str(table_path))
    low = name.lower()
    by_name = {e.get("name"): e for e in entries if e.get("config")}
    for e in entries:
        if all(w in low for w in e["match"]):
            if "catalog" in e:
                return find_model(e["catalog"])
            cfg = e.get("config") or by_name[e["same_as"]]["config"]
            return _from_config(json.dumps(cfg, sort_keys=True), e["name"])
    return None


@lru_cache(maxsize=16)
def _from_config(cfg: str, name: str) -> ModelSpec:
    return from_hf_config(json.loads(cfg), name=name)


def _build(version: str | None) -> int | None:
    m = _BUILD.search((version or "").strip())
    return int(m.group(1) or m.group(2)) if m else None


def host_bandwidth_from_text(ram: str | None) -> float | None:
    """Peak host RAM bandwidth from a row's RAM description ("64GB DDR5-5200", "2x32GB DDR4-3200"):
    desktop platforms run two 64-bit channels, so 2 x 8 bytes x MT/s. None when the text has no speed."""
    m = _RAM.search(ram or "")
    return 2 * 8 * int(m.group(2)) / 1000 if m else None


def _scaled(w: WeightSet, total_bytes: float) -> WeightSet:
    """The predicted tensors scaled to the file size llama-bench printed (it knows the real mix)."""
    k = total_bytes / w.total_bytes
    return WeightSet(w.quant, tuple(SizedTensor(t.tensor, t.dtype, int(t.nbytes * k)) for t in w.tensors), w.exact)


def _units(n_layers: int, n_dev: int, ngl: int) -> list[int | None]:
    """llama.cpp's layer placement with an even `-ts` (src/llama-model.cpp `load_tensors`): the last
    `ngl` of the n_layers + 1 units (the output is the +1) go to the GPUs in equal runs."""
    start = n_layers + 1 - min(ngl, n_layers + 1)
    out: list[int | None] = []
    for il in range(n_layers + 1):
        out.append(None if il < start else min(n_dev - 1, int((il - start) * n_dev / max(1, n_layers + 1 - start))))
    return out


def row_kind(r: dict[str, Any], n_layers: int) -> str:
    """Offload when anything stays on the CPU: fewer than all n_layers + 1 units on the GPUs (`-ngl`;
    negative = all), `--n-cpu-moe` above 0 or an `-ot` override."""
    ncmoe = r.get("n_cpu_moe")
    ngl = str(r.get("ngl", ""))
    partial = ngl.isdigit() and int(ngl) < n_layers + 1
    offload = bool(r.get("override_tensor")) or (ncmoe not in (None, 0, "0")) or partial
    return OFFLOAD if offload else (MULTI if int(r.get("gpu_count") or 1) > 1 else SINGLE)


def load_rows(data_dir: Path) -> tuple[list[BenchRow], dict[str, int]]:
    """Every NVIDIA CUDA llama-bench row the model can be checked on, and why the others were left out."""
    skipped: dict[str, int] = {}

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    table = data_dir / "models.json"
    _, quants = _model_table(str(table))
    rows: list[BenchRow] = []
    for line in (data_dir / "llama-bench.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if not str(r.get("backend", "")).startswith("CUDA"):
            skip("not the CUDA backend (Metal, ROCm, Vulkan)")
            continue
        if not str(r.get("engine", "")).startswith("llama.cpp llama-bench"):
            skip("not llama.cpp's llama-bench (server logs, ik_llama.cpp fork)")
            continue
        m = _TEST.match(str(r.get("test", "")).replace(" ", ""))
        if not m:
            skip("test is not ppN / tgN [@ dN]")
            continue
        match = match_gpu(str(r["gpu"]))
        gpu = SPECS.get(match.gpu.name) if match else None
        if gpu is None:
            skip("GPU not in the table")
            continue
        spec = model_for(str(r.get("model", "")), table)
        quant = quants.get(str(r.get("quant")), str(r.get("quant")))
        if spec is None or not r.get("quant"):
            skip("model or quant not named")
            continue
        w = gguf_weights(spec, quant)
        if r.get("model_size_gib"):
            w = _scaled(w, float(r["model_size_gib"]) * 1024**3)
        n_dev = int(r.get("gpu_count") or 1)
        ngl = int(r["ngl"]) if str(r.get("ngl", "")).lstrip("-").isdigit() and int(r["ngl"]) >= 0 else 999
        ncmoe = r.get("n_cpu_moe")
        override = r.get("override_tensor")
        inputs = speed_inputs(
            spec, w, [gpu] * n_dev, units=_units(spec.n_layers, n_dev, ngl),
            cpu_moe=int(ncmoe) if isinstance(ncmoe, int) else 0,
            cpu_override=str(override).split(" ")[0].rsplit("=", 1)[0] if override else None,  # "<regex>=CPU"
            flash_attn=str(r.get("fa")).lower() in ("1", "true", "on", "enabled"),
            n_ubatch=int(r.get("n_ubatch") or 512), n_batch=int(r.get("n_batch") or 2048),
            host_bw_gbs=host_bandwidth_from_text(r.get("ram")), build=_build(r.get("engine_version")))
        kind = row_kind(r, spec.n_layers)
        rows.append(BenchRow(id=str(r.get("id")), gpu=gpu, gpu_reported=str(r["gpu"]), model=spec.name, quant=quant,
                             test=m.group(1), n=int(m.group(2)), depth=int(m.group(3) or 0), kind=kind,
                             measured=float(r["tps"]), inputs=inputs, source=str(r.get("source", ""))))
    return rows, skipped


# --- fitting ---------------------------------------------------------------------------------------

# The constants each fit solves for, and how each enters the time: as its inverse (efficiencies, the
# per-SM stream rate) or as itself (overheads). Time is linear in these "coefficients".
DECODE_PARAMS = ("bw_efficiency", "sm_stream_gbs_per_ghz", "token_overhead_s", "layer_overhead_s",
                 "moe_layer_overhead_s")
PREFILL_PARAMS = ("mmq_efficiency", "cublas_efficiency", "dp4a_efficiency", "moe_efficiency", "matmul_sm_flops_per_clk",
                  "attention_efficiency", "attention_efficiency_nofa", "ubatch_layer_overhead_s", "moe_route_token_s")
_INVERSE = {"bw_efficiency", "sm_stream_gbs_per_ghz", "mmq_efficiency", "cublas_efficiency", "dp4a_efficiency",
            "moe_efficiency", "matmul_sm_flops_per_clk", "attention_efficiency", "attention_efficiency_nofa"}
#: Grid for `small_batch_tokens` (it multiplies the matmul terms, so it is searched, not solved).
SMALL_BATCH_GRID = (8.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0)


#: Efficiencies are fractions of a peak, so at most 1: their inverse is fitted as 1 + a non-negative part.
_AT_MOST_ONE = {"bw_efficiency", "mmq_efficiency", "cublas_efficiency", "dp4a_efficiency", "moe_efficiency",
                "attention_efficiency", "attention_efficiency_nofa"}


def _cal_from_coef(base: SpeedCalibration, names: tuple[str, ...], coef: np.ndarray,
                   shifted: bool = True) -> SpeedCalibration:
    """A calibration from fitted coefficients (`shifted`: the inverse of a capped efficiency is 1 + coef)."""
    kw: dict[str, float] = {}
    for n, c in zip(names, coef, strict=True):
        c = float(c) + (1.0 if shifted and n in _AT_MOST_ONE else 0.0)
        kw[n] = (1.0 / c if c > 0 else math.inf) if n in _INVERSE else c
    return replace(base, **kw)


def _seconds(row: BenchRow, cal: SpeedCalibration) -> float:
    """Seconds per token of the row's test (the inverse of `predict`, without dividing by zero)."""
    if row.test == "tg":
        return decode_seconds(row.inputs, row.depth + row.n / 2, cal)
    return prefill_seconds(row.inputs, row.n, row.depth, cal) / row.n


def _features(rows: list[BenchRow], names: tuple[str, ...], base: SpeedCalibration) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per token of each row as offset + X @ coef: each column is the time one constant adds
    at coefficient 1 (the others off), the offset the pure-physics part (weight reads in prefill)."""
    off = _cal_from_coef(base, names, np.zeros(len(names)), shifted=False)
    zero = np.array([_seconds(r, off) for r in rows])
    cols = []
    for i in range(len(names)):
        e = np.zeros(len(names))
        e[i] = 1.0
        cal = _cal_from_coef(base, names, e, shifted=False)
        cols.append(np.array([_seconds(r, cal) for r in rows]) - zero)
    x = np.stack(cols, axis=1)
    # capped efficiencies contribute their column once at efficiency 1 (the shift), the rest is fitted
    t0 = zero + sum((x[:, i] for i, n in enumerate(names) if n in _AT_MOST_ONE), np.zeros(len(rows)))
    return x, t0


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares (Lawson-Hanson), small problems only."""
    n = a.shape[1]
    x = np.zeros(n)
    passive: list[int] = []
    for _ in range(3 * n):
        w = a.T @ (b - a @ x)
        free = [j for j in range(n) if j not in passive and w[j] > 1e-12]
        if not free:
            break
        passive.append(max(free, key=lambda j: w[j]))
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if all(z[j] > 0 for j in passive):
                x = z
                break
            neg = [j for j in passive if z[j] <= 0]
            alpha = min(x[j] / (x[j] - z[j]) for j in neg if x[j] - z[j] != 0) if neg else 1.0
            x = x + alpha * (z - x)
            passive = [j for j in passive if x[j] > 1e-15]
    return x


def _robust_fit(x: np.ndarray, t0: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients minimising the relative error (Huber-weighted, so a few odd rows do not steer it)."""
    w = np.ones(len(target))
    coef = np.zeros(x.shape[1])
    for _ in range(6):
        a = x * (w / target)[:, None]
        b = (target - t0) * w / target
        coef = _nnls(a, b)
        rel = np.abs((t0 + x @ coef) / target - 1.0)
        w = np.where(rel < 0.15, 1.0, np.sqrt(0.15 / np.maximum(rel, 1e-9)))
    rel = np.abs((t0 + x @ coef) / target - 1.0)
    return coef, float(np.median(rel))


@dataclass(frozen=True)
class FitData:
    """Precomputed feature matrices (they do not depend on which rows are held out)."""

    rows: list[BenchRow]
    dec_x: np.ndarray
    dec_t0: np.ndarray
    pre: dict[float, tuple[np.ndarray, np.ndarray]]


def prepare(rows: list[BenchRow], base: SpeedCalibration | None = None) -> FitData:
    base = base or SpeedCalibration()
    dec = [r for r in rows if r.test == "tg"]
    pre = [r for r in rows if r.test == "pp"]
    dx, dt0 = _features(dec, DECODE_PARAMS, base) if dec else (np.zeros((0, len(DECODE_PARAMS))), np.zeros(0))
    grid = {m: _features(pre, PREFILL_PARAMS, replace(base, small_batch_tokens=m)) for m in SMALL_BATCH_GRID}
    return FitData(dec + pre, dx, dt0, grid)


def fit(data: FitData, keep: np.ndarray | None = None, base: SpeedCalibration | None = None) -> SpeedCalibration:
    """Fit decode and prefill constants on the rows where `keep` is true (all by default)."""
    base = base or SpeedCalibration()
    n_dec = data.dec_x.shape[0]
    keep = np.ones(len(data.rows), dtype=bool) if keep is None else keep
    kd, kp = keep[:n_dec], keep[n_dec:]
    target = np.array([_target(r) for r in data.rows])
    td, tp = target[:n_dec], target[n_dec:]
    cal = base
    if kd.any():
        coef, _ = _robust_fit(data.dec_x[kd], data.dec_t0[kd], td[kd])
        cal = _cal_from_coef(cal, DECODE_PARAMS, coef)
    if kp.any():
        best: tuple[float, float, np.ndarray] | None = None
        for m, (x, t0) in data.pre.items():
            coef, err = _robust_fit(x[kp], t0[kp], tp[kp])
            if best is None or err < best[0]:
                best = (err, m, coef)
        assert best is not None
        cal = _cal_from_coef(replace(cal, small_batch_tokens=best[1]), PREFILL_PARAMS, best[2])
    return _fill_unfitted(cal, base)


def _target(r: BenchRow) -> float:
    return 1.0 / r.measured  # seconds per token (prefill: per prompt token)


def _fill_unfitted(cal: SpeedCalibration, base: SpeedCalibration) -> SpeedCalibration:
    """A path no kept row exercised comes back infinite (its column was all zero); keep the prior."""
    kw = {f.name: getattr(base, f.name) for f in fields(cal)
          if isinstance(getattr(cal, f.name), float) and not math.isfinite(getattr(cal, f.name))}
    return replace(cal, **kw) if kw else cal


def held_out_calibrations(data: FitData, base: SpeedCalibration | None = None) -> dict[str, SpeedCalibration]:
    """For each GPU of the fitted rows, the constants fitted on every other GPU's rows."""
    out: dict[str, SpeedCalibration] = {}
    for name in sorted({r.gpu.name for r in data.rows}):
        keep = np.array([r.gpu.name != name for r in data.rows])
        out[name] = fit(data, keep, base)
    return out


def cross_validate(rows: list[BenchRow], base: SpeedCalibration | None = None,
                   data: FitData | None = None) -> list[Prediction]:
    """Leave one GPU out: every row is predicted with constants fitted on the single-GPU rows of the
    other GPUs only. Multi-GPU and offload rows are never fitted on; they too get their GPU held out."""
    data = data or prepare([r for r in rows if r.kind == SINGLE], base)
    cals = held_out_calibrations(data, base)
    full = fit(data, None, base)
    return [Prediction(r, predict(r, cals.get(r.gpu.name, full))) for r in rows]


def summary(preds: list[Prediction]) -> dict[str, float]:
    """Median and 90th-percentile absolute error, and the share of rows within 20 % / 35 %."""
    if not preds:
        return {"n": 0, "median": math.nan, "p90": math.nan, "within20": math.nan, "within35": math.nan}
    e = np.abs(np.array([p.error for p in preds]))
    return {"n": len(preds), "median": float(np.median(e)), "p90": float(np.percentile(e, 90)),
            "within20": float(np.mean(e <= 0.20)), "within35": float(np.mean(e <= 0.35))}
