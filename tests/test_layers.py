"""The package's layering, checked on its source: the CLI → runtime / lsp → the torch-free core (spec, compiler,
schemas, zoo) → npc.errors / npc._atomic. Imports point downwards only, no module takes part in an import cycle
(imports inside functions count; ``if TYPE_CHECKING:`` ones, never executed, do not), and the core imports in a
process where torch cannot be imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from helpers import REPO

# Source folder → package, as pyproject.toml's package-dir installs them.
PACKAGES = {
    "npc": "npc",
    "spec": "npc.spec",
    "compiler": "npc.compiler",
    "schemas": "npc.schemas",
    "zoo": "npc.zoo",
    "runtime": "npc.runtime",
    "lsp": "npc.lsp",
}
BOTTOM = ("npc.errors", "npc._atomic")
CORE = ("npc.spec", "npc.compiler", "npc.schemas", "npc.zoo")
LAYERS = {  # a module may import modules of its own layer or of lower ones
    **dict.fromkeys(BOTTOM, 0),
    **dict.fromkeys(CORE, 1),
    "npc.runtime": 2,
    "npc.lsp": 2,
    "npc.cli": 3,
}


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for statement in branch.body
        for node in ast.walk(statement)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # `from package import module` imports the module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {target for target in found if target in modules and target != name}


def _graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        graph.add_edges_from((name, target) for target in _imports(name, path, modules))
    return graph


def _layer(module: str) -> int | None:
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def test_no_module_takes_part_in_an_import_cycle():
    cycles = [sorted(group) for group in nx.strongly_connected_components(_graph()) if len(group) > 1]
    assert cycles == []


def test_imports_point_downwards_only():
    upward = [
        f"{source} imports {target}"
        for source, target in _graph().edges
        if None not in (_layer(source), _layer(target)) and _layer(target) > _layer(source)
    ]
    assert upward == []


TORCH_FREE = [name for name in _modules() if name.startswith(CORE + BOTTOM + ("npc.cli",)) or name == "npc"]

BLOCK_TORCH = """
import importlib, sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "numpy", "onnx", "onnxruntime", "kornia"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocked())
for name in sys.argv[1:]:
    importlib.import_module(name)
from npc.cli import _build_parser
_build_parser()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy")))
"""


@pytest.mark.parametrize("group", ["npc.spec", "npc.compiler", "npc.schemas", "npc.zoo", "npc.cli"])
def test_the_core_and_the_command_line_import_without_torch(group):
    names = [name for name in TORCH_FREE if name == group or name.startswith(group + ".")]
    assert names, group
    run = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *names], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
