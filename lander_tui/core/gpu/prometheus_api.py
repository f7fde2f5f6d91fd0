"""The slice of Prometheus' HTTP API that lander-tui reads, and every way it can fail, as states.

Endpoints (https://prometheus.io/docs/prometheus/latest/querying/api/): `POST /api/v1/query`
(instant), `POST /api/v1/query_range` (history), `GET /api/v1/targets` (scrape interval and the
last scrape error of each target). Only the URL the user gave is contacted: redirects are not
followed, proxies only as the environment (HTTP(S)_PROXY) says, TLS is always verified.

Credentials come from the environment, never from a flag (so they stay out of shell history
and `ps`): `LANDER_TUI_PROMETHEUS_TOKEN` (bearer token) or `LANDER_TUI_PROMETHEUS_USER` +
`LANDER_TUI_PROMETHEUS_PASSWORD` (basic auth); `LANDER_TUI_PROMETHEUS_CA_FILE` names a CA bundle
for a private CA (verification stays on).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import lander_tui.core.gpu.snapshot as S
from lander_tui.core.errors import LanderError

TOKEN_ENV = "LANDER_TUI_PROMETHEUS_TOKEN"
USER_ENV = "LANDER_TUI_PROMETHEUS_USER"
PASSWORD_ENV = "LANDER_TUI_PROMETHEUS_PASSWORD"
CA_FILE_ENV = "LANDER_TUI_PROMETHEUS_CA_FILE"
CONNECT_TIMEOUT_S = 3.0  # a reachable server accepts in milliseconds; a wrong address should fail fast
READ_TIMEOUT_S = 10.0  # a 4,000-GPU fleet query answers in well under a second on a healthy server
USER_AGENT = "lander-tui (Prometheus GPU source)"


class PromFailure(Exception):
    """A failed request, already sorted into a `Snapshot.state` with its one-line message."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


@dataclass
class Traffic:
    """What the requests so far cost on the wire (compressed) and once decoded, for benchmarks."""

    requests: int = 0
    wire_bytes: int = 0
    body_bytes: int = 0


