"""Ollama: `ollama serve` and the llama-server runners it starts, read through /api/ps and /api/show.

Field names, from ollama/ollama @fb307609 (2026-08):
* `GET /api/version` -> `{"version": "0.x.y"}` (server/routes.go route table).
* `GET /api/ps` -> `{"models": [{name, model, size, digest, details{parent_model, format, family,
  families, parameter_size, quantization_level}, expires_at, size_vram, context_length}]}`
  (api/types.go `ProcessResponse` / `ProcessModelResponse`, filled by `PsHandler` in
  server/routes.go). `context_length` is the context each request gets (num_ctx); builds before
  it was added (2025) do not send it, so it is optional here. `size`/`size_vram` are bytes.
* `POST /api/show {"model": NAME}` -> `modelfile` (its first `FROM` line is the model's GGUF blob on
  this machine: `Model.String()` in server/images.go writes `m.ModelPath` first), `parameters`
  (e.g. "num_ctx 8192"), `details`, `model_info` (GGUF keys, e.g. "llama.context_length").
  Builds before 2024 took `{"name": NAME}`; both keys are sent.
* Ollama has no /metrics route, and no request queue in its API.
Since 2026 (PR #16031) Ollama runs each model in an upstream `llama-server` it starts with
`--model BLOB --port N --host 127.0.0.1 -c num_ctx*np -np np [--cache-type-k T] [--flash-attn M]`
(llm/llama_server.go `startLlamaServer`); older builds ran `ollama runner --model BLOB --port N`.
Those children hold the GPU memory; their flags give the exact configuration. Address: OLLAMA_HOST,
default 127.0.0.1:11434 (envconfig/config.go `Host()`); OLLAMA_NUM_PARALLEL defaults to 1 and
OLLAMA_KV_CACHE_TYPE to f16 (envconfig/config.go).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import lander_tui.core.live.cmdline as cl
from lander_tui.core.live.base import Remembered, need_dict, need_list, optional, url_join
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient
from lander_tui.core.live.llama_server import llamacpp_config
from lander_tui.core.live.metrics import as_int
from lander_tui.core.live.state import OK, EngineConfig, EngineState, LoadedModel

DEFAULT_PORT = 11434  # envconfig/config.go Host(): defaultPort := "11434"


def parse_ollama_host(value: str | None) -> tuple[str, int]:
    """(host, port) the way Ollama's envconfig.Host() reads OLLAMA_HOST."""
    s = (value or "").strip()
    default = DEFAULT_PORT
    scheme, sep, hostport = s.partition("://")
    if not sep:
        hostport = s
    elif scheme == "http":
        default = 80
    elif scheme == "https":
        default = 443
    hostport = hostport.split("/", 1)[0]
    host, port = "127.0.0.1", default
    if hostport.startswith("[") and "]" in hostport:  # [::1]:11434
        inner, _, rest = hostport[1:].partition("]")
        host = inner
        if rest.startswith(":"):
            port = cl.port_value(rest[1:]) or default
    elif hostport.count(":") == 1:
        h, _, p = hostport.partition(":")
        host, port = h, cl.port_value(p) or default
    elif hostport:
        host = hostport
    return host, port


