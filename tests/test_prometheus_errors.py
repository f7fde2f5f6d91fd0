"""Every way a Prometheus source can fail is a `Snapshot.state` with one actionable line, and a
one-line error with exit 2 from `lander-tui gpus --prometheus` and `lander-tui fit --prometheus` -- never a
traceback.

Real servers wherever one can fail for real: a closed port, a web server that is not Prometheus,
Debian's prometheus with `--query.max-samples` too low for the fleet query (a genuine query
error), and one behind its own TLS + basic auth (`--web.config.file`) that scrapes no GPU.
"""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from lander_tui import cli
from lander_tui.core.errors import LanderError
from lander_tui.core.gpu import snapshot as S
from lander_tui.core.gpu.prometheus_api import PrometheusApi
from lander_tui.core.gpu.prometheus_backend import PrometheusBackend
from lander_tui.core.settings import prometheus_url
from tests.prom_fixtures import DcgmHost, Exporter, Gpu, Prometheus, Started, free_port, recipe, wait_until

USER = "lander"
PASSWORD = "lander-secret"
# bcrypt of PASSWORD (cost 4, so each request stays cheap), made once with
# python3 -c "import crypt; print(crypt.crypt('lander-secret', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"
PASSWORD_HASH = "$2b$04$4cR7aphRySWbZxG5LRCqgONqCalKVsU9fVEi2uHZZw4eHpASULIEC"


def _poll(url: str, **env: str):
    b = PrometheusBackend(url, env=env, min_interval_s=0)
    try:
        return b.poll()
    finally:
        b.close()


def _cli_error(capsys, *argv: str) -> str:
    """`gpus` and `fit` (same source flags) both fail with the same one line and exit 2."""
    said = []
    for command in (["gpus"], ["fit", "llama-3.1-8b"]):
        assert cli.main([*command, *argv]) == 2, command
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lander-tui: "), captured.err
        said.append(lines[0])
    if "--demo" not in argv:  # `fit` has no --what-if, so its "not both" line names --demo alone
        assert said[0] == said[1]
    return said[0]


