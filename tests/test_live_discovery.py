"""Finding engines on this machine: real child processes whose command lines are the engines', found
through the process table (psutil), their ports from flags, environment, defaults or their own
listening sockets, their GPU processes through their parents; and never anything off loopback.
"""

from __future__ import annotations

import pytest
from live_fakes import free_port, fresh_readers, spawn_engine  # noqa: F401 - the fixture

from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import FakeBackend
from lander_tui.core.live import OK, UNREACHABLE, Endpoint, LiveClient, discover, parse_engine_url, read_all
from lander_tui.core.live.discovery import process_table
from lander_tui.core.live.poller import read_endpoint
from lander_tui.core.live.registry import READERS, reader_for

pytestmark = pytest.mark.usefixtures("fresh_readers")


@pytest.fixture
def engines(tmp_path):
    """Start fake engine processes; every one (and its children) is ended after the test."""
    started = []

    def start(name: str, *args, **kw):
        sp = spawn_engine(tmp_path / f"p{len(started)}", *args, **kw)
        started.append(sp)
        return sp

    yield start
    for sp in started:
        sp.stop()


def _mine(endpoints: list[Endpoint], pid: int) -> Endpoint:
    found = [e for e in endpoints if e.pid == pid]
    assert len(found) == 1, f"pid {pid} not found once in {[(e.kind, e.pid) for e in endpoints]}"
    return found[0]


def test_each_engine_is_recognised_from_its_command_line_and_read(engines):
    port = free_port
    cases = [
        ("llama-server", ("llama-server", ["--port", str(p := port()), "-c", "8192", "-np", "2"]), {}, p),
        ("xllm", ("xllm", ["serve", "--port", str(p := port())]), {}, p),
        ("tgi", ("text-generation-launcher", ["--model-id", "x", "--port", str(p := port())]), {}, p),
        ("sglang", (None, ["--model-path", "Qwen/Qwen2.5-0.5B", "--port", str(p := port())]),
         {"module": "sglang.launch_server"}, p),
        ("llama-cpp-python", (None, ["--model", "/m/x.gguf", "--port", str(p := port())]),
         {"module": "llama_cpp.server"}, p),
    ]
    versions = {"xllm": "2026-01", "tgi": "3.3", "sglang": "2026", "llama-server": "2026", "llama-cpp-python": "0.3"}
    started = {}
    for kind, (program, args), extra, p in cases:
        started[kind] = (engines(kind, program, args, kind=kind, version=versions[kind], **extra), p)
    found = discover()
    for kind, (sp, p) in started.items():
        e = _mine(found, sp.pid)
        assert e.kind == kind and e.url == f"http://127.0.0.1:{p}" and not e.problem
    states = read_all([_mine(found, sp.pid) for sp, _ in started.values()])
    for st in states:
        assert st.state == OK, st.message
    cpp = next(s for s in states if s.kind == "llama-cpp-python")
    assert cpp.models[0].config.model == "/m/x.gguf" and cpp.models[0].config.context == 2048  # its default n_ctx


def test_port_from_the_engine_environment(engines):
    p = free_port()
    sp = engines("llama", "llama-server", ["-c", "4096"], kind="llama-server", version="2026",
                 env={"LLAMA_ARG_PORT": str(p)}, listen_port=p)
    e = _mine(discover(), sp.pid)
    assert e.url == f"http://127.0.0.1:{p}"


def test_port_from_the_listening_socket_when_flags_and_defaults_are_wrong(engines):
    # vllm serve without --port claims 8000; the process listens elsewhere (e.g. a --config file)
    p = free_port()
    sp = engines("vllm", "vllm", ["serve", "Qwen/Qwen2.5-0.5B"], kind="vllm", version="2026", listen_port=p)
    e = _mine(discover(), sp.pid)
    assert e.url == f"http://127.0.0.1:{p}"
    st = read_endpoint(LiveClient(), e)
    assert st.state == OK and st.models[0].config.model == "Qwen/Qwen2.5-0.5B"


def test_ollama_serve_owns_its_runners_and_their_gpu_memory(engines, tmp_path):
    api = free_port()
    blob = str(tmp_path / "blobs" / "sha256-0123")
    runner = ["llama-server", "--model", blob, "--port", str(free_port()), "--host", "127.0.0.1", "-c", "8192",
              "-np", "2", "--flash-attn", "auto"]
    sp = engines("ollama", "ollama", ["serve"], kind="ollama", version="2026", model_path=blob,
                 env={"OLLAMA_HOST": f"127.0.0.1:{api}"}, listen_port=api, children=[runner])
    (runner_pid,) = sp.children
    gpu = FakeBackend({"gpus": [{"name": "NVIDIA GeForce RTX 4090", "total_mib": 24564, "processes": [
        {"pid": runner_pid, "used_mib": 1234}]}]}).poll()
    found = discover(gpu)
    e = _mine(found, sp.pid)
    assert e.kind == "ollama" and e.url == f"http://127.0.0.1:{api}"
    assert not [x for x in found if x.pid == runner_pid]  # the runner is Ollama's, not an engine of its own
    assert [c.pid for c in e.proc.children] == [runner_pid] and e.gpu_pids == (runner_pid,)
    st = read_endpoint(LiveClient(), e)
    (m,) = st.models
    assert m.runner_pid == runner_pid and m.config.kv_cells == 8192 and m.config.parallel == 2