def check_url(url: str) -> str:
    """The base URL without a trailing slash, or a one-line LanderError saying what is wrong."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LanderError(f"Prometheus URL {url!r} is not an http(s) URL; give the server's base URL, "
                          "e.g. http://prometheus:9090")
    if parts.query or parts.fragment:
        raise LanderError(f"Prometheus URL {url!r}: give the base URL only (no ?query or #fragment)")
    base = text.rstrip("/")
    for tail in ("/api/v1/query", "/api/v1", "/graph"):
        if base.endswith(tail):
            base = base.removesuffix(tail)
    return base


def _auth_from_env(env: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    import httpx2

    token = env.get(TOKEN_ENV, "")
    user = env.get(USER_ENV, "")
    password = env.get(PASSWORD_ENV, "")
    if token and (user or password):
        raise LanderError(f"set either {TOKEN_ENV} or {USER_ENV}/{PASSWORD_ENV}, not both")
    if password and not user:
        raise LanderError(f"{PASSWORD_ENV} is set but {USER_ENV} is not")
    if token:
        return None, {"Authorization": f"Bearer {token}"}
    if user:
        return httpx2.BasicAuth(user, password), {}
    return None, {}


def _verify_from_env(env: Mapping[str, str]) -> ssl.SSLContext | bool:
    ca = env.get(CA_FILE_ENV, "")
    if not ca:
        return True
    if not os.path.isfile(ca):
        raise LanderError(f"{CA_FILE_ENV}={ca} is not a file; point it at a PEM CA bundle")
    try:
        return ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError) as err:
        raise LanderError(f"{CA_FILE_ENV}={ca} is not a usable PEM CA bundle ({err})") from None


class PrometheusApi:
    """One HTTP client (kept alive between polls) for one Prometheus base URL."""

    def __init__(self, url: str, *, env: Mapping[str, str] | None = None, transport: Any = None) -> None:
        import httpx2

        self.url = check_url(url)
        env = os.environ if env is None else env
        auth, headers = _auth_from_env(env)
        self._has_credentials = bool(auth or headers)
        self.traffic = Traffic()
        self._http = httpx2.Client(
            base_url=self.url,
            auth=auth,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **headers},
            verify=_verify_from_env(env),
            timeout=httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # -- endpoints ------------------------------------------------------------------------------

    def query(self, promql: str) -> tuple[float, list[dict[str, Any]]]:
        """(Prometheus' evaluation time, the instant vector) for one PromQL expression."""
        data = self._call("POST", "/api/v1/query", {"query": promql})
        if data.get("resultType") != "vector":
            raise PromFailure(S.QUERY_ERROR, f"Prometheus at {self.url} answered a {data.get('resultType')} "
                              "where an instant vector was expected")
        result = data.get("result") or []
        evaluated = float(result[0]["value"][0]) if result else 0.0
        return evaluated, result

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """The range vector (`[{"metric": {...}, "values": [[t, "v"], ...]}, ...]`)."""
        form = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self._call("POST", "/api/v1/query_range", form)
        return list(data.get("result") or [])

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets (labels, health, lastError, scrapeInterval)."""
        data = self._call("GET", "/api/v1/targets", {"state": "active"})
        return list(data.get("activeTargets") or [])

    # -- one request, every failure sorted ---------------------------------------------------------

    def _call(self, method: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        import httpx2

        where = f"Prometheus at {self.url}"
        try:
            if method == "POST":
                response = self._http.post(path, data=params)
            else:
                response = self._http.get(path, params=params)
            body = response.content
        except httpx2.TimeoutException as err:
            kind = "connect" if isinstance(err, httpx2.ConnectTimeout) else "answer"
            limit = CONNECT_TIMEOUT_S if kind == "connect" else READ_TIMEOUT_S
            raise PromFailure(S.UNREACHABLE, f"{where} did not {kind} within {limit:g} s; check the URL and "
                              "that it is reachable from here") from None
        except httpx2.HTTPError as err:
            raise PromFailure(S.UNREACHABLE, _transport_message(where, err)) from None
        self.traffic.requests += 1
        self.traffic.wire_bytes += response.num_bytes_downloaded
        self.traffic.body_bytes += len(body)
        status = response.status_code
        if response.is_redirect:
            to = response.headers.get("location", "?")
            raise PromFailure(S.NOT_PROMETHEUS, f"{where} redirects {path} to {to}; give the final URL "
                              "(lander-tui does not follow redirects)")
        if status in (401, 403):
            hint = ("the credentials in the environment were refused" if self._has_credentials else
                    f"set {TOKEN_ENV} (bearer token) or {USER_ENV} and {PASSWORD_ENV}")
            raise PromFailure(S.AUTH_FAILED, f"{where} answered HTTP {status} for {path}: {hint}")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise PromFailure(S.NOT_PROMETHEUS, f"{where} is not a Prometheus API (HTTP {status}, {kind} "
                              f"for {path}); give the server's base URL, e.g. http://prometheus:9090")
        if payload["status"] == "error":
            kind = payload.get("errorType") or f"HTTP {status}"
            detail = str(payload.get("error") or "no detail").splitlines()[0]
            raise PromFailure(S.QUERY_ERROR, f"{where} refused the query ({kind}: {detail})")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise PromFailure(S.NOT_PROMETHEUS, f"{where} answered {path} without a data object; is it Prometheus?")
        return data


def _transport_message(where: str, err: Exception) -> str:
    text = str(err) or type(err).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return (f"{where}: TLS verification failed ({text.splitlines()[0]}); if it uses a private CA, "
                f"set {CA_FILE_ENV}=/path/to/ca.pem")
    if "refused" in text.lower():
        return f"cannot reach {where} (connection refused): is it running, and is the port right?"
    if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
        return f"cannot reach {where} (unknown host name): check the URL"
    return f"cannot reach {where} ({text.splitlines()[0]}); check the URL and the network"
