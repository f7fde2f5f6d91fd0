"""`f`: where does the form's row fit now? Every host's fewest GPUs that load it, best first.

Computed off the UI thread (core/fit.py: milliseconds for 4,000 GPUs, but the best set's plan is a
full estimate); Enter on a line plans on those GPUs in the dashboard, like picking them by hand.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from lander_tui.core.errors import LanderError
from lander_tui.core.fit import FitAnswer, FitRequest, GpuSet, where_it_fits
from lander_tui.ui.text import truncate

#: Lines in the list (the rest are counted below it).
MAX_LINES = 200


FIT_HEADER = f" {'#':>3}  {'HOST':<20}  {'GPUS':<12}  {'CARDS':<24}  {'FREE MiB':>9}  {'NEEDS MiB':>9}  HEADROOM MiB"


def fit_line(i: int, s: GpuSet) -> str:
    return (f"{i:>3}  {truncate(s.host_name, 20):<20}  {truncate(s.gpus_text, 12):<12}  {truncate(s.models, 24):<24}"
            f"  {s.free_mib:>9,.0f}  {s.need_mib:>9,.0f}  {s.headroom_mib:>12,.0f}")


def short_text(answer: FitAnswer) -> str:
    lines = []
    if answer.short:
        names = ", ".join(f"{s.host_name} (short {-s.headroom_mib:,.0f} MiB)" for s in answer.short[:3])
        more = f" +{len(answer.short) - 3:,} more" if len(answer.short) > 3 else ""
        lines.append(f"cannot load it now: {names}{more}")
    if answer.skipped:
        more = f" +{len(answer.skipped) - 3:,}" if len(answer.skipped) > 3 else ""
        lines.append(f"not reporting: {', '.join(answer.skipped[:3])}{more}")
    if len(answer.ranked) > MAX_LINES:
        lines.append(f"{len(answer.ranked) - MAX_LINES:,} more hosts load it (`lander-tui fit --json` lists all)")
    return "\n".join(lines)


class FitScreen(ModalScreen[tuple[int, ...] | None]):
    """Dismissed with the chosen set's GPUs (Enter), or None (Esc)."""

    DEFAULT_CSS = """
    FitScreen { align: center middle; background: $background 60%; }
    #fit-dialog { width: 120; max-width: 100%; height: auto; max-height: 100%; border: round $accent;
                  background: $surface; padding: 0 1; }
    #fit-title { text-style: bold; }
    #fit-list { height: auto; max-height: 20; border: none; }
    #fit-rest, #fit-best, #fit-header { color: $text-muted; }
    """
    BINDINGS = [Binding("escape,f", "dismiss(None)", "back")]

    def __init__(self, request: FitRequest, snapshot: Any) -> None:
        super().__init__()
        self.request = request
        self.snapshot = snapshot
        self.answer: FitAnswer | None = None
        self.error = ""

    def compose(self) -> ComposeResult:
        req = self.request
        with Vertical(id="fit-dialog") as box:
            box.border_title = "Where does it fit?"
            yield Static(f"{req.model.spec.name} {req.quant} + KV {req.kv} at {req.context:,} tokens: working…",
                         id="fit-title", markup=False)
            yield Static(FIT_HEADER, id="fit-header", markup=False)
            yield OptionList(id="fit-list")
            yield Static("", id="fit-rest", markup=False)
            yield Static("", id="fit-best", markup=False)
            yield Static("Enter plans on it · Esc back · fewest GPUs first, then the most headroom "
                         "(free within the budget on the fullest GPU)", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self._solve()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _solve(self) -> None:
        worker = get_current_worker()
        try:
            answer: FitAnswer | None = where_it_fits(self.request, self.snapshot)
            error = ""
        except LanderError as err:
            answer, error = None, str(err)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, answer, error)

    def _show(self, answer: FitAnswer | None, error: str) -> None:
        self.answer, self.error = answer, error
        title = self.query_one("#fit-title", Static)
        if answer is None:
            title.update(f"✗ {error}")
            return
        title.update(answer.summary)
        options = self.query_one(OptionList)
        options.add_options([Option(fit_line(i, s), id=str(i - 1)) for i, s in enumerate(answer.ranked[:MAX_LINES], 1)])
        if answer.ranked:
            options.highlighted = 0
        self.query_one("#fit-rest", Static).update(short_text(answer))
        if answer.best is not None:
            self.query_one("#fit-best", Static).update(f"best: {answer.best.memory.label}\n{answer.best.launch}")

    @on(OptionList.OptionSelected, "#fit-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if self.answer is None or event.option.id is None:
            return
        self.dismiss(self.answer.ranked[int(event.option.id)].indices)
