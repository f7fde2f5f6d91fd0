"""Every command lander-tui can print, for every engine, on one GPU, two GPUs and with CPU offload, runs as
printed: each flag is one the engine really has (tests/data/engine-flags, from the engines' sources), each
value one it accepts, and the numbers in it are the plan's numbers."""

from __future__ import annotations

import ast
import json

import pytest
from commands import check, command_lines, flag_set, parse

from lander_tui.core import planning_memory as pm
from lander_tui.core.engines import EngineOptions, get_engine
from lander_tui.core.estimate import EstimateRequest, plan_row, run_estimate
from lander_tui.core.model_source import resolve_model

MEMORY = {"one GPU": "RTX 4090", "two GPUs": "2x RTX 4090", "small GPU": "RTX 3060 12GB"}
MODELS = ("llama-3.1-8b", "qwen3-30b-a3b", "gemma-3-27b-it")
QUANTS = {"llama.cpp": (), "ollama": (), "vllm": ("BF16", "FP8", "AWQ"), "sglang": ("BF16", "FP8", "AWQ"),
          "transformers": ("BF16", "NF4", "AWQ")}
KV = {"llama.cpp": ("f16", "q8_0", "q4_0"), "ollama": ("f16", "q8_0"), "vllm": ("auto", "fp8"),
      "sglang": ("auto", "fp8"), "transformers": ("bf16",)}


def plans(engine: str, memory: str, model: str, n_parallel: int | None = None):
    """Every plan the tool can make for these inputs: one per row that has one."""
    mem = pm.what_if(MEMORY[memory])
    e = get_engine(engine)
    if not e.splits_across_gpus:
        mem = mem.merged()
    req = EstimateRequest(resolve_model(model), engine, QUANTS[engine], KV[engine], mem.devices,
                          options=EngineOptions(n_parallel=n_parallel))
    est = run_estimate(req)
    for row in est.results:
        if row.error:
            continue
        plan = plan_row(req, est, row.quant, row.kv_cache)
        if plan is not None:
            yield req, plan, e.command(req.model, plan, req.options)


CASES = [(e, m, model) for e in QUANTS for m in MEMORY for model in MODELS]


@pytest.mark.parametrize(("engine", "memory", "model"), CASES)
def test_commands_use_real_flags_and_the_plans_numbers(engine, memory, model):
    seen = 0
    for req, plan, text in plans(engine, memory, model):
        seen += 1
        CHECKS[engine](req, plan, text)
    assert seen or engine in ("vllm", "sglang", "transformers")  # llama.cpp always has a plan (offload)


def _llama_server(req, plan, text):
    cmd = parse(text, 1)
    assert cmd.program == ["llama-server"]
    assert check(cmd, flag_set("llama-server") | {"-ctk": KV_LLAMA, "-ctv": KV_LLAMA, "-fa": {"on", "off"},
                                                  "-fit": {"off"}}) == []
    f = cmd.flags
    assert int(f["-c"]) == plan.context
    assert int(f["-ngl"]) == (plan.gpu_layers if plan.gpu_layers <= plan.n_layers else 999)
    assert f["-ctk"] == f["-ctv"] == plan.kv_cache and int(f["-np"]) == (req.options.n_parallel or 1)
    assert ("-m" in f) != ("-hf" in f)
    if len(plan.devices) > 1:
        total = sum(plan.tensor_split)
        assert [float(x) for x in f["--tensor-split"].split(",")] == pytest.approx(
            [x / total for x in plan.tensor_split], abs=0.001)
    assert int(f.get("--n-cpu-moe", 0)) == plan.cpu_moe


KV_LLAMA = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"}  # common/arg.cpp kv_cache_types


def _ollama(req, plan, text):
    lines, comments = command_lines(text)
    assert len(lines) == 1 and lines[0].endswith(" ollama serve")
    allowed = flag_set("ollama")
    env = dict(w.split("=", 1) for w in lines[0].split()[:-2])
    for k, v in env.items():
        assert f"env:{k}" in allowed and (not allowed[f"env:{k}"] or v in allowed[f"env:{k}"]), (k, v)
    assert int(env["OLLAMA_CONTEXT_LENGTH"]) == plan.context and env["OLLAMA_KV_CACHE_TYPE"] == plan.kv_cache
    modelfile = [c.removeprefix("#").strip() for c in comments if c.startswith("#   ")]
    params = dict(ln.split()[1:3] for ln in modelfile if ln.startswith("PARAMETER"))
    assert all(f"param:{p}" in allowed for p in params)
    assert int(params["num_ctx"]) == plan.context
    if not plan.fully_offloaded:
        assert int(params["num_gpu"]) == plan.gpu_layers
    source = next(ln for ln in modelfile if ln.startswith("FROM ")).split(" ", 1)[1]
    assert not source.startswith("hf.co/") or req.model.gguf_files  # hf.co pulls need a GGUF repository


