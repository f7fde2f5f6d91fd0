"""xLLM (llmlb's llama.cpp-based server, seed 003): `xllm serve`, read through /v0/health and /v0/metrics.

Two sources, read as they are where they differ:
* the xLLM spec (shared/seeds/003, FR-002/FR-010): default port 32769; `/v0/health` answers
  `{"status": "loading"}` (HTTP 200) while a model loads and lists the loaded models, load progress
  and GPU/VRAM; `/v0/metrics` is Prometheus text with `xllm_` series (e.g. `xllm_tokens_total`,
  `xllm_vram_bytes`);
* its source, akiojin/llmlb @2f2d3c73 (2026-01) xllm/src/api/node_endpoints.cpp: `/v0/health` ->
  `status` ("online", "busy", or "offline" before the model is ready), `gpu{device_count,
  total_memory_bytes, used_memory_bytes, free_memory_bytes, capability_score, devices[]}`,
  `load{active_requests, max_concurrent_requests}`, `memory{ram_used_bytes, ram_total_bytes,
  vram_used_bytes, vram_total_bytes}`; `/v0/metrics` -> `xllm_requests_active`,
  `xllm_requests_total`, `xllm_tokens_total`, `xllm_tokens_per_second`, `xllm_ttft_ms`,
  `xllm_vram_used_bytes`, `xllm_vram_total_bytes`, `xllm_vram_utilization`. Its VRAM figures are
  the whole machine's (ResourceMonitor::sampleSystemUsage), not the server's own share, so they are
  not reported as memory the engine holds. `/v1/models` lists the models it *can* run.
Port: `--port`, XLLM_PORT, default 32769 (xllm/src/utils/cli.cpp); host `--host`, default 0.0.0.0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lander_tui.core.live.cmdline as cl
from lander_tui.core.live.base import need_dict, need_key, optional, optional_metrics, url_join
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient
from lander_tui.core.live.metrics import as_float, as_int
from lander_tui.core.live.state import LOADING, OK, EngineConfig, EngineState, LoadedModel

_NOT_READY = ("loading", "offline", "starting")


class Xllm:
    kind = "xllm"
    label = "xLLM"
    engine: str | None = None  # lander-tui has no memory model for xLLM
    aliases: tuple[str, ...] = ()
    default_port = 32769  # seed 003 FR-002; xllm/src/utils/cli.cpp "default: 32769, or XLLM_PORT"

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        if cl.program(argv) != "xllm" or cl.command_args(argv)[:1] != ["serve"]:
            return None
        return (cl.port_value(cl.flag(argv, "--port")) or cl.port_value(env.get("XLLM_PORT") if env else None)
                or self.default_port)

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        return cl.flag(argv, "--host") or (env.get("XLLM_BIND_ADDRESS") if env else None) or "0.0.0.0"

    def identify(self, client: LiveClient, base_url: str) -> bool:
        health, _ = optional(client.get_json, url_join(base_url, "/v0/health"))
        return isinstance(health, dict) and "status" in health and ("gpu" in health or "load" in health)

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        health = need_dict(client.get_json(url_join(base_url, "/v0/health")), "/v0/health")
        status = str(need_key(health, "status", "/v0/health")).lower()
        raw_load = health.get("load")
        load: dict[str, Any] = raw_load if isinstance(raw_load, dict) else {}
        notes: list[str] = []
        running = as_int(load.get("active_requests"))
        tokens_total = rate = None
        m, err = optional_metrics(client, base_url, "/v0/metrics")
        if m is not None:
            tokens_total = m.value("xllm_tokens_total")
            rate = m.value("xllm_tokens_per_second")
            running = as_int(m.value("xllm_requests_active")) if running is None else running
        elif err is not None:
            notes.append(f"/v0/metrics: {err}")
        models = tuple(_models(health))
        if not models:
            doc, _ = optional(client.get_json, url_join(base_url, "/v1/models"))
            data = doc.get("data") if isinstance(doc, dict) else None
            rows = data if isinstance(data, list) else []
            ids = [str(d.get("id")) for d in rows if isinstance(d, dict) and d.get("id")]
            can = f"; it can run {', '.join(ids[:5])}" + (" ..." if len(ids) > 5 else "") if ids else ""
            notes.append(f"xLLM loads models on demand and reports none loaded{can}")
        progress = as_float(health.get("progress") or health.get("loading_progress"))
        state, message = OK, ""
        if status in _NOT_READY:
            state = LOADING
            message = f"{url_join(base_url, '/v0/health')} says {status!r}" + (
                f" ({progress:.0%} loaded)" if progress is not None and progress <= 1 else "")
        return EngineState(
            self.kind, base_url, state, message, version=str(health.get("version") or "") or None, models=models,
            running=running, slots_total=as_int(load.get("max_concurrent_requests")), tokens_total=tokens_total,
            tokens_per_s=rate or None, notes=tuple(notes),
        )


def _models(health: dict[str, Any]) -> list[LoadedModel]:
    """Loaded models, when /v0/health lists them (spec: a list of names or of objects with a name)."""
    raw = health.get("loaded_models", health.get("models"))
    out = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            out.append(LoadedModel(item))
        elif isinstance(item, dict) and (item.get("name") or item.get("model") or item.get("id")):
            name = str(item.get("name") or item.get("model") or item.get("id"))
            out.append(LoadedModel(name, EngineConfig(model=name, context=as_int(item.get("context_length"))),
                                   vram_bytes=as_int(item.get("vram_bytes"))))
    return out
