"""The dashboard: live GPUs on the left, the model form, results and the VRAM curve on the right.

Data flow, one way: a thread worker polls the GPU backend once a second and posts each immutable
`Snapshot` (stale ones are dropped); form edits and shortcuts produce a new `FormValues`; both
go through `ui.form.build_request`, and the estimate is re-run only when the request changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Input, OptionList
from textual.widgets._footer import FooterKey
from textual.worker import get_current_worker

from lander_tui.core import planning_memory as pm
from lander_tui.core.engines import all_engines
from lander_tui.core.errors import LanderError
from lander_tui.core.estimate import Estimate, EstimateRequest
from lander_tui.core.gpu.snapshot import Snapshot
from lander_tui.core.model import ResolvedModel
from lander_tui.core.planning_memory import PlanningMemory
from lander_tui.ui import form as forms
from lander_tui.ui import live_plan
from lander_tui.ui.fleet import FleetActions, source_text
from lander_tui.ui.form import Draft, FormValues
from lander_tui.ui.live_engines import EnginesReady, EngineWatch
from lander_tui.ui.live_plan import ChosenPlan, LiveCheck
from lander_tui.ui.widgets.chart import ChartPanel, VramChart
from lander_tui.ui.widgets.gpu_panel import GpuCard, GpuPanel, Line
from lander_tui.ui.widgets.model_form import ModelForm, SearchHit, hub_search
from lander_tui.ui.widgets.plan_view import PlanView
from lander_tui.ui.widgets.results import Results
from lander_tui.ui.widgets.table import RowTable
from lander_tui.ui.widgets.what_if import WhatIfPicker, WhatIfScreen

POLL_INTERVAL_S = 1.0
CHART_DELAY_S = 0.03

#: One table for keys, footer, help screen and command palette:
#: (keys, action, footer label, palette title, help text).
ACTIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("slash", "focus_search", "search", "Search models", "search the Hub (the catalog when offline) for a model"),
    ("g", "cycle_gpu", "GPU", "Next GPU choice", "plan on the next GPU, then on all of them together"),
    ("w", "what_if", "what-if", "What-if GPU…", "plan for a catalog GPU or cloud instance instead"),
    ("h", "hosts", "hosts", "Hosts view", "every host and its GPUs (free, used, utilisation, history); Enter plans"),
    ("f", "fit", "fit?", "Where does it fit?", "the hosts and GPUs that load this row now, best first; Enter plans"),
    ("b", "cycle_engine", "engine", "Next engine", " → ".join(e.label for e in all_engines())),
    ("k", "cycle_kv", "KV", "Next KV-cache type", "default pair → f16 → q8_0 → q4_0 (engine's own types)"),
    ("plus,equals_sign", "context_up", "ctx+", "Double the target context", "next power of two up"),
    ("minus", "context_down", "ctx-", "Halve the target context", "next power of two down"),
    ("v", "toggle_view", "plan", "Show the plan / the curve", "per-GPU split, offload, launch command ⇄ VRAM curve"),
    ("s", "toggle_prefer", "★ speed", "Recommend by speed / by precision",
     "★ on the fastest row that reaches the target context, or (again) the highest precision"),
    ("r", "replan", "re-plan", "Re-plan on what is free now", "solve the chosen row again on the memory free now"),
    ("u", "plan_from_engine", "use engine", "Plan from a running engine",
     "the form takes a running engine's model, quant, KV, context and slots (again: the next engine)"),
    ("p", "toggle_pause", "pause", "Pause / resume live updates", "freeze the GPU panel and the plan"),
    ("c", "copy_plan", "copy", "Copy the plan", "plan and launch command (OSC 52: works over SSH)"),
    ("e", "export('md')", "export", "Export the plan (Markdown)",
     "estimate + plan + command to a file (^p: JSON, CSV)"),
    ("question_mark", "help", "help", "Keys and help", "show every key"),
    ("q", "quit", "quit", "Quit", "leave lander-tui"),
)
KEY_DISPLAY = {"slash": "/", "plus,equals_sign": "+", "minus": "-", "question_mark": "?"}
#: Keys left off the footer (help and the palette still list them).
#: h, f: the top bar names them for a fleet; u (plan from a running engine): help and the palette
NOT_IN_FOOTER = ("context_down", "replan", "toggle_prefer", "hosts", "fit", "plan_from_engine")
#: Palette-only commands: (action, title, help).
PALETTE_EXTRAS: tuple[tuple[str, str, str], ...] = (
    ("live_gpus", "Back to live GPUs (free now)", "leave a what-if or whole-GPU plan: plan on this machine's "
     "GPUs, free memory now"),
    ("export('json')", "Export the plan (JSON)", "write estimate, plan and launch command as JSON"),
    ("export('csv')", "Export the results (CSV)", "write the results table as CSV"),
)
PLAN_DELAY_S = 0.03
#: Actions bound to printable keys: in a text field those keys type, so these are off the footer there.
_TYPED_ACTIONS = frozenset(action for _keys, action, *_rest in ACTIONS)


def styles_dir() -> Path:
    """`lander_tui/styles` in an installed wheel, `<repo>/styles` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "styles", package.parent / "styles"):
        if (candidate / "app.tcss").is_file():
            return candidate
    raise LanderError(f"lander-tui's styles are missing (looked in {package / 'styles'}); reinstall lander-tui")


