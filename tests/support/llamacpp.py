"""A real llama.cpp for the tests: built once from a pinned source, on the CPU, cached outside the repo.

The only network here is the package registries, so the source is the llama.cpp tree that the
`llama-cpp-python` sdist vendors (`vendor/llama.cpp`), fetched by name with pip and checked against a
pinned sha256. Only the targets the tests need are built (CPU only, Release, no HTTPS, no web UI), and
the binaries are kept in `$LANDER_TUI_TEST_CACHE` (else `~/.cache/lander-tui-tests`) under a folder
named after the pinned commit, so only a fresh machine pays for the build.

    llama_binary("llama-server") -> Path      # builds on first use, then returns the cached binary
    run_until_ready([...]) -> str             # a llama-server's log up to "listening", then stops it

Anything missing (cmake, a compiler, pip) raises `LlamaCppUnavailable` with the reason and the
command that installs it; tests turn that into a failure, never a skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

#: The PyPI sdist that vendors llama.cpp, and its sha256 as PyPI lists it.
LLAMA_CPP_PYTHON = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
#: The llama.cpp commit that sdist vendors (its CHANGELOG: "update llama.cpp to ggml-org/llama.cpp@0c1e57098").
LLAMA_CPP_COMMIT = "0c1e57098"
VERSION = f"ggml-org/llama.cpp@{LLAMA_CPP_COMMIT} (vendored in llama-cpp-python {LLAMA_CPP_PYTHON})"
TARGETS = ("llama-quantize", "llama-server")
BUILD_JOBS = 2

_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # self-contained binaries: the cache folder can move
    "-DGGML_NATIVE=OFF",  # portable x86-64 code: a cache copied to another CPU still runs
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # the prebuilt web UI is a download; the tests never open it
    "-DLLAMA_OPENSSL=OFF",
    f"-DLLAMA_BUILD_COMMIT={LLAMA_CPP_COMMIT}",
    "-DLLAMA_BUILD_NUMBER=0",
)


class LlamaCppUnavailable(RuntimeError):
    """The real llama.cpp could not be built or run; the message says why and how to fix it."""


def cache_root() -> Path:
    env = os.environ.get("LANDER_TUI_TEST_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lander-tui-tests"


def install_dir() -> Path:
    return cache_root() / f"llama.cpp-{LLAMA_CPP_COMMIT}"


def is_built() -> bool:
    d = install_dir()
    return (d / "BUILT").is_file() and all((d / "bin" / t).is_file() for t in TARGETS)


def build_seconds() -> float | None:
    """How long the cached build took (written when it was made), or None if not built."""
    stamp = install_dir() / "BUILT"
    if not stamp.is_file():
        return None
    for line in stamp.read_text().splitlines():
        if line.startswith("build_seconds="):
            return float(line.split("=", 1)[1])
    return None


def llama_binary(name: str) -> Path:
    """Path of a built llama.cpp tool (`llama-server`, `llama-quantize`), building them on first use."""
    if name not in TARGETS:
        raise LlamaCppUnavailable(f"{name} is not built here; the test build makes {', '.join(TARGETS)}")
    d = ensure_built()
    return d / "bin" / name


def ensure_built() -> Path:
    d = install_dir()
    if is_built():
        return d
    _check_tools()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run on this machine may be building it right now
        if not is_built():
            _build(d)
    return d


def _check_tools() -> None:
    missing = []
    if not shutil.which("cmake"):
        missing.append("cmake missing: apt-get install cmake")
    if not (shutil.which("c++") or shutil.which("g++")) or not (shutil.which("cc") or shutil.which("gcc")):
        missing.append("C/C++ compiler missing: apt-get install build-essential")
    if not (shutil.which("ninja") or shutil.which("make")):
        missing.append("no build tool: apt-get install ninja-build (or make)")
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
        missing.append("pip missing in this environment: `uv sync` installs it (dev group)")
    if missing:
        raise LlamaCppUnavailable("cannot build llama.cpp for the tests: " + "; ".join(missing))


def _run(cmd: list[str], log: Path, cwd: Path | None = None) -> None:
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise LlamaCppUnavailable(f"`{' '.join(cmd[:4])} ...` failed (exit {rc}); log {log}:\n{tail}")


def _download_sdist(dest: Path, log: Path) -> Path:
    """The pinned sdist, fetched by name with pip (the registry's own client) and checked by sha256."""
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
          f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(dest)], log)
    sdist = dest / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise LlamaCppUnavailable(f"{sdist.name} has sha256 {digest}, expected {SDIST_SHA256}")
    return sdist


def _extract_vendored(sdist: Path, dest: Path) -> Path:
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            if m.name.startswith(prefix) and len(m.name) > len(prefix):
                m.name = m.name[len(prefix):]
                members.append(m)
        tar.extractall(dest, members=members, filter="data")
    return dest


def _build(d: Path) -> None:
    log = d / "build.log"
    log.write_text(f"building {VERSION}\n")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llama.cpp-build-", dir=d) as tmp:
        work = Path(tmp)
        src = _extract_vendored(_download_sdist(work / "sdist", log), work / "src")
        build = work / "build"
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        _run(["cmake", "-S", str(src), "-B", str(build), *gen, *_CMAKE_FLAGS], log)
        _run(["cmake", "--build", str(build), "--target", *TARGETS, "-j", str(BUILD_JOBS)], log)
        (d / "bin").mkdir(exist_ok=True)
        for t in TARGETS:
            shutil.copy2(build / "bin" / t, d / "bin" / t)
    seconds = time.monotonic() - start
    (d / "BUILT").write_text(f"version={VERSION}\nbuild_seconds={seconds:.0f}\njobs={BUILD_JOBS}\n")


# --- running llama-server until its buffers are allocated ------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Linux PR_SET_PDEATHSIG: a server outlives no test run, even one killed by a timeout."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop(proc: subprocess.Popen) -> None:
    """Stop a llama-server as a user would (SIGTERM, it frees its buffers), killed after 10 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


READY = "listening on http"  # tools/server/server.cpp: "llama_server: listening on http://HOST:PORT"


def run_until_ready(args: list[str], timeout: float = 120.0, warmup: bool = False) -> str:
    """Start llama-server with `args` on 127.0.0.1, return its log once it listens (or exits), then stop it.

    Every buffer llama.cpp allocates (model, KV, compute, output) is logged before it listens, so the
    log is all a memory test needs; no request is sent. `warmup=True` keeps the warm-up run, which a
    vision projector needs to reserve its compute graph (tools/mtmd/clip.cpp `warmup`).
    """
    exe = llama_binary("llama-server")
    cmd = [str(exe), "--host", "127.0.0.1", "--port", str(free_port()), *([] if warmup else ["--no-warmup"]), *args]
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                out.seek(0)
                text = out.read()
                if READY in text or proc.poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            stop(proc)
        out.seek(0)
        text = out.read()
    if READY not in text:
        tail = "\n".join(text.splitlines()[-30:])
        raise AssertionError(f"llama-server did not start ({' '.join(cmd[1:])}):\n{tail}")
    return text
