"""The CLI half of the new user's report of December 2026 (issue 11): each defect's
reproduction, now answered as a user needs it. Each test failed on the code the report tested."""

from __future__ import annotations

import json

import pytest
from commands import command_lines, parse

from lander_tui.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def js(capsys, *argv: str) -> tuple[int, dict]:
    rc, out, _err = run(capsys, *argv, "--json")
    return rc, json.loads(out)


def test_d1_vllm_free_vram_command_and_budget_are_the_same_number(capsys):
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--backend", "vllm", "--free-vram", "24000", "-q", "BF16",
                  "-k", "auto", "--launch", "vllm")
    util = float(parse(data["launch"], 3).flags["--gpu-memory-utilization"])
    assert rc == 0 and data["budget_mib"] == pytest.approx(util * 24000)
    assert any("no total was given" in n for n in data["notes"])  # and it says how it was chosen
    # the same card named as a whole GPU gives the same plan
    _, whole = js(capsys, "estimate", "llama-3.1-8b", "--backend", "vllm", "--total-vram", "24000", "-q", "BF16",
                  "-k", "auto")
    assert whole["results"][0]["max_context"] == data["results"][0]["max_context"]


def test_d3_nothing_fits_prints_no_command_says_why_and_fails(capsys):
    rc, out, err = run(capsys, "estimate", "llama-3.1-405b", "--what-if", "2x RTX 4090", "--backend", "vllm",
                       "--launch", "vllm")
    assert rc != 0 and "vllm serve" not in out and "nothing fits" in err
    rc, out, err = run(capsys, "estimate", "llama-3.1-8b", "--free-vram", "1")
    assert rc == 1 and "- kv -" not in out and "recommendation: none" in out and "nothing fits" in err
    # llama.cpp can still run it from the CPU: that plan says where its layers are, not "TP rank"
    rc, out, err = run(capsys, "estimate", "llama-3.1-8b", "--free-vram", "1", "--launch", "llama.cpp")
    assert "-ngl 0" in out and "TP rank" not in out and "no layers" in out


def test_d4_launch_plans_with_its_own_engine(capsys):
    rc, _out, err = run(capsys, "estimate", "llama-3.1-8b", "--what-if", "RTX 4090", "--backend", "llama.cpp",
                        "--launch", "vllm")
    assert rc == 2 and "--launch vllm" in err
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--what-if", "RTX 4090", "--launch", "vllm")
    assert rc == 0 and data["backend"] == "vllm" and {r["kv_cache"] for r in data["results"]} <= {"auto", "fp8"}
    assert int(parse(data["launch"], 3).flags["--max-model-len"]) == data["plan"]["context"]
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--what-if", "RTX 4090", "--launch", "ollama")
    assert data["backend"] == "ollama" and any("num_ctx" in n for n in data["notes"])


def test_d5_commands_that_cannot_work_as_printed(capsys):
    rc, data = js(capsys, "estimate", "llama-3.1-70b", "--total-vram", "81920,81920", "--backend", "vllm", "-q", "AWQ",
                  "--launch", "vllm")
    assert "meta-llama/Llama-3.1-70B " not in data["launch"] and "<AWQ checkpoint of" in data["launch"]
    assert data["launch"].startswith("# AWQ needs a checkpoint quantized with AWQ")
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--backend", "transformers", "--free-vram", "10316", "-q",
                  "AWQ", "--launch", "transformers")
    assert "from_pretrained('<AWQ checkpoint of meta-llama/Llama-3.1-8B>'" in data["launch"]
    assert "torch.bfloat16" not in command_lines(data["launch"])[0][2]  # the AWQ checkpoint brings its config
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--backend", "ollama", "--free-vram", "20000", "--launch",
                  "ollama")
    assert "hf.co/" not in data["launch"]  # a safetensors repository cannot be pulled as GGUF


