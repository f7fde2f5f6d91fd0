"""GGUF repos on the Hub: quant files and sizes, split sets, header reads by HTTP range requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import FakeHub, running_fake_hub
from gguf_fixtures import write_llama_gguf, write_moe_gguf
from support.extras_models import gemma3, mmproj

from lander_tui.core import hub, profile_cache
from lander_tui.core.errors import LanderError
from lander_tui.core.gguf_file import read_gguf, read_gguf_metadata
from lander_tui.core.hub import gguf_quant_of, group_gguf_files, pick_mmproj
from lander_tui.core.vision import vision_from_mmproj


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_fake_hub(tmp_path, monkeypatch) as h:
        yield h


def _info(g) -> list[tuple]:
    return [(t.name, t.row, t.rows, t.n_experts, t.ggml_type, t.nbytes) for t in g.tensors]


@pytest.fixture
def gguf_repo(fake: FakeHub, tmp_path: Path) -> dict:
    """A GGUF-only repo: Q4_K_M and Q8_0 single files, a Q2_K split into 3 parts, a vision projector."""
    src = tmp_path / "src"
    src.mkdir()
    q4 = write_llama_gguf(src / "q4.gguf", vocab=3000, file_type="Q4_K_M")
    proj = mmproj(gemma3(layers=1, image_size=56, hidden=64, ff=128, heads=2, text_hidden=256), src / "mmproj.gguf")
    q8 = write_moe_gguf(src / "q8.gguf", file_type="Q8_0")
    (src / "split").mkdir()
    q2_first = write_llama_gguf(src / "split" / "q2.gguf", split_max_tensors=8, file_type="Q2_K")
    parts = sorted((src / "split").glob("q2-*.gguf"))
    files = {
        "README.md": b"# GGUF\n",
        "Tiny-Model-Q4_K_M.gguf": q4.read_bytes(),
        "Tiny-Model-Q8_0.gguf": q8.read_bytes(),
        "mmproj-Tiny-Model-f16.gguf": proj.read_bytes(),
    }
    for i, p in enumerate(parts, 1):
        files[f"Q2_K/Tiny-Model-Q2_K-{i:05d}-of-{len(parts):05d}.gguf"] = p.read_bytes()
    fake.add_repo("someone/Tiny-Model-GGUF", files, library_name="gguf")
    return {"q4": q4, "q8": q8, "q2": q2_first, "parts": parts, "files": files, "mmproj": proj}


def test_quant_names_from_file_names() -> None:
    cases = {
        "Qwen3-8B-Q4_K_M.gguf": "Q4_K_M",
        "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf": "Q4_K_M",
        "gemma-3-1b-it-BF16.gguf": "BF16",
        "Llama-3.2-1B-Instruct-IQ4_XS.gguf": "IQ4_XS",
        "DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf": "UD-IQ1_S",
        "gpt-oss-20b-mxfp4.gguf": "MXFP4",
        "Q4_K_M/Model-Q4_K_M-00002-of-00002.gguf": "Q4_K_M",
        "ggml-model-f16.gguf": "F16",
        "Qwen3-30B-A3B-Q8_0.gguf": "Q8_0",
        "model.gguf": "model",
    }
    for name, quant in cases.items():
        assert gguf_quant_of(name) == quant, name


def test_grouping_sums_split_parts_and_skips_projectors() -> None:
    sizes: dict[str, int | None] = {
        "m-Q4_K_M.gguf": 100,
        "Q8_0/m-Q8_0-00001-of-00002.gguf": 60,
        "Q8_0/m-Q8_0-00002-of-00002.gguf": 50,
        "mmproj-m-f16.gguf": 7,
        "config.json": 1,
        "other/m-Q4_K_M.gguf": 101,
    }
    groups = group_gguf_files(sizes)
    assert groups["Q8_0"] == [("Q8_0/m-Q8_0-00001-of-00002.gguf", 60), ("Q8_0/m-Q8_0-00002-of-00002.gguf", 50)]
    assert {k: sum(s for _, s in v) for k, v in groups.items()} == {"Q4_K_M": 100, "Q8_0": 110, "m-Q4_K_M": 101}


def test_gguf_repo_lists_quants_and_reads_the_default_header(fake: FakeHub, gguf_repo: dict) -> None:
    r = hub.resolve_hub_model("someone/Tiny-Model-GGUF")
    files = gguf_repo["files"]
    assert r.gguf_files == {
        "Q4_K_M": len(files["Tiny-Model-Q4_K_M.gguf"]),
        "Q8_0": len(files["Tiny-Model-Q8_0.gguf"]),
        "Q2_K": sum(len(v) for k, v in files.items() if k.startswith("Q2_K/")),
    }
    # no config.json: the shape comes from the default quant's header, read from the Hub
    local = read_gguf(gguf_repo["q4"])
    assert r.file_quant == "Q4_K_M" and _info(r) == _info(local)
    assert r.spec.arch == "llama" and r.spec.hf_repo == "someone/Tiny-Model-GGUF"
    assert r.spec.n_layers == local.spec.n_layers and r.spec.exact_params == local.spec.exact_params
    assert r.spec.vocab_size == 3000
    # the vision projector llama-server -hf would load beside it: its header only, by range requests
    meta, tensors = read_gguf_metadata(gguf_repo["mmproj"])
    assert r.projector is not None and r.projector.ref == "mmproj-Tiny-Model-f16.gguf" and not r.projector.local
    assert r.projector.tensors == tensors and r.projector.nbytes == sum(t.nbytes for t in tensors)
    assert r.projector.vision == vision_from_mmproj(meta, tensors)
    mm = [q for q in fake.requests if "mmproj" in q.path]
    assert mm and all(q.method == "GET" and q.headers.get("range", "").startswith("bytes=0-") for q in mm)
    # ... and from the cache the next time, without asking the Hub
    n = len(fake.requests)
    again = hub.resolve_hub_model("someone/Tiny-Model-GGUF")
    assert again.projector == r.projector and len(fake.requests) == n


def test_quant_suffix_picks_the_file(fake: FakeHub, gguf_repo: dict) -> None:
    r = hub.resolve_hub_model("someone/Tiny-Model-GGUF:q8_0")
    local = read_gguf(gguf_repo["q8"])
    assert r.file_quant == "Q8_0" and _info(r) == _info(local)
    # no config.json: the shape comes from the file picked, so shape and tensors always agree
    assert r.spec.arch == "qwen3_moe" and r.spec.moe is not None and r.spec.exact_params == local.spec.exact_params
    reads = [q.path for q in fake.requests if q.method == "GET" and q.path.endswith(".gguf")]
    assert reads == ["/someone/Tiny-Model-GGUF/resolve/main/Tiny-Model-Q8_0.gguf",  # the quant asked for ...
                     "/someone/Tiny-Model-GGUF/resolve/main/mmproj-Tiny-Model-f16.gguf"]  # ... and its projector


def test_split_quant_reads_every_part(fake: FakeHub, gguf_repo: dict) -> None:
    r = hub.resolve_hub_model("someone/Tiny-Model-GGUF:Q2_K")
    local = read_gguf(gguf_repo["q2"])  # merges the local parts
    assert local.split_count == 3
    assert r.file_quant == "Q2_K" and _info(r) == _info(local)
    parts_read = {q.path.rsplit("/", 1)[-1] for q in fake.requests if q.path.endswith(".gguf")}
    assert parts_read >= {f"Tiny-Model-Q2_K-0000{i}-of-00003.gguf" for i in (1, 2, 3)}


def test_unknown_quant_lists_what_exists(fake: FakeHub, gguf_repo: dict) -> None:
    with pytest.raises(LanderError) as err:
        hub.resolve_hub_model("someone/Tiny-Model-GGUF:Q5_K_M")
    msg = str(err.value)
    assert "no Q5_K_M GGUF file" in msg and "Q4_K_M" in msg and "Q2_K" in msg and "\n" not in msg


def test_header_is_read_with_growing_range_requests(fake: FakeHub, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    big = write_llama_gguf(tmp_path / "big.gguf", vocab=6000, hidden=512, ff=1536, n_layers=4)
    data = big.read_bytes()
    fake.add_repo("org/Big-GGUF", {"Big-Q4_K_M.gguf": data})
    monkeypatch.setattr(hub, "GGUF_FIRST_BYTES", 16 << 10)
    r = hub.resolve_hub_model("org/Big-GGUF:Q4_K_M")
    local = read_gguf(big)
    assert _info(r) == _info(local)
    gets = [q for q in fake.requests if q.method == "GET" and q.path.endswith(".gguf")]
    assert len(gets) >= 2  # the first 16 KiB were not enough for 6000 token strings
    assert all(q.headers.get("range", "").startswith("bytes=") for q in gets)
    # ranges continue where the last one ended: no byte is fetched twice
    starts = [int(q.headers["range"][6:].split("-")[0]) for q in gets]
    ends = [int(q.headers["range"].split("-")[1]) for q in gets]
    assert starts[0] == 0 and all(s == e + 1 for s, e in zip(starts[1:], ends[:-1], strict=True))
    served = fake.bytes_served(".gguf")
    assert local.data_offset <= served < len(data) // 2


def test_server_that_ignores_range_still_works(fake: FakeHub, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    big = write_llama_gguf(tmp_path / "big.gguf", vocab=4000)
    fake.add_repo("org/Big-GGUF", {"Big-Q4_K_M.gguf": big.read_bytes()})
    fake.ignore_range = True
    monkeypatch.setattr(hub, "GGUF_FIRST_BYTES", 8 << 10)
    r = hub.resolve_hub_model("org/Big-GGUF")
    assert _info(r) == _info(read_gguf(big))


def test_truncated_gguf_on_the_hub(fake: FakeHub, tmp_path: Path) -> None:
    data = write_llama_gguf(tmp_path / "m.gguf", vocab=2000).read_bytes()
    fake.add_repo("org/Cut-GGUF", {"Cut-Q4_K_M.gguf": data[:5000]})
    with pytest.raises(LanderError) as err:
        hub.resolve_hub_model("org/Cut-GGUF")
    assert "truncated" in str(err.value) and "\n" not in str(err.value)


def test_gguf_repo_with_config_json_keeps_the_config_spec(fake: FakeHub, tmp_path: Path) -> None:
    import json

    cfg = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 512,
           "max_position_embeddings": 131072}
    data = write_llama_gguf(tmp_path / "m.gguf").read_bytes()
    fake.add_repo("org/Both", {"config.json": json.dumps(cfg).encode(), "both-Q4_K_M.gguf": data})
    plain = hub.resolve_hub_model("org/Both")
    assert plain.tensors is None and plain.gguf_files == {"Q4_K_M": len(data)}
    assert plain.spec.max_context == 131072  # from config.json, not the header's 4096
    picked = hub.resolve_hub_model("org/Both:Q4_K_M")
    assert picked.spec.max_context == 131072 and picked.file_quant == "Q4_K_M" and picked.tensors


def test_gguf_headers_are_cached_per_quant(fake: FakeHub, gguf_repo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    first = hub.resolve_hub_model("someone/Tiny-Model-GGUF:Q8_0")
    n = len(fake.requests)
    again = hub.resolve_hub_model("someone/Tiny-Model-GGUF:Q8_0")
    assert len(fake.requests) == n and again.origin == "cache" and _info(again) == _info(first)
    assert again.spec.to_dict() == first.spec.to_dict()
    assert again.gguf_files == first.gguf_files
    assert profile_cache.gguf_header_path("someone/Tiny-Model-GGUF", "Q8_0").is_file()
    # another quant needs its header: online it is fetched ...
    other = hub.resolve_hub_model("someone/Tiny-Model-GGUF:Q4_K_M")
    assert other.origin == "hub" and other.file_quant == "Q4_K_M" and other.spec.arch == "llama"
    # the cached Q8_0 look still pairs the Q8_0 tensors with the Q8_0 file's own shape
    back = hub.resolve_hub_model("someone/Tiny-Model-GGUF:Q8_0")
    assert back.origin == "cache" and back.spec.arch == "qwen3_moe" and _info(back) == _info(first)
    # ... offline, the profile answers without tensor types, and says so
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    off = hub.resolve_hub_model("someone/Tiny-Model-GGUF:Q2_K")
    assert off.origin == "cache" and off.tensors is None and "Q2_K header is not cached" in off.detail
    assert off.gguf_files == first.gguf_files


def test_search_marks_gguf_repos(fake: FakeHub, gguf_repo: dict) -> None:
    (hit,) = hub.search_models("Tiny-Model")
    assert hit.gguf and hit.library == "gguf"
    # the Hub's own `gguf.total` (the fake computes it with gguf.GGUFReader) is passed through
    assert hit.params == fake.repos["someone/tiny-model-gguf"].gguf["total"] > 0


def test_cli_estimate_with_a_gguf_quant(fake: FakeHub, gguf_repo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("lander_tui.cli")
    pytest.importorskip("lander_tui.commands.estimate")
    import json

    assert cli.main(["estimate", "someone/Tiny-Model-GGUF:Q4_K_M", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == read_gguf(gguf_repo["q4"]).spec.exact_params
    assert any(row["quant"] == "Q4_K_M" and row["exact_weights"] for row in data["results"])


def test_a_quant_added_after_caching_is_fetched(fake: FakeHub, tmp_path: Path) -> None:
    q4 = write_llama_gguf(tmp_path / "a.gguf").read_bytes()
    fake.add_repo("org/Grow-GGUF", {"m-Q4_K_M.gguf": q4})
    assert hub.resolve_hub_model("org/Grow-GGUF").gguf_files == {"Q4_K_M": len(q4)}
    q8 = write_llama_gguf(tmp_path / "b.gguf", file_type="Q8_0").read_bytes()
    fake.add_repo("org/Grow-GGUF", {"m-Q4_K_M.gguf": q4, "m-Q8_0.gguf": q8})
    r = hub.resolve_hub_model("org/Grow-GGUF:Q8_0")
    assert r.origin == "hub" and r.file_quant == "Q8_0" and set(r.gguf_files) == {"Q4_K_M", "Q8_0"}


def test_offline_quant_errors_come_from_the_cached_file_list(fake: FakeHub, gguf_repo: dict,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from fakehub import safetensors_repo_files
    from test_hub import CFG

    fake.add_repo("org/plain", safetensors_repo_files(CFG))
    hub.resolve_hub_model("org/plain")
    hub.resolve_hub_model("someone/Tiny-Model-GGUF")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LanderError, match="has no .gguf files"):
        hub.resolve_hub_model("org/plain:Q4_K_M")
    with pytest.raises(LanderError, match=r"no IQ2_XS GGUF file; it has: .*Q4_K_M"):
        hub.resolve_hub_model("someone/Tiny-Model-GGUF:IQ2_XS")


def test_the_projector_llama_server_would_pick() -> None:
    """common/download.cpp `find_best_sibling`: the model's folder (or one above), then the closest bits."""
    files = ["mmproj-m-F32.gguf", "mmproj-m-F16.gguf", "mmproj-m-BF16.gguf", "other/mmproj-m-Q8_0.gguf"]
    assert pick_mmproj(files, "m-Q4_K_M.gguf") == "mmproj-m-F16.gguf"  # 16 is closer to 4 than 32; first of a tie
    assert pick_mmproj(files, "m-Q8_0.gguf") == "mmproj-m-F16.gguf"  # other/ is not above the model's folder
    assert pick_mmproj(files, "other/m-Q8_0.gguf") == "other/mmproj-m-Q8_0.gguf"  # the deeper folder first
    assert pick_mmproj(files, "m-F32.gguf") == "mmproj-m-F32.gguf"
    assert pick_mmproj([], "m-Q4_K_M.gguf") is None
