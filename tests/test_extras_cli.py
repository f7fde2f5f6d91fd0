"""`lander-tui estimate` with what loads beside the model: --mmproj/--no-mmproj, --draft, --lora in the text,
the JSON (per result, per plan device, and what was asked), the commands, and one-line errors."""

from __future__ import annotations

import json

import pytest
from support.extras_models import gemma3, mmproj

from lander_tui.cli import main
from lander_tui.core.gguf_file import read_gguf_metadata
from lander_tui.core.vision import clip_compute_bytes, vision_from_mmproj


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["estimate", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_vision_model_shows_its_projector_in_text_and_plan(capsys):
    rc, out, _ = run(capsys, "gemma-3-4b-it", "-q", "Q4_K_M", "-k", "f16", "--what-if", "RTX 4090", "-c", "32k")
    assert rc == 0
    extras = float(out.split("extras_mib: ")[1].split()[0])
    projector = float(out.split("projector_mib: ")[1].split()[0])
    assert extras == projector > 800  # an 812 MiB F16 mmproj and clip's 121 MiB warm-up graph
    assert "note: extras on RTX 4090" in out and "vision projector" in out
    rc, out, _ = run(capsys, "gemma-3-4b-it", "-q", "Q4_K_M", "-k", "f16", "--what-if", "RTX 4090", "-c", "32k",
                     "--no-mmproj")
    assert rc == 0 and "extras_mib: 0.00" in out and "projector_mib" not in out


def test_json_has_the_pieces_per_result_per_device_and_what_was_asked(capsys):
    rc, out, _ = run(capsys, "qwen3-8b", "-q", "Q4_K_M", "-k", "f16", "--what-if", "2x RTX 4090", "-c", "16k",
                     "--draft", "qwen3-0.6b", "--draft-tokens", "5", "--lora", "16x2", "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["extras"] == {"projector": None, "speculative": {"draft": "qwen3-0.6b", "tokens": 5},
                              "lora": {"rank": 16, "count": 2, "file": None}}
    r = data["results"][0]
    assert r["draft_mib"] > 0 and r["lora_mib"] > 0 and r["projector_mib"] == 0
    assert r["extras_mib"] == pytest.approx(r["draft_mib"] + r["lora_mib"], abs=0.02)
    parts = sum(r[k] for k in ("weights_mib", "kv_cache_mib", "compute_mib", "overhead_mib", "extras_mib"))
    assert parts == pytest.approx(r["total_mib"], abs=0.05)
    devs = data["plan"]["devices"]
    assert len(devs) == 2 and all(d["draft_mib"] > 0 for d in devs)  # the draft is split like the model
    assert sum(d["extras_mib"] for d in devs) == pytest.approx(r["extras_mib"], abs=0.05)


def test_a_projector_file_is_read_exactly(capsys, tmp_path):
    path = mmproj(gemma3(layers=2), tmp_path / "mmproj-test.gguf")
    meta, tensors = read_gguf_metadata(path)
    want = (sum(t.nbytes for t in tensors) + clip_compute_bytes(vision_from_mmproj(meta, tensors), True)) / 2**20
    rc, out, _ = run(capsys, "gemma-3-4b-it", "-q", "Q4_K_M", "-k", "f16", "--what-if", "RTX 4090", "-c", "8k",
                     "--mmproj", str(path), "--json", "--launch", "llama.cpp")
    assert rc == 0
    data = json.loads(out)
    assert data["results"][0]["projector_mib"] == pytest.approx(want, abs=0.01)
    assert data["extras"]["projector"]["file"] == str(path.resolve())
    assert f"--mmproj {path.resolve()}" in data["launch"]


@pytest.mark.parametrize("argv, words", [
    (["--draft-tokens", "3"], "--draft-tokens needs --draft"),
    (["--lora", "lots"], "--lora takes RANK"),
    (["--mmproj", "/no/such/mmproj.gguf"], "no such projector file"),
    (["--draft", "no-such-model-anywhere"], "unknown model"),
    (["--draft", "mtp"], "no multi-token-prediction layers"),
])
def test_bad_extras_are_one_line_errors(capsys, argv, words):
    rc, out, err = run(capsys, "qwen3-8b", "-q", "Q4_K_M", "--free-vram", "20000", *argv)
    assert rc != 0 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
