"""A small local Hugging Face Hub for tests: the real `huggingface_hub` client talks to it over HTTP.

It speaks the parts of the Hub API that lander-tui uses, as `tests/data/hub/hub-api.md` describes:
`GET /api/models` (search, sort, limit, expand), `GET /api/models/ORG/NAME[/revision/REV]` (with
`siblings` sizes for `blobs=true`, `safetensors` and `gguf` summaries computed from the files),
`HEAD`/`GET /ORG/NAME/resolve/REV/PATH` with `ETag`, `X-Repo-Commit`, `Content-Length` and
`Range` (206 + `Content-Range`), and errors carrying `X-Error-Code` (RepoNotFound, GatedRepo,
EntryNotFound, RevisionNotFound) or 429 for rate limits. Every request is logged so tests can
check what left the client.

Use `running_fake_hub(tmp_path, monkeypatch)` (a context manager) or the `fake_hub` fixture. Both
point the client at the server: `HF_ENDPOINT` and the cache/token paths in the environment AND in
`huggingface_hub.constants`, which the client reads once at import time.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest

DATE = "2024-07-18T08:56:00.000Z"


@dataclass
class FakeRepo:
    """One model repo: its files (bytes) and the metadata the Hub shows."""

    id: str
    files: dict[str, bytes]
    gated: bool | str = False
    downloads: int = 0
    likes: int = 0
    pipeline_tag: str | None = "text-generation"
    library_name: str | None = "transformers"
    tags: list[str] = field(default_factory=list)
    sha: str = ""
    safetensors: dict[str, Any] | None = None
    gguf: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.sha = self.sha or hashlib.sha1(self.id.encode()).hexdigest()
        if self.safetensors is None:
            self.safetensors = _safetensors_summary(self.files)
        if self.gguf is None:
            self.gguf = _gguf_summary(self.files)
        if self.gguf and not self.tags:
            self.tags = ["gguf", "text-generation"]
        elif not self.tags:
            self.tags = ["transformers", "safetensors", "text-generation"]


def _safetensors_summary(files: dict[str, bytes]) -> dict[str, Any] | None:
    """Parameters per dtype over all .safetensors files, as the Hub's `safetensors` field reports them."""
    params: dict[str, int] = {}
    found = False
    for name, data in files.items():
        if not name.endswith(".safetensors"):
            continue
        found = True
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        for key, t in header.items():
            if key == "__metadata__":
                continue
            count = int(np.prod(t["shape"])) if t["shape"] else 1
            params[t["dtype"]] = params.get(t["dtype"], 0) + count
    return {"parameters": params, "total": sum(params.values())} if found else None


def _gguf_summary(files: dict[str, bytes]) -> dict[str, Any] | None:
    """The Hub's `gguf` field, read with the gguf package's own reader (independent of lander-tui)."""
    from gguf import GGUFReader

    names = sorted(n for n in files if n.endswith(".gguf") and "mmproj" not in n)
    if not names:
        return None
    with tempfile.NamedTemporaryFile(suffix=".gguf") as fh:
        fh.write(files[names[0]])
        fh.flush()
        try:
            r = GGUFReader(fh.name)
        except Exception:  # a broken file: the Hub shows no gguf summary for it
            return {}
        arch_field = r.get_field("general.architecture")
        arch = arch_field.contents() if arch_field else None
        ctx = r.get_field(f"{arch}.context_length")
        out = {"total": int(sum(int(t.n_elements) for t in r.tensors)), "architecture": arch}
        if ctx is not None:
            out["context_length"] = int(ctx.contents())
        del r
    return out


# --- building repos --------------------------------------------------------------------------


def safetensors_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]]) -> bytes:
    """A real safetensors file (written by the `safetensors` library) of zero tensors: name -> (dtype, shape)."""
    from safetensors.numpy import save

    np_dtype = {"F16": np.float16, "F32": np.float32, "I8": np.int8, "I32": np.int32, "U8": np.uint8}
    return save({name: np.zeros(shape, dtype=np_dtype[dt]) for name, (dt, shape) in tensors.items()})


