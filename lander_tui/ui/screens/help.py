"""`?`: every key, what the memory modes mean, and how to get out."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from lander_tui.core.planning_memory import HYSTERESIS_MIB, MODES

MEMORY_MODES = tuple((label, text) for _key, label, text in MODES)

FIELDS = (
    "Tab / Shift-Tab move between fields; Esc leaves a text field so single keys work.",
    "Quants and KV types take lists (Q4_K_M,Q8_0 · f16,q8_0); empty = the engine's defaults.",
    "Target context takes 32768, 32k or 1M; empty = each row at its own longest context.",
    "In the GPU panel, Enter or Space adds a GPU to the plan or removes it.",
    "Up/Down in the results table picks the row the plan, the bar and the launch command are about "
    "(▸ marks it; PageUp/Home never move it).",
    "A wrong field gets a ✗; everything else keeps showing the last valid input and says which.",
    "Safety margin applies to \"free now\" only. Parallel seqs: the line under the knobs says what it "
    "means for the engine.",
    "max ctx with ↑: past the model's trained maximum (a plan stops there unless you set a target).",
    "tok/s is decode speed at the target context (empty: the model's trained maximum, or the row's own "
    "longest when shorter); - for a row that does not fit, ? when the GPU's card is unknown (notes say why).",
)

PARAGRAPHS = (
    "The table follows the live GPUs: when a job grows, max context drops. Changes smaller than "
    f"{HYSTERESIS_MIB:.0f} MiB are ignored so the screen stays calm; the panel always shows the exact numbers.",
    "The plan (v) is one row (★, or the row you move to) on the planned GPUs: the layers, weights, "
    "KV cache and buffers on each GPU, what runs on the CPU and the host RAM it needs, and the command "
    "that runs it. It is solved once, then checked against the free memory every second: when another "
    "job grows and it would no longer load, the line under the table turns red and says which GPU is "
    "short and who took the memory; r solves it again on what is free now.",
    "Speed (the plan's speed line) is a model, not a measurement: decode is bound by the bytes read per "
    "token, prefill by the GPU's tensor throughput; it held within 20 % (decode) on 89 % of measured "
    "llama-bench rows of GPUs it was not fitted on. s puts ★ on the fastest row that reaches the target.",
)


def _grid(rows: Sequence[tuple[str, ...]], widths: tuple[int, ...]) -> Table:
    """Columns whose long cells wrap under themselves (not back to the left edge)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=1)  # the indent under the section title
    for width in widths:
        grid.add_column(width=width, no_wrap=True)
    grid.add_column(ratio=1)
    for row in rows:
        grid.add_row("", *row)
    return grid


def _section(title: str, body: Table) -> Group:
    return Group(Text(title, style="bold"), body, Text(""))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, actions: tuple[tuple[str, str, str, str, str], ...], display: dict[str, str]) -> None:
        super().__init__()
        self._actions = actions
        self._display = display

    def compose(self) -> ComposeResult:
        keys = [(self._display.get(k, k), title, help_text) for k, _action, _label, title, help_text in self._actions]
        keys.append(("ctrl+p", "Command palette", "every action above, by name, and back to live GPUs"))
        keys.append(("ctrl+c", "Quit", "from anywhere, a text field included"))
        with VerticalScroll(id="help-dialog"):
            yield Static(Group(
                _section("Keys", _grid(keys, (6, 28))),
                _section("Memory modes", _grid(list(MEMORY_MODES), (10,))),
                _section("Fields", _grid([("·", line) for line in FIELDS], (1,))),
                *(Group(Text(p), Text("")) for p in PARAGRAPHS),
            ), id="help-body")
            yield Static("Esc, q or ? closes", classes="dialog-hint")
