"""The dashboard's form state, without Textual: parsing, validation, memory, shortcuts."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from lander_tui.core import planning_memory as pm
from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import GpuInfo, Snapshot
from lander_tui.core.model_source import resolve_model
from lander_tui.ui import form as state
from lander_tui.ui.form import FormValues

UI = Path(__file__).resolve().parent.parent / "lander_tui" / "ui"


def gpu(index: int, free: float, total: float = 81559.0, reserved: float = 480.0, **kw) -> GpuInfo:
    return GpuInfo(index=index, name="NVIDIA H100 80GB HBM3", uuid=f"GPU-{index}", cuda_index=index,
                   total_mib=total, used_mib=total - free - reserved, free_mib=free, reserved_mib=reserved, **kw)


def snap(*gpus: GpuInfo, taken_at: float = 1.0) -> Snapshot:
    return Snapshot(tuple(gpus), "ok", "", taken_at)


@pytest.fixture(scope="module")
def model():
    return resolve_model("llama-3.1-8b")


def test_pure_modules_never_import_textual():
    for name in ("form.py", "text.py", "chart_data.py", "plan_text.py", "live_plan.py"):
        tree = ast.parse((UI / name).read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not mods & {"textual", "textual_plotext", "rich"}, name


@pytest.mark.parametrize("text,tokens", [("", None), ("32768", 32768), ("32k", 32768), ("128K", 131072),
                                         ("1M", 1 << 20), ("131,072", 131072), (" 8k ", 8192), ("1.5k", 1536)])
def test_parse_tokens(text, tokens):
    assert state.parse_tokens(text) == tokens


@pytest.mark.parametrize("text", ["abc", "32kk", "-5", "0", "0.5", "100M"])
def test_parse_tokens_rejects(text):
    with pytest.raises(ValueError):
        state.parse_tokens(text)


@pytest.mark.parametrize("text,mib", [("", 0.0), ("512", 512.0), ("1.5G", 1536.0), ("2GiB", 2048.0), ("300M", 300.0)])
def test_parse_mib(text, mib):
    assert state.parse_mib(text) == mib


def test_valid_form_has_no_errors():
    assert state.field_errors(FormValues()) == {}
    assert state.field_errors(FormValues(quants="Q4_K_M, Q8_0", kv_types="f16 q8_0", context="64k", parallel="4",
                                         margin="1G")) == {}


@pytest.mark.parametrize("field,value,words", [
    ("quants", "Q4_K_M,Q9_X", "Q9_X"),
    ("kv_types", "f17", "f17"),
    ("context", "lots", "tokens"),
    ("parallel", "0", "1 to 4096"),
    ("parallel", "two", "1 to 4096"),
    ("margin", "much", "MiB"),
])
def test_each_field_says_what_is_wrong(field, value, words):
    errors = state.field_errors(replace(FormValues(), **{field: value}))
    assert list(errors) == [field]
    assert words in errors[field]


def test_what_if_is_checked_only_in_what_if_mode():
    assert state.field_errors(FormValues(what_if="no such card")) == {}
    errors = state.field_errors(FormValues(memory="what-if", what_if="no such card"))
    assert "no such card" in errors["what_if"]
    assert "what_if" in state.field_errors(FormValues(memory="what-if", what_if=""))


def test_free_now_is_the_selected_gpus_free_minus_margin():
    s = snap(gpu(0, 10000), gpu(1, 26000))
    one = state.planning_memory(FormValues(gpus=(1,), margin="512"), s)
    assert one.free_mib == 26000 - 512 and one.total_mib == 81559
    both = state.planning_memory(FormValues(gpus=(0, 1), margin="1G"), s)
    assert both.free_mib == 36000 - 1024 and both.total_mib == 2 * 81559 and len(both.devices) == 2
    with pytest.raises(LanderError, match="all of the 10,000 MiB free on GPU 0"):
        state.planning_memory(FormValues(gpus=(0,), margin="20000"), s)  # D10: not 0 MiB to plan on


def test_no_choice_yet_takes_the_gpu_with_most_free_memory():
    s = snap(gpu(0, 10000), gpu(1, 26000), gpu(2, 5000))
    assert pm.freest_gpu(s) == (1,)
    assert state.planning_memory(FormValues(margin="0"), s).free_mib == 26000


def test_whole_gpu_is_total_minus_the_driver_reserve_and_ignores_margin():
    m = state.planning_memory(FormValues(memory="whole", gpus=(0,), margin="4096"), snap(gpu(0, 1000)))
    assert m.free_mib == 81559 - 480 and m.total_mib == 81559


def test_what_if_uses_the_catalog_usable_memory():
    from lander_tui.core.gpu import what_if

    w = what_if("2x A100 80GB")
    m = state.planning_memory(FormValues(memory="what-if", what_if="2x A100 80GB"), None)
    assert m.free_mib == w.usable_mib and len(m.devices) == 2 and "what-if" in m.label


def test_memory_errors_are_one_actionable_line():
    with pytest.raises(Exception, match="waiting"):
        state.planning_memory(FormValues(), None)
    bad = Snapshot((), "library_missing", "no NVIDIA driver here", 1.0)
    with pytest.raises(Exception, match="press w"):
        state.planning_memory(FormValues(), bad)
    lost = snap(gpu(0, 1000, lost=True, note="GPU is lost"))
    with pytest.raises(Exception, match="lost"):
        state.planning_memory(FormValues(gpus=(0,)), lost)


def test_small_changes_of_free_memory_keep_the_plan():
    s1 = state.planning_memory(FormValues(gpus=(0,)), snap(gpu(0, 20000)))
    s2 = state.planning_memory(FormValues(gpus=(0,)), snap(gpu(0, 20000 - 40)))
    s3 = state.planning_memory(FormValues(gpus=(0,)), snap(gpu(0, 20000 - 400)))
    assert pm.settle(s1, s2) is s1
    assert pm.settle(s1, s3) is s3
    other = state.planning_memory(FormValues(gpus=(1,)), snap(gpu(0, 20000), gpu(1, 20000 - 10)))
    assert pm.settle(s1, other) is other  # another GPU is never "the same"


def test_build_plan_makes_one_request(model):
    form = FormValues(engine="vllm", quants="FP8", kv_types="fp8", context="32k", parallel="2", flash_attn="on",
                      gpus=(0,), margin="0")
    plan = state.build_request(form, model, snap(gpu(0, 30000)))
    req = plan.request
    assert plan.ok and plan.errors == {} and len(req.devices) == 1
    assert (req.engine, req.quants, req.kv_types, req.context) == ("vllm", ("FP8",), ("fp8",), 32768)
    assert (req.free_mib, req.total_mib) == (30000, 81559)
    assert req.options.n_parallel == 2 and req.options.flash_attn is True
    assert state.build_request(form, model, snap(gpu(0, 30000))).request == req  # same inputs, equal request


def test_several_gpus_plan_each_gpu_share_except_for_transformers(model):
    s = snap(gpu(0, 10000), gpu(2, 26000))
    plan = state.build_request(FormValues(gpus=(0, 2), margin="1000"), model, s)
    mem = plan.memory
    assert mem.indices == (0, 2) and mem.live
    assert [(d.free_mib, d.total_mib) for d in plan.request.devices] == [(9500, 81559), (25500, 81559)]
    assert plan.request.free_mib == 35000  # the summed budget is still what the rows are shown against
    hf = state.build_request(FormValues(engine="transformers", gpus=(0, 2)), model, s)
    merged = hf.request.devices  # Transformers does not split: one device with the GPUs' summed memory
    assert [(d.free_mib, d.total_mib) for d in merged] == [(36000 - 512, 2 * 81559)] and "device_map" in hf.notes[0]
    one = state.build_request(FormValues(gpus=(2,)), model, s)
    assert len(one.request.devices) == 1 and one.memory.indices == (2,)
    whole = state.planning_memory(FormValues(memory="whole", gpus=(0,)), s)
    wi = state.planning_memory(FormValues(memory="what-if", what_if="2x A100 80GB"), s)
    assert not whole.live and not wi.live and wi.indices == ()


def test_build_plan_reports_every_problem_and_no_request(model):
    plan = state.build_request(FormValues(quants="Q9", context="x"), None, None)
    assert plan.request is None
    assert set(plan.errors) == {"quants", "context", "memory", "model"}


def test_engine_switch_keeps_what_was_typed_per_engine():
    saved: dict[str, tuple[str, str]] = {}
    f = FormValues(quants="Q5_K_M", kv_types="q4_0")
    f = state.switch_engine(f, "vllm", saved)
    assert (f.engine, f.quants, f.kv_types) == ("vllm", "", "")
    f = replace(f, quants="AWQ")
    f = state.switch_engine(f, "llama.cpp", saved)
    assert (f.quants, f.kv_types) == ("Q5_K_M", "q4_0")
    f = state.switch_engine(f, "vllm", saved)
    assert f.quants == "AWQ"


def test_next_engine_and_kv_cycle():
    saved: dict[str, tuple[str, str]] = {}
    f = FormValues()
    seen = []
    for _ in range(5):
        f = state.next_engine(f, saved)
        seen.append(f.engine)
    assert seen == ["ollama", "vllm", "sglang", "transformers", "llama.cpp"]
    kvs = []
    for _ in range(4):
        f = state.next_kv(f)
        kvs.append(f.kv_types)
    assert kvs == ["f16", "q8_0", "q4_0", ""]


def test_context_steps_are_powers_of_two():
    f = FormValues()
    assert state.step_context(f, 131072, up=False).context == "64k"
    assert state.step_context(f, 131072, up=True).context == "256k"
    assert state.step_context(FormValues(context="100000"), 131072, up=True).context == "128k"
    assert state.step_context(FormValues(context="100000"), 131072, up=False).context == "64k"
    assert state.step_context(FormValues(context="1k"), 131072, up=False).context == "1k"


def test_g_cycles_each_gpu_then_all():
    s = snap(gpu(0, 10000), gpu(1, 26000), gpu(2, 1000, lost=True))
    f = FormValues(gpus=(1,))
    seen = []
    for _ in range(3):
        f = state.next_gpu_choice(f, s)
        seen.append(f.gpus)
    assert seen == [(0, 1), (0,), (1,)]  # the lost GPU is never offered
    back = state.next_gpu_choice(FormValues(memory="what-if", what_if="RTX 4090", gpus=(1,)), s)
    assert back.memory == "free" and back.gpus == (1,)


def test_toggle_gpu_never_empties_the_selection():
    f = state.toggle_gpu(FormValues(gpus=(0,)), 1)
    assert f.gpus == (0, 1)
    f = state.toggle_gpu(f, 0)
    assert f.gpus == (1,)
    assert state.toggle_gpu(f, 1).gpus == (1,)
