"""Results: one row per quant x KV type, the recommended row marked, and where the memory goes."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from lander_tui.core.memory import PARTS
from lander_tui.ui.text import gib, short_tokens, tps_cell
from lander_tui.ui.widgets.gpu_panel import Line
from lander_tui.ui.widgets.table import RowTable

#: Table headers of the memory parts (the column must stay narrow: "KV mem" for "KV cache").
_PART_HEADERS = {"kv": "KV mem"}
#: The parts the table has a column for: all but `extras`, which an 80-column table has no room for and most
#: rows do not have; the breakdown bar under the table gives it its own segment and names what it holds.
TABLE_PARTS = tuple(p for p in PARTS if p.attr != "extras")
HEADERS = ("  quant", "KV", "max ctx ", *(_PART_HEADERS.get(p.attr, p.label) for p in TABLE_PARTS), "total", "fits",
           "tok/s")
#: When the full headers do not fit (a narrow pane, long KV names, more columns).
SHORT_HEADERS = ("  quant", "KV", "max ctx ", *({"weights": "wts", "kv": "KV", "compute": "comp",
                                                 "overhead": "ovhd"}.get(p.attr, p.label) for p in TABLE_PARTS),
                 "total", "fits", "tok/s")
RIGHT = (False, False, True, *(True for _ in TABLE_PARTS), True, False, True)
#: Breakdown segments, one per memory part: (name, glyph, component class). Glyphs differ so it reads
#: without colour.
_GLYPHS = ("█", "▓", "▒", "░", "▚")
SEGMENTS = tuple((p.label.replace(" cache", ""), glyph, f"breakdown--{p.attr}")
                 for p, glyph in zip(PARTS, _GLYPHS, strict=True))


def extras_text(memory: Any) -> str:
    """What the extras part holds, in GiB: " (projector 0.91, draft 0.95)", or "" when nothing."""
    pieces = memory.extra_parts()
    return f" ({', '.join(f'{k} {gib(v)}' for k, v in pieces.items())})" if pieces else ""
#: Beside a max ctx past the model's trained maximum (plans stop there unless a target says otherwise).
PAST_TRAINED = "↑"


def row_cells(r: Any, recommended: bool) -> tuple[str, ...]:
    if r.error:
        return (f"! {r.quant}", r.kv_cache, "error", *("" for _ in TABLE_PARTS), "", "no", "")
    mark = "★ " if recommended else "  "
    past = PAST_TRAINED if r.max_context > r.model_max_context else " "
    return (mark + r.quant, r.kv_cache, f"{r.max_context:,}{past}",
            *(gib(getattr(r.memory, p.attr), 2) for p in TABLE_PARTS), gib(r.total_mib, 2),
            "yes" if r.fits else "NO", tps_cell(r))


class BreakdownBar(Widget):
    """weights | KV | compute | overhead | free, scaled to the budget (or to the total when over)."""

    COMPONENT_CLASSES = {"breakdown--weights", "breakdown--kv", "breakdown--compute", "breakdown--overhead",
                         "breakdown--extras", "breakdown--free", "breakdown--over"}

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._parts: tuple[float, ...] = ()
        self._budget = 0.0

    def set(self, parts: tuple[float, ...], budget: float) -> None:
        if (parts, budget) != (self._parts, self._budget):
            self._parts, self._budget = parts, budget
            self.refresh()

    def render(self) -> Text:
        width = max(1, self.size.width)
        total = sum(self._parts)
        scale = max(total, self._budget)
        text = Text()
        if scale <= 0:
            return text
        used = 0
        for (_, glyph, cls), v in zip(SEGMENTS, self._parts, strict=False):
            n = round(width * v / scale)
            n = min(n, width - used)
            text.append(glyph * n, style=self.get_component_rich_style(cls))
            used += n
        rest = width - used
        if total > self._budget:
            # the budget ends inside the bar: mark it
            cut = round(width * self._budget / scale)
            if 0 <= cut < width:
                text = text[:cut] + Text("|", style=self.get_component_rich_style("breakdown--over")) + text[cut + 1:]
        elif rest > 0:
            text.append("·" * rest, style=self.get_component_rich_style("breakdown--free"))
        return text


class Results(Vertical):
    """`show(estimate, summary, notes, prefer)`; the row under the cursor drives the breakdown bar."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._est: Any = None
        self._keys: list[tuple[str, str]] = []
        self.stale = False  # the ✗ line says the results are from the last valid input
        self._plan: tuple[tuple[str, str], Any] | None = None  # (row, plan) for the breakdown bar

    def compose(self) -> ComposeResult:
        yield Line("", id="summary")
        yield RowTable(HEADERS, RIGHT, SHORT_HEADERS, id="table")
        yield Line("", id="reason")
        yield Line("", id="breakdown-label")
        yield BreakdownBar(id="breakdown")
        yield Line("", id="plan-status", classes="-autohide", markup=False)
        yield Line("", id="notes", classes="-autohide")

    def show_error(self, summary: str, message: str) -> None:
        self._est = None
        self.stale = False
        self.query_one("#summary", Line).set(summary)
        self.query_one("#reason", Line).set(f"✗ {message}")
        self.query_one("#reason", Line).add_class("-error")
        self.query_one("#breakdown-label", Line).set("")
        self.query_one(BreakdownBar).set((), 0.0)
        self.query_one("#notes", Line).set("")
        self.query_one(RowTable).set_rows([], [])
        self._keys = []

    def mark_stale(self, message: str, showing: str = "") -> None:
        """A field is wrong: the last valid results stay (as do the plan, chart, title and GPU panel)
        and this says why, and which input they are for."""
        reason = self.query_one("#reason", Line)
        what = f": {showing}" if showing else ""
        reason.set(f"✗ {message} · the screen shows the last valid input{what}")
        reason.add_class("-error")
        self.stale = True

    def show(self, est: Any, summary: str, notes: tuple[str, ...] = (), prefer: tuple[str, str] | None = None) -> None:
        """The cursor goes to `prefer` when it is in the table, else to the recommended row."""
        self._est = est
        self.stale = False
        rec = est.recommendation
        self.query_one("#summary", Line).set(summary)
        table = self.query_one(RowTable)
        keys = [(r.quant, r.kv_cache) for r in est.results]
        rec_key = (rec.quant, rec.kv_cache)
        cells = [row_cells(r, (r.quant, r.kv_cache) == rec_key) for r in est.results]
        flags = ["bad" if (r.error or not r.fits) else "recommended" if (r.quant, r.kv_cache) == rec_key else ""
                 for r in est.results]
        target = rec_key if rec_key in keys else (keys[0] if keys else None)
        if prefer is not None and prefer in keys:
            target = prefer  # the row the user picked, or the plan's row while only free memory moved
        self._keys = keys
        table.set_rows(cells, flags, keys.index(target) if target is not None else 0)
        reason = self.query_one("#reason", Line)
        reason.remove_class("-error")
        if rec.quant:
            reason.set(f"★ {rec.quant} + KV {rec.kv_cache}: {rec.reason}")
        else:
            reason.set(f"✗ {rec.reason}")
            reason.add_class("-error")
        self.query_one("#notes", Line).set("\n".join(f"note: {n}" for n in (*notes, *est.notes)))
        self._show_breakdown()

    def show_status(self, text: str, level: str) -> None:
        """The chosen plan in one line: loads / headroom, or why it no longer loads."""
        line = self.query_one("#plan-status", Line)
        line.set(text)
        for lv in ("ok", "short", "off"):
            line.set_class(lv == level, f"-{lv}")

    def show_plan(self, row: tuple[str, str] | None, plan: Any) -> None:
        """The chosen plan's own numbers for the breakdown bar (its context, its GPUs), shown while the
        cursor is on its row; the row's figures at its max ctx otherwise."""
        self._plan = (row, plan) if row is not None and plan is not None else None
        self._show_breakdown()

    def select(self, key: tuple[str, str]) -> None:
        """Put the cursor on a row (no-op when it is not in the table)."""
        if key in self._keys:
            self.query_one(RowTable).move_cursor(self._keys.index(key))

    @property
    def recommended_key(self) -> tuple[str, str] | None:
        rec = self._est.recommendation if self._est is not None else None
        return (rec.quant, rec.kv_cache) if rec is not None and rec.quant else None

    def _cursor_key(self) -> tuple[str, str] | None:
        table = self.query_one(RowTable)
        if not self._keys or not 0 <= table.cursor < len(self._keys):
            return None
        return self._keys[table.cursor]

    @property
    def cursor_key(self) -> tuple[str, str] | None:
        return self._cursor_key()

    def cursor_row(self) -> Any:
        key = self._cursor_key()
        if self._est is None or key is None:
            return None
        return next((r for r in self._est.results if (r.quant, r.kv_cache) == key), None)

    @on(RowTable.Highlighted)
    def _highlighted(self, event: RowTable.Highlighted) -> None:
        self._show_breakdown()

    def _show_breakdown(self) -> None:
        r = self.cursor_row()
        label = self.query_one("#breakdown-label", Line)
        bar = self.query_one(BreakdownBar)
        if r is None or r.error:
            label.set(f"✗ {r.error}" if r is not None else "")
            bar.set((), 0.0)
            return
        budget = self._est.budget_mib
        memory, total = r.memory, r.total_mib
        where = "max " if r.context == r.max_context else ""
        if self._plan is not None and self._plan[0] == self.cursor_key:
            plan = self._plan[1]  # what the plan line and the launch command are about: its context
            memory, total, where = plan.memory, float(plan.memory.total), "plan "
            budget = sum(d.budget_mib for d in plan.devices)
            context = plan.context
        else:
            context = r.context
        parts = tuple(float(getattr(memory, p.attr)) for p in PARTS)
        legend = " ".join(f"{glyph} {name} {gib(v)}{extras_text(memory) if p.attr == 'extras' else ''}"
                          for (name, glyph, _), v, p in zip(SEGMENTS, parts, PARTS, strict=True)
                          if v or p.attr != "extras")
        room = budget - total
        tail = f"· free {gib(room)}" if room >= 0 else f"| over {gib(-room)}"
        label.set(f"{where}@{short_tokens(context)}: {legend} {tail}")
        bar.set(tuple(round(p, 1) for p in parts), round(budget, 1))