def test_workers_below_a_server_are_tied_to_it_not_listed(engines):
    p = free_port()
    # a vLLM whose engine-core child kept the same command line (fork without setproctitle)
    sp = engines("vllm", "vllm", ["serve", "m", "--port", str(p)], kind="vllm", version="2026",
                 children=[["vllm", "serve", "m", "--port", str(p)]])
    (core,) = sp.children
    gpu = FakeBackend({"gpus": [{"name": "NVIDIA H100 80GB HBM3", "total_mib": 81559, "processes": [
        {"pid": core, "used_mib": 70000}]}]}).poll()
    found = discover(gpu)
    e = _mine(found, sp.pid)
    assert not [x for x in found if x.pid == core]
    assert e.gpu_pids == (core,)


def test_a_server_bound_off_loopback_is_not_contacted(engines):
    sp = engines("llama", "llama-server", ["--host", "203.0.113.7", "--port", "8080"], kind="llama-server",
                 version="2026", listen=False)
    e = _mine(discover(), sp.pid)
    assert "203.0.113.7:8080 only" in e.problem and "--engine http://203.0.113.7:8080" in e.problem
    st = read_endpoint(LiveClient(), e)
    assert st.state == UNREACHABLE and st.elapsed_s == 0.0  # answered without any request


def test_an_engine_that_does_not_listen_is_dead(engines):
    p = free_port()
    sp = engines("llama", "llama-server", ["--port", str(p)], kind="llama-server", version="2026", listen=False)
    e = _mine(discover(), sp.pid)
    assert e.url == f"http://127.0.0.1:{p}"
    assert read_endpoint(LiveClient(), e).state == "dead"


def test_a_url_the_user_names_merges_with_the_process_serving_it(engines):
    p = free_port()
    sp = engines("llama", "llama-server", ["--port", str(p)], kind="llama-server", version="2026")
    found = discover(urls=[f"localhost:{p}"])
    mine = [e for e in found if e.url.endswith(f":{p}")]
    assert len(mine) == 1 and mine[0].pid == sp.pid and mine[0].given and mine[0].url == f"http://localhost:{p}"


def test_only_given_urls_without_a_scan():
    found = discover(urls=["vllm=http://10.1.2.3:8000", "127.0.0.1:9"], scan=False)
    assert [(e.kind, e.url, e.given) for e in found] == [("vllm", "http://10.1.2.3:8000", True),
                                                         (None, "http://127.0.0.1:9", True)]


@pytest.mark.parametrize("bad", ["ftp://x:1", "nosuch=http://127.0.0.1:1", "http://127.0.0.1:99999", "http://"])
def test_a_bad_engine_url_is_one_line(bad):
    with pytest.raises(LanderError) as err:
        parse_engine_url(bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("argv", "kind", "port"), [
    (["/opt/llama.cpp/build/bin/llama-server", "-m", "x.gguf"], "llama-server", 8080),
    (["llama-server", "--port=9000"], "llama-server", 9000),
    (["/usr/local/bin/ollama", "serve"], "ollama", 11434),
    (["/usr/bin/python3", "/usr/local/bin/vllm", "serve", "org/m", "--port", "8001"], "vllm", 8001),
    (["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "m"], "vllm", 8000),
    (["python3", "-m", "sglang.launch_server", "--model-path", "m"], "sglang", 30000),
    (["sglang", "serve", "--model-path", "m", "--port", "31000"], "sglang", 31000),
    (["text-generation-launcher", "--model-id", "m"], "tgi", 3000),
    (["text-generation-launcher", "-p", "80"], "tgi", 80),
    (["xllm", "serve"], "xllm", 32769),
    (["python", "-m", "llama_cpp.server", "--model", "m.gguf"], "llama-cpp-python", 8000),
])
def test_recognised_command_lines(argv, kind, port):
    hits = [(r.kind, r.recognise(argv, {})) for r in READERS if r.recognise(argv, {}) is not None]
    assert hits == [(kind, port)]


@pytest.mark.parametrize("argv", [
    ["python", "llama-server.py"], ["grep", "vllm serve"], ["ollama", "run", "gemma3"], ["ollama", "runner"],
    ["vllm", "bench", "serve"], ["python", "-m", "sglang.bench_serving"], ["xllm", "ps"], ["vim", "llama-server"],
    ["text-generation-server", "serve", "m"], [],
])
def test_not_engine_servers(argv):
    assert [r.kind for r in READERS if r.recognise(argv, {}) is not None] == []


def test_ollama_host_is_read_like_ollama_reads_it():
    ollama = reader_for("ollama")
    assert ollama.recognise(["ollama", "serve"], {"OLLAMA_HOST": "0.0.0.0"}) == 11434
    assert ollama.recognise(["ollama", "serve"], {"OLLAMA_HOST": "127.0.0.1:11500"}) == 11500
    assert ollama.recognise(["ollama", "serve"], {"OLLAMA_HOST": "http://[::1]:11600"}) == 11600
    assert ollama.recognise(["ollama", "serve"], {"OLLAMA_HOST": "http://localhost"}) == 80
    assert ollama.bind_host(["ollama", "serve"], {"OLLAMA_HOST": ":11434"}) is None  # every interface


def test_the_process_table_sees_this_process():
    import os

    table = process_table()
    assert os.getpid() in table and table[os.getpid()].argv
