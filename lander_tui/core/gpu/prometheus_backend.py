"""Every host's GPUs from a Prometheus server: a `GpuBackend` like NVML's, for a whole fleet.

lander-tui does not collect anything itself here: people who run GPU clusters already scrape
NVIDIA's dcgm-exporter (or nvitop-exporter) into Prometheus, and this reads that. One refresh is
one instant query (see `prometheus_schema.live_query`); which exporter a GPU comes from is read
off its series' names. A host whose newest sample is older than `STALE_SCRAPES` scrape intervals,
or whose series Prometheus has marked stale (a failed scrape does that at once), is *stale*: its
GPUs are listed with `stale=True` and no free memory, so nothing plans on numbers that may be
long gone. Failures (unreachable, not Prometheus, refused credentials, a query error, no GPU
series) come back as `Snapshot.state` with one actionable line, never as exceptions.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lander_tui.core.gpu import prometheus_schema as P
from lander_tui.core.gpu import snapshot as S
from lander_tui.core.gpu.fleet import natural_key
from lander_tui.core.gpu.prometheus_api import PrometheusApi, PromFailure
from lander_tui.core.gpu.snapshot import GpuInfo, GpuProcess, Snapshot

#: Polls closer together than this return the previous snapshot: exporters sample every 1-30 s
#: (dcgm-exporter's default collect interval is 30 s, `-c 30000` in pkg/cmd/app.go) and each
#: refresh is a fleet-wide query, so the dashboard's 1 s tick must not become 1 query/s.
DEFAULT_MIN_INTERVAL_S = 5.0
#: How often to re-read the remembered GPUs (hosts that died before we looked) and the targets.
SLOW_REFRESH_S = 60.0
TARGETS_RETRY_S = 30.0  # at most this often for a stale host's scrape error
NEW_TARGET_RETRY_S = 2.0  # a host on a target the last read did not list: read again soon


@dataclass
class _Gpu:
    """One GPU as gathered from the series of one refresh (mutable while parsing)."""

    family: str
    host: str
    gpu: str
    uuid: str = ""
    model: str = ""
    instance: str = ""  # the Prometheus target it was scraped from
    values: dict[str, float] = field(default_factory=dict)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    interval_s: float
    health: str
    last_error: str


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


def _parse_duration(text: str) -> float | None:
    """Prometheus durations as the targets API prints them: `15s`, `1m`, `1m30s`, `500ms`."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text or "")
    if not parts:
        return None
    return sum(float(n) * units[u] for n, u in parts)


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
        # GPUs known to exist though not reporting now -> (identity, when last known, Prometheus clock):
        # from our own earlier polls and from `remembered_query`, forgotten after REMEMBER_S.
        self._remembered: dict[tuple[str, str], tuple[_Gpu, float]] = {}
        self._remembered_at: float | None = None
        self._targets: dict[str, _Target] = {}
        self._targets_at: float | None = None
        self._targets_supported = True
        self._unlisted: set[str] = set()  # instances the last targets read did not list
        self._stale_before: set[str] = set()  # hosts stale at the previous refresh
        self._indices: dict[tuple[str, str], int] = {}
        self._totals: dict[tuple[str, str], float] = {}  # last known total MiB, shown for stale GPUs
        self._last_seen: dict[str, float] = {}  # host -> newest sample time seen so far

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
            labels = item.get("metric", {})
            host = P.host_of(labels)
            key = host if per_host else f"{host}:{P.gpu_of(labels)}"
            points_ = [(float(t), v) for t, raw in item.get("values", []) if (v := _float(raw)) is not None]
            out.setdefault(key, []).extend(points_)
        for series in out.values():
            series.sort()
        return FleetHistory(out)

    # -- one refresh ------------------------------------------------------------------------------

    def _refresh(self, now: float) -> Snapshot:
        evaluated, result = self.api.query(P.live_query())
        live: dict[tuple[str, str], _Gpu] = {}
        seen: dict[str, tuple[float, str]] = {}  # host -> (newest sample time, instance)
        for item in result:
            self._take(item, live, seen)
        prom_now = evaluated or self._wall()
        if self._remembered_at is None or now - self._remembered_at >= SLOW_REFRESH_S:
            self._remember(now)
        gpus = self._dedupe(live)
        uuids = {g.uuid for g in gpus.values() if g.uuid}
        for key, g in gpus.items():
            self._remembered[key] = (_Gpu("", g.host, g.gpu, g.uuid, g.model, g.instance), prom_now)
        for key, (g, when) in list(self._remembered.items()):
            if prom_now - when > P.REMEMBER_S:
                del self._remembered[key]
            elif key not in gpus and g.uuid not in uuids:
                gpus[key] = g
        if not gpus:
            names = ", ".join(P.FREE_METRICS)
            raise PromFailure(S.NO_GPU_SERIES, f"Prometheus at {self.url} has no GPU series (looked for {names}): "
                              "is dcgm-exporter or nvitop-exporter running and scraped by it?")
        stale_hosts = self._stale_hosts(now, prom_now, gpus, seen)
        infos = self._infos(gpus, live, stale_hosts)
        message = self._message(infos, stale_hosts)
        return Snapshot(tuple(infos), S.OK, message, self._wall(), None, "prometheus")

    def _take(self, item: dict[str, Any], live: dict[tuple[str, str], _Gpu],
              seen: dict[str, tuple[float, str]]) -> None:
        labels: dict[str, str] = item.get("metric", {})
        value = _float(item.get("value", [0, "nan"])[1])
        part = labels.get(P.PART_LABEL)
        host = P.host_of(labels)
        if part == "seen":
            if value is not None and value > seen.get(host, (0.0, ""))[0]:
                seen[host] = (value, labels.get(P.INSTANCE_LABEL, ""))
            return
        name = labels.get("__name__", "")
        family = P.FAMILY_OF.get(name)
        if family is None:
            return
        key = (family.name, f"{host}\0{P.gpu_of(labels)}")
        g = live.get(key)
        if g is None:
            g = live[key] = _Gpu(family.name, host, P.gpu_of(labels), instance=labels.get(P.INSTANCE_LABEL, ""))
        if part == "process":
            pid = labels.get("pid", "")
            proc = g.processes.setdefault(pid, {})
            if name == family.process_memory:
                proc["used"] = value
                proc["user"] = labels.get("username")
            else:
                proc["command"] = labels.get("command")
            return
        if part == "id":
            g.uuid = P.first(labels, P.UUID_LABELS)
            g.model = P.first(labels, P.MODEL_LABELS)
        if value is not None:
            g.values[name] = value

    def _dedupe(self, live: dict[tuple[str, str], _Gpu]) -> dict[tuple[str, str], _Gpu]:
        """One entry per GPU: a GPU two exporters report (same UUID) is taken from the preferred one."""
        rank = {f.name: i for i, f in enumerate(P.FAMILIES)}
        by_uuid: dict[str, tuple[str, str]] = {}
        out: dict[tuple[str, str], _Gpu] = {}
        for g in sorted(live.values(), key=lambda g: rank[g.family]):
            if not g.uuid and not g.values:
                continue  # a process series whose GPU sent no numbers
            key = (g.host, g.gpu)
            if g.uuid and g.uuid in by_uuid:
                continue
            if g.uuid:
                by_uuid[g.uuid] = key
            out.setdefault(key, g)
        return out

    def _remember(self, now: float) -> None:
        """GPUs seen within `REMEMBER_S`, and (when the server has the API) the scrape targets."""
        evaluated, result = self.api.query(P.remembered_query())
        for item in result:
            labels = item.get("metric", {})
            g = _Gpu("", P.host_of(labels), P.gpu_of(labels), P.first(labels, P.UUID_LABELS),
                     P.first(labels, P.MODEL_LABELS), labels.get(P.INSTANCE_LABEL, ""))
            self._remembered[(g.host, g.gpu)] = (g, evaluated)
        self._remembered_at = now
        self._read_targets(now)

    def _read_targets(self, now: float, instances: Iterable[str] = (), urgent: bool = False) -> None:
        """Re-read the targets API at most every TARGETS_RETRY_S, or soon when a host shows up on
        an instance the last read did not list (a target added since, or the server's first scrape)
        or a host has just turned stale (`urgent`: its scrape error says why)."""
        if not self._targets_supported:
            return
        new = {i for i in instances if i and i not in self._targets} - self._unlisted
        wait = NEW_TARGET_RETRY_S if new or urgent else TARGETS_RETRY_S
        if self._targets_at is not None and now - self._targets_at < wait:
            return
        self._targets_at = now
        try:
            targets = self.api.targets()
        except PromFailure as err:
            if err.state in (S.NOT_PROMETHEUS, S.AUTH_FAILED):
                self._targets_supported = False  # e.g. a query-only proxy in front of Prometheus
            return
        found: dict[str, _Target] = {}
        for t in targets:
            instance = (t.get("labels") or {}).get(P.INSTANCE_LABEL, "")
            interval = _parse_duration(str(t.get("scrapeInterval", "")))
            found[instance] = _Target(interval or P.DEFAULT_SCRAPE_INTERVAL_S, str(t.get("health", "")),
                                      str(t.get("lastError", "")))
        self._targets = found
        self._unlisted = {i for i in instances if i and i not in found}

    def _stale_hosts(self, now: float, prom_now: float, gpus: dict[tuple[str, str], _Gpu],
                     seen: dict[str, tuple[float, str]]) -> dict[str, str]:
        """Host -> why it is stale, for every host whose numbers cannot be trusted now.
        Ages are on Prometheus' clock (its evaluation time), so a skewed laptop clock does not matter."""
        instances = {g.host: g.instance for g in gpus.values() if g.instance}
        self._read_targets(now, [inst for _, inst in seen.values()])
        stale: dict[str, str] = {}
        for host in {g.host for g in gpus.values()}:
            if host in seen:
                newest, instance = seen[host]
                self._last_seen[host] = newest
                target = self._targets.get(instance)
                interval = target.interval_s if target else P.DEFAULT_SCRAPE_INTERVAL_S
                age = prom_now - newest
                if age <= P.STALE_SCRAPES * interval:
                    continue
                every = (f"scraped every {interval:g} s" if target else
                         f"scrape interval unknown, {interval:g} s assumed")
                stale[host] = f"newest sample {age:.0f} s old ({every})"
            else:
                last = self._last_seen.get(host)
                stale[host] = (f"no sample for {prom_now - last:.0f} s" if last is not None
                               else f"no sample in the last {P.REMEMBER_S // 60} min")
        if stale:
            self._read_targets(now, urgent=bool(set(stale) - self._stale_before))  # why: the scrape error
            for host in stale:
                target = self._targets.get(seen[host][1] if host in seen else instances.get(host, ""))
                if target is not None and target.last_error:
                    stale[host] += f"; Prometheus: {_short_error(target.last_error)}"
        self._stale_before = set(stale)
        return stale

    def _infos(self, gpus: dict[tuple[str, str], _Gpu], live: dict[tuple[str, str], _Gpu],
               stale_hosts: dict[str, str]) -> list[GpuInfo]:
        ordered = sorted(gpus.items(), key=lambda kv: (natural_key(kv[0][0]), natural_key(kv[0][1])))
        for key, _ in ordered:
            if key not in self._indices:
                self._indices[key] = len(self._indices)
        live_keys = {(g.host, g.gpu) for g in live.values()}
        out = []
        for key, g in ordered:
            index = self._indices[key]
            host_index = int(g.gpu) if g.gpu.isdigit() else None
            why = stale_hosts.get(g.host)
            if why is None and key not in live_keys:
                why = "no longer reported by its exporter"
            if why is not None:
                out.append(GpuInfo(index=index, name=g.model or "?", uuid=g.uuid, cuda_index=host_index,
                                   total_mib=self._totals.get(key), host=g.host, host_index=host_index,
                                   stale=True, note=f"stale: {why}"))
                continue
            out.append(self._info(index, host_index, key, g))
        return out

    def _info(self, index: int, host_index: int | None, key: tuple[str, str], g: _Gpu) -> GpuInfo:
        fam = next(f for f in P.FAMILIES if f.name == g.family)
        v = g.values
        free, used = v.get(fam.free), v.get(fam.used)
        reserved = v.get(fam.reserved) if fam.reserved else None
        total = v.get(fam.total) if fam.total else None
        if total is None and free is not None and used is not None:
            total = free + used + (reserved or 0.0)
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
            index=index, name=g.model or "?", uuid=g.uuid, cuda_index=host_index,
            total_mib=total, used_mib=used, free_mib=free, reserved_mib=reserved,
            util_percent=v.get(fam.util), mem_bw_percent=v.get(fam.mem_bw) if fam.mem_bw else None,
            temp_c=v.get(fam.temp), power_w=v.get(fam.power),
            power_cap_w=v.get(fam.power_cap) if fam.power_cap else None,
            processes=procs, host=g.host, host_index=host_index,
            note="" if free is not None else f"{fam.free} missing: free memory unknown",
        )

    def _message(self, infos: list[GpuInfo], stale_hosts: dict[str, str]) -> str:
        hosts = {g.host for g in infos}
        if not stale_hosts:
            return ""
        names = sorted(stale_hosts, key=natural_key)
        shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        first = stale_hosts[names[0]]
        return f"{len(names)} of {len(hosts)} hosts stale ({shown}): {names[0]}: {first}"


def _short_error(text: str) -> str:
    """`Get "http://10.0.0.5:9400/metrics": dial tcp ...: connect: connection refused` -> the last part."""
    tail = text.rsplit(": ", 1)[-1].strip()
    return tail if 3 <= len(tail) <= 80 else text[:80]
