"""VRAM against context (plotext), redrawn only when its data changes."""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual_plotext import PlotextPlot

from lander_tui.ui.chart_data import ChartData
from lander_tui.ui.text import short_tokens

COLORS = ("cyan", "orange", "green", "magenta", "blue", "yellow")
#: The same colours for the legend (Rich names).
LEGEND_COLORS = ("cyan", "dark_orange", "green", "magenta", "blue", "yellow")
#: Without colour, the lines differ by their marker instead.
MONO_MARKERS = ("dot", "x", "+", "*", "o", "#")
#: How each marker looks in the legend ("dot" draws "•").
MONO_GLYPHS = ("•", "x", "+", "*", "o", "#")


class ChartLegend(Widget):
    """The curves' names under the plot: plotext draws its legend inside the plot area, over the
    low-context end of every curve (issue 11, D14), so the chart draws none and this says it. Entries
    are packed into lines here, so a line breaks between curves, never inside a name."""

    GAP = 3

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._entries: list[tuple[str, str, str]] = []  # (glyph, style, text)

    def show(self, data: ChartData | None) -> None:
        mono = "NO_COLOR" in os.environ
        entries = []
        for i, s in enumerate(data.series if data is not None else ()):
            glyph = MONO_GLYPHS[i % len(MONO_GLYPHS)] * 2 if mono else "━━"
            style = "" if mono else LEGEND_COLORS[i % len(LEGEND_COLORS)]
            star = " ★" if s.recommended else ""
            entries.append((glyph, style, f" {s.label}{star} max {short_tokens(s.max_context)}"))
        if entries != self._entries:
            self._entries = entries
            self.display = bool(entries)
            self.refresh(layout=True)

    def _lines(self, width: int) -> list[list[tuple[str, str, str]]]:
        lines: list[list[tuple[str, str, str]]] = [[]]
        used = 0
        for e in self._entries:
            size = len(e[0]) + len(e[2])
            if lines[-1] and used + self.GAP + size > width:
                lines.append([])
                used = 0
            used += (self.GAP if lines[-1] else 0) + size
            lines[-1].append(e)
        return lines

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._lines(width)) if self._entries else 0

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, line in enumerate(self._lines(max(1, self.size.width))):
            if n:
                text.append("\n")
            for i, (glyph, style, label) in enumerate(line):
                if i:
                    text.append(" " * self.GAP)
                text.append(glyph, style=style)
                text.append(label)
        return text


class ChartPanel(Vertical):
    """The plot and its legend, switched with the Plan view as one."""

    def compose(self) -> ComposeResult:
        yield VramChart()
        yield ChartLegend(id="legend")


class VramChart(PlotextPlot):
    """`show(data)` replots when `data` differs from what is drawn; otherwise it does nothing."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._data: ChartData | None = None
        self._message = ""
        self._held = False
        self._cached: tuple[Any, Any] | None = None  # (size, rendered plot)
        self.draws = 0  # how many times the plot was rebuilt from data (tests and measurements)

    def hold(self) -> None:
        """New data is on its way: until `show()`, repaints reuse the last picture instead of
        rebuilding the old plot (a resize in the meantime would otherwise cost a full build)."""
        self._held = True

    def show(self, data: ChartData | None, message: str = "") -> None:
        held, self._held = self._held, False
        if data == self._data and message == self._message:
            if held and (self._cached is None or self._cached[0] != self.size):
                self.refresh()
            return
        self._data, self._message = data, message
        self._replot()
        legend = self.parent.query_one(ChartLegend) if self.parent is not None else None
        if legend is not None:
            legend.show(data)

    def render(self) -> Any:
        if self._held and self._cached is not None:
            return self._cached[1]
        try:
            picture = super().render()
        except Exception as err:  # a plotting bug must not take the dashboard down
            from rich.text import Text

            return Text(f"chart could not be drawn ({type(err).__name__}); the table above is complete")
        self._cached = (self.size, picture)
        return picture

    def on_mount(self) -> None:
        super().on_mount()
        def theme_changed() -> None:
            self.call_after_refresh(self._replot)

        self.watch(self.app, "theme", theme_changed, init=False)

    def _replot(self) -> None:
        self.draws += 1
        plt = self.plt
        plt.clear_figure()
        data = self._data
        mono = "NO_COLOR" in os.environ
        if data is None or not data.series:
            plt.title(self._message or "no curves to draw")
            self.refresh()
            return
        top_y = data.budget_gib
        for i, s in enumerate(data.series):
            marker = MONO_MARKERS[i % len(MONO_MARKERS)] if mono else "braille"
            # no label: plotext's legend would sit on the curves; ChartLegend names them below the plot
            plt.plot(list(s.xs), list(s.ys), marker=marker, color=COLORS[i % len(COLORS)])
            if s.y_at_max is not None:
                plt.scatter([s.max_context], [s.y_at_max], marker="●" if not mono else "@",
                            color=COLORS[i % len(COLORS)])
            # every curve keeps at least its first point on the chart (when nothing fits, all curves
            # start above the free line)
            top_y = max(top_y, min(s.ys[-1], data.budget_gib * 2), s.ys[0] * 1.05)
        plt.hline(data.budget_gib, "red")
        if data.target:
            plt.vline(data.target, "gray")
        plt.ylim(0, top_y * 1.12 if top_y > 0 else 1)
        plt.xlim(0, data.x_top)
        ticks = _ticks(data.x_top)
        plt.xticks([float(t) for t in ticks], [short_tokens(t) for t in ticks])
        extra = f" (+{data.hidden} more in the table)" if data.hidden else ""
        plt.title(f"VRAM (GiB) vs context · ── free {data.budget_gib:.1f} GiB · model max "
                  f"{short_tokens(data.model_max)}{extra}")
        self.refresh()


def _ticks(top: int) -> list[int]:
    """About five round context ticks: multiples of a power of two times 1k."""
    step = 1024
    while top / step > 6:
        step *= 2
    return list(range(0, top + 1, step))
