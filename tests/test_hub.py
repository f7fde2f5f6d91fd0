"""Hub search, safetensors model profiles, errors, cache and offline answers.

The real `huggingface_hub` client talks HTTP to the local fake Hub in tests/fakehub.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakehub import FakeHub, hf_llama_tensors, running_fake_hub, safetensors_repo_files
from gguf_fixtures import write_llama_gguf

from lander_tui.core import hub, profile_cache
from lander_tui.core.errors import LanderError
from lander_tui.core.model_spec import from_hf_config
from lander_tui.core.tensors import parameter_count

CFG = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
       "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 512, "max_position_embeddings": 8192,
       "tie_word_embeddings": False, "torch_dtype": "float16"}
QWEN = {**CFG, "model_type": "qwen2", "hidden_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1,
        "intermediate_size": 256, "vocab_size": 300, "tie_word_embeddings": True}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_fake_hub(tmp_path, monkeypatch) as h:
        yield h


def _expected_dtype_params(cfg: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for dt, shape in hf_llama_tensors(cfg).values():
        out[dt] = out.get(dt, 0) + int(np.prod(shape))
    return out


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


# --- search -------------------------------------------------------------------------------------


def _populate(fake: FakeHub, tmp_path: Path) -> None:
    fake.add_repo("org/Tiny-Llama", safetensors_repo_files(CFG), downloads=900, likes=9)
    fake.add_repo("org/tiny-qwen", safetensors_repo_files(QWEN, shards=2), downloads=5000, likes=50)
    gg = write_llama_gguf(tmp_path / "g.gguf")
    fake.add_repo("someone/Tiny-Llama-GGUF", {"Tiny-Llama-Q4_K_M.gguf": gg.read_bytes()}, downloads=300,
                  library_name="gguf")
    fake.add_repo("org/tiny-embedder", safetensors_repo_files(CFG), downloads=10**6,
                  pipeline_tag="feature-extraction")
    fake.add_repo("org/other", safetensors_repo_files(CFG), downloads=10**7)


def test_search_returns_text_generation_models_by_downloads(fake: FakeHub, tmp_path: Path) -> None:
    _populate(fake, tmp_path)
    hits = hub.search_models("tiny", limit=10)
    assert [h.id for h in hits] == ["org/tiny-qwen", "org/Tiny-Llama", "someone/Tiny-Llama-GGUF"]
    by_id = {h.id: h for h in hits}
    assert by_id["org/tiny-qwen"].params == sum(_expected_dtype_params(QWEN).values())
    assert by_id["org/Tiny-Llama"].params == sum(_expected_dtype_params(CFG).values())
    gguf_hit = by_id["someone/Tiny-Llama-GGUF"]
    assert gguf_hit.gguf and not gguf_hit.safetensors and gguf_hit.library == "gguf"
    assert gguf_hit.params is not None and gguf_hit.params > 0
    assert by_id["org/tiny-qwen"].downloads == 5000 and by_id["org/tiny-qwen"].likes == 50
    assert all(h.source == "hub" for h in hits)
    (req,) = fake.requests_to("/api/models")
    assert req.query["pipeline_tag"] == ["text-generation"] and req.query["sort"] == ["downloads"]
    assert req.query["limit"] == ["10"] and "safetensors" in req.query["expand"]


def test_search_limit_is_sent_and_respected(fake: FakeHub, tmp_path: Path) -> None:
    _populate(fake, tmp_path)
    hits = hub.search_models("", limit=2)
    assert [h.id for h in hits] == ["org/other", "org/tiny-qwen"]


def test_search_offline_uses_catalog_and_cache_without_requests(fake: FakeHub, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_repo("org/Tiny-Llama", safetensors_repo_files(CFG))
    hub.resolve_hub_model("org/Tiny-Llama")  # caches a profile
    n = len(fake.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hits = hub.search_models("llama")
    assert len(fake.requests) == n
    assert hits[0].id == "org/Tiny-Llama" and hits[0].source == "cache"
    assert any(h.source == "catalog" and h.id == "meta-llama/Llama-3.1-8B" for h in hits)
    assert all("HF_HUB_OFFLINE" in h.note for h in hits)
    with pytest.raises(LanderError, match="no cached or built-in model matches"):
        hub.search_models("zzzz-nothing-like-this")


def test_search_falls_back_when_hub_is_unreachable(fake: FakeHub) -> None:
    fake.stop()
    hits = hub.search_models("qwen2.5 7b")
    assert hits and all(h.source == "catalog" for h in hits)
    assert "cannot reach the Hub" in hits[0].note
    with pytest.raises(hub.HubUnavailable, match="cannot reach the Hub"):
        hub.search_models("qwen", fallback=False)


def test_search_rate_limited(fake: FakeHub) -> None:
    fake.rate_limited = True
    with pytest.raises(hub.HubUnavailable) as err:
        hub.search_models("qwen", fallback=False)
    msg = _one_line(err)
    assert "429" in msg and "HF_TOKEN" in msg
    hits = hub.search_models("qwen")
    assert hits and hits[0].source == "catalog" and "429" in hits[0].note


# --- safetensors repos --------------------------------------------------------------------------


@pytest.mark.parametrize("shards", [1, 3])
def test_safetensors_repo_profile(fake: FakeHub, shards: int) -> None:
    files = safetensors_repo_files(CFG, shards=shards)
    fake.add_repo("org/tiny", files)
    r = hub.resolve_hub_model("org/tiny")
    assert r.origin == "hub"
    expected = from_hf_config(CFG, name="tiny", hf_repo="org/tiny")
    assert r.spec.to_dict() == expected.to_dict()
    assert r.dtype_params == _expected_dtype_params(CFG) == {"F16": 1441792, "F32": 1280}
    # the safetensors parameters and the config-derived count agree to the unit
    assert sum(r.dtype_params.values()) == parameter_count(r.spec)
    assert r.gguf_files == {} and r.tensors is None
    # only headers were read: ranged GETs, never the whole weight file
    weight_gets = [q for q in fake.requests_to(".safetensors") if q.method == "GET" and "index" not in q.path]
    assert len(weight_gets) == shards and all(q.headers.get("range") == "bytes=0-100000" for q in weight_gets)
    weights = sum(len(v) for k, v in files.items() if k.endswith(".safetensors"))
    assert fake.bytes_served(".safetensors") < weights
    assert profile_cache.profile_path("org/tiny").is_file()


def test_second_look_comes_from_the_cache_without_requests(fake: FakeHub) -> None:
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    first = hub.resolve_hub_model("org/tiny")
    n = len(fake.requests)
    second = hub.resolve_hub_model("org/tiny")
    assert len(fake.requests) == n
    assert second.origin == "cache"
    assert second.spec.to_dict() == first.spec.to_dict() and second.dtype_params == first.dtype_params
    # refresh asks again
    assert hub.resolve_hub_model("org/tiny", refresh=True).origin == "hub"
    assert len(fake.requests) > n


def test_hub_id_through_model_source(fake: FakeHub) -> None:
    from lander_tui.core.model_source import resolve_model

    fake.add_repo("org/tiny-qwen", safetensors_repo_files(QWEN))
    r = resolve_model("org/tiny-qwen")
    assert r.origin == "hub" and r.spec.arch == "qwen2" and r.spec.tie_embeddings and r.spec.qkv_bias
    assert sum(r.dtype_params.values()) == parameter_count(r.spec)


def test_offline_answers_from_cache_then_catalog(fake: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    hub.resolve_hub_model("org/tiny")
    n = len(fake.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.resolve_hub_model("org/tiny").origin == "cache"
    cat = hub.resolve_hub_model("meta-llama/Llama-3.1-8B")
    assert cat.origin == "catalog" and cat.spec.hf_repo == "meta-llama/Llama-3.1-8B"
    assert "HF_HUB_OFFLINE" in cat.detail
    with pytest.raises(LanderError) as err:
        hub.resolve_hub_model("org/never-seen")
    msg = _one_line(err)
    assert "HF_HUB_OFFLINE" in msg and "org/never-seen" in msg
    assert len(fake.requests) == n


def test_offline_constant_of_the_client_is_honoured(fake: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE read by huggingface_hub at import time (not in our env now) still means offline."""
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    with pytest.raises(LanderError, match="HF_HUB_OFFLINE"):
        hub.resolve_hub_model("org/tiny")
    assert hub.resolve_hub_model("meta-llama/Llama-3.1-8B").origin == "catalog"
    assert fake.requests == []


