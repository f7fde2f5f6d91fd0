"""Local HTTP servers that answer as an engine does, from the recorded answers in tests/data/live.

Standard library only: it also runs as a child process under an engine's name (see
tests/live_fakes.py), started through a symlink to the interpreter, so it must not need the venv.

Each recorded version is a folder with `routes.json`: `{"routes": {"GET /props": "props.json", ...},
"public": [routes that stay open behind an API key], "auth_body": ..., "loading_body": ...}`. A route
value `text:...` is a literal body. `{{MODEL_PATH}}` in any body is replaced by the model path the
server was given. Modes: `ok`, `slow` (every answer waits `delay_s` first), `auth` (401 with the
engine's body except on public routes), `malformed` (200 with a body that is not what the engine
sends), `loading` (503 with the engine's loading body).

As a child process: `FAKE_KIND`, `FAKE_VERSION`, `FAKE_MODE`, `FAKE_MODEL_PATH`, `FAKE_DATA` and
`FAKE_LISTEN_PORT` (else the port comes from `--port N`) configure it; `FAKE_CHILD` (a JSON list
of argv lists) starts children that just sleep (runners, workers) with those command lines, through
the `FAKE_SLEEPER` folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "live"


class Recording:
    """The recorded answers of one engine version."""

    def __init__(self, kind: str, version: str, model_path: str = "", data: Path = DATA) -> None:
        self.folder = data / kind / version
        meta = json.loads((self.folder / "routes.json").read_text())
        self.routes: dict[str, str] = meta["routes"]
        self.public = set(meta.get("public", []))
        self.auth_body = json.dumps(meta.get("auth_body", {"error": "unauthorized"}))
        self.loading_body = json.dumps(meta.get("loading_body", {"error": "loading"}))
        self.model_path = model_path

    def body(self, route: str) -> tuple[str, str] | None:
        """(content type, body) recorded for `route` ("GET /props"), or None."""
        ref = self.routes.get(route)
        if ref is None:
            return None
        if ref.startswith("text:"):
            text = ref[5:]
        else:
            text = (self.folder / ref).read_text()
        text = text.replace("{{MODEL_PATH}}", self.model_path)
        ctype = "text/plain; version=0.0.4" if ref.endswith(".txt") else "application/json"
        return ctype, text


def make_handler(rec: Recording, mode: str, delay_s: float, log: list[str] | None,
                 overrides: dict[str, tuple[int, str]] | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body leave in one segment: with the stdlib's separate writes, Nagle's algorithm
        # and the client's delayed ACK would add ~40 ms to every answer (real engines do not do that)
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            route = f"{method} {path}"
            if log is not None:
                log.append(route)
            if mode == "slow":
                time.sleep(delay_s)
            if overrides and route in overrides:
                status, body = overrides[route]
                return self._send(status, "application/json", body)
            if mode == "auth" and route not in rec.public:
                return self._send(401, "application/json", rec.auth_body)
            if mode == "loading":
                return self._send(503, "application/json", rec.loading_body)
            found = rec.body(route)
            if found is None:
                return self._send(404, "application/json", json.dumps({"detail": "Not Found"}))
            ctype, text = found
            if mode == "malformed":
                text = "<html><body>502 Bad Gateway {{" if ctype == "application/json" else "this is { not prometheus\n"
            self._send(200, ctype, text)

        def _send(self, status: int, ctype: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            self._answer("POST")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a slow handler must not hold up stop()


def start_server(rec: Recording, mode: str = "ok", delay_s: float = 0.0, port: int = 0,
                 log: list[str] | None = None, overrides: dict[str, tuple[int, str]] | None = None,
                 host: str = "127.0.0.1") -> _Server:
    server = _Server((host, port), make_handler(rec, mode, delay_s, log, overrides))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _port_from_argv(argv: list[str]) -> int | None:
    for i, arg in enumerate(argv):
        if arg == "--port" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--port="):
            return int(arg.split("=", 1)[1])
    return None


def main() -> None:
    env = os.environ
    rec = Recording(env["FAKE_KIND"], env["FAKE_VERSION"], env.get("FAKE_MODEL_PATH", ""),
                    Path(env.get("FAKE_DATA", str(DATA))))
    port = int(env.get("FAKE_LISTEN_PORT") or 0) or _port_from_argv(sys.argv) or 0
    children = []
    for argv in json.loads(env.get("FAKE_CHILD", "[]")):
        # a child that only sleeps, under the command line it is given: argv[0] is a symlink to python and
        # the sleeper folder (a __main__.py) comes second, so every engine flag after it stays as given
        children.append(subprocess.Popen([argv[0], env["FAKE_SLEEPER"], *argv[1:]],
                                         env={k: v for k, v in env.items() if not k.startswith("FAKE_")}))
    server = start_server(rec, env.get("FAKE_MODE", "ok"), float(env.get("FAKE_DELAY_S", "0")), port,
                          host=env.get("FAKE_HOST", "127.0.0.1"))
    print(f"listening {server.server_address[1]} children {' '.join(str(c.pid) for c in children)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        for c in children:
            c.kill()


if __name__ == "__main__":
    main()
