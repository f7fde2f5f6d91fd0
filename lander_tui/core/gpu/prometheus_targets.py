"""Prometheus' scrape targets: each one's interval (what "a few scrape intervals" means for a host)
and its last scrape error (why a stale host is stale: "connection refused").

The targets API lists every target of the server, GPU or not, so it is read rarely: once at
start, when a host shows up on a target the last read did not list, when a host has just turned
stale, and otherwise at most every TARGETS_RETRY_S. A server without it (a query-only proxy,
Thanos, Mimir) is asked once; then every interval is the default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import lander_tui.core.gpu.prometheus_schema as P
import lander_tui.core.gpu.snapshot as S
from lander_tui.core.gpu.prometheus_api import PrometheusApi, PromFailure

TARGETS_RETRY_S = 30.0  # the ordinary re-read
SOON_RETRY_S = 2.0  # a new target, or a host that just turned stale


@dataclass(frozen=True)
class Target:
    interval_s: float
    known: bool  # False: not listed by the targets API; interval_s is the default
    last_error: str


def parse_duration(text: str) -> float | None:
    """Prometheus durations as the targets API prints them: `15s`, `1m`, `1m30s`, `500ms`."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text or "")
    if not parts:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def short_error(text: str) -> str:
    """`Get "http://10.0.0.5:9400/metrics": dial tcp ...: connect: connection refused` -> the last part."""
    tail = text.rsplit(": ", 1)[-1].strip()
    return tail if 3 <= len(tail) <= 80 else text[:80]


class TargetBook:
    def __init__(self, api: PrometheusApi) -> None:
        self._api = api
        self._targets: dict[str, Target] = {}
        self._read_at: float | None = None
        self._supported = True
        self._unlisted: set[str] = set()  # instances the last read did not list

    def get(self, instance: str) -> Target:
        return self._targets.get(instance) or Target(P.DEFAULT_SCRAPE_INTERVAL_S, False, "")

    def refresh(self, now: float, instances: Iterable[str] = (), urgent: bool = False) -> None:
        """Re-read if due: `instances` not listed before, or `urgent`, make it due sooner."""
        if not self._supported:
            return
        wanted = {i for i in instances if i}
        new = {i for i in wanted if i not in self._targets} - self._unlisted
        wait = SOON_RETRY_S if new or urgent else TARGETS_RETRY_S
        if self._read_at is not None and now - self._read_at < wait:
            return
        self._read_at = now
        try:
            listed = self._api.targets()
        except PromFailure as err:
            if err.state in (S.NOT_PROMETHEUS, S.AUTH_FAILED):
                self._supported = False
            return
        found: dict[str, Target] = {}
        for t in listed:
            instance = (t.get("labels") or {}).get(P.INSTANCE_LABEL, "")
            interval = parse_duration(str(t.get("scrapeInterval", "")))
            found[instance] = Target(interval or P.DEFAULT_SCRAPE_INTERVAL_S, interval is not None,
                                     str(t.get("lastError", "")))
        self._targets = found
        self._unlisted = wanted - set(found)
