"""Prometheus text from an engine's /metrics, parsed by prometheus_client and looked up by name.

The parser (prometheus_client's, the reference implementation) normalises names in one way that
matters here: a `counter` family's samples always end in `_total`, so llama-server's
`llamacpp:n_tokens_max` (declared a counter without the suffix) comes back as
`llamacpp:n_tokens_max_total`. `Metrics.value` therefore finds a series by its sample name, by its
family name, or by either with `_total` added or removed, so readers can use the names exactly as
the engines' sources spell them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lander_tui.core.live.http import ReadFailure
from lander_tui.core.live.state import MALFORMED


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Metrics:
    """All samples of one scrape, by name."""

    def __init__(self, samples: list[Sample], families: dict[str, list[Sample]]) -> None:
        self._by_name: dict[str, list[Sample]] = {}
        for s in samples:
            self._by_name.setdefault(s.name, []).append(s)
        self._by_family = families

    def __contains__(self, name: str) -> bool:
        return bool(self.samples(name))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def samples(self, name: str) -> list[Sample]:
        """Samples of `name` (sample or family name, with or without `_total`)."""
        stem = name.removesuffix("_total")
        for key in (name, stem + "_total", stem):
            if key in self._by_name:
                return self._by_name[key]
        for key in (name, stem):
            fam = self._by_family.get(key)
            if fam:
                return [s for s in fam if s.name in (key, key + "_total")] or fam
        return []

    def value(self, *names: str, labels: dict[str, str] | None = None) -> float | None:
        """The sum over all series of the first name present (e.g. one per vLLM engine index), or None.

        With `labels`, only series carrying those label values count.
        """
        for name in names:
            found = [s for s in self.samples(name)
                     if not labels or all(s.labels.get(k) == v for k, v in labels.items())]
            if found:
                return float(sum(s.value for s in found))
        return None

    def mean(self, *names: str) -> float | None:
        """The mean over series of the first name present (gauges like a usage fraction per engine)."""
        for name in names:
            found = self.samples(name)
            if found:
                return float(sum(s.value for s in found) / len(found))
        return None

    def info_labels(self, name: str) -> dict[str, str]:
        """Labels of an info-style gauge (value 1, the data in its labels), e.g. vllm:cache_config_info."""
        found = self.samples(name)
        return dict(found[0].labels) if found else {}


def parse_metrics(text: str, url: str = "/metrics") -> Metrics:
    """Parse Prometheus text exposition; a body that is not that is a MALFORMED ReadFailure."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: list[Sample] = []
    families: dict[str, list[Sample]] = {}
    try:
        for fam in text_string_to_metric_families(text):
            got = [Sample(s.name, dict(s.labels), float(s.value)) for s in fam.samples]
            families.setdefault(fam.name, []).extend(got)
            samples.extend(got)
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise ReadFailure(MALFORMED, f"{url} is not Prometheus text ({_first_line(err)})") from None
    if not samples and text.strip():
        raise ReadFailure(MALFORMED, f"{url} has no Prometheus samples")
    return Metrics(samples, families)


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:100]


def as_int(value: Any) -> int | None:
    """An int from a JSON or label value (labels are strings; "None" before vLLM profiled its blocks)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
