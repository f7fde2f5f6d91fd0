"""The model form: Hub/catalog search, the picked model's facts, and every knob of the plan.

The widgets keep exactly what the user typed; the app turns it into a request through
`ui.form` and hands back per-field errors, shown next to each field's label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, OptionList, Select
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from lander_tui.core.engines import engine_names
from lander_tui.core.errors import LanderError
from lander_tui.core.model import model_facts
from lander_tui.core.tensors import parameter_count
from lander_tui.ui.form import (
    FLASH_CHOICES,
    MEMORY_LABELS,
    MEMORY_MODES,
    FormValues,
    default_kv,
    default_quants,
    field_hint,
)
from lander_tui.ui.text import count_text, params_text, truncate
from lander_tui.ui.widgets.gpu_panel import Line

SEARCH_DEBOUNCE_S = 0.25
SEARCH_LIMIT = 20

#: (field, label, kind) in screen order; kind is "input" or "select".
KNOBS = (
    ("engine", "Engine", "select"),
    ("quants", "Quants", "input"),
    ("kv_types", "KV cache", "input"),
    ("context", "Target context", "input"),
    ("parallel", "Parallel seqs", "input"),
    ("flash_attn", "Flash attn", "select"),
    ("memory", "Memory", "select"),
    ("margin", "Safety margin", "input"),
    ("what_if", "What-if GPU", "input"),
)
_FORM_FIELDS = {f.name for f in fields(FormValues)}
#: Labels short enough to follow "✗ " in the narrowest knob (14 columns at 120x40).
SHORT_LABELS = {"context": "Target ctx", "parallel": "Parallel", "margin": "Margin", "what_if": "What-if GPU",
                "flash_attn": "Flash attn"}


class SearchHit:
    """One row of the search list (from the Hub, the cache or the catalog)."""

    def __init__(self, id: str, label: str) -> None:
        self.id = id
        self.label = label


def hub_search(text: str, search_models: Callable[..., list[Any]] | None = None) -> tuple[list[SearchHit], str]:
    """Search the Hub; when it cannot answer, the built-in catalog. Returns (hits, status line)."""
    from lander_tui.core.catalog import search_catalog

    try:
        if search_models is None:
            from lander_tui.core import hub

            search_models = hub.search_models
        hits = search_models(text, limit=SEARCH_LIMIT)
    except (LanderError, ImportError) as err:
        specs = search_catalog(text, limit=SEARCH_LIMIT)
        status = "offline: catalog results" + (f" ({truncate(str(err), 60)})" if str(err) else "")
        return [catalog_hit(s) for s in specs], status
    out = []
    local = ""
    for h in hits:
        bits = [params_text(h.params)] if h.params else []
        if h.downloads:
            bits.append(f"↓{count_text(h.downloads)}")
        if getattr(h, "gguf", False):
            bits.append("GGUF")
        if getattr(h, "gated", False):
            bits.append("gated")
        source = getattr(h, "source", "hub")
        if source != "hub":
            bits.append(source)
            local = "offline: catalog results"
        out.append(SearchHit(h.id, f"{h.id}  " + " · ".join(bits)))
    return out, local or f"Hub: {len(out)} result{'s' if len(out) != 1 else ''}"


def catalog_hit(spec: Any) -> SearchHit:
    return SearchHit(spec.hf_repo or spec.name,
                     f"{spec.name}  {params_text(parameter_count(spec))} · ctx {spec.max_context:,} · catalog")


def facts_text(model: Any) -> str:
    spec = model.spec
    f = model_facts(spec)
    head_dim = f"head dim {f['head_dim']}" + (f"/{spec.head_dim_v}" if spec.head_dim_v != spec.head_dim else "")
    feats = " · ".join(f["features"]) if f["features"] else "dense"
    # the trained context first: it is what a plan is capped at, and the first thing cut on a narrow screen
    line1 = (f"{params_text(f['params'])} params · trained ctx {f['context']:,} · {f['layers']} layers · "
             f"hidden {f['hidden']:,} · heads {f['heads']}/{f['kv_heads']} KV")
    src = model.detail or spec.hf_repo or model.origin
    quant = f" · file {model.file_quant}" if model.file_quant else ""
    line2 = f"{head_dim} · {spec.name} · {feats}{quant} · {model.origin}: {src}"
    return line1 + "\n" + line2


class ModelForm(Vertical):
    """Posts `Changed(field, value)` for every knob edit and `Pick(text)` when a model is chosen."""

    BINDINGS = [Binding("down", "to_hits", show=False)]

    class Changed(Message):
        def __init__(self, field: str, value: str) -> None:
            super().__init__()
            self.field = field
            self.value = value

    class Pick(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, values: FormValues, model_text: str,
                 search: Callable[[str], tuple[list[SearchHit], str]] = hub_search, **kw: Any) -> None:
        super().__init__(**kw)
        self._values = values
        self._model_text = model_text
        self._search = search
        self._timer: Timer | None = None
        self._picked_text = model_text
        self._errors: dict[str, str] = {}
        self._hits: list[SearchHit] = []
        self._model: Any = None
        self._suggesting = ""  # a search started for a name that did not resolve (its hits are suggestions)

    # --- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="search-row"):
            yield Line("Model /", classes="row-label")
            yield Input(self._model_text, id="search", compact=True,
                        placeholder="search the Hub or the catalog, or a path / ORG/NAME")
        yield Line("", id="search-status", classes="-autohide")
        hits = OptionList(id="hits")
        hits.display = False
        yield hits
        yield Line("", id="facts")
        with Widget(id="knobs"):
            for name, label, kind in KNOBS:
                with Vertical(classes="knob", id=f"knob-{name}"):
                    yield Line(label, classes="knob-label", id=f"label-{name}")
                    yield self._control(name, kind)
        yield Line("", id="form-error", classes="-autohide")

    def _control(self, name: str, kind: str) -> Widget:
        v = self._values
        if name == "engine":
            return Select([(e, e) for e in engine_names()], value=v.engine, allow_blank=False, compact=True,
                          id=name)
        if name == "flash_attn":
            return Select([(c, c) for c in FLASH_CHOICES], value=v.flash_attn, allow_blank=False, compact=True,
                          id=name)
        if name == "memory":
            return Select([(MEMORY_LABELS[m], m) for m in MEMORY_MODES], value=v.memory, allow_blank=False,
                          compact=True, id=name)
        placeholder = {
            "quants": ",".join(default_quants(v.engine)),
            "kv_types": ",".join(default_kv(v.engine)),
            "context": "model max",
            "parallel": "engine default",
            "margin": "MiB kept free",
            "what_if": "w to pick",
        }[name]
        return Input(str(getattr(v, name)), placeholder=placeholder, compact=True, id=name, select_on_focus=False)

    # --- values in and out -------------------------------------------------------------------
    def load(self, values: FormValues) -> None:
        """Put values into the controls (after a shortcut changed them). Typed text is only
        replaced for the fields that really changed."""
        old, self._values = self._values, values
        for name, _label, kind in KNOBS:
            new = getattr(values, name)
            if getattr(old, name) == new and kind == "input":
                continue
            widget = self.query_one(f"#{name}")
            if kind == "select":
                if widget.value != new:  # type: ignore[attr-defined]
                    widget.value = new  # type: ignore[attr-defined]
            elif getattr(old, name) != new and widget.value != new:  # type: ignore[attr-defined]
                widget.value = new  # type: ignore[attr-defined]
        if old.engine != values.engine:
            self.show_defaults(values.engine, self._model)
        if old.memory != values.memory:
            self._show_labels()

    def show_defaults(self, engine: str, model: Any) -> None:
        """The Quants and KV placeholders say what an empty field means for this engine and model
        (a GGUF file: its own type)."""
        self._model = model
        self.query_one("#quants", Input).placeholder = ",".join(default_quants(engine, model))
        self.query_one("#kv_types", Input).placeholder = ",".join(default_kv(engine, model))

    def show_errors(self, errors: dict[str, str]) -> None:
        if errors == self._errors:
            return
        self._errors = dict(errors)
        self._show_labels()
        self._show_form_error()

    def _show_labels(self) -> None:
        """Each knob's label, with marks that read without colour: "✗" when its value is wrong, "▸"
        when it has focus. Marks come first and the label shortens, so a 14-column knob never cuts
        them; an error's message is read in full on the line under the knobs."""
        focused = self.app.focused
        for name, label, _kind in KNOBS:
            msg = self._errors.get(name)
            marks = ("▸" if focused is not None and focused.id == name else "") + ("✗" if msg else "")
            unused = name == "margin" and self._values.memory != "free"  # only "free now" keeps a margin
            text = f"{marks} {SHORT_LABELS.get(name, label)}" if marks else "Margin: unused" if unused else label
            self.query_one(f"#label-{name}", Line).set(text)
            knob = self.query_one(f"#knob-{name}")
            knob.set_class(bool(msg), "-invalid")
            knob.set_class(unused, "-unused")

    def _show_form_error(self) -> None:
        """Under the knobs: the focused field's error, else any field's error, else what the focused
        field means (in full: this line wraps)."""
        focused = self.app.focused
        name = focused.id if focused is not None else None
        errs = {k: v for k, v in self._errors.items() if k in dict((n, 0) for n, _, _ in KNOBS)}
        msg = errs.get(name or "") or next(iter(errs.values()), "")
        label = {n: lbl for n, lbl, _ in KNOBS}
        key = name if name in errs else next(iter(errs), "")
        line = self.query_one("#form-error", Line)
        line.set_class(not msg, "-hint")
        if msg:
            line.set(f"✗ {label.get(key, key)}: {msg}")
            return
        hint = field_hint(name, self._values, self._model) if name in label else ""
        line.set(f"{label[name]}: {hint}" if hint else "")

    def on_descendant_focus(self) -> None:
        self._show_labels()
        self._show_form_error()

    def on_descendant_blur(self) -> None:
        self.call_after_refresh(self._show_labels)  # focus has moved on by then

    def show_model(self, model: Any, text: str) -> None:
        self._picked_text = text
        search = self.query_one("#search", Input)
        if search.value != text:
            search.value = text
        self.query_one("#facts", Line).set(facts_text(model))
        self.show_defaults(self._values.engine, model)
        self.query_one("#search-status", Line).set("")
        self.query_one("#search").remove_class("-invalid")
        self._hide_hits()

    def show_model_busy(self, text: str) -> None:
        self.query_one("#search-status", Line).set(f"loading {text} …")

    def show_model_error(self, message: str, current: str | None) -> None:
        keep = f" (still planning for {current})" if current else ""
        self.query_one("#search-status", Line).set(f"✗ {message}{keep}")
        self.query_one("#search").add_class("-invalid")

    # --- events ------------------------------------------------------------------------------
    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        name = event.input.id or ""
        if name == "search":
            event.stop()
            self._search_typed(event.value)
            return
        if name in _FORM_FIELDS:
            event.stop()
            if event.value == event.input.value:  # else stale: the control has moved on since
                self._typed(name, event.value)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        name = event.select.id or ""
        if name in _FORM_FIELDS and isinstance(event.value, str):
            event.stop()
            # a Select announces its first value when it mounts; when the app has set another since
            # (no GPU: memory switched to what-if before that message arrived), the message is stale
            # and acting on it flipped the plan to "free now" and back, remounting the GPU cards
            if event.value == event.select.value:
                self._typed(name, event.value)

    def _typed(self, name: str, value: str) -> None:
        """What the controls hold is what `load()` compares against: a value the app later sets
        back (an engine switch emptying Quants) must reach the control even if the app never
        loaded the typed text."""
        old = self._values
        self._values = replace(old, **{name: value})
        if name == "memory" and old.memory != value:
            self._show_labels()
        self.post_message(self.Changed(name, value))

    def _cancel_search(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.workers.cancel_group(self, "search")

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._cancel_search()
        text = event.value.strip()
        hits = self.query_one("#hits", OptionList)
        if not text:
            return
        if hits.display and hits.option_count:
            ids = {str(o.id).lower() for o in hits.options}
            if text.lower() not in ids and not _direct(text):
                index = hits.highlighted if hits.highlighted is not None else 0
                text = str(hits.get_option_at_index(index).id)
        self.post_message(self.Pick(text))

    @on(OptionList.OptionSelected, "#hits")
    def _hit_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._cancel_search()
        self.post_message(self.Pick(str(event.option.id)))

    def action_to_hits(self) -> None:
        hits = self.query_one("#hits", OptionList)
        if self.query_one("#search", Input).has_focus and hits.display and hits.option_count:
            hits.focus()
            if hits.highlighted is None:
                hits.highlighted = 0

    # --- search ------------------------------------------------------------------------------
    def _search_typed(self, text: str) -> None:
        self._cancel_search()
        self.query_one("#search").remove_class("-invalid")
        if not text.strip() or text == self._picked_text:
            self._hide_hits()
            self.query_one("#search-status", Line).set("")
            return
        self.query_one("#search-status", Line).set("searching …")
        self._timer = self.set_timer(SEARCH_DEBOUNCE_S, lambda: self._start_search(text))

    def _start_search(self, text: str) -> None:
        self._timer = None
        search = self._search

        def work() -> None:
            try:
                hits, status = search(text)
            except LanderError as err:
                hits, status = [], f"✗ {err}"
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self._show_hits, text, hits, status)

        self.run_worker(work, thread=True, exclusive=True, group="search", exit_on_error=False)

    def _show_hits(self, text: str, hits: list[SearchHit], status: str) -> None:
        if self.query_one("#search", Input).value != text and text != self._suggesting:
            return  # the user typed on: a newer search is coming
        suggestion = text == self._suggesting
        if suggestion:
            self._suggesting = ""
            if not hits:
                return  # nothing close: the error line stands alone
        self._hits = hits
        options = self.query_one("#hits", OptionList)
        options.set_options([Option(h.label, id=h.id) for h in hits])
        options.display = bool(hits)
        if hits:
            options.highlighted = 0
        if not suggestion:  # a suggestion list sits under the error, which stays
            self.query_one("#search-status", Line).set(status if hits else f"no model matches {text!r} ({status})")

    def search_for(self, text: str) -> None:
        """List what the catalog (and the Hub) has close to `text`: the longest of its words that names
        a catalog model, searched as if it had just been typed."""
        from lander_tui.core.catalog import search_catalog

        parts = sorted({w for w in text.replace("/", " ").replace("-", " ").replace("_", " ").split() if len(w) > 2},
                       key=len, reverse=True)
        words = next((w for w in parts if search_catalog(w, limit=1)), "")
        if words:
            self._cancel_search()
            self._suggesting = words
            self._start_search(words)

    def close_hits(self) -> None:
        self._cancel_search()
        self._hide_hits()
        status = self.query_one("#search-status", Line)
        if (status.text or "").startswith(("searching", "offline", "Hub", "no model")):
            status.set("")

    def _hide_hits(self) -> None:
        hits = self.query_one("#hits", OptionList)
        if hits.display:
            hits.display = False


def _direct(text: str) -> bool:
    """Text that names a model by itself (catalog name, Hub id, file), so Enter takes it as typed."""
    from pathlib import Path

    from lander_tui.core.catalog import find_model

    if find_model(text) is not None or text.lower().endswith(".gguf"):
        return True
    return Path(text).expanduser().exists()