def hf_llama_tensors(cfg: dict[str, Any], *, matrix_dtype: str = "F16",
                     norm_dtype: str = "F32") -> dict[str, tuple[str, tuple[int, ...]]]:
    """Transformers' tensor names and shapes for a Llama/Qwen2-style config (what a safetensors repo holds)."""
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", H // nh)
    F = cfg["intermediate_size"]
    m, n = matrix_dtype, norm_dtype
    t: dict[str, tuple[str, tuple[int, ...]]] = {"model.embed_tokens.weight": (m, (V, H))}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (n, (H,))
        t[p + "self_attn.q_proj.weight"] = (m, (nh * hd, H))
        t[p + "self_attn.k_proj.weight"] = (m, (nkv * hd, H))
        t[p + "self_attn.v_proj.weight"] = (m, (nkv * hd, H))
        if cfg.get("model_type") == "qwen2":
            t[p + "self_attn.q_proj.bias"] = (m, (nh * hd,))
            t[p + "self_attn.k_proj.bias"] = (m, (nkv * hd,))
            t[p + "self_attn.v_proj.bias"] = (m, (nkv * hd,))
        t[p + "self_attn.o_proj.weight"] = (m, (H, nh * hd))
        t[p + "post_attention_layernorm.weight"] = (n, (H,))
        t[p + "mlp.gate_proj.weight"] = (m, (F, H))
        t[p + "mlp.up_proj.weight"] = (m, (F, H))
        t[p + "mlp.down_proj.weight"] = (m, (H, F))
    t["model.norm.weight"] = (n, (H,))
    if not cfg.get("tie_word_embeddings", False):
        t["lm_head.weight"] = (m, (V, H))
    return t


def safetensors_repo_files(cfg: dict[str, Any], *, shards: int = 1, matrix_dtype: str = "F16") -> dict[str, bytes]:
    """config.json plus real safetensors weights: `model.safetensors`, or N shards with an index."""
    tensors = hf_llama_tensors(cfg, matrix_dtype=matrix_dtype)
    files: dict[str, bytes] = {"config.json": json.dumps(cfg, indent=2).encode(), "README.md": b"# test\n"}
    if shards <= 1:
        files["model.safetensors"] = safetensors_bytes(tensors)
        return files
    names = list(tensors)
    per = -(-len(names) // shards)
    weight_map: dict[str, str] = {}
    total = 0
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in names[s * per:(s + 1) * per]}
        files[fname] = safetensors_bytes(part)
        for k, (dt, shape) in part.items():
            weight_map[k] = fname
            total += int(np.prod(shape)) * {"F16": 2, "F32": 4}.get(dt, 1)
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}).encode()
    return files


