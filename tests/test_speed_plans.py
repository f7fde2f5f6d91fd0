"""Speed where the decision is made: every result and plan of `lander-tui estimate` carries decode /
prefill / time to first token that are exactly what `core/speed.py` gives for that placement (one GPU,
a layer split over two, layers and experts on the CPU), the llama-bench lines measure that same plan,
`--prefer speed` recommends the fastest row that reaches the target, and unknown cards say so."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex

import pytest
from commands import command_lines

from lander_tui.cli import main
from lander_tui.core import planning_memory as pm
from lander_tui.core.catalog import get_model
from lander_tui.core.engines.llamacpp import layer_devices
from lander_tui.core.gpu import FakeBackend
from lander_tui.core.gpu.specs import SPECS
from lander_tui.core.speed import decode_seconds, estimate_speed, offload_step, speed_inputs
from lander_tui.core.weights import gguf_weights

RTX4090, RTX5090, RTX3090 = SPECS["RTX 4090 24GB"], SPECS["RTX 5090 32GB"], SPECS["RTX 3090 24GB"]
USABLE_4090 = 24217  # the catalog's usable MiB of an RTX 4090 (what --what-if plans on)


@pytest.fixture(autouse=True)
def _no_smbios(monkeypatch):
    """Host RAM bandwidth as on a machine whose SMBIOS cannot be read (the default, stated)."""
    monkeypatch.setenv("LANDER_TUI_DMI_TABLES", "/nonexistent/DMI")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def run(capsys, *argv: str) -> dict:
    """The estimate's JSON. Exit 1 means nothing loads fully on the GPUs: the plan then runs part of the
    model on the CPU, which is what several cases here measure."""
    rc = main(["estimate", *argv, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 or (rc == 1 and data["recommendation"]["quant"] is None and "plan" in data)
    return data


def expect(model: str, quant: str, kv: str, cards: list, ctx: int, units=None, cpu_moe: int = 0,
           host_bw: float | None = None):
    """The speed `core/speed.py` gives for a placement built here by hand (not through the engine)."""
    spec = get_model(model)
    w = gguf_weights(spec, quant)
    inp = speed_inputs(spec, w, cards, units=units, cpu_moe=cpu_moe, kv_type=kv, host_bw_gbs=host_bw)
    step = offload_step(spec, w, cards, units=units, cpu_moe=cpu_moe, kv_type=kv, host_bw_gbs=host_bw)
    return estimate_speed(inp, ctx, prompt=ctx), 1 / decode_seconds(inp, ctx, _cal()) - 1 / decode_seconds(
        step, ctx, _cal())


def _cal():
    from lander_tui.core.speed import SpeedCalibration

    return SpeedCalibration()


def check(row_or_plan: dict, est) -> None:
    assert row_or_plan["decode_tps"] == round(est.decode_tps, 1)
    assert row_or_plan["prefill_tps"] == round(est.prefill_tps, 1)
    assert row_or_plan["ttft_s"] == round(est.ttft_s, 3)
    assert row_or_plan["speed_context"] == est.context
    assert row_or_plan["speed_bound"] == est.bound


# --- JSON: results and plans ---------------------------------------------------------------------


def test_one_gpu_rows_and_plan_carry_the_speed_of_their_placement(capsys):
    data = run(capsys, "llama-3.1-8b", "--what-if", "RTX 4090", "-c", "16384", "--launch", "llama.cpp")
    for r in data["results"]:
        est, _ = expect("llama-3.1-8b", r["quant"], r["kv_cache"], [RTX4090], 16384)
        check(r, est)
        # the time to the first token is the prompt at the prefill rate plus one decoded token
        assert r["ttft_s"] == pytest.approx(16384 / r["prefill_tps"] + 1 / r["decode_tps"], rel=2e-3)
    plan = data["plan"]
    est, step = expect("llama-3.1-8b", plan["quant"], plan["kv_cache"], [RTX4090], plan["context"])
    check(plan, est)
    rec = next(r for r in data["results"] if (r["quant"], r["kv_cache"]) == (plan["quant"], plan["kv_cache"]))
    assert plan["decode_tps"] == rec["decode_tps"]  # the plan is the row, fully on the GPU
    assert plan["offload_step"] == "-ngl 32" and plan["offload_step_cost_tps"] == round(step, 2) > 0
    assert plan["prefill_bound"] == "compute-bound: mmq on RTX 4090 24GB"


def test_a_layer_split_over_two_gpus_reads_each_half_in_turn(capsys):
    data = run(capsys, "llama-3.1-70b", "--what-if", "2x RTX 4090", "-q", "Q4_K_M", "-k", "f16", "-c", "8192",
               "--launch", "llama.cpp")
    plan = data["plan"]
    assert plan["gpu_layers"] == 81 and len(plan["devices"]) == 2
    units = layer_devices(80, 81, (USABLE_4090, USABLE_4090))
    est, step = expect("llama-3.1-70b", "Q4_K_M", "f16", [RTX4090] * 2, 8192, units=units)
    check(plan, est)
    assert plan["offload_step_cost_tps"] == round(step, 2)
    # the devices hold the layers the speed model put on them
    first = plan["devices"][0]["layers"]
    assert units.index(1) == first[1] + 1
    one_card = expect("llama-3.1-70b", "Q4_K_M", "f16", [SPECS["RTX PRO 6000 Blackwell 96GB"]], 8192)[0]
    assert plan["decode_tps"] < one_card.decode_tps  # two 1 TB/s cards in turn < one 1.8 TB/s card


def test_layers_on_the_cpu_are_read_at_host_bandwidth_and_each_step_costs(capsys):
    data = run(capsys, "llama-3.1-70b", "--what-if", "RTX 4090", "-q", "Q4_K_M", "-k", "f16", "-c", "8192",
               "--host-bandwidth", "60", "--launch", "llama.cpp")
    assert data["results"][0]["decode_tps"] is None  # nothing loads fully on the GPU: the row has no speed
    plan = data["plan"]
    ngl = plan["gpu_layers"]
    assert 0 < ngl < 81
    est, step = expect("llama-3.1-70b", "Q4_K_M", "f16", [RTX4090], 8192,
                       units=layer_devices(80, ngl, (USABLE_4090,)), host_bw=60)
    check(plan, est)
    assert plan["speed_bound"].startswith("host-RAM-bound") and "at 60 GB/s" in plan["speed_bound"]
    assert plan["offload_step"] == f"-ngl {ngl - 1}" and plan["offload_step_cost_tps"] == round(step, 2)
    assert plan["speed_notes"] == []  # the bandwidth was given, nothing assumed
    default = run(capsys, "llama-3.1-70b", "--what-if", "RTX 4090", "-q", "Q4_K_M", "-k", "f16", "-c", "8192",
                  "--launch", "llama.cpp")["plan"]
    assert any("assumed 76.8 GB/s" in n for n in default["speed_notes"])


def test_moe_experts_on_the_cpu_step_one_layer_of_experts_at_a_time(capsys):
    data = run(capsys, "gpt-oss-120b", "--what-if", "RTX 5090", "-c", "32768", "--host-bandwidth", "83.2",
               "--launch", "llama.cpp")
    plan = data["plan"]
    n = plan["cpu_moe"]
    assert plan["gpu_layers"] == 37 and 0 < n < 36
    est, step = expect("gpt-oss-120b", plan["quant"], plan["kv_cache"], [RTX5090], 32768, cpu_moe=n, host_bw=83.2)
    check(plan, est)
    assert plan["offload_step"] == f"--n-cpu-moe {n + 1}" and plan["offload_step_cost_tps"] == round(step, 2) > 0


def test_tensor_parallel_engines_and_transformers_answer_too(capsys):
    vllm = run(capsys, "llama-3.1-8b", "-b", "vllm", "--what-if", "2x A100 80GB", "-c", "8192", "-np", "8",
               "--launch", "vllm")
    assert all(r["decode_tps"] > 0 for r in vllm["results"])
    assert vllm["plan"]["aggregate_tps"] > vllm["plan"]["decode_tps"]  # 8 streams at once
    assert vllm["plan"]["offload_step"] is None  # vLLM runs nothing on the CPU
    hf = run(capsys, "llama-3.1-8b", "-b", "transformers", "--what-if", "A100 80GB", "-c", "8192")
    hf_bf16 = next(r for r in hf["results"] if r["quant"] == "BF16")
    vllm_one = run(capsys, "llama-3.1-8b", "-b", "vllm", "--what-if", "A100 80GB", "-c", "8192")
    vllm_bf16 = next(r for r in vllm_one["results"] if r["quant"] == "BF16")
    assert hf_bf16["decode_tps"] < vllm_bf16["decode_tps"]  # eager PyTorch pays per layer and op


# --- the llama-bench lines -----------------------------------------------------------------------


def _bench(data: dict) -> list[dict[str, str]]:
    lines, _comments = command_lines(data["bench"])  # a first "# the GGUF file" line may say what -m is
    assert len(lines) == 2
    out = []
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "llama-bench"
        out.append(dict(zip(argv[1::2], argv[2::2], strict=True)))
    return out


@pytest.mark.parametrize("argv", [
    ("llama-3.1-8b", "--what-if", "RTX 4090", "-c", "16384", "-k", "q8_0"),
    ("llama-3.1-70b", "--what-if", "2x RTX 4090", "-q", "Q4_K_M", "-k", "f16", "-c", "8192", "--ubatch", "1024"),
    ("llama-3.1-70b", "--what-if", "RTX 4090", "-q", "Q4_K_M", "-k", "f16", "-c", "8192"),
    ("gpt-oss-120b", "--what-if", "RTX 5090", "-c", "32768", "--flash-attn", "off"),
])
def test_llama_bench_lines_parse_and_match_the_plan(capsys, data_dir, argv):
    data = run(capsys, *argv, "--bench")
    usage = (data_dir / "speed" / "llama-bench-usage.txt").read_text()
    known = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage))
    prefill, decode = _bench(data)
    plan = data["plan"]
    for flags in (prefill, decode):
        assert set(flags) <= known, set(flags) - known
        assert flags["-m"].endswith(f"-{plan['quant']}.gguf")
        assert int(flags["-ngl"]) == (plan["gpu_layers"] if plan["gpu_layers"] <= plan["n_layers"] else 999)
        assert flags.get("--n-cpu-moe", "0") == str(plan["cpu_moe"])
        assert flags["-fa"] == ("0" if "off" in argv else "1")
        assert flags.get("-ctk", "f16") == flags.get("-ctv", "f16") == plan["kv_cache"]
        assert flags.get("-ub", "512") == ("1024" if "1024" in argv else "512")
        if len(plan["devices"]) > 1:
            shares = [float(x) for x in flags["-ts"].split("/")]
            assert shares == pytest.approx(plan["tensor_split"], rel=0.01) or len(shares) == len(plan["devices"])
        else:
            assert "-ts" not in flags
    # the first run measures a prompt as long as the context, the second decoding at that depth
    assert prefill["-p"] == str(plan["context"]) and prefill["-n"] == "0" and "-d" not in prefill
    assert decode["-p"] == "0" and decode["-n"] == "128" and int(decode["-d"]) + 128 == plan["context"]


def test_engines_without_a_bench_line_say_so(capsys):
    assert main(["estimate", "llama-3.1-8b", "-b", "vllm", "--what-if", "H100", "--bench"]) == 2
    err = capsys.readouterr().err
    assert "no benchmark command" in err and len(err.strip().splitlines()) == 1


# --- the recommendation ----------------------------------------------------------------------------


def test_prefer_speed_recommends_the_fastest_row_that_reaches_the_target(capsys):
    args = ("llama-3.1-8b", "--what-if", "RTX 4090", "-c", "131072", "-q", "Q4_K_M,Q6_K,Q8_0",
            "-k", "f16,q8_0,q4_0")
    fast = run(capsys, *args, "--prefer", "speed")
    reach = [r for r in fast["results"] if r["max_context"] >= 131072]
    assert len(reach) >= 3 and any(r["max_context"] < 131072 for r in fast["results"])
    best = max(reach, key=lambda r: r["decode_tps"])
    rec = fast["recommendation"]
    assert (rec["quant"], rec["kv_cache"]) == (best["quant"], best["kv_cache"]) and rec["prefer"] == "speed"
    assert "fastest" in rec["reason"]
    # rows that do not reach the target never win, however fast they would be at their own length
    too_short = [r for r in fast["results"] if r["max_context"] < 131072]
    assert all((r["quant"], r["kv_cache"]) != (rec["quant"], rec["kv_cache"]) for r in too_short)
    plain = run(capsys, *args)["recommendation"]
    assert plain["prefer"] == "precision" and (plain["quant"], plain["kv_cache"]) != (rec["quant"], rec["kv_cache"])


def test_prefer_speed_without_any_known_speed_falls_back_to_precision(capsys):
    data = run(capsys, "llama-3.1-8b", "--free-vram", "20000", "-c", "8192", "--prefer", "speed")
    assert "speed unknown, so by precision" in data["recommendation"]["reason"]


# --- which card, and when it is unknown ------------------------------------------------------------


def test_numbers_given_without_a_card_say_how_to_name_it(capsys):
    data = run(capsys, "llama-3.1-8b", "--free-vram", "20000", "-c", "8192")
    assert all(r["decode_tps"] is None for r in data["results"])
    assert any("--gpu-model" in n for n in data["notes"])
    named = run(capsys, "llama-3.1-8b", "--free-vram", "20000", "-c", "8192", "--gpu-model", "RTX 3090")
    for r in named["results"]:
        check(r, expect("llama-3.1-8b", r["quant"], r["kv_cache"], [RTX3090], 8192)[0])
    assert not any("speed unknown" in n for n in named["notes"])


@pytest.mark.parametrize(("card", "message"), [("MI300X", "not an NVIDIA card"), ("RTX 3080", "matches several"),
                                               ("Quantum 9000", 'unknown GPU "Quantum 9000"')])
def test_a_bad_gpu_model_is_one_line(capsys, card, message):
    assert main(["estimate", "llama-3.1-8b", "--free-vram", "20000", "--gpu-model", card]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_live_gpus_are_matched_by_their_nvml_name_and_unknown_ones_say_so():
    scenario = {"gpus": [{"name": "NVIDIA GeForce RTX 4090", "total_mib": 24564, "used_mib": 0},
                         {"name": "NVIDIA Quantum 9000", "total_mib": 49152, "used_mib": 0}]}
    snap = FakeBackend(scenario).poll()
    known, unknown = pm.on_gpus(snap, [0]).devices[0], pm.on_gpus(snap, [1]).devices[0]
    assert known.card is RTX4090 and not known.card_note
    assert unknown.card is None and "NVIDIA Quantum 9000" in unknown.card_note and "--gpu-model" in unknown.card_note
    assert pm.on_gpus(snap, [1]).with_card("RTX 6000 Ada").devices[0].card is SPECS["RTX 6000 Ada 48GB"]
    assert pm.on_gpus(snap, [0, 1]).merged().devices[0].card is None  # different cards summed: unknown
    what_if = pm.what_if("2x RTX 4090")
    assert [d.card for d in what_if.devices] == [RTX4090, RTX4090]
    assert pm.what_if("MI300X").devices[0].card_note.endswith("(the speed model covers NVIDIA GPUs)")


# --- exports ---------------------------------------------------------------------------------------


def test_csv_and_markdown_carry_the_speed_columns(capsys):
    args = ["estimate", "llama-3.1-8b", "--what-if", "RTX 4090", "-c", "8192"]
    data = run(capsys, *args[1:])
    assert main([*args, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [float(r["decode_tps"]) for r in rows] == [r["decode_tps"] for r in data["results"]]
    assert [float(r["ttft_s"]) for r in rows] == [r["ttft_s"] for r in data["results"]]
    assert main([*args, "--format", "md", "--bench"]) == 0
    md = capsys.readouterr().out
    assert "| decode_tps | prefill_tps | ttft_s |" in md
    assert "Speed at 8192 tokens: decode" in md and "llama-bench -m" in md


def test_plain_text_has_the_speed_lines(capsys, monkeypatch):
    # a 70B on one 4090: nothing loads fully on the GPU; the offload plan loads when host RAM holds its CPU
    # part (exit 0) and says how fast it runs; with too little host RAM it does not (exit 1)
    from lander_tui.core import report

    argv = ["estimate", "llama-3.1-70b", "--what-if", "RTX 4090", "-q", "Q4_K_M", "-k", "f16", "-c", "8192",
            "--host-bandwidth", "60"]
    monkeypatch.setattr(report, "host_available_mib", lambda: 4096.0)
    assert main(argv) == 1
    assert "loads: NO (not enough host RAM" in capsys.readouterr().out
    monkeypatch.setattr(report, "host_available_mib", lambda: 131072.0)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "loads: yes, part on the CPU" in out
    assert "  speed: decode " in out and "host-RAM-bound" in out and "first token after" in out
    assert re.search(r"one more step on the CPU \(-ngl \d+\): decode [\d.]+ -> [\d.]+ tok/s", out)
    assert main(["estimate", "llama-3.1-8b", "--what-if", "RTX 4090", "-c", "8192", "-q", "Q4_K_M"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"  decode_tps: [\d.]+\n  prefill_tps: [\d.]+\n  ttft_s: [\d.]+\n  speed_at_context: 8192", out)


def test_an_unknown_live_card_is_built_from_nvml_clocks_read_once():
    """A card the speed table does not know, on a driver that reports its clocks (the fake answers
    `nvmlDeviceGetMaxClockInfo`, `...MemoryBusWidth`, `...CudaComputeCapability`, `...NumGpuCores` as
    nvidia-ml-py does): bandwidth from memory clock x bus width, SMs from the CUDA cores."""
    from lander_tui.core.gpu.specs import nvml_bandwidth_gbs

    scenario = {"gpus": [{"name": "NVIDIA Zephyr X1", "total_mib": 24564, "used_mib": 0,
                          "max_mem_clock_mhz": 10501, "max_sm_clock_mhz": 2520, "bus_width_bits": 384,
                          "compute_capability": [8, 9], "cuda_cores": 16384},
                         {"name": "NVIDIA Quantum 9000", "total_mib": 49152, "used_mib": 0,
                          "unsupported": ["clocks"], "bus_width_bits": 512, "compute_capability": [12, 0]}]}
    backend = FakeBackend(scenario)
    for _ in range(3):
        snap = backend.poll()
    g = snap.gpus[0]
    assert (g.mem_clock_mhz, g.bus_width_bits, g.compute_capability, g.sm_count, g.sm_clock_mhz) == (
        10501, 384, (8, 9), 128, 2520)
    assert backend.nvml.calls["nvmlDeviceGetMaxClockInfo", 0] == 2  # memory and SM clock, once each
    dev = pm.on_gpus(snap, [0]).devices[0]
    assert dev.card is not None and not dev.card.known
    assert dev.card.mem_bw_gbs == pytest.approx(nvml_bandwidth_gbs(10501, 384)) == pytest.approx(1008, rel=0.01)
    assert dev.card.int8 == pytest.approx(RTX4090.int8, rel=0.01)  # 128 Ada SMs at 2.52 GHz
    # no memory clock: no bandwidth, so no card, and the note says how to name one
    other = pm.on_gpus(snap, [1]).devices[0]
    assert other.card is None and "--gpu-model" in other.card_note
