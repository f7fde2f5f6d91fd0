"""How lander-tui's predictions held on this machine: one JSON line per comparison, in the cache folder.

Each line records the engine (kind, version), the GPU, the model, the configuration predicted, the
prediction and the memory NVML said the engine held. `lander-tui engines --history` reads it back:
the user's own accuracy table. A comparison is recorded when it is new or its numbers moved (a
--watch loop or the dashboard does not write the same line every few seconds), and the file is
trimmed to its newest half past `MAX_BYTES`, so it never grows without bound. Write failures
(read-only home, full disk) are silent: the history is a by-product, never a reason to fail.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lander_tui.core.live.predict import Comparison
from lander_tui.core.profile_cache import cache_dir

FILE_NAME = "engine-history.jsonl"
MAX_BYTES = 1 << 20  # ~3000 comparisons
#: A held figure that moved less than this since the last line for the same configuration is not
#: news (NVML memory of a running engine wanders by a few MiB as CUDA pools grow and shrink).
SAME_WITHIN_MIB = 2.0

_lock = threading.Lock()
_last: dict[str, float] = {}  # configuration key -> held MiB last written by this process


def history_path() -> Path:
    return cache_dir() / FILE_NAME


def entry(c: Comparison, at: float | None = None) -> dict[str, Any] | None:
    """The history line of a comparison with a prediction and a held figure, else None."""
    if c.prediction is None or c.held_mib is None or c.model is None:
        return None
    return {
        "at": round(at if at is not None else time.time(), 1),
        "engine": c.engine.kind,
        "version": c.engine.version,
        "gpu": ", ".join(c.gpu_names) or None,
        "model": c.model.name,
        "config": c.prediction.config,
        "predicted_mib": round(c.prediction.total_mib, 1),
        "held_mib": round(c.held_mib, 1),
        "diff_mib": round(c.diff_mib or 0.0, 1),
        "diff_pct": round(c.diff_pct or 0.0, 2),
    }


def record(comparisons: Iterable[Comparison], path: Path | None = None) -> int:
    """Append the comparisons that are news; returns how many lines were written."""
    lines = []
    with _lock:
        for c in comparisons:
            e = entry(c)
            if e is None:
                continue
            key = json.dumps([e["engine"], e["version"], e["gpu"], e["model"], e["config"], e["predicted_mib"]],
                             sort_keys=True)
            last = _last.get(key)
            if last is not None and abs(last - e["held_mib"]) < SAME_WITHIN_MIB:
                continue
            _last[key] = e["held_mib"]
            lines.append(json.dumps(e, separators=(",", ":")))
        if not lines:
            return 0
        target = path or history_path()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            _trim(target)
        except OSError:
            return 0
    return len(lines)


def _trim(path: Path) -> None:
    if path.stat().st_size <= MAX_BYTES:
        return
    keep = path.read_text(encoding="utf-8", errors="replace").splitlines()
    keep = keep[len(keep) // 2:]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(keep) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load(path: Path | None = None) -> list[dict[str, Any]]:
    """Every readable line, oldest first (damaged lines are skipped)."""
    target = path or history_path()
    try:
        text = target.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(e, dict) and isinstance(e.get("predicted_mib"), int | float) \
                and isinstance(e.get("held_mib"), int | float):
            out.append(e)
    return out


def forget_session() -> None:
    """Forget what this process wrote (tests: every test starts with a clean slate)."""
    with _lock:
        _last.clear()