class Ollama:
    kind = "ollama"
    label = "Ollama"
    engine: str | None = "ollama"  # its runner is a llama-server, with Ollama's own rules
    aliases: tuple[str, ...] = ()
    default_port = DEFAULT_PORT

    def __init__(self) -> None:
        self._shown: dict[tuple[str, str], dict[str, Any]] = {}  # (url, digest) -> /api/show answer
        self._lock = threading.Lock()
        self._versions = Remembered()

    def forget(self) -> None:
        """Drop what was remembered about servers (a new server may now answer at the same URL)."""
        with self._lock:
            self._shown.clear()
        self._versions.forget()

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        if cl.program(argv) != "ollama" or cl.command_args(argv)[:1] != ["serve"]:
            return None
        return parse_ollama_host(env.get("OLLAMA_HOST") if env else None)[1]

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        host = parse_ollama_host(env.get("OLLAMA_HOST") if env else None)[0]
        return host or None  # ":11434" binds every interface

    def identify(self, client: LiveClient, base_url: str) -> bool:
        ps, _ = optional(client.get_json, url_join(base_url, "/api/ps"))
        version, _ = optional(client.get_json, url_join(base_url, "/api/version"))
        return isinstance(ps, dict) and isinstance(ps.get("models"), list) and isinstance(version, dict)

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        ps = need_dict(client.get_json(url_join(base_url, "/api/ps")), "/api/ps")
        version = self._versions.get(base_url, lambda: optional(client.get_json, url_join(base_url, "/api/version"))[0])
        rows = [need_dict(m, "an /api/ps model") for m in need_list(ps.get("models") or [], "/api/ps models")]
        runners = list(proc.children) if proc else []
        env = proc.env if proc else None
        models = []
        notes: list[str] = []
        for row in rows:
            shown, err = self._show(client, base_url, row)
            if err is not None:
                notes.append(f"/api/show {row.get('name')}: {err}")
            models.append(self._model(row, shown or {}, runners, env, single=len(runners) == 1 == len(rows)))
        engine_bytes = sum(m.size_bytes or 0 for m in models) if models else None
        return EngineState(
            self.kind, base_url, OK, "",
            version=str(version.get("version")) if isinstance(version, dict) and version.get("version") else None,
            models=tuple(models), engine_bytes=engine_bytes, notes=tuple(notes),
            gpu_pids=tuple(m.runner_pid for m in models if m.runner_pid),
        )

    def _show(self, client: LiveClient, base_url: str, row: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
        name = str(row.get("model") or row.get("name") or "")
        key = (base_url, str(row.get("digest") or name))
        with self._lock:
            if key in self._shown:
                return self._shown[key], None
        shown, err = optional(client.post_json, url_join(base_url, "/api/show"), {"model": name, "name": name})
        if isinstance(shown, dict):
            with self._lock:
                self._shown[key] = shown
            return shown, None
        return None, err

    def _model(self, row: dict[str, Any], shown: dict[str, Any], runners: list[ProcessView],
               env: Mapping[str, str] | None, single: bool) -> LoadedModel:
        blob = modelfile_blob(str(shown.get("modelfile") or ""))
        runner = _runner_for(blob, runners, single)
        raw = row.get("details")
        details: dict[str, Any] = raw if isinstance(raw, dict) else {}
        ctx = as_int(row.get("context_length")) or _num_ctx(str(shown.get("parameters") or ""))
        if runner is not None:
            base = llamacpp_config(runner.argv, runner.env, model=blob)
            parallel = base.parallel or 1
            cells = base.kv_cells
            config = replace(base, context=ctx or (cells // parallel if cells else None), parallel=parallel,
                             kv_unified=base.kv_unified if cl.has_flag(runner.argv, "-kvu", "--kv-unified")
                             else False)
        else:
            np_env = env.get("OLLAMA_NUM_PARALLEL") if env else None
            kv_env = env.get("OLLAMA_KV_CACHE_TYPE") if env else None
            config = EngineConfig(model=blob, context=ctx, parallel=int(np_env) if np_env and np_env.isdigit() else 1,
                                  kv_unified=False, kv_type=(kv_env or "f16").lower())
        config = replace(config, quant=str(details.get("quantization_level") or "") or None)
        return LoadedModel(
            name=str(row.get("name") or row.get("model") or "?"), config=config,
            size_bytes=as_int(row.get("size")), vram_bytes=as_int(row.get("size_vram")),
            expires_at=str(row["expires_at"]) if row.get("expires_at") else None,
            runner_pid=runner.pid if runner else None,
            details={k: v for k, v in details.items() if v not in (None, "", [])},
        )


def modelfile_blob(modelfile: str) -> str | None:
    """The model's GGUF path: the first `FROM` line of the Modelfile /api/show generates."""
    for line in modelfile.splitlines():
        s = line.strip()
        if s.upper().startswith("FROM "):
            return s[5:].strip() or None
    return None


def _num_ctx(parameters: str) -> int | None:
    for line in parameters.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "num_ctx":
            return as_int(parts[1])
    return None


def _runner_for(blob: str | None, runners: list[ProcessView], single: bool) -> ProcessView | None:
    """The runner process serving `blob` (its --model flag), or the only runner of the only model."""
    for r in runners:
        if blob and cl.flag(r.argv, "--model", "-m") == blob:
            return r
    return runners[0] if single else None


def is_ollama_runner(argv: Sequence[str]) -> bool:
    """Processes Ollama starts for a model: its llama-server, or (older) `ollama runner`."""
    prog = cl.program(argv)
    return prog.startswith("llama-server") or prog == "ollama_llama_server" or (
        prog == "ollama" and cl.command_args(argv)[:1] == ["runner"])
