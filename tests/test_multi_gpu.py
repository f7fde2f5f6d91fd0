"""Multi-GPU splits, partial offload and launch commands, checked against the engines' rules."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex

import numpy as np
import pytest
from commands import command_lines

from lander_tui.cli import main
from lander_tui.core.catalog import get_model
from lander_tui.core.engines import MIB, EngineOptions, get_engine
from lander_tui.core.engines.llamacpp import layer_devices
from lander_tui.core.export import export
from lander_tui.core.model import Device, ResolvedModel
from lander_tui.core.weights import gguf_weights

OPTS = EngineOptions()
LLAMA = get_engine("llama.cpp")


def _m(name):
    return ResolvedModel(get_model(name), "catalog")


def llamacpp_plan(m, quant, kv, ctx, devices, opts, **kw):
    return LLAMA.plan_layout(m, quant, kv, ctx, devices, opts, **kw)


def plan_for(m, engine, quant, kv, devices, opts, context):
    e = get_engine(engine)
    return e.plan(m, quant, kv, context, devices, e.budget(devices, opts), opts)


def vllm_tp_plan(m, quant, kv, ctx, devices, opts):
    return plan_for(m, "vllm", quant, kv, devices, opts, ctx)


def launch_command(engine, model, plan):
    return get_engine(engine).command(_m(model) if isinstance(model, str) else model, plan, OPTS)


def test_single_gpu_plan_equals_engine_total():
    m = _m("llama-3.1-8b")
    plan = llamacpp_plan(m, "Q4_K_M", "f16", 40192, [Device("H100", 10316)], OPTS)
    bd = get_engine("llama.cpp").memory(m, "Q4_K_M", "f16", np.array([40192]), OPTS)
    assert plan.devices[0].total_mib == pytest.approx(float(bd.total[0]) / MIB)
    assert plan.fits and plan.fully_offloaded and plan.cpu_gpu_split() == "100% GPU"


def test_layer_split_follows_free_memory_and_output_goes_last():
    units = layer_devices(32, 33, (24.0, 12.0))
    assert units.count(0) == 22 and units.count(1) == 11 and units[-1] == 1
    assert layer_devices(32, 10, (1.0,))[:23] == [None] * 23  # offload from the back


def test_split_per_gpu_weights_and_kv_add_up_to_the_layers():
    m = _m("llama-3.1-8b")
    plan = llamacpp_plan(m, "Q4_K_M", "f16", 8192, [Device("A", 24000), Device("B", 12000)], OPTS)
    a, b = plan.devices
    w = gguf_weights(m.spec, "Q4_K_M")
    per_layer = w.layer_bytes()
    lo, hi = a.layers
    assert a.memory.weights * MIB == pytest.approx(sum(per_layer[i] for i in range(lo, hi + 1)))
    total_gpu = w.total_bytes - w.bytes_of("token_embd.weight")
    assert (a.memory.weights + b.memory.weights) * MIB == pytest.approx(total_gpu)
    per_layer_kv = 8192 * 8 * 128 * 2 * 2
    assert a.memory.kv * MIB == (hi - lo + 1) * per_layer_kv
    assert b.has_output and b.memory.compute > a.memory.compute - 1  # logits live on the output GPU


def test_partial_offload_keeps_most_layers_that_fit():
    m = _m("llama-3.3-70b")
    plan = plan_for(m, "llama.cpp", "Q4_K_M", "f16", [Device("4090", 23000)], OPTS, context=8192)
    assert plan.fits and not plan.fully_offloaded
    more = llamacpp_plan(m, "Q4_K_M", "f16", 8192, [Device("4090", 23000)], OPTS, ngl=plan.gpu_layers + 1)
    assert not more.fits
    assert plan.host_mib > plan.devices[0].memory.weights  # most of a 70B stays in RAM
    cpu, gpu = plan.cpu_gpu_split().split()[0].split("/")
    assert int(cpu.rstrip("%")) + int(gpu.rstrip("%")) == 100


def test_moe_experts_go_to_cpu_first():
    m = _m("qwen3-30b-a3b")
    plan = plan_for(m, "llama.cpp", "Q4_K_M", "f16", [Device("3060", 11500)], OPTS, context=16384)
    assert plan.fits and plan.gpu_layers == m.spec.n_layers + 1 and plan.cpu_moe > 0
    fewer = llamacpp_plan(m, "Q4_K_M", "f16", 16384, [Device("3060", 11500)], OPTS, cpu_moe=plan.cpu_moe - 1)
    assert not fewer.fits


def test_vllm_tp_replicates_kv_heads_past_their_count():
    m = _m("llama-3.1-8b")  # 8 KV heads
    devs = [Device(f"g{i}", 80000, 81920) for i in range(16)]
    with pytest.raises(Exception, match="divide"):
        vllm_tp_plan(m, "BF16", "auto", 8192, devs[:3], OPTS)
    tp8 = vllm_tp_plan(m, "BF16", "auto", 8192, devs[:8], OPTS)
    tp2 = vllm_tp_plan(m, "BF16", "auto", 8192, devs[:2], OPTS)
    assert tp8.devices[0].memory.kv == pytest.approx(tp2.devices[0].memory.kv / 4)
    # matrices split across ranks; the norms (1-D) are replicated on every rank
    assert tp8.devices[0].memory.weights == pytest.approx(tp2.devices[0].memory.weights / 4, rel=1e-3)
    assert tp8.devices[0].memory.weights > tp2.devices[0].memory.weights / 4
    mla = vllm_tp_plan(_m("deepseek-v2-lite"), "BF16", "auto", 8192, devs[:2], OPTS)
    one = get_engine("vllm").memory(_m("deepseek-v2-lite"), "BF16", "auto", np.array([8192]), OPTS)
    assert mla.devices[0].memory.kv * MIB == pytest.approx(float(one.kv[0]))  # latent on every rank


def _parse(cmd: str, flags: dict[str, type]) -> argparse.Namespace:
    argv = shlex.split(command_lines(cmd)[0][0])
    p = argparse.ArgumentParser(add_help=False)
    for f, t in flags.items():
        p.add_argument(f, type=t)
    ns, rest = p.parse_known_args(argv[2:] if argv[0] == "vllm" else argv[1:])
    ns.rest = rest
    return ns


def test_llama_server_command_parses_back(capsys):
    assert main(["estimate", "llama-3.1-8b", "--free-vram", "23000,11500", "-q", "Q4_K_M", "-k", "q8_0",
                 "--context", "65536", "--launch", "llama.cpp", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ns = _parse(data["launch"], {"-m": str, "-c": int, "-ngl": int, "-ctk": str, "-ctv": str, "-fa": str,
                                 "-np": int, "--tensor-split": str})
    assert ns.np == 1
    assert ns.c == data["plan"]["context"] == 65536
    assert ns.ctk == ns.ctv == "q8_0" and ns.fa == "on" and ns.ngl == 999
    ratios = [float(x) for x in ns.tensor_split.split(",")]
    assert ratios == pytest.approx([23000 / 34500, 11500 / 34500], abs=0.001)
    assert all(d["fits"] for d in data["plan"]["devices"])


def test_vllm_command_parses_back(capsys):
    main(["estimate", "llama-3.3-70b", "-b", "vllm", "--total-vram", "81920,81920", "-q", "AWQ", "-k", "fp8",
          "--launch", "vllm", "--json"])
    data = json.loads(capsys.readouterr().out)
    ns = _parse(data["launch"], {"--max-model-len": int, "--gpu-memory-utilization": float,
                                 "--kv-cache-dtype": str, "--tensor-parallel-size": int, "--quantization": str})
    # AWQ needs a checkpoint made with AWQ: a placeholder naming the model, said so, and no on-load quantization
    assert ns.rest[0] == "<AWQ checkpoint of meta-llama/Llama-3.3-70B-Instruct>"
    assert data["launch"].startswith("# AWQ needs a checkpoint quantized with AWQ")
    assert ns.max_model_len == data["plan"]["context"] <= 131072
    assert ns.tensor_parallel_size == 2 and ns.kv_cache_dtype == "fp8" and ns.quantization is None
    assert ns.gpu_memory_utilization == 0.92  # vLLM's own default since 0.22 (vllm/config/cache.py)


def test_ollama_and_transformers_outputs():
    m = _m("llama-3.1-8b")
    plan = plan_for(m, "ollama", "Q4_K_M", "q8_0", [Device("4090", 23000)], OPTS, context=32768)
    cmd = launch_command("ollama", m, plan)
    env = dict(kv.split("=") for kv in command_lines(cmd)[0][0].split()[:3])
    assert env == {"OLLAMA_CONTEXT_LENGTH": "32768", "OLLAMA_KV_CACHE_TYPE": "q8_0", "OLLAMA_FLASH_ATTENTION": "1"}
    assert "PARAMETER num_ctx 32768" in cmd
    snippet = launch_command("transformers", m, plan)
    compile(snippet, "<snippet>", "exec")  # valid Python
    assert "32768" in snippet


def test_exports_round_trip(capsys):
    main(["estimate", "qwen3-8b", "--free-vram", "16000", "-q", "Q4_K_M,Q8_0", "-k", "f16", "--json"])
    data = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(io.StringIO(export(data, "csv"))))
    assert [r["quant"] for r in rows] == ["Q4_K_M", "Q8_0"]
    assert int(rows[0]["max_context"]) == data["results"][0]["max_context"]
    md = export(data, "md")
    assert md.count("\n| Q") == 2 and "Recommended" in md
    assert json.loads(export(data, "json")) == data


def test_estimate_rows_cover_all_gpus(capsys):
    main(["estimate", "llama-3.1-8b", "-q", "Q8_0", "-k", "f16", "--free-vram", "20000", "--json"])
    one = json.loads(capsys.readouterr().out)["results"][0]
    main(["estimate", "llama-3.1-8b", "-q", "Q8_0", "-k", "f16", "--free-vram", "20000,20000", "--json"])
    data = json.loads(capsys.readouterr().out)
    two = data["results"][0]
    assert data["free_vram_mib"] == 40000
    assert two["max_context"] > 2 * one["max_context"]  # the weights are paid once
    main(["estimate", "llama-3.1-8b", "-q", "Q8_0", "-k", "f16", "--free-vram", "20000,20000", "--json",
          "--context", "65536"])
    data = json.loads(capsys.readouterr().out)
    two = data["results"][0]
    devs = data["plan"]["devices"]
    assert sum(d["total_mib"] for d in devs) == pytest.approx(
        sum(two[k] for k in ("weights_mib", "kv_cache_mib", "compute_mib", "overhead_mib")), abs=0.1)
    assert all(d["total_mib"] <= 20000 for d in devs)


def test_markdown_export_carries_the_plan(capsys):
    main(["estimate", "llama-3.1-8b", "--free-vram", "23000,5000", "-q", "Q8_0", "-k", "f16", "--launch", "llama.cpp",
          "--json"])
    data = json.loads(capsys.readouterr().out)
    md = export(data, "md")
    plan = data["plan"]
    assert f"## Plan: Q8_0 with KV f16 at {plan['context']} tokens" in md
    rows = [line for line in md.splitlines() if line.startswith("| GPU")]
    assert len(rows) == 2 == len(plan["devices"])
    head = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| device")).strip("|").split("|")]
    for line, d in zip(rows, plan["devices"], strict=True):
        cells = dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True))
        assert cells["device"] == d["name"] and float(cells["total_mib"]) == d["total_mib"]
        assert float(cells["headroom_mib"]) == d["headroom_mib"]
    assert "+output" in rows[1] and "```sh\n" in md and "\nllama-server -m " in md
