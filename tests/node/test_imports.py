"""node/ runs on bare GPU nodes: it imports only the standard library, spec.py, errors.py,
node/*, the datastore kinds and compat/ (the azureml shim), and its modules import each other without a cycle."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import batchai_jupyter.node

NODE = Path(batchai_jupyter.node.__file__).parent
ALLOWED = ("batchai_jupyter.node", "batchai_jupyter.spec", "batchai_jupyter.errors",
           "batchai_jupyter.datastores", "batchai_jupyter.compat")  # compat: the azureml shim's path


def _imports(path: Path) -> set[str]:
    """Every module path imports (lazy ones in functions too), as absolute names."""
    package = "batchai_jupyter.node"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
                found.update([name] if node.module else [f"{base}.{a.name}" for a in node.names])
            else:
                found.add(str(node.module))
    return found


def test_node_imports_only_what_a_bare_node_has() -> None:
    bad = {}
    for path in sorted(NODE.glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "batchai_jupyter":
                if not name.startswith(ALLOWED):
                    bad[f"{path.name}: {name}"] = "not allowed in node/"
            elif top not in sys.stdlib_module_names and top != "__future__":
                bad[f"{path.name}: {name}"] = "not in the standard library"
    assert bad == {}


def test_node_modules_have_no_import_cycle() -> None:
    graph = {f"batchai_jupyter.node.{p.stem}": {n for n in _imports(p) if n.startswith("batchai_jupyter.node.")}
             for p in NODE.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        assert state.get(name) != 1, f"import cycle: {' -> '.join([*trail, name])}"
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            visit(dep, [*trail, name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])
    assert "batchai_jupyter.node.process" in graph  # the walk saw the modules
