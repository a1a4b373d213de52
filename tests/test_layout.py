"""The package is laid out by layer: imports go one way (no cycle, not even through imports
inside functions), and no module is too long to read."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "softmax_oracle"
#: Layers, lowest first: a module may import from its own layer and the ones before it.
LAYERS = ["oracle", "targets", "spec", "engine", "report", "top"]
#: Lines a module may have. The specification's table of claims is one long list by design (every
#: claim stated in one place), and may be longer.
MAX_LINES = 600
LONGER = {"softmax_oracle.spec.claims": 900}


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from pkg import module" imports the module; "from pkg import name", the package
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                     else node.module for a in node.names]
        for name in names:
            if name.startswith("softmax_oracle"):
                while name not in modules and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in modules and name != "softmax_oracle":
                    out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else \
        LAYERS.index("top")


def test_no_import_cycle():
    graph = _graph()
    done: set[str] = set()
    stack: list[str] = []

    def visit(m: str) -> None:
        if m in stack:
            cycle = [*stack[stack.index(m):], m]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if m in done:
            return
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            visit(n)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_imports_go_down_the_layers():
    wrong = [f"{m} imports {n}" for m, deps in _graph().items() for n in deps
             if _layer(n) > _layer(m)]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_module_is_too_long():
    long = {m: n for m, p in _modules().items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > LONGER.get(m, MAX_LINES)}
    assert not long, long
