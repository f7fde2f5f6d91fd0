"""llama.cpp front ends allocate differently (engines/llamacpp.py, FRONT_ENDS), checked on real CUDA logs.

Two public logs of the same Qwen3-4B Q4_K_M GGUF (tests/data/ground-truth/wild/llama.cpp-ollama.jsonl):
a recent llama-server at 8k shows a CUDA compute buffer of 85.01 MiB, a program on the C API defaults
(Rust bindings) at 4k shows 301.75 MiB, because only the latter reserves a ubatch of f32 logits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lander_tui.core.catalog import get_model
from lander_tui.core.engines import EngineOptions, get_engine
from lander_tui.core.engines.llamacpp import FRONT_ENDS, logits_rows
from lander_tui.core.errors import LanderError
from lander_tui.core.model_source import ResolvedModel


def _wild(data_dir, rid: str) -> dict:
    for line in (data_dir / "ground-truth" / "wild" / "llama.cpp-ollama.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("id") == rid:
            return row
    raise AssertionError(f"{rid} is not in the wild logs")


@pytest.mark.parametrize("rid, front_end", [("llama.cpp-ollama-019", "llama-server"),
                                            ("llama.cpp-ollama-035", "bindings")])
def test_qwen3_4b_compute_buffer_per_front_end(data_dir, rid, front_end):
    row = _wild(data_dir, rid)
    model = ResolvedModel(get_model("qwen3-4b"), "catalog")
    bd = get_engine("llama.cpp").memory(model, "Q4_K_M", "f16", np.array([row["n_ctx"]]),
                                       EngineOptions(front_end=front_end)).at(0).to_mib()
    measured = row["compute_buffer_mib"]["CUDA0"]
    assert measured <= bd.compute <= measured + 2.0  # never below what llama.cpp allocated
    assert bd.kv == row["kv_buffer_mib"]["CUDA0"]
    assert bd.weights == pytest.approx(row["model_buffer_mib"]["CUDA0"], abs=0.01)


def test_front_end_defaults():
    assert logits_rows("llama-server", 512, 2048, 1) == 1
    assert logits_rows("llama-server", 512, 2048, 4) == 4
    assert logits_rows("bindings", 512, 2048, 4) == 512
    assert logits_rows("llama-cli", 4096, 2048, 1) == 2048
    assert [n for n, f in FRONT_ENDS.items() if f.swa_full] == ["bindings"]
    with pytest.raises(LanderError, match="unknown llama.cpp front end"):  # the llama.cpp engine checks it
        get_engine("llama.cpp").memory(ResolvedModel(get_model("qwen3-4b"), "catalog"), "Q4_K_M", "f16",
                                       np.array([4096]), EngineOptions(front_end="koboldcpp"))


def test_swa_full_follows_the_front_end_unless_set():
    eng = get_engine("llama.cpp")
    model = ResolvedModel(get_model("gemma-3-27b-it"), "catalog")

    def kv(**kw) -> float:
        return eng.memory(model, "Q4_K_M", "f16", np.array([32768]), EngineOptions(**kw)).at(0).to_mib().kv

    assert kv(front_end="bindings") == kv(swa_full=True) > kv() == kv(front_end="bindings", swa_full=False)



def test_the_front_end_and_swa_full_reach_the_estimate_and_the_command(capsys):
    import json

    from commands import parse

    from lander_tui.cli import main

    def row(*flags):
        assert main(["estimate", "gemma-3-4b-it", "--what-if", "RTX 4090", "-q", "Q4_K_M", "-k", "f16",
                     "--context", "32k", "--json", "--launch", "llama.cpp", *flags]) == 0
        data = json.loads(capsys.readouterr().out)
        return data["results"][0], parse(data["launch"], 1).flags

    server, cmd = row()
    bindings, _ = row("--front-end", "bindings")
    full, full_cmd = row("--swa-full", "-np", "2")
    assert bindings["kv_cache_mib"] > server["kv_cache_mib"]  # the C API keeps a full-size SWA cache
    assert "--swa-full" not in cmd and "--swa-full" in full_cmd
    assert "-kvu" in full_cmd and full_cmd["-np"] == "2"  # the plan's one shared cache, as llama-server gets it