def css_paths() -> list[str | PurePath]:
    d = styles_dir()
    return [d / name for name in ("app.tcss", "gpu.tcss", "form.tcss", "results.tcss", "dialogs.tcss")]


class LanderFooter(Footer):
    """The footer; on a narrow screen compact, with `? help` and `q quit` first: they are what a user
    in a small tmux pane looks for, and every other key is one `?` away."""

    def compose(self) -> ComposeResult:
        items = list(super().compose())
        if self.screen.has_class("-narrow"):
            first = [w for w in items if isinstance(w, FooterKey) and w.action in ("help", "quit")]
            items = first + [w for w in items if w not in first]
        yield from items


class GpuSnapshotReady(Message):
    """A new GPU reading. Newer readings replace older ones still waiting in the queue."""

    def __init__(self, snapshot: Any) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuSnapshotReady)


@dataclass(frozen=True)
class Shown:
    """A valid form, its request and its estimate: what the screen shows."""

    form: FormValues
    draft: Draft
    estimate: Estimate


class LanderApp(FleetActions, App[None]):
    TITLE = "lander-tui"
    CSS_PATH = css_paths()
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # two columns from 100 wide
    BINDINGS = [
        *[Binding(keys, action, label, key_display=KEY_DISPLAY.get(keys), show=action not in NOT_IN_FOOTER)
          for keys, action, label, _title, _help in ACTIONS],
        # the same key, shown while paused (the footer says what p does now)
        Binding("p", "resume", "resume", show=True),
        Binding("escape", "leave_field", "leave field"),
        # Ctrl+C quits, as users of nvitop/nvtop/htop expect (Textual's default only says "press
        # ctrl+q"); a text field's copy is Ctrl+Insert or the terminal's own selection
        Binding("ctrl+c", "interrupt", "quit", show=False, priority=True),
    ]

    def __init__(
        self,
        backend: Any = None,
        *,
        demo: bool = False,
        what_if: str | None = None,
        model: str | None = None,
        poll_interval: float | None = POLL_INTERVAL_S,
        search: Callable[[str], tuple[list[SearchHit], str]] = hub_search,
        resolve: Callable[[str], Any] | None = None,
        engine_urls: Sequence[str] = (),
        scan_engines: bool = False,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from lander_tui.core.catalog import DEFAULT_MODEL

        self._backend = backend
        self._demo = demo
        self._poll_interval = poll_interval
        self._search_fn = search
        self._resolve_fn = resolve
        self._model_text = model or DEFAULT_MODEL
        self.form = FormValues(memory="what-if" if what_if else "free", what_if=what_if or "")
        self.model: ResolvedModel | None = None
        self.snapshot: Snapshot | None = None
        self.estimate: Estimate | None = None
        self.draft: Draft | None = None  # the form + GPUs as a request, or why not
        self.paused = False
        self._memory: PlanningMemory | None = None
        self._last_request: EstimateRequest | None = None
        self._saved_engine_fields: dict[str, tuple[str, str]] = {}
        self._what_if_cache: dict[str, Any] = {}
        self._auto_what_if = False
        self._wake = threading.Event()
        self.estimates_run = 0  # how many times the estimator ran (tests: never without a change)
        #: The last valid state, which everything on screen shows (table, ★, bar, chart, plan, title,
        #: GPU panel) while a field is wrong: one state, never a mix of old and new.
        self.shown: Shown | None = None
        self._scrolled_once = False
        self._scroll_pending = False  # the narrow layout's first scroll to the results is still to come
        self._footer_pending = False  # the footer is still to be fitted to a new width
        self._drawn_estimate: Estimate | None = None  # what the chart shows
        self.chosen: ChosenPlan | None = None  # the plan for the chosen row (see ui/live_plan.py)
        self.live: LiveCheck | None = None  # its check against the latest reading, as shown
        self._row_pick: tuple[str, str] | None = None  # the row the user moved to (None: follow ★)
        self._plan_pending = False
        self.last_export: Path | None = None  # the file `e` wrote last
        # running engines (ui/live_engines.py): read in their own threads, shown under their GPUs
        self.engines: EngineWatch | None = None
        if engine_urls or scan_engines:
            self.engines = EngineWatch(lambda: self.snapshot, self.post_message, engine_urls, scan_engines,
                                       engine_options)
        self._engine_pick: str | None = None  # the engine `u` took last
        self.snapshots_applied = 0  # GPU readings shown (tests: the tick goes on while an engine is slow)
        self._from_palette = False  # an action run from the command palette (not a key typed in a field)

    # --- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Line("", id="topbar")
        with Horizontal(id="main"):
            yield GpuPanel(id="gpus")
            with Vertical(id="right"):
                yield ModelForm(self.form, self._model_text, search=self._search_fn, id="form")
                yield Results(id="results")
                with ContentSwitcher(initial="chart", id="lower"):
                    yield ChartPanel(id="chart")
                    yield PlanView(id="plan")
        yield LanderFooter()

    def on_mount(self) -> None:
        self._apply_breakpoints()
        self._update_topbar()
        self.query_one("#gpus").border_title = "GPUs"
        self.query_one("#form").border_title = "Model and knobs"
        self.query_one("#results").border_title = "Results"
        self._title_lower()
        self._pick_model(self._model_text)
        self.query_one(RowTable).focus()  # single-letter keys work at once; / or Tab reach the fields
        if self._poll_interval:
            self._poll_loop()
        if self.engines is not None:
            self.engines.start()
        self._recompute()
        from lander_tui.core.engines import plugin_problems

        for problem in plugin_problems():  # the other engines keep working
            self.notify(problem, title="Engine plugin skipped", severity="warning", timeout=10, markup=False)

    def on_resize(self) -> None:
        self._footer_pending = True
        self.call_after_refresh(self._fit_footer)

    def _fit_footer(self) -> None:
        self._footer_pending = False
        if not (self.is_running and self._screen_stack):
            return
        footer = self.query_one(LanderFooter)
        narrow = self.screen.has_class("-narrow")
        footer.compact = narrow
        footer.show_command_palette = not narrow  # the title bar says ctrl+p
        footer.refresh(recompose=True)

    def _apply_breakpoints(self) -> None:
        """Put the screen in the layout class HORIZONTAL_BREAKPOINTS gives the starting width, now.
        Textual (8.2) applies breakpoints when the screen gets a resize, but the first one reaches
        the app before its screen exists, so an 80-column terminal would start in the wide layout
        until something resizes it (posting the missed resize instead still paints one wide frame)."""
        width = self.size.width
        current = max((min_width, name) for min_width, name in self.HORIZONTAL_BREAKPOINTS if width >= min_width)[1]
        self.screen.update_classes({name: name == current for _, name in self.HORIZONTAL_BREAKPOINTS}, animate=False)
        self._fit_footer()

    # --- GPU polling -------------------------------------------------------------------------
    def _open_backend(self) -> Any:
        if self._backend is None:
            from lander_tui.core.gpu import open_backend

            self._backend = open_backend(demo=self._demo)
        return self._backend

    @work(thread=True, exclusive=True, group="gpu-poll", exit_on_error=False)
    def _poll_loop(self) -> None:
        """One thread, one poll at a time, once per interval; nothing polls while paused."""
        worker = get_current_worker()
        backend = self._open_backend()
        interval = self._poll_interval or POLL_INTERVAL_S
        try:
            while not worker.is_cancelled:
                if self.paused:
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                started = time.monotonic()
                snap = backend.poll()
                if worker.is_cancelled:
                    break
                self.post_message(GpuSnapshotReady(snap))
                self._wake.wait(max(0.05, interval - (time.monotonic() - started)))
                self._wake.clear()
        finally:
            backend.close()

    def poll_now(self) -> None:
        """Take one reading on the caller's thread (tests and screenshots drive time themselves)."""
        self.apply_snapshot(self._open_backend().poll())

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "gpu-poll")
        self._wake.set()
        if self.engines is not None:
            self.engines.stop()

    @on(EnginesReady)
    def _engines_ready(self, message: EnginesReady) -> None:
        if self.paused or not self.is_running or self.engines is None or not self.engines.accept(message):
            return
        self.query_one(GpuPanel).show_engines(message.rows)
        if message.error:
            self.notify(message.error, title="Engines could not be shown", severity="error", markup=False)

    @on(GpuSnapshotReady)
    def _snapshot_ready(self, message: GpuSnapshotReady) -> None:
        if not self.paused and self.is_running:  # a reading queued while the app shuts down: its widgets are gone
            self.apply_snapshot(message.snapshot)

    def apply_snapshot(self, snap: Any) -> None:
        if self.snapshot is not None and snap.taken_at < self.snapshot.taken_at:
            return  # an older reading arrived late
        self.snapshot = snap
        self.snapshots_applied += 1
        if self.engines is not None:
            self.engines.saw(snap)
        panel = self.query_one(GpuPanel)
        panel.record(snap)
        changed = False
        if snap.ok and not self.form.gpus and pm.freest_gpu(snap):
            self.form = replace(self.form, gpus=pm.freest_gpu(snap))
            changed = True
        if not snap.ok and self.form.memory != "what-if" and not self._auto_what_if:
            self._auto_what_if = True
            self.form = replace(self.form, memory="what-if", what_if=self.form.what_if or pm.NO_GPU_WHAT_IF)
            changed = True
        if changed:
            self.query_one(ModelForm).load(self.form)
        self._update_topbar()
        self._show_gpus()
        self._recompute()
        self._check_live()

    def _screen_form(self) -> FormValues:
        """The form whose memory choice the title and the GPU panel show: the one typed, unless its
        memory fields are wrong, then the last valid one (the results show that one too)."""
        bad = {"memory", "what_if", "margin"} & set(self.draft.errors if self.draft is not None else ())
        if bad and self.shown is not None:
            return self.shown.form
        return self.form

    def _what_if_snapshot(self) -> Any:
        form = self._screen_form()
        if form.memory != "what-if" or "what_if" in forms.field_errors(form):
            return None
        name = form.what_if.strip()
        if name not in self._what_if_cache:
            from lander_tui.core.gpu import what_if, what_if_snapshot

            self._what_if_cache[name] = what_if_snapshot(what_if(name))
        return self._what_if_cache[name]

    def _show_gpus(self) -> None:
        form = self._screen_form()
        self.query_one(GpuPanel).show(self.snapshot, self._what_if_snapshot(), form.gpus, form.memory == "what-if")

    # --- the estimate ------------------------------------------------------------------------
    def _recompute(self) -> None:
        draft = forms.build_request(self.form, self.model, self.snapshot, self._memory)
        self.draft = draft
        form = self.query_one(ModelForm)
        form.show_errors(draft.errors)
        if draft.memory is not None:
            self._memory = draft.memory
        results = self.query_one(Results)
        chart = self.query_one(VramChart)
        if draft.request is None:
            order = ("model", "memory", *forms.FIELDS)
            key = next(k for k in order if k in draft.errors)
            self._last_request = None
            self.estimate = None
            if key not in ("model", "memory") and self.shown is not None:
                # a wrong or half-typed field: everything keeps showing the last valid input, and says so
                self._mark_stale(f"{forms.FIELD_LABELS.get(key, key)}: {draft.errors[key]}")
                return
            self.shown = None
            results.show_error(self._summary(draft, None), draft.errors[key])
            chart.show(None, "nothing to plan yet")
            self._drop_plan()
            self._show_chrome()
            return
        shown = self.shown
        if shown is not None and draft.request == shown.draft.request:
            # the input means what is on screen (e.g. a field that was wrong for a moment is right again)
            self.estimate = shown.estimate
            self.shown = Shown(self.form, draft, shown.estimate)
            self._last_request = draft.request
            if results.stale:
                results.show(shown.estimate, self._summary(draft, shown.estimate), draft.notes,
                             self._preferred_row(draft, shown.estimate))
                self._show_chrome()
                self._show_plan()
            return
        if draft.request == self._last_request:
            return
        self._last_request = draft.request
        from lander_tui.core.estimate import run_estimate

        self.estimates_run += 1
        try:
            est = run_estimate(draft.request)
        except LanderError as err:
            self.estimate = None
            if self.shown is not None:
                self._mark_stale(str(err))
            else:
                results.show_error(self._summary(draft, None), str(err))
                chart.show(None, "no configuration could be estimated")
                self._drop_plan()
                self._show_chrome()
            return
        self.estimate = est
        if self.shown is None and not self._scrolled_once:
            # one column (narrow terminal): bring the results into view once the GPU cards have
            # taken their place; the GPU panel is one scroll (or Shift-Tab) up
            self._scrolled_once = True
            self._scroll_pending = True
            self._later(0.2, self._results_into_view)
        self.shown = Shown(self.form, draft, est)
        results.show(est, self._summary(draft, est), draft.notes, self._preferred_row(draft, est))
        self._show_chrome()
        self._schedule_plan()
        # the table goes out in the next frame (~1/60 s); the curves, the slow part to draw,
        # a frame or two later, so a keystroke's answer is never held up by the plot
        request = draft.request
        chart.hold()
        self._later(CHART_DELAY_S, lambda: self._update_chart(request, est))

    def _mark_stale(self, message: str) -> None:
        """Say why the screen is not following the form, and which input it shows instead."""
        assert self.shown is not None
        showing = forms.describe_changes(self.shown.form, self.form)
        self.query_one(Results).mark_stale(message, showing)
        self._show_chrome()

    def _show_chrome(self) -> None:
        """The title and the GPU panel follow the state the results show."""
        self._update_topbar()
        self._show_gpus()

    def _later(self, delay: float, callback: Callable[[], Any]) -> None:
        """A timer whose callback is skipped once the app is closing: a test's `run_test` shuts the
        app down without `exit()`, and a timer firing while its screens are being removed would
        meet an empty screen stack (ScreenStackError, seen under load)."""
        def run() -> None:
            if self.is_running and self._screen_stack:
                callback()

        self.set_timer(delay, run)

    @property
    def settled(self) -> bool:
        """Nothing scheduled is still to draw: the plan is solved, the chart shows the results, and a
        narrow screen has scrolled them into view (tests and screenshots wait for this, not a time)."""
        if self._plan_pending or (self.shown is not None and self._drawn_estimate is not self.shown.estimate):
            return False
        if self._scroll_pending or self._footer_pending:
            return False
        if self._scrolled_once and not self._results_on_top():
            # the form grew (a hint line, the facts) after the scroll: bring the results back up
            self._scroll_pending = True
            self.call_after_refresh(self._results_into_view)
            return False
        return True

    def _results_on_top(self) -> bool:
        """On one column, the results start at the top of the view (or the view cannot scroll further)."""
        if not self.screen.has_class("-narrow"):
            return True
        main, results = self.query_one("#main"), self.query_one(Results)
        return results.region.y == main.region.y or main.scroll_y >= main.max_scroll_y

    def _results_into_view(self, tries: int = 10) -> None:
        """Scroll the results to the top on one column; check after the next frame and try again
        while the layout above them is still settling (the form gains its hint lines a frame late)."""
        if not self.screen.has_class("-narrow"):
            self._scroll_pending = False
            return
        self.query_one("#main").scroll_to_widget(self.query_one(Results), top=True, animate=False)

        def check() -> None:
            if not (self.is_running and self._screen_stack):
                return
            if self._results_on_top() or tries <= 0:
                self._scroll_pending = False
            else:
                self._later(0.05, lambda: self._results_into_view(tries - 1))

        self.call_after_refresh(check)

    def _update_chart(self, request: EstimateRequest, est: Estimate) -> None:
        if self.shown is None or est is not self.shown.estimate:
            return  # a newer estimate is on its way
        from lander_tui.ui.chart_data import chart_data

        self.query_one(VramChart).show(chart_data(request, est))
        self._drawn_estimate = est

    # --- the chosen plan and its live check ---------------------------------------------------
    def _plan_inputs(self, draft: Draft) -> Any:
        """Everything a plan is about except the free memory itself (which may drift under it)."""
        assert draft.request is not None and draft.memory is not None
        req = draft.request
        return (replace(req, devices=tuple(replace(d, free_mib=0.0) for d in req.devices)), draft.memory.key)

    def _preferred_row(self, draft: Draft, est: Estimate) -> tuple[str, str] | None:
        """While only the free memory moved, the cursor stays on the plan's row (even when ★ moved)."""
        keys = {(r.quant, r.kv_cache) for r in est.results}
        if self._row_pick not in keys:
            self._row_pick = None
        if self.chosen is not None and self.chosen.inputs == self._plan_inputs(draft):
            return self.chosen.row
        return self._row_pick

    def _schedule_plan(self) -> None:
        # a frame after the table, like the chart: a keystroke's answer never waits for the plan
        if not self._plan_pending:
            self._plan_pending = True
            self._later(PLAN_DELAY_S, self._sync_plan)

    def _sync_plan(self, force: bool = False) -> None:
        """Solve the plan again when what it is about changed (or `force`); otherwise keep it."""
        self._plan_pending = False
        if self.shown is None or self.shown.draft.memory is None or self.shown.draft.request is None:
            return  # nothing valid on screen: no plan
        draft, est = self.shown.draft, self.shown.estimate  # the plan always belongs to the table shown
        results = self.query_one(Results)
        row = results.cursor_key
        if row is None:
            return
        inputs = self._plan_inputs(draft)
        if not force and self.chosen is not None and self.chosen.key == (inputs, row):
            return
        if self.live is not None and not self.live.loads:
            self.clear_notifications()  # "no longer loads" was about the plan being replaced
        self.chosen = live_plan.choose(draft.request, est, draft.memory, row, inputs, snapshot=self.snapshot)
        self.live = None
        self._check_live(announce=False)
        self._show_plan()

    def _drop_plan(self) -> None:
        """No results, no plan: nothing is shown or checked until there are results again."""
        if self.chosen is not None:
            self.chosen = None
            self.live = None
            self._show_plan()

    def _check_live(self, announce: bool = True) -> None:
        """Each reading: the chosen plan's needs against the free memory now (a few subtractions)."""
        chosen = self.chosen
        if chosen is None or not chosen.live:
            return
        new = live_plan.settle(self.live, live_plan.check(chosen, self.snapshot))
        if new is self.live:
            return
        was = self.live.loads if self.live is not None else True
        self.live = new
        self._show_plan()
        if not announce or new is None or new.loads == was:
            return
        # besides the line in place, a toast: the eye may be on the GPU panel when a job grows
        self.clear_notifications()
        text = self._status()[0].removeprefix("✗ ").removeprefix("✓ ")
        if not new.loads:
            self.notify(text, title="The plan no longer loads", severity="error", timeout=6, markup=False)
        else:
            self.notify(text, title="The plan loads again", timeout=4, markup=False)

    def _status(self) -> tuple[str, str]:
        from lander_tui.ui.plan_text import status

        return status(self.chosen, self.live)

    def _show_plan(self) -> None:
        results = self.query_one(Results)
        chosen = self.chosen
        rec = chosen is not None and results.recommended_key == chosen.row
        text, level = self._status()
        star = results.recommended_key
        if chosen is not None and chosen.plan is not None and not rec and star is not None \
                and self._row_pick == chosen.row:
            text += f" · your row (★ is {star[0]}/{star[1]})"  # picked by hand: say so, the plan follows it
        results.show_status(text, level)
        results.show_plan(chosen.row if chosen is not None else None, chosen.plan if chosen is not None else None)
        self.query_one(PlanView).show(chosen, self.live, rec)

    def _title_lower(self) -> None:
        lower = self.query_one("#lower", ContentSwitcher)
        if lower.current == "plan":
            lower.border_title = "Plan · v: curve"
        else:
            lower.border_title = "VRAM curve · v: plan"

    def _summary(self, draft: Draft, est: Estimate | None) -> str:
        """Where the plan is made, then what the table's columns mean for this input."""
        mem = draft.memory
        if mem is None:
            return "no memory to plan on yet"
        head = f"Planning on {mem.free_mib:,.0f} MiB: {mem.label} ({mem.detail})"
        if est is None or draft.request is None:
            return head
        from lander_tui.core.engines import get_engine
        from lander_tui.ui.text import short_tokens
        from lander_tui.ui.widgets.results import PAST_TRAINED

        target = draft.request.context
        bits = [f"GiB at the {short_tokens(target)} target, max ctx per row" if target else "GiB at each row's max ctx"]
        rows = [r for r in est.results if not r.error]
        if any(r.max_context > r.model_max_context for r in rows):
            bits.append(f"{PAST_TRAINED} past trained {rows[0].model_max_context:,}")
        note = get_engine(est.engine).host_note
        if note and any(r.memory.host for r in rows):
            bits.append(note)
        return head + "\n" + " · ".join(bits)

    # --- form events -------------------------------------------------------------------------
    @on(ModelForm.Changed)
    def _form_changed(self, event: ModelForm.Changed) -> None:
        if getattr(self.form, event.field) == event.value:
            return
        if event.field == "engine":
            self.form = forms.switch_engine(self.form, event.value, self._saved_engine_fields)
            self.query_one(ModelForm).load(self.form)
        else:
            changes: dict[str, Any] = {event.field: event.value}
            self.form = replace(self.form, **changes)
        if event.field in ("memory", "what_if"):
            self._show_gpus()
            self._update_topbar()
        self._recompute()

    def set_form(self, form: FormValues) -> None:
        """Apply values from a shortcut: controls, GPU panel and results all follow."""
        if form == self.form:
            return
        old, self.form = self.form, form
        self.query_one(ModelForm).load(form)
        if (old.gpus, old.memory, old.what_if) != (form.gpus, form.memory, form.what_if):
            self._show_gpus()
            self._update_topbar()
        self._recompute()

    @on(RowTable.Highlighted)
    def _row_highlighted(self, event: RowTable.Highlighted) -> None:
        if event.user:  # a row picked by hand sticks; back on ★ the plan follows ★ again
            results = self.query_one(Results)
            key = results.cursor_key
            self._row_pick = key if key != results.recommended_key else None
        self._schedule_plan()

    @on(GpuCard.Toggled)
    def _gpu_toggled(self, event: GpuCard.Toggled) -> None:
        self.set_form(forms.toggle_gpu(self.form, event.index))

    @on(WhatIfPicker.Picked)
    def _what_if_picked(self, event: WhatIfPicker.Picked) -> None:
        self.set_form(replace(self.form, memory="what-if", what_if=event.name))

    # --- the model ---------------------------------------------------------------------------
    @on(ModelForm.Pick)
    def _model_picked(self, event: ModelForm.Pick) -> None:
        self._pick_model(event.text)

    def _pick_model(self, text: str) -> None:
        from lander_tui.core.catalog import find_model

        if self._resolve_fn is None and find_model(text) is not None:
            self._resolve_now(text)  # the catalog answers at once, no thread needed
            return
        self.query_one(ModelForm).show_model_busy(text)
        self._resolve_in_thread(text)

    def _resolve(self, text: str) -> Any:
        if self._resolve_fn is not None:
            return self._resolve_fn(text)
        from lander_tui.core.model_source import resolve_model

        return resolve_model(text)

    def _resolve_now(self, text: str) -> None:
        try:
            model = self._resolve(text)
        except LanderError as err:
            self._model_failed(text, str(err))
            return
        self._model_ready(model, text)

    @work(thread=True, exclusive=True, group="resolve", exit_on_error=False)
    def _resolve_in_thread(self, text: str) -> None:
        worker = get_current_worker()
        try:
            model = self._resolve(text)
        except LanderError as err:
            if not worker.is_cancelled:
                self.call_from_thread(self._model_failed, text, str(err))
            return
        except Exception as err:  # a bug or an odd file must not take the dashboard down
            if not worker.is_cancelled:
                self.call_from_thread(self._model_failed, text, f"{type(err).__name__}: {err}")
            return
        if not worker.is_cancelled:
            self.call_from_thread(self._model_ready, model, text)

    def _model_ready(self, model: Any, text: str) -> None:
        self.model = model
        self.query_one(ModelForm).show_model(model, text)
        self._recompute()
        if self.focused is not None and self.focused.id in ("search", "hits"):
            self.query_one(RowTable).focus()  # picked: the answer is in the table, and keys work again

    def _model_failed(self, text: str, message: str) -> None:
        current = self.model.spec.name if self.model is not None else None
        form = self.query_one(ModelForm)
        if "--list-models" in message:
            # the CLI's hint; here the search box is the catalog: say so, and search for what was typed
            message = message.split(" (`lander-tui", 1)[0] + " (type part of its name: the list shows the " \
                      "catalog and Hub models that match)"
            form.search_for(text)
        form.show_model_error(message, current)
        self._recompute()

    # --- actions -----------------------------------------------------------------------------
    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_cycle_gpu(self) -> None:
        if not forms.gpu_choices(self.snapshot):
            self.notify("no GPU to choose: press w to plan for a what-if GPU", severity="warning")
            return
        self.set_form(forms.next_gpu_choice(self.form, self.snapshot))

    def action_what_if(self) -> None:
        def picked(name: str | None) -> None:
            if name:
                self.set_form(replace(self.form, memory="what-if", what_if=name))

        self.push_screen(WhatIfScreen(self.form.what_if), picked)

    def action_cycle_engine(self) -> None:
        self.set_form(forms.next_engine(self.form, self._saved_engine_fields))

    def action_cycle_kv(self) -> None:
        self.set_form(forms.next_kv(self.form))

    def action_context_up(self) -> None:
        self._step_context(up=True)

    def action_context_down(self) -> None:
        self._step_context(up=False)

    def _step_context(self, up: bool) -> None:
        model_max = self.model.spec.max_context if self.model is not None else 32768
        self.set_form(forms.step_context(self.form, model_max, up))

    def action_toggle_prefer(self) -> None:
        self.set_form(forms.toggle_prefer(self.form))
        what = "the fastest row that reaches the target" if self.form.prefer == "speed" else "the highest precision"
        self.notify(f"★ now marks {what}", timeout=3)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self._wake.set()
        self._update_topbar()
        self.refresh_bindings()
        if not self.paused:
            self.notify("live updates resumed", timeout=2)

    def _plan_ready(self, what: str) -> bool:
        draft = self.draft
        if self.estimate is None or draft is None or draft.request is None or draft.memory is None:
            self.notify(f"nothing to {what} yet: the plan has errors", severity="warning")
            return False
        if self._plan_pending or self.chosen is None:
            self._sync_plan()  # a key pressed within a frame of a change: solve it now
        return True

    def action_copy_plan(self) -> None:
        if not self._plan_ready("copy"):
            return
        from lander_tui.ui.plan_text import plan_text

        assert self.draft is not None and self.draft.request is not None and self.estimate is not None
        text = plan_text(self.draft.request, self.estimate, self.chosen)
        self.copy_to_clipboard(text)
        launch = " with the launch command" if self.chosen is not None and self.chosen.launch else ""
        self.notify(f"plan copied{launch} ({len(text.splitlines())} lines, OSC 52)", timeout=3)

    def action_export(self, fmt: str = "md") -> None:
        if not self._plan_ready("export"):
            return
        from datetime import datetime

        from lander_tui.core.export import export
        from lander_tui.core.profile_cache import cache_dir

        assert self.draft is not None and self.draft.request is not None and self.estimate is not None
        req = self.draft.request
        data = live_plan.export_data(req, self.estimate, self.chosen, self.live)
        text = export(data, fmt)
        if fmt == "md":
            text += live_plan.md_trailer(data, datetime.now())
        fallback = cache_dir()
        path = live_plan.export_path(self.estimate.model, fmt, datetime.now(), Path.cwd(), fallback)
        error = ""
        for target in dict.fromkeys((path, fallback / path.name)):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            except OSError as err:
                error = f"{target.parent}: {err.strerror or err}"
                continue
            self.last_export = target
            self.notify(str(target), title=f"Plan written ({fmt})", timeout=8, markup=False)
            return
        self.notify(f"could not write the plan: {error}", severity="error", timeout=8, markup=False)

    def action_toggle_view(self) -> None:
        lower = self.query_one("#lower", ContentSwitcher)
        lower.current = "plan" if lower.current == "chart" else "chart"
        self._title_lower()
        if lower.current == "plan" and (self._plan_pending or self.chosen is None):
            self._sync_plan()
        if self.screen.has_class("-narrow"):
            self.query_one("#main").scroll_to_widget(lower, animate=False)

    def action_replan(self) -> None:
        """Solve the chosen row again on the memory free now (★ again unless the user picked a row)."""
        if self.draft is None or self.draft.request is None or self.estimate is None:
            self.notify("nothing to plan yet: the results have errors", severity="warning")
            return
        results = self.query_one(Results)
        target = self._row_pick or results.recommended_key
        self.chosen = None
        if target is not None:
            results.select(target)
        self.clear_notifications()  # an old "no longer loads" is answered
        self._sync_plan(force=True)

    def action_plan_from_engine(self) -> None:
        from lander_tui.ui import live_engines

        rows = self.engines.rows if self.engines is not None else ()
        focused = self.focused.index if isinstance(self.focused, GpuCard) else None
        prefer = (focused,) if focused is not None else self.form.gpus
        row = live_engines.next_row(rows, self._engine_pick, prefer)
        if row is None:
            seen = "; ".join(f"{live_engines.title(r)}: {r.restart_why or r.comparison.why_not}" for r in rows)
            why = (f"no engine whose configuration lander-tui can plan from ({seen})" if rows else
                   f"no running engine seen (looked for {live_engines.LOOKED_FOR} here; --engine URL names one)")
            self.notify(why, severity="warning", timeout=6, markup=False)
            return
        self.plan_from(row)

    def plan_from(self, row: Any) -> None:
        """The form takes this engine row's configuration (model, quant, KV, context, slots, GPUs)."""
        from lander_tui.ui import live_engines

        inputs = row.inputs
        if inputs is None:
            return
        self._engine_pick = row.key
        self.set_form(live_engines.form_from(self.form, inputs))
        if self.model is None or self.model.detail != inputs.model:
            self._pick_model(inputs.model)
        where = f" on GPU {'+'.join(map(str, inputs.gpus))} whole (the memory it holds counts)" if inputs.gpus else ""
        self.notify(f"planning from {live_engines.title(row)}{where}", title="From the running engine",
                    timeout=5, markup=False)

    def action_help(self) -> None:
        from lander_tui.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(ACTIONS, KEY_DISPLAY))

    def action_leave_field(self) -> None:
        focused = self.focused
        if isinstance(focused, Input | OptionList):
            if focused.id in ("search", "hits"):
                self.query_one(ModelForm).close_hits()  # the typed text stays in the box
            self.query_one(RowTable).focus()

    # --- which keys work now (the footer shows only those) -------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In a text field every printable key types, so the single-letter actions are left off the
        footer (and Esc, which leaves the field, is shown); palette commands still run (see
        `_palette_run`). `p` is "pause" or "resume", whichever it does now."""
        if action == "resume":
            return self.paused
        if action == "toggle_pause" and self.paused and not self._from_palette:
            return False
        if action == "leave_field":
            return self._typing()
        if action in _TYPED_ACTIONS and self._typing() and not self._from_palette:
            return False
        return True

    def _typing(self) -> bool:
        focused = self.focused
        return isinstance(focused, Input) and focused.screen is self.screen and self.screen is self.screen_stack[0]

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    async def _palette_run(self, action: str) -> None:
        self._from_palette = True
        try:
            await self.run_action(action)
        finally:
            self._from_palette = False

    def action_interrupt(self) -> None:
        """Ctrl+C: quit from anywhere, a text field included (q types a q there)."""
        self.exit()

    def action_resume(self) -> None:
        self.action_toggle_pause()

    def action_live_gpus(self) -> None:
        """Back to this machine's GPUs, free now (from a what-if or whole-GPU plan)."""
        if not forms.gpu_choices(self.snapshot):
            why = self.snapshot.message if self.snapshot is not None and not self.snapshot.ok else "no GPU reports"
            self.notify(f"no live GPU to plan on ({why}); w picks a what-if GPU", severity="warning", markup=False)
            return
        gpus = self.form.gpus or pm.freest_gpu(self.snapshot)
        self.set_form(replace(self.form, memory="free", gpus=gpus))

    # --- chrome ------------------------------------------------------------------------------
    def _update_topbar(self) -> None:
        if self._demo:
            source = "no GPU (fake scenario)" if self.snapshot is not None and not self.snapshot.ok \
                else "demo GPUs (fake)"
        elif source_text(self._backend):
            source = f"GPUs from {source_text(self._backend)} · h hosts · f where does it fit?"
        elif self.snapshot is None:
            source = "reading the GPUs…"
        elif not self.snapshot.ok:
            source = "no GPU"
        else:
            source = "live GPUs"
        form = self._screen_form()
        if form.memory == "what-if" and form.what_if.strip():
            source += f" · planning for what-if {form.what_if.strip()}"
        paused = "   ⏸ PAUSED: p resumes" if self.paused else ""
        self.query_one("#topbar", Line).set(
            f"lander-tui · {source}{paused} · ? help · ctrl+p commands")
        self.set_class(self.paused, "-paused")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for _keys, action, _label, title, help_text in ACTIONS:
            if action == "quit":
                continue
            yield SystemCommand(title, help_text, lambda a=action: self._palette_run(a))
        for action, title, help_text in PALETTE_EXTRAS:
            yield SystemCommand(title, help_text, lambda a=action: self._palette_run(a))
        if self.engines is not None:
            from lander_tui.ui import live_engines

            for row in live_engines.plannable(self.engines.rows):
                yield SystemCommand(f"Plan from {live_engines.title(row)}",
                                    "the form takes this engine's configuration",
                                    lambda r=row: self.plan_from(r))
