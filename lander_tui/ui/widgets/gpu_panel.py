"""The live GPU panel: one card per GPU (real or what-if), or one line saying why there is none.

Cards are built once per GPU and then only the pieces whose text changed are touched, so a
1-second tick repaints a few short lines, never the whole panel.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Digits, Static

from lander_tui.ui.text import load_level, mib, na, sparkline, truncate
from lander_tui.ui.widgets.engine_lines import EngineLines
from lander_tui.ui.widgets.what_if import WhatIfPicker

HISTORY_SECONDS = 60
#: What a what-if card's figures are (core/gpu/catalog.py, `CatalogGpu.source`), in words.
WHAT_IF_SOURCES = {"measured": "measured on a real card", "reported": "typical driver figures",
                   "estimated": "estimated"}
MAX_PROCESSES = 3
#: A fleet read from Prometheus can hold thousands of GPUs; a card is ~10 widgets, so the panel
#: shows this many (the plan's GPUs, then the most free) and says how many it leaves out.
MAX_CARDS = 16


class Line(Static):
    """A Static that repaints only when its text changes and asks for a new layout only when its
    size must change (so a ticking number never re-lays out the screen). With the `-autohide`
    class it disappears while empty."""

    _last: str | None = None

    @property
    def text(self) -> str | None:
        """What was last `set()`."""
        return self._last

    def set(self, text: str) -> None:
        old = self._last
        if old == text:
            return
        self._last = text
        self.update(text, layout=old is None or self._needs_layout(old, text))
        if self.has_class("-autohide"):
            self.display = bool(text)

    def _needs_layout(self, old: str, new: str) -> bool:
        styles = self.styles
        if styles.width is None or styles.width.is_auto:
            return len(old) != len(new) or old.count("\n") != new.count("\n")
        if not (styles.height is None or styles.height.is_auto):
            return False  # a fixed height never changes
        return self._rows(old) != self._rows(new)

    def _rows(self, text: str) -> int:
        width = self.content_size.width
        lines = text.split("\n")
        if self.styles.text_wrap == "nowrap" or width <= 0:
            return len(lines) if width > 0 else -1 - len(text)
        return sum(max(1, -(-cell_len(line) // width)) for line in lines)


class UsageBar(Widget):
    """used | reserved | free, as wide as the card. Colours come from the component classes."""

    COMPONENT_CLASSES = {"usage-bar--used", "usage-bar--reserved", "usage-bar--free", "usage-bar--high"}

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._data: tuple[float, float, float, bool] = (0.0, 0.0, 0.0, False)

    def set(self, used: float | None, reserved: float | None, total: float | None, high: bool) -> None:
        data = (used or 0.0, reserved or 0.0, total or 0.0, high)
        if data != self._data:
            self._data = data
            self.refresh()

    def render(self) -> Text:
        used, reserved, total, high = self._data
        width = max(1, self.size.width)
        if total <= 0:
            return Text("·" * width, style=self.get_component_rich_style("usage-bar--free"))
        n_used = round(width * used / total)
        n_res = min(width - n_used, round(width * reserved / total))
        if reserved > 0 and n_res == 0 and n_used < width:
            n_res = 1
        n_free = max(0, width - n_used - n_res)
        text = Text()
        used_style = "usage-bar--high" if high else "usage-bar--used"
        text.append("█" * n_used, style=self.get_component_rich_style(used_style))
        text.append("▒" * n_res, style=self.get_component_rich_style("usage-bar--reserved"))
        text.append("░" * n_free, style=self.get_component_rich_style("usage-bar--free"))
        return text


class History(Widget):
    """A 60-second sparkline of used VRAM, scaled to the card's total (so full means full)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._values: tuple[float, ...] = ()
        self._top = 0.0

    def set(self, values: Sequence[float], top: float) -> None:
        values = tuple(values)
        if (values, top) != (self._values, self._top):
            old = self._render_key()
            self._values, self._top = values, top
            if not self.size.width or self._render_key() != old:
                self.refresh()

    def _render_key(self) -> str:
        return sparkline(self._values, self._top, max(1, self.size.width - 4))

    def render(self) -> Text:
        return Text(self._render_key() + " 60s")


