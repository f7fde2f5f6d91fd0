"""Turn what the user typed (catalog name, config path, .gguf path, Hub id) into a model.

`resolve_model` is the one door every front end uses (the `estimate` command and the dashboard),
so a model means the same thing everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from lander_tui.core.catalog import find_model, get_model
from lander_tui.core.errors import LanderError
from lander_tui.core.model import ResolvedModel
from lander_tui.core.model_spec import from_hf_config, load_config_file

_HUB_ID = re.compile(r"^[\w.\-]+/[\w.\-]+(:[\w.\-]+)?$")


def resolve_model(text: str, *, offline: bool | None = None) -> ResolvedModel:
    raw = text.strip()
    if not raw:
        raise LanderError("no model given: name a catalog model, a config.json, a .gguf file or a Hub id")
    path = Path(raw).expanduser()
    from lander_tui.core.gguf_file import is_gguf_file, read_gguf

    # a .gguf name, or a GGUF file without one (Ollama's blobs: sha256-...)
    if raw.lower().endswith(".gguf") or (path.is_file() and is_gguf_file(path)):
        if not path.exists():
            raise LanderError(f"no such GGUF file: {raw}")
        g = read_gguf(path)
        return ResolvedModel(g.spec, "gguf", tensors=g.tensors, file_quant=g.file_type, detail=str(path))
    if raw.startswith(("./", "../", "/", "~")) or raw.lower().endswith(".json"):
        if not path.exists():
            raise LanderError(f"no such file or folder: {raw}")
    if path.exists():
        cfg = load_config_file(path)
        name = (path if path.is_dir() else path.parent).name or "model"
        return ResolvedModel(from_hf_config(cfg, name=name), "config", detail=str(path))
    spec = find_model(raw)
    if spec is not None:
        return ResolvedModel(spec, "catalog", detail=spec.hf_repo or spec.name)
    if _HUB_ID.match(raw):
        from lander_tui.core import hub

        return hub.resolve_hub_model(raw, offline=offline)
    return ResolvedModel(get_model(raw), "catalog")  # raises with suggestions
