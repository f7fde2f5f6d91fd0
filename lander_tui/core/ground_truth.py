"""Check the estimator against measured engine runs (the format of tests/data/ground-truth).

Each measured row names a model shape (a config.json in `configs/`), the engine settings and what
the GPU really held. `llamacpp_rows`/`transformers_rows` rerun the estimator on the same settings
and return predicted-vs-measured rows; the test suite asserts the tolerances and
`scripts/ground_truth_report.py` prints the table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lander_tui.core.catalog import find_model
from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.engines.transformers import TransformersCalibration
from lander_tui.core.engines.vllm import Startup, Vllm, VllmRelease, max_concurrency
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import torch_dtype_format
from lander_tui.core.gpu.catalog import find_gpu
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.model_spec import ModelSpec, from_hf_config
from lander_tui.core.plan import cpu_gpu_split
from lander_tui.core.quant_config import native_format
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
            # measured with llama-completion, which reserves a ubatch of logits (engines/llamacpp.py, FRONT_ENDS)
            opts = EngineOptions(flash_attn=r["fa"] == "on", n_ubatch=r.get("n_ubatch", 512),
                                 n_batch=r.get("n_batch", 2048), front_end="llama-cli")
            bd = eng.memory(model, quant, r["kv"], np.array([r["ctx"]]), opts).at(0).to_mib()
            cuda = r["bd_cuda"]
            rows.append(Row(
                f"{r['model']} ctx={r['ctx']} kv={r['kv']} fa={r['fa']}",
                {"total": r["nvml_peak_mib"], "model": r.get("cuda_model_mib", cuda["model"]),
                 "context": r.get("kv_size_mib", cuda["context"]),
                 "compute": r.get("cuda_compute_mib", cuda["compute"])},
                {"total": bd.total, "model": bd.weights, "context": bd.kv, "compute": bd.compute},
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
            bd = eng.memory(model, "BF16", "bf16", np.array([r["ctx"]]), opts).at(0).to_mib()
            rows.append(Row(f"{r['model']} ctx={r['ctx']}",
                            {"total": r["nvml_process"] / MIB, "kv": r["kv_bytes"] / MIB},
                            {"total": bd.total, "kv": bd.kv}))
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


def transformers_sim_rows(gt: Path) -> list[Row]:
    """Kept-back shapes (MoE, MLA, large-MLP dense) without an H100: the longest prefill+decode that
    the real 5.17 code path fits in weights + 6 GiB, from its traced allocations replayed on PyTorch's
    caching allocator (method/hf_meta_trace.py; at most 1.2 % below every measured H100 maximum)."""
    eng = get_engine("transformers")
    cal = TransformersCalibration()
    path = gt / "transformers-sim.jsonl"
    rows = []
    configs = {p.stem: json.loads(p.read_text()) for p in (gt / "configs").glob("*.json")}
    for r in _read(path) if path.is_file() else []:
        model = _model(gt, r["model"])
        opts = EngineOptions()
        free = (eng.weights(model, "BF16").total_bytes + 32 * MIB + r["budget_over_weights_gib"] * 2**30
                + cal.cuda_context_mib * MIB)

        def total_of(ctx: np.ndarray, model: ResolvedModel = model, opts: EngineOptions = opts) -> np.ndarray:
            return np.asarray(eng.memory(model, "BF16", "bf16", ctx, opts).total)

        capped = r["first_fail"] >= int(configs[r["model"]].get("max_position_embeddings", 1 << 30))
        rows.append(Row(f"{r['model']} max ctx (traced code path)", {"max_context": r["max_ctx_ok"],
                                                                      "capped_by_model": float(capped)},
                        {"max_context": max_fitting(total_of, free, 256)}))
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


# --- wild logs (tests/data/ground-truth/wild) ----------------------------------------------------

GIB = 1024**3

#: vLLM release dates, to place a record that gives a date but no version (github.com/vllm-project/vllm
#: releases). The latest release on or before the record's date is taken.
VLLM_RELEASE_DATES: tuple[tuple[str, str], ...] = (
    ("2025-07-24", "0.10.0"), ("2025-08-18", "0.10.1"), ("2025-09-13", "0.10.2"), ("2025-10-02", "0.11.0"),
    ("2025-11-18", "0.11.1"), ("2025-12-03", "0.12.0"), ("2025-12-18", "0.13.0"),
)


@dataclass(frozen=True)
class WildRow:
    """One wild record: what the engine logged, what we predict, or why we cannot."""

    id: str
    engine: str
    case: str
    measured: dict[str, float]
    predicted: dict[str, float]
    reason: str | None = None  # set when the record cannot be explained
    in_target: bool = False  # names model, GPU and utilization (issue 12's vLLM V1 target set)


def wild_records(gt: Path, engines: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The wild records, or those whose engine (its forks too: `vllm-fork:aphrodite`) is one of `engines`."""
    out: list[dict[str, Any]] = []
    for p in sorted((gt / "wild").glob("*.jsonl")):
        out += _read(p)
    return [r for r in out if not engines or re.split(r"[-:]fork", str(r["engine"]))[0] in engines]


