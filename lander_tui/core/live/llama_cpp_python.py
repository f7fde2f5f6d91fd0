"""llama-cpp-python's server (`python -m llama_cpp.server`): its flags, and /v1/models to see it lives.

It has no status endpoint of its own: `GET /v1/models` -> `{"object": "list", "data": [{"id":
<model_alias or model path>, "object": "model", "owned_by": "me", "permissions": []}]}`
(llama_cpp/server/app.py `get_models`). The configuration comes from its command line, whose flags
are the `ModelSettings`/`ServerSettings` field names (llama_cpp/server/cli.py adds `--<field>`;
llama_cpp/server/settings.py): `--model`, `--n_ctx` (default 2048), `--n_gpu_layers` (default 0,
i.e. CPU), `--type_k`/`--type_v` (ggml type ids), `--flash_attn`, `--n_batch`, `--n_ubatch`,
`--host` (default localhost), `--port` (default 8000). pydantic-settings also reads them from
variables named like the fields (PORT, MODEL, N_CTX ...). `--api_key` answers 401.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lander_tui.core.live.cmdline as cl
from lander_tui.core.live.base import need_dict, need_list, optional, url_join
from lander_tui.core.live.cmdline import ProcessView
from lander_tui.core.live.http import LiveClient
from lander_tui.core.live.state import OK, EngineConfig, EngineState, LoadedModel

DEFAULT_N_CTX = 2048  # llama_cpp/server/settings.py: n_ctx: int = Field(default=2048, ...)


def _setting(argv: Sequence[str], env: Mapping[str, str] | None, name: str) -> str | None:
    return cl.flag(argv, f"--{name}") or (env.get(name.upper()) if env else None)


def _ggml_type(value: str | None) -> str | None:
    """`--type_k 8` -> "q8_0" (llama-cpp-python passes ggml type ids)."""
    if value is None:
        return None
    try:
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType(int(value)).name.lower()
    except (ValueError, KeyError):
        return None


class LlamaCppPython:
    kind = "llama-cpp-python"
    label = "llama-cpp-python"
    engine: str | None = "llama.cpp"  # llama.cpp underneath, through its C API
    aliases: tuple[str, ...] = ()
    default_port = 8000  # llama_cpp/server/settings.py: port: int = Field(default=8000)

    def recognise(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
        if cl.python_module(argv) != "llama_cpp.server":
            return None
        return cl.port_value(_setting(argv, env, "port")) or self.default_port

    def bind_host(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
        return _setting(argv, env, "host") or "localhost"

    def identify(self, client: LiveClient, base_url: str) -> bool:
        doc, _ = optional(client.get_json, url_join(base_url, "/v1/models"))
        data = doc.get("data") if isinstance(doc, dict) else None
        return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and data[0].get("owned_by") == "me"

    def read(self, client: LiveClient, base_url: str, proc: ProcessView | None = None) -> EngineState:
        doc = need_dict(client.get_json(url_join(base_url, "/v1/models")), "/v1/models")
        data = [need_dict(d, "/v1/models data[]") for d in need_list(doc.get("data"), "/v1/models data")]
        argv = proc.argv if proc else ()
        env = proc.env if proc else None
        model = _setting(argv, env, "model")
        n_ctx = cl.int_flag(argv, "--n_ctx")
        flash = (_setting(argv, env, "flash_attn") or "").lower()
        config = EngineConfig(
            model=model, context=n_ctx if n_ctx is not None else (DEFAULT_N_CTX if proc else None), parallel=1,
            kv_type=_ggml_type(_setting(argv, env, "type_k")) or ("f16" if proc else None),
            flash_attn=True if flash in ("true", "1") else False if flash in ("false", "0") else None,
            n_ubatch=cl.int_flag(argv, "--n_ubatch"), n_batch=cl.int_flag(argv, "--n_batch"),
            gpu_layers=_setting(argv, env, "n_gpu_layers") or ("0" if proc else None),
        )
        models = tuple(LoadedModel(str(d.get("id") or "?"), config) for d in data)
        notes = ("its configuration comes from the command line; no status endpoint",) if proc else (
            "no process seen: configuration unknown",)
        return EngineState(self.kind, base_url, OK, "", models=models, notes=notes)
