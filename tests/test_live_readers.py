"""Reading engines: every recorded engine version through the real client, parser and reader, and
every failure state (slow, dead, 401, malformed, loading) reported as that state, in place.

The servers are real loopback HTTP servers answering with the recorded answers in tests/data/live
(each composed from the engine's source at the commit its routes.json names). Expected values are
read from those same files, so a reader that looks at the wrong field fails.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from live_fake_server import DATA
from live_fakes import FakeEngine, dead_url, fresh_readers  # noqa: F401 - the fixture

from lander_tui.core.live import (
    AUTH,
    DEAD,
    LOADING,
    MALFORMED,
    OK,
    SLOW,
    Endpoint,
    LiveClient,
    LivePoller,
    read_all,
    read_endpoint,
)
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.metrics import parse_metrics
from lander_tui.core.live.poller import with_rate

pytestmark = pytest.mark.usefixtures("fresh_readers")


RECORDINGS = sorted((p.parent.parent.name, p.parent.name) for p in DATA.glob("*/*/routes.json"))


def _load(kind: str, version: str, name: str):
    path = DATA / kind / version / name
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()


@pytest.fixture
def client():
    c = LiveClient(connect_s=0.2, read_s=0.3, total_s=0.6)  # fast failures; the fakes answer in ms
    yield c
    c.close()


def test_every_engine_kind_has_a_recording():
    from lander_tui.core.live import kinds

    assert {k for k, _ in RECORDINGS} == set(kinds())
    two = {"llama-server", "ollama", "vllm", "sglang", "tgi", "xllm"}  # versions whose fields differ
    assert all(sum(1 for k, _ in RECORDINGS if k == kind) >= 2 for kind in two)


@pytest.mark.parametrize(("kind", "version"), RECORDINGS)
def test_a_bare_url_is_identified_as_its_engine(client, kind, version):
    with FakeEngine(kind, version) as f:
        st = read_endpoint(client, Endpoint(None, f.url))
    assert st.kind == kind
    assert st.state in (OK, LOADING), st.message


# --- field by field, per engine version ----------------------------------------------------------


@pytest.mark.parametrize("version", ["2026", "2025-02"])
def test_llama_server_props_slots_metrics(client, version, tmp_path):
    props = _load("llama-server", version, "props.json")
    slots = _load("llama-server", version, "slots.json")
    metrics = parse_metrics(_load("llama-server", version, "metrics.txt"))
    model = str(tmp_path / "m.gguf")
    proc = ProcessView(4242, ("llama-server", "-m", model, "-c", "16384", "-np", str(props["total_slots"]),
                              "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "--metrics"))
    with FakeEngine("llama-server", version, model_path=model) as f:
        st = read_endpoint(client, Endpoint("llama-server", f.url, proc))
    assert st.state == OK, st.message
    assert st.version == props["build_info"]
    assert st.pid == 4242
    (m,) = st.models
    assert m.config.model == model  # /props model_path, with {{MODEL_PATH}} filled in
    assert m.config.context == props["default_generation_settings"]["n_ctx"]
    assert m.config.parallel == st.slots_total == props["total_slots"]
    assert m.config.kv_cells == 16384 and m.config.kv_unified is False  # -c and an explicit -np
    assert (m.config.kv_type, m.config.flash_attn) == ("q8_0", True)
    assert st.slots_busy == sum(1 for s in slots if s["is_processing"])
    assert st.tokens_total == metrics.value("llamacpp:tokens_predicted_total")
    assert st.running == metrics.value("llamacpp:requests_processing")
    assert st.waiting == metrics.value("llamacpp:requests_deferred")
    if "llamacpp:kv_cache_usage_ratio" in metrics:  # builds before PR #13660 said it themselves
        assert st.kv_used == metrics.value("llamacpp:kv_cache_usage_ratio")
    else:  # later: the tokens cached in the slots over the cells allocated
        assert st.kv_used == pytest.approx(sum(s.get("n_prompt_tokens", 0) for s in slots) / 16384)


def test_llama_server_without_metrics_or_slots_still_reads_and_says_why(client):
    off = json.dumps({"error": {"code": 501, "message": "This server does not support metrics endpoint. "
                                "Start it with `--metrics`", "type": "not_supported_error"}})
    overrides = {"GET /metrics": (501, off), "GET /slots": (501, off)}
    with FakeEngine("llama-server", "2026", overrides=overrides) as f:
        st = read_endpoint(client, Endpoint("llama-server", f.url))
    assert st.state == OK
    assert st.tokens_total is None and st.slots_busy is None
    assert any("--metrics" in n for n in st.notes) and any("--no-slots" in n for n in st.notes)


@pytest.mark.parametrize("version", ["2026", "2024"])
def test_ollama_ps_and_show(client, version, tmp_path):
    ps = _load("ollama", version, "ps.json")["models"][0]
    blob = str(tmp_path / "blobs" / "sha256-abc")
    serve = ProcessView(7, ("ollama", "serve"), {"OLLAMA_NUM_PARALLEL": "3", "OLLAMA_KV_CACHE_TYPE": "q8_0"})
    with FakeEngine("ollama", version, model_path=blob) as f:
        st = read_endpoint(client, Endpoint("ollama", f.url, serve))
        asked = list(f.requests)
    assert st.state == OK, st.message
    assert st.version == _load("ollama", version, "version.json")["version"]
    (m,) = st.models
    assert (m.name, m.size_bytes, m.vram_bytes, m.expires_at) == (ps["name"], ps["size"], ps["size_vram"],
                                                                     ps["expires_at"])
    assert m.config.model == blob  # the Modelfile's FROM line
    if "context_length" in ps:
        assert m.config.context == ps["context_length"]
    else:  # older Ollama: num_ctx from the model's parameters
        assert m.config.context == 8192
    assert (m.config.parallel, m.config.kv_type, m.config.kv_unified) == (3, "q8_0", False)  # serve's environment
    assert m.config.quant == ps["details"]["quantization_level"]
    assert asked.count("POST /api/show") == 1


def test_ollama_runner_flags_give_the_exact_configuration(client, tmp_path):
    blob = str(tmp_path / "sha256-abc")
    runner = ProcessView(8, ("/usr/lib/ollama/llama-server", "--model", blob, "--port", "41234", "--host",
                             "127.0.0.1", "-c", "8192", "-np", "2", "--cache-type-k", "q4_0", "--cache-type-v",
                             "q4_0", "--flash-attn", "on"))
    serve = ProcessView(7, ("ollama", "serve"), {}, (runner,))
    with FakeEngine("ollama", "2026", model_path=blob) as f:
        st = read_endpoint(client, Endpoint("ollama", f.url, serve))
    (m,) = st.models
    assert m.runner_pid == 8 and st.gpu_pids == (8,)
    assert (m.config.kv_cells, m.config.parallel, m.config.kv_type, m.config.flash_attn) == (8192, 2, "q4_0", True)
    assert m.config.context == 4096  # /api/ps context_length: per request


@pytest.mark.parametrize("version", ["2026", "0.8"])
def test_vllm_models_and_metrics(client, version):
    card = _load("vllm", version, "models.json")["data"][0]
    metrics = parse_metrics(_load("vllm", version, "metrics.txt"))
    cache = metrics.info_labels("vllm:cache_config_info")
    with FakeEngine("vllm", version) as f:
        st = read_endpoint(client, Endpoint("vllm", f.url))
    assert st.state == OK, st.message
    (m,) = st.models
    assert (m.name, m.config.model, m.config.context) == (card["id"], card["root"], card["max_model_len"])
    assert st.kv_capacity_tokens == int(cache["num_gpu_blocks"]) * int(cache["block_size"])
    assert m.config.gpu_memory_utilization == float(cache["gpu_memory_utilization"])
    assert st.kv_used == metrics.value("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    assert (st.running, st.waiting) == (metrics.value("vllm:num_requests_running"),
                                        metrics.value("vllm:num_requests_waiting"))
    assert st.tokens_total == metrics.value("vllm:generation_tokens_total")
    assert st.version == _load("vllm", version, "version.json")["version"]


def test_vllm_behind_an_api_key_says_auth_required_and_still_reads_metrics(client):
    with FakeEngine("vllm", "2026", "auth") as f:  # --api-key guards /v1 only
        st = read_endpoint(client, Endpoint("vllm", f.url))
    assert st.state == AUTH and "auth required" in st.message
    assert st.running is not None and st.kv_capacity_tokens


@pytest.mark.parametrize("version", ["2026", "2025-01"])
def test_sglang_server_info(client, version):
    name = "server_info.json" if version == "2026" else "get_server_info.json"
    info = _load("sglang", version, name)
    with FakeEngine("sglang", version) as f:
        st = read_endpoint(client, Endpoint("sglang", f.url))
        asked = list(f.requests)
    assert st.state == OK, st.message
    assert st.kv_capacity_tokens == info["max_total_num_tokens"]
    usage = info["internal_states"][0]["memory_usage"]
    gib = sum(v for k, v in usage.items() if k != "token_capacity")
    assert st.engine_bytes == int(gib * 2**30)
    assert st.tokens_per_s == info["internal_states"][0]["last_gen_throughput"]
    assert st.models[0].config.gpu_memory_utilization == info["mem_fraction_static"]
    if version != "2026":  # only the old name exists: tried after a 404
        assert asked[:2] == ["GET /server_info", "GET /get_server_info"]


@pytest.mark.parametrize("version", ["3.3", "1.4"])
def test_tgi_info(client, version):
    info = _load("tgi", version, "info.json")
    with FakeEngine("tgi", version) as f:
        st = read_endpoint(client, Endpoint("tgi", f.url))
    assert st.state == OK
    (m,) = st.models
    assert (m.name, m.config.context, st.version) == (info["model_id"], info["max_total_tokens"], info["version"])
    if version == "3.3":
        metrics = parse_metrics(_load("tgi", version, "metrics.txt"))
        assert st.tokens_total == metrics.value("tgi_request_generated_tokens_sum")
        assert (st.running, st.waiting) == (metrics.value("tgi_batch_current_size"), metrics.value("tgi_queue_size"))


def test_xllm_health_and_metrics(client):
    health = _load("xllm", "2026-01", "health.json")
    metrics = parse_metrics(_load("xllm", "2026-01", "metrics.txt"))
    with FakeEngine("xllm", "2026-01") as f:
        st = read_endpoint(client, Endpoint("xllm", f.url))
    assert st.state == OK
    assert st.running == health["load"]["active_requests"]
    assert st.slots_total == health["load"]["max_concurrent_requests"]
    assert st.tokens_total == metrics.value("xllm_tokens_total")
    assert st.engine_bytes is None  # xllm_vram_used_bytes is the whole machine's, not the engine's


def test_xllm_loading_per_its_spec_is_loading_with_progress(client):
    with FakeEngine("xllm", "spec-003") as f:
        st = read_endpoint(client, Endpoint("xllm", f.url))
    assert st.state == LOADING and "42%" in st.message


# --- failure states, for every engine ------------------------------------------------------------


@pytest.mark.parametrize(("kind", "version"), RECORDINGS)
def test_slow_engine_is_slow(client, kind, version):
    with FakeEngine(kind, version, "slow", delay_s=1.5) as f:
        st = read_endpoint(client, Endpoint(kind, f.url))
    assert st.state == SLOW, st.message
    assert f.url in st.message


@pytest.mark.parametrize(("kind", "version"), RECORDINGS)
def test_engine_wanting_a_key_says_auth_required(client, kind, version):
    with FakeEngine(kind, version, "auth") as f:
        st = read_endpoint(client, Endpoint(kind, f.url))
    assert st.state == AUTH and "auth required" in st.message


@pytest.mark.parametrize(("kind", "version"), RECORDINGS)
def test_malformed_answers_are_malformed(client, kind, version):
    with FakeEngine(kind, version, "malformed") as f:
        st = read_endpoint(client, Endpoint(kind, f.url))
    assert st.state == MALFORMED, st.message


@pytest.mark.parametrize("kind", ["llama-server", "ollama", "vllm", "sglang", "tgi", "xllm", "llama-cpp-python"])
def test_dead_engine_is_dead(client, kind):
    st = read_endpoint(client, Endpoint(kind, dead_url()))
    assert st.state == DEAD and "connection refused" in st.message


def test_llama_server_loading_model_is_loading(client):
    with FakeEngine("llama-server", "2026", "loading") as f:
        st = read_endpoint(client, Endpoint("llama-server", f.url))
    assert st.state == LOADING and "Loading model" in st.message


def test_a_field_of_the_wrong_type_is_malformed_not_a_crash(client):
    bad = json.dumps({"default_generation_settings": [], "total_slots": "two"})
    with FakeEngine("llama-server", "2026", overrides={"GET /props": (200, bad)}) as f:
        st = read_endpoint(client, Endpoint("llama-server", f.url))
    assert st.state == MALFORMED


def test_an_answer_larger_than_any_status_page_is_cut_off():
    small = LiveClient(max_bytes=1024)
    huge = json.dumps({"models": ["x" * 100] * 100})
    with FakeEngine("ollama", "2026", overrides={"GET /api/ps": (200, huge)}) as f:
        st = read_endpoint(small, Endpoint("ollama", f.url))
    small.close()
    assert st.state == MALFORMED and "more than 1 KiB" in st.message


# --- one slow engine never holds up the others ------------------------------------------------------


def test_read_all_reports_the_fast_engines_and_marks_the_slow_one(client):
    with FakeEngine("vllm", "2026", "slow", delay_s=5.0) as slow, FakeEngine("ollama", "2026") as a, \
            FakeEngine("tgi", "3.3") as b:
        eps = [Endpoint("vllm", slow.url), Endpoint("ollama", a.url), Endpoint("tgi", b.url)]
        states = read_all(eps, client)
    assert [s.state for s in states] == [SLOW, OK, OK]
    assert [s.url for s in states] == [e.url for e in eps]


def test_the_poller_publishes_fast_engines_while_a_slow_read_is_still_running():
    client = LiveClient(connect_s=0.2, read_s=2.0, total_s=3.0)
    with FakeEngine("vllm", "2026", "slow", delay_s=1.5) as slow, FakeEngine("tgi", "3.3") as fast:
        eps = [Endpoint("vllm", slow.url), Endpoint("tgi", fast.url)]
        updates: list[tuple[list, bool]] = []
        done = threading.Event()
        poller: LivePoller

        def on_update(states):
            slow_busy = poller._tracks[slow.url].in_flight
            updates.append(([(s.kind, s.state) for s in states], slow_busy))
            if len(updates) == 2:
                done.set()

        poller = LivePoller(discover_fn=lambda *a, **k: eps, on_update=on_update, client=client)
        poller.rediscover()
        assert poller.poll_due() == 2
        assert done.wait(10)
        poller.stop()
    first_states, slow_still_reading = updates[0]
    assert first_states == [("tgi", OK)] and slow_still_reading  # published before the slow one answered
    assert sorted(updates[1][0]) == [("tgi", OK), ("vllm", OK)]


def test_failing_engines_are_read_less_often_and_back_at_pace_when_they_answer():
    client = LiveClient(connect_s=0.2, read_s=0.3, total_s=0.6)
    url = dead_url()
    eps = [Endpoint("tgi", url)]
    got = threading.Event()
    poller = LivePoller(discover_fn=lambda *a, **k: eps, on_update=lambda s: got.set(), client=client,
                        interval_s=2.0, max_interval_s=16.0)
    poller.rediscover()
    track = poller._tracks[url]
    intervals = []
    for _ in range(4):
        got.clear()
        track.next_due = 0.0
        poller.poll_due()
        assert got.wait(5)
        intervals.append(track.interval)
    assert intervals == [4.0, 8.0, 16.0, 16.0]
    with FakeEngine("tgi", "3.3") as alive:  # the engine comes back (at another port: re-point the endpoint)
        track.endpoint = Endpoint("tgi", alive.url)
        got.clear()
        track.next_due = 0.0
        poller.poll_due()
        assert got.wait(5)
    assert track.interval == 2.0 and track.last is not None and track.last.state == OK
    poller.stop()


def test_tokens_per_second_come_from_the_counter_between_two_readings(client):
    text = _load("tgi", "3.3", "metrics.txt")
    overrides = {"GET /metrics": (200, text)}
    with FakeEngine("tgi", "3.3", overrides=overrides) as f:
        first = read_endpoint(client, Endpoint("tgi", f.url))
        overrides["GET /metrics"] = (200, text.replace("tgi_request_generated_tokens_sum 6100",
                                                       "tgi_request_generated_tokens_sum 6400"))
        second = read_endpoint(client, Endpoint("tgi", f.url))
    second = second.with_(read_at=first.read_at + 2.0)
    rated = with_rate(second, (first.tokens_total, first.read_at))
    assert rated.tokens_per_s == pytest.approx(150.0)  # 300 tokens in 2 s
    assert with_rate(first, (second.tokens_total, first.read_at - 1)).tokens_per_s is None  # counter reset


# --- Prometheus text -----------------------------------------------------------------------------


def test_counters_are_found_by_the_names_the_engines_use():
    text = _load("llama-server", "2026", "metrics.txt")
    raw = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}
    m = parse_metrics(text)
    # llama-server declares `llamacpp:n_tokens_max` a counter without `_total`; the parser appends it
    assert "# TYPE llamacpp:n_tokens_max counter" in text
    assert m.value("llamacpp:n_tokens_max") == raw["llamacpp:n_tokens_max"]
    assert m.value("llamacpp:prompt_tokens_total") == m.value("llamacpp:prompt_tokens") == \
        raw["llamacpp:prompt_tokens_total"]


def test_not_prometheus_is_malformed():
    from lander_tui.core.live import ReadFailure

    with pytest.raises(ReadFailure) as err:
        parse_metrics("<html>oops</html>\n{{{")
    assert err.value.state == MALFORMED


def test_recordings_only_use_routes_the_readers_ask_for():
    """Every recorded route is one some reader requests (a typo in a recording would go unnoticed)."""
    asked: set[str] = set()
    client = LiveClient()
    for kind, version in RECORDINGS:
        with FakeEngine(kind, version) as f:
            read_endpoint(client, Endpoint(kind, f.url))
            asked |= {f"{kind} {r}" for r in f.requests}
    client.close()
    for kind, version in RECORDINGS:
        routes = json.loads((DATA / kind / version / "routes.json").read_text())["routes"]
        for route in routes:
            if route in ("GET /health", "GET /"):
                continue  # recorded for identification (a bare URL behind a key) and humans, not read
            assert f"{kind} {route}" in asked, f"{kind}/{version}: {route} is never read"


def test_recordings_cite_their_source():
    for routes in Path(DATA).glob("*/*/routes.json"):
        assert json.loads(routes.read_text()).get("source"), routes
