"""The engines on one GPU (or on none here), drawn under its card: a few lines each.

The text comes from `ui.engine_text` (plain data); this widget only styles it and repaints when a
line really changed, so an engine read every few seconds costs nothing between readings.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.text import Text
from textual.geometry import Region, Size
from textual.widget import Widget

from lander_tui.core.live import EngineRow
from lander_tui.ui.engine_text import Line, block


class EngineLines(Widget):
    """Engine lines; hidden while there are none. A line too long for the panel ends in …, except
    the flags of the restart advice, which wrap under their indent (they are meant to be copied)."""

    DEFAULT_CSS = """
    EngineLines {
        height: auto;
        display: none;
    }
    EngineLines > .engine-lines--head {
        text-style: bold;
        color: $accent;
    }
    EngineLines > .engine-lines--dim {
        color: $text-muted;
    }
    EngineLines > .engine-lines--bad {
        color: $warning;
    }
    """
    COMPONENT_CLASSES = {"engine-lines--head", "engine-lines--dim", "engine-lines--bad"}

    def __init__(self, title: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self._title = title  # a first line while there are rows (the block of engines on no GPU)
        self._lines: list[Line] = []
        self.rows: tuple[EngineRow, ...] = ()

    @property
    def text(self) -> str:
        """What is shown, as plain lines (tests)."""
        return "\n".join(t for t, _ in self._lines)

    def set_rows(self, rows: Sequence[EngineRow]) -> None:
        self.rows = tuple(rows)
        lines = block(rows)
        if lines and self._title:
            lines.insert(0, (self._title, "dim"))
        if lines == self._lines:
            return
        width = self.content_size.width
        old, self._lines = self._lines, lines
        self.display = bool(lines)
        before, after = _rows(old, width), _rows(lines, width)
        if width <= 0 or len(before) != len(after):
            self.refresh(layout=True)
            return
        # only the rows whose text changed go out to the terminal (a reading every few seconds, per engine)
        changed = [Region(0, y, width, 1) for y, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        if changed:
            self.refresh(*changed)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(_rows(self._lines, width))

    def render(self) -> Group:
        out = []
        for text, style in _rows(self._lines, self.content_size.width):
            name = "dim" if style == "flags" else style
            rich_style = self.get_component_rich_style(f"engine-lines--{name}") if name else ""
            out.append(Text(text, style=rich_style, no_wrap=True, overflow="ellipsis"))
        return Group(*out)


def _rows(lines: list[Line], width: int) -> list[Line]:
    """The lines as drawn at `width`: flags wrapped at spaces under their indent, the rest one row each."""
    out: list[Line] = []
    for text, style in lines:
        if style != "flags" or width <= 0 or len(text) <= width:
            out.append((text, style))
            continue
        indent = text[: len(text) - len(text.lstrip())]
        wrapped = textwrap.wrap(text.strip(), max(8, width - len(indent)), break_on_hyphens=False)
        out += [(indent + part, style) for part in wrapped]
    return out

