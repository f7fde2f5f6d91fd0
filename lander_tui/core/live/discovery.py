"""Which engines run on this machine, and where each one listens: from process tables, no scanning.

One pass over the process table (psutil) recognises engine servers by their command lines (each
engine module's `recognise`). A recognised process below another one (Ollama's llama-server
runners, vLLM's EngineCore, TGI's router and shards) belongs to that topmost server. The GPU
processes of a `Snapshot` are tied to their server the same way, through their parents. Each
server's port comes from its flags or defaults, checked against the sockets it (or a child)
actually listens on. Only loopback addresses are ever contacted: a server bound to another address
only is reported as unreachable with the flag that reads it anyway (`--engine URL`). Nothing here
touches the network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from lander_tui.core.errors import LanderError
from lander_tui.core.live.base import EngineReader
from lander_tui.core.live.cmdline import LazyEnviron, ProcessView
from lander_tui.core.live.ollama import is_ollama_runner
from lander_tui.core.live.registry import READERS, reader_for

_ANY = ("", "0.0.0.0", "::", "*")


@dataclass(frozen=True)
class Endpoint:
    """One engine to read: where, what kind, and which processes are its."""

    kind: str | None  # None: a URL the user gave without a kind; found out on first read
    url: str
    proc: ProcessView | None = None
    gpu_pids: tuple[int, ...] = ()
    problem: str = ""  # why we will not contact it (not on loopback, a unix socket)
    given: bool = False  # the user named this URL (--engine)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


@dataclass(frozen=True)
class ProcRow:
    pid: int
    ppid: int
    argv: tuple[str, ...]


def process_table() -> dict[int, ProcRow]:
    """Every process psutil can see: pid -> (parent, command line). Hidden ones have empty argv."""
    import psutil

    table: dict[int, ProcRow] = {}
    for p in psutil.process_iter(["pid", "ppid", "cmdline"]):
        info: dict[str, Any] = p.info
        argv = tuple(info.get("cmdline") or ())
        table[int(info["pid"])] = ProcRow(int(info["pid"]), int(info.get("ppid") or 0), argv)
    return table


def _ancestors(pid: int, table: dict[int, ProcRow]) -> Iterable[int]:
    seen = {pid}
    row = table.get(pid)
    while row is not None and row.ppid and row.ppid not in seen:
        seen.add(row.ppid)
        yield row.ppid
        row = table.get(row.ppid)


def _recognise(row: ProcRow) -> tuple[EngineReader, int, LazyEnviron] | None:
    if not row.argv:
        return None
    env = LazyEnviron(row.pid)
    for reader in READERS:
        port = reader.recognise(row.argv, env)
        if port is not None:
            return reader, port, env
    return None


def discover(snapshot: Any = None, urls: Sequence[str] = (), *, scan: bool = True,
             table: dict[int, ProcRow] | None = None) -> list[Endpoint]:
    """Engines running here (when `scan`) plus the URLs the user named, each once.

    `snapshot` (a core.gpu Snapshot) ties GPU processes to their servers. `urls` entries are
    `URL` or `KIND=URL`; a bad one raises LanderError (a user mistake, one line).
    """
    given = [parse_engine_url(u) for u in urls]
    found: list[Endpoint] = []
    if scan:
        rows = table if table is not None else process_table()
        found = _servers(rows, _gpu_pids(snapshot))
    out = list(found)
    for kind, url in given:
        same = next((e for e in out if _same_address(e.url, url)), None)
        if same is not None:
            out[out.index(same)] = replace(same, given=True, kind=kind or same.kind, url=url, problem="")
        else:
            out.append(Endpoint(kind, url, given=True))
    return out


def _gpu_pids(snapshot: Any) -> set[int]:
    if snapshot is None or not getattr(snapshot, "ok", False):
        return set()
    return {p.pid for g in snapshot.gpus for p in g.processes}


def _servers(table: dict[int, ProcRow], gpu_pids: set[int]) -> list[Endpoint]:
    recognised = {pid: hit for pid, row in table.items() if (hit := _recognise(row)) is not None}
    tops = [pid for pid in recognised if not any(a in recognised for a in _ancestors(pid, table))]
    children: dict[int, list[int]] = {}
    for pid in table:
        for a in _ancestors(pid, table):
            if a in recognised and a in tops:
                children.setdefault(a, []).append(pid)
                break
    owners: dict[int, list[int]] = {}
    for gp in gpu_pids:
        owner = gp if gp in tops else next((a for a in _ancestors(gp, table) if a in tops), None)
        if owner is not None:
            owners.setdefault(owner, []).append(gp)
    listening = _listening() if tops else {}
    out = []
    for pid in sorted(tops):
        reader, port, env = recognised[pid]
        row = table[pid]
        kids = tuple(ProcessView(c, table[c].argv, LazyEnviron(c)) for c in sorted(children.get(pid, []))
                     if c in recognised or is_ollama_runner(table[c].argv))
        proc = ProcessView(pid, row.argv, env, kids)
        own = listening.get(pid, [])
        tree = own + [a for c in children.get(pid, []) for a in listening.get(c, [])]
        url, problem = _address(reader, proc, port, own, sorted(set(tree)))
        out.append(Endpoint(reader.kind, url, proc, tuple(sorted(owners.get(pid, []))), problem))
    return out


def _address(reader: EngineReader, proc: ProcessView, port: int, own: list[tuple[str, int]],
             every: list[tuple[str, int]]) -> tuple[str, str]:
    """(base URL to contact, problem) from the claimed port/host and the sockets the server (`own`)
    and its process tree (`every`) listen on."""
    host = reader.bind_host(proc.argv, proc.env)
    if host is not None and (host.startswith("unix:") or host.endswith(".sock")):
        return f"unix:{host.removeprefix('unix:')}", (
            f"listens on a unix socket ({host.removeprefix('unix:')}); lander-tui reads TCP on loopback only")
    chosen = next(((ip, p) for ip, p in every if p == port), None)
    if chosen is None and len({p for _, p in own}) == 1:
        chosen = own[0]
    if chosen is None and len({p for _, p in every}) == 1:
        chosen = every[0]
    if chosen is not None:
        host, port = chosen
    contact = _loopback_for(host)
    if contact is None:
        return f"http://{_bracket(host or '')}:{port}", (
            f"listens on {host}:{port} only; lander-tui contacts loopback only "
            f"(read it anyway with --engine http://{_bracket(host or '')}:{port})")
    return f"http://{_bracket(contact)}:{port}", ""


def _listening() -> dict[int, list[tuple[str, int]]]:
    """pid -> (ip, port) of its TCP sockets in LISTEN state. One system-wide read (~30 ms) instead of
    one per process (~20 ms each: each reads the whole socket table); other users' processes, whose
    sockets the kernel does not attribute to us, are simply absent."""
    import psutil

    out: dict[int, list[tuple[str, int]]] = {}
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return out
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.pid:
            out.setdefault(c.pid, []).append((c.laddr.ip, c.laddr.port))
    return out


def _loopback_for(host: str | None) -> str | None:
    """The loopback address that reaches a server bound to `host`, or None if none does."""
    if host is None or host in _ANY:
        return "::1" if host == "::" else "127.0.0.1"
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None  # a host name other than localhost: resolving it is not our business
    if ip.is_loopback:
        return str(ip)
    if ip.is_unspecified:
        return "127.0.0.1"
    return None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def parse_engine_url(text: str) -> tuple[str | None, str]:
    """`URL`, `KIND=URL` or `HOST:PORT` -> (kind or None, normalised base URL)."""
    raw = text.strip()
    kind: str | None = None
    head, sep, rest = raw.partition("=")
    if sep and "://" not in head and "/" not in head:
        kind, raw = reader_for(head).kind, rest.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LanderError(f"--engine takes URL or KIND=URL, e.g. http://127.0.0.1:8080; got {text!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise LanderError(f"--engine {text!r}: the port is not a number between 1 and 65535") from None
    return kind, raw.rstrip("/")


def _same_address(a: str, b: str) -> bool:
    """Two base URLs that reach the same server here (127.0.0.1 and localhost are one host)."""
    pa, pb = urlsplit(a), urlsplit(b)
    if (pa.port or 80) != (pb.port or 80):
        return False
    ha, hb = pa.hostname or "", pb.hostname or ""
    return ha == hb or (_is_loopback(ha) and _is_loopback(hb))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
