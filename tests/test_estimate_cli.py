"""`lander-tui estimate`: the plain format users know, the JSON contract, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lander_tui.cli import main


def test_plain_output_format(capsys):
    assert main(["estimate", "llama-3.1-8b", "--quant", "Q4_K_M", "--free-vram", "10316"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("=== llama-3.1-8b (quant=Q4_K_M) (params=8.03B)")
    assert "free_vram_mib: 10316.00" in out and "_mb:" not in out  # MiB, named as the JSON names them (D17)
    assert "[Q4_K_M, kv f16]" in out and "[Q4_K_M, kv q8_0]" in out
    # the measured maximum for exactly this case (tests/data/ground-truth) is 40448 with llama-completion,
    # which reserves a ubatch (512 rows) of f32 logits; the CLI plans for llama-server, which reserves one
    # row per slot (engines/llamacpp.py, FRONT_ENDS), so it may go further by at most what those rows cost
    # in f16 KV cells (128 KiB per token for Llama-3.1-8B)
    max_ctx = int(out.split("max_context_length: ")[1].split()[0])
    logits_cells = 128256 * 511 * 4 // (128 * 1024)
    assert 0.98 * 40448 <= max_ctx <= 40448 + logits_cells and max_ctx % 256 == 0
    assert "fits_in_vram: True" in out


def test_json_contract(capsys):
    assert main(["estimate", "qwen3-8b", "-q", "Q4_K_M,Q8_0", "-k", "f16", "-k", "q8_0",
                 "--free-vram", "16000", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"model", "params", "backend", "free_vram_mib", "results", "recommendation"} <= set(data)
    assert len(data["results"]) == 4
    r = data["results"][0]
    for key in ("quant", "kv_cache", "max_context", "model_max_context", "weights_mib", "kv_cache_mib",
                "compute_mib", "overhead_mib", "total_mib", "fits"):
        assert key in r
    parts = r["weights_mib"] + r["kv_cache_mib"] + r["compute_mib"] + r["overhead_mib"] + r["extras_mib"]
    assert parts == pytest.approx(r["total_mib"], abs=0.05)
    assert r["total_mib"] <= 16000 and r["fits"]
    q8kv = next(x for x in data["results"] if x["quant"] == "Q4_K_M" and x["kv_cache"] == "q8_0")
    assert q8kv["max_context"] > r["max_context"]  # a smaller cache fits more tokens
    assert data["recommendation"]["quant"] in ("Q4_K_M", "Q8_0")


def test_context_flag_reports_at_that_context(capsys):
    main(["estimate", "llama-3.2-1b", "-q", "Q8_0", "-k", "f16", "--free-vram", "8000", "--context", "8192", "--json"])
    r = json.loads(capsys.readouterr().out)["results"][0]
    assert r["context"] == 8192 and r["kv_cache_mib"] == pytest.approx(16 * 8192 * 2 * 512 * 2 / 2**20)


def test_not_enough_memory_says_so(capsys):
    main(["estimate", "llama-3.1-70b", "-q", "Q4_K_M", "-k", "f16", "--free-vram", "8000", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["results"][0]["max_context"] == 0 and not data["results"][0]["fits"]
    assert data["recommendation"]["quant"] is None


@pytest.mark.parametrize("args, msg", [
    (["estimate", "llama-3.1-8b", "--quant", "Q9_X"], "unknown quant"),
    (["estimate", "llama-3.1-8b", "--free-vram", "-1"], "positive"),
    (["estimate", "no-such-model-xyz"], "unknown model"),
    (["estimate", "llama-3.1-8b", "-b", "exllama"], "unknown backend"),
    (["estimate", "missing.gguf"], "no such GGUF"),
    (["estimate", "llama-3.1-8b", "--set", "cuda_context_mib"], "NAME=NUMBER"),
])
def test_bad_input_is_one_line_exit_2(args, msg):
    proc = subprocess.run([sys.executable, "-m", "lander_tui", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert msg in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_config_without_needed_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    proc = subprocess.run([sys.executable, "-m", "lander_tui", "estimate", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "num_hidden_layers" in proc.stderr and "Traceback" not in proc.stderr


def test_vllm_budget_is_a_fraction_of_total(capsys):
    main(["estimate", "llama-3.1-8b", "-b", "vllm", "-q", "BF16", "-k", "auto", "--total-vram", "81079",
          "--context", "32768", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["budget_mib"] == pytest.approx(81079 * 0.92)  # vLLM's own default since 0.22
    r = data["results"][0]
    assert r["max_context"] % 16 == 0 and r["max_concurrency"] > 1


def test_vllm_with_less_free_than_its_utilization_plans_at_a_utilization_that_starts():
    from lander_tui.core.estimate import EstimateRequest, run_estimate
    from lander_tui.core.model import Device
    from lander_tui.core.model_source import resolve_model

    est = run_estimate(EstimateRequest(resolve_model("llama-3.1-8b"), "vllm", ("BF16",), ("auto",),
                                       devices=(Device("H100", 30000, 81079),)))
    util = float(est.notes[0].rsplit(" ", 1)[1])
    assert util * 81079 <= 30000 < (util + 0.001) * 81079  # the largest 3-decimal value that is free
    assert est.budget_mib == pytest.approx(util * 81079)
    row = est.results[0]
    assert row.max_context > 0 and row.total_mib <= est.budget_mib


def test_without_memory_flags_it_says_what_it_planned_for(capsys):
    from lander_tui.core.gpu import open_backend

    snap = open_backend().poll()
    main(["estimate", "llama-3.2-1b", "-q", "Q8_0", "-k", "f16", "--json"])
    data = json.loads(capsys.readouterr().out)
    if snap.ok and snap.gpus:  # on a GPU box: the freest GPU now
        best = max(g.free_mib or 0 for g in snap.gpus)
        assert data["memory_source"].startswith("GPU") and abs(data["free_vram_mib"] - best) < 4096
    else:  # no NVIDIA GPU (CI): the dashboard's no-GPU card, and the output says so
        from lander_tui.core.gpu import what_if
        from lander_tui.core.planning_memory import NO_GPU_WHAT_IF

        card = what_if(NO_GPU_WHAT_IF)
        assert data["memory_source"].startswith("no GPU seen") and card.gpus[0].name in data["memory_source"]
        assert data["free_vram_mib"] == card.usable_mib
    main(["estimate", "llama-3.2-1b", "-q", "Q8_0", "-k", "f16", "--free-vram", "9000"])
    assert "memory: given" in capsys.readouterr().out