def _fork(rec: dict[str, Any]) -> bool:
    return "fork" in str(rec["engine"]) or "fork" in str(rec.get("engine_version") or "").lower()


def _model_names(name: str) -> list[str]:
    """Candidate names for a record's model: the Hub id, its last part, a local path's last part."""
    raw = name.split(" (")[0].strip().rstrip("/")
    last = raw.split("/")[-1]
    first = last.split()[0].removesuffix(".gguf") if last.split() else last
    tag = first.replace(":", "-")  # an Ollama tag `qwen3:4b` names the model `qwen3-4b`
    names = [raw, last, raw.lower(), last.lower(), first.lower(), tag.lower()]
    if last.startswith("Meta-Llama-3.1"):  # the Hub renamed meta-llama/Meta-Llama-3.1-* to Llama-3.1-*
        names.append(last.removeprefix("Meta-").lower())
    # an -Instruct/-it/-Chat fine-tune has its base model's shapes
    names += [re.sub(r"-(instruct|it|chat)$", "", n, flags=re.I) for n in list(names)]
    return names


def wild_spec(gt: Path, name: str | None) -> ModelSpec | None:
    """The record's model from tests/data/ground-truth/wild/configs or the built-in catalog."""
    if not name:
        return None
    for cand in _model_names(name):
        cfg = gt / "wild" / "configs" / f"{cand}.json"
        if cfg.is_file():
            return from_hf_config(json.loads(cfg.read_text()), name=cand)
    for cand in _model_names(name):
        spec = find_model(cand)
        if spec is not None:
            return spec
    return None


def wild_gpu_bytes(rec: dict[str, Any]) -> float | None:
    """The GPU's total memory as the engine saw it: the log's own figure, else the catalog's."""
    gpu = rec.get("gpu") or {}
    if gpu.get("total_gib"):
        return float(gpu["total_gib"]) * GIB
    name = str(gpu.get("name") or "")
    if not name or "class" in name:
        return None
    short = name.split(" (")[0].replace("NVIDIA ", "").strip()
    try:
        return find_gpu(short).usable_mib * 2**20
    except LanderError:  # e.g. "A100": 40 or 80 GB
        return None


def wild_release(rec: dict[str, Any]) -> VllmRelease:
    if rec.get("engine_version"):
        return VllmRelease.parse(str(rec["engine_version"]))
    m = re.match(r"(\d{4}-\d{2}-\d{2})", str(rec.get("date") or ""))
    if m:
        older = [v for d, v in VLLM_RELEASE_DATES if d <= m.group(1)]
        if older:
            return VllmRelease.parse(older[-1])
    return VllmRelease()


