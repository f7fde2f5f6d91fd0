"""A small HTTP client for engines on this machine: short timeouts, capped answers, typed failures.

Every engine read goes through `LiveClient`, so "a slow or dead engine never slows anything" is
enforced in one place: a connection must open within `connect_s`, each read must progress within
`read_s`, and the whole answer must arrive within `total_s` (a server that trickles bytes is cut
off too). Failures come back as `ReadFailure(state, message)` with the states of `state.py`, never
as a library exception. Proxies from the environment are ignored (`trust_env=False`): a loopback
address must reach the engine, not an HTTP proxy.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from lander_tui.core.live.state import AUTH, DEAD, LOADING, MALFORMED, SLOW

#: Connection to a process on this machine: loopback answers in well under a millisecond, so a
#: quarter second only passes when the process is not accepting (stopped, swapping, overloaded).
CONNECT_S = 0.25
#: Per read: llama-server answers /slots through its task queue, which waits for the current
#: decode step; one step of a large model on a busy GPU can take a few hundred ms.
READ_S = 1.0
#: The whole answer, however it trickles in.
TOTAL_S = 2.0
#: Largest answer we read. /props carries the chat template (tens of KiB); /metrics of a vLLM with
#: many histograms is ~100 KiB. Anything past this is not an engine status page.
MAX_BYTES = 4 * 1024 * 1024


class ReadFailure(Exception):
    """An engine endpoint did not give a usable answer; `state` is one of state.STATES."""

    def __init__(self, state: str, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.state = state
        self.status = status
        self.body = body


class LiveClient:
    """Thread-safe: the poller reads several engines at once through one client (one pool)."""

    def __init__(self, *, connect_s: float = CONNECT_S, read_s: float = READ_S, total_s: float = TOTAL_S,
                 max_bytes: int = MAX_BYTES) -> None:
        self.connect_s = connect_s
        self.read_s = read_s
        self.total_s = total_s
        self.max_bytes = max_bytes
        self._client: Any = None
        self._lock = threading.Lock()

    def _http(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx2

                self._client = httpx2.Client(
                    timeout=httpx2.Timeout(self.read_s, connect=self.connect_s, pool=self.connect_s),
                    trust_env=False,
                    follow_redirects=False,
                    headers={"User-Agent": "lander-tui", "Accept": "application/json, text/plain"},
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- requests ------------------------------------------------------------------------------
    def get_text(self, url: str) -> str:
        return self._request("GET", url, None)

    def get_json(self, url: str) -> Any:
        return _parse_json(url, self._request("GET", url, None))

    def post_json(self, url: str, body: dict[str, Any]) -> Any:
        return _parse_json(url, self._request("POST", url, body))

    def _request(self, method: str, url: str, body: dict[str, Any] | None) -> str:
        import httpx2

        started = time.monotonic()
        deadline = started + self.total_s
        try:
            with self._http().stream(method, url, json=body) as r:
                buf = bytearray()
                for chunk in r.iter_bytes():
                    buf += chunk
                    if len(buf) > self.max_bytes:
                        raise ReadFailure(MALFORMED, f"{url} sent more than {self.max_bytes // 1024} KiB; "
                                          "not an engine status answer")
                    if time.monotonic() > deadline:
                        raise ReadFailure(SLOW, f"{url} did not finish its answer within {self.total_s:g} s")
                text = buf.decode("utf-8", errors="replace")
                _check_status(url, r.status_code, text)
                return text
        except ReadFailure:
            raise
        except httpx2.TimeoutException:
            waited = time.monotonic() - started
            raise ReadFailure(SLOW, f"no answer from {url} within {waited:.1f} s") from None
        except (httpx2.ConnectError, httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError) as err:
            raise ReadFailure(DEAD, f"nothing answers at {url} ({_reason(err)})") from None
        except httpx2.HTTPError as err:  # any other transport trouble (bad URL scheme, proxy ...)
            raise ReadFailure(DEAD, f"cannot read {url}: {_reason(err)}") from None
        except ValueError as err:  # httpx2 rejects a malformed URL with ValueError subclasses
            raise ReadFailure(DEAD, f"cannot read {url}: {err}") from None


def _reason(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text.splitlines()[0][:120]


def _check_status(url: str, status: int, text: str) -> None:
    if status < 400:
        return
    snippet = " ".join(text.split())[:160]
    if status in (401, 403):
        raise ReadFailure(AUTH, f"auth required: {url} answered {status}; the engine was started with an API key",
                          status, text)
    if status == 503:
        # llama-server answers 503 {"error":{"message":"Loading model"}} until the model is up
        # (tools/server/server-http.cpp, middleware_server_state); others use 503 while starting too.
        raise ReadFailure(LOADING, f"{url} is not ready yet (503: {snippet or 'unavailable'})", status, text)
    raise ReadFailure(MALFORMED, f"{url} answered {status}: {snippet or 'no body'}", status, text)


def _parse_json(url: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ReadFailure(MALFORMED, f"{url} did not answer JSON ({err.msg} at char {err.pos})") from None