def _vllm(req, plan, text):
    cmd = parse(text, 3)
    assert cmd.program[:2] == ["vllm", "serve"]
    assert check(cmd, flag_set("vllm-serve")) == []
    f = cmd.flags
    assert int(f["--max-model-len"]) == plan.context <= req.model.spec.max_context
    assert float(f["--gpu-memory-utilization"]) == plan.settings["gpu_memory_utilization"]
    assert int(f.get("--tensor-parallel-size", 1)) == plan.tensor_parallel
    assert f.get("--kv-cache-dtype", "auto") == ("auto" if plan.kv_cache in ("auto", "bf16", "f16") else plan.kv_cache)
    _checkpoint(cmd.program[2], plan, cmd.comments)


def _sglang(req, plan, text):
    cmd = parse(text, 3)
    assert cmd.program == ["python", "-m", "sglang.launch_server"]
    assert check(cmd, flag_set("sglang-launch-server")) == []
    f = cmd.flags
    assert int(f["--context-length"]) == plan.context
    assert float(f["--mem-fraction-static"]) == plan.settings["mem_fraction_static"]
    assert int(f.get("--tp-size", 1)) == plan.tensor_parallel
    _checkpoint(f["--model-path"], plan, cmd.comments)


def _checkpoint(ref: str, plan, comments: list[str]) -> None:
    """AWQ/GPTQ need a checkpoint made with that quantizer: a placeholder the user must fill, said so."""
    if plan.quant.upper().startswith(("AWQ", "GPTQ")):
        assert ref.startswith("<") and ref.endswith(">") and comments and "checkpoint" in comments[0]
    else:
        assert not ref.startswith("<")


def _transformers(req, plan, text):
    lines, comments = command_lines(text)
    tree = ast.parse("\n".join(lines))  # valid Python
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "from_pretrained"]
    model_call = calls[0]
    assert {k.arg for k in model_call.keywords} <= {"device_map", "dtype", "quantization_config"}
    assert f"within {plan.context} tokens" in text and f"min(512, {plan.context} -" in text
    _checkpoint(ast.literal_eval(model_call.args[0]), plan, comments)


CHECKS = {"llama.cpp": _llama_server, "ollama": _ollama, "vllm": _vllm, "sglang": _sglang,
          "transformers": _transformers}


def test_every_engine_has_a_command_check():
    from lander_tui.core.engines import engine_names

    assert set(engine_names()) == set(CHECKS)


def test_parallel_slots_reach_the_command():
    _req, plan, text = next(plans("llama.cpp", "one GPU", "llama-3.1-8b", n_parallel=4))
    assert parse(text, 1).flags["-np"] == "4"


def test_the_checker_catches_a_bad_flag_and_a_bad_value():
    cmd = parse("vllm serve m --max-model-len 10 --kv-cache-dtype q8_0 --no-such-flag 1", 3)
    assert check(cmd, flag_set("vllm-serve")) == [
        "--kv-cache-dtype 'q8_0' is not one of ['auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2']",
        "unknown flag --no-such-flag"]


# --- what loads beside the model reaches every command ------------------------------------------------------

def extras_plans(engine: str, options: EngineOptions, model: str = "gemma-3-27b-it", memory: str = "2x H100",
                 quants: tuple[str, ...] | None = None):
    mem = pm.what_if(memory)
    e = get_engine(engine)
    if not e.splits_across_gpus:
        mem = mem.merged()
    quant = (QUANTS[engine] or ("Q4_K_M",))[:1] if quants is None else quants
    req = EstimateRequest(resolve_model(model), engine, quant, KV[engine][:1], mem.devices,
                          context=8192, options=options)
    est = run_estimate(req)
    plan = plan_row(req, est)
    assert plan is not None
    return req, plan, e.command(req.model, plan, req.options)


def _draft(tokens: int = 4):
    from lander_tui.core.extras import Speculative

    return Speculative(resolve_model("gemma-3-1b-it"), tokens=tokens, ref="gemma-3-1b-it")