def _vllm_unexplained(rec: dict[str, Any], spec: ModelSpec | None, total: float | None) -> str | None:
    gen, ver = str(rec.get("engine_generation") or ""), str(rec.get("engine_version") or "")
    gpu = rec.get("gpu") or {}
    if _fork(rec) or "omni" in gen:
        return "fork of vLLM (its own profiling)"
    if gen.startswith("V0") or (not gen and not ver):
        return "V0 engine or generation not stated (V1 only is modelled)"
    if "rocm" in ver.lower() or "AMD" in str(gpu.get("name")):
        return "ROCm build on an AMD GPU (NVIDIA CUDA only is modelled)"
    if "unified" in str(gpu.get("name") or ""):
        return "unified-memory GPU (GB10): vLLM's free/total memory is the system's"
    if spec is None:
        return "no config for this checkpoint here (not in the catalog or wild/configs)"
    if total is None:
        return "GPU not stated or its memory size ambiguous (e.g. A100 40/80 GB)"
    if rec.get("speculative"):
        return "speculative decoding: the draft model's weights and KV are not modelled"
    if "node" in str(gpu.get("notes") or "") or "Ray" in str(rec.get("notes") or ""):
        return "multi-node tensor parallel over Ray: NCCL network buffers, no custom all-reduce"
    if rec.get("cpu_offload_gb") or rec.get("parallelism"):
        return "CPU offload / pipeline parallel not modelled"
    return None


#: (our part name, the record's field) for what vLLM logs at start-up.
_VLLM_FIELDS = (("weights", "weights_gib"), ("activation_peak", "torch_peak_increase_gib"),
                ("non_torch", "non_torch_gib"), ("kv", "kv_cache_gib"), ("kv_tokens", "kv_cache_tokens"),
                ("max_concurrency", "max_concurrency"))


def vllm_wild_rows(gt: Path) -> list[WildRow]:
    rows = []
    for rec in wild_records(gt, ("vllm",)):
        spec = wild_spec(gt, rec.get("model"))
        total = wild_gpu_bytes(rec)
        measured = {k: float(rec[f]) for k, f in _VLLM_FIELDS if isinstance(rec.get(f), (int, float))}
        in_target = bool(rec.get("model") and (rec.get("gpu") or {}).get("name")
                         and rec.get("gpu_memory_utilization")
                         and "V1" in str(rec.get("engine_generation") or "") and "kv" in measured)
        reason = _vllm_unexplained(rec, spec, total)
        case = f"{rec['id']} {str(rec.get('model') or '?')[:38]}"
        if reason or spec is None or total is None:
            rows.append(WildRow(rec["id"], "vllm", case, measured, {}, reason, in_target))
            continue
        b = vllm_startup(spec, rec, total)
        pred = {"weights": b.weights / GIB, "activation_peak": b.activation_peak / GIB,
                "non_torch": b.non_torch / GIB, "kv": b.kv_available / GIB, "kv_tokens": float(b.kv_capacity_tokens)}
        if rec.get("max_model_len"):
            pred["max_concurrency"] = max_concurrency(spec, b, int(rec["max_model_len"]))
        rows.append(WildRow(rec["id"], "vllm", f"{case} [{b.settings.release.label}]", measured, pred, None, in_target))
    return rows


def vllm_startup(spec: ModelSpec, rec: dict[str, Any], total_bytes: float) -> Startup:
    """What the vLLM engine lander-tui plans with says this record's start-up logged: the record's
    flags as `estimate` options, its release as `--set release_minor`, its GPUs whole and idle."""
    eng = get_engine("vllm")
    assert isinstance(eng, Vllm)
    release = wild_release(rec)
    opts = EngineOptions(gpu_memory_utilization=rec.get("gpu_memory_utilization"),
                         max_num_seqs=rec.get("max_num_seqs"), max_num_batched_tokens=rec.get("max_num_batched_tokens"),
                         block_size=int(rec.get("block_size") or 16), enforce_eager=bool(rec.get("enforce_eager")),
                         overrides={"release_minor": float(release.minor)} if release.major == 0 else {})
    name = str((rec.get("gpu") or {}).get("name") or "GPU")
    devices = [Device(name, total_bytes / MIB, total_bytes / MIB)] * int(rec.get("tensor_parallel_size") or 1)
    kv = str(rec.get("kv_cache_dtype") or "auto")
    return eng.startup(ResolvedModel(spec, "config"), _checkpoint_format(spec), "fp8" if kv.startswith("fp8") else kv,
                       devices, opts)


def _checkpoint_format(spec: ModelSpec) -> str:
    """The checkpoint as it ships (its own quant), else its dtype: what vLLM/SGLang load by default."""
    return native_format(spec) or torch_dtype_format(spec.torch_dtype)


