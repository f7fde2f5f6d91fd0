"""Every host and its GPUs as one scrolling list (Textual's line API): only the lines on screen are
drawn, so a 4,000-GPU fleet costs what 40 lines cost. Rows come from `ui/host_rows.py`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.segment import Segment
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from lander_tui.ui.host_rows import HostRow


class HostTable(ScrollView, can_focus=True):
    """A cursor over host and GPU rows; Enter posts `Chosen` with the row."""

    COMPONENT_CLASSES = {"host-table--host", "host-table--gpu", "host-table--stale", "host-table--planned",
                         "host-table--cursor"}
    DEFAULT_CSS = """
    HostTable { height: 1fr; }
    HostTable > .host-table--host { text-style: bold; }
    HostTable > .host-table--gpu { color: $text; }
    HostTable > .host-table--stale { color: $error; }
    HostTable > .host-table--planned { color: $success; }
    HostTable > .host-table--cursor { background: $accent 30%; color: $text; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", show=False), Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False), Binding("end", "jump(-1)", show=False),
        Binding("left", "host(-1)", show=False), Binding("right", "host(1)", show=False),
        Binding("enter", "choose", "plan on it", show=False),
    ]

    class Chosen(Message):
        def __init__(self, row: HostRow) -> None:
            super().__init__()
            self.row = row

    class Moved(Message):
        """The cursor is on another host (the view fetches that host's per-GPU history)."""

        def __init__(self, host: str) -> None:
            super().__init__()
            self.host = host

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: list[HostRow] = []
        self.cursor = 0
        self._width = 0

    @property
    def current(self) -> HostRow | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def set_rows(self, rows: Sequence[HostRow]) -> None:
        """New rows (a refresh or a sort): the cursor stays on the same host or GPU."""
        key = self.current.key if self.current is not None else None
        host = self.current.host if self.current is not None else None
        self.rows = list(rows)
        self._width = max((len(r.text) for r in self.rows), default=0)
        self.virtual_size = Size(self._width, len(self.rows))
        at = next((i for i, r in enumerate(self.rows) if r.key == key), None) if key is not None else None
        self.cursor = at if at is not None else min(self.cursor, max(0, len(self.rows) - 1))
        self.refresh()
        if self.current is not None and self.current.host != host:
            self.post_message(self.Moved(self.current.host))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        i = scroll_y + y
        width = self.size.width
        if i >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        row = self.rows[i]
        style = self.rich_style + self.get_component_rich_style(f"host-table--{row.kind}")
        if row.stale or row.planned:
            style += self.get_component_rich_style("host-table--stale" if row.stale else "host-table--planned",
                                                   partial=True)
        if i == self.cursor and self.has_focus:
            style += self.get_component_rich_style("host-table--cursor", partial=True)
        text = row.text.ljust(max(width + scroll_x, self._width))
        return Strip([Segment(text, style)]).crop(scroll_x, scroll_x + width)

    def _go(self, i: int) -> None:
        if not self.rows:
            return
        before = self.current
        self.cursor = max(0, min(len(self.rows) - 1, i))
        self.scroll_to_region(Region(0, self.cursor, 1, 1), animate=False, force=True)
        self.refresh()
        if self.current is not None and (before is None or before.host != self.current.host):
            self.post_message(self.Moved(self.current.host))

    def action_move(self, step: int) -> None:
        self._go(self.cursor + step)

    def action_page(self, step: int) -> None:
        self._go(self.cursor + step * max(1, self.size.height - 1))

    def action_jump(self, where: int) -> None:
        self._go(len(self.rows) - 1 if where < 0 else where)

    def action_host(self, step: int) -> None:
        """Left/right: the previous/next host row."""
        i = self.cursor + step
        while 0 <= i < len(self.rows) and self.rows[i].kind != "host":
            i += step
        if 0 <= i < len(self.rows):
            self._go(i)

    def action_choose(self) -> None:
        if self.current is not None:
            self.post_message(self.Chosen(self.current))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_click(self, event: Any) -> None:
        self._go(self.scroll_offset.y + event.y)
