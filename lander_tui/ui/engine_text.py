"""The lines an engine gets in the GPU panel, as plain text with a style name each. No Textual here.

One engine model is a header (engine, port, model) and then either its state in place (slow, dead,
auth required, malformed, loading) or what it runs: context and slots or requests, KV-cache use,
tokens/s, the memory it holds (NVML) beside what lander-tui predicts for exactly that
configuration (difference in MiB and %), and what this GPU could give it on a restart (↻: the longest
context on the memory it holds plus what is free now) with the flags that do it.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from lander_tui.core.live import EngineRow, reader_for
from lander_tui.core.live.state import AUTH, DEAD, LOADING, MALFORMED, SLOW, UNREACHABLE

#: (text, style): "head", "" (plain), "dim", "bad", or "flags" (dim, wrapped at spaces under its indent).
Line = tuple[str, str]
STATE_WORDS = {SLOW: "slow", DEAD: "dead", AUTH: "auth required", MALFORMED: "malformed", LOADING: "loading",
               UNREACHABLE: "not on loopback"}
STATE_MARKS = {LOADING: "…"}  # else ✗ (glyphs every terminal font has)


def label(kind: str) -> str:
    try:
        return reader_for(kind).label
    except Exception:  # "?" for a URL nobody recognised
        return "engine"


def where(url: str) -> str:
    """`:8080` for loopback, `host:port` for a URL the user named elsewhere."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return port if host in ("127.0.0.1", "localhost", "::1") else f"{host}{port}"


def engine_lines(row: EngineRow) -> list[Line]:
    c = row.comparison
    st = c.engine
    name = c.model.name if c.model is not None else ""
    lines: list[Line] = [(f"▸ {label(st.kind)} {where(st.url)} {name}".rstrip(), "head")]
    if not st.ok:
        word = STATE_WORDS.get(st.state, st.state)
        message = st.message.removeprefix("auth required: ")
        lines.append((f"  {STATE_MARKS.get(st.state, '✗')} {word}: {message}", "bad"))
        if c.model is None:
            return lines
    elif c.model is None:
        lines.append(("  no model loaded", "dim"))
        return lines
    lines += [(f"  {text}", "") for text in _activity(row)]
    lines += _memory(row)
    return lines


def _activity(row: EngineRow) -> list[str]:
    """The configuration and the load, in lines that fit a 34-column card."""
    c, st = row.comparison, row.comparison.engine
    cfg = c.model.config if c.model is not None else None
    first = []
    if cfg is not None and cfg.context:
        par = cfg.parallel if cfg.parallel and cfg.parallel > 1 else None
        first.append(f"ctx {cfg.context:,}" + (f"×{par}" if par else ""))
    if st.kv_used is not None:
        first.append(f"KV {100 * st.kv_used:.0f}%")
    if st.tokens_per_s is not None:
        first.append(f"{st.tokens_per_s:,.1f} tok/s")
    out = [" · ".join(first)] if first else []
    if st.slots_total is not None:
        busy = st.slots_busy if st.slots_busy is not None else "?"
        out.append(f"{busy}/{st.slots_total} slots busy" + (f" · {st.waiting} waiting" if st.waiting else ""))
    elif st.running is not None or st.waiting is not None:
        out.append(f"{st.running or 0} running · {st.waiting or 0} waiting")
    return out or ["configuration not reported"]


def _memory(row: EngineRow) -> list[Line]:
    c = row.comparison
    p = c.prediction
    held = f"{c.held_mib:,.0f}" if c.held_mib is not None else "?"
    lines: list[Line] = []
    if p is None:
        where_ = "" if c.held_mib is not None else " (not on a GPU here)" if not c.gpus else " (not reported)"
        lines.append((f"  held {held} MiB{where_}", ""))
        lines.append((f"  no prediction: {c.why_not}", "dim"))
        return lines
    lines.append((f"  held {held} · predicted {p.total_mib:,.0f}", ""))  # MiB: on the diff line
    if c.diff_mib is not None:
        pct = f" ({c.diff_pct:+.1f}%)" if c.diff_pct is not None else ""
        lines.append((f"  diff {c.diff_mib:+,.0f} MiB{pct}", "bad" if _far(c.diff_pct) else ""))
    elif c.held_mib is None:
        lines.append(("  held: not on a GPU here" if not c.gpus else "  held: not reported by the GPU", "dim"))
    r = row.restart
    if r is not None:
        lines.append((f"  ↻ {r.context:,} ctx on {r.available_mib:,.0f} MiB", "dim"))
        if r.flags:
            lines.append((f"    {r.flags}", "flags"))
    elif row.restart_why:
        lines.append((f"  ↻ {row.restart_why}", "dim"))
    return lines


#: A prediction off by more than this (either way) is shown in the warning colour.
FAR_PCT = 10.0


def _far(pct: float | None) -> bool:
    return pct is not None and abs(pct) > FAR_PCT


def block(rows: Sequence[EngineRow]) -> list[Line]:
    """Every engine of one GPU, in order."""
    out: list[Line] = []
    for row in rows:
        out += engine_lines(row)
    return out
