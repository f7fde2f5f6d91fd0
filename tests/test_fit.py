""""Where does it fit?" in core: the engines' many-sets arithmetic equals their one-set path, and the
ranking, the plan and the launch command of `core/fit.py` on fake fleets (the real Prometheus ones
are in tests/test_fit_prometheus.py)."""

from __future__ import annotations

import numpy as np
import pytest

from lander_tui.core import planning_memory as pm
from lander_tui.core.engines import EngineOptions, get_engine
from lander_tui.core.engines.base import Engine
from lander_tui.core.engines.llamacpp import layer_devices, layer_devices_many
from lander_tui.core.errors import LanderError
from lander_tui.core.estimate import EstimateRequest, run_estimate
from lander_tui.core.fit import FitRequest, on_host, where_it_fits
from lander_tui.core.gpu.snapshot import OK, GpuInfo, Snapshot
from lander_tui.core.model import Device
from lander_tui.core.model_source import resolve_model

H100 = 81559.0

# (engine, model, quant, kv): dense, tied output, MoE, sliding window, MLA; llama.cpp and Ollama
# split layers, vLLM and SGLang split tensors.
CASES = [
    ("llama.cpp", "llama-3.1-8b", "Q4_K_M", "f16"),
    ("llama.cpp", "qwen2.5-3b", "Q8_0", "q8_0"),
    ("llama.cpp", "qwen3-30b-a3b", "Q4_K_M", "q4_0"),
    ("llama.cpp", "gemma-3-27b-it", "Q6_K", "f16"),
    ("llama.cpp", "deepseek-v2-lite", "Q4_K_M", "f16"),
    ("ollama", "llama-3.1-70b", "Q4_K_M", "q8_0"),
    ("vllm", "llama-3.1-8b", "BF16", "auto"),
    ("vllm", "qwen3-30b-a3b", "FP8", "fp8"),
    ("sglang", "llama-3.1-70b", "FP8", "auto"),
    ("sglang", "deepseek-v2-lite", "BF16", "auto"),
]


CARDS = {24564.0: "NVIDIA GeForce RTX 4090", 46068.0: "NVIDIA L40S", 81559.0: "NVIDIA H100 80GB HBM3",
         81920.0: "NVIDIA A100-SXM4-80GB", 143771.0: "NVIDIA H200"}


def _random_sets(rng: np.random.Generator, m: int, n: int) -> list[tuple[Device, ...]]:
    """m sets of n alike cards, with free memory anywhere from none to all (some repeated exactly, as
    idle GPUs of one kind are)."""
    totals = rng.choice(list(CARDS), size=m)
    free = np.round(totals[:, None] * rng.uniform(0.0, 1.0, size=(m, n)), 1)
    free[0] = totals[0]  # one untouched set
    free[1, 0] = 0.0  # one GPU with nothing free
    free[2:6] = free[6]  # sets the same as another
    totals[2:6] = totals[6]
    return [tuple(Device(CARDS[float(t)], float(f), float(t), j) for j, f in enumerate(row))
            for t, row in zip(totals, free, strict=True)]


def _one_at_a_time(engine: Engine, model, quant, kv, ctx, sets, opts):
    """The base class's loop: `budget` + `footprint` per set, what every single estimate does."""
    return Engine.fit_sets(engine, model, quant, kv, ctx, sets, opts)


@pytest.mark.parametrize(("engine_name", "model_name", "quant", "kv"), CASES)
def test_many_sets_equal_one_set_at_a_time(engine_name, model_name, quant, kv):
    engine = get_engine(engine_name)
    model = resolve_model(model_name)
    sizes = [n for n in (1, 2, 3, 8) if n in engine.set_sizes(model, 8)]
    assert len(sizes) >= 3
    outcomes: set[bool] = set()
    for n, ctx in ((n, ctx) for n in sizes for ctx in (4096, 32768)):
        rng = np.random.default_rng(n * 1000 + len(model_name))
        sets = _random_sets(rng, 60, n)
        opts = EngineOptions()
        need, budget = engine.fit_sets(model, quant, kv, ctx, sets, opts)
        want_need, want_budget = _one_at_a_time(engine, model, quant, kv, ctx, sets, opts)
        assert need.shape == budget.shape == (60, n)
        np.testing.assert_array_equal(budget, want_budget)
        np.testing.assert_array_equal(need, want_need)
        outcomes.update((need <= budget).all(axis=1).tolist())
    assert outcomes == {True, False}, "some sets should load and some not, or the test proves little"


