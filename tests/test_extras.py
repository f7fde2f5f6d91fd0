"""What loads beside a model (core/extras.py, core/vision.py): the encoder shapes from real configs, the one
`extras` memory part every engine fills, and the rules each engine's source gives for it.

The llama.cpp numbers are judged by the real llama.cpp in tests/test_extras_real.py; here the other
engines' rules (cited where they are used) and what the user can ask for."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.errors import LanderError
from lander_tui.core.extras import Speculative, extras_json, lora_slot_bytes, lora_tensors, parse_lora
from lander_tui.core.memory import EXTRAS, MemoryParts, extras_detail
from lander_tui.core.model import Device
from lander_tui.core.model_source import resolve_model
from lander_tui.core.model_spec import from_hf_config
from lander_tui.core.vision import vision_param_count, vision_tensors

FACTS = json.loads((Path(__file__).parent / "data" / "models" / "model_facts.json").read_text())


def _facts(repo: str) -> dict:
    return next(m for m in FACTS if m["hf_repo_id"] == repo)


# --- encoder shapes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("repo", ["google/gemma-3-4b-it", "google/gemma-3-27b-it"])
def test_gemma3_vision_tower_is_the_published_parameter_count(repo):
    """keras-hub publishes each Gemma 3 preset with and without the vision tower (model_facts.json): their
    difference is the SigLIP tower and projector, which lander lists tensor by tensor from config.json."""
    m = _facts(repo)
    spec = from_hf_config(m["raw_config_as_found"], hf_repo=repo)
    published = sorted(p["value"] for p in m["params"]["published"] if p["kind"] == "keras_hub_preset_params")
    assert spec.vision is not None and spec.vision.projector == "gemma3"
    assert vision_param_count(spec.vision) == published[1] - published[0]
    assert spec.vision.tokens_per_image == m["raw_config_as_found"]["mm_tokens_per_image"]


def test_catalog_gemma3_carries_its_vision_tower_and_text_models_none():
    assert resolve_model("gemma-3-27b-it").spec.vision is not None
    assert resolve_model("gemma-3-1b-it").spec.vision is None  # text-only
    assert resolve_model("llama-3.1-8b").spec.vision is None


def test_mtp_layers_come_from_the_config():
    assert resolve_model("deepseek-v3").spec.mtp_layers == _facts("deepseek-ai/DeepSeek-V3")["mla"][
        "num_nextn_predict_layers"] == 1
    assert resolve_model("qwen3-8b").spec.mtp_layers == 0


def test_mmproj_tensors_are_f16_matrices_and_f32_vectors():
    v = resolve_model("gemma-3-4b-it").spec.vision
    assert v is not None
    ts = vision_tensors(v)
    # the gemma3 converter forces the embeddings to F32 and the input projection to F16 (conversion/gemma.py)
    types = {t.name: t.ggml_type for t in ts}
    assert types["v.position_embd.weight"] == types["v.patch_embd.weight"] == "F32"
    assert types["mm.input_projection.weight"] == "F16" and types["v.blk.0.attn_q.weight"] == "F16"
    assert all(t.ggml_type == "F32" for t in ts if t.rows == 1)


# --- one extras part ----------------------------------------------------------------------------------------


def test_extras_are_their_own_part_and_in_the_total():
    a = MemoryParts(1.0, 2.0, 3.0, 4.0, 0.0, extras_detail(5.0, 6.0, 7.0), 18.0)
    assert a.total == 28.0
    b = a + a
    assert b.extras == 36.0 and b.detail["draft"] == 12.0
    j = a.as_json()
    assert j["extras_mib"] == 18.0 and [j[e.json_key] for e in EXTRAS] == [5.0, 6.0, 7.0]
    assert a.extra_parts() == {"projector": 5.0, "draft": 6.0, "lora": 7.0}
    assert MemoryParts().extra_parts() == {}


# --- what the user asks for ---------------------------------------------------------------------------------


def test_lora_spec_forms_and_errors():
    assert (parse_lora("16").rank, parse_lora("16").count) == (16, 1)
    assert (parse_lora("64x4").rank, parse_lora("64x4").count) == (64, 4)
    for bad in ("abc", "0", "16x0", "99999", "nope.gguf"):
        with pytest.raises(LanderError) as err:
            parse_lora(bad)
        assert "\n" not in str(err.value)


def test_lora_tensors_are_rank_times_in_plus_out_on_each_target():
    spec = resolve_model("llama-3.1-8b").spec
    one = sum(t.nbytes or 0 for t in lora_tensors(spec, parse_lora("16")))
    # q 4096->4096, k/v 4096->1024, o 4096->4096, gate/up 4096->14336, down 14336->4096, F32, 32 layers
    per_layer = 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 2 * (4096 + 14336) + (14336 + 4096))
    assert one == per_layer * 32 * 4


def test_speculative_needs_a_model_or_mtp():
    with pytest.raises(LanderError):
        Speculative()
    with pytest.raises(LanderError):
        Speculative(mtp=True, tokens=0)


# --- vLLM ---------------------------------------------------------------------------------------------------

H100 = [Device("H100", 81559.0, 81559.0)]


def _row(engine, model, quant, kv, opts, devices=H100, ctx=8192):
    e = get_engine(engine)
    m = resolve_model(model)
    return e.footprint(m, quant, kv, devices, opts)(np.array([ctx])).devices[0].at(0)


def test_vllm_projector_is_the_tower_and_what_profiling_adds():
    """vLLM loads the tower in 16 bits and profiles `max_items_per_batch` images of the largest size while
    it keeps their embeddings (gpu_model_runner.py `profile_run`): for Gemma 3 at 8192 batched tokens 32
    images of 256 tokens, whose 2560-wide embeddings stay beside the text batch's peak."""
    from lander_tui.core.engines.vllm import encoder_items

    on = _row("vllm", "gemma-3-4b-it", "BF16", "auto", EngineOptions())
    off = _row("vllm", "gemma-3-4b-it", "BF16", "auto", EngineOptions(mmproj=False))
    spec = resolve_model("gemma-3-4b-it").spec
    e = get_engine("vllm")
    st = e.startup(resolve_model("gemma-3-4b-it"), "BF16", "auto", H100, EngineOptions())
    items = encoder_items(256, st.settings)
    assert items == 8192 // 256
    tower = 2 * vision_param_count(spec.vision)
    embeddings = items * 256 * 2560 * 2
    assert on.detail["projector"] == pytest.approx(tower + embeddings)  # the text peak is the larger one here
    assert off.extras == 0 and on.weights == off.weights and on.compute == off.compute
    assert on.total - off.total == pytest.approx(on.extras)


