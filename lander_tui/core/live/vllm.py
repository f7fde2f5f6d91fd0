"""vLLM's OpenAI-compatible server: `vllm serve`, read through /v1/models, /metrics and /version.

Field names, from vllm-project/vllm:
* `GET /v1/models` -> `{"data": [{id, object, created, owned_by: "vllm", root, parent,
  max_model_len, permission}]}` (`ModelCard` in vllm/entrypoints/openai/protocol.py, moved to
  vllm/entrypoints/serve/engine/protocol.py in 2026). `id` is the served name, `root` the model
  path or Hub id it loaded, `max_model_len` the context one request may use.
* `GET /metrics` (always on), every series labelled `model_name` and `engine` (one per data-parallel
  engine) (vllm/v1/metrics/loggers.py `PrometheusStatLogger`):
  `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (a 0..1
  fraction; releases up to 0.10 sent `vllm:gpu_cache_usage_perc`, deprecated by PR #18354 and hidden
  two releases later), `vllm:generation_tokens_total`, `vllm:prompt_tokens_total`, and the info gauge
  `vllm:cache_config_info` whose labels are the `CacheConfig` fields (`log_metrics_info`):
  `block_size`, `num_gpu_blocks`, `gpu_memory_utilization`, `cache_dtype`, ... (label values are
  strings; `num_gpu_blocks` is "None" until the KV cache is profiled).
* `GET /version` -> `{"version": "0.x"}`.
`--api-key` protects only the /v1, /v2 and /inference prefixes (vllm/entrypoints/openai/cli_args.py
`api_key` docstring), so /metrics stays readable behind a key. Port 8000, host: all interfaces
(`FrontendArgs.port = 8000`, `host = None`). The model runs in child processes
(`VLLM::EngineCore`, `VLLM::Worker_TP*`), found below the server by discovery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lander_tui.core.live.cmdline as cl
from lander_tui.core.live.base import Remembered, need_dict, need_list, optional, url_join
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient, ReadFailure
from lander_tui.core.live.metrics import as_float, as_int, parse_metrics
from lander_tui.core.live.state import AUTH, MALFORMED, OK, EngineConfig, EngineState, LoadedModel


class Vllm:
    kind = "vllm"
    label = "vLLM"
    engine: str | None = "vllm"
    aliases: tuple[str, ...] = ()
    default_port = 8000  # vllm/entrypoints/openai/cli_args.py: FrontendArgs.port = 8000

    def __init__(self) -> None:
        self._versions = Remembered()

    def forget(self) -> None:
        self._versions.forget()

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        args = cl.command_args(argv)
        module = cl.python_module(argv)
        named = cl.program(argv) == "vllm" or cl.python_script(argv) == "vllm" or module == "vllm.entrypoints.cli.main"
        if not ((named and args[:1] == ["serve"]) or module == "vllm.entrypoints.openai.api_server"):
            return None
        return cl.port_value(cl.flag(argv, "--port")) or self.default_port

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        if cl.flag(argv, "--uds"):
            return "unix:" + (cl.flag(argv, "--uds") or "")
        return cl.flag(argv, "--host")

    def identify(self, client: LiveClient, base_url: str) -> bool:
        models, err = optional(client.get_json, url_join(base_url, "/v1/models"))
        if isinstance(models, dict) and isinstance(models.get("data"), list) and models["data"]:
            first = models["data"][0]
            return isinstance(first, dict) and first.get("owned_by") == "vllm"
        if err is not None and err.state == AUTH:
            text, _ = optional(client.get_text, url_join(base_url, "/metrics"))
            return isinstance(text, str) and "vllm:" in text
        return False

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        notes: list[str] = []
        state, message = OK, ""
        models_doc, models_err = optional(client.get_json, url_join(base_url, "/v1/models"))
        if models_err is not None:
            if models_err.state != AUTH:
                raise models_err
            state, message = AUTH, f"{models_err} (only /metrics is read)"
        text = client.get_text(url_join(base_url, "/metrics"))
        m = parse_metrics(text, url_join(base_url, "/metrics"))
        if "vllm:num_requests_running" not in m:
            raise ReadFailure(MALFORMED, f"{url_join(base_url, '/metrics')} has no vllm:num_requests_running")
        cache = m.info_labels("vllm:cache_config_info")
        blocks, block = as_int(cache.get("num_gpu_blocks")), as_int(cache.get("block_size"))
        kv_used = m.mean("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
        if "vllm:kv_cache_usage_perc" not in m and kv_used is not None:
            notes.append("KV use from vllm:gpu_cache_usage_perc (a vLLM before the rename)")
        version_doc = self._versions.get(base_url, lambda: optional(client.get_json, url_join(base_url, "/version"))[0])
        version = str(version_doc.get("version") or "") or None if isinstance(version_doc, dict) else None
        argv = proc.argv if proc else ()
        card: dict[str, object] = {}
        if models_doc is not None:
            data = need_list(need_dict(models_doc, "/v1/models").get("data"), "/v1/models data")
            card = need_dict(data[0], "/v1/models data[0]") if data else {}
        served = [s.labels.get("model_name") for s in m.samples("vllm:num_requests_running")]
        name = str(card.get("id") or next((s for s in served if s), None) or _model_arg(argv) or "?")
        config = EngineConfig(
            model=str(card.get("root") or _model_arg(argv) or name),
            context=as_int(card.get("max_model_len")) or cl.int_flag(argv, "--max-model-len"),
            parallel=cl.int_flag(argv, "--max-num-seqs"),
            kv_type=cache.get("cache_dtype") or cl.flag(argv, "--kv-cache-dtype"),
            gpu_memory_utilization=as_float(cache.get("gpu_memory_utilization"))
            or as_float(cl.flag(argv, "--gpu-memory-utilization")),
            block_size=block,
            quant=cl.flag(argv, "--quantization", "-q") or cl.flag(argv, "--dtype"),
            version=version,
        )
        return EngineState(
            self.kind, base_url, state, message,
            version=version,
            models=(LoadedModel(name, config),),
            running=as_int(m.value("vllm:num_requests_running")),
            waiting=as_int(m.value("vllm:num_requests_waiting")),
            kv_used=kv_used, kv_capacity_tokens=blocks * block if blocks and block else None,
            tokens_total=m.value("vllm:generation_tokens_total"), notes=tuple(notes),
        )


def _model_arg(argv: Sequence[str]) -> str | None:
    """`vllm serve MODEL` (positional) or `--model MODEL`."""
    flag = cl.flag(argv, "--model")
    if flag:
        return flag
    args = cl.command_args(argv)
    if args[:1] == ["serve"] and len(args) > 1 and not args[1].startswith("-"):
        return args[1]
    return None
