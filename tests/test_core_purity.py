"""The core must stay importable without Textual: it is shared by the CLI, the UI and scripts."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "lander_tui" / "core"
#: What core may not import: the UI toolkit (and its renderer) or any lander_tui code outside core.
FORBIDDEN = {"textual", "textual_plotext", "rich", "lander_tui-outside-core"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module.startswith("lander_tui.") and not node.module.startswith("lander_tui.core"):
                names.add("lander_tui-outside-core")
    return names


def test_core_never_imports_textual_or_ui():
    files = sorted(CORE.rglob("*.py"))
    assert files, "core package is empty"
    offenders = {
        str(f.relative_to(CORE)): sorted(_imports(f) & FORBIDDEN)
        for f in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}
