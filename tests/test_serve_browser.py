"""`lander-tui serve` in a REAL headless Chromium (Debian's chromium + chromium-driver, via Selenium).

The page shows the dashboard, a key typed into the page changes the results, and a screenshot is
taken; the server's own guards (loopback Host only, same-origin WebSocket, no Google Fonts link)
are checked with plain HTTP requests. Missing chromium fails with how to install it (no skip).
"""

from __future__ import annotations

import http.client
import socket

import pytest
from script_module import load_script

from lander_tui import cli


@pytest.fixture(scope="module")
def shot():
    return load_script("serve_screenshot")


@pytest.fixture(scope="module")
def served(shot):
    try:
        shot.find_browser()
    except shot.Missing as err:
        pytest.fail(str(err), pytrace=False)
    port = shot.free_port()
    proc = shot.start_serve(port, "--demo")
    yield port, proc
    shot.stop(proc)


def test_the_dashboard_in_a_browser_answers_keys(shot, served, tmp_path):
    port, _ = served
    drv = shot.open_browser()
    try:
        drv.get(f"http://127.0.0.1:{port}/")
        before = shot.wait_screen(drv, "the dashboard", shot.dashboard_ready)
        assert "Model and knobs" in before and "GPU 0  H100 80GB HBM3" in before, before
        assert "demo GPUs (fake)" in before
        assert shot.form_field(before, "Engine") == "llama.cpp"
        rows = shot.result_rows(before)
        assert len(rows) >= 4, before
        shot.press(drv, "b")  # next engine
        after = shot.wait_screen(drv, "the next engine", lambda t: shot.form_field(t, "Engine") == "ollama")
        assert shot.result_rows(after) != rows  # the estimate was redone for Ollama
        assert "googleapis" not in drv.page_source
        out = tmp_path / "serve.png"
        drv.save_screenshot(str(out))
    finally:
        drv.quit()
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def _get(port: int, path: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_server_guards(served):
    port, _ = served
    ws = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    assert _get(port, "/", {"Host": f"localhost:{port}"}) == 200
    assert _get(port, "/", {"Host": f"attacker.example:{port}"}) == 403  # DNS rebinding
    assert _get(port, "/ws", {**ws, "Origin": "http://attacker.example"}) == 403  # another site's page
    assert _get(port, "/ws", {**ws, "Origin": f"http://127.0.0.1:{port}"}) == 101


def test_serving_beyond_loopback_warns_and_a_busy_port_is_one_line(capsys):
    with socket.socket() as s:  # bound, never listening: nothing is reachable, the port is just taken
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
        code = cli.main(["serve", "--demo", "--host", "0.0.0.0", "--port", str(port)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "anyone who can reach port" in err[0] and "there is no login" in err[0]
    assert err[-1].startswith(f"lander-tui: cannot serve on 0.0.0.0:{port}") and "--port" in err[-1]


def test_serve_flags_are_checked_before_serving(capsys):
    assert cli.main(["serve", "--port", "0"]) == 2
    assert "--port must be 1-65535" in capsys.readouterr().err
    assert cli.main(["serve", "--what-if", "no such gpu"]) == 2
    assert cli.main(["serve", "--prometheus", "not-a-url"]) == 2
    assert "is not an http(s) URL" in capsys.readouterr().err


def test_every_tab_gets_the_dashboards_flags():
    """textual-serve starts the dashboard once per browser tab: the flags given to `serve` reach it."""
    import shlex

    from lander_tui.commands.serve import app_command

    args = cli.build_parser().parse_args(["--demo", "--engine", "vllm=http://127.0.0.1:8000", "--engine",
                                          "http://127.0.0.1:8080", "serve"])
    argv = shlex.split(app_command(args))
    assert argv[1:3] == ["-m", "lander_tui"] and "--demo" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--engine"] == ["vllm=http://127.0.0.1:8000",
                                                                           "http://127.0.0.1:8080"]
