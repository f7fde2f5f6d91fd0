"""Print the Hub speed table: search latency after the server answers, first looks, cached profile loads.

Runs the real `huggingface_hub` client against the test suite's local fake Hub (tests/fakehub.py),
so it needs no network:  uv run python scripts/bench_hub.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakehub import running_fake_hub, safetensors_repo_files  # noqa: E402
from gguf_fixtures import write_llama_gguf  # noqa: E402

from lander_tui.core import hub, profile_cache  # noqa: E402
from lander_tui.core.gguf_file import read_gguf  # noqa: E402

CFG = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
       "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 512, "max_position_embeddings": 8192}


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:8.2f} {max(xs) * 1000:8.2f}"


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        tmp_path = Path(tmp)
        with running_fake_hub(tmp_path, mp) as fake:
            files = safetensors_repo_files(CFG)
            for i in range(40):
                fake.add_repo(f"org{i % 7}/Model-{i}-Instruct", files, downloads=1000 - i)
            fake.add_repo("org/tiny-sharded", safetensors_repo_files(CFG, shards=4))
            big = write_llama_gguf(tmp_path / "big.gguf", vocab=128_000, n_layers=32)
            fake.add_repo("org/Big-GGUF", {"Big-Q4_K_M.gguf": big.read_bytes()})
            deep = write_llama_gguf(tmp_path / "deep.gguf", n_layers=80)
            fake.add_repo("org/Deep-GGUF", {"Deep-Q4_K_M.gguf": deep.read_bytes()})

            hub.search_models("model")  # imports + connection
            after: list[float] = []
            total: list[float] = []
            for _ in range(50):
                t = time.perf_counter()
                hits = hub.search_models("model", limit=20)
                end = time.perf_counter()
                assert len(hits) == 20
                total.append(end - t)
                after.append(end - fake.last_answer_at)
            rows.append(("search, 20 hits: whole call (local server)", ms(total), "50"))
            rows.append(("search, 20 hits: after the server answered", ms(after), "50"))
            fake.delay = 0.15
            after, total = [], []
            for _ in range(10):
                t = time.perf_counter()
                hub.search_models("model", limit=20)
                end = time.perf_counter()
                total.append(end - t)
                after.append(end - fake.last_answer_at)
            fake.delay = 0.0
            rows.append(("search, server answering in 150 ms: whole call", ms(total), "10"))
            rows.append(("search, server answering in 150 ms: after answer", ms(after), "10"))

            first_st = timed(lambda: hub.resolve_hub_model("org/tiny-sharded", refresh=True), 5)
            rows.append(("first look, 4-shard safetensors repo (8 requests)", ms(first_st), "5"))
            first_gg = timed(lambda: hub.resolve_hub_model("org/Big-GGUF:Q4_K_M", refresh=True), 5)
            served = fake.bytes_served("Big-Q4_K_M.gguf") // 5
            rows.append((f"first look, GGUF 128k vocab ({served / 2**20:.1f} of "
                         f"{big.stat().st_size / 2**20:.0f} MiB fetched)", ms(first_gg), "5"))

            hub.resolve_hub_model("org/Deep-GGUF:Q4_K_M")
            warm_st = timed(lambda: hub.resolve_hub_model("org/tiny-sharded"), 200)
            rows.append(("cached profile, safetensors repo (warm process)", ms(warm_st), "200"))
            warm_gg = timed(lambda: hub.resolve_hub_model("org/Deep-GGUF:Q4_K_M"), 200)
            rows.append(("cached profile + 723-tensor GGUF table (warm)", ms(warm_gg), "200"))

            code = ("import time; t = time.perf_counter()\n"
                    "from lander_tui.core.model_source import resolve_model\n"
                    "from lander_tui.core import hub\n"
                    "t1 = time.perf_counter()\n"
                    "r = resolve_model('org/Deep-GGUF:Q4_K_M'); assert r.origin == 'cache'\n"
                    "t2 = time.perf_counter()\n"
                    "print(t1 - t, t2 - t1)")
            env = dict(os.environ, LANDER_TUI_CACHE_DIR=str(profile_cache.cache_dir()))
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
            env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")

            def cold_run(e: dict[str, str]) -> tuple[float, float]:
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True, env=e).stdout.split()
                return float(out[0]), float(out[1])

            cold_run(env)  # writes the bytecode
            cold = [cold_run(env) for _ in range(10)]
            rows.append(("fresh process: resolve_model from the cache (first call)", ms([c[1] for c in cold]), "10"))
            rows.append(("fresh process: importing lander_tui.core modules before it", ms([c[0] for c in cold]),
                         "10"))

            local = timed(lambda: read_gguf(big), 10)
            rows.append(("read_gguf, local file, 128k-token header", ms(local), "10"))

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'median ms':>8} {'max ms':>8}  runs")
    print("-" * (width + 26))
    for name, nums, n in rows:
        print(f"{name:<{width}}  {nums}  {n:>4}")


if __name__ == "__main__":
    main()
