"""llama.cpp's llama-server: recognised by its binary, read through /props, /slots and /metrics.

Field names, from ggml-org/llama.cpp `tools/server/` (server-context.cpp and server-task.cpp of
2026; the README's endpoint section says the same):
* `GET /health` -> `{"status": "ok"}`; 503 `{"error": {"message": "Loading model"}}` while loading
  (server-http.cpp `middleware_server_state`); public even with `--api-key`.
* `GET /props` -> `default_generation_settings.n_ctx` (the context ONE slot gets, after the -c / -np
  split and the n_ctx_train cap), `total_slots` (= -np), `model_path`, `model_alias`,
  `build_info` ("b6000-abcdef0"), `is_sleeping` (`get_res_props`).
* `GET /slots` -> a list, per slot `id`, `n_ctx`, `is_processing`, and while it has (had) a task
  `n_prompt_tokens` (the tokens in the slot's cache), `next_token[0].n_decoded` (`server_slot::to_json`).
  Builds before the `is_processing` field (2024) sent `state` (0 idle, 1 processing); read both.
  501 "This server does not support slots endpoint" with `--no-slots`.
* `GET /metrics` (only with `--metrics`, else 501) -> `llamacpp:tokens_predicted_total`,
  `llamacpp:requests_processing`, `llamacpp:requests_deferred`, `llamacpp:predicted_tokens_seconds`
  (`server_task_result_metrics::to_metrics`). Builds before PRs #13660/#22879 also sent
  `llamacpp:kv_cache_usage_ratio` and `llamacpp:kv_cache_tokens`; read them when present.
  Note: llama-server averages its `*_seconds` gauges over the window between two scrapes and resets
  it on each scrape, so polling /metrics shortens that window for any other scraper; the counters
  (which we use for tokens/s) are not affected.
Defaults (common/common.h, common/arg.cpp): port 8080 (`--port`, env LLAMA_ARG_PORT), host
127.0.0.1 (`--host`, env LLAMA_ARG_HOST). Without `-np` the server runs "auto": 4 slots with a
unified KV cache (tools/server/server.cpp).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lander_tui.core.live.cmdline as cl
from lander_tui.core.live.base import need_dict, need_key, need_list, optional, optional_metrics, url_join
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient, ReadFailure
from lander_tui.core.live.metrics import as_int
from lander_tui.core.live.state import AUTH, OK, EngineConfig, EngineState, LoadedModel

_ON = ("on", "1", "true", "enabled")
_OFF = ("off", "0", "false", "disabled")


def _env(env: Mapping[str, str] | None, key: str) -> str | None:
    return env.get(key) if env else None


def llamacpp_config(argv: Sequence[str], env: Mapping[str, str] | None, *, model: str | None = None,
                    slot_ctx: int | None = None, slots: int | None = None) -> EngineConfig:
    """A llama-server's configuration from its flags (and LLAMA_ARG_* variables), refined by what
    /props reported (`slot_ctx`, `slots`). Shared with Ollama, whose runners are llama-servers."""
    a = list(argv)
    cells = cl.int_flag(a, "-c", "--ctx-size")
    if cells is None:
        env_ctx = _env(env, "LLAMA_ARG_CTX_SIZE")
        cells = int(env_ctx) if env_ctx and env_ctx.isdigit() else None
    np_flag = cl.int_flag(a, "-np", "--parallel")
    if np_flag is None:
        env_np = _env(env, "LLAMA_ARG_N_PARALLEL")
        np_flag = int(env_np) if env_np and env_np.lstrip("-").isdigit() else None
    if cl.has_flag(a, "-kvu", "--kv-unified"):
        unified: bool | None = True
    elif cl.has_flag(a, "-no-kvu", "--no-kv-unified"):
        unified = False
    elif _env(env, "LLAMA_ARG_KV_UNIFIED"):
        unified = (_env(env, "LLAMA_ARG_KV_UNIFIED") or "").lower() in _ON
    else:
        unified = np_flag is None or np_flag < 0  # "auto": 4 slots, unified (tools/server/server.cpp)
    kv_k = cl.flag(a, "-ctk", "--cache-type-k") or _env(env, "LLAMA_ARG_CACHE_TYPE_K")
    return EngineConfig(
        model=model or cl.flag(a, "-m", "--model") or _env(env, "LLAMA_ARG_MODEL"),
        context=slot_ctx,
        parallel=slots if slots is not None else (np_flag if np_flag and np_flag > 0 else None),
        kv_cells=cells if cells and cells > 0 else None,
        kv_unified=unified,
        kv_type=kv_k.lower() if kv_k else None,
        flash_attn=_flash_attn(a, env),
        n_ubatch=cl.int_flag(a, "-ub", "--ubatch-size"),
        n_batch=cl.int_flag(a, "-b", "--batch-size"),
        gpu_layers=cl.flag(a, "-ngl", "--gpu-layers", "--n-gpu-layers") or _env(env, "LLAMA_ARG_N_GPU_LAYERS"),
    )


def _flash_attn(argv: list[str], env: Mapping[str, str] | None) -> bool | None:
    """`-fa on|off|auto` (2025+); older builds took a bare `-fa` meaning on."""
    for i, arg in enumerate(argv):
        if arg in ("-fa", "--flash-attn"):
            nxt = argv[i + 1].lower() if i + 1 < len(argv) else ""
            if nxt in _ON:
                return True
            if nxt in _OFF:
                return False
            return None if nxt == "auto" else True
        if arg.startswith(("-fa=", "--flash-attn=")):
            value = arg.split("=", 1)[1].lower()
            return True if value in _ON else False if value in _OFF else None
    value = (_env(env, "LLAMA_ARG_FLASH_ATTN") or "").lower()
    return True if value in _ON else False if value in _OFF else None


class LlamaServer:
    kind = "llama-server"
    label = "llama.cpp"
    engine: str | None = "llama.cpp"  # the estimator engine that predicts its memory
    aliases: tuple[str, ...] = ("llama_cpp",)
    default_port = 8080  # common/common.h: `int32_t port = 8080;`

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        if not cl.program(argv).startswith("llama-server"):
            return None
        return (cl.port_value(cl.flag(argv, "--port")) or cl.port_value(_env(env, "LLAMA_ARG_PORT"))
                or self.default_port)

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        host = cl.flag(argv, "--host") or _env(env, "LLAMA_ARG_HOST") or "127.0.0.1"
        return host.split(",")[0].strip()  # 2026 builds take a comma-separated list

    def identify(self, client: LiveClient, base_url: str) -> bool:
        props, err = optional(client.get_json, url_join(base_url, "/props"))
        if err is not None and err.state == AUTH:
            health, _ = optional(client.get_json, url_join(base_url, "/health"))
            return isinstance(health, dict) and health.get("status") == "ok"
        return isinstance(props, dict) and "total_slots" in props and "default_generation_settings" in props

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        # /props answers 503 "Loading model" like every route until the model is up (the server-state
        # middleware), so it also says what /health would; one request fewer per reading.
        props = need_dict(client.get_json(url_join(base_url, "/props")), "/props")
        gen = need_dict(need_key(props, "default_generation_settings", "/props"), "default_generation_settings")
        slot_ctx = as_int(gen.get("n_ctx"))
        total = as_int(props.get("total_slots"))
        notes: list[str] = []

        slots, err = optional(client.get_json, url_join(base_url, "/slots"))
        busy: int | None = None
        cached_tokens: int | None = None
        if err is not None:
            if err.state == AUTH:
                raise err
            notes.append("/slots is off (--no-slots)" if err.status == 501 else f"/slots: {err}")
        else:
            rows = [need_dict(s, "a /slots entry") for s in need_list(slots, "/slots")]
            busy = sum(1 for s in rows if s.get("is_processing", s.get("state", 0) not in (0, None)))
            counts = [as_int(s.get("n_prompt_tokens")) for s in rows]
            cached_tokens = sum(c for c in counts if c) if any(c is not None for c in counts) else None
            total = total if total is not None else len(rows)

        argv = proc.argv if proc else ()
        env = proc.env if proc else None
        config = llamacpp_config(argv, env, model=props.get("model_path") or None, slot_ctx=slot_ctx, slots=total)
        kv_used, tokens_total, rate, running, waiting = None, None, None, None, None
        m, err = optional_metrics(client, base_url)
        if m is None:
            off = err is None or err.status in (501, 404)
            notes.append("/metrics is off (start with --metrics for tokens/s)" if off else f"/metrics: {err}")
        else:
            tokens_total = m.value("llamacpp:tokens_predicted_total")
            rate = m.value("llamacpp:predicted_tokens_seconds")
            running = as_int(m.value("llamacpp:requests_processing"))
            waiting = as_int(m.value("llamacpp:requests_deferred"))
            kv_used = m.value("llamacpp:kv_cache_usage_ratio")  # builds before PR #13660 only
        cells = config.cells()
        if kv_used is None and cached_tokens is not None and cells:
            kv_used = min(1.0, cached_tokens / cells)
        alias = props.get("model_alias")
        if isinstance(alias, list):  # router-era builds send a list of aliases
            alias = alias[0] if alias else None
        # without --alias the server's alias is the model path itself: show the file name
        name = _basename(str(alias)) if alias else (_basename(config.model) or "?")
        return EngineState(
            self.kind, base_url, OK, "", version=_str(props.get("build_info")),
            models=(LoadedModel(str(name), config),), slots_total=total, slots_busy=busy,
            running=running if running is not None else busy, waiting=waiting, kv_used=kv_used,
            kv_capacity_tokens=cells, tokens_total=tokens_total, tokens_per_s=rate or None, notes=tuple(notes),
        )


def _basename(path: str | None) -> str | None:
    if not path:
        return None
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


__all__ = ["LlamaServer", "ReadFailure", "llamacpp_config"]