def format_wild(rows: list[WildRow]) -> str:
    explained = [r for r in rows if r.reason is None]
    out = [format_table([Row(r.case, r.measured, r.predicted) for r in explained])]
    unexplained = [r for r in rows if r.reason is not None]
    if unexplained:
        out.append("  not explained:")
        out += [f"    {r.case:50} {r.reason}" for r in unexplained]
    return "\n".join(out)


def sglang_wild_rows(gt: Path) -> list[WildRow]:
    """SGLang records: the token pool `max_total_num_tokens` (and K size, weights) per record."""
    rows = []
    for rec in wild_records(gt, ("sglang",)):
        spec = wild_spec(gt, rec.get("model"))
        total = wild_gpu_bytes(rec)
        tokens = rec.get("max_total_num_tokens") or rec.get("kv_cache_tokens")
        measured = {k: float(v) for k, v in (("kv_tokens", tokens), ("k_size", rec.get("k_size_gb")),
                                             ("weights", rec.get("weights_gb"))) if isinstance(v, (int, float))}
        reason = None
        if rec.get("speculative") or rec.get("draft_k_size_gb"):
            reason = "speculative decoding: a draft model's weights and second pool"
        elif spec is None:
            reason = "no config for this checkpoint here (not in the catalog or wild/configs)"
        elif total is None:
            reason = "GPU not stated"
        case = f"{rec['id']} {str(rec.get('model') or '?')[:38]}"
        if reason or spec is None or total is None:
            rows.append(WildRow(rec["id"], "sglang", case, measured, {}, reason))
            continue
        pred, mfs = sglang_pool(spec, rec, total)
        rows.append(WildRow(rec["id"], "sglang", f"{case} mfs={mfs}", measured, pred))
    return rows


def sglang_pool(spec: ModelSpec, rec: dict[str, Any], total_bytes: float) -> tuple[dict[str, float], float]:
    """What the SGLang engine predicts for a record: the token pool (as `max_total_num_tokens`), the K
    half of it in GiB, and the weights per rank, all through the engine lander-tui plans with. An idle
    GPU: what SGLang sees free before it starts is the card's whole (CUDA) memory."""
    eng = get_engine("sglang")
    tp = int(rec.get("tensor_parallel_size") or 1)
    kv = str(rec.get("kv_cache_dtype") or "auto").split(" ")[0]
    kv = "fp8" if kv.startswith("fp8") else kv
    given = {"mem_fraction_static": float(rec["mem_fraction_static"])} if rec.get("mem_fraction_static") else {}
    opts = EngineOptions(overrides=given)
    model = ResolvedModel(spec, "config")
    quant = _checkpoint_format(spec)
    devices = [Device("GPU", total_bytes / MIB, total_bytes / MIB)] * tp
    budget = eng.budget(devices, opts)
    fp = eng.footprint(model, quant, kv, devices, opts)(np.array([1]))
    parts = [d.at(0).to_mib() for d in fp.devices]
    cap = eng.capacity(model, quant, kv, 1, parts, budget, opts)
    tokens = cap["kv_capacity_tokens"]
    cell = eng.cell_bytes(model, kv, tp)  # type: ignore[attr-defined]
    mfs = eng.mem_fraction_static(devices[0], tp, opts)  # type: ignore[attr-defined]
    return {"kv_tokens": tokens, "k_size": tokens * cell / 2 / GIB, "weights": parts[0].weights / 1024}, mfs


