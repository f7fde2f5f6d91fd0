"""vLLM as `lander-tui estimate` runs it: the V1 start-up profile is the engine's memory, every result
says what vLLM will print ("Available KV cache memory", "GPU KV cache size", "Maximum concurrency"),
no plan asks for a `--max-model-len` vLLM refuses, and the flags users pass move the answer as they
move vLLM's (vllm/engine/arg_utils.py, vllm/v1/worker/gpu_worker.py, vllm/v1/core/kv_cache_utils.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from commands import command_lines

from lander_tui.cli import main
from lander_tui.core.catalog import get_model
from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.engines import vllm as v
from lander_tui.core.estimate import EstimateRequest, plan_row, run_estimate
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.planning_memory import what_if

VLLM = get_engine("vllm")
H100 = Device("H100 80GB", 81079.0, 81079.0)
A100 = Device("A100 80GB", 81079.0, 81079.0)


def _m(name):
    return ResolvedModel(get_model(name), "catalog")


def _startup(model, devices, quant="BF16", kv="auto", **opts):
    return VLLM.startup(_m(model), quant, kv, devices, EngineOptions(**opts))


def _json(capsys, *argv):
    main(["estimate", *argv, "--json"])
    return json.loads(capsys.readouterr().out)


def test_every_vllm_result_says_what_vllm_logs_and_other_engines_do_not_invent_it(capsys):
    data = _json(capsys, "qwen3-8b", "-b", "vllm", "--what-if", "H100 80GB", "--context", "32768")
    st = _startup("qwen3-8b", list(what_if("H100 80GB").devices))
    for r in data["results"]:
        assert {"kv_capacity_mib", "kv_capacity_tokens", "max_concurrency"} <= set(r)
        if (r["quant"], r["kv_cache"]) == ("BF16", "auto"):
            assert r["kv_capacity_mib"] == pytest.approx(st.kv_available / MIB, abs=0.01)
            assert r["kv_capacity_tokens"] == st.kv_capacity_tokens
            # "Maximum concurrency for 32,768 tokens per request": blocks over the blocks one request needs
            assert r["max_concurrency"] == pytest.approx(st.num_blocks / (32768 / 16), abs=0.01)
    lcpp = _json(capsys, "qwen3-8b", "--what-if", "H100 80GB")
    assert all("kv_capacity_mib" not in r and "kv_capacity_tokens" not in r for r in lcpp["results"])


def test_defaults_come_from_the_gpu_class_when_the_user_passes_none():
    """70 GiB and more but not A100: 1024 sequences, 8192 batched tokens; others 256 and 2048."""
    h100, a100 = _startup("qwen3-8b", [H100]), _startup("qwen3-8b", [A100])
    small = _startup("qwen3-8b", [Device("RTX 4090", 24000.0, 24564.0)])
    assert (h100.settings.max_num_seqs, h100.settings.max_num_batched_tokens) == (1024, 8192)
    assert (a100.settings.max_num_seqs, a100.settings.max_num_batched_tokens) == (256, 2048)
    assert (small.settings.max_num_seqs, small.settings.max_num_batched_tokens) == (256, 2048)
    assert h100.settings.gpu_memory_utilization == 0.92  # today's default
    # an explicit value is the user's, on any GPU
    given = _startup("qwen3-8b", [H100], max_num_seqs=256, max_num_batched_tokens=2048)
    assert given.activation_peak == pytest.approx(a100.activation_peak)
    # the sampler over max_num_seqs rows of the 151,936-token vocabulary is the profiling peak here
    spec = get_model("qwen3-8b")
    assert h100.activation_peak == pytest.approx(8192 * spec.hidden_size * 2 + 1024 * spec.vocab_size * 16.3)


def test_flags_move_the_kv_cache_as_in_vllm():
    base = _startup("qwen3-8b", [H100])
    fewer = _startup("qwen3-8b", [H100], max_num_seqs=128)
    eager = _startup("qwen3-8b", [H100], enforce_eager=True)
    fp8 = _startup("qwen3-8b", [H100], kv="fp8")
    util = _startup("qwen3-8b", [H100], gpu_memory_utilization=0.5)
    tp2 = _startup("qwen3-8b", [H100, H100])
    assert fewer.kv_available > base.kv_available  # a smaller sampler peak
    assert eager.kv_available - base.kv_available == pytest.approx(base.cuda_graphs) and base.cuda_graphs > 0
    assert fp8.kv_available == base.kv_available and fp8.kv_capacity_tokens == pytest.approx(
        2 * base.kv_capacity_tokens, abs=16)
    assert base.kv_available - util.kv_available == pytest.approx(81079 * MIB * 0.42)
    # two ranks: half the weights and half the KV heads each, the sampler whole on both, NCCL buffers
    assert tp2.weights == pytest.approx(base.weights / 2, rel=0.01)
    assert tp2.layer_page_bytes == base.layer_page_bytes / 2 and tp2.non_torch > base.non_torch
    assert tp2.kv_capacity_tokens > 2 * base.kv_capacity_tokens
    # an older release: the PyTorch top-k/top-p sampler (0.11-0.18) and graphs outside the budget
    old = _startup("qwen3-8b", [H100], overrides={"release_minor": 11})
    assert old.settings.gpu_memory_utilization == 0.9 and old.cuda_graphs == 0
    assert old.activation_peak > 2 * base.activation_peak


def test_the_cli_flags_reach_the_engine(capsys):
    argv = ("llama-3.1-8b", "-b", "vllm", "-q", "BF16", "-k", "auto", "--total-vram", "81079", "--context", "8192")
    plain = _json(capsys, *argv)["results"][0]
    eager = _json(capsys, *argv, "--enforce-eager", "--max-num-seqs", "64", "--max-num-batched-tokens", "4096",
                  "--launch", "vllm")
    row = eager["results"][0]
    assert row["kv_capacity_mib"] > plain["kv_capacity_mib"] + 512 and row["compute_mib"] < plain["compute_mib"]
    # the command passes what the plan was made with, so vLLM profiles the same peak
    assert "--max-num-seqs 64 --max-num-batched-tokens 4096 --enforce-eager" in eager["launch"]


@pytest.mark.parametrize(("model", "devices", "context"), [
    ("llama-3.1-8b", (Device("4090", 24000.0, 24564.0),), 131072),
    ("qwen3-30b-a3b", (Device("A", 60000.0, 81079.0), Device("B", 60000.0, 81079.0)), None),
    ("gemma-3-27b-it", (H100,), 131072),
    ("gpt-oss-20b", (Device("4090", 24000.0, 24564.0),), None),
    ("deepseek-v2-lite", (A100,), 200000),
])
def test_a_plan_never_asks_for_a_max_model_len_vllm_refuses(model, devices, context):
    req = EstimateRequest(_m(model), "vllm", devices=devices, context=context)
    est = run_estimate(req)
    for r in est.results:
        if not r.max_context:
            continue
        plan = plan_row(req, est, r.quant, r.kv_cache)
        assert plan is not None and plan.fits
        st = VLLM.startup(req.model, r.quant, r.kv_cache, devices, req.options)
        assert v.fits(req.model.spec, st, plan.context), (r.quant, r.kv_cache, plan.context)
        if plan.context <= req.model.spec.max_context:
            assert plan.context <= v.max_model_len(req.model.spec, st)
        # past the trained length only when asked, and then the command tells vLLM so
        assert plan.context <= max(req.model.spec.max_context, context or 0)
        if plan.context > req.model.spec.max_context:
            line = command_lines(VLLM.command(req.model, plan, req.options))[0][0]
            assert line.startswith("VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 ")
        if context and context > plan.context:
            assert any("refuses --max-model-len" in n for n in plan.notes)


def test_the_row_maximum_is_vllms_own_max_model_len():
    """The solver's longest context on the engine's footprint is what `--max-model-len -1` finds."""
    m = _m("llama-3.1-8b")
    devices = (Device("4090", 24000.0, 24564.0),)
    est = run_estimate(EstimateRequest(m, "vllm", ("BF16",), ("auto",), devices=devices))
    st = VLLM.startup(m, "BF16", "auto", devices, EngineOptions())
    want = max(n for n in range(0, 131073, 16) if v.fits(m.spec, st, n))
    assert est.results[0].max_context == want


def test_a_plan_that_cannot_start_has_no_launch_command():
    m = _m("llama-3.1-8b")
    devices = [Device("4060", 16000.0, 16380.0)]
    plan = VLLM.plan(m, "BF16", "auto", 8192, devices, VLLM.budget(devices, EngineOptions()), EngineOptions())
    assert not plan.fits
    with pytest.raises(Exception, match="refuse to start"):
        VLLM.launch_command("meta-llama/Llama-3.1-8B", plan, EngineOptions())


def test_sliding_window_layers_hold_window_plus_batched_tokens():
    """gemma-3: 5 of 6 layers keep `window - 1 + max_num_batched_tokens` tokens (plus one page)."""
    m = _m("gemma-3-27b-it")
    fp = VLLM.footprint(m, "BF16", "auto", [H100], EngineOptions())
    kv = np.asarray(fp(np.array([65536, 131072])).devices[0].kv)
    spec = m.spec
    n_full, n_swa, _ = spec.layer_counts()
    page = 16 * 2 * spec.n_kv_heads * spec.head_dim * 2
    swa_pages = -(-(spec.sliding_window - 1 + 8192) // 16) + 1
    assert kv[1] - kv[0] == pytest.approx(n_full * (65536 // 16) * page)
    assert kv[0] == pytest.approx((n_full * 65536 // 16 + n_swa * swa_pages) * page)


def test_the_flashinfer_sampler_is_said_and_its_fallback_can_be_planned(capsys):
    """The wild record -019 (gpt-oss-120b, vLLM 0.10, one H100) logged -2.14 GiB of KV: the PyTorch sampler's
    peak, where the FlashInfer sampler lander-tui plans with leaves room. The rows say so and how to plan
    for the fallback; planning for it moves the answer the way the record did."""
    from lander_tui.cli import main

    argv = ["estimate", "gpt-oss-120b", "-b", "vllm", "--what-if", "H100 80GB", "-q", "MXFP4", "-k", "auto",
            "--set", "release_minor=10", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    note = next(n for n in data["notes"] if "flashinfer" in n)
    more = float(note.split("takes ")[1].split(" MiB")[0].replace(",", ""))
    assert more > 1024 and "--set sampler_flashinfer_bytes=" in note
    flag = note.split("--set ")[1].split(" ")[0]
    assert main([*argv, "--set", flag]) == 1  # the PyTorch path: nothing fits, as vLLM 0.10 logged
    fallback = json.loads(capsys.readouterr().out)
    assert not any("flashinfer" in n for n in fallback["notes"])
    assert data["results"][0]["max_context"] > 0 and fallback["results"][0]["max_context"] == 0
