"""Where lander-tui finds a Prometheus server: the flag, else the environment, else a config file.

Config file: `$LANDER_TUI_CONFIG`, or `$XDG_CONFIG_HOME/lander-tui/config.toml` (default
`~/.config/lander-tui/config.toml`), TOML with one known key so far:

    prometheus = "https://prometheus.example:9090"

Credentials never go in the file or on the command line: see `core/gpu/prometheus_api.py`.
`--prometheus off` (or `LANDER_TUI_PROMETHEUS=off`) means "this machine's GPUs" whatever the file says.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from lander_tui.core.errors import LanderError

PROMETHEUS_ENV = "LANDER_TUI_PROMETHEUS"
CONFIG_ENV = "LANDER_TUI_CONFIG"
KNOWN_KEYS = ("prometheus",)
OFF = ("", "off", "none", "local")


def config_path(env: Mapping[str, str]) -> Path:
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "lander-tui" / "config.toml"


def load_config(env: Mapping[str, str]) -> dict[str, object]:
    """The config file's keys ({} when there is none); a broken file is a one-line error."""
    path = config_path(env)
    if not path.is_file():
        if env.get(CONFIG_ENV):
            raise LanderError(f"{CONFIG_ENV}={path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise LanderError(f"cannot read the config file {path}: {err}") from None
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise LanderError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KNOWN_KEYS)}")
    if "prometheus" in data and not isinstance(data["prometheus"], str):
        raise LanderError(f'{path}: prometheus must be a URL string, e.g. prometheus = "http://prometheus:9090"')
    return data


def prometheus_url(flag: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The Prometheus base URL to read GPUs from, or None for this machine's own GPUs."""
    env = os.environ if env is None else env
    if flag is not None:
        return None if flag.strip().lower() in OFF else flag.strip()
    value = env.get(PROMETHEUS_ENV, "")
    if value.strip():  # an empty variable counts as unset
        return None if value.strip().lower() in OFF else value.strip()
    url = load_config(env).get("prometheus")
    if isinstance(url, str) and url.strip().lower() not in OFF:
        return url.strip()
    return None