def test_unreachable_hub(fake: FakeHub) -> None:
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    fake.stop()
    with pytest.raises(LanderError) as err:
        hub.resolve_hub_model("org/tiny")
    msg = _one_line(err)
    assert "cannot reach the Hub" in msg and "neither cached nor in the built-in catalog" in msg
    assert hub.resolve_hub_model("Qwen/Qwen2.5-7B").origin == "catalog"


def test_unreachable_hub_uses_an_older_profile(fake: FakeHub) -> None:
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    hub.resolve_hub_model("org/tiny")
    fake.stop()
    r = hub.resolve_hub_model("org/tiny", refresh=True)
    assert r.origin == "cache" and "cannot reach the Hub" in r.detail
    assert r.dtype_params == _expected_dtype_params(CFG)


def test_unknown_repo(fake: FakeHub) -> None:
    with pytest.raises(LanderError) as err:
        hub.resolve_hub_model("org/does-not-exist")
    assert "no model 'org/does-not-exist' on the Hub" in _one_line(err)


def test_gated_repo_without_token_says_how_to_set_it(fake: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_repo("meta/gated", safetensors_repo_files(CFG), gated="manual")
    with pytest.raises(LanderError) as err:
        hub.resolve_hub_model("meta/gated")
    msg = _one_line(err)
    assert "gated" in msg and "HF_TOKEN=" in msg and f"{fake.url}/meta/gated" in msg
    # a token without access: 403
    fake.known_tokens.add("hf_noaccess")
    monkeypatch.setenv("HF_TOKEN", "hf_noaccess")
    with pytest.raises(LanderError, match="no access yet"):
        hub.resolve_hub_model("meta/gated")
    # an approved token works, and is sent as a bearer token
    fake.tokens.add("hf_ok")
    monkeypatch.setenv("HF_TOKEN", "hf_ok")
    r = hub.resolve_hub_model("meta/gated")
    assert r.origin == "hub" and r.dtype_params == _expected_dtype_params(CFG)
    assert fake.requests[-1].headers.get("authorization") == "Bearer hf_ok"


def test_repo_without_config_or_gguf(fake: FakeHub) -> None:
    fake.add_repo("org/weights-only", {"README.md": b"hi", "pytorch_model.bin": b"\0" * 100})
    with pytest.raises(LanderError, match="no config.json and no .gguf file"):
        hub.resolve_hub_model("org/weights-only")


def test_rate_limit_message_and_cache_fallback(fake: FakeHub) -> None:
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    fake.rate_limited = True
    with pytest.raises(LanderError) as err:
        hub.resolve_hub_model("org/tiny")
    assert "429" in _one_line(err)
    fake.rate_limited = False
    hub.resolve_hub_model("org/tiny")
    fake.rate_limited = True
    r = hub.resolve_hub_model("org/tiny", refresh=True)
    assert r.origin == "cache" and "429" in r.detail


def test_quant_suffix_on_a_safetensors_repo(fake: FakeHub) -> None:
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    with pytest.raises(LanderError, match="has no .gguf files"):
        hub.resolve_hub_model("org/tiny:Q4_K_M")


def test_bad_hub_ids() -> None:
    for bad in ("org/name/extra", "org name", "org/na me"):
        with pytest.raises(LanderError, match="not a Hub id"):
            hub.resolve_hub_model(bad)


def test_no_telemetry_request_even_when_the_client_would_send_one(fake: FakeHub,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub fetches /api/agent-harnesses unless telemetry is off; lander-tui turns it off."""
    import huggingface_hub.constants as c

    monkeypatch.delenv("HF_HUB_DISABLE_TELEMETRY", raising=False)
    monkeypatch.setattr(c, "HF_HUB_DISABLE_TELEMETRY", False)
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    hub.resolve_hub_model("org/tiny")
    hub.search_models("tiny")
    assert fake.requests_to("agent-harnesses") == []
    paths = {q.path for q in fake.requests}
    assert paths <= {"/api/models", "/api/models/org/tiny", "/org/tiny/resolve/main/config.json",
                     "/org/tiny/resolve/main/model.safetensors"}


# --- the profile cache --------------------------------------------------------------------------


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LANDER_TUI_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert profile_cache.cache_dir() == tmp_path / "xdg" / "lander-tui"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert profile_cache.cache_dir() == Path.home() / ".cache" / "lander-tui"
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "mine"))
    assert profile_cache.cache_dir() == tmp_path / "mine"


def test_damaged_cache_file_is_a_miss(fake: FakeHub) -> None:
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    hub.resolve_hub_model("org/tiny")
    path = profile_cache.profile_path("org/tiny")
    path.write_text("{ not json")
    assert profile_cache.load_profile("org/tiny") is None
    assert hub.resolve_hub_model("org/tiny").origin == "hub"  # fetched again, and rewritten
    data = json.loads(path.read_text())
    data["spec"] = {"name": "x"}  # malformed spec
    path.write_text(json.dumps(data))
    assert profile_cache.load_profile("org/tiny") is None
    data["version"] = 999
    path.write_text(json.dumps(data))
    assert profile_cache.load_profile("org/tiny") is None


def test_cli_estimate_with_a_hub_id(fake: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("lander_tui.cli")
    pytest.importorskip("lander_tui.commands.estimate")
    fake.add_repo("org/tiny", safetensors_repo_files(CFG))
    code = cli.main(["estimate", "org/tiny", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    data = json.loads(out.out)
    assert data["model"] == "tiny" and data["params"] == sum(_expected_dtype_params(CFG).values())
    assert fake.requests_to("/api/models/org/tiny")
    # a second run is served from the cache
    n = len(fake.requests)
    assert cli.main(["estimate", "org/tiny", "--json"]) == 0
    assert len(fake.requests) == n


def test_cli_estimate_errors_are_one_line(fake: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("lander_tui.cli")
    pytest.importorskip("lander_tui.commands.estimate")
    fake.add_repo("meta/gated", safetensors_repo_files(CFG), gated="auto")
    assert cli.main(["estimate", "meta/gated", "--json"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "HF_TOKEN" in err and "Traceback" not in err
