"""Every host's GPUs from a Prometheus server: a `GpuBackend` like NVML's, for a whole fleet.

lander-tui does not collect anything itself here: people who run GPU clusters already scrape
NVIDIA's dcgm-exporter (or nvitop-exporter) into Prometheus, and this reads that. A refresh is
one instant query for the numbers that change (`prometheus_schema.live_query`); identity and
static facts come from a slower query (`facts_query`) once a minute or when a GPU appears.
Which exporter a GPU comes from is read off its series' names.

A host whose newest sample is older than `STALE_SCRAPES` scrape intervals, or whose series
Prometheus has marked stale (a failed scrape does that at once), is *stale*: its GPUs are listed
with `stale=True` and no free memory, so nothing plans on numbers that may be long gone.
Failures (unreachable, not Prometheus, refused credentials, a query error, no GPU series) come
back as `Snapshot.state` with one actionable line, never as exceptions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lander_tui.core.gpu.prometheus_schema as P
import lander_tui.core.gpu.snapshot as S
from lander_tui.core.gpu.fleet import natural_key
from lander_tui.core.gpu.prometheus_api import PrometheusApi, PromFailure
from lander_tui.core.gpu.prometheus_targets import TargetBook, short_error
from lander_tui.core.gpu.snapshot import GpuInfo, GpuProcess, Snapshot

#: Polls closer together than this return the previous snapshot: exporters sample every 1-30 s
#: (dcgm-exporter's default collect interval is 30 s, `-c 30000` in pkg/cmd/app.go) and each
#: refresh is a fleet-wide query, so the dashboard's 1 s tick must not become 1 query/s.
DEFAULT_MIN_INTERVAL_S = 5.0
#: How often the slow query (identity, static facts, hosts that died before we looked) runs; it
#: also runs at once when a GPU shows up that its last run did not list.
FACTS_EVERY_S = 60.0

Key = tuple[str, str]  # (host, the exporter's GPU number label)


@dataclass
class _Identity:
    uuid: str
    model: str
    instance: str  # the Prometheus target it is scraped from
    known_at: float  # Prometheus time it was last known to report


@dataclass
class _Live:
    """One GPU's numbers from one refresh, from one exporter family."""

    family: P.Family
    values: dict[str, float] = field(default_factory=dict)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetHistory:
    """Used memory over time from `query_range`: per GPU label (`host:3`) or per host."""

    series: dict[str, list[tuple[float, float]]]
    state: str = S.OK
    message: str = ""


def _float(raw: Any) -> float | None:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return None if v != v else v  # NaN (a stale or failed field) = not reported


def _key(labels: dict[str, str]) -> Key:
    return P.host_of(labels), P.gpu_of(labels)


