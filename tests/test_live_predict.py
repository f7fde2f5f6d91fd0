"""Predicted vs held: a running engine's configuration turned into the estimator's inputs, exactly.

The model files are real GGUFs (tests/gguf_fixtures.py); expected memory comes from the engine
model called directly with the configuration the engine runs, so a seam that drops or mistranslates
a flag (KV cells, slots, unified cache, KV type, flash attention) fails here.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gguf_fixtures import write_llama_gguf

from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import FakeBackend
from lander_tui.core.live import EngineConfig, EngineState, LoadedModel, compare, predict
from lander_tui.core.live.llama_server import llamacpp_config
from lander_tui.core.model_source import resolve_model


@pytest.fixture(scope="module")
def gguf(tmp_path_factory):
    return write_llama_gguf(tmp_path_factory.mktemp("m") / "tiny.gguf", n_layers=4, hidden=512)


def direct_mib(path, cells: int, kv: str, opts: EngineOptions) -> float:
    model = resolve_model(str(path))
    bd = get_engine("llama.cpp").memory(model, model.file_quant, kv, np.array([cells]), opts)
    return float(bd.total[0]) / MIB


def test_llama_server_flags_become_the_estimate_of_that_configuration(gguf):
    argv = ["llama-server", "-m", str(gguf), "-c", "8192", "-np", "2", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on",
            "-ub", "256"]
    cfg = llamacpp_config(argv, {}, model=str(gguf), slot_ctx=4096, slots=2)
    p = predict("llama-server", LoadedModel("tiny", cfg))
    want = direct_mib(gguf, 8192, "q8_0", EngineOptions(flash_attn=True, n_parallel=2, kv_unified=False, n_ubatch=256))
    assert p.total_mib == pytest.approx(want)
    assert p.config["kv_cells"] == 8192 and p.config["kv_type"] == "q8_0" and p.config["n_ubatch"] == 256
    assert sum(p.parts_mib.values()) == pytest.approx(p.total_mib)


def test_auto_slots_share_one_unified_cache(gguf):
    # no -np: llama-server runs 4 slots over one unified cache of -c cells (tools/server/server.cpp)
    cfg = llamacpp_config(["llama-server", "-m", str(gguf), "-c", "4096"], {}, slot_ctx=4096, slots=4)
    assert cfg.kv_unified is True and cfg.cells() == 4096
    p = predict("llama-server", LoadedModel("tiny", cfg))
    assert p.total_mib == pytest.approx(direct_mib(gguf, 4096, "f16", EngineOptions(n_parallel=4, kv_unified=True)))


def test_more_context_and_a_wider_kv_type_predict_more(gguf):
    base = EngineConfig(model=str(gguf), context=2048, parallel=1, kv_type="q8_0")
    small = predict("llama-server", LoadedModel("t", base))
    longer = predict("llama-server", LoadedModel("t", EngineConfig(**{**base.__dict__, "context": 8192})))
    wider = predict("llama-server", LoadedModel("t", EngineConfig(**{**base.__dict__, "kv_type": "f16"})))
    assert longer.parts_mib["kv_cache"] == pytest.approx(4 * small.parts_mib["kv_cache"], rel=0.01)
    assert wider.parts_mib["kv_cache"] > small.parts_mib["kv_cache"]
    assert small.parts_mib["weights"] == longer.parts_mib["weights"] == wider.parts_mib["weights"]


def test_an_ollama_blob_without_extension_is_read_by_its_magic(gguf, tmp_path):
    blob = tmp_path / "sha256-8eeb52dfb3bb9aefdf9d1ef24b3bdbcfbf6ac7b79cafe3d3ab2bf4ea2b8db8d0"
    shutil.copy(gguf, blob)
    cfg = EngineConfig(model=str(blob), context=4096, parallel=2, kv_unified=False, kv_type="f16")
    p = predict("ollama", LoadedModel("tiny:latest", cfg))
    assert p.total_mib == pytest.approx(direct_mib(gguf, 8192, "f16", EngineOptions(n_parallel=2, kv_unified=False)))


@pytest.mark.parametrize(("kind", "cfg", "why"), [
    ("tgi", EngineConfig(model="Qwen/Qwen2.5-0.5B", context=4096), "no memory model for TGI"),
    ("xllm", EngineConfig(model="Qwen/Qwen2.5-0.5B", context=4096), "no memory model for xLLM"),
    ("sglang", EngineConfig(model="Qwen/Qwen2.5-0.5B", context=4096), "GPU is not known"),
    ("sglang", EngineConfig(model=None, context=4096), "which model it serves"),
    ("llama-server", EngineConfig(model="/nowhere/m.gguf", context=4096), "not readable here"),
    ("llama-server", EngineConfig(model=None, context=4096), "which model file"),
    ("llama-cpp-python", EngineConfig(model="GGUF", context=2048, gpu_layers="0"), "CPU"),
    ("vllm", EngineConfig(model="Qwen/Qwen2.5-0.5B", context=4096), "GPU is not known"),
])
def test_why_there_is_no_prediction(kind, cfg, why, gguf):
    if cfg.model == "GGUF":
        cfg = EngineConfig(**{**cfg.__dict__, "model": str(gguf)})
    with pytest.raises(LanderError, match=why):
        predict(kind, LoadedModel("m", cfg))


def test_vllm_prediction_is_its_budget_and_the_kv_capacity_the_estimator_expects():
    cfg = EngineConfig(model="Qwen/Qwen2.5-0.5B", context=32768, gpu_memory_utilization=0.8, block_size=16)
    p = predict("vllm", LoadedModel("q", cfg), gpu_total_mib=81559)
    assert p.total_mib == pytest.approx(0.8 * 81559)
    spec = resolve_model("Qwen/Qwen2.5-0.5B").spec
    k, v = spec.kv_values_per_token()
    per_token = spec.n_layers * (k + v) * 2  # bf16 KV
    fixed = p.parts_mib["weights"] + p.parts_mib["compute"] + p.parts_mib["overhead"]
    assert p.kv_capacity_tokens == pytest.approx((0.8 * 81559 - fixed) * MIB / per_token, rel=0.01)


def test_compare_puts_held_memory_next_to_the_prediction(gguf):
    cfg = EngineConfig(model=str(gguf), context=4096, parallel=1, kv_type="f16")
    p = predict("llama-server", LoadedModel("tiny", cfg))
    held = round(p.total_mib) + 100
    snap = FakeBackend({"gpus": [{"name": "NVIDIA GeForce RTX 4090", "total_mib": 24564,
                                  "processes": [{"pid": 4321, "used_mib": held, "command": "llama-server"}]}]}).poll()
    st = EngineState("llama-server", "http://127.0.0.1:8080", pid=4321, gpu_pids=(4321,),
                     models=(LoadedModel("tiny", cfg),))
    (c,) = compare([st], snap)
    assert c.held_mib == held and c.gpus == (0,) and c.gpu_names == ("NVIDIA GeForce RTX 4090",)
    assert c.diff_mib == pytest.approx(held - p.total_mib)
    assert c.diff_pct == pytest.approx(100 * (held - p.total_mib) / p.total_mib)


def test_compare_without_gpu_memory_or_model_says_so():
    st = EngineState("xllm", "http://127.0.0.1:32769", pid=77)
    (c,) = compare([st], None)
    assert c.model is None and c.prediction is None and c.held_mib is None and c.why_not == "no model loaded"


def test_ollama_models_are_held_by_their_own_runner(gguf):
    cfg = EngineConfig(model=str(gguf), context=2048, parallel=1, kv_type="f16")
    a = LoadedModel("a", cfg, runner_pid=11)
    b = LoadedModel("b", cfg, runner_pid=12)
    snap = FakeBackend({"gpus": [{"name": "NVIDIA H100 80GB HBM3", "total_mib": 81559, "processes": [
        {"pid": 11, "used_mib": 1000, "command": "llama-server"},
        {"pid": 12, "used_mib": 2000, "command": "llama-server"}]}]}).poll()
    st = EngineState("ollama", "http://127.0.0.1:11434", pid=10, gpu_pids=(11, 12), models=(a, b))
    assert [c.held_mib for c in compare([st], snap)] == [1000, 2000]


def test_sglang_prediction_is_its_static_share_and_the_pool_the_estimator_expects():
    from lander_tui.core.engines.sglang import SGLangCalibration

    cfg = EngineConfig(model="Qwen/Qwen2.5-0.5B", context=32768, gpu_memory_utilization=0.85, kv_type="auto")
    p = predict("sglang", LoadedModel("q", cfg), gpu_total_mib=81559)
    cuda = SGLangCalibration().cuda_context_mib
    assert p.estimator == "sglang" and p.total_mib == pytest.approx(cuda + (81559 - cuda) * 0.85)
    # SGLang's pool: what mem_fraction_static leaves of the memory free at start once the weights are in
    # (model_runner.py profile_max_num_token), in tokens of bf16 K and V for every layer
    spec = resolve_model("Qwen/Qwen2.5-0.5B").spec
    k, v = spec.kv_values_per_token()
    pool_mib = (81559 - cuda) * 0.85 - p.parts_mib["weights"]
    assert p.kv_capacity_tokens == pytest.approx(pool_mib * MIB / (spec.n_layers * (k + v) * 2), rel=0.001)
    assert p.config["mem_fraction_static"] == 0.85 and p.config["context_length"] == 32768


def test_server_names_engine_names_and_aliases_find_the_same_readers():
    from lander_tui.core.live import READERS, reader_for

    for name in ("llama.cpp", "llamacpp", "llama-cpp", "llama-server", "llama_cpp"):
        assert reader_for(name).kind == "llama-server"
    assert reader_for("text-generation-inference").kind == "tgi"
    assert reader_for("Ollama").kind == "ollama" and reader_for("SGLang").kind == "sglang"
    with pytest.raises(LanderError, match="unknown engine kind 'transformers'"):
        reader_for("transformers")  # an estimator engine no server reader predicts with
    for r in READERS:  # every reader names a registered engine, or none
        assert r.engine is None or get_engine(r.engine).name == r.engine


@pytest.fixture(scope="module")
def long_gguf(tmp_path_factory):
    return write_llama_gguf(tmp_path_factory.mktemp("l") / "long.gguf", n_layers=4, hidden=512, context=131072)


def largest_fitting(path, available: float, opts: EngineOptions, kv: str = "f16", step: int = 256) -> int:
    """The most cells whose memory fits, found by walking the engine model itself."""
    cells = step
    while direct_mib(path, cells + step, kv, opts) <= available:
        cells += step
    return cells


def test_restart_gives_the_longest_context_that_fits_in_held_plus_free(long_gguf):
    from lander_tui.core.live.predict import restart

    cfg = EngineConfig(model=str(long_gguf), context=4096, parallel=1, kv_type="f16", flash_attn=True)
    held = predict("llama-server", LoadedModel("t", cfg), 24564).total_mib
    r = restart("llama-server", LoadedModel("t", cfg), held + 80, 24564)
    want = largest_fitting(long_gguf, r.available_mib, EngineOptions(flash_attn=True, n_parallel=1))
    assert r.context == want > 4096 and r.flags == f"-c {want}"
    assert r.available_mib <= held + 80


def test_restart_with_slots_of_their_own_sets_cells_for_every_slot(long_gguf):
    from lander_tui.core.live.predict import restart

    cfg = EngineConfig(model=str(long_gguf), context=4096, parallel=2, kv_unified=False, kv_type="q8_0",
                       flash_attn=True)
    held = predict("llama-server", LoadedModel("t", cfg), 24564).total_mib
    r = restart("llama-server", LoadedModel("t", cfg), held + 80, 24564)
    opts = EngineOptions(flash_attn=True, n_parallel=2, kv_unified=False)
    cells = largest_fitting(long_gguf, r.available_mib, opts, "q8_0", step=512)
    assert r.context == cells // 2 and r.flags == f"-c {cells} -np 2"


def test_ollama_restarts_with_its_fit_margin_kept_free(long_gguf):
    from lander_tui.core.engines.llamacpp import LlamaCppCalibration
    from lander_tui.core.live.predict import restart

    cfg = EngineConfig(model=str(long_gguf), context=4096, parallel=1, kv_type="f16", flash_attn=True)
    held = predict("ollama", LoadedModel("t", cfg), 24564).total_mib
    assert held == pytest.approx(predict("llama-server", LoadedModel("t", cfg), 24564).total_mib)  # no margin held
    available = held + 1124  # the margin and 100 MiB more
    ours = restart("ollama", LoadedModel("t", cfg), available, 24564)
    plain = restart("llama-server", LoadedModel("t", cfg), available, 24564)
    margin = LlamaCppCalibration(margin_mib=1024.0).margin_mib
    want = largest_fitting(long_gguf, ours.available_mib - margin, EngineOptions(flash_attn=True, n_parallel=1))
    assert ours.context == want < plain.context and ours.flags == f"OLLAMA_CONTEXT_LENGTH={want}"


def test_vllm_restart_takes_the_utilization_that_fits_held_plus_free():
    from lander_tui.core.engines.vllm import fitting_utilization
    from lander_tui.core.live.predict import restart
    from lander_tui.core.model import Device

    cfg = EngineConfig(model="Qwen/Qwen2.5-0.5B", context=4096, gpu_memory_utilization=0.08, block_size=16)
    r = restart("vllm", LoadedModel("q", cfg), 2420, 24564)  # a 4090: 2,254 MiB at 4k, 2,590 at 32k
    util = fitting_utilization(r.available_mib, 24564)
    assert r.flags == f"--max-model-len {r.context} --gpu-memory-utilization {util:g}"
    # one request of that context fits in util x total, one more block does not (vLLM's own memory model)
    model = resolve_model("Qwen/Qwen2.5-0.5B")
    fp = get_engine("vllm").footprint(model, "BF16", "auto", [Device("4090", r.available_mib, 24564)],
                                      EngineOptions(gpu_memory_utilization=util))
    mib = [float(fp(np.array([c])).devices[0].total[0]) / MIB for c in (r.context, r.context + 16)]
    assert 4096 < r.context < model.spec.max_context and mib[0] <= util * 24564 < mib[1]


def test_restart_says_when_nothing_loads(gguf):
    from lander_tui.core.live.predict import restart

    cfg = EngineConfig(model=str(gguf), context=4096, parallel=1, kv_type="f16")
    with pytest.raises(LanderError, match="nothing loads on 64 MiB"):
        restart("llama-server", LoadedModel("t", cfg), 100, 24564)


def test_restart_advice_does_not_flicker_with_a_few_mib_of_jitter(long_gguf):
    from lander_tui.core.live.predict import RESTART_STEP_MIB, restart

    cfg = EngineConfig(model=str(long_gguf), context=2048, parallel=1, kv_type="f16", flash_attn=False)
    m = LoadedModel("t", cfg)
    first = restart("llama-server", m, 1000.0, 24564)
    assert first.available_mib == 1000 // RESTART_STEP_MIB * RESTART_STEP_MIB
    assert restart("llama-server", m, first.available_mib + 1.5 * RESTART_STEP_MIB, 24564) is first  # jitter up
    lower = restart("llama-server", m, first.available_mib - 1, 24564)  # below the step: asked again
    assert lower.available_mib == first.available_mib - RESTART_STEP_MIB and lower.context < first.context
    more = restart("llama-server", m, first.available_mib + 10 * RESTART_STEP_MIB, 24564)
    assert more.context > first.context


def test_vllm_is_predicted_for_its_own_release():
    """vLLM's default utilization moved from 0.9 to 0.92 in 0.22 (vllm/config/cache.py): a server that
    does not report its utilization is predicted with its release's."""
    base = {"model": "Qwen/Qwen2.5-0.5B", "context": 4096, "block_size": 16}
    old = predict("vllm", LoadedModel("q", EngineConfig(**base, version="0.11.0")), 81559)
    new = predict("vllm", LoadedModel("q", EngineConfig(**base, version="0.27.1")), 81559)
    assert old.total_mib == pytest.approx(0.9 * 81559) and new.total_mib == pytest.approx(0.92 * 81559)
    assert (old.config["release"], new.config["release"]) == ("0.11", "0.27")
