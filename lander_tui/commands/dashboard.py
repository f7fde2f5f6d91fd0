"""`lander-tui` with no sub-command: the full-screen dashboard."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", action="store_true", help="run with fake GPUs (no NVIDIA GPU needed)")


def run(args: argparse.Namespace) -> int:
    from lander_tui.commands import estimate

    # Until the dashboard lands, show the estimate for the default model.
    return estimate.run_default()
