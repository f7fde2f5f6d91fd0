"""A real Prometheus (Debian's `prometheus` binary) scraping fake GPU hosts that speak the exporters' formats.

* `DcgmHost`: dcgm-exporter's exposition, byte for byte as its template writes it
  (NVIDIA/dcgm-exporter `internal/pkg/rendermetrics/render_metrics.go`: `# HELP`/`# TYPE` per
  counter, labels `gpu, UUID, pci_bus_id, device, modelName[, Hostname|hostname]` then attributes
  such as `DCGM_FI_DRIVER_VERSION`; help texts from `etc/default-counters.csv`; floats as Go's `%f`).
* `NvitopHost`: nvitop-exporter's gauges, registered with the same names, units and label names as
  `nvitop-exporter/nvitop_exporter/exporter.py` in the real `prometheus_client` it uses, so the
  `_MiB`/`_Percentage` suffixes and `process_info_info` come from the library, not from us.
* `Exporter`: one such host on 127.0.0.1:<free port>; `stop()` closes the port, as a dead host does.
* `Prometheus`: the real server on 127.0.0.1:<free port>, a generated config and a temp TSDB.

A missing `prometheus` binary fails the test with the command that installs it (no skip).

How Debian's prometheus (bookworm: 2.42.0+ds-5+deb12u1, /usr/bin/prometheus) behaves, as these
tests rely on it:
* It runs unprivileged from any directory with `--config.file`, `--storage.tsdb.path=<temp dir>`
  (created if missing), `--web.listen-address=127.0.0.1:<port>` and `--log.level=warn`; the package's
  own service (/etc/default/prometheus) is not involved, and in a container without systemd the
  package starts none. `--web.config.file` gives it TLS (`tls_server_config`) and basic auth
  (`basic_auth_users`, bcrypt hashes); then /-/ready wants credentials too. `--query.max-samples=N`
  makes a big query fail with `execution: query processing would load too many samples`.
  `--query.timeout` takes ms at the smallest (`1ns` is refused at start-up).
* /-/ready answers ~1 s after start, but the first scrape comes 5-6 s after start (the scrape
  manager applies new target sets every 5 s), then one per `scrape_interval` (1 s works).
* /api/v1/targets lists each target's `scrapeInterval` ("1s"), `health` and `lastError`
  (`Get "http://...": dial tcp ...: connect: connection refused` for a dead exporter).
* A failed scrape writes staleness markers: the dead target's series vanish from instant queries
  at once, while `last_over_time(x[10m])` still returns them. Samples the exporter timestamps itself
  get no markers (they simply age). `timestamp(x)` gives the sample's own time; `max by (__name__,
  ...)` and `label_replace` keep the metric name; `or` keeps both sides' names. POST form queries work.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INSTALL_PROMETHEUS = "install Debian's prometheus: apt-get install prometheus"
SCRAPE_INTERVAL_S = 1
# Prometheus' scrape manager applies target changes every 5 s, so the first scrape of a new
# server lands 5-6 s after start; everything after that follows the 1 s interval.
FIRST_SCRAPE_WAIT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_prometheus() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail(f"the `prometheus` binary is not on PATH: {INSTALL_PROMETHEUS}", pytrace=False)
    return path


@dataclass
class Gpu:
    """One fake GPU: memory in MiB as the exporters report it (used + free + reserved = total)."""

    uuid: str
    model: str = "NVIDIA H100 80GB HBM3"
    total: int = 81559
    used: int = 0
    reserved: int = 480
    util: float = 0.0
    temp: float = 35.0
    power: float = 70.0
    power_cap: float = 700.0
    processes: list[dict[str, Any]] = field(default_factory=list)  # nvitop only: pid, user, command, used

    @property
    def free(self) -> int:
        return self.total - self.reserved - self.used


# (field, help) in etc/default-counters.csv order; help texts verbatim from that file.
_DCGM_COUNTERS = (
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB)."),
)


@dataclass
class DcgmHost:
    """A dcgm-exporter. `host_label`: "Hostname" (releases before May 2026), "hostname" (after
    #655), or "" (run with --no-hostname: Prometheus' `instance` names the host)."""

    name: str
    gpus: list[Gpu]
    host_label: str = "Hostname"
    driver: str = "570.86.15"
    frozen_at_ms: int | None = None  # serve explicit sample timestamps (a stuck federation source)

    def exposition(self) -> str:
        return dcgm_exposition([self])

    def sample_lines(self, fieldname: str) -> list[str]:
        lines = []
        for i, g in enumerate(self.gpus):
            value = {
                "DCGM_FI_DEV_GPU_TEMP": str(int(g.temp)),
                "DCGM_FI_DEV_POWER_USAGE": f"{g.power:f}",
                "DCGM_FI_DEV_GPU_UTIL": str(int(g.util)),
                "DCGM_FI_DEV_FB_FREE": str(g.free),
                "DCGM_FI_DEV_FB_USED": str(g.used),
                "DCGM_FI_DEV_FB_RESERVED": str(g.reserved),
            }[fieldname]
            host = f',{self.host_label}="{self.name}"' if self.host_label else ""
            labels = (f'gpu="{i}",UUID="{g.uuid}",pci_bus_id="00000000:{0x18 + i:02X}:00.0",device="nvidia{i}",'
                      f'modelName="{g.model}"{host},DCGM_FI_DRIVER_VERSION="{self.driver}"')
            stamp = f" {self.frozen_at_ms}" if self.frozen_at_ms is not None else ""
            lines.append(f"{fieldname}{{{labels}}} {value}{stamp}")
        return lines


def dcgm_exposition(hosts: list[DcgmHost]) -> str:
    """One /metrics page for these hosts (one host = one dcgm-exporter; many = a federation-style
    page, each counter's HELP/TYPE once as the text format requires)."""
    lines = []
    for fieldname, help_text in _DCGM_COUNTERS:
        lines.append(f"# HELP {fieldname} {help_text}")
        lines.append(f"# TYPE {fieldname} gauge")
        for h in hosts:
            lines.extend(h.sample_lines(fieldname))
    return "\n".join(lines) + "\n"


@dataclass
class DcgmFleet:
    """Many hosts behind one scrape target (as a federating Prometheus or a push gateway serves
    them), so a 500-host fleet costs one scrape, not 500. The page is built once."""

    hosts: list[DcgmHost]
    _page: str = ""

    def exposition(self) -> str:
        if not self._page:
            self._page = dcgm_exposition(self.hosts)
        return self._page


def make_fleet(n_hosts: int, gpus_per_host: int = 8) -> DcgmFleet:
    """`node-001`..: H100s whose used memory follows a fixed pattern (every 7th GPU full, others 0-30 GiB)."""
    hosts = []
    for h in range(n_hosts):
        gpus = []
        for i in range(gpus_per_host):
            k = h * gpus_per_host + i
            used = 80_000 if k % 7 == 0 else (k * 3_517) % 30_000
            gpus.append(Gpu(uuid=f"GPU-{h:05d}{i:03d}-0000-4000-8000-000000000000", used=used, util=k % 101,
                            temp=30 + k % 50, power=60 + k % 600))
        hosts.append(DcgmHost(f"node-{h + 1:03d}", gpus))
    return DcgmFleet(hosts)


@dataclass
class NvitopHost:
    """An nvitop-exporter (its `hostname` label defaults to the host's IP address)."""

    name: str
    gpus: list[Gpu]

    def exposition(self) -> str:
        from prometheus_client import CollectorRegistry, Gauge, Info, generate_latest

        reg = CollectorRegistry()
        gpu_labels = ["hostname", "index", "devicename", "uuid"]
        proc_labels = [*gpu_labels, "pid", "username"]

        def gauge(name: str, doc: str, unit: str, labels: list[str] = gpu_labels) -> Gauge:
            return Gauge(name=name, documentation=doc, unit=unit, labelnames=labels, registry=reg)

        util = gauge("gpu_utilization", "GPU utilization (%).", "Percentage")
        mem_util = gauge("gpu_memory_utilization", "GPU memory utilization (%).", "Percentage")
        total = gauge("gpu_memory_total", "GPU memory total (MiB).", "MiB")
        used = gauge("gpu_memory_used", "GPU memory used (MiB).", "MiB")
        free = gauge("gpu_memory_free", "GPU memory free (MiB).", "MiB")
        power = gauge("gpu_power_usage", "GPU power usage (W).", "W")
        limit = gauge("gpu_power_limit", "GPU power limit (W).", "W")
        temp = gauge("gpu_temperature", "GPU temperature (C).", "C")
        info = Info(name="process_info", documentation="Process information.", labelnames=proc_labels, registry=reg)
        pmem = gauge("process_gpu_memory", "Process GPU memory (MiB).", "MiB", proc_labels)
        for i, g in enumerate(self.gpus):
            lab = dict(hostname=self.name, index=str(i), devicename=g.model, uuid=g.uuid)
            for metric, value in ((util, g.util), (mem_util, g.util / 2), (total, g.total), (used, g.used),
                                  (free, g.free), (power, g.power), (limit, g.power_cap), (temp, g.temp)):
                metric.labels(**lab).set(value)
            for p in g.processes:
                plab = dict(lab, pid=str(p["pid"]), username=p["user"])
                info.labels(**plab).info({"status": "running", "command": p["command"]})
                pmem.labels(**plab).set(p["used"])
        return generate_latest(reg).decode()


class Exporter:
    """One host's /metrics on 127.0.0.1; the host object can be changed between scrapes."""

    def __init__(self, host: DcgmHost | NvitopHost | DcgmFleet) -> None:
        self.host = host
        self.lock = threading.Lock()
        self.scrapes = 0
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with exporter.lock:
                    body = exporter.host.exposition().encode()
                    exporter.scrapes += 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # Prometheus gave up on this scrape (its timeout) or is shutting down

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self.alive = True

    def change(self, fn: Callable[[Any], None]) -> int:
        """Apply `fn(host)` under the lock; returns the scrape count at that moment."""
        with self.lock:
            fn(self.host)
            return self.scrapes

    def stop(self) -> None:
        if self.alive:
            self.server.shutdown()
            self.server.server_close()
            self.alive = False


class Prometheus:
    """The real server: `prometheus --config.file --storage.tsdb.path --web.listen-address`."""

    def __init__(self, workdir: Path, targets: dict[str, list[str]], extra_args: tuple[str, ...] = (),
                 web_config: str | None = None, scheme: str = "http", interval_s: int = SCRAPE_INTERVAL_S) -> None:
        binary = require_prometheus()
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        lines = ["global:", f"  scrape_interval: {interval_s}s", f"  scrape_timeout: {interval_s}s",
                 "scrape_configs:"]
        for job, addresses in targets.items():
            lines += [f"  - job_name: {job}", "    honor_timestamps: true", "    static_configs:",
                      "      - targets: [" + ", ".join(f'"{a}"' for a in addresses) + "]"]
        if not targets:
            lines[-1] = "scrape_configs: []"
        config = workdir / "prometheus.yml"
        config.write_text("\n".join(lines) + "\n")
        args = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *extra_args]
        if web_config is not None:
            web = workdir / "web.yml"
            web.write_text(web_config)
            args.append(f"--web.config.file={web}")
        self.log = workdir / "prometheus.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20.0, context: Any = None) -> None:
        """Until /-/ready answers (any HTTP answer counts when auth or TLS guard it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1, context=context):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"prometheus not ready after {timeout:.0f} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log_file.close()


def wait_until(what: str, check: Callable[[], Any], timeout: float = FIRST_SCRAPE_WAIT_S, every: float = 0.2) -> Any:
    """Poll `check()` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"no {what} within {timeout:.0f} s (last: {last!r})")