# --- the server ------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeHub:
    """The local Hub. Add repos with `add_repo`; flip `rate_limited`, `ignore_range`, `delay` for failure paths."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens: set[str] = set()  # tokens with access to gated repos
        self.known_tokens: set[str] = set()  # valid tokens without that access
        self.requests: list[Request] = []
        self.rate_limited = False
        self.ignore_range = False
        self.delay = 0.0
        self.last_answer_at = 0.0  # perf_counter() when the last response was fully written
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # repos
    def add_repo(self, repo_id: str, files: dict[str, bytes], **kw: Any) -> FakeRepo:
        repo = FakeRepo(repo_id, dict(files), **kw)
        self.repos[repo_id.lower()] = repo
        return repo

    def add_files(self, repo_id: str, paths: dict[str, Path], **kw: Any) -> FakeRepo:
        return self.add_repo(repo_id, {name: Path(p).read_bytes() for name, p in paths.items()}, **kw)

    # requests seen
    def requests_to(self, fragment: str) -> list[Request]:
        return [r for r in self.requests if fragment in r.path]

    def bytes_served(self, fragment: str) -> int:
        return sum(int(r.headers.get("x-fake-served", 0)) for r in self.requests_to(fragment))

    # life cycle
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening AND drop kept-alive connections, so the client really finds no Hub."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (or `stop()` cutting them off) is normal here; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without NODELAY, Nagle + delayed ACK add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:  # noqa: N802
        self._handle(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(body=False)

    # --- plumbing
    def _send(self, status: int, payload: bytes = b"", headers: dict[str, str] | None = None,
              body: bool = True, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # counted before the bytes go out: a client that has read them all may ask `bytes_served`
        # at once, before this thread would get to run again (that race failed a test under load)
        self._log.headers["x-fake-served"] = str(len(payload) if body else 0)
        self.end_headers()
        if body and payload:
            self.wfile.write(payload)
        self.wfile.flush()
        self.fake.last_answer_at = time.perf_counter()

    def _json(self, status: int, data: Any, body: bool, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers, body)

    def _error(self, status: int, code: str | None, message: str, body: bool,
               extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, body, headers)

    def _token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _handle(self, body: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        self._log = Request(self.command, path, query, {k.lower(): v for k, v in self.headers.items()})
        with self.fake._lock:
            self.fake.requests.append(self._log)
        if self.fake.delay:
            time.sleep(self.fake.delay)
        if self.fake.rate_limited:
            return self._error(429, None, "You have been rate-limited; retry later", body, {"Retry-After": "30"})
        if path == "/api/models":
            return self._list(query, body)
        if path.startswith("/api/models/"):
            return self._info(path[len("/api/models/"):], query, body)
        segs = path.strip("/").split("/")
        if len(segs) >= 5 and segs[2] == "resolve":
            return self._resolve("/".join(segs[:2]), segs[3], "/".join(segs[4:]), body)
        return self._error(404, None, "Not Found", body)

    # --- /api/models
    def _summary(self, repo: FakeRepo, blobs: bool) -> dict[str, Any]:
        siblings = []
        for name, data in sorted(repo.files.items()):
            s: dict[str, Any] = {"rfilename": name}
            if blobs:
                s["size"] = len(data)
                s["blobId"] = hashlib.sha1(data).hexdigest()
                if len(data) > 10_000:
                    s["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
            siblings.append(s)
        out: dict[str, Any] = {
            "_id": repo.sha[:24], "id": repo.id, "modelId": repo.id, "author": repo.id.split("/")[0],
            "sha": repo.sha, "lastModified": DATE, "createdAt": DATE, "private": False, "gated": repo.gated,
            "disabled": False, "downloads": repo.downloads, "likes": repo.likes,
            "library_name": repo.library_name, "tags": repo.tags, "pipeline_tag": repo.pipeline_tag,
            "siblings": siblings, "trendingScore": 0,
            "config": {"model_type": "llama"} if "config.json" in repo.files else {},
        }
        if repo.safetensors:
            out["safetensors"] = repo.safetensors
        if repo.gguf:
            out["gguf"] = repo.gguf
        return out

    def _list(self, q: dict[str, list[str]], body: bool) -> None:
        hits = list(self.fake.repos.values())
        for s in q.get("search", []):
            hits = [r for r in hits if s.lower() in r.id.lower()]
        if q.get("author"):
            hits = [r for r in hits if r.id.split("/")[0].lower() == q["author"][0].lower()]
        if q.get("pipeline_tag"):
            hits = [r for r in hits if r.pipeline_tag == q["pipeline_tag"][0]]
        for f in q.get("filter", []):
            hits = [r for r in hits if f in r.tags or f == r.pipeline_tag or f == r.library_name]
        sort = (q.get("sort") or [""])[0]
        if sort in ("downloads", "likes"):
            hits.sort(key=lambda r: getattr(r, sort), reverse=True)
        if q.get("limit"):
            hits = hits[: int(q["limit"][0])]
        expand = q.get("expand")
        items = []
        for r in hits:
            full = self._summary(r, blobs=False)
            if expand:
                item = {"_id": full["_id"], "id": full["id"]}
                item.update({k: full[k] for k in expand if k in full})
            else:
                keys = ("_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                        "library_name", "createdAt", "modelId")
                item = {k: full[k] for k in keys}
            items.append(item)
        self._json(200, items, body)

    def _info(self, rest: str, q: dict[str, list[str]], body: bool) -> None:
        segs = rest.split("/")
        repo = self.fake.repos.get("/".join(segs[:2]).lower())
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found", body)
        if len(segs) >= 4 and segs[2] == "revision" and segs[3] not in ("main", repo.sha):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {segs[3]}", body)
        blobs = (q.get("blobs") or ["false"])[0].lower() == "true"
        self._json(200, self._summary(repo, blobs), body)

    # --- /ORG/NAME/resolve/REV/PATH
    def _resolve(self, repo_id: str, rev: str, filename: str, body: bool) -> None:
        repo = self.fake.repos.get(repo_id.lower())
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found", body)
        if rev not in ("main", repo.sha):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", body)
        if repo.gated:
            token = self._token()
            if token is None:
                return self._error(401, "GatedRepo", f"Access to model {repo.id} is restricted. You must have "
                                   "access to it and be authenticated to access it. Please log in.", body)
            if token not in self.fake.tokens:
                return self._error(403, "GatedRepo", f"Access to model {repo.id} is restricted and you are not "
                                   "in the authorized list.", body)
        data = repo.files.get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", "Entry not found", body, {"X-Repo-Commit": repo.sha})
        etag = hashlib.sha1(data).hexdigest()
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        rng = self.headers.get("range")
        if rng and not self.fake.ignore_range and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = min(int(b) if b else len(data) - 1, len(data) - 1)
            if start >= len(data):
                return self._error(416, None, "Range Not Satisfiable", body,
                                   {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], headers, body, "application/octet-stream")
        self._send(200, data, headers, body, "application/octet-stream")


# --- wiring the real client to the server ----------------------------------------------------


@contextmanager
def running_fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """Start a FakeHub and point the real huggingface_hub client (and lander-tui's caches) at it."""
    import huggingface_hub.constants as c

    hub = FakeHub().start()
    hf_home = tmp_path / "hf-home"
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "LANDER_TUI_CACHE_DIR": str(tmp_path / "lander-cache"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(k, raising=False)
    # the client read these at import time: patch the module too
    patches = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_PROGRESS_BARS": True,
    }
    for k, v in patches.items():
        if hasattr(c, k):
            monkeypatch.setattr(c, k, v)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with running_fake_hub(tmp_path, monkeypatch) as hub:
        yield hub
