"""The fleet keys on sources other than Prometheus (whose own tests are tests/test_fit_prometheus.py):
the hosts view and `fit` on this machine's (demo) GPUs, the palette, and the GPU panel's host titles."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from lander_tui import cli
from lander_tui.core.gpu.snapshot import OK, Snapshot
from lander_tui.ui.app import LanderApp
from lander_tui.ui.fixtures import frozen_app
from lander_tui.ui.plan_text import table_lines
from lander_tui.ui.screens.hosts import HostsScreen
from lander_tui.ui.widgets.gpu_panel import GpuCard
from lander_tui.ui.widgets.host_table import HostTable
from tests.test_fit import _gpu

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANDER_TUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


async def test_hosts_view_of_this_machine_and_enter_plans_on_all_its_gpus():
    app, _ = frozen_app(model="llama-3.1-8b")
    async with app.run_test(size=SIZE) as pilot:
        app.poll_now()
        await pilot.pause()
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HostsScreen)
        rows = screen.query_one(HostTable).rows
        assert [r.kind for r in rows] == ["host", "gpu", "gpu"] and rows[0].text.split()[:3] == ["▶", "this", "machine"]
        assert "only a Prometheus source keeps one" in screen.query_one("#hosts-status").text
        await pilot.press("enter")  # the host line: both GPUs
        await pilot.pause()
        assert not isinstance(app.screen, HostsScreen)
        assert app.form.gpus == (0, 1)
        lines, _ = table_lines(app.chosen, app.live)
        assert [line.split()[:2] for line in lines[1:]] == [["GPU", "0"], ["GPU", "1"]]  # this machine's naming
        assert "# on" not in app.chosen.launch  # a local plan's command is unchanged


async def test_palette_runs_where_does_it_fit():
    app, _ = frozen_app(model="llama-3.1-8b")
    async with app.run_test(size=SIZE) as pilot:
        app.poll_now()
        await pilot.pause()
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Where does it fit?" in titles and "Hosts view" in titles
        await titles["Where does it fit?"].callback()
        await pilot.pause()
        from lander_tui.ui.screens.fit import FitScreen

        screen = app.screen
        assert isinstance(screen, FitScreen)
        for _ in range(100):
            if screen.answer is not None:
                break
            await pilot.pause(0.05)
        assert screen.answer is not None and [s.host_name for s in screen.answer.ranked] == ["this machine"]


class _Fleet:
    """A fixed fleet reading (the Prometheus backend's shape), for the panel's layout alone."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def poll(self) -> Snapshot:
        return self.snap

    def close(self) -> None:
        pass


async def test_gpu_panel_titles_the_first_card_of_each_host():
    gpus = [_gpu(0, "gpu-a", 0, 1000.0), _gpu(1, "gpu-a", 1, 0.0), _gpu(2, "gpu-b", 0, 70000.0),
            _gpu(3, "gpu-c", 0, 0.0, stale=True)]
    app = LanderApp(_Fleet(Snapshot(tuple(gpus), OK, "", 1.0, None, "prometheus")), model="llama-3.1-8b",
                    poll_interval=None)
    async with app.run_test(size=SIZE) as pilot:
        app.poll_now()
        await pilot.pause()
        titles = [c._host_line.text for c in app.query(GpuCard)]
        assert titles[0].startswith("▾ gpu-a · 2 x H100 80GB HBM3 · ") and titles[1] == ""
        assert titles[2].startswith("▾ gpu-b · 1 x H100 80GB HBM3 · 11,079 of 81,559 MiB free")
        assert titles[3].startswith("▾ gpu-c · STALE · newest sample 90 s old")


def test_fit_on_this_machine(capsys, monkeypatch):
    monkeypatch.delenv("LANDER_TUI_PROMETHEUS", raising=False)
    assert cli.main(["fit", "llama-3.1-8b", "--demo", "-c", "32k", "--prometheus", "off"]) == 2  # one source
    capsys.readouterr()
    assert cli.main(["--demo", "fit", "llama-3.1-8b", "-c", "32k"]) == 0
    out = capsys.readouterr().out
    assert "GPUs from demo GPUs (fake) (1 host, 2 GPUs)" in out
    assert "1  this machine  1 " in out  # the demo's GPU 1 has the most free memory
    assert "# on this machine\n" in out and "CUDA_VISIBLE_DEVICES=1 llama-server" in out
