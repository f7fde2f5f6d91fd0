"""Hugging Face Hub access (placeholder until the Hub issue lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lander_tui.core.errors import LanderError

if TYPE_CHECKING:
    from lander_tui.core.model_source import ResolvedModel


def resolve_hub_model(repo: str, *, offline: bool | None = None) -> ResolvedModel:
    raise LanderError(f"{repo!r} looks like a Hub id, but Hub access is not available yet; use a catalog name")
