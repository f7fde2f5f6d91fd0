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
        # only the arrows (and a click) pick a row: the row under the cursor is the plan, so keys a
        # user presses to scroll the page (PageUp/PageDown/Home/End) must not change it
    ]

    class Highlighted(Message):
        """The cursor moved; `user` when a key or click moved it (not new rows)."""

        def __init__(self, table: RowTable, index: int, user: bool = False) -> None:
            super().__init__()
            self.table = table
            self.index = index
            self.user = user

    def __init__(self, headers: Sequence[str], right: Sequence[bool], short_headers: Sequence[str] | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.headers = tuple(headers)
        self.short_headers = tuple(short_headers) if short_headers is not None else self.headers
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
        inner = max(0, width - 1)  # the first column is the cursor mark
        headers, widths, gap = self.column_layout(inner)
        shown = self.rows[self._offset:self._offset + visible]
        out = Text(no_wrap=True, overflow="ellipsis")
        header = " " + self._line(headers, widths, inner, gap)
        above, below = self._offset, len(self.rows) - self._offset - len(shown)
        if above or below:  # rows off screen: say how many, where (the table scrolls with the cursor)
            mark = " " + " ".join(t for t in (f"↑{above} more" if above else "", f"↓{below} more" if below else "")
                                  if t)
            header = header[:max(0, width - len(mark))].ljust(max(0, width - len(mark))) + mark
        out.append(header, style=self.get_component_rich_style("row-table--header"))
        for i, row in enumerate(shown, start=self._offset):
            out.append("\n")
            style = self.get_component_rich_style(f"row-table--{self._flags[i]}") if self._flags[i] else None
            if i == self.cursor:
                cursor = "row-table--cursor" if self.has_focus else "row-table--cursor-blurred"
                style = self.get_component_rich_style(cursor) if style is None else (
                    style + self.get_component_rich_style(cursor))
            # the cursor is also a character, so it shows without colour (NO_COLOR, a plain capture):
            # "▸" while the table has focus, "›" when it has not
            mark = (("▸" if self.has_focus else "›") if i == self.cursor else " ")
            out.append(mark + self._line(row, widths, inner, gap), style=style)
        return out

    def column_layout(self, width: int) -> tuple[tuple[str, ...], list[int], int]:
        """Headers, column widths and gap that fit `width`: the full headers two apart, then one apart,
        then the short headers (columns are as wide as their widest cell, never a fixed number)."""
        for headers, gap in ((self.headers, GAP), (self.headers, 1), (self.short_headers, 1)):
            widths = [len(h) for h in headers]
            for row in self.rows:
                widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
            if sum(widths) + gap * (len(widths) - 1) <= width:
                break
        return headers, widths, gap

    def _line(self, cells: Sequence[str], widths: Sequence[int], width: int, gap: int = GAP) -> str:
        parts = []
        for cell, w, right in zip(cells, widths, self._right, strict=False):
            parts.append(cell.rjust(w) if right else cell.ljust(w))
        line = (" " * gap).join(parts)
        return line.ljust(width)[:width] if width > 0 else line