class GpuCard(Widget, can_focus=True):
    """One GPU. Enter/space adds it to or removes it from the plan."""

    BINDINGS = [Binding("enter,space", "use_gpu", "use GPU", show=False)]

    class Toggled(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, index: int, what_if: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.index = index
        self.is_what_if = what_if
        self._pending: tuple[Any, Sequence[float], bool] | None = None
        self.engine_rows: tuple[Any, ...] = ()
        self._ready = False
        self._w: dict[str, Any] = {}
        self._host_line = Line("", classes="gpu-host -autohide")  # a fleet host's title, on its first card
        self._title = ""
        if what_if:
            self.add_class("-what-if")

    def compose(self) -> ComposeResult:
        yield self._host_line
        with Horizontal(classes="gpu-head"):
            yield Line(classes="gpu-title")
            yield Line(classes="gpu-mark")
        yield UsageBar(classes="gpu-bar")
        with Horizontal(classes="gpu-big"):
            yield Digits("", classes="gpu-free")
            yield Line(classes="gpu-side")
        yield Line(classes="gpu-compact")
        yield Line(classes="gpu-stats")
        yield History(classes="gpu-spark")
        yield Line(classes="gpu-procs -autohide")
        yield EngineLines(classes="gpu-engines")

    def on_mount(self) -> None:
        q = self.query_one
        try:
            self._w = {"title": q(".gpu-title", Line), "mark": q(".gpu-mark", Line), "bar": q(UsageBar),
                       "digits": q(Digits), "side": q(".gpu-side", Line), "compact": q(".gpu-compact", Line),
                       "stats": q(".gpu-stats", Line), "spark": q(History), "procs": q(".gpu-procs", Line),
                       "engines": q(EngineLines)}
        except NoMatches:
            return  # removed (or the app closing) while it mounted: its parts are already gone
        self._ready = True
        if self._pending is not None:
            self.show(*self._pending)
        self._w["engines"].set_rows(self.engine_rows)

    def show_engines(self, rows: Sequence[Any]) -> None:
        """The engines whose processes hold memory on this GPU (core.live EngineRow), under the card."""
        self.engine_rows = tuple(rows)
        if self._ready:
            self._w["engines"].set_rows(self.engine_rows)

    def show(self, gpu: Any, history: Sequence[float], selected: bool) -> None:
        if not self._ready:
            self._pending = (gpu, history, selected)  # drawn as soon as the card is mounted
            return
        self._pending = None
        self.set_class(selected, "-selected")
        self.set_class(gpu.lost, "-lost")
        kind = "WHAT-IF " if gpu.what_if else ""
        name = gpu.name.removeprefix("NVIDIA ")
        self._title = f"{kind}GPU {gpu.label}  {name}"
        self._show_title()
        self._w["mark"].set(" ▶ plan" if selected else "")
        total = gpu.total_mib
        frac = (gpu.used_mib / total) if (total and gpu.used_mib is not None) else None
        level = load_level(frac)
        for lv in ("low", "mid", "high", "na"):
            self.set_class(lv == level, f"-mem-{lv}")
        self._w["bar"].set(gpu.used_mib, gpu.reserved_mib, total, level == "high")
        digits = self._w["digits"]
        free_text = ("LOST" if gpu.lost else "STALE" if gpu.stale else
                     mib(gpu.free_mib) if gpu.free_mib is not None else "N/A")
        if digits.value != free_text:
            digits.update(free_text)
        side = f"MiB free\nof {mib(total)} MiB\n"
        if gpu.what_if:  # no free memory to read: the card's usable memory, and where that comes from
            side = f"MiB usable\nof {mib(total)} total\nwhat-if card"
        elif gpu.lost or gpu.stale:
            side += truncate(gpu.note or "GPU is lost", 40)
        else:
            side += "N/A used" if frac is None else f"{frac:.0%} used"
        self._w["side"].set(side)
        if gpu.what_if:
            source = gpu.note.removeprefix("what-if (").removesuffix(" numbers)")
            stats = (f"usable = total - {mib(gpu.reserved_mib)} MiB driver reserve "
                     f"({WHAT_IF_SOURCES.get(source, source)})")
        else:
            power = na(gpu.power_w, unit="") + ("/" + na(gpu.power_cap_w) if gpu.power_cap_w else "") + " W"
            stats = f"util {na(gpu.util_percent, unit='%')}  {na(gpu.temp_c, unit='°C')}  {power}"
            if gpu.unified_memory:
                stats += "  unified mem"
        self._w["stats"].set(stats)
        used = "" if frac is None else f" · {frac:.0%} used"
        if gpu.what_if:
            self._w["compact"].set(f"{free_text} MiB usable of {mib(total)} total (what-if card)")
        else:
            self._w["compact"].set(f"{free_text} MiB free of {mib(total)}{used} · {stats}")
        spark = self._w["spark"]
        spark.display = not gpu.what_if
        spark.set(history, total or 0.0)
        self._w["procs"].set(_procs_text(gpu))

    def set_host(self, text: str) -> None:
        """The host's title above this card ("" hides it): the panel groups a fleet's GPUs by host."""
        self._host_line.set(text)

    def _show_title(self, focused: bool | None = None) -> None:
        # focus as a character too ("▸"), so it shows without colour
        if self._ready:
            focused = self.has_focus if focused is None else focused
            self._w["title"].set(("▸ " if focused else "") + self._title)

    def on_focus(self) -> None:
        self._show_title(True)  # runs before Widget._on_focus sets has_focus

    def on_blur(self) -> None:
        self._show_title(False)

    def action_use_gpu(self) -> None:
        if not self.is_what_if:
            self.post_message(self.Toggled(self.index))


def _procs_text(gpu: Any) -> str:
    if gpu.what_if:
        return ""
    procs = sorted(gpu.processes, key=lambda p: -(p.used_mib or 0))
    if not procs:
        return "no processes hold memory"
    lines = []
    for p in procs[:MAX_PROCESSES]:
        who = p.user or "?"
        cmd = p.command or ("host PID (container?)" if not p.resolved else "?")
        lines.append(f"{p.pid:>7} {truncate(who, 8):<8} {mib(p.used_mib):>7} {cmd}")
    if len(procs) > MAX_PROCESSES:
        rest = sum(p.used_mib or 0 for p in procs[MAX_PROCESSES:])
        lines.append(f"  +{len(procs) - MAX_PROCESSES} more ({mib(rest)} MiB)")
    return "\n".join(lines)


def _cards_to_show(gpus: Sequence[Any], selected: Sequence[int]) -> tuple[Any, ...]:
    """MAX_CARDS GPUs in snapshot order: the selected ones, then the most free (ties by index, so
    the set, and the mounted cards, only change when the ranking really does)."""
    chosen = {g.index for g in gpus if g.index in selected}
    ranked = sorted((g for g in gpus if g.index not in chosen and g.free_mib is not None and not g.stale),
                    key=lambda g: (-g.free_mib, g.index))
    chosen.update(g.index for g in ranked[: max(0, MAX_CARDS - len(chosen))])
    return tuple(g for g in gpus if g.index in chosen)[:MAX_CARDS]


class GpuPanel(VerticalScroll):
    """All GPUs. `show()` takes an immutable snapshot; history is kept here, per GPU uuid."""

    class NoGpus(Message):
        """The panel has nothing real to show (posted once per change)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._history: dict[str, deque[float]] = {}
        self._cards: dict[str, GpuCard] = {}
        self._message_line: Line | None = None
        self._picker: WhatIfPicker | None = None
        self._engine_rows: tuple[Any, ...] = ()

    def compose(self) -> ComposeResult:
        yield Line("waiting for the first GPU reading…", id="gpu-message")
        picker = WhatIfPicker(id="gpu-picker", compact=True)
        picker.display = False
        yield picker
        yield EngineLines("engines on no GPU shown here", id="engines-elsewhere")

    def show_engines(self, rows: Sequence[Any]) -> None:
        """Running engines (core.live EngineRow): each under the card of the GPU its processes hold
        memory on, the rest (no GPU here, a URL named elsewhere, a GPU not shown) below the cards."""
        self._engine_rows = tuple(rows)
        self._place_engines()

    def _place_engines(self) -> None:
        shown = {card.index: card for key, card in self._cards.items() if key.startswith("real:")}
        by_gpu: dict[int, list[Any]] = {i: [] for i in shown}
        rest = []
        for row in self._engine_rows:
            gpus = row.comparison.gpus
            if gpus and gpus[0] in shown:
                by_gpu[gpus[0]].append(row)
            else:
                rest.append(row)
        for index, card in shown.items():
            card.show_engines(by_gpu[index])
        self.query_one("#engines-elsewhere", EngineLines).set_rows(rest)

    def record(self, snapshot: Any) -> None:
        """Add one reading to each GPU's 60-second history (done even when nothing is drawn)."""
        if snapshot is None:
            return
        for g in snapshot.gpus:
            if g.what_if:
                continue
            hist = self._history.setdefault(g.uuid or str(g.index), deque(maxlen=HISTORY_SECONDS))
            if g.used_mib is not None:
                hist.append(g.used_mib)

    def show(self, snapshot: Any, what_if: Any, selected: Sequence[int], planning_what_if: bool) -> None:
        real = tuple(snapshot.gpus) if snapshot is not None and snapshot.ok else ()
        extra = tuple(what_if.gpus) if what_if is not None else ()
        if snapshot is None:
            message = "waiting for the first GPU reading…"
        elif not snapshot.ok:
            message = f"No GPU: {snapshot.message.split(';')[0]}"
        else:
            message = snapshot.message
        if len(real) > MAX_CARDS:
            hosts = len({g.host for g in real})
            real = _cards_to_show(real, () if planning_what_if else selected)
            message = (message + "\n" if message else "") + (
                f"{MAX_CARDS} of {len(snapshot.gpus):,} GPUs on {hosts:,} hosts shown (the plan's, then the "
                "most free); `lander-tui gpus` lists all")
        if planning_what_if and extra:
            label = what_if.message.removeprefix("what-if: ").split(";")[0].removeprefix("1x ")
            message = (message + "\n" if message else "") + f"planning for what-if {label} (w: another)"
        line = self._message_line or self.query_one("#gpu-message", Line)
        self._message_line = line
        line.set(message)
        line.display = bool(message)
        no_gpu = snapshot is not None and not snapshot.ok
        picker = self._picker or self.query_one(WhatIfPicker)
        self._picker = picker
        if picker.display != no_gpu:
            picker.display = no_gpu
        wanted = [(f"real:{g.uuid or g.index}", g, False) for g in real]
        wanted += [(f"whatif:{i}:{g.name}", g, True) for i, g in enumerate(extra)]
        keys = [k for k, _, _ in wanted]
        if keys != list(self._cards):
            for card in self._cards.values():
                card.remove()
            self._cards = {}
            new_cards = []
            for key, g, is_wi in wanted:
                card = GpuCard(g.index, is_wi, classes="gpu-card")
                self._cards[key] = card
                new_cards.append(card)
            if new_cards:
                self.mount_all(new_cards, before=picker)
            self._place_engines()
        for key, g, is_wi in wanted:
            hist = () if is_wi else self._history.get(g.uuid or str(g.index), ())
            sel = planning_what_if if is_wi else (not planning_what_if and g.index in selected)
            self._cards[key].show(g, tuple(hist), sel)
        self._title_hosts(snapshot, wanted)

    def _title_hosts(self, snapshot: Any, wanted: list[tuple[str, Any, bool]]) -> None:
        """A fleet's cards come in host order: the first card of each host carries the host's title."""
        from lander_tui.ui.host_rows import host_titles

        titled = getattr(self, "_titled", None)
        if titled is None or titled[0] is not snapshot:
            titled = self._titled = (snapshot, host_titles(snapshot) if snapshot is not None else {})
        titles, seen = titled[1], set()
        for key, g, is_wi in wanted:
            first = not is_wi and bool(g.host) and g.host not in seen
            seen.add(g.host)
            self._cards[key].set_host(titles.get(g.host, "") if first else "")

    def first_card(self) -> GpuCard | None:
        return next(iter(self._cards.values()), None)
