"""Plain-text formatting the widgets share (numbers, bars, sparklines). No Textual here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SPARK = " ▁▂▃▄▅▆▇█"


def mib(v: float | None) -> str:
    return "N/A" if v is None else f"{v:,.0f}"


def gib(v: float | None, digits: int = 1) -> str:
    return "N/A" if v is None else f"{v / 1024:.{digits}f}"


def na(v: float | None, fmt: str = "{:.0f}", unit: str = "") -> str:
    return "N/A" if v is None else fmt.format(v) + unit


def short_tokens(n: int) -> str:
    """Compact context for tables and ticks. A whole number of 1,024-token blocks reads the way people
    type it to the engines (131072 -> "128k", 1536 -> "1.5k", 1048576 -> "1M"); any other count is
    decimal (200000 -> "200k", not "196k"; 92928 -> "93k"). 900 -> "900"."""
    binary = n % 1024 == 0
    if n >= (1000 * 1024 if binary else 1_000_000):
        v = n / (1 << 20) if binary else n / 1e6
        return f"{v:.0f}M" if v >= 10 or v == int(v) else f"{v:.1f}M"
    if n >= 1000:
        v = n / 1024 if binary else n / 1000
        return f"{v:.0f}k" if v >= 10 or v == int(v) else f"{v:.1f}k"
    return str(n)


def tps_cell(row: Any) -> str:
    """The results table's tok/s: decode at the target context, for a row that reaches it; "-" for a
    row that does not (its plan would run differently), "?" when the speed is unknown (notes say why)."""
    from lander_tui.core.report import tps_text

    if not row.fits:
        return "-"
    return tps_text(row.speed.decode_tps) if row.speed is not None else "?"


def params_text(n: int | None) -> str:
    if not n:
        return "?"
    if n >= 999.5e6:
        return f"{n / 1e9:.1f}B" if n < 1e11 else f"{n / 1e9:.0f}B"
    if n >= 999.5e3:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}k"


def count_text(n: int | None) -> str:
    if n is None:
        return ""
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{suf}"
    return str(n)


def sparkline(values: Sequence[float], top: float, width: int) -> str:
    """The last `width` samples as block characters, scaled to 0..top (not to the data's range)."""
    if width <= 0:
        return ""
    vals = list(values)[-width:]
    out = []
    for v in vals:
        frac = 0.0 if top <= 0 else max(0.0, min(1.0, v / top))
        out.append(SPARK[round(frac * (len(SPARK) - 1))] if v > 0 else SPARK[1] if v == 0 else " ")
    return " " * (width - len(vals)) + "".join(out)


def truncate(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def load_level(frac: float | None) -> str:
    """nvitop's thresholds for memory: light < 10 %, heavy >= 80 %."""
    if frac is None:
        return "na"
    return "low" if frac < 0.10 else "mid" if frac < 0.80 else "high"
