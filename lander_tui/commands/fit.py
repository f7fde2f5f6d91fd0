"""`lander-tui fit MODEL ...`: which hosts (and which of their GPUs) can load a model now, best first.

Reads every host's GPUs from Prometheus (`--prometheus URL`, $LANDER_TUI_PROMETHEUS or the config
file; without one, this machine's GPUs as one host), places one row (quant + KV type at a context)
with the same estimator as `estimate` (core/fit.py), prints the ranked table and the command for the
best set. A Prometheus that cannot be read, or bad input, is one line and exit 2; nothing fitting
anywhere is exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from lander_tui.core.errors import LanderError

if TYPE_CHECKING:
    from lander_tui.core.fit import FitAnswer, FitRequest

DEFAULT_TOP = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    from lander_tui.commands.estimate import add_knob_flags
    from lander_tui.commands.gpus import add_prometheus_argument
    from lander_tui.core.engines import DEFAULT_ENGINE, engine_names
    from lander_tui.core.planning_memory import DEFAULT_MARGIN_MIB

    p = sub.add_parser(
        "fit", help="where a model fits now: the hosts and GPU sets of a Prometheus fleet, best first",
        description="Place one row (a quant and KV-cache type at a context) on every host's GPUs as they are "
        "now, and rank the hosts that can load it: fewest GPUs first, then the most headroom. Sets never "
        "span hosts. Prints the command for the best set, with CUDA_VISIBLE_DEVICES for that host.")
    p.add_argument("model", help="catalog name, config.json path/folder, .gguf path, or ORG/NAME[:QUANT]")
    p.add_argument("--quant", "-q", metavar="Q", help="weight format (default: the engine's first, e.g. Q4_K_M)")
    p.add_argument("--kv-cache", "-k", metavar="T", help="KV-cache type (default: the engine's first, e.g. f16)")
    p.add_argument("--backend", "-b", metavar="ENGINE",
                   help=f"inference engine: {' | '.join(engine_names())} (default {DEFAULT_ENGINE})")
    p.add_argument("--context", "-c", metavar="N",
                   help="the context it must load with: 32768, 32k, 1M (default: the model's trained maximum)")
    p.add_argument("--margin", metavar="MIB", default=f"{DEFAULT_MARGIN_MIB:.0f}",
                   help=f"keep this much of each set's free memory spare (default {DEFAULT_MARGIN_MIB:.0f}, "
                   "1.5G works)")
    add_knob_flags(p)  # the knobs estimate's options_of reads, as estimate declares them
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="N",
                   help=f"rows of the table (default {DEFAULT_TOP}; --json lists every host)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                   help="use the built-in fake GPUs (no NVIDIA GPU or Prometheus needed)")
    add_prometheus_argument(p)
    p.set_defaults(func=run, tensor_split=None, launch=None)


def _one(value: str | None, flag: str) -> tuple[str, ...]:
    from lander_tui.commands.estimate import _split

    values = _split([value]) if value else ()
    if len(values) > 1:
        raise LanderError(f"fit places one row: give one {flag}, not {', '.join(values)}")
    return values


def build_request(args: argparse.Namespace) -> FitRequest:
    """The row to place, from the same flags (and parsers) as `estimate`."""
    from lander_tui.commands.estimate import _margin, engine_name, options_and_context
    from lander_tui.core.engines import get_engine
    from lander_tui.core.fit import FitRequest
    from lander_tui.core.model_source import resolve_model

    if args.top < 1:
        raise LanderError("--top must be at least 1")
    opts, context = options_and_context(args, 1)
    quant, kv = _one(args.quant, "--quant"), _one(args.kv_cache, "--kv-cache")
    margin = _margin(args.margin)
    engine = get_engine(engine_name(args))
    model = resolve_model(args.model)
    return FitRequest(model, engine.name, quant[0] if quant else engine.default_quants(model)[0],
                      kv[0] if kv else engine.default_kvs(model)[0], context or model.spec.max_context, opts, margin)


def _snapshot(args: argparse.Namespace) -> tuple[Any, str]:
    """One reading of the fleet (or this machine) and the line saying where it came from."""
    from lander_tui.core.gpu import open_backend
    from lander_tui.core.settings import prometheus_url

    demo = bool(getattr(args, "demo", False))
    flag = getattr(args, "prometheus", None)
    if demo and flag is not None:
        raise LanderError("use --prometheus on its own, not with --demo")
    url = None if demo else prometheus_url(flag)
    backend = open_backend(prometheus=url) if url is not None else open_backend(demo=demo)
    try:
        snap = backend.poll()
    finally:
        backend.close()
    if not snap.ok:
        raise LanderError(snap.message, exit_code=2 if url is not None else 1)
    where = f"Prometheus at {getattr(backend, 'url', url)}" if url is not None else \
        ("demo GPUs (fake)" if demo else "this machine's GPUs")
    return snap, where


def run(args: argparse.Namespace) -> int:
    from lander_tui.core.fit import where_it_fits

    req = build_request(args)  # bad input fails before any server is asked
    snap, where = _snapshot(args)
    answer = where_it_fits(req, snap)
    if args.json:
        data = answer.as_json()
        data["source"] = where
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print(format_answer(answer, where, args.top))
    if not answer.ranked:
        print(f"lander-tui: {answer.summary}", file=sys.stderr)
        return 1
    return 0


def _mib(v: float) -> str:
    return f"{v:,.0f}"


def format_answer(answer: FitAnswer, where: str, top: int = DEFAULT_TOP) -> str:
    """The ranked table, who cannot load it and why, and the best set's plan and command."""
    from lander_tui.core.report import format_plan

    req = answer.request
    margin = f", less a {req.margin_mib:,.0f} MiB margin per set" if req.margin_mib else ""
    hosts = f"{answer.hosts:,} host" + ("" if answer.hosts == 1 else "s")
    lines = [answer.summary, f"GPUs from {where} ({hosts}, {answer.gpus:,} GPUs){margin}", ""]
    if answer.ranked:
        head = ("#", "HOST", "GPUS", "CARDS", "FREE MiB", "NEEDS MiB", "HEADROOM MiB")
        rows = [(str(i), s.host_name, s.gpus_text, s.models, _mib(s.free_mib), _mib(s.need_mib), _mib(s.headroom_mib))
                for i, s in enumerate(answer.ranked[:top], 1)]
        widths = [max(len(r[c]) for r in (head, *rows)) for c in range(len(head))]
        right = {0, 4, 5, 6}
        for r in (head, *rows):
            lines.append("  ".join(v.rjust(w) if c in right else v.ljust(w)
                                   for c, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if len(answer.ranked) > top:
            lines.append(f"... and {len(answer.ranked) - top:,} more hosts (--top N, or --json for all)")
        lines.append("headroom: what stays free within the engine's budget on the set's fullest GPU")
    if answer.short:
        shown = ", ".join(f"{s.host_name} (short {-s.headroom_mib:,.0f} MiB on {s.size} of {s.host_gpu_count} GPUs)"
                          for s in answer.short[:3])
        more = f" +{len(answer.short) - 3:,} more" if len(answer.short) > 3 else ""
        lines.append(f"cannot load it now: {shown}{more}")
    if answer.skipped:
        names = ", ".join(answer.skipped[:5]) + (f" +{len(answer.skipped) - 5:,}" if len(answer.skipped) > 5 else "")
        lines.append(f"not reporting (stale or no memory figures): {names}")
    best = answer.best
    if best is not None:
        host = best.gpus.host_name
        lines += ["", f"best: {best.memory.label} ({best.gpus.models})"]
        plan_lines = format_plan(best.plan, host_available=0.0).splitlines()
        lines += [line for line in plan_lines if not line.startswith("  host RAM:")]
        if best.plan.host_mib:
            lines.append(f"  host RAM: {best.plan.host_mib:,.0f} MiB needed on {host}")
        lines += [f"  note: {n}" for n in best.notes if f"  note: {n}" not in plan_lines]
        lines.append(best.launch)
    return "\n".join(lines)
