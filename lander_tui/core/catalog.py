"""The built-in model catalog: popular models that work offline, by short name or Hub id.

Entries live in `data/models.json` in the project's own format (`ModelSpec.to_dict`), generated
by `scripts/build_catalog.py` from the reference facts.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path

from lander_tui.core.errors import LanderError
from lander_tui.core.model_spec import ModelSpec

CATALOG_PATH = Path(__file__).parent / "data" / "models.json"
DEFAULT_MODEL = "llama-3.1-8b"
_SUFFIXES = ("-instruct", "-it", "-chat", "-base", "-2407", "-2501", "-chat-v1.0", "-4k")


def short_name(repo_id: str) -> str:
    """`meta-llama/Llama-3.1-8B` -> `llama-3.1-8b`."""
    return repo_id.split("/")[-1].lower()


def _aliases(spec: ModelSpec) -> set[str]:
    names = {spec.name.lower()}
    if spec.hf_repo:
        names.add(spec.hf_repo.lower())
    base = spec.name.lower()
    for _ in range(3):
        for suf in _SUFFIXES:
            if base.endswith(suf):
                base = base[: -len(suf)]
        names.add(base)
    return names


@lru_cache(maxsize=1)
def _load() -> tuple[ModelSpec, ...]:
    return tuple(ModelSpec.from_dict(d) for d in json.loads(CATALOG_PATH.read_text()))


@lru_cache(maxsize=1)
def _index() -> dict[str, ModelSpec]:
    idx: dict[str, ModelSpec] = {}
    for spec in _load():
        for alias in _aliases(spec):
            idx.setdefault(alias, spec)
    return idx


def catalog_models() -> tuple[ModelSpec, ...]:
    return _load()


def find_model(name: str) -> ModelSpec | None:
    return _index().get(name.strip().lower())


def get_model(name: str) -> ModelSpec:
    spec = find_model(name)
    if spec is None:
        close = difflib.get_close_matches(name.lower(), list(_index()), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (`lander-tui estimate --list-models` lists them)"
        raise LanderError(f"unknown model {name!r}{hint}")
    return spec


def search_catalog(text: str, limit: int = 20) -> list[ModelSpec]:
    """Catalog models whose name or Hub id contains every word of `text` (the offline search)."""
    words = text.lower().split()
    hits = [s for s in _load() if all(w in f"{s.name} {s.hf_repo or ''}".lower() for w in words)]
    return hits[:limit]
