"""The dashboard's fleet keys: `h` the hosts view, `f` "where does it fit?", and the top bar's
source. A mixin, so app.py only lists the keys; both screens come back with the GPUs to plan on,
and planning on them is what picking them by hand does (layer split or tensor parallel)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lander_tui.core.errors import LanderError
from lander_tui.core.fit import FitRequest
from lander_tui.ui import form as forms


def source_text(backend: Any) -> str | None:
    """`Prometheus http://host:9090` when the GPUs come from one, else None."""
    from lander_tui.core.gpu.prometheus_backend import PrometheusBackend

    return f"Prometheus {backend.url}" if isinstance(backend, PrometheusBackend) else None


def fit_request(app: Any) -> FitRequest:
    """The form's row as a fit request: the results row under the cursor (else ★), at the target
    context (else the model's trained maximum), with the form's knobs and margin."""
    draft, est = app.draft, app.estimate
    if app.model is None or draft is None or draft.request is None or est is None:
        raise LanderError("nothing to place yet: the form has errors or no model")
    from lander_tui.ui.widgets.results import Results

    row = app.query_one(Results).cursor_key
    if row is None:
        rec = est.recommendation
        row = (rec.quant or est.results[0].quant, rec.kv_cache or est.results[0].kv_cache)
    context = forms.parse_tokens(app.form.context) or app.model.spec.max_context
    return FitRequest(app.model, draft.request.engine, row[0], row[1], context, draft.request.options,
                      forms.parse_mib(app.form.margin))


class FleetActions:
    """Mixed into LanderApp: `action_hosts`, `action_fit` and what their screens hand back."""

    def action_hosts(self: Any) -> None:
        from lander_tui.ui.screens.hosts import HostsScreen

        if isinstance(self.screen, HostsScreen):
            return
        source = source_text(self._backend) or ("demo GPUs (fake)" if self._demo else "this machine")
        self.push_screen(HostsScreen(source), self.plan_on_gpus)

    def action_fit(self: Any) -> None:
        from lander_tui.ui.screens.fit import FitScreen

        if isinstance(self.screen, FitScreen):
            return
        try:
            req = fit_request(self)
        except LanderError as err:
            self.notify(str(err), severity="warning", markup=False)
            return
        if self.snapshot is None or not self.snapshot.ok:
            self.notify("no GPU reading to place it on" + (f": {self.snapshot.message}" if self.snapshot else ""),
                        severity="warning", markup=False)
            return
        self.push_screen(FitScreen(req, self.snapshot), self.plan_on_gpus)

    def plan_on_gpus(self: Any, indices: tuple[int, ...] | None) -> None:
        """Plan on these GPUs (from the hosts view or the fit list), and show the plan."""
        from lander_tui.ui.screens.fit import FitScreen
        from lander_tui.ui.screens.hosts import HostsScreen

        if not indices:
            return
        while isinstance(self.screen, HostsScreen | FitScreen):
            self.pop_screen()  # picked in the fit list over the hosts view: back to the dashboard
        self.set_form(replace(self.form, gpus=tuple(sorted(indices)), memory="free"))
        from textual.widgets import ContentSwitcher

        if self.query_one("#lower", ContentSwitcher).current != "plan":
            self.action_toggle_view()