def test_d9_transformers_on_several_gpus_like_the_dashboard(capsys):
    from lander_tui.core.estimate import run_estimate
    from lander_tui.core.gpu import GpuInfo, Snapshot
    from lander_tui.core.model_source import resolve_model
    from lander_tui.ui.form import FormValues, build_request

    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--backend", "transformers", "--free-vram", "9883,11689",
                  "-q", "BF16")
    assert rc == 0 and data["free_vram_mib"] == 9883 + 11689 and any("summed" in n for n in data["notes"])
    gpus = tuple(GpuInfo(i, "H100", total_mib=81559.0, used_mib=81559.0 - f, free_mib=f, reserved_mib=0.0)
                 for i, f in enumerate((9883.0, 11689.0)))
    draft = build_request(FormValues(engine="transformers", quants="BF16", gpus=(0, 1), margin="0"),
                          resolve_model("llama-3.1-8b"), Snapshot(gpus, taken_at=1.0))
    assert run_estimate(draft.request).results[0].max_context == data["results"][0]["max_context"]


def test_d13_default_memory_and_margin_like_the_dashboard(capsys):
    from lander_tui.core.gpu import DEMO_SCENARIO, FakeBackend
    from lander_tui.ui.form import FormValues, planning_memory

    rc, data = js(capsys, "--demo", "estimate", "llama-3.2-1b", "-q", "Q8_0", "-k", "f16")
    snap = FakeBackend(DEMO_SCENARIO).poll()
    dash = planning_memory(FormValues(), snap)  # the dashboard's "free now" on the freest GPU
    assert rc == 0 and data["free_vram_mib"] == pytest.approx(dash.free_mib)
    assert "512 MiB margin" in data["memory_source"]


@pytest.mark.parametrize(("argv", "message"), [
    (("--set", "cuda_context_mib=-9999"), "must be 0 or more"),
    (("--free-vram", "10316", "--context", "99999999999"), "at most 16,777,216"),
    (("-b", "vllm", "--free-vram", "24000", "--max-num-batched-tokens", "0"), "at least 1"),
    (("--what-if", ""), "name a GPU"),
    (("--json", "--format", "csv"), "not allowed with"),
    (("--what-if", "2x RTX 4090", "--tensor-split", "1,x"), "shares like 3,1"),
])
def test_d15_bad_input_is_refused_in_one_line(capsys, argv, message):
    rc, out, err = run(capsys, "estimate", "llama-3.1-8b", *argv) if argv[0] != "--json" else (
        _argparse_exit(capsys, "estimate", "llama-3.1-8b", *argv))
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _argparse_exit(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_d15_accepted_as_the_dashboard_does(capsys):
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--free-vram", "10316", "--context", "32k", "-q", "Q4_K_M",
                  "-k", "f16", "--flash-attn", "auto")
    assert rc == 0 and data["results"][0]["context"] == 32768
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--what-if", "2x RTX 4090", "--tensor-split", "1,0",
                  "-q", "Q4_K_M", "-k", "f16", "--launch", "llama.cpp")
    assert rc == 0 and parse(data["launch"], 1).flags["--tensor-split"] == "1,0"  # llama.cpp takes a 0 share
    rc, out, _ = run(capsys, "estimate", "--list-models", "--json")
    assert rc == 0 and {"name", "params", "max_context"} <= set(json.loads(out)[0])


def test_d15_flags_the_engine_ignores_are_named(capsys):
    rc, _out, err = run(capsys, "estimate", "llama-3.1-8b", "--what-if", "RTX 4090", "--gpu-memory-utilization",
                        "0.5", "--ubatch", "99999999", "-q", "Q4_K_M", "-k", "f16")
    assert rc == 0 and "--gpu-memory-utilization does not change llama.cpp's numbers" in err
    assert "--ubatch 99999999 is more than the batch" in err


def test_d15_missing_files_and_the_demo(capsys):
    rc, _out, err = run(capsys, "estimate", "./fx/nonexistent.json")
    assert rc == 2 and "no such file" in err
    rc, data = js(capsys, "--demo", "estimate", "llama-3.2-1b", "-q", "Q8_0", "-k", "f16")
    assert rc == 0 and data["memory_source"].startswith("GPU ")  # the demo's GPUs, not "no GPU seen"


def test_d17_units_plurals_and_sizes(capsys):
    rc, out, _ = run(capsys, "estimate", "llama-3.1-8b", "--free-vram", "24000", "--context", "1", "-q", "Q8_0",
                     "-k", "f16")
    assert "reaches 1 token" in out and "1 tokens" not in out
    assert "_mb:" not in out and "total_memory_mib:" in out
    from lander_tui.core.report import params_text
    from lander_tui.ui.text import params_text as ui_params

    assert params_text(2_000_000) == "2.0M" and params_text(8_030_261_248) == "8.03B"
    assert ui_params(999_900_000) == "1.0B"


