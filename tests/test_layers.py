"""The package's shape, read from its imports (every import statement, at any depth):
each folder imports only from the folders below it, and no modules import each other in a
circle.  The layers are numddpg/__init__.py's docstring:

    checks, portable  <  kernels, files  <  engine  <  training  <  sb3, tools
"""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "numddpg"
LAYER = {"checks": 0, "portable": 0, "kernels": 1, "files": 1, "engine": 2, "training": 3,
         "sb3": 4, "tools": 4}
# Within a layer, folders may use each other only as listed (none today).
ALSO = {}


def module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """Dotted numddpg modules that ``path`` imports (``from . import x`` counts x when x is a
    module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("numddpg")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("numddpg"):
                target = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if (PKG.parent / (sub.replace(".", "/") + ".py")).exists()
                          or (PKG.parent / sub.replace(".", "/")).is_dir() else target)
    return found


def graph():
    return {module_name(p): imports(p) for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}


def folder(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None          # None: the package itself


def test_every_folder_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PKG.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
            and p.name not in ("__init__.py", "__main__.py")}
    assert tops == set(LAYER), "add the new folder or module to LAYER (and the docstring)"


def test_imports_point_down():
    wrong = []
    for mod, targets in graph().items():
        src = folder(mod)
        if src in (None, "__main__"):
            continue                                     # numddpg/__init__, __main__: the top
        for t in targets:
            dst = folder(t)
            if dst is None or dst == src or dst in ALSO.get(src, ()):
                if dst is None and t != "numddpg":
                    wrong.append(f"{mod} -> {t}")
                continue
            if not LAYER[dst] < LAYER[src]:
                wrong.append(f"{mod} -> {t}")
    assert wrong == []


def test_no_import_circles():
    g = {m: {t for t in ts if t in graph_modules} for m, ts in GRAPH.items()}
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = 1
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert cycles == []


GRAPH = graph()
graph_modules = set(GRAPH)


@pytest.mark.parametrize("line, expect", [
    ("from .x import y", {"numddpg.kernels.x"}),
])
def test_the_reader_resolves_relative_imports(tmp_path, line, expect, monkeypatch):
    path = PKG / "kernels" / "_probe_for_test.py"
    try:
        path.write_text(line + "\n")
        assert imports(path) == expect
    finally:
        path.unlink()
