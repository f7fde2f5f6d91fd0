"""Reading a server's command line the way its own argument parser would.

Engines take `--port 8080`, `--port=8080` and, for llama.cpp, short aliases (`-c`, `-np`); when a
flag is repeated the last one wins (argparse, llama.cpp's common_params_parse and clap all do
that). `ProcessView` bundles what discovery knows about one process so engine modules can read
their flags and environment without touching psutil themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


def program(argv: Sequence[str]) -> str:
    """Basename of the executable, e.g. "llama-server" for /opt/llama/bin/llama-server."""
    return os.path.basename(argv[0]) if argv else ""


def is_python(argv: Sequence[str]) -> bool:
    name = program(argv)
    return name.startswith("python") or name in ("pypy", "pypy3")


def python_module(argv: Sequence[str]) -> str | None:
    """`python -m pkg.mod ...` -> "pkg.mod" (also `python -u -m ...`, `-mpkg.mod`)."""
    if not is_python(argv):
        return None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-m" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
        if not arg.startswith("-"):
            return None  # a script, not a module
    return None


def python_script(argv: Sequence[str]) -> str | None:
    """`python /usr/bin/vllm serve ...` -> "vllm" (console scripts run through the interpreter)."""
    if not is_python(argv):
        return None
    for arg in argv[1:]:
        if arg in ("-m", "-c"):
            return None
        if not arg.startswith("-"):
            return os.path.basename(arg)
    return None


def command_args(argv: Sequence[str]) -> list[str]:
    """The arguments after the program (and after `python [opts] script|-m mod`)."""
    if not is_python(argv):
        return list(argv[1:])
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-m":
            return list(argv[i + 2:])
        if arg.startswith("-m") and len(arg) > 2:
            return list(argv[i + 1:])
        if not arg.startswith("-"):
            return list(argv[i + 1:])
    return []


def flag(argv: Sequence[str], *names: str) -> str | None:
    """Value of the last `NAME VALUE` or `NAME=VALUE` among `names`; None when absent."""
    found: str | None = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(name + "="):
                found = arg[len(name) + 1:]
    return found


def has_flag(argv: Sequence[str], *names: str) -> bool:
    return any(arg in names or any(arg.startswith(n + "=") for n in names) for arg in argv)


def int_flag(argv: Sequence[str], *names: str) -> int | None:
    value = flag(argv, *names)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def port_value(text: str | None) -> int | None:
    """A TCP port from a flag or variable; None when it is not one."""
    try:
        port = int(text) if text is not None else None
    except ValueError:
        return None
    return port if port is not None and 0 < port < 65536 else None


class LazyEnviron(Mapping[str, str]):
    """A process's environment, read (with psutil) only when something looks in it.

    Discovery recognises engines from the command line alone; only a recognised server's
    environment (OLLAMA_HOST, LLAMA_ARG_PORT, ...) is ever read. Another user's process hides its
    environment: then this is empty and the engine's defaults apply.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._env: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._env is None:
            import psutil

            try:
                self._env = dict(psutil.Process(self.pid).environ())
            except (psutil.Error, OSError, ValueError):
                self._env = {}
        return self._env

    def __getitem__(self, key: str) -> str:
        return self._load()[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


@dataclass(frozen=True)
class ProcessView:
    """One process as discovery saw it: enough for an engine module to read its configuration."""

    pid: int
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    children: tuple[ProcessView, ...] = ()  # recognised workers/runners below it (Ollama's llama-servers)