def ollama_wild_rows(gt: Path) -> list[WildRow]:
    """llama.cpp/Ollama records: the KV buffer where the model's shapes are known here, and
    `ollama ps` PROCESSOR where the record gives /api/ps sizes."""
    eng = get_engine("llama.cpp")
    rows = []
    for rec in wild_records(gt, ("llama.cpp", "ollama")):
        case = f"{rec['id']} {rec['engine']} {str(rec.get('model') or '?')[:34]}"
        ps = rec.get("ollama_api_ps") or {}
        if ps.get("size_bytes"):
            rows.append(WildRow(rec["id"], "ollama", case + f" ps={ps.get('reported')}", {}, {},
                                "PROCESSOR " + cpu_gpu_split(ps["size_bytes"], ps["size_vram_bytes"])
                                + " (from /api/ps sizes; no model config here to predict them)"))
            continue
        ps_row = _ollama_ps_row(gt, rec, case)
        if ps_row is not None:
            rows.append(ps_row)
            continue
        spec = wild_spec(gt, rec.get("model"))
        kv_mib = sum((rec.get("kv_buffer_mib") or {}).values()) if isinstance(rec.get("kv_buffer_mib"), dict) else None
        if spec is None or not isinstance(rec.get("n_ctx"), int) or kv_mib is None:
            why = ("GGUF/Ollama tag without a config here" if spec is None
                   else "no numeric n_ctx or KV buffer line in the record")
            rows.append(WildRow(rec["id"], rec["engine"], case, {}, {}, why))
            continue
        kv = str(rec.get("type_k") or "f16").split(" ")[0]
        opts = EngineOptions(n_parallel=int(rec.get("n_parallel") or 1), flash_attn=bool(rec.get("flash_attn")))
        # the KV buffer does not depend on the weights' type; F16 stands in for types llama.cpp
        # gained after this project's table (MXFP4 gpt-oss files)
        quant = str(rec.get("quant") or "F16").split(" ")[0]
        try:
            bd = eng.memory(ResolvedModel(spec, "catalog"), quant, kv, np.array([rec["n_ctx"]]), opts).at(0).to_mib()
        except LanderError:
            bd = eng.memory(ResolvedModel(spec, "catalog"), "F16", kv, np.array([rec["n_ctx"]]), opts).at(0).to_mib()
        rows.append(WildRow(rec["id"], rec["engine"], case, {"kv_mib": kv_mib}, {"kv_mib": bd.kv}))
    return rows


def _ollama_ps_row(gt: Path, rec: dict[str, Any], case: str) -> WildRow | None:
    """`ollama ps` PROCESSOR where the record names the GPUs as `Nx NAME NNGB`, the model and the context:
    what the Ollama engine plans there (its --fit placement), against what Ollama showed."""
    shown = (rec.get("ollama_ps") or {}).get("PROCESSOR")
    gpus = re.fullmatch(r"(\d+)x [^,]*?(\d+)\s*GB[^,]*", str((rec.get("gpu") or {}).get("name") or ""))
    spec = wild_spec(gt, str(rec.get("model") or "").split(" (")[0].replace(":", "-"))
    if not shown or not gpus or spec is None or not isinstance(rec.get("n_ctx"), int):
        return None
    eng = get_engine("ollama")
    devices = [Device(f"GPU{i}", int(gpus.group(2)) * 1024.0, int(gpus.group(2)) * 1024.0)
               for i in range(int(gpus.group(1)))]
    opts = EngineOptions(n_parallel=int(rec.get("n_parallel") or 1))
    model = ResolvedModel(spec, "catalog")
    quant = eng.default_quants(model)[0]
    plan = eng.plan(model, quant, "f16", rec["n_ctx"], devices, eng.budget(devices, opts), opts)
    predicted = plan.cpu_gpu_split()
    why = None if predicted == shown else f"predicted {predicted}"
    return WildRow(rec["id"], "ollama", f"{case} PROCESSOR {shown} -> {predicted}", {}, {}, why)


def vllm_target_summary(rows: list[WildRow], low: float = -0.08, high: float = 0.02) -> str:
    """The issue's vLLM V1 check: records naming model, GPU and utilization, KV within -8 %..+2 %."""
    target = [r for r in rows if r.in_target]
    done = [r for r in target if r.reason is None and "kv" in r.predicted]
    ok = [r for r in done if within(r, low, high)]
    above = [r.id for r in done if kv_error(r) > high]
    return (f"vLLM V1 target set: {len(target)} records name model, GPU and utilization; "
            f"{len(done)} explained, {len(ok)} within {low:+.0%}..{high:+.0%} of the logged KV memory"
            f" ({len(ok) / max(1, len(done)):.0%}); above {high:+.0%}: {above or 'none'}")


def kv_error(r: WildRow) -> float:
    """Relative error of the predicted KV memory (on a negative figure: its sign counts)."""
    m, p = r.measured["kv"], r.predicted["kv"]
    return (p - m) / abs(m)


def within(r: WildRow, low: float, high: float) -> bool:
    return low <= kv_error(r) <= high