@pytest.mark.parametrize("engine", ["llama.cpp", "vllm", "sglang", "transformers"])
def test_a_draft_model_and_adapters_reach_the_command(engine):
    from lander_tui.core.extras import parse_lora

    opts = EngineOptions(speculative=_draft(4), lora=parse_lora("12x2"))
    req, plan, text = extras_plans(engine, opts)
    CHECKS[engine](req, plan, text)  # every flag real, the plan's numbers in it
    if engine == "llama.cpp":
        f = parse(text, 1).flags
        assert f["-md"] == "gemma-3-1b-it-Q4_K_M.gguf" and f["-ngld"] == "999"
        assert f["--spec-type"] == "draft-simple" and f["--spec-draft-n-max"] == "4"
        assert len(f["--lora"].split(",")) == 2
    elif engine == "vllm":
        f = parse(text, 3).flags
        conf = json.loads(f["--speculative-config"])
        assert conf == {"model": "google/gemma-3-1b-it", "num_speculative_tokens": 4}
        assert f["--max-loras"] == "2" and f["--max-lora-rank"] == "16"  # 12 rounded up to vLLM's next rank
    elif engine == "sglang":
        f = parse(text, 3).flags
        assert f["--speculative-algorithm"] == "STANDALONE"
        assert f["--speculative-draft-model-path"] == "google/gemma-3-1b-it"
        assert f["--speculative-num-steps"] == "4" and f["--speculative-num-draft-tokens"] == "5"
        assert f["--max-lora-rank"] == "12" and f["--max-loras-per-batch"] == "2"
    else:
        tree = ast.parse("\n".join(command_lines(text)[0]))
        calls = {getattr(n.func, "attr", ""): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        gen = calls["generate"]
        assert {k.arg for k in gen.keywords} >= {"assistant_model", "num_assistant_tokens"}
        assert sum(1 for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "")
                   == "load_adapter") == 2


@pytest.mark.parametrize("engine", ["llama.cpp", "vllm", "sglang"])
def test_leaving_the_projector_out_reaches_the_command(engine):
    req, plan, text = extras_plans(engine, EngineOptions(mmproj=False))
    CHECKS[engine](req, plan, text)
    words = text.split()
    if engine == "llama.cpp":  # a -m file: nothing loads it unless named; nothing is named
        assert "--mmproj" not in words and plan.memory.extras == 0
    else:
        assert ("--language-model-only" if engine == "vllm" else "--language-only") in words
    on = extras_plans(engine, EngineOptions())[2].split()
    assert ("--mmproj" in on) == (engine == "llama.cpp") and "--language-model-only" not in on


def test_a_hub_gguf_repo_fetches_its_projector_unless_told_not_to():
    """`-hf` downloads the repo's mmproj by itself (--mmproj-auto is on), so leaving it out needs --no-mmproj."""
    from dataclasses import replace

    from lander_tui.core.extras import Projector
    from lander_tui.core.vision import vision_tensors

    m = resolve_model("gemma-3-4b-it")
    v = m.spec.vision
    proj = Projector("mmproj-F16.gguf", vision_tensors(v), v, local=False)
    hub = replace(m, gguf_files={"Q4_K_M": 1}, projector=proj)
    e = get_engine("llama.cpp")
    mem = pm.what_if("RTX 4090")
    for opts, flag in ((EngineOptions(), None), (EngineOptions(mmproj=False), "--no-mmproj")):
        req = EstimateRequest(hub, "llama.cpp", ("Q4_K_M",), ("f16",), mem.devices, context=8192, options=opts)
        plan = plan_row(req, run_estimate(req))
        cmd = parse(e.command(hub, plan, opts), 1)
        assert "-hf" in cmd.flags and "--mmproj" not in cmd.flags
        assert ("--no-mmproj" in cmd.flags) == (flag is not None)
        assert check(cmd, flag_set("llama-server")) == []


def test_mtp_drafting_reaches_llama_cpp_vllm_sglang_and_ollama():
    from lander_tui.core.extras import Speculative

    opts = EngineOptions(speculative=Speculative(mtp=True, tokens=2, ref="mtp"))
    for engine in ("llama.cpp", "vllm", "sglang", "ollama"):
        quant = ("Q4_K_M",) if engine in ("llama.cpp", "ollama") else ("FP8",)  # DeepSeek-V3 ships FP8
        req, plan, text = extras_plans(engine, opts, model="deepseek-v3", memory="8x H200", quants=quant)
        if engine == "llama.cpp":
            f = parse(text, 1).flags
            assert f["--spec-type"] == "draft-mtp" and f["--spec-draft-n-max"] == "2"
        elif engine == "vllm":
            assert json.loads(parse(text, 3).flags["--speculative-config"]) == {"method": "mtp",
                                                                                  "num_speculative_tokens": 2}
        elif engine == "sglang":
            assert parse(text, 3).flags["--speculative-algorithm"] == "EAGLE"
        else:
            assert "#   PARAMETER draft_num_predict 2" in text.splitlines()
