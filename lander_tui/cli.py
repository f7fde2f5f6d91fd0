"""Command-line entry point: `lander-tui` (dashboard), `lander-tui estimate`, `gpus`, `serve`, `fit`.

Each sub-command lives in `lander_tui/commands/<name>.py` and exposes `add_parser(subparsers)`
and `run(args) -> int`. This module only dispatches and turns `LanderError` into one line on
stderr with a non-zero exit, so no user mistake ever ends in a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lander_tui import __version__
from lander_tui.core.errors import LanderError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line and exit code 2 (argparse's default is 2 too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"lander-tui: error: {message} (see `lander-tui {self._sub_name()}--help`)\n")

    def _sub_name(self) -> str:
        parts = self.prog.split()
        return " ".join(parts[1:]) + " " if len(parts) > 1 else ""


def build_parser() -> argparse.ArgumentParser:
    from lander_tui.commands import dashboard, engines, estimate, fit, gpus, serve

    parser = _Parser(prog="lander-tui", description="How much LLM context really fits on your GPUs.")
    parser.add_argument("--version", action="version", version=f"lander-tui {__version__}")
    dashboard.add_arguments(parser)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    estimate.add_parser(sub)
    gpus.add_parser(sub)
    engines.add_parser(sub)
    serve.add_parser(sub)
    fit.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from lander_tui.commands import dashboard
    from lander_tui.core.engines import plugin_problems

    parser = build_parser()
    args = parser.parse_args(argv)
    for problem in plugin_problems():  # a broken engine plugin is skipped, and said so once
        print(f"lander-tui: warning: {problem}", file=sys.stderr)
    try:
        if args.command is None:
            return dashboard.run(args)
        return int(args.func(args))
    except LanderError as err:
        print(f"lander-tui: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
