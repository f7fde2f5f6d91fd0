"""A small, cheap table with a row cursor: a few rows of text, redrawn in a millisecond.

The results change on every keystroke; Textual's DataTable re-renders each cell through Rich
(10-15 ms for seven rows here), which alone ate a third of the 50 ms budget. This one formats
plain lines and styles them from component classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

GAP = 2


class RowTable(Widget, can_focus=True):
    """Header + rows, numbers right-aligned, one highlighted row. Posts `Highlighted(index)`."""

    COMPONENT_CLASSES = {"row-table--header", "row-table--cursor", "row-table--cursor-blurred",
                         "row-table--recommended", "row-table--bad"}
    BINDINGS = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("home", "move_to(0)", "first", show=False),
        Binding("end", "move_to(-1)", "last", show=False),
        Binding("pageup", "move(-5)", "page up", show=False),
        Binding("pagedown", "move(5)", "page down", show=False),
    ]

    class Highlighted(Message):
        """The cursor moved; `user` when a key or click moved it (not new rows)."""

        def __init__(self, table: RowTable, index: int, user: bool = False) -> None:
            super().__init__()
            self.table = table
            self.index = index
            self.user = user

    def __init__(self, headers: Sequence[str], right: Sequence[bool], **kw: Any) -> None:
        super().__init__(**kw)
        self.headers = tuple(headers)
        self._right = tuple(right)
        self.rows: list[tuple[str, ...]] = []
        self._flags: list[str] = []  # "", "recommended" or "bad" per row
        self.cursor = 0
        self._offset = 0

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: Sequence[tuple[str, ...]], flags: Sequence[str], cursor: int | None = None) -> None:
        rows, flags = [tuple(r) for r in rows], list(flags)
        new_cursor = self.cursor if cursor is None else cursor
        new_cursor = max(0, min(new_cursor, len(rows) - 1)) if rows else 0
        if rows == self.rows and flags == self._flags and new_cursor == self.cursor:
            return
        moved = new_cursor != self.cursor
        self.rows, self._flags, self.cursor = rows, flags, new_cursor
        self.refresh()
        if moved and rows:
            self.post_message(self.Highlighted(self, self.cursor))

    # --- keys and mouse ----------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self._go(self.cursor + delta)

    def action_move_to(self, index: int) -> None:
        self._go(index if index >= 0 else len(self.rows) - 1)

    def move_cursor(self, index: int) -> None:
        """Move the cursor from code (posts `Highlighted` with `user=False`)."""
        self._go(index, user=False)

    def _go(self, index: int, user: bool = True) -> None:
        if not self.rows:
            return
        index = max(0, min(index, len(self.rows) - 1))
        if index != self.cursor:
            self.cursor = index
            self.refresh()
            self.post_message(self.Highlighted(self, index, user))

    def on_click(self, event: events.Click) -> None:
        row = event.y - 1 + self._offset
        if event.y >= 1 and 0 <= row < len(self.rows):
            self._go(row)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- drawing -----------------------------------------------------------------------------
    def render(self) -> Text:
        width = self.size.width
        visible = max(1, self.size.height - 1)
        if self.cursor < self._offset:
            self._offset = self.cursor
        elif self.cursor >= self._offset + visible:
            self._offset = self.cursor - visible + 1
        self._offset = max(0, min(self._offset, max(0, len(self.rows) - visible)))
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(self._line(self.headers, widths, width), style=self.get_component_rich_style("row-table--header"))
        shown = self.rows[self._offset:self._offset + visible]
        for i, row in enumerate(shown, start=self._offset):
            out.append("\n")
            style = self.get_component_rich_style(f"row-table--{self._flags[i]}") if self._flags[i] else None
            if i == self.cursor:
                cursor = "row-table--cursor" if self.has_focus else "row-table--cursor-blurred"
                style = self.get_component_rich_style(cursor) if style is None else (
                    style + self.get_component_rich_style(cursor))
            out.append(self._line(row, widths, width), style=style)
        hidden = len(self.rows) - len(shown)
        if hidden > 0 and shown:
            more = f" ↕ {hidden} more"
            out.append(" " * max(0, width - len(self._line(shown[-1], widths, width)) - len(more)) + more)
        return out

    def _line(self, cells: Sequence[str], widths: Sequence[int], width: int) -> str:
        parts = []
        for cell, w, right in zip(cells, widths, self._right, strict=False):
            parts.append(cell.rjust(w) if right else cell.ljust(w))
        # on a narrow screen the last gaps close up to one space rather than lose the last columns
        gaps = [GAP] * (len(parts) - 1)
        over = sum(widths) + GAP * len(gaps) - width if width > 0 else 0
        for i in range(len(gaps) - 1, -1, -1):
            if over <= 0:
                break
            gaps[i], over = 1, over - (GAP - 1)
        line = parts[0] + "".join(" " * g + p for g, p in zip(gaps, parts[1:], strict=True)) if parts else ""
        return line.ljust(width)[:width] if width > 0 else line