def test_many_sets_with_options():
    engine = get_engine("llama.cpp")
    model = resolve_model("qwen3-8b")
    sets = _random_sets(np.random.default_rng(7), 40, 2)
    for opts in (EngineOptions(n_parallel=4, kv_unified=False), EngineOptions(flash_attn=False, n_ubatch=1024),
                 EngineOptions(tensor_split=(3.0, 1.0)), EngineOptions(overrides={"cuda_context_mib": 300.0})):
        need, budget = engine.fit_sets(model, "Q4_K_M", "f16", 16384, sets, opts)
        want = _one_at_a_time(engine, model, "Q4_K_M", "f16", 16384, sets, opts)
        np.testing.assert_array_equal(need, want[0])
        np.testing.assert_array_equal(budget, want[1])


def test_layer_split_of_many_sets_is_llamas_split():
    rng = np.random.default_rng(3)
    for n_layers in (1, 7, 32, 61):
        splits = rng.uniform(0, 80000, size=(200, 4))
        splits[:20] = rng.integers(0, 4, size=(20, 4))  # small integers: units on exact share boundaries
        for ngl in (n_layers + 1, max(1, n_layers // 2)):
            many = layer_devices_many(n_layers, ngl, splits)
            for row, split in zip(many, splits, strict=True):
                if not split.sum():
                    assert (row == -1).all()
                    continue
                want = layer_devices(n_layers, ngl, tuple(float(x) for x in split))
                assert [None if d < 0 else int(d) for d in row] == want


# --- the ranking on a fake fleet ----------------------------------------------------------------


def _gpu(index: int, host: str, number: int, used: float, total: float = H100, name: str = "NVIDIA H100 80GB HBM3",
         stale: bool = False) -> GpuInfo:
    reserved = 480.0
    free = None if stale else total - used - reserved
    return GpuInfo(index=index, name=name, uuid=f"GPU-{host}-{number}", cuda_index=number, total_mib=total,
                   used_mib=None if stale else used, free_mib=free, reserved_mib=reserved, host=host,
                   host_index=number, stale=stale, note="stale: newest sample 90 s old" if stale else "")


def _fleet(hosts: dict[str, list[float]], stale: tuple[str, ...] = ()) -> Snapshot:
    gpus = []
    for host, used in hosts.items():
        for number, u in enumerate(used):
            gpus.append(_gpu(len(gpus), host, number, u, stale=host in stale))
    return Snapshot(tuple(gpus), OK, "", 1.0, None, "prometheus")


def test_idle_host_first_busy_host_after_and_needs_two():
    snap = _fleet({"idle": [0.0, 0.0], "busy": [60000.0, 70000.0], "half": [40000.0, 1000.0],
                   "full": [80000.0, 80000.0], "dead": [0.0, 0.0]}, stale=("dead",))
    model = resolve_model("llama-3.1-8b")
    ans = where_it_fits(FitRequest(model, "llama.cpp", "Q8_0", "f16", 32768, margin_mib=512.0), snap)
    assert [s.host for s in ans.ranked] == ["idle", "half", "busy"]
    assert [s.host_gpus for s in ans.ranked] == [(0,), (1,), (0,)]  # each host's freest GPU
    assert ans.ranked[0].headroom_mib > ans.ranked[2].headroom_mib > 0
    assert [s.host for s in ans.short] == ["full"] and not ans.short[0].fits
    assert ans.skipped == ("dead",) and ans.hosts == 5 and ans.gpus == 10
    # the headroom is what a single estimate on that GPU leaves (same numbers, same margin)
    best = ans.best
    assert best is not None and best.gpus is ans.ranked[0]
    assert best.memory.label == "idle:0 free now" and best.memory.gpu_labels == ("idle:0",)
    est = run_estimate(EstimateRequest(model, "llama.cpp", ("Q8_0",), ("f16",), best.memory.devices, 32768))
    assert est.results[0].fits
    assert best.plan.devices[0].headroom_mib == pytest.approx(ans.ranked[0].headroom_mib, abs=0.01)
    lines = best.launch.splitlines()
    assert lines[0] == "# on idle"
    (run,) = [line for line in lines if not line.startswith("#")]
    assert run.startswith("CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=0 llama-server ")


def test_a_set_never_spans_hosts_and_takes_the_fewest_gpus():
    # a 70B in F16 (141 GB) needs two free 80 GB cards: "a" has them, "b" one free card and one full,
    # "c" two half-full ones; b's free card and one of a's could hold it, but never across hosts
    snap = _fleet({"a": [0.0, 0.0, 80000.0], "b": [0.0, 80000.0], "c": [45000.0, 45000.0]})
    model = resolve_model("llama-3.1-70b")
    ans = where_it_fits(FitRequest(model, "llama.cpp", "F16", "f16", 8192), snap)
    assert [(s.host, s.host_gpus) for s in ans.ranked] == [("a", (0, 1))]
    assert {s.host for s in ans.short} == {"b", "c"}
    plan = ans.best.plan
    assert len(plan.devices) == 2 and plan.fully_offloaded
    assert "--tensor-split" in ans.best.launch and "CUDA_VISIBLE_DEVICES=0,1 " in ans.best.launch
    with pytest.raises(LanderError, match="cannot hold one plan"):
        pm.on_gpus(snap, (0, 3), "free")  # a:0 + b:0


def test_tensor_parallel_sizes_only():
    snap = _fleet({"box": [0.0] * 8})
    model = resolve_model("llama-3.1-70b")
    ans = where_it_fits(FitRequest(model, "vllm", "BF16", "auto", 32768), snap)
    (s,) = ans.ranked
    assert s.size == 4 and s.host_gpus == (0, 1, 2, 3)  # 141 GB of BF16 weights: TP 2 is too small, 3 is not a TP
    assert ans.best.plan.tensor_parallel == 4
    assert "--tensor-parallel-size 4" in ans.best.launch
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3 " in ans.best.launch


def test_an_engine_that_does_not_split_plans_on_summed_memory():
    snap = _fleet({"box": [70000.0, 70000.0, 0.0]})
    model = resolve_model("qwen3-8b")
    ans = where_it_fits(FitRequest(model, "transformers", "BF16", "bf16", 8192), snap)
    assert [s.host_gpus for s in ans.ranked] == [(2,)]
    two = where_it_fits(FitRequest(model, "transformers", "BF16", "bf16", 8192),
                        _fleet({"box": [71000.0, 71000.0]}))
    assert [s.host_gpus for s in two.ranked] == [(0, 1)]
    assert any("summed memory" in n for n in two.best.notes)


def test_on_host_puts_the_gpus_before_the_command():
    ollama = "OLLAMA_CONTEXT_LENGTH=8192 ollama serve\n# or per model, in a Modelfile:\n#   FROM x"
    out = on_host("# weights: a.gguf\n" + ollama, "gpu-b", (3, 5))
    assert out.splitlines()[:3] == ["# on gpu-b", "# weights: a.gguf",
                                    "CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=3,5 OLLAMA_CONTEXT_LENGTH=8192 "
                                    "ollama serve"]
    with pytest.raises(LanderError, match="no GPU numbers"):
        on_host("llama-server", "gpu-b", (None,))


def test_refusals_are_one_line():
    snap = _fleet({"a": [0.0]})
    model = resolve_model("llama-3.1-8b")
    with pytest.raises(LanderError, match="GGUF"):
        where_it_fits(FitRequest(model, "vllm", "Q4_K_M", "auto", 4096), snap)
    with pytest.raises(LanderError, match="fp8"):
        where_it_fits(FitRequest(model, "llama.cpp", "Q4_K_M", "fp8", 4096), snap)
    with pytest.raises(LanderError, match="positive"):
        FitRequest(model, "llama.cpp", "Q4_K_M", "f16", 0)
    failed = Snapshot((), "unreachable", "cannot reach Prometheus at http://x (connection refused)", 1.0)
    with pytest.raises(LanderError, match="connection refused"):
        where_it_fits(FitRequest(model, "llama.cpp", "Q4_K_M", "f16", 4096), failed)


def test_fleet_of_4000_gpus(benchmark):
    """500 hosts x 8 GPUs: every host considered, the answer is the one the per-host loop gives."""
    rng = np.random.default_rng(11)
    hosts = {f"node-{h:03d}": list(rng.choice([0.0, 20000.0, 50000.0, 79000.0], size=8)) for h in range(500)}
    snap = _fleet(hosts)
    model = resolve_model("llama-3.1-70b")
    req = FitRequest(model, "llama.cpp", "Q4_K_M", "q8_0", 32768, margin_mib=512.0)
    ans = benchmark(where_it_fits, req, snap)
    assert ans.hosts == 500 and len(ans.ranked) + len(ans.short) == 500
    for s in ans.ranked[:5] + ans.short[:5]:  # each against its own single estimate
        mem = pm.on_gpus(snap, s.indices, "free", 512.0)
        est = run_estimate(EstimateRequest(model, "llama.cpp", ("Q4_K_M",), ("q8_0",), mem.devices, 32768))
        assert est.results[0].fits == s.fits