def test_vllm_lora_rank_is_one_vllm_accepts_and_slots_scale():
    from lander_tui.core.engines.vllm import lora_rank

    assert [lora_rank(r) for r in (1, 5, 16, 17, 300, 512)] == [1, 8, 16, 32, 320, 512]
    with pytest.raises(LanderError):
        lora_rank(513)
    one = _row("vllm", "llama-3.1-8b", "BF16", "auto", EngineOptions(lora=parse_lora("16"))).detail["lora"]
    four = _row("vllm", "llama-3.1-8b", "BF16", "auto", EngineOptions(lora=parse_lora("16x4"))).detail["lora"]
    assert four == pytest.approx(4 * one)
    assert one == pytest.approx(lora_slot_bytes(resolve_model("llama-3.1-8b").spec, 16, 1, 1))


def test_vllm_draft_adds_its_weights_and_its_pages_per_request():
    opts = EngineOptions(speculative=Speculative(resolve_model("qwen3-0.6b"), tokens=3, ref="qwen3-0.6b"))
    at8 = _row("vllm", "qwen3-8b", "BF16", "auto", opts, ctx=8192)
    at16 = _row("vllm", "qwen3-8b", "BF16", "auto", opts, ctx=16384)
    small = resolve_model("qwen3-0.6b").spec
    # one more request of 8192 tokens: 512 more blocks of 16 for each of the draft's 28 layers
    page = 16 * 2 * small.n_kv_heads * small.head_dim * 2
    assert at16.detail["draft"] - at8.detail["draft"] == pytest.approx(8192 // 16 * 28 * page)


# --- SGLang -------------------------------------------------------------------------------------------------


def test_sglang_holds_back_memory_for_a_vision_tower():
    """`adjust_mem_fraction_for_vlm`: 0.95 x (1 - 0.1 x (L h^2 / (24 x 1024^2) - 1)), within 0.8..1.05."""
    from lander_tui.core.engines.sglang import default_settings, vlm_fraction_factor

    spec = resolve_model("gemma-3-4b-it").spec
    want = 0.95 * (1 - 0.1 * (27 * 1152**2 / (24 * 1024**2) - 1))
    assert vlm_fraction_factor(spec) == pytest.approx(want)
    e = get_engine("sglang")
    m = resolve_model("gemma-3-4b-it")
    mfs = default_settings(81559.0, 1)[2]
    assert e.mem_fraction_static(H100[0], 1, EngineOptions(), m) == round(mfs * want, 3)
    assert e.mem_fraction_static(H100[0], 1, EngineOptions(mmproj=False), m) == mfs
    on = _row("sglang", "gemma-3-4b-it", "BF16", "auto", EngineOptions())
    off = _row("sglang", "gemma-3-4b-it", "BF16", "auto", EngineOptions(mmproj=False))
    cut = (81559.0 - 512.0) * MIB * (mfs - round(mfs * want, 3))
    assert on.detail["projector"] == pytest.approx(2 * vision_param_count(spec.vision) + cut)
    assert on.compute == off.compute  # the model's own reserve is the same; the cut shows as the projector


# --- Transformers -------------------------------------------------------------------------------------------


def test_transformers_refuses_what_it_cannot_do():
    with pytest.raises(LanderError, match="assistant model"):
        _row("transformers", "deepseek-v2-lite", "BF16", "bf16", EngineOptions(speculative=Speculative(mtp=True)))
    with pytest.raises(LanderError, match="--no-mmproj"):
        _row("transformers", "gemma-3-4b-it", "BF16", "bf16", EngineOptions(mmproj=False))


def test_transformers_assistant_costs_its_weights_and_cache_not_a_second_prefill_peak():
    opts = EngineOptions(speculative=Speculative(resolve_model("qwen3-0.6b"), ref="qwen3-0.6b"))
    with_draft = _row("transformers", "qwen3-8b", "BF16", "bf16", opts, ctx=4096)
    alone = _row("transformers", "qwen3-0.6b", "BF16", "bf16", EngineOptions(), ctx=4096)
    d = with_draft.detail["draft"]
    assert d < alone.total - 700 * MIB  # less than the small model on its own (no CUDA context, no 2nd peak)
    assert d >= alone.weights + alone.kv


# --- llama.cpp and Ollama -----------------------------------------------------------------------------------


def test_llama_cpp_projector_sits_on_the_first_gpu_and_ollama_keeps_it_off_a_partial_offload():
    two = [Device("A", 12000.0), Device("B", 12000.0)]
    fp = get_engine("llama.cpp").footprint(resolve_model("gemma-3-4b-it"), "Q4_K_M", "f16", two, EngineOptions())
    parts = [d.at(0) for d in fp(np.array([4096])).devices]
    assert parts[0].detail["projector"] > 0 and parts[1].detail["projector"] == 0
    ollama = get_engine("ollama")
    m = resolve_model("gemma-3-27b-it")
    lay_full = ollama.layout(m, "Q4_K_M", 1, m.spec.n_layers + 1, (1.0,))
    lay_part = ollama.layout(m, "Q4_K_M", 1, 10, (1.0,))
    assert ollama.projector_on_gpu(m, lay_full) and not ollama.projector_on_gpu(m, lay_part)
    with pytest.raises(LanderError, match="MTP"):
        ollama.footprint(m, "Q4_K_M", "f16", two[:1], EngineOptions(
            speculative=Speculative(resolve_model("gemma-3-1b-it"))))


def test_llama_cpp_refuses_a_draft_with_another_vocabulary():
    with pytest.raises(LanderError, match="tokenizer"):
        _row("llama.cpp", "qwen3-8b", "Q4_K_M", "f16",
             EngineOptions(speculative=Speculative(resolve_model("llama-3.2-1b-instruct"))))


def test_mtp_needs_mtp_layers_everywhere():
    for engine, quant, kv in (("llama.cpp", "Q4_K_M", "f16"), ("vllm", "BF16", "auto"), ("sglang", "BF16", "auto")):
        with pytest.raises(LanderError, match="multi-token-prediction"):
            _row(engine, "qwen3-8b", quant, kv, EngineOptions(speculative=Speculative(mtp=True)))


def test_extras_json_says_what_was_loaded():
    m = resolve_model("gemma-3-4b-it")
    j = extras_json(m, None, Speculative(mtp=True, tokens=2, ref="mtp"), parse_lora("8x2"))
    assert j["projector"]["projector_type"] == "gemma3" and j["speculative"] == {"draft": "mtp", "tokens": 2}
    assert j["lora"] == {"rank": 8, "count": 2, "file": None}
    assert extras_json(m, False, None, None) == {"projector": None, "speculative": None, "lora": None}
    with pytest.raises(LanderError, match="no vision encoder"):  # --mmproj on a text-only model
        extras_json(resolve_model("llama-3.1-8b"), True, None, None)


def test_more_slots_never_cost_less():
    spec = resolve_model("qwen2.5-7b").spec
    sizes = [lora_slot_bytes(spec, 16, n, 1) for n in (1, 2, 8)]
    assert sizes[1] == pytest.approx(2 * sizes[0]) and sizes[2] == pytest.approx(8 * sizes[0])
    assert lora_slot_bytes(spec, 16, 1, 2) < sizes[0] and math.isfinite(sizes[0])
