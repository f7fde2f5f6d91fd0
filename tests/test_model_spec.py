"""Config parsing: every public model's parameter count, computed exactly from its config."""

from __future__ import annotations

import json

import pytest

from lander_tui.core.errors import LanderError
from lander_tui.core.model_spec import FULL, RECURRENT, SWA, ModelSpec, from_hf_config
from lander_tui.core.tensors import active_parameter_count, parameter_count


def test_every_reference_model_param_count_is_exact(model_facts):
    wrong = []
    for m in model_facts:
        spec = from_hf_config(m["raw_config_as_found"], m["hf_repo_id"])
        if parameter_count(spec) != m["params"]["computed_from_config"]:
            wrong.append((m["hf_repo_id"], parameter_count(spec), m["params"]["computed_from_config"]))
    assert wrong == []
    assert len(model_facts) >= 40


def test_moe_active_params_match_reference(model_facts):
    for m in model_facts:
        active = m["params"].get("computed_active_per_token")
        if not active or not m.get("moe"):
            continue
        spec = from_hf_config(m["raw_config_as_found"], m["hf_repo_id"])
        assert abs(active_parameter_count(spec) - active) / active < 0.002, m["hf_repo_id"]


def test_round_trip_through_own_format(model_facts):
    for m in model_facts:
        spec = from_hf_config(m["raw_config_as_found"], m["hf_repo_id"])
        again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert again.to_dict() == spec.to_dict()
        assert parameter_count(again) == parameter_count(spec)


def _facts(model_facts, repo):
    return next(m for m in model_facts if m["hf_repo_id"] == repo)["raw_config_as_found"]


def test_layer_patterns(model_facts):
    g2 = from_hf_config(_facts(model_facts, "google/gemma-2-2b-it"))
    assert g2.kinds()[:4] == (SWA, FULL, SWA, FULL) and g2.sliding_window == 4096
    g3 = from_hf_config(_facts(model_facts, "google/gemma-3-27b-it"))
    assert g3.kinds()[:6] == (SWA,) * 5 + (FULL,) and g3.head_dim == 128
    oss = from_hf_config(_facts(model_facts, "openai/gpt-oss-20b"))
    assert oss.kinds()[0] == SWA and oss.sliding_window == 128 and oss.count(SWA) == 12
    q = from_hf_config(_facts(model_facts, "Qwen/Qwen2.5-7B"))
    assert q.count(SWA) == 0  # inert sliding_window keys
    ds = from_hf_config(_facts(model_facts, "deepseek-ai/DeepSeek-V3"))
    assert ds.mla and ds.kv_values_per_token() == (576, 0)
    assert ds.moe and ds.moe.dense_layers == (0, 1, 2)


def test_hybrid_linear_attention_state():
    cfg = {
        "model_type": "qwen3_next", "hidden_size": 2048, "num_hidden_layers": 48,
        "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256, "vocab_size": 151936,
        "intermediate_size": 5120, "full_attention_interval": 4, "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 128, "linear_num_key_heads": 16, "linear_value_head_dim": 128,
        "linear_num_value_heads": 32, "max_position_embeddings": 262144,
    }
    spec = from_hf_config(cfg)
    assert spec.count(RECURRENT) == 36 and spec.count(FULL) == 12
    # estimator-anchors §1.4: conv 24,576 floats and SSM 524,288 floats per linear layer
    assert spec.recurrent.conv == 24576 and spec.recurrent.ssm == 524288


@pytest.mark.parametrize(
    "cfg, msg",
    [
        ({"model_type": "llama"}, "hidden_size"),
        ({"hidden_size": 10, "num_hidden_layers": "x", "num_attention_heads": 2}, "number"),
        ([], "JSON object"),
    ],
)
def test_bad_configs_give_one_line_errors(cfg, msg):
    with pytest.raises(LanderError, match=msg):
        from_hf_config(cfg)


def test_mamba_hybrids_hold_a_constant_state():
    granite = {  # Granite-4.0-H style: Mamba-2 layers marked in layer_types
        "model_type": "granitemoehybrid", "hidden_size": 1536, "num_hidden_layers": 4, "num_attention_heads": 12,
        "num_key_value_heads": 4, "intermediate_size": 4096, "vocab_size": 100352, "max_position_embeddings": 131072,
        "layer_types": ["mamba", "mamba", "mamba", "attention"], "mamba_d_state": 128, "mamba_d_conv": 4,
        "mamba_expand": 2, "mamba_n_groups": 1, "mamba_n_heads": 48, "mamba_d_head": 64,
    }
    spec = from_hf_config(granite)
    assert spec.kinds() == (RECURRENT, RECURRENT, RECURRENT, FULL)
    d_inner = 2 * 1536
    assert spec.recurrent.conv == 3 * (d_inner + 2 * 128) and spec.recurrent.ssm == 128 * d_inner
    jamba = {"model_type": "jamba", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 65536,
             "attn_layer_period": 8, "attn_layer_offset": 4, "mamba_d_state": 16, "mamba_d_conv": 4,
             "mamba_expand": 2, "num_experts": 16, "num_experts_per_tok": 2}
    j = from_hf_config(jamba)
    assert j.count(FULL) == 4 and j.kinds()[4] == FULL and j.count(RECURRENT) == 28
    assert j.recurrent.ssm == 16 * 8192


def test_recurrent_state_does_not_grow_with_context():
    import numpy as np

    from lander_tui.core.engines import EngineOptions, get_engine
    from lander_tui.core.model_source import ResolvedModel

    cfg = {"model_type": "jamba", "hidden_size": 4096, "num_hidden_layers": 8, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 65536,
           "attn_layer_period": 8, "attn_layer_offset": 4, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2}
    m = ResolvedModel(from_hf_config(cfg), "config")
    kv = get_engine("llama.cpp").memory(m, "Q8_0", "f16", np.array([4096, 8192]), EngineOptions()).kv
    per_token_one_attn_layer = 2 * 8 * 128 * 2
    assert kv[1] - kv[0] == 4096 * per_token_one_attn_layer  # only the one attention layer grows
    state = 7 * (3 * (8192 + 32) + 16 * 8192) * 4  # F32 conv + SSM state of the 7 Mamba layers
    assert kv[0] == 4096 * per_token_one_attn_layer + state
