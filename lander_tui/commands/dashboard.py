"""`lander-tui` with no sub-command: the full-screen dashboard."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", action="store_true", help="run with fake GPUs (no NVIDIA GPU needed)")
    parser.add_argument("--what-if", metavar="NAME", dest="what_if",
                        help='start planning for a catalog GPU or instance, e.g. "RTX 4090", "2x A100 80GB"')
    parser.add_argument("--model", metavar="MODEL", dest="model",
                        help="start with this model (catalog name, config/GGUF path or ORG/NAME)")
    parser.add_argument("--gpu-scenario", metavar="FILE", dest="gpu_scenario",
                        help="fake GPUs from a scenario JSON file (demos, tests)")
    parser.add_argument("--engine", action="append", default=[], metavar="URL", dest="dashboard_engines",
                        help="also watch this LLM engine (repeatable): URL or KIND=URL, e.g. "
                        "vllm=http://10.0.0.5:8000 (contacted as given; engines on this machine are found by "
                        "themselves)")
    parser.add_argument("--no-scan", action="store_true", dest="no_scan",
                        help="do not look for engines among this machine's processes (only the --engine URLs)")
    from lander_tui.commands.gpus import add_prometheus_argument

    add_prometheus_argument(parser, suppress=False)


def open_gpu_source(args: argparse.Namespace) -> object | None:
    """The GPU backend the flags ask for (a scenario file or a Prometheus server), or None for the
    app's default (NVML, or the demo fake). Bad flags raise LanderError before any screen opens."""
    scenario = getattr(args, "gpu_scenario", None)
    flag = getattr(args, "prometheus", None)
    if flag is not None and (scenario or getattr(args, "demo", False)):
        from lander_tui.core.errors import LanderError

        raise LanderError("use --prometheus on its own, not with --demo or --gpu-scenario")
    if scenario:
        from lander_tui.core.gpu import FakeBackend

        return FakeBackend(scenario)
    if getattr(args, "demo", False):
        return None
    from lander_tui.core.settings import prometheus_url

    url = prometheus_url(flag)
    if url is None:
        return None
    from lander_tui.core.gpu import open_backend

    return open_backend(prometheus=url)


def _served() -> bool:
    """Started by `lander-tui serve` (textual-serve runs us with its web driver and pipes, not a tty)."""
    return os.environ.get("TEXTUAL_DRIVER", "").endswith(":WebDriver")


def run(args: argparse.Namespace) -> int:
    what_if = getattr(args, "what_if", None)
    if what_if:
        from lander_tui.core.gpu import what_if as parse_what_if

        parse_what_if(what_if)  # a bad name is one line on stderr, before the screen opens
    urls = list(getattr(args, "dashboard_engines", None) or [])
    if urls:
        from lander_tui.core.live import parse_engine_url

        for url in urls:
            parse_engine_url(url)  # a bad URL is one line on stderr, before the screen opens
    backend: Any = open_gpu_source(args)  # a bad --prometheus URL or scenario: one line, before the tty check
    if not (sys.stdin.isatty() and sys.stdout.isatty()) and not _served():
        if backend is not None:
            backend.close()
        print("lander-tui: the dashboard needs a terminal (over SSH: `ssh -t HOST lander-tui`); "
              "for plain output use `lander-tui estimate MODEL` or `lander-tui gpus`", file=sys.stderr)
        return 2
    scenario = getattr(args, "gpu_scenario", None)
    from lander_tui.ui.app import LanderApp

    app = LanderApp(backend, demo=bool(args.demo or scenario), what_if=what_if, model=getattr(args, "model", None),
                    engine_urls=urls, scan_engines=not (args.demo or getattr(args, "no_scan", False)))
    app.run()
    return int(app.return_code or 0)
