"""Engine accounting rules that the ground truth does not reach: SWA, MLA, recurrent, vLLM budget."""

from __future__ import annotations

import numpy as np
import pytest

from lander_tui.core.catalog import get_model
from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.formats import GGML_TYPES, kv_cache_type, weight_format
from lander_tui.core.ggml_quant import predict_tensor_types
from lander_tui.core.model_source import ResolvedModel
from lander_tui.core.model_spec import from_hf_config
from lander_tui.core.tensors import model_tensors


def _m(name: str) -> ResolvedModel:
    return ResolvedModel(get_model(name), "catalog")


@pytest.mark.parametrize("name, bpw", [("Q4_0", 4.5), ("Q8_0", 8.5), ("Q2_K", 2.625), ("Q4_K", 4.5),
                                       ("Q6_K", 6.5625), ("IQ2_S", 2.5625), ("IQ4_XS", 4.25), ("MXFP4", 4.25)])
def test_ggml_bits_per_weight(name, bpw):
    assert GGML_TYPES[name].bits_per_weight == bpw


def test_kv_type_bytes():
    assert kv_cache_type("q8_0").row_bytes(1024) == 1088
    assert kv_cache_type("q4_0").row_bytes(128) == 72
    with pytest.raises(LanderError, match="unknown KV-cache type"):
        kv_cache_type("q3")


