"""SGLang: `python -m sglang.launch_server` / `sglang serve`, read through /server_info and /metrics.

Field names, from sgl-project/sglang python/sglang/srt/entrypoints/http_server.py: `GET /server_info`
returns `{**dataclasses.asdict(server_args), **scheduler_info, "internal_states": [...],
"version": __version__}`; `GET /get_server_info` is its deprecated alias, and the only name in
releases before 2025, so it is the fallback on 404.
* server_args (python/sglang/srt/server_args.py): `model_path`, `served_model_name`,
  `context_length` (None = the model's own), `kv_cache_dtype`, `mem_fraction_static`, `tp_size`,
  `max_running_requests`, `port` (default 30000), `host` (default 127.0.0.1).
* scheduler_info: `status`, `max_total_num_tokens` (the KV pool in tokens), `max_req_input_len`.
* internal_states[i] (one per data-parallel rank, scheduler.py `get_internal_state`):
  `last_gen_throughput` (tokens/s), `memory_usage` = `{weight, kvcache, token_capacity}` in GiB
  plus `cuda_graph` (2025+) or `graph` (as the 2026 docs print it); releases before mid-2025 sent
  only `{kvcache, token_capacity}`. 2025+ also `waiting_queue_size` and `running_batch_size`.
* `GET /metrics` only with `--enable-metrics`: `sglang:num_running_reqs`, `sglang:num_queue_reqs`,
  `sglang:token_usage` (0..1), `sglang:gen_throughput`, `sglang:generation_tokens_total`
  (test/srt/test_metrics.py lists them).
`--api-key` answers 401 {"error": "Unauthorized"} on everything but /health and /metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lander_tui.core.live.cmdline as cl
from lander_tui.core.live.base import need_dict, optional, optional_metrics, url_join
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient
from lander_tui.core.live.metrics import as_float, as_int
from lander_tui.core.live.state import OK, EngineConfig, EngineState, LoadedModel

GIB = 1 << 30  # SGLang reports memory_usage in GiB: bytes / (1 << 30) (mem_cache/memory_pool.py)


class SGLang:
    kind = "sglang"
    label = "SGLang"
    engine: str | None = "sglang"
    aliases: tuple[str, ...] = ()
    default_port = 30000  # python/sglang/srt/server_args.py: port: int = 30000

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        module = cl.python_module(argv)
        serve = (cl.program(argv) == "sglang" or cl.python_script(argv) == "sglang" or module == "sglang.cli.main") \
            and cl.command_args(argv)[:1] == ["serve"]
        if not (module == "sglang.launch_server" or serve):
            return None
        return cl.port_value(cl.flag(argv, "--port")) or self.default_port

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        return cl.flag(argv, "--host") or "127.0.0.1"

    def identify(self, client: LiveClient, base_url: str) -> bool:
        info, _ = self._server_info(client, base_url)
        return isinstance(info, dict) and "max_total_num_tokens" in info

    def _server_info(self, client: LiveClient, base_url: str) -> tuple[Any, Any]:
        info, err = optional(client.get_json, url_join(base_url, "/server_info"))
        if err is not None and err.status == 404:
            return optional(client.get_json, url_join(base_url, "/get_server_info"))
        return info, err

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        info, err = self._server_info(client, base_url)
        if err is not None:
            raise err
        info = need_dict(info, "/server_info")
        states = [s for s in info.get("internal_states") or [] if isinstance(s, dict)]
        mem: list[dict[str, Any]] = [s["memory_usage"] for s in states if isinstance(s.get("memory_usage"), dict)]
        engine_gib = sum(_mem_gib(u) for u in mem) if mem else None
        gen = [as_float(s.get("last_gen_throughput")) for s in states]
        rate = sum(g for g in gen if g) if any(g is not None for g in gen) else None
        running = _sum_int(states, "running_batch_size")
        waiting = _sum_int(states, "waiting_queue_size")
        notes: list[str] = []
        kv_used, tokens_total = None, None
        m, _ = optional_metrics(client, base_url)
        if m is not None:
            kv_used = m.mean("sglang:token_usage")
            tokens_total = m.value("sglang:generation_tokens_total")
            running = as_int(m.value("sglang:num_running_reqs")) if running is None else running
            waiting = as_int(m.value("sglang:num_queue_reqs")) if waiting is None else waiting
        else:
            notes.append("/metrics is off (start with --enable-metrics for KV use and tokens/s)")
        served = info.get("served_model_name") or info.get("model_path") or "?"
        config = EngineConfig(
            model=str(info.get("model_path") or served),
            context=as_int(info.get("context_length")) or as_int(info.get("max_req_input_len")),
            parallel=as_int(info.get("max_running_requests")),
            kv_type=str(info.get("kv_cache_dtype") or "") or None,
            gpu_memory_utilization=as_float(info.get("mem_fraction_static")),
            quant=str(info.get("quantization") or info.get("dtype") or "") or None,
        )
        return EngineState(
            self.kind, base_url, OK, "", version=str(info.get("version") or "") or None,
            models=(LoadedModel(str(served), config),), running=running, waiting=waiting, kv_used=kv_used,
            kv_capacity_tokens=as_int(info.get("max_total_num_tokens")), tokens_total=tokens_total,
            tokens_per_s=rate, engine_bytes=int(engine_gib * GIB) if engine_gib is not None else None,
            notes=tuple(notes),
        )


def _mem_gib(usage: dict[str, Any]) -> float:
    """Weights + KV pool + CUDA graphs of one rank, GiB (token_capacity is a count, not memory)."""
    parts = ("weight", "kvcache", "cuda_graph", "graph")
    return float(sum(as_float(usage.get(k)) or 0.0 for k in parts))


def _sum_int(states: list[dict[str, Any]], key: str) -> int | None:
    vals = [as_int(s.get(key)) for s in states]
    return sum(v for v in vals if v is not None) if any(v is not None for v in vals) else None
