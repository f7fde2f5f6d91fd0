"""`lander-tui gpus`: a one-shot table of the GPUs and what holds their memory."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpus", help="show the GPUs, their free memory and the processes holding it")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lander_tui.core.errors import LanderError

    raise LanderError("GPU monitoring is not implemented yet", exit_code=1)
