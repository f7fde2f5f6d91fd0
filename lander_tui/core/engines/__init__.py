"""The engines lander-tui knows, found through the `lander_tui.engines` entry-point group.

Each entry point names an `Engine` subclass (or instance); lander-tui's own engines register the
same way in its pyproject.toml, so a third-party package adds one by declaring

    [project.entry-points."lander_tui.engines"]
    myengine = "my_package.engine:MyEngine"

A plugin that fails to import or answers badly is reported in one line (`plugin_problems()`) and
skipped; the other engines keep working.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from lander_tui.core.engines.base import Budget, Engine, EngineOptions, Footprint, Running
from lander_tui.core.errors import LanderError
from lander_tui.core.memory import MIB, Breakdown

GROUP = "lander_tui.engines"
#: The engine a new estimate or dashboard starts with.
DEFAULT_ENGINE = "llama.cpp"


@dataclass(frozen=True)
class Registry:
    engines: tuple[Engine, ...]
    problems: tuple[str, ...]

    def find(self, name: str) -> Engine | None:
        key = name.strip().lower()
        for e in self.engines:
            if key == e.name.lower() or key in (a.lower() for a in e.aliases):
                return e
        return None


def _builtin_classes() -> list[tuple[str, Any]]:
    """lander-tui's own engines found in this package, for a source tree whose metadata (and so its
    entry points) is not installed: every module here that defines a built-in `Engine` subclass."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Engine) and obj.__module__ == module.__name__
                    and obj.builtin):
                found.append((obj.name, obj))
    return found


def _instance(obj: Any) -> Engine:
    engine = obj() if isinstance(obj, type) else obj
    if not isinstance(engine, Engine):
        raise TypeError("it is not a lander_tui Engine (subclass lander_tui.core.engines.base.Engine)")
    if not isinstance(engine.name, str) or not engine.name.strip() or not isinstance(engine.label, str):
        raise TypeError("it has no name or label")
    g = engine.granularity(EngineOptions())
    if not isinstance(g, int) or g < 1:
        raise TypeError(f"its granularity is {g!r}, not a positive whole number of tokens")
    if not engine.quants or not all(isinstance(q, str) for q in engine.quants):
        raise TypeError("it offers no default quants")
    return engine


def load_registry(eps: Any = None) -> Registry:
    """Every engine the entry points name, each checked; built-ins first, then plugins by `order`."""
    found: list[tuple[str, Any]] = [(ep.name, ep) for ep in (entry_points(group=GROUP) if eps is None else eps)]
    if not any(getattr(ep, "value", "").startswith(f"{__name__}.") for _, ep in found):
        found = _builtin_classes() + found
    engines: list[Engine] = []
    problems: list[str] = []
    for ep_name, ep in found:
        try:
            engine = _instance(ep.load() if hasattr(ep, "load") else ep)
        except Exception as err:  # a broken plugin must not take the others down
            problems.append(f"engine plugin {ep_name!r} skipped: {type(err).__name__}: {err}")
            continue
        clash = next((e for e in engines if e.name.lower() == engine.name.lower()), None)
        if clash is not None:
            problems.append(f"engine plugin {ep_name!r} skipped: the name {engine.name!r} is taken")
            continue
        engines.append(engine)
    engines.sort(key=lambda e: (e.order, e.name))
    return Registry(tuple(engines), tuple(problems))


@cache
def registry() -> Registry:
    return load_registry()


def all_engines() -> tuple[Engine, ...]:
    return registry().engines


def engine_names() -> tuple[str, ...]:
    return tuple(e.name for e in registry().engines)


def plugin_problems() -> tuple[str, ...]:
    return registry().problems


def get_engine(name: str) -> Engine:
    engine = registry().find(name)
    if engine is None:
        raise LanderError(f"unknown backend {name!r}; use one of: {', '.join(engine_names())}")
    return engine


__all__ = ["DEFAULT_ENGINE", "GROUP", "MIB", "Breakdown", "Budget", "Engine", "EngineOptions", "Footprint", "Running",
           "all_engines", "engine_names", "get_engine", "load_registry", "plugin_problems", "registry"]
