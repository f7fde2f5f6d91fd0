"""`lander-tui engines`: the LLM engines running here, what they hold, and what lander-tui predicted.

An `ollama ps` for every engine at once: each loaded model with its engine, PID, GPU, the memory
its processes hold (NVML), where it runs, its context, KV-cache use, lander-tui's prediction for
exactly that configuration and the difference. Engines are found from this machine's processes
(no network scan) plus the URLs named with `--engine`; each is read with short timeouts, so a
sick one shows its state in place. `--watch` refreshes, `--json` is for scripts, `--history`
shows how the predictions held on this machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from lander_tui.core.live import Comparison, EngineState

MIN_INTERVAL_S = 1.0
LOOKED_FOR = ("llama-server", "python -m llama_cpp.server", "ollama serve", "vllm serve",
              "python -m sglang.launch_server / sglang serve", "text-generation-launcher", "xllm serve")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "engines",
        help="the LLM engines running here: model, context, KV use, memory held vs predicted",
        description="Find the LLM engines running on this machine (llama-server, Ollama, vLLM, SGLang, TGI, "
        "xLLM, llama-cpp-python) from its processes, read their own state on loopback, and put lander-tui's "
        "prediction for each one's exact configuration next to the memory it holds. DIFF = held - predicted.",
    )
    p.add_argument("--json", action="store_true", help="print JSON (one line per refresh with --watch)")
    p.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    p.add_argument("--interval", type=float, default=3.0, metavar="S",
                   help=f"seconds between refreshes with --watch (default 3, at least {MIN_INTERVAL_S:g})")
    p.add_argument("--engine", action="append", default=[], metavar="URL",
                   help="also read this engine (repeatable): URL or KIND=URL, e.g. vllm=http://10.0.0.5:8000; "
                   "it is contacted as given")
    p.add_argument("--no-scan", action="store_true", help="only read the --engine URLs; do not look at processes")
    p.add_argument("--history", action="store_true",
                   help="show how lander-tui's predictions held against what engines held on this machine")
    p.add_argument("--gpu-scenario", metavar="FILE", default=argparse.SUPPRESS,
                   help="fake GPUs from a scenario JSON file (demos, tests)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lander_tui.core.errors import LanderError
    from lander_tui.core.live import parse_engine_url

    out = out or sys.stdout
    if args.history:
        return _history(out, args.json)
    if args.interval < MIN_INTERVAL_S:
        raise LanderError(f"--interval must be at least {MIN_INTERVAL_S:g} s (got {args.interval:g})")
    for url in args.engine:
        parse_engine_url(url)  # a bad URL is one line now, before anything is read
    if args.no_scan and not args.engine:
        raise LanderError("--no-scan reads only the --engine URLs, and none was given")
    backend = _backend(args)
    try:
        if not args.watch:
            rows = _take(args, backend, {})
            _emit(out, rows, args, compact=False)
            return 0
        return _watch(out, args, backend)
    finally:
        backend.close()


def _backend(args: argparse.Namespace) -> Any:
    from lander_tui.core.gpu import FakeBackend, open_backend

    scenario = getattr(args, "gpu_scenario", None)
    if scenario:
        return FakeBackend(scenario)
    return open_backend(demo=False)


def _take(args: argparse.Namespace, backend: Any, counters: dict[str, tuple[float, float]]) -> list[Comparison]:
    """One round: GPUs, engines, readings, predictions; the comparisons go to the history."""
    from lander_tui.core.live import compare, discover, history, read_all
    from lander_tui.core.live.poller import with_rate

    snap = backend.poll()
    endpoints = discover(snap, args.engine, scan=not args.no_scan)
    states = []
    for st in read_all(endpoints):
        st = with_rate(st, counters.get(st.url))
        if st.ok and st.tokens_total is not None:
            counters[st.url] = (st.tokens_total, st.read_at)
        states.append(st)
    comparisons = compare(states, snap)
    history.record(comparisons)
    return comparisons


def _watch(out: TextIO, args: argparse.Namespace, backend: Any) -> int:
    from lander_tui.commands.gpus import _sigterm_as_interrupt

    tty = out.isatty() and not args.json
    restore = _sigterm_as_interrupt()
    counters: dict[str, tuple[float, float]] = {}
    try:
        if tty:
            out.write("\x1b[?25l")
        next_at = time.monotonic()
        while True:
            rows = _take(args, backend, counters)
            if tty:
                out.write("\x1b[H\x1b[2J")
                out.write(f"lander-tui engines  {time.strftime('%H:%M:%S')}  every {args.interval:g} s, "
                          "Ctrl-C to quit\n\n")
            elif not args.json:
                out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            _emit(out, rows, args, compact=True)
            out.flush()
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        return 0
    finally:
        restore()
        if tty:
            out.write("\x1b[?25h")
            out.flush()


# -- output -----------------------------------------------------------------------------------


def _emit(out: TextIO, rows: list[Comparison], args: argparse.Namespace, compact: bool) -> None:
    if args.json:
        data = {"taken_at": round(time.time(), 3), "rows": [row_json(c) for c in rows]}
        if not rows:
            data["looked_for"] = list(LOOKED_FOR)
        out.write((json.dumps(data) if compact else json.dumps(data, indent=2)) + "\n")
        return
    if not rows:
        urls = f" and at {', '.join(args.engine)}" if args.engine else ""
        where = "" if args.no_scan else f"looked for {', '.join(LOOKED_FOR)} among this machine's processes"
        out.write(f"no engines found: {where}{urls} (name one with --engine URL)\n")
        return
    width = shutil.get_terminal_size((160, 24)).columns if out.isatty() else None
    out.write(render_table(rows, width))


def row_json(c: Comparison) -> dict[str, Any]:
    """One model of one engine, as `engines --json` prints it."""
    st = c.engine
    m = c.model
    said = m.size_bytes if m is not None and m.size_bytes is not None else st.engine_bytes
    return {
        "name": m.name if m else None,
        "engine": st.kind,
        "url": st.url,
        "pid": st.pid,
        "state": st.state,
        "message": st.message,
        "version": st.version,
        "gpus": list(c.gpus),
        "gpu_names": list(c.gpu_names),
        "held_mib": _round(c.held_mib),
        "engine_mib": _round(said / 2**20) if said is not None else None,
        "vram_mib": _round(m.vram_bytes / 2**20) if m and m.vram_bytes is not None else None,
        "processor": processor(c),
        "config": m.config.as_json() if m else {},
        "details": m.details if m else {},
        "expires_at": m.expires_at if m else None,
        "slots_total": st.slots_total,
        "slots_busy": st.slots_busy,
        "running": st.running,
        "waiting": st.waiting,
        "kv_used": st.kv_used,
        "kv_capacity_tokens": st.kv_capacity_tokens,
        "tokens_per_s": _round(st.tokens_per_s),
        "predicted": c.prediction.as_json() if c.prediction else None,
        "why_no_prediction": c.why_not or None,
        "diff_mib": _round(c.diff_mib),
        "diff_pct": _round(c.diff_pct, 2),
        "notes": list(st.notes) + (list(c.prediction.notes) if c.prediction else []),
    }


def _round(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


def processor(c: Comparison) -> str:
    """Where the model runs, like `ollama ps` (cmd/cmd.go: CPU share = (size - size_vram) / size)."""
    m = c.model
    if m is not None and m.size_bytes and m.vram_bytes is not None:
        if m.vram_bytes == 0:
            return "100% CPU"
        if m.vram_bytes >= m.size_bytes:
            return "100% GPU"
        cpu = round(100 * (m.size_bytes - m.vram_bytes) / m.size_bytes)
        return f"{cpu}%/{100 - cpu}% CPU/GPU"
    if c.gpus:
        return "GPU"
    return "CPU" if c.engine.ok and c.gpu_known else "-"  # no GPU reading: unknown, not CPU


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} MiB"


def _context(c: Comparison) -> str:
    if c.model is None or not c.model.config.context:
        return "-"
    cfg = c.model.config
    return f"{cfg.context}" + (f" x{cfg.parallel}" if cfg.parallel and cfg.parallel > 1 else "")


def _kv(st: EngineState) -> str:
    return "-" if st.kv_used is None else f"{100 * st.kv_used:.0f}%"


def _diff(c: Comparison) -> str:
    if c.diff_mib is None:
        return "-"
    pct = f" ({c.diff_pct:+.1f}%)" if c.diff_pct is not None else ""
    return f"{c.diff_mib:+,.0f} MiB{pct}"


def _state(c: Comparison) -> str:
    st = c.engine
    if st.ok:
        return "ok"
    return {"auth": "auth required", "unreachable": "not on loopback"}.get(st.state, st.state)


_HEADER = ["NAME", "ENGINE", "PID", "GPU", "SIZE", "PROCESSOR", "CONTEXT", "KV USE", "PREDICTED", "DIFF", "STATE"]
_RIGHT = {2, 4, 7, 8, 9}


def _label(kind: str) -> str:
    from lander_tui.core.live import reader_for

    try:
        return reader_for(kind).label
    except Exception:  # "?" for a URL nobody recognised
        return kind


def render_table(rows: list[Comparison], width: int | None = None) -> str:
    """The plain table (no colours), then one line per problem or missing prediction."""
    cells = [_HEADER]
    for c in rows:
        st = c.engine
        size = c.held_mib if c.held_mib is not None else (
            c.model.size_bytes / 2**20 if c.model and c.model.size_bytes else None)
        cells.append([
            c.model.name if c.model else "-", _label(st.kind), str(st.pid or "-"),
            ",".join(str(g) for g in c.gpus) or "-", _mib(size), processor(c), _context(c), _kv(st),
            _mib(c.prediction.total_mib if c.prediction else None), _diff(c), _state(c),
        ])
    widths = [max(len(r[i]) for r in cells) for i in range(len(_HEADER))]
    lines = []
    for r in cells:
        line = "  ".join(r[i].rjust(widths[i]) if i in _RIGHT else r[i].ljust(widths[i]) for i in range(len(r)))
        line = line.rstrip()
        if width is not None and len(line) > width:
            line = line[: max(width - 1, 0)] + "…"
        lines.append(line)
    notes = []
    seen: set[str] = set()
    for c in rows:
        st = c.engine
        who = f"{_label(st.kind)} {st.url}" + (f" (pid {st.pid})" if st.pid else "")
        if not st.ok and st.url not in seen:
            seen.add(st.url)
            notes.append(f"{who}: {st.message}")
        elif st.ok and c.model is not None and c.why_not and c.held_mib is not None:
            notes.append(f"{c.model.name}: no prediction: {c.why_not}")
    notes.append("SIZE is the memory the engine's processes hold (NVML), else what the engine reports; "
                 "DIFF = held - predicted")
    return "\n".join(lines + notes) + "\n"


# -- history ----------------------------------------------------------------------------------


def _history(out: TextIO, as_json: bool) -> int:
    from lander_tui.core.live import history

    entries = history.load()
    if as_json:
        out.write(json.dumps({"path": str(history.history_path()), "entries": entries}, indent=2) + "\n")
        return 0
    if not entries:
        out.write(f"no comparisons recorded yet ({history.history_path()}); `lander-tui engines` records one "
                  "whenever an engine it can predict holds GPU memory\n")
        return 0
    out.write(render_history(entries))
    return 0


def _config_text(cfg: dict[str, Any]) -> str:
    parts = []
    if cfg.get("kv_cells"):
        parts.append(f"ctx {cfg['kv_cells']}" + (f"/{cfg['parallel']}" if (cfg.get("parallel") or 1) > 1 else ""))
    if cfg.get("max_model_len"):
        parts.append(f"len {cfg['max_model_len']}")
    for key in ("quant", "kv_type"):
        if cfg.get(key):
            parts.append(str(cfg[key]))
    if cfg.get("flash_attn") is False:
        parts.append("no-fa")
    if cfg.get("gpu_memory_utilization"):
        parts.append(f"util {cfg['gpu_memory_utilization']}")
    return " ".join(parts) or "-"


def render_history(entries: list[dict[str, Any]]) -> str:
    header = ["WHEN", "ENGINE", "GPU", "MODEL", "CONFIG", "PREDICTED", "HELD", "DIFF"]
    rows = [header]
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(e.get("at") or 0)))
        engine = f"{e.get('engine')} {e.get('version') or ''}".strip()
        rows.append([when, engine, str(e.get("gpu") or "-"), str(e.get("model")), _config_text(e.get("config") or {}),
                     f"{e['predicted_mib']:,.0f}", f"{e['held_mib']:,.0f}",
                     f"{e['held_mib'] - e['predicted_mib']:+,.0f} ({e.get('diff_pct', 0):+.1f}%)"])
    right = {5, 6, 7}
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))).rstrip()
             for r in rows]
    diffs = sorted(abs(e["held_mib"] - e["predicted_mib"]) for e in entries)
    pcts = sorted(abs(float(e.get("diff_pct") or 0.0)) for e in entries)
    mid = len(diffs) // 2
    lines.append(f"{len(entries)} comparisons (MiB); median |held - predicted| {diffs[mid]:,.0f} MiB "
                 f"({pcts[mid]:.1f}%), worst {diffs[-1]:,.0f} MiB ({pcts[-1]:.1f}%)")
    return "\n".join(lines) + "\n"
