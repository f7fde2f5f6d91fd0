"""`lander-tui serve` in a real headless Chromium: the page, a key press, a screenshot.

    uv run python scripts/serve_screenshot.py [--out screenshots/serve-browser.png] [--key b]
    uv run python scripts/serve_screenshot.py --prometheus URL --out screenshots/serve-hosts.png

Uses Debian's `chromium` and `chromium-driver` (apt-get install chromium chromium-driver) through
Selenium, with no download of any browser or driver. The page draws the terminal on a canvas
(xterm.js), so the text is read from xterm's own buffer: a script installed before the page
loads keeps a reference to the Terminal object textual-serve creates (`window.__landerTerm`).
tests/test_serve_browser.py drives the same functions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INSTALL_CHROMIUM = "install Debian's chromium and its driver: apt-get install chromium chromium-driver"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_PATHS = ("/usr/bin/chromedriver",)
WIDTH, HEIGHT = 1400, 900

# Runs before textual-serve's script: the first object that gets a `terminal` property holding an
# xterm Terminal (textual.js does `this.terminal = new Terminal(...)`) is remembered on window.
CAPTURE_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  get() { return undefined; },
  set(v) {
    Object.defineProperty(this, "terminal", {value: v, writable: true, configurable: true, enumerable: true});
    if (v && v.buffer && !window.__landerTerm) { window.__landerTerm = v; }
  },
});
"""
READ_SCREEN = """
const t = window.__landerTerm;
if (!t) { return null; }
const b = t.buffer.active, out = [];
for (let i = 0; i < t.rows; i++) { const l = b.getLine(b.viewportY + i); out.push(l ? l.translateToString(true) : ""); }
return out.join("\\n");
"""


class Missing(Exception):
    """A system part is not installed; the message says how to install it."""


def find_browser() -> tuple[str, str]:
    browser = next((p for p in CHROMIUM_PATHS if os.path.exists(p)), None) or shutil.which("chromium")
    driver = next((p for p in DRIVER_PATHS if os.path.exists(p)), None) or shutil.which("chromedriver")
    if not browser or not driver:
        missing = "chromium" if not browser else "chromedriver"
        raise Missing(f"{missing} is not installed: {INSTALL_CHROMIUM}")
    return browser, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(port: int, *flags: str) -> subprocess.Popen[bytes]:
    """`lander-tui serve` on 127.0.0.1:port as a user would start it; returns once it accepts."""
    script = Path(sys.executable).parent / "lander-tui"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "lander_tui"]
    proc = subprocess.Popen([*cmd, "serve", "--port", str(port), *flags], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"lander-tui serve exited ({proc.returncode}): {out[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("lander-tui serve did not listen within 30 s")


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.stdout.read().decode(errors="replace") if proc.stdout else ""


def open_browser() -> Any:
    """Headless Chromium through Selenium, with Debian's binaries (Selenium Manager kept offline)."""
    browser, driver_path = find_browser()
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE_TERMINAL})
    return drv


def screen_text(drv: Any) -> str:
    return drv.execute_script(READ_SCREEN) or ""


def wait_screen(drv: Any, what: str, check: Callable[[str], bool], timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen_text(drv)
        if check(text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"no {what} in the browser within {timeout:.0f} s; the page shows:\n{text}")


def press(drv: Any, key: str) -> None:
    from selenium.webdriver.common.by import By

    drv.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(key)


def dashboard_ready(text: str) -> bool:
    return "Results" in text and "GPU" in text and "★" in text


def form_field(text: str, label: str) -> str:
    """A field of the model form as shown: the cell under its label (`Engine` -> `llama.cpp`)."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        col = line.find(f" {label} ")
        if col >= 0:
            # the cell runs to where the next label starts (the form's columns shrink with the window)
            rest = line[col + len(label) + 1:]
            end = col + len(label) + 1 + (len(rest) - len(rest.lstrip(" "))) if rest.strip(" │") else col + 20
            return lines[i + 1][col:end].strip(" ▼│")
    return ""


def result_rows(text: str) -> list[str]:
    """The rows of the results table (quant, KV, max ctx, sizes, fits)."""
    return [line for line in text.splitlines() if any(f" {q} " in line for q in ("Q4_K_M", "Q6_K", "Q8_0"))
            and ("yes" in line or "no" in line)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "screenshots" / "serve-browser.png"))
    ap.add_argument("--key", default="b", help="key to press before the screenshot (default b: next engine)")
    ap.add_argument("--prometheus", metavar="URL",
                    help="serve a fleet's GPUs from this Prometheus and show its hosts view (h) instead")
    args = ap.parse_args()
    port = free_port()
    serve = start_serve(port, *(("--prometheus", args.prometheus) if args.prometheus else ("--demo",)))
    drv = None
    try:
        drv = open_browser()
        drv.get(f"http://127.0.0.1:{port}/")
        before = wait_screen(drv, "dashboard", dashboard_ready)
        if args.prometheus:
            time.sleep(2.0)  # the first fleet reading
            press(drv, "h")
            wait_screen(drv, "the hosts view", lambda t: "HOST / GPU" in t and "GPUs" in t.split("HOST / GPU")[0])
        else:
            press(drv, args.key)
            wait_screen(drv, "change after the key",
                        lambda t: form_field(t, "Engine") != form_field(before, "Engine"))
        time.sleep(1.0)  # let the VRAM chart settle before the picture
        drv.save_screenshot(args.out)
        print(f"wrote {args.out}")
        return 0
    finally:
        if drv is not None:
            drv.quit()
        stop(serve)


if __name__ == "__main__":
    sys.exit(main())
