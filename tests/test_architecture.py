"""The rule of the house (docs/architecture.md): each layer imports only the layers below it,
and the modules the API workers load never import torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "clipmorph"
BASE = {"base"}  # errors, fsutil, environment (and the package's own __init__)
# layer -> the clipmorph layers its modules may import (itself included)
ALLOWED = {
    "base": BASE,
    "model": BASE | {"model"},
    "styles": BASE | {"model", "styles"},
    "inference": BASE | {"model", "styles", "inference"},
    "training": BASE | {"model", "styles", "inference", "training"},
    "serving": BASE | {"model", "styles", "inference", "training", "serving"},
    "cli": BASE | {"model", "styles", "inference", "training", "serving", "cli"},
}
NO_SERVER_LIBRARIES = {"model", "inference", "training"}  # BentoML and Starlette stay in styles' store and serving


def layer_of(module: str) -> str:
    part = module.split(".")[1] if module.count(".") else "base"
    return part if part in ALLOWED else "base"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, at the top or inside functions, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def test_each_layer_imports_only_the_layers_below_it():
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        mine = layer_of(here)
        for imported, line in imports_of(path):
            top = imported.split(".")[0]
            if top == "clipmorph" and imported.count("."):
                other = layer_of(imported)
                if other not in ALLOWED[mine]:
                    broken.append(f"{path.relative_to(REPO)}:{line} ({mine}) imports {imported} ({other})")
            if mine in NO_SERVER_LIBRARIES and top in ("bentoml", "starlette", "_bentoml_sdk", "_bentoml_impl"):
                broken.append(f"{path.relative_to(REPO)}:{line} ({mine}) imports {imported}")
    assert not broken, "\n".join(broken)


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: a model module that imports serving is reported."""
    bad = tmp_path / "clipmorph" / "model" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from clipmorph.serving import metrics\nimport bentoml\n")
    imported = [name for name, _ in imports_of(bad)]
    assert "clipmorph.serving.metrics" in imported and "bentoml" in imported
    assert layer_of("clipmorph.serving.metrics") not in ALLOWED[layer_of("clipmorph.model.bad")]


def test_the_api_service_module_imports_without_torch(tmp_path):
    """``service.py`` is what every API worker imports: with torch made unimportable it must
    still import (BentoML builds the API service from it), so API workers never load torch."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import service\n"
        "heavy = ('torch', 'torchvision', 'safetensors')\n"
        "loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.split('.')[0] in heavy)\n"
        "print('torch-free' if not loaded else loaded)\n"
    )
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("torch-free"), result.stdout


@pytest.mark.parametrize(
    "module", ["clipmorph.inference.options", "clipmorph.styles.index", "clipmorph.serving.requests"]
)
def test_the_modules_api_workers_share_with_the_engine_are_torch_free(module):
    code = f"import sys; sys.modules['torch'] = None\nimport {module}\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def module_graph() -> dict[str, set[str]]:
    """clipmorph module -> the clipmorph modules it imports (anywhere in it, type-only included:
    two modules that need each other's names are one module in two files)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for here, path in paths.items():
        targets = set()
        for imported, _ in imports_of(path):
            while imported and imported not in paths:  # a name inside a module: its module
                imported = imported.rpartition(".")[0]
            if imported and imported != here and paths[imported].name != "__init__.py":
                targets.add(imported)
        graph[here] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_import_each_other():
    """Within a layer too: a cycle means two modules that cannot be understood (or loaded) apart."""
    assert cycles(module_graph()) == []


def test_the_cycle_check_finds_a_cycle_of_three():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
