"""The folder tree is the architecture: layers import only downwards, and no module imports itself back.

Imports are read from the source (ast), not from a running interpreter, so
an import inside a function or under ``TYPE_CHECKING`` counts as much as one
at the top of a module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from intake_resonance.layers import LAYERS

PACKAGE = "intake_resonance"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE
README = Path(__file__).resolve().parents[1] / "README.md"
#: Modules at the top of the package: below every layer, or the front door above them all.
BELOW_ALL = {f"{PACKAGE}._version", f"{PACKAGE}.layers"}
FRONT = {PACKAGE}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports (``from . import x`` counts as importing ``x``)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                while name and name not in modules:  # "import a.b.c" imports a.b.c (and runs a, a.b)
                    name = name.rpartition(".")[0]
                if name:
                    found.add(name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                continue
            names = [f"{target}.{a.name}" for a in node.names]
            submodules = [n for n in names if n in modules]
            found.update(submodules)
            if len(submodules) < len(names) and target in modules:
                found.add(target)
    found.discard(module)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = _modules(root)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def floor(module: str) -> int:
    """Where a module stands: -1 below every layer, the layer's index, or len(LAYERS) for the front door."""
    if module in BELOW_ALL:
        return -1
    if module in FRONT:
        return len(LAYERS)
    layer = module.split(".")[1]
    if layer not in LAYERS:
        raise AssertionError(f"{module} is in no layer: put it in one of {LAYERS} (src/{PACKAGE}/layers.py)")
    return LAYERS.index(layer)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} (layer {floor(m)}) imports {t} (layer {floor(t)})" for m, targets in graph.items() for t in targets if floor(t) > floor(m)
    )


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_every_module_stands_in_a_layer():
    for module in _modules():
        floor(module)  # raises, naming the module, when it is in no layer


def test_no_import_runs_up_a_layer():
    bad = upward_imports(import_graph())
    assert not bad, "imports into a higher layer:\n" + "\n".join(bad)


def test_no_import_loops():
    cycles = import_cycles(import_graph())
    assert not cycles, "import loops:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checks_catch_what_they_look_for(tmp_path):
    # A little package with one upward import and one loop: both are reported by name.
    pkg = tmp_path / PACKAGE
    for sub in ("beamtime", "faces"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "beamtime" / "low.py").write_text("from ..faces.high import X\n")
    (pkg / "faces" / "high.py").write_text("from . import other\nX = 1\n")
    (pkg / "faces" / "other.py").write_text("def f():\n    from .high import X\n")
    graph = import_graph(pkg)
    assert upward_imports(graph) == [f"{PACKAGE}.beamtime.low (layer 0) imports {PACKAGE}.faces.high (layer {LAYERS.index('faces')})"]
    assert import_cycles(graph) == [[f"{PACKAGE}.faces.high", f"{PACKAGE}.faces.other"]]


def test_layers_are_the_folders_and_the_readme_shows_them_in_order():
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)
    section = README.read_text(encoding="utf-8").split("## How it is built", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"^\|\s*\d\s*\|\s*`(\w+)/`", section, flags=re.M)
    assert shown == list(LAYERS)


FACE_FILES = sorted((ROOT / "faces").rglob("*.py"))


@pytest.mark.parametrize("path", FACE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_faces_are_glue(path):
    # No face talks SQL (the sqlite3 module and SQL text stay in the beamtime layer),
    # and each face module stays small: shared logic lives below the faces once.
    text = path.read_text(encoding="utf-8")
    assert "import sqlite3" not in text
    assert not re.search(r"\bSELECT\b.*\bFROM\b", text)
    lines = len(text.splitlines())
    assert lines < 250, f"{path.relative_to(ROOT)} has {lines} lines: move what is not translation below the faces, or split it by job"
