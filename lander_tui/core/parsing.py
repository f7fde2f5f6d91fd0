"""How people write sizes and lists, read the same way by the CLI and the dashboard.

`32k`, `128K`, `1M`, `131,072` are tokens (k = 1024, as engines count context); `512`, `1.5G`, `2GiB`
are MiB; `Q4_K_M, Q8_0` or `f16 q8_0` are lists.
"""

from __future__ import annotations

import math
import re

#: The longest context anyone can ask for (16.7M tokens: beyond any model's context).
MAX_CONTEXT_TOKENS = 1 << 24

_TOKENS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mib|mb|m|gib|gb|g)?\s*$", re.IGNORECASE)


def parse_tokens(text: str) -> int | None:
    """`""` -> None, `32768` / `32k` / `128K` / `1M` / `131,072` -> tokens (k = 1024)."""
    raw = text.strip().replace(",", "").replace("_", "")
    if not raw:
        return None
    m = _TOKENS.match(raw)
    if not m:
        raise ValueError("a number of tokens, like 32768 or 32k")
    value = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if value < 1 or value != math.floor(value):
        raise ValueError("a whole number of tokens, at least 1")
    if value > MAX_CONTEXT_TOKENS:
        raise ValueError(f"at most {MAX_CONTEXT_TOKENS:,} tokens")
    return int(value)


def parse_mib(text: str) -> float:
    """`512`, `512M`, `1.5G`, `2GiB` -> MiB. Empty is 0."""
    raw = text.strip().replace(",", "").replace("_", "")
    if not raw:
        return 0.0
    m = _SIZE.match(raw)
    if not m:
        raise ValueError("MiB, like 512 or 1.5G")
    unit = (m.group(2) or "m").lower()
    return float(m.group(1)) * (1024.0 if unit.startswith("g") else 1.0)


def split_list(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in re.split(r"[,\s]+", text.strip()) if p))


def format_tokens(n: int) -> str:
    """131072 -> "128k", 1048576 -> "1M", 100000 -> "100,000"."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10}k"
    return f"{n:,}"
