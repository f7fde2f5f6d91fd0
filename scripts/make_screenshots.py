"""Write the README's SVG screenshots from the fake GPU backend (no GPU, no network needed).

    uv run python scripts/make_screenshots.py            # -> screenshots/*.svg

Same set-up as the snapshot tests: fake GPUs on a frozen clock with 60 readings of history, the
Hub offline, no cursor blink.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "screenshots"

SHOTS = (
    # file, scenario ("demo" or "no-gpu"), size, keys pressed after start, seconds the clock then moves
    ("dashboard.svg", "demo", (120, 40), (), 0),
    ("no-gpu.svg", "no-gpu", (120, 40), (), 0),
    ("small-80x24.svg", "demo", (80, 24), (), 0),
    ("what-if-vllm.svg", "demo", (120, 40), ("w", *"2x RTX 4090", "enter", "b", "b"), 0),
    # the Plan view on both GPUs; 10 s later the training job on GPU 1 has grown past it
    ("plan-live.svg", "demo", (120, 40), ("g", "v"), 10),
)


async def shoot(name: str, scenario: str, size: tuple[int, int], keys: tuple[str, ...], later: float) -> Path:
    from textual.widgets import Input

    from lander_tui.ui.fixtures import NO_GPU_SCENARIO, frozen_app, settle, warm_up

    Input._toggle_cursor = lambda self: None  # type: ignore[method-assign]
    app, clock = frozen_app(NO_GPU_SCENARIO if scenario == "no-gpu" else None, demo=scenario != "no-gpu")
    async with app.run_test(size=size) as pilot:
        warm_up(app, clock, 60)
        await settle(pilot, app)
        if keys:
            await pilot.press(*keys)
            await settle(pilot, app)
        if later:
            clock.t += later
            app.poll_now()
            await settle(pilot, app)
        app.clear_notifications()  # toasts come and go; the screen says the same in place
        await app.workers.wait_for_complete()
        await pilot.pause()
        path = OUT / name
        path.write_text(app.export_screenshot(title=f"lander-tui ({size[0]}x{size[1]})"))
    return path


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.pop("NO_COLOR", None)
    OUT.mkdir(exist_ok=True)
    for name, scenario, size, keys, later in SHOTS:
        path = asyncio.run(shoot(name, scenario, size, keys, later))
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
