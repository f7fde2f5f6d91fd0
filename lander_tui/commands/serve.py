"""`lander-tui serve`: the same dashboard in a web browser, through textual-serve.

textual-serve runs one `lander-tui` process per browser tab and streams its screen over a
WebSocket (xterm.js on the page). It binds 127.0.0.1 unless `--host` names another address; then
anyone who can reach the port drives a dashboard as this user, so we say so. Three guards on top
of textual-serve: on a loopback bind only loopback Host headers are served (a DNS-rebinding page
cannot reach it), the WebSocket must come from the page's own origin (another site open in the
browser cannot drive it), and the page loads its font from this server instead of Google Fonts
(the only outside address textual-serve's page would contact).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shlex
import sys
from typing import Any

DEFAULT_PORT = 8000
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
_GOOGLE_FONT_LINK = re.compile(r"<link[^>]*fonts\.googleapis\.com[^>]*>")
_LOCAL_FONT = ("<style>@font-face { font-family: 'Roboto Mono'; "
               "src: url('/static/fonts/RobotoMono-VariableFont_wght.ttf') format('truetype'); }</style>")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from lander_tui.commands.gpus import add_prometheus_argument

    p = sub.add_parser(
        "serve",
        help="serve the dashboard to a web browser (textual-serve)",
        description="Serve the full dashboard to a web browser. Binds 127.0.0.1 unless --host names "
        "another address; every browser tab runs its own dashboard as this user.",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 = every interface: anyone who can "
                   "reach the port can use it)")
    # The dashboard's own flags, SUPPRESS so values given before `serve` are kept.
    p.add_argument("--demo", action="store_true", default=argparse.SUPPRESS, help="fake GPUs")
    p.add_argument("--what-if", metavar="NAME", dest="what_if", default=argparse.SUPPRESS,
                   help="start planning for a catalog GPU or instance")
    p.add_argument("--model", metavar="MODEL", default=argparse.SUPPRESS, help="start with this model")
    p.add_argument("--gpu-scenario", metavar="FILE", dest="gpu_scenario", default=argparse.SUPPRESS,
                   help="fake GPUs from a scenario JSON file")
    add_prometheus_argument(p)
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    name = host.strip().lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def app_command(args: argparse.Namespace) -> str:
    """The shell command textual-serve runs for each browser tab: this Python, this package."""
    argv = [sys.executable, "-m", "lander_tui"]
    if getattr(args, "demo", False):
        argv.append("--demo")
    for flag, dest in (("--what-if", "what_if"), ("--model", "model"), ("--gpu-scenario", "gpu_scenario"),
                       ("--prometheus", "prometheus")):
        value = getattr(args, dest, None)
        if value is not None:
            argv += [flag, str(value)]
    for url in getattr(args, "dashboard_engines", None) or []:  # every tab watches the same engines
        argv += ["--engine", str(url)]
    return shlex.join(argv)


def _check(args: argparse.Namespace) -> None:
    """Everything a tab would fail on, reported once here as one line instead of in every tab."""
    from lander_tui.core.errors import LanderError

    if not 1 <= args.port <= 65535:
        raise LanderError(f"--port must be 1-65535 (got {args.port})")
    what_if = getattr(args, "what_if", None)
    if what_if:
        from lander_tui.core.gpu import what_if as parse_what_if

        parse_what_if(what_if)
    from lander_tui.commands.dashboard import open_gpu_source

    backend: Any = open_gpu_source(args)  # bad --prometheus URL / credentials / scenario: fail now
    if backend is not None:
        backend.close()


def make_server(command: str, host: str, port: int) -> Any:
    from aiohttp import web
    from textual_serve.server import Server

    loopback = is_loopback(host)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if loopback and request.host.rsplit(":", 1)[0].lower() not in LOOPBACK_NAMES:
            raise web.HTTPForbidden(text="lander-tui serve: this server only answers to localhost addresses")
        if request.path == "/ws":
            origin = request.headers.get("Origin", "")
            if origin.split("://", 1)[-1] != request.host:
                raise web.HTTPForbidden(text="lander-tui serve: WebSocket from another origin refused")
        response = await handler(request)
        if request.path == "/" and isinstance(response, web.Response) and response.text:
            response.text = _GOOGLE_FONT_LINK.sub(_LOCAL_FONT, response.text)
        return response

    class LanderServer(Server):  # type: ignore[misc]
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard)
            return app

        async def handle_index(self, request: web.Request) -> Any:
            # Links on the page use the address the browser used (textual-serve would use the bind
            # address, which is useless for 0.0.0.0 and breaks the origin check for localhost).
            self.public_url = f"{request.scheme}://{request.host}"
            return await super().handle_index(request)

    return LanderServer(command, host=host, port=port, title="lander-tui")


def run(args: argparse.Namespace) -> int:
    from lander_tui.core.errors import LanderError

    _check(args)
    command = app_command(args)
    host = args.host
    shown = f"[{host}]" if ":" in host else host
    print(f"lander-tui serve: open http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{args.port}/ "
          "in a browser; Ctrl-C stops", flush=True)
    if not is_loopback(host):
        print(f"lander-tui serve: WARNING: bound to {host}, not 127.0.0.1: anyone who can reach port "
              f"{args.port} can use this dashboard as {_user()} (there is no login)", file=sys.stderr, flush=True)
    server = make_server(command, host, args.port)
    try:
        server.serve()
    except OSError as err:
        raise LanderError(f"cannot serve on {host}:{args.port} ({err.strerror or err}); "
                          "pick another with --port or --host") from None
    return 0


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "this user"
