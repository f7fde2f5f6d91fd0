"""Fake engines for the live tests: in-process servers, and real processes under engines' command lines.

* `FakeEngine(kind, version, mode)` — a loopback HTTP server answering from tests/data/live.
* `dead_url()` — a loopback port nothing listens on.
* `spawn_engine(...)` — a real child process whose command line is an engine's (`llama-server
  --port N`, `ollama serve`, `python -m sglang.launch_server ...`), serving the recorded answers on
  loopback. argv[0] is a symlink named like the engine pointing at this interpreter, and the script
  comes second as a folder with a `__main__.py` — named `serve` when the engine's own second word is
  `serve` (`ollama serve`, `vllm serve`, `xllm serve`), so the command line is exactly the engine's.
  Each runs in its own process group, which `stop()` ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from live_fake_server import Recording, start_server

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "live_fake_server.py"


@pytest.fixture
def fresh_readers():
    """Readers remember versions per URL; a port reused by the next test's fake is another server."""
    from lander_tui.core.live.registry import forget_all

    forget_all()
    yield
    forget_all()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dead_url() -> str:
    """A loopback URL whose port nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


class FakeEngine:
    """An in-process fake engine; use as a context manager. `requests` lists the routes asked."""

    def __init__(self, kind: str, version: str, mode: str = "ok", *, model_path: str = "", delay_s: float = 3.0,
                 overrides: dict[str, tuple[int, str]] | None = None) -> None:
        self.requests: list[str] = []
        self._server = start_server(Recording(kind, version, model_path), mode, delay_s, log=self.requests,
                                    overrides=overrides)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _main_dir(root: Path, name: str, body: str) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "__main__.py").write_text(body)
    return d


def _runner_body() -> str:
    return (f"import runpy, sys\nsys.path.insert(0, {str(HERE)!r})\n"
            f"runpy.run_path({str(SERVER_SCRIPT)!r}, run_name='__main__')\n")


@dataclass
class Spawned:
    proc: subprocess.Popen
    port: int | None
    children: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """End the process group this test started (the fake and the children it spawned)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


def spawn_engine(tmp: Path, program: str | None, args: list[str], *, kind: str, version: str,
                 module: str | None = None, model_path: str = "", listen_port: int | None = None,
                 children: list[list[str]] | None = None, env: dict[str, str] | None = None,
                 listen: bool = True, host: str = "127.0.0.1") -> Spawned:
    """Start a fake engine under `program args...` (or `python -m module args...`).

    With `listen=False` the process only sleeps (an engine that does not answer). Children are
    given as argv lists whose argv[0] is a program name; it becomes a symlink to python too.
    """
    bindir = tmp / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    work = tmp / "work"
    runner_body = _runner_body() if listen else "import time\ntime.sleep(3600)\n"
    sleeper = _main_dir(tmp / "lib", "sleeper", "import time\ntime.sleep(3600)\n")

    def link(name: str) -> str:
        target = bindir / name
        if not target.exists():
            target.symlink_to(sys.executable)
        return str(target)

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMA_ARG_", "OLLAMA_", "XLLM_"))}
    full_env.update({"FAKE_KIND": kind, "FAKE_VERSION": version, "FAKE_MODEL_PATH": model_path,
                     "FAKE_SLEEPER": str(sleeper), "FAKE_HOST": host, "PYTHONDONTWRITEBYTECODE": "1"})
    if listen_port:
        full_env["FAKE_LISTEN_PORT"] = str(listen_port)
    if children:
        full_env["FAKE_CHILD"] = json.dumps([[link(c[0]), *c[1:]] for c in children])
    full_env.update(env or {})
    if module is not None:
        pkgs = tmp / "pkgs"
        parts = module.split(".")
        pkg = pkgs.joinpath(*parts[:-1])
        pkg.mkdir(parents=True, exist_ok=True)
        for i in range(1, len(parts)):
            (pkgs.joinpath(*parts[:i]) / "__init__.py").touch()
        (pkg / f"{parts[-1]}.py").write_text(runner_body)
        if parts[-1] != "__main__":
            _main_dir(pkg, parts[-1], runner_body)  # `-m pkg.mod` also works when mod is a package
        full_env["PYTHONPATH"] = str(pkgs)
        argv = [sys.executable, "-m", module, *args]
    else:
        assert program is not None
        if args[:1] == ["serve"]:  # `ollama serve`: the script folder IS the engine's second word
            _main_dir(work, "serve", runner_body)
            argv = [link(program), "serve", *args[1:]]
        else:
            argv = [link(program), str(_main_dir(tmp / "lib", f"{program}-main", runner_body)), *args]
    proc = subprocess.Popen(argv, cwd=work if work.exists() else tmp, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    spawned = Spawned(proc, None)
    if not listen:
        _wait_started(proc, argv[0])
        return spawned
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("listening"):
        rest = proc.stdout.read() if proc.stdout and proc.poll() is not None else ""
        spawned.stop()
        raise AssertionError(f"fake {kind} did not start: {line}{rest}")
    words = line.split()
    spawned.port = int(words[1])
    spawned.children = [int(w) for w in words[3:]]
    _wait_children(spawned.children)
    return spawned


def _wait_started(proc: subprocess.Popen, argv0: str) -> None:
    """Until the process runs the program (not the fork before exec), so its command line is final."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0] == argv0.encode():
                    return
        except OSError:
            return
        time.sleep(0.02)


def _wait_children(pids: list[int]) -> None:
    for pid in pids:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read():
                        break
            except OSError:
                break
            time.sleep(0.02)


def only_processes(*pids: int):
    """A `discover_fn` for LivePoller that scans only these processes and their children (other
    engines running on the test machine stay out of the test)."""
    from lander_tui.core.live.discovery import discover, process_table

    def scan(snapshot, urls=(), scan=True):
        table = process_table()
        mine = set(pids)
        grew = True
        while grew:  # children, grandchildren ...
            more = {p for p, row in table.items() if row.ppid in mine} - mine
            grew = bool(more)
            mine |= more
        return discover(snapshot, urls, scan=scan, table={p: r for p, r in table.items() if p in mine})

    return scan