class PrometheusBackend:
    """`GpuBackend` over one Prometheus server. `poll()` is cheap to call often (see
    `min_interval_s`), thread-safe, and never raises for anything the server or network does."""

    def __init__(
        self,
        url: str,
        *,
        env: Mapping[str, str] | None = None,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        transport: Any = None,
    ) -> None:
        self.api = PrometheusApi(url, env=env, transport=transport)
        self.url = self.api.url
        self._min_interval = min_interval_s
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._last: Snapshot | None = None
        self._last_at = 0.0
        self._targets = TargetBook(self.api)
        self._identity: dict[Key, _Identity] = {}  # every GPU known to exist, alive or not
        self._static: dict[tuple[str, Key], dict[str, float]] = {}  # (family, key) -> reserve, total, cap
        self._facts_at: float | None = None
        self._unlisted: set[Key] = set()  # live GPUs the last facts query did not list
        self._indices: dict[Key, int] = {}  # stable across refreshes: the UI selects GPUs by index
        self._order: list[Key] = []  # display order: hosts and GPU numbers in natural order
        self._totals: dict[Key, float] = {}  # last known total MiB, still shown for a stale GPU
        self._last_seen: dict[str, float] = {}  # host -> its newest sample time seen so far
        self._stale_before: set[str] = set()

    # -- GpuBackend -------------------------------------------------------------------------------

    def poll(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last_at < self._min_interval:
                return self._last
            try:
                snap = self._refresh(now)
            except PromFailure as err:
                snap = Snapshot((), err.state, err.message, self._wall(), None, "prometheus")
            self._last, self._last_at = snap, now
            return snap

    def close(self) -> None:
        self.api.close()

    # -- history ----------------------------------------------------------------------------------

    def history(self, window_s: float = 600.0, points: int = 60, hosts: Iterable[str] = (),
                per_host: bool = False) -> FleetHistory:
        """Used MiB over the last `window_s` from Prometheus' own storage (a `query_range`), so a
        view opened now has a history at once. Keyed by GPU label (`host:3`), or by host."""
        hosts = tuple(hosts)
        end = self._wall()
        step = max(1.0, window_s / max(points, 1))
        try:
            result = self.api.query_range(P.used_history_query(hosts, per_host), end - window_s, end, step)
        except PromFailure as err:
            return FleetHistory({}, err.state, err.message)
        out: dict[str, list[tuple[float, float]]] = {}
        for item in result:
            host, gpu = _key(item.get("metric", {}))
            series = out.setdefault(host if per_host else f"{host}:{gpu}", [])
            series.extend((float(t), v) for t, raw in item.get("values", []) if (v := _float(raw)) is not None)
        for series in out.values():
            series.sort()
        return FleetHistory(out)

    # -- one refresh ------------------------------------------------------------------------------

    def _refresh(self, now: float) -> Snapshot:
        evaluated, result = self.api.query(P.live_query())
        prom_now = evaluated or self._wall()
        live: dict[tuple[str, Key], _Live] = {}
        seen: dict[str, tuple[float, str]] = {}  # host -> (newest sample time, its target)
        for item in result:
            self._take(item, live, seen)
        unknown = {key for _, key in live if key not in self._identity}
        if self._facts_at is None or now - self._facts_at >= FACTS_EVERY_S or unknown - self._unlisted:
            self._read_facts(now)
            self._unlisted = {key for key in unknown if key not in self._identity}
        gpus = self._one_per_gpu(live)
        for key in gpus:
            if key in self._identity:
                self._identity[key].known_at = prom_now
        for key, ident in list(self._identity.items()):
            if prom_now - ident.known_at > P.REMEMBER_S:
                del self._identity[key]
        listed = {ident.uuid for key, ident in self._identity.items() if key in gpus and ident.uuid}
        everything = {**{k: None for k, i in self._identity.items() if k not in gpus and i.uuid not in listed}, **gpus}
        if not everything:
            names = ", ".join(P.FREE_METRICS)
            raise PromFailure(S.NO_GPU_SERIES, f"Prometheus at {self.url} has no GPU series (looked for {names}): "
                              "is dcgm-exporter or nvitop-exporter running and scraped by it?")
        self._targets.refresh(now, [inst for _, inst in seen.values()])
        stale = self._stale_hosts(now, prom_now, {k[0] for k in everything}, seen)
        infos = self._infos(everything, stale)
        return Snapshot(tuple(infos), S.OK, self._message(infos, stale), self._wall(), None, "prometheus")

    def _take(self, item: dict[str, Any], live: dict[tuple[str, Key], _Live],
              seen: dict[str, tuple[float, str]]) -> None:
        labels: dict[str, str] = item.get("metric", {})
        value = _float(item.get("value", (0, "nan"))[1])
        if labels.get(P.PART_LABEL) == "seen":
            host = P.host_of(labels)
            if value is not None and value > seen.get(host, (0.0, ""))[0]:
                seen[host] = (value, labels.get(P.INSTANCE_LABEL, ""))
            return
        name = labels.get("__name__", "")
        family = P.FAMILY_OF.get(name)
        if family is None:
            return
        key = _key(labels)
        g = live.get((family.name, key))
        if g is None:
            g = live[family.name, key] = _Live(family)
        if name == family.process_memory or name == family.process_info:
            proc = g.processes.setdefault(labels.get("pid", ""), {})
            if name == family.process_memory:
                proc["used"], proc["user"] = value, labels.get("username")
            else:
                proc["command"] = labels.get("command")
        elif value is not None:
            g.values[name] = value

    def _one_per_gpu(self, live: dict[tuple[str, Key], _Live]) -> dict[Key, _Live]:
        """One entry per GPU: one reported by two exporters (the same UUID, perhaps under two host
        names) is taken from the preferred family (dcgm-exporter's, which reports the reserve)."""
        rank = {f.name: i for i, f in enumerate(P.FAMILIES)}
        taken: set[str] = set()
        out: dict[Key, _Live] = {}
        for (_, key), g in sorted(live.items(), key=lambda kv: rank[kv[0][0]]):
            if not g.values:
                continue  # only process series: no GPU numbers to show
            ident = self._identity.get(key)
            if ident is not None and ident.uuid:
                if ident.uuid in taken:
                    continue
                taken.add(ident.uuid)
            out.setdefault(key, g)
        return out

    def _read_facts(self, now: float) -> None:
        evaluated, result = self.api.query(P.facts_query())
        static: dict[tuple[str, Key], dict[str, float]] = {}
        for item in result:
            labels = item.get("metric", {})
            key = _key(labels)
            value = _float(item.get("value", (0, "nan"))[1])
            if labels.get(P.PART_LABEL) == "identity":
                self._identity[key] = _Identity(P.first(labels, P.UUID_LABELS), P.first(labels, P.MODEL_LABELS),
                                                labels.get(P.INSTANCE_LABEL, ""), evaluated)
                if value is not None:
                    self._totals.setdefault(key, value)
                continue
            name = labels.get("__name__", "")
            family = P.FAMILY_OF.get(name)
            if family is not None and value is not None:
                static.setdefault((family.name, key), {})[name] = value
        self._static = static
        self._facts_at = now

    def _stale_hosts(self, now: float, prom_now: float, hosts: set[str],
                     seen: dict[str, tuple[float, str]]) -> dict[str, str]:
        """Host -> why it is stale, for every host whose numbers cannot be trusted now. Ages are on
        Prometheus' clock (its evaluation time), so a skewed clock here does not matter."""
        stale: dict[str, str] = {}
        for host in hosts:
            if host in seen:
                newest, instance = seen[host]
                self._last_seen[host] = newest
                target = self._targets.get(instance)
                age = prom_now - newest
                if age <= P.STALE_SCRAPES * target.interval_s:
                    continue
                every = (f"scraped every {target.interval_s:g} s" if target.known else
                         f"scrape interval unknown, {target.interval_s:g} s assumed")
                stale[host] = f"newest sample {age:.0f} s old ({every})"
            else:
                last = self._last_seen.get(host)
                stale[host] = (f"no sample for {prom_now - last:.0f} s" if last is not None
                               else f"no current sample (last one within {P.REMEMBER_S // 60} min)")
        if stale:
            self._targets.refresh(now, urgent=bool(set(stale) - self._stale_before))
            instances = {key[0]: ident.instance for key, ident in self._identity.items() if ident.instance}
            for host in stale:
                error = self._targets.get(seen[host][1] if host in seen else instances.get(host, "")).last_error
                if error:
                    stale[host] += f"; Prometheus: {short_error(error)}"
        self._stale_before = set(stale)
        return stale

    def _infos(self, gpus: dict[Key, _Live | None], stale: dict[str, str]) -> list[GpuInfo]:
        if set(self._order) != set(gpus):  # sorting 4,000 natural keys is a third of a refresh: only on change
            self._order = sorted(gpus, key=lambda k: (natural_key(k[0]), natural_key(k[1])))
            for key in self._order:
                self._indices.setdefault(key, len(self._indices))
        out = []
        blank = _Identity("", "", "", 0.0)
        for key in self._order:
            g = gpus[key]
            ident = self._identity.get(key, blank)
            host, number = key
            host_index = int(number) if number.isdigit() else None
            why = stale.get(host) or (None if g is not None else "no longer reported by its exporter")
            if why is not None or g is None:
                out.append(GpuInfo(index=self._indices[key], name=ident.model or "?", uuid=ident.uuid,
                                   cuda_index=host_index, total_mib=self._totals.get(key), host=host,
                                   host_index=host_index, stale=True, note=f"stale: {why}"))
            else:
                out.append(self._fill(self._indices[key], host_index, ident, key, g))
        return out

    def _fill(self, index: int, host_index: int | None, ident: _Identity, key: Key, g: _Live) -> GpuInfo:
        fam, v = g.family, g.values
        facts = self._static.get((fam.name, key), {})
        free, used = v.get(fam.free), v.get(fam.used)
        reserved = facts.get(fam.reserved) if fam.reserved else None
        total = facts.get(fam.total) if fam.total else None
        if total is None and free is not None and used is not None:
            total = free + used + (reserved or 0.0)  # NVML memory v2: total = free + used + reserved
        if reserved is None and total is not None and free is not None and used is not None:
            reserved = max(0.0, total - used - free)
        if total is not None:
            self._totals[key] = total
        procs = tuple(
            GpuProcess(pid=int(pid), used_mib=p.get("used"), command=p.get("command"), user=p.get("user"))
            for pid, p in sorted(g.processes.items(), key=lambda kv: -(kv[1].get("used") or 0.0))
            if pid.isdigit()
        )
        return GpuInfo(
            index=index, name=ident.model or "?", uuid=ident.uuid, cuda_index=host_index,
            total_mib=total, used_mib=used, free_mib=free, reserved_mib=reserved,
            util_percent=v.get(fam.util), temp_c=v.get(fam.temp), power_w=v.get(fam.power),
            power_cap_w=facts.get(fam.power_cap) if fam.power_cap else None, processes=procs,
            note="" if free is not None else f"{fam.free} missing: free memory unknown",
            host=key[0], host_index=host_index,
        )

    def _message(self, infos: list[GpuInfo], stale: dict[str, str]) -> str:
        if not stale:
            return ""
        hosts = {g.host for g in infos}
        names = sorted(stale, key=natural_key)
        shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        return f"{len(names)} of {len(hosts)} hosts stale ({shown}): {names[0]}: {stale[names[0]]}"

