"""The shape of the code, enforced: engine knowledge lives in the engine modules, and modules do not
import each other in circles (each concept has one home that others build on)."""

from __future__ import annotations

import ast
from pathlib import Path

from lander_tui.core.engines import all_engines

PACKAGE = Path(__file__).resolve().parent.parent / "lander_tui"
ENGINES_DIR = PACKAGE / "core" / "engines"
#: Modules that may name engines, and why. The accuracy harness picks the records each engine logged
#: (`rec["engine"] == "vllm"`): it judges the engines, it decides nothing for a user.
ALLOWED = {"core/ground_truth.py"}
#: A live reader module knows one server kind, as an engine module knows one engine: it recognises its
#: own program on a command line (`ollama serve`). Shared live modules are checked like the rest.
LIVE_SHARED = {"base.py", "discovery.py", "http.py", "metrics.py", "poller.py", "predict.py", "registry.py",
               "state.py", "history.py", "cmdline.py", "__init__.py"}


def _engine_specific(path: Path) -> bool:
    if ENGINES_DIR in path.parents:
        return True
    return path.parent == PACKAGE / "core" / "live" and path.name not in LIVE_SHARED



def _names() -> set[str]:
    out = set()
    for e in all_engines():
        out |= {e.name.lower(), *(a.lower() for a in e.aliases)}
    return out


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for el in node.elts for s in _strings(el)]
    return []


def engine_branches(source: str, names: set[str]) -> list[tuple[int, str]]:
    """Places that decide something by an engine's name: comparisons (`==`, `in`), match cases, dict
    keys and subscripts that spell an engine name."""
    hits: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        found: list[str] = []
        if isinstance(node, ast.Compare):
            found = [s for part in (node.left, *node.comparators) for s in _strings(part)]
        elif isinstance(node, ast.Dict):
            found = [s for k in node.keys if k is not None for s in _strings(k)]
        elif isinstance(node, ast.Subscript):
            found = _strings(node.slice)
        elif isinstance(node, ast.match_case):
            found = [s for n in ast.walk(node.pattern) for s in _strings(n)]
        hits += [(getattr(node, "lineno", 0), s) for s in found if s.lower() in names]
    return hits


def test_no_engine_name_branches_outside_the_engine_modules():
    names = _names()
    assert {"llama.cpp", "ollama", "vllm", "sglang", "transformers"} <= names
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if _engine_specific(path) or str(path.relative_to(PACKAGE)) in ALLOWED:
            continue
        hits = engine_branches(path.read_text(), names)
        if hits:
            offenders[str(path.relative_to(PACKAGE))] = hits
    assert offenders == {}


def test_the_branch_finder_finds_branches():
    names = {"vllm", "ollama"}
    src = 'if e.name == "vllm": pass\nx = {"ollama": 1}\ny = d["vllm"]\nz = n in ("ollama", "x")\nw = f(name="vllm")'
    assert [s for _, s in engine_branches(src, names)] == ["vllm", "ollama", "vllm", "ollama"]


def _import_graph() -> dict[str, set[str]]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):  # function-local imports count too
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[m] |= {t for t in targets if t in mods and t != m}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = _import_graph()
    assert "lander_tui.core.model" in graph and graph["lander_tui.core.hub"]
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
