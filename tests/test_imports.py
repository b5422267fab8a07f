"""The shape of the package: no import cycle between mpdash modules (imports inside functions
count too), and the in-run side imports only the standard library, the protocol and itself."""
from __future__ import annotations

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_RUN = ("mpdash.inrun", "mpdash.protocol", "mpdash.harness", "mpdash._boot")


def _modules() -> dict:
    """{dotted name: path} of every module under mpdash/."""
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "mpdash")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


MODULES = _modules()


def _imports(name: str, path: str) -> set:
    """Every module ``name`` imports, anywhere in the file (functions included)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return found


def test_the_scan_sees_the_package():
    assert len(MODULES) > 30 and "mpdash.inrun.lifecycle" in MODULES
    assert "mpdash.inrun.channel" in _imports("mpdash.inrun.lifecycle",
                                              MODULES["mpdash.inrun.lifecycle"])


def test_no_import_cycle_between_mpdash_modules():
    graph = {m: {d for d in _imports(m, p) if d in MODULES and d != m} for m, p in MODULES.items()}
    state, path, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles


def test_the_in_run_side_imports_only_the_standard_library_and_itself():
    stdlib = sys.stdlib_module_names
    checked = 0
    for name, path in MODULES.items():
        if not name.startswith(IN_RUN):
            continue
        checked += 1
        for dep in _imports(name, path):
            top = dep.partition(".")[0]
            if top == "mpdash":
                assert dep.startswith(("mpdash.inrun", "mpdash.protocol")) or dep == "mpdash", \
                    f"{name} imports {dep}"
            else:
                assert top in stdlib or top == "__future__", f"{name} imports {dep}"
    assert checked >= 14


def test_every_mpdash_module_is_at_most_400_lines():
    """One job per module: a file past 400 lines is several modules waiting to be named."""
    assert len(MODULES) >= 40
    for name, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            assert sum(1 for _ in f) <= 400, path