def test_trained_maximum_is_marked_and_not_launched_past_unless_asked(capsys):
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "--what-if", "H100 80GB", "-q", "Q4_K_M", "-k", "q8_0",
                  "--launch", "llama.cpp")
    row = data["results"][0]
    assert row["max_context"] > row["model_max_context"] and row["past_model_max_context"] is True
    assert int(parse(data["launch"], 1).flags["-c"]) == row["model_max_context"]
    rc, out, _ = run(capsys, "estimate", "llama-3.1-8b", "--what-if", "H100 80GB", "-q", "Q4_K_M", "-k", "q8_0")
    assert "past the trained 131,072" in out
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "-b", "vllm", "--what-if", "H100 80GB", "--context", "256k",
                  "-q", "BF16", "-k", "auto", "--launch", "vllm")
    assert parse(data["launch"], 3).env == {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}  # asked for: said to vLLM


def test_vllm_rows_say_the_budget_is_taken_whatever_the_context(capsys):
    rc, data = js(capsys, "estimate", "llama-3.1-8b", "-b", "vllm", "--what-if", "RTX 4090", "--context", "8192")
    assert any("nvidia-smi shows the budget" in n for n in data["notes"])


def test_d17_contexts_typed_in_decimal_read_in_decimal():
    from lander_tui.ui.text import short_tokens

    # whole 1,024-token blocks read the way engines take them; any other count is not shrunk by 2.4 %
    assert short_tokens(131_072) == "128k" and short_tokens(32_768) == "32k" and short_tokens(1_536) == "1.5k"
    assert short_tokens(200_000) == "200k" and short_tokens(92_928) == "93k" and short_tokens(1_000_000) == "1M"
    assert short_tokens(1_048_576) == "1M" and short_tokens(900) == "900"


def test_d18_the_what_if_list_marks_cards_nvml_cannot_watch(capsys):
    rc, out, _ = run(capsys, "gpus", "--what-if", "list")
    mi300 = next(line for line in out.splitlines() if line.startswith("MI300X"))
    h100 = next(line for line in out.splitlines() if line.startswith("H100 80GB"))
    assert rc == 0 and "AMD" in mi300 and "no NVML" in mi300 and "NVML" not in h100


def test_an_offload_plan_is_an_answer_and_says_it_spills(capsys):
    """Confusing point 8: 'recommendation: none' and then a plan that 'fits: True' (exit 1 without
    --launch, 0 with it). A plan that loads with part of the model on the CPU is an answer, and says so."""
    argv = ("estimate", "mixtral-8x7b-v0.1", "--what-if", "RTX 4090", "-q", "Q4_K_M", "-k", "f16")
    rc, out, err = run(capsys, *argv)
    plan = next(line for line in out.splitlines() if line.startswith("plan:"))
    assert rc == 0 and err == "", err
    assert "CPU/GPU" in plan and "loads: yes, part on the CPU" in plan and "fits: True" not in plan
    assert "nothing fits on the GPU alone; this plan loads with" in out
    rc_launch, _, _ = run(capsys, *argv, "--launch", "llama.cpp")
    assert rc_launch == rc


def test_a_gpu_left_out_of_a_split_holds_no_layers(capsys):
    rc, out, _ = run(capsys, "estimate", "llama-3.1-8b", "--what-if", "2x RTX 4090", "--tensor-split", "1,0",
                     "-q", "Q4_K_M", "-k", "f16")
    gpu_lines = [line for line in out.splitlines() if line.startswith("  RTX 4090 24GB:")]
    assert rc == 0 and len(gpu_lines) == 2, out
    idle = [line for line in gpu_lines if "= 0 of" in line]
    assert len(idle) == 1 and ": no layers:" in idle[0] and "all layers" not in out, out


def test_gpus_json_names_mib_as_estimate_does(capsys):
    rc, out, _ = run(capsys, "gpus", "--demo", "--json")
    data = json.loads(out)
    assert rc == 0 and "free_vram_mib" in data[0] and not any(k.endswith("_mb") for k in data[0])