# -- one start for every server the collected modules need -------------------------------------

RECIPES: dict[str, Callable[[Path], Any]] = {}


def recipe(name: str) -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    """Register how a test module starts its servers (called at import, i.e. at collection)."""
    def register(fn: Callable[[Path], Any]) -> Callable[[Path], Any]:
        RECIPES[name] = fn
        return fn

    return register


@dataclass
class Started:
    """What one recipe started: its Prometheus servers and exporters (stop() is idempotent)."""

    proms: dict[str, Prometheus]
    exporters: dict[str, Exporter]
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        for p in self.proms.values():
            p.stop()
        for e in self.exporters.values():
            e.stop()


@contextmanager
def polled(started: Started, what: str, ready: Callable[[Any], Any], every: float = 0.2) -> Iterator[Any]:
    """A PrometheusBackend on `started`'s main server once `ready(backend)` holds (waited for as `what`);
    closed, and `started`'s servers stopped, when the module is done."""
    from lander_tui.core.gpu.prometheus_backend import PrometheusBackend

    prom = started.proms["main"]
    backend = None
    try:
        prom.wait_ready()
        backend = PrometheusBackend(prom.url, env={}, min_interval_s=0)
        wait_until(what, lambda: ready(backend), every=every)
        yield backend
    finally:
        if backend is not None:
            backend.close()
        started.stop()


class Farm:
    """Every collected module's servers, started at once: each Prometheus spends 5-6 s before its
    first scrape, so starting them together pays that wait once instead of once per module.
    A module takes its own with `take(name)` and stops them when it is done."""

    def __init__(self, tmp_path_factory: Any) -> None:
        self._made: dict[str, Started] = {}
        for name, start in RECIPES.items():
            self._made[name] = start(tmp_path_factory.mktemp(name))

    def take(self, name: str) -> Started:
        return self._made[name]

    def stop_all(self) -> None:
        for s in self._made.values():
            s.stop()


@pytest.fixture(scope="session")
def prometheus_farm(tmp_path_factory):
    require_prometheus()
    farm = Farm(tmp_path_factory)
    yield farm
    farm.stop_all()
