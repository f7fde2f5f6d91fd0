"""Hugging Face text-generation-inference: `text-generation-launcher`, read through /info and /metrics.

Field names, from huggingface/text-generation-inference @db931fcf (2026-01, maintenance mode):
* `GET /info` -> `model_id`, `model_sha`, `model_pipeline_tag`, `max_concurrent_requests`,
  `max_best_of`, `max_stop_sequences`, `max_input_tokens`, `max_total_tokens`, `validation_workers`,
  `max_client_batch_size`, `router`, `version`, `sha`, `docker_label` (router/src/lib.rs `struct
  Info`). Releases before 2.0 (2024) sent `max_input_length` instead of `max_input_tokens`, and
  `model_dtype` / `model_device_type` (now commented out); read both.
* `GET /metrics`: `tgi_queue_size`, `tgi_batch_current_size`, `tgi_batch_current_max_tokens`
  (gauges), `tgi_request_generated_tokens` (a histogram; its `_sum` counts generated tokens)
  (docs/source/reference/metrics.md).
The launcher listens through its child `text-generation-router`; the GPU memory is held by the
`text-generation-server` shards it starts. Port: `--port`/`PORT`, default 3000 (launcher/src/main.rs;
the Docker image sets PORT=80); `--hostname` defaults to 0.0.0.0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lander_tui.core.live.cmdline as cl
from lander_tui.core.live.base import need_dict, need_key, optional, optional_metrics, url_join
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient
from lander_tui.core.live.metrics import as_int
from lander_tui.core.live.state import OK, EngineConfig, EngineState, LoadedModel

_PROGRAMS = ("text-generation-launcher", "text-generation-router")


class Tgi:
    kind = "tgi"
    label = "TGI"
    engine: str | None = None  # lander-tui has no memory model for TGI
    aliases: tuple[str, ...] = ("text-generation-inference",)
    default_port = 3000  # launcher/src/main.rs: #[clap(default_value = "3000", long, short, env)] port

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        if cl.program(argv) not in _PROGRAMS:
            return None
        return (cl.port_value(cl.flag(argv, "--port", "-p")) or cl.port_value(env.get("PORT") if env else None)
                or self.default_port)

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        # Not the HOSTNAME variable clap would also read: shells set it to the machine's name.
        return cl.flag(argv, "--hostname") or "0.0.0.0"

    def identify(self, client: LiveClient, base_url: str) -> bool:
        info, _ = optional(client.get_json, url_join(base_url, "/info"))
        return isinstance(info, dict) and "model_id" in info and "max_total_tokens" in info

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        info = need_dict(client.get_json(url_join(base_url, "/info")), "/info")
        model_id = str(need_key(info, "model_id", "/info"))
        notes: list[str] = []
        running = waiting = None
        tokens_total = None
        m, err = optional_metrics(client, base_url)
        if m is not None:
            running = as_int(m.value("tgi_batch_current_size"))
            waiting = as_int(m.value("tgi_queue_size"))
            tokens_total = m.value("tgi_request_generated_tokens_sum")
        elif err is not None:
            notes.append(f"/metrics: {err}")
        argv = proc.argv if proc else ()
        config = EngineConfig(
            model=model_id,
            context=as_int(info.get("max_total_tokens")),
            parallel=as_int(info.get("max_concurrent_requests")),
            quant=cl.flag(argv, "--quantize") or cl.flag(argv, "--dtype") or _str(info.get("model_dtype")),
        )
        return EngineState(
            self.kind, base_url, OK, "", version=_str(info.get("version")),
            models=(LoadedModel(model_id, config,
                                details={k: info[k] for k in ("model_sha", "max_input_tokens", "max_input_length",
                                                               "max_batch_total_tokens") if info.get(k) is not None}),),
            running=running, waiting=waiting, tokens_total=tokens_total, notes=tuple(notes),
        )


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
