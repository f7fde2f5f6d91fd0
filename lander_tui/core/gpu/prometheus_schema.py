"""Which metric and label names each GPU exporter writes into Prometheus, and the PromQL that reads them.

Two exporters are understood; which one a fleet uses is found from the series' own names, per GPU:

* NVIDIA's dcgm-exporter: names from its default counters, `etc/default-counters.csv` in
  NVIDIA/dcgm-exporter (memory in MiB, power in W, temperature in C, utilisation in %), labels
  from `internal/pkg/rendermetrics/render_metrics.go`: `gpu` (nvidia-smi index), `UUID` (`uuid`
  with --use-old-namespace), `modelName`, and `Hostname` (renamed `hostname` in May 2026, #655).
  `DCGM_FI_DEV_FB_TOTAL` and `DCGM_FI_DEV_POWER_MGMT_LIMIT` are read when a custom counters file
  adds them. DCGM has no per-process memory series.
* nvitop-exporter (XuehaiPan/nvitop, `nvitop-exporter/nvitop_exporter/exporter.py`): prometheus_client
  gauges whose unit is appended to the name (`gpu_memory_used` + unit `MiB` -> `gpu_memory_used_MiB`,
  as its Grafana dashboard queries them), labels `hostname`, `index`, `devicename`, `uuid`; per
  process `process_gpu_memory_MiB` and `process_info_info` (labels `pid`, `username`, `command`).

Every query groups by the union of both exporters' label names (a label a series lacks is simply
absent from the result), so one query serves both, and hosts without a host label fall back to
Prometheus' `instance`. Only the few labels needed travel back, and only the numbers that change:
identity (UUID, model) and static facts (total, reserve, power limit) come with the slow query,
once a minute or when a new GPU shows up. For 4,000 GPUs a refresh is then ~2.8 MB of JSON
(~0.15 MB gzipped), not the ~6.5 MB that every label of the five series would cost. (Dropping
`instance` too with label_replace saves 0.6 MB but costs Prometheus half as much CPU again.)
"""

from __future__ import annotations

from dataclasses import dataclass

HOST_LABELS = ("Hostname", "hostname")  # dcgm-exporter before/after #655; nvitop's is `hostname`
INSTANCE_LABEL = "instance"  # Prometheus' own target label: the host when the exporter names none
GPU_LABELS = ("gpu", "index")  # dcgm-exporter, nvitop
UUID_LABELS = ("UUID", "uuid")
MODEL_LABELS = ("modelName", "devicename")
PROCESS_LABELS = ("pid", "username", "command")
PART_LABEL = "lander_part"  # added by label_replace so the parts of one `or` query never collide

#: Prometheus' default global scrape_interval, assumed when the targets API does not say.
DEFAULT_SCRAPE_INTERVAL_S = 60.0
#: A host is stale once its newest sample is older than this many of its scrape intervals.
STALE_SCRAPES = 3
#: GPUs that reported within this window are remembered (shown stale) after their host stops.
REMEMBER_S = 600


@dataclass(frozen=True)
class Family:
    """One exporter's metric names. Units are the same for both: MiB, %, degrees C, W."""

    name: str
    free: str
    used: str
    reserved: str | None
    total: str | None
    util: str
    temp: str
    power: str
    power_cap: str | None
    process_memory: str | None = None
    process_info: str | None = None

    def live_metrics(self) -> tuple[str, ...]:
        """Per-GPU numbers read on every refresh."""
        return (self.free, self.used, self.util, self.temp, self.power)

    def static_metrics(self) -> tuple[str, ...]:
        """Per-GPU numbers that do not change while a GPU runs, read with the slow query."""
        return tuple(n for n in (self.reserved, self.total, self.power_cap) if n)

    def process_metrics(self) -> tuple[str, ...]:
        return tuple(n for n in (self.process_memory, self.process_info) if n)


DCGM = Family(
    name="dcgm",
    free="DCGM_FI_DEV_FB_FREE",
    used="DCGM_FI_DEV_FB_USED",
    reserved="DCGM_FI_DEV_FB_RESERVED",
    total="DCGM_FI_DEV_FB_TOTAL",
    util="DCGM_FI_DEV_GPU_UTIL",
    temp="DCGM_FI_DEV_GPU_TEMP",
    power="DCGM_FI_DEV_POWER_USAGE",
    power_cap="DCGM_FI_DEV_POWER_MGMT_LIMIT",
)
NVITOP = Family(
    name="nvitop",
    free="gpu_memory_free_MiB",
    used="gpu_memory_used_MiB",
    reserved=None,  # derived: total - used - free (nvitop reads NVML memory v2 where it can)
    total="gpu_memory_total_MiB",
    util="gpu_utilization_Percentage",
    temp="gpu_temperature_C",
    power="gpu_power_usage_W",
    power_cap="gpu_power_limit_W",
    process_memory="process_gpu_memory_MiB",
    process_info="process_info_info",
)
FAMILIES = (DCGM, NVITOP)  # order = preference when two exporters report the same GPU (same UUID)
FAMILY_OF = {m: f for f in FAMILIES for m in (*f.live_metrics(), *f.static_metrics(), *f.process_metrics())}


