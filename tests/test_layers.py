"""The shape DESIGN.md asks for, checked on the source: no import circle
anywhere in shoal (lazy imports inside functions count), and no module over
400 lines but generated code. The layer order itself is import-linter's
contract in `make lint`."""

from __future__ import annotations

from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[1] / "src" / "shoal"
GENERATED = "shoal.core.wire.shoal"


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v) & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return out


def test_no_import_circle_in_shoal() -> None:
    graph = grimp.build_graph("shoal")
    # a package's __init__ re-exporting its modules is not a circle of logic
    packages = {m for m in graph.modules if (SRC.parent / m.replace(".", "/")).is_dir()}
    modules = {m for m in graph.modules if not m.startswith(GENERATED)} - packages
    assert _cycles(graph, modules) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for m in ("a", "b", "c"):
        graph.add_module(m)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="a")
    graph.add_import(importer="b", imported="c")
    assert _cycles(graph, {"a", "b", "c"}) == [["a", "b"]]


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if "wire/shoal" not in str(p) and (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def test_every_package_names_its_public_face() -> None:
    import importlib

    for init in sorted(SRC.rglob("__init__.py")):
        package = ".".join(init.parent.relative_to(SRC.parent).parts)
        if package.startswith(GENERATED) or "migrations" in package:
            continue
        mod = importlib.import_module(package)
        assert isinstance(getattr(mod, "__all__", None), list), f"{package} has no __all__"
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{package}.{name}"
