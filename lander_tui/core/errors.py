"""One exception type for every user-facing failure.

Anything the user can cause (a bad flag, a broken file, no GPU, an unknown Hub repo) raises
`LanderError` with a one-line, actionable message. The CLI prints it and exits non-zero; the
dashboard shows it in place. Tracebacks are for bugs only.
"""

from __future__ import annotations


class LanderError(Exception):
    """A problem the user can fix; `str(err)` is the one line we show them."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
