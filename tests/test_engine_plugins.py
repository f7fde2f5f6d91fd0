"""Engines are plugins: a third-party package that declares an entry point in `lander_tui.engines` shows
up in `estimate --backend`, `--help`, `--launch` and the dashboard's engine cycle; a broken one is
reported in one line and skipped while the others keep working.

The test writes a real package (pyproject + module) to a folder, installs it with uv into a target
directory, and runs lander-tui with that directory on its path, exactly as a user's environment would
see an installed plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = '''
"""A toy engine: weights as stored, a KV cache of 2 bytes per value, 300 MiB of overhead."""

import shlex

import numpy as np

from lander_tui.core.engines.base import Engine, EngineOptions
from lander_tui.core.memory import MIB, Breakdown
from lander_tui.core.weights import hf_weights


class ToyEngine(Engine):
    name = "toyengine"
    label = "ToyEngine"
    command_name = "toy-serve"
    quants = ("BF16",)
    kv_types = ("f16",)
    kv_cycle = ("", "f16")

    def granularity(self, opts: EngineOptions) -> int:
        return 64

    def weights(self, model, quant):
        return hf_weights(model.spec, quant)

    def memory(self, model, quant, kv, ctx, opts):
        ctx = np.asarray(ctx, dtype=np.int64)
        k, v = model.spec.kv_values_per_token()
        kv_bytes = (ctx * (k + v) * 2 * model.spec.n_layers).astype(float)
        w = float(self.weights(model, quant).total_bytes)
        return Breakdown(w, kv_bytes, np.zeros(ctx.shape), np.full(ctx.shape, 300.0 * MIB), np.zeros(ctx.shape),
                         context=ctx)

    def launch_command(self, model, plan, opts):
        return shlex.join(["toy-serve", model.spec.hf_repo or model.spec.name, "--ctx", str(plan.context)])


class BadCommand(ToyEngine):
    name = "badcommand"
    label = "BadCommand"

    def launch_command(self, model, plan, opts):
        return shlex.join(["bad", model])  # a bug: passes the model object to shlex


class Broken(Engine):
    name = "brokenengine"
    label = "Broken"
    quants = ("BF16",)

    def granularity(self, opts):
        return 0  # answers badly: not a positive number of tokens
'''

PYPROJECT = '''
[project]
name = "lander-tui-toyengine"
version = "0.1.0"

[project.entry-points."lander_tui.engines"]
toyengine = "toyengine:ToyEngine"
badcommand = "toyengine:BadCommand"
brokenengine = "toyengine:Broken"
missing = "toyengine_does_not_exist:Engine"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["toyengine"]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The toy engine package, written to a folder and installed (as a wheel) into a target directory."""
    src = tmp_path_factory.mktemp("toyengine-src")
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "toyengine").mkdir()
    (src / "toyengine" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    site = tmp_path_factory.mktemp("site")
    uv = shutil.which("uv")
    assert uv, "uv is needed to install the test plugin (pip install uv)"
    done = subprocess.run([uv, "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(site.glob("lander_tui_toyengine-*.dist-info"))
    return site


def run_cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lander_tui", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_plugin_engine_estimates_and_launches(plugin_site):
    out = run_cli(plugin_site, "estimate", "llama-3.1-8b", "--backend", "toyengine", "--free-vram", "24000",
                  "--launch", "toyengine", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    row = data["results"][0]
    assert data["backend"] == "toyengine" and row["quant"] == "BF16" and row["kv_cache"] == "f16"
    # the toy's own rule: 24000 MiB - weights - 300 MiB overhead, at 128 KiB of f16 KV per token
    weights = row["weights_mib"]
    expect = int((24000 - weights - 300) * 1024 * 1024 // (2 * 8 * 128 * 2 * 32)) // 64 * 64
    assert abs(row["max_context"] - expect) <= 64 and row["max_context"] % 64 == 0
    assert data["launch"] == f"toy-serve meta-llama/Llama-3.1-8B --ctx {data['plan']['context']}"


def test_broken_plugins_are_reported_in_one_line_each_and_skipped(plugin_site):
    out = run_cli(plugin_site, "estimate", "llama-3.1-8b", "--free-vram", "24000", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["backend"] == "llama.cpp"
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2, out.stderr
    assert any("'brokenengine'" in w and "granularity" in w for w in warnings)
    assert any("'missing'" in w and "ModuleNotFoundError" in w for w in warnings)
    assert "Traceback" not in out.stderr
    failing = run_cli(plugin_site, "estimate", "llama-3.1-8b", "--backend", "badcommand", "--free-vram", "24000",
                      "--launch", "badcommand")
    assert failing.returncode == 2 and "Traceback" not in failing.stderr
    assert "the BadCommand plugin failed" in failing.stderr.splitlines()[-1]
    bad = run_cli(plugin_site, "estimate", "llama-3.1-8b", "--backend", "brokenengine", "--free-vram", "24000")
    assert bad.returncode == 2 and "unknown backend 'brokenengine'" in bad.stderr


def test_plugin_is_listed_in_help(plugin_site):
    out = run_cli(plugin_site, "estimate", "--help")
    assert out.returncode == 0 and "toyengine" in out.stdout


async def test_plugin_is_in_the_dashboard_engine_cycle(plugin_site, monkeypatch):
    from lander_tui.core import engines
    from lander_tui.ui.fixtures import frozen_app

    monkeypatch.syspath_prepend(str(plugin_site))
    engines.registry.cache_clear()
    try:
        app, _clock = frozen_app()
        async with app.run_test(size=(120, 40)) as pilot:
            app.poll_now()
            await pilot.pause()
            seen = []
            for _ in range(len(engines.engine_names())):
                await pilot.press("b")
                seen.append(app.form.engine)
            assert "toyengine" in seen and seen[-1] == "llama.cpp"
            while app.form.engine != "toyengine":
                await pilot.press("b")
            await pilot.pause(0.2)
            assert app.estimate is not None and app.estimate.engine == "toyengine"
            assert app.chosen is not None and app.chosen.launch.startswith("toy-serve ")
    finally:
        engines.registry.cache_clear()


def test_builtins_register_through_the_entry_points_and_survive_without_them():
    from importlib.metadata import entry_points

    from lander_tui.core.engines import load_registry

    declared = {ep.name for ep in entry_points(group="lander_tui.engines")}
    assert {"llama.cpp", "ollama", "vllm", "sglang", "transformers"} <= declared
    # a source tree without installed metadata still finds every built-in module's engine
    assert [e.name for e in load_registry(eps=[]).engines] == ["llama.cpp", "ollama", "vllm", "sglang",
                                                               "transformers"]