def test_llamacpp_kv_pads_to_256_and_scales_with_type():
    eng, m, opts = get_engine("llama.cpp"), _m("llama-3.1-8b"), EngineOptions()
    a = eng.memory(m, "Q4_K_M", "f16", np.array([1000, 1024, 1025]), opts)
    assert list(a.context) == [1024, 1024, 1280]
    assert a.kv[0] == 32 * 1024 * 2 * 8 * 128 * 2
    q = eng.memory(m, "Q4_K_M", "q4_0", np.array([4096]), opts)
    assert q.kv[0] == 32 * 4096 * 2 * (1024 // 32 * 18)


def test_llamacpp_swa_layers_hold_window_plus_ubatch():
    eng, m = get_engine("llama.cpp"), _m("gemma-2-9b-it")
    spec = m.spec
    bd = eng.memory(m, "Q4_K_M", "f16", np.array([32768]), EngineOptions())
    per_cell = 2 * spec.n_kv_heads * spec.head_dim * 2
    n_swa = spec.n_layers // 2
    expected = per_cell * (32768 * (spec.n_layers - n_swa) + (4096 + 512) * n_swa)  # pad(4608, 256) = 4608
    assert bd.kv[0] == expected


def test_mistral_sliding_window_is_ignored_by_llamacpp_but_not_vllm():
    cfg = {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000,
           "max_position_embeddings": 32768, "sliding_window": 4096}
    m = ResolvedModel(from_hf_config(cfg), "config")
    lc = get_engine("llama.cpp").memory(m, "Q4_K_M", "f16", np.array([16384]), EngineOptions())
    assert lc.kv[0] == 32 * 16384 * 2 * 1024 * 2
    vl = get_engine("vllm").memory(m, "BF16", "auto", np.array([16384, 32768]), EngineOptions())
    assert vl.kv[0] == vl.kv[1]  # window + batched tokens caps it


def test_mla_caches_one_latent_per_token():
    m = _m("deepseek-v2-lite")
    bd = get_engine("llama.cpp").memory(m, "Q4_K_M", "f16", np.array([8192]), EngineOptions())
    assert bd.kv[0] == 27 * 8192 * 576 * 2
    tf = get_engine("transformers").memory(m, "BF16", "bf16", np.array([8192]), EngineOptions())
    assert tf.kv[0] == 27 * 8192 * 576 * 2  # Transformers 5.x caches the latent too (DeepseekV2Attention)


def test_quantized_v_cache_needs_flash_attention():
    with pytest.raises(LanderError, match="flash attention"):
        get_engine("llama.cpp").memory(_m("llama-3.1-8b"), "Q4_K_M", "q8_0", np.array([4096]),
                                       EngineOptions(flash_attn=False))


def test_llamacpp_refuses_fp8_kv():
    with pytest.raises(LanderError, match="no fp8 KV"):
        get_engine("llama.cpp").memory(_m("llama-3.1-8b"), "Q4_K_M", "fp8", np.array([4096]), EngineOptions())


def test_row_not_divisible_by_block_falls_back():
    spec = get_model("gpt-oss-20b")  # n_embd 2880 is not a multiple of 256
    types = predict_tensor_types(spec, model_tensors(spec), "Q4_K_M")
    assert types["blk.0.attn_q.weight"] == "Q5_0"
    assert types["output.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_ollama_keeps_fit_target_free():
    m = _m("llama-3.1-8b")
    lc = get_engine("llama.cpp").memory(m, "Q4_K_M", "f16", np.array([8192]), EngineOptions())
    ol = get_engine("ollama").memory(m, "Q4_K_M", "f16", np.array([8192]), EngineOptions())
    assert ol.total[0] - lc.total[0] == 1024 * MIB


def test_overrides_are_named_and_checked():
    m = _m("llama-3.1-8b")
    eng = get_engine("llama.cpp")
    base = eng.memory(m, "Q4_K_M", "f16", np.array([8192]), EngineOptions())
    more = eng.memory(m, "Q4_K_M", "f16", np.array([8192]), EngineOptions(overrides={"cuda_context_mib": 1000}))
    assert more.total[0] - base.total[0] == pytest.approx((1000 - 592) * MIB)
    with pytest.raises(LanderError, match="unknown setting"):
        eng.memory(m, "Q4_K_M", "f16", np.array([8192]), EngineOptions(overrides={"nope": 1}))


def test_grouped_quant_sizes():
    awq = weight_format("AWQ")
    assert awq.kind == "grouped" and awq.group == 128
    # 4 bits + (f16 scale + 4-bit zero) per 128 weights = 4.156 bits
    assert awq.matrix_bytes(128 * 1000) * 8 / (128 * 1000) == pytest.approx(4.15625)
    with pytest.raises(LanderError):
        weight_format("GPTQ-5bit")


def test_ollama_default_context_tiers():
    from lander_tui.core.engines.ollama import default_num_ctx

    assert default_num_ctx([8 * 1024]) == 4096
    assert default_num_ctx([24 * 1024]) == 32768
    assert default_num_ctx([80 * 1024]) == 262144


def test_llamacpp_moe_compute_holds_the_expert_outputs_and_the_cuda_pool():
    """build_moe_ffn: the down mul_mat_id writes [n_embd, k, n_ub] f32 while its [n_ff_exp, k, n_ub] input
    is alive; Qwen3-30B-A3B (k 8, n_embd 2048 > n_ff_exp 768) peaks there, not at gate/up/swiglu. The
    CUDA mul_mat_id's q8_1 copy of the routed input sits in the CUDA pool beside the graph."""
    from lander_tui.core.formats import kv_cache_type

    eng = get_engine("llama.cpp")
    m = _m("qwen3-30b-a3b")
    opts = EngineOptions()
    geo = eng.geometry(np.array([4096]), opts)
    ph = eng.compute_phases(m.spec, kv_cache_type("f16"), True, geo, eng.calibration(opts))
    k, H, ff = 8, m.spec.hidden_size, m.spec.moe.expert_ff
    assert ph["ffn"][0] == (k * ff + k * H) * 512 * 4 + 2 * H * 512 * 4
    assert ph["cuda_pool"][0] == k * 512 * H * 36 / 32
    dense = eng.compute_phases(_m("llama-3.1-8b").spec, kv_cache_type("f16"), True, geo, eng.calibration(opts))
    assert dense["cuda_pool"][0] == 0
    bd = eng.memory(m, "Q4_K_M", "f16", np.array([4096]), opts)
    assert bd.compute[0] == max(ph["logits"][0], ph["attention"][0], ph["ffn"][0]) + ph["cuda_pool"][0]
