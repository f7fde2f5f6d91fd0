"""The Plan view: the chosen row on the planned GPUs (per-GPU split, headroom now, CPU offload and
host RAM) and the command that runs it. Every piece repaints only when its own text changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget

from lander_tui.ui import plan_text
from lander_tui.ui.live_plan import ChosenPlan, LiveCheck
from lander_tui.ui.widgets.gpu_panel import Line


class PlanTable(Widget):
    """Header and one line per GPU; a GPU that no longer has room is styled as short."""

    COMPONENT_CLASSES = {"plan-table--header", "plan-table--short"}

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._lines: tuple[str, ...] = ()
        self._short: tuple[bool, ...] = ()

    def set(self, lines: Sequence[str], short: Sequence[bool]) -> None:
        lines, short = tuple(lines), tuple(short)
        if (lines, short) == (self._lines, self._short):
            return
        layout = len(lines) != len(self._lines)
        self._lines, self._short = lines, short
        self.display = bool(lines)
        self.refresh(layout=layout)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._lines)

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(self._lines):
            if i:
                out.append("\n")
            cls = "plan-table--header" if i == 0 else "plan-table--short" if self._short[i] else None
            out.append(line, style=self.get_component_rich_style(cls) if cls else "")
        return out


class PlanView(VerticalScroll):
    """`show(chosen, live, recommended)`; nothing is redrawn when nothing changed. Reached with `v`;
    when it is taller than its box, Tab to it and scroll (or use the mouse wheel)."""

    def compose(self) -> ComposeResult:
        yield Line("", id="plan-head", markup=False)
        yield Line("", id="plan-offload", markup=False)
        yield PlanTable(id="plan-table")
        yield Line("", id="plan-host", classes="-autohide", markup=False)
        yield Line("", id="plan-speed", classes="-autohide", markup=False)
        yield Line("", id="plan-notes", classes="-autohide", markup=False)
        yield Line("", id="plan-launch-title", markup=False)
        yield Line("", id="plan-launch", markup=False)

    def on_mount(self) -> None:
        self.query_one("#plan-head", Line).set("no plan yet")  # until the first results

    def show(self, chosen: ChosenPlan | None, live: LiveCheck | None, recommended: bool) -> None:
        q = self.query_one
        if chosen is None:  # nothing to plan: say so and leave nothing stale below
            q("#plan-head", Line).set("no plan: the results above say why")
            for name in ("#plan-offload", "#plan-host", "#plan-speed", "#plan-notes", "#plan-launch-title",
                         "#plan-launch"):
                q(name, Line).set("")
            q(PlanTable).set((), ())
            return
        q("#plan-head", Line).set(plan_text.headline(chosen, recommended))
        offload = q("#plan-offload", Line)
        offload.set(plan_text.offload_line(chosen))
        p = chosen.plan
        offload.set_class(p is None or not p.fully_offloaded or not p.fits, "-warn")
        lines, short = plan_text.table_lines(chosen, live)
        q(PlanTable).set(lines, short)
        host = q("#plan-host", Line)
        host.set(plan_text.host_line(chosen))
        avail = chosen.host_available_mib
        host.set_class(p is not None and avail is not None and p.host_mib > avail, "-warn")
        q("#plan-speed", Line).set(plan_text.speed_text(chosen))
        notes = q("#plan-notes", Line)
        notes.set(plan_text.notes_text(chosen))
        notes.set_class(p is not None and not p.fully_offloaded, "-warn")  # "runs much slower"
        q("#plan-launch-title", Line).set(plan_text.launch_title(chosen) if chosen.launch else "")
        q("#plan-launch", Line).set(chosen.launch)