def _names(metrics: list[str]) -> str:
    return '{__name__=~"' + "|".join(metrics) + '"}'


def _by(*groups: tuple[str, ...]) -> str:
    return ", ".join(label for g in groups for label in g)


def _part(expr: str, part: str) -> str:
    return f'label_replace({expr}, "{PART_LABEL}", "{part}", "", "")'


HOST = (*HOST_LABELS, INSTANCE_LABEL)
IDENTITY = (*HOST, *GPU_LABELS, *UUID_LABELS, *MODEL_LABELS)
FREE_METRICS = [f.free for f in FAMILIES]


def live_query() -> str:
    """Everything one refresh needs, in one request: the changing numbers per GPU (keyed by host
    and GPU number only), each host's newest sample time and target (`timestamp()` gives the
    sample's own time, and nothing once Prometheus has marked a dead target's series stale), and
    per-process memory. The parts never collide in `or`: they differ in their label names."""
    live = [m for f in FAMILIES for m in f.live_metrics()]
    procs = [m for f in FAMILIES for m in f.process_metrics()]
    parts = [
        f"max by (__name__, {_by(HOST, GPU_LABELS)}) ({_names(live)})",
        _part(f"max by ({_by(HOST)}) (timestamp({_names(FREE_METRICS)}))", "seen"),
        f"max by (__name__, {_by(HOST, GPU_LABELS, PROCESS_LABELS)}) ({_names(procs)})",
    ]
    return " or ".join(parts)


def _last_total(family: Family, window: str) -> str:
    """A GPU's total memory as last reported within `window`: the exporter's total, else (NVML
    memory v2) free + used + reserved, else free + used (DCGM before FB_RESERVED existed, when
    `used` still held the reserve). One-to-one matching works: a GPU's series share their labels."""
    def last(metric: str) -> str:
        return f"last_over_time({metric}[{window}])"

    options = [last(family.total)] if family.total else []
    if family.reserved:
        options.append(f"{last(family.free)} + {last(family.used)} + {last(family.reserved)}")
    options.append(f"{last(family.free)} + {last(family.used)}")
    return " or ".join(f"({o})" for o in options)


def facts_query(window_s: int = REMEMBER_S) -> str:
    """The slow query: every GPU that reported in the last `window_s`, with its identity and, as
    the value, its total memory (`last_over_time` skips the staleness markers a failed scrape
    writes, so a host that died before we looked is listed, size and all), and the numbers that
    do not change while a GPU runs."""
    window = f"{int(window_s)}s"
    totals = " or ".join(f"({_last_total(f, window)})" for f in FAMILIES)
    static = [m for f in FAMILIES for m in f.static_metrics()]
    return " or ".join([
        _part(f"max by ({_by(IDENTITY)}) ({totals})", "identity"),
        f"max by (__name__, {_by(HOST, GPU_LABELS)}) ({_names(static)})",
    ])


def _regex_escape(text: str) -> str:
    """Escape for a PromQL (RE2) regex inside a double-quoted string."""
    special = set(".^$*+?()[]{}|\\")
    out = "".join("\\" + c if c in special else c for c in text)
    return out.replace("\\", "\\\\").replace('"', '\\"')


def used_history_query(hosts: tuple[str, ...] = (), per_host: bool = False) -> str:
    """Used memory over time, per GPU (or summed per host), optionally for some hosts only."""
    used = [f.used for f in FAMILIES]
    group = _by(HOST) if per_host else _by(HOST, GPU_LABELS)
    agg = "sum" if per_host else "max"
    if not hosts:
        return f"{agg} by ({group}) ({_names(used)})"
    pattern = "|".join(_regex_escape(h) for h in hosts)
    selectors = []
    for label in HOST:
        sel = '{__name__=~"' + "|".join(used) + f'", {label}=~"{pattern}"' + "}"
        selectors.append(f"{agg} by ({group}) ({sel})")
    return " or ".join(selectors)


def host_of(labels: dict[str, str]) -> str:
    for name in HOST_LABELS:
        if labels.get(name):
            return labels[name]
    return labels.get(INSTANCE_LABEL, "")


def gpu_of(labels: dict[str, str]) -> str:
    for name in GPU_LABELS:
        if name in labels:
            return labels[name]
    return ""


def first(labels: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        if labels.get(name):
            return labels[name]
    return ""
