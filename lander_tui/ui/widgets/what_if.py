"""Pick a what-if GPU or cloud instance from the catalog: type to filter, Enter to choose."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option


def _names() -> list[str]:
    from lander_tui.core.gpu import catalog_names

    return catalog_names()


LABEL = "What-if GPU: type to filter, ↓ Enter picks"


def _options(names: list[str]) -> list[Option]:
    """One option per catalog name; a card NVML cannot watch (AMD) says so beside its name."""
    from lander_tui.core.gpu.catalog import not_watched_note, vendor_of

    out = []
    for n in names:
        note = not_watched_note(vendor_of(n))
        out.append(Option(f"{n}  ({note})" if note else n, id=n))
    return out


def filter_names(text: str, names: list[str]) -> list[str]:
    """Every word must appear; a leading "2x " count is kept out of the match."""
    words = text.lower().replace("×", "x").split()
    if words and words[0].rstrip("x").isdigit() and words[0].endswith("x"):
        words = words[1:]
    return [n for n in names if all(w in n.lower() for w in words)]


class WhatIfPicker(Vertical):
    """Input + list. Posts `Picked(name)`; "2x A100 80GB" style counts are passed through."""

    BINDINGS = [Binding("down", "to_list", show=False)]

    class Picked(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, value: str = "", compact: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self._value = value
        self._compact = compact

    def compose(self) -> ComposeResult:
        yield Static(LABEL, classes="picker-label")
        yield Input(self._value, placeholder="e.g. 2x A100 80GB", compact=True, classes="picker-input")
        yield OptionList(*_options(filter_names(self._value, _names())), classes="picker-list")

    def _say(self, text: str) -> None:
        label = self.query_one(".picker-label", Static)
        label.update(text)
        label.set_class(text != LABEL, "-error")

    @on(Input.Changed, ".picker-input")
    def _filter(self, event: Input.Changed) -> None:
        event.stop()
        self._say(LABEL)
        options = self.query_one(OptionList)
        names = filter_names(event.value, _names())
        options.clear_options()
        options.add_options(_options(names))
        if names:
            options.highlighted = 0

    @on(Input.Submitted, ".picker-input")
    def _submit(self, event: Input.Submitted) -> None:
        """Enter takes the highlighted match, or a name the catalog parses as typed; never a guess:
        nothing typed, or nothing that matches, says so and picks nothing."""
        event.stop()
        text = event.value.strip()
        if not text:
            self._say("✗ type a GPU or instance name (or ↓ to choose from the list); Esc: back")
            return
        options = self.query_one(OptionList)
        count = ""
        first = text.lower().split()[0]
        if first.endswith("x") and first[:-1].isdigit():
            count = text.split()[0] + " "
        if options.option_count and options.highlighted is not None and text.lower() not in (
                n.lower() for n in _names()):
            opt = options.get_option_at_index(options.highlighted)
            text = count + str(opt.id)
        else:
            from lander_tui.core.errors import LanderError
            from lander_tui.core.gpu import what_if

            try:
                what_if(text)
            except LanderError:
                self._say(f'✗ no catalog GPU matches "{text}"; try fewer words, e.g. "A100"')
                return
        self.post_message(self.Picked(text))

    @on(OptionList.OptionSelected, ".picker-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        text = self.query_one(".picker-input", Input).value.strip()
        first = text.lower().split()[0] if text else ""
        count = text.split()[0] + " " if first.endswith("x") and first[:-1].isdigit() else ""
        self.post_message(self.Picked(count + str(event.option.id)))

    def action_to_list(self) -> None:
        options = self.query_one(OptionList)
        if options.option_count and not options.has_focus:
            options.focus()
            if options.highlighted is None:
                options.highlighted = 0

    def focus_input(self) -> None:
        self.query_one(".picker-input", Input).focus()


class WhatIfScreen(ModalScreen[str | None]):
    """`w`: the picker over the dashboard; Escape leaves without a change."""

    BINDINGS = [Binding("escape", "dismiss(None)", "back")]

    def __init__(self, value: str = "") -> None:
        super().__init__()
        self._value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="what-if-dialog"):
            yield WhatIfPicker(self._value)
            yield Static("Enter picks · Esc back · plans use the catalog's usable memory", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(WhatIfPicker).focus_input()

    @on(WhatIfPicker.Picked)
    def _picked(self, event: WhatIfPicker.Picked) -> None:
        self.dismiss(event.name)