class _Web:
    """A plain web server that is not Prometheus: `status` + `body` for every path (or a redirect)."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/html", location: str = "") -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- no server, or not Prometheus ----------------------------------------------------------------


def test_unreachable_url(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    snap = _poll(url)
    assert snap.state == S.UNREACHABLE and snap.gpus == ()
    assert "connection refused" in snap.message and url in snap.message
    assert "connection refused" in _cli_error(capsys, "--prometheus", url)
    b = PrometheusBackend(url, env={})
    try:
        hist = b.history()
    finally:
        b.close()
    assert hist.state == S.UNREACHABLE and hist.series == {} and "connection refused" in hist.message


@pytest.mark.parametrize(("status", "body", "ctype", "location", "words"), [
    (200, b"<html><body>Grafana</body></html>", "text/html", "", "is not a Prometheus API (HTTP 200, text/html"),
    (404, b"404 page not found", "text/plain", "", "is not a Prometheus API (HTTP 404"),
    (200, b'{"hello": "world"}', "application/json", "", "is not a Prometheus API"),
    (302, b"", "text/html", "/login?next=%2Fapi%2Fv1%2Fquery", "redirects /api/v1/query to /login"),
])
def test_a_url_that_is_not_prometheus(capsys, status, body, ctype, location, words):
    web = _Web(status, body, ctype, location)
    try:
        snap = _poll(web.url)
        assert snap.state == S.NOT_PROMETHEUS, snap
        assert words in snap.message
        assert words in _cli_error(capsys, "--prometheus", web.url)
    finally:
        web.stop()


def test_bad_urls_and_settings_are_one_line(capsys, monkeypatch, tmp_path):
    assert "is not an http(s) URL" in _cli_error(capsys, "--prometheus", "prometheus:9090")
    assert "base URL only" in _cli_error(capsys, "--prometheus", "http://p:9090/?x=1")
    monkeypatch.setenv("LANDER_TUI_PROMETHEUS_TOKEN", "t")
    monkeypatch.setenv("LANDER_TUI_PROMETHEUS_USER", "u")
    assert "not both" in _cli_error(capsys, "--prometheus", "http://127.0.0.1:9")
    monkeypatch.delenv("LANDER_TUI_PROMETHEUS_TOKEN")
    monkeypatch.delenv("LANDER_TUI_PROMETHEUS_USER")
    monkeypatch.setenv("LANDER_TUI_PROMETHEUS_CA_FILE", str(tmp_path / "missing.pem"))
    assert "is not a file" in _cli_error(capsys, "--prometheus", "https://127.0.0.1:9")
    monkeypatch.delenv("LANDER_TUI_PROMETHEUS_CA_FILE")
    assert "use --prometheus on its own" in _cli_error(capsys, "--prometheus", "http://x:9090", "--demo")


def test_the_dashboard_checks_the_url_before_anything_else(capsys, monkeypatch):
    assert cli.main(["--prometheus", "prometheus:9090"]) == 2
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert cli.main(["--prometheus", "http://x:9090", "--demo"]) == 2
    assert "use --prometheus on its own" in capsys.readouterr().err
    monkeypatch.setenv("LANDER_TUI_PROMETHEUS", "ftp://x")
    assert cli.main([]) == 2
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert cli.main(["--demo"]) == 2  # --demo wins over the environment; then: no terminal here
    assert "needs a terminal" in capsys.readouterr().err


def test_url_from_flag_env_or_config_file(tmp_path):
    conf = tmp_path / "lander-tui" / "config.toml"
    conf.parent.mkdir()
    conf.write_text('prometheus = "http://from-file:9090"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert prometheus_url(None, env) == "http://from-file:9090"
    assert prometheus_url(None, {**env, "LANDER_TUI_PROMETHEUS": "http://from-env:9090"}) == "http://from-env:9090"
    assert prometheus_url("http://flag:9090", {**env, "LANDER_TUI_PROMETHEUS": "http://e:1"}) == "http://flag:9090"
    assert prometheus_url("off", env) is None
    assert prometheus_url(None, {**env, "LANDER_TUI_PROMETHEUS": "off"}) is None
    assert prometheus_url(None, {**env, "LANDER_TUI_PROMETHEUS": ""}) == "http://from-file:9090"  # empty = unset
    assert prometheus_url(None, {"XDG_CONFIG_HOME": str(tmp_path / "none")}) is None
    conf.write_text('prometeus = "typo"\n')
    with pytest.raises(LanderError, match="unknown key"):
        prometheus_url(None, env)
    conf.write_text("prometheus = [\n")
    with pytest.raises(LanderError, match="cannot read the config file"):
        prometheus_url(None, env)


def test_a_bearer_token_is_sent_as_the_authorization_header():
    import httpx2

    seen = []

    def answer(request):
        seen.append(request.headers.get("authorization"))
        return httpx2.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})

    api = PrometheusApi("http://prom.example:9090", env={"LANDER_TUI_PROMETHEUS_TOKEN": "s3cret"},
                        transport=httpx2.MockTransport(answer))
    try:
        assert api.query("up") == (0.0, [])
    finally:
        api.close()
    assert seen == ["Bearer s3cret"]


# -- real Prometheus servers that refuse ----------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the `openssl` command is missing (it makes the test's TLS certificate): apt-get install openssl",
                    pytrace=False)
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return cert, key


@recipe("refusing")
def _start(tmp):
    """Two real servers: one TLS + basic auth with no GPU targets, one whose --query.max-samples is
    below what the fleet query loads from one 8-GPU host."""
    cert, key = _self_signed(tmp)
    web = (f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
           f"basic_auth_users:\n  {USER}: {PASSWORD_HASH}\n")
    exporter = Exporter(DcgmHost("gpu-a", [Gpu(uuid=f"GPU-{i}") for i in range(8)]))
    return Started({"secured": Prometheus(tmp / "secured", {}, web_config=web, scheme="https"),
                    "limited": Prometheus(tmp / "limited", {"dcgm": [exporter.address]},
                                          extra_args=("--query.max-samples=20",))},
                   {"gpu-a": exporter}, {"cert": cert})


@pytest.fixture(scope="module")
def refusing(prometheus_farm):
    started = prometheus_farm.take("refusing")
    secured, limited, cert = started.proms["secured"], started.proms["limited"], started.extra["cert"]
    try:
        secured.wait_ready(context=ssl.create_default_context(cafile=str(cert)))
        limited.wait_ready()
        yield secured, limited, started.exporters["gpu-a"], cert
    finally:
        started.stop()


def test_tls_is_verified(refusing, capsys):
    secured, _, _, cert = refusing
    snap = _poll(secured.url, LANDER_TUI_PROMETHEUS_USER=USER, LANDER_TUI_PROMETHEUS_PASSWORD=PASSWORD)
    assert snap.state == S.UNREACHABLE
    assert "TLS verification failed" in snap.message and "LANDER_TUI_PROMETHEUS_CA_FILE" in snap.message


def test_credentials_missing_or_wrong(refusing, capsys, monkeypatch):
    secured, _, _, cert = refusing
    snap = _poll(secured.url, LANDER_TUI_PROMETHEUS_CA_FILE=str(cert))
    assert snap.state == S.AUTH_FAILED and "HTTP 401" in snap.message
    assert "set LANDER_TUI_PROMETHEUS_TOKEN" in snap.message
    snap = _poll(secured.url, LANDER_TUI_PROMETHEUS_CA_FILE=str(cert), LANDER_TUI_PROMETHEUS_USER=USER,
                 LANDER_TUI_PROMETHEUS_PASSWORD="wrong")
    assert snap.state == S.AUTH_FAILED and "credentials in the environment were refused" in snap.message
    monkeypatch.setenv("LANDER_TUI_PROMETHEUS_CA_FILE", str(cert))
    assert "HTTP 401" in _cli_error(capsys, "--prometheus", secured.url)


def test_empty_result_says_what_was_looked_for(refusing, capsys, monkeypatch):
    secured, _, _, cert = refusing
    env = dict(LANDER_TUI_PROMETHEUS_CA_FILE=str(cert), LANDER_TUI_PROMETHEUS_USER=USER,
               LANDER_TUI_PROMETHEUS_PASSWORD=PASSWORD)
    snap = _poll(secured.url, **env)
    assert snap.state == S.NO_GPU_SERIES
    assert "has no GPU series (looked for DCGM_FI_DEV_FB_FREE, gpu_memory_free_MiB)" in snap.message
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert "no GPU series" in _cli_error(capsys, "--prometheus", secured.url)


def test_a_query_prometheus_refuses(refusing, capsys):
    _, limited, exporter, _ = refusing
    wait_until("a scrape of the 8-GPU host", lambda: exporter.scrapes >= 2)
    snap = wait_until("the query error", lambda: (s := _poll(limited.url)).state == S.QUERY_ERROR and s)
    assert "refused the query (execution: query processing would load too many samples" in snap.message
    assert "too many samples" in _cli_error(capsys, "--prometheus", limited.url)
