"""Record (or check) what `lander-tui estimate` prints for a fixed set of invocations.

The set covers every engine, one and several GPUs, offload, nothing-fits and every output format.
`tests/test_golden_estimates.py` replays it, so a refactor that changes a number a user sees fails;
a deliberate change re-records it and the diff shows what moved:

    uv run python scripts/golden_estimates.py --write
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden" / "estimates.json"

MODELS = ("llama-3.1-8b", "qwen3-30b-a3b", "gemma-3-27b-it", "deepseek-v2-lite", "mixtral-8x7b-v0.1",
          "gpt-oss-20b")
ENGINES = ("llama.cpp", "ollama", "vllm", "transformers")
MEMORY = ("--free-vram 24000", "--free-vram 10000,10000", '--what-if "H100 80GB"', "--total-vram 24564",
          '--what-if "2x A100 80GB"', "--free-vram 1")


def invocations() -> list[str]:
    out = []
    for model in MODELS:
        for engine in ENGINES:
            for mem in MEMORY:
                out.append(f"estimate {model} --backend {engine} {mem} --json --launch {engine}")
    out += [
        "estimate llama-3.1-8b --free-vram 10316 --quant Q4_K_M --kv-cache f16,q8_0",
        "estimate llama-3.1-8b --free-vram 23000,11500 --launch llama.cpp",
        "estimate qwen3-30b-a3b --backend vllm --what-if 'H100 80GB' --json",
        "estimate mixtral-8x7b-v0.1 --free-vram 20000 --launch llama.cpp",
        "estimate mixtral-8x7b-v0.1 --free-vram 20000 --launch llama.cpp --format md",
        "estimate llama-3.1-70b --free-vram 24000,24000 --backend vllm --format csv",
        "estimate llama-3.1-8b --free-vram 10316 --context 32768 --parallel 4 --json",
        "estimate llama-3.1-8b --free-vram 10316 --flash-attn off -k q8_0,f16",
        "estimate gemma-3-27b-it --free-vram 30000 --ubatch 1024 --json",
        "estimate llama-3.1-8b --backend vllm --free-vram 40000 --gpu-memory-utilization 0.5 "
        "--max-num-batched-tokens 2048 --json",
        "estimate llama-3.1-8b --backend transformers --free-vram 20000 -q BF16,NF4 --launch transformers",
        "estimate llama-3.1-8b --free-vram 24000 --set cuda_context_mib=450 --json",
        "estimate llama-3.1-70b --free-vram 24000,24000 --tensor-split 1,3 --launch llama.cpp",
        "estimate llama-3.1-8b --backend ollama --total-vram 49152 --launch ollama",
        "estimate llama-3.1-70b --what-if 'RTX 4090' -q Q4_K_M -k f16 -c 8192 --bench",
        "estimate llama-3.1-8b --what-if 'RTX 4090' -c 32768 --prefer speed --format md --bench",
        "estimate gpt-oss-120b --what-if 'RTX 5090' -c 32768 --host-bandwidth 83.2 --json --bench",
        "estimate llama-3.1-8b --free-vram 20000 --gpu-model 'RTX 3090' --format csv",
    ]
    return out


@contextlib.contextmanager
def _no_smbios() -> Iterator[None]:
    """Host RAM bandwidth (the speed of layers on the CPU) as on a machine whose SMBIOS is unreadable,
    so the recorded speeds do not depend on where they are replayed."""
    from lander_tui.core.host_memory import DMI_ENV

    old = os.environ.get(DMI_ENV)
    os.environ[DMI_ENV] = "/nonexistent/DMI"
    try:
        yield
    finally:
        if old is None:
            del os.environ[DMI_ENV]
        else:
            os.environ[DMI_ENV] = old


#: Host RAM available "now" while recording and replaying: whether an offload plan's CPU part fits (its
#: wording and the exit code) must not depend on the machine the golden file is replayed on.
HOST_AVAILABLE_MIB = 65536.0


@contextlib.contextmanager
def _fixed_host_ram() -> Iterator[None]:
    from lander_tui.core import report

    old = report.host_available_mib
    report.host_available_mib = lambda: HOST_AVAILABLE_MIB  # type: ignore[assignment]
    try:
        yield
    finally:
        report.host_available_mib = old  # type: ignore[assignment]


def run_one(line: str) -> dict[str, object]:
    from lander_tui.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _no_smbios(), _fixed_host_ram():
        rc = main(shlex.split(line))
    # host RAM available now changes from run to run; everything else must not
    stdout = re.sub(r"\d+ MiB available now", "N MiB available now", out.getvalue())
    return {"rc": rc, "stdout": stdout, "stderr": err.getvalue()}


def record() -> dict[str, dict[str, object]]:
    return {line: run_one(line) for line in invocations()}


if __name__ == "__main__":
    if "--write" in sys.argv:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        old = json.loads(GOLDEN.read_text())
        new = record()
        diff = [k for k in old if old[k] != new.get(k)]
        print(f"{len(diff)} of {len(old)} differ")
        for k in diff:
            print(" ", k)
