"""The code's layout rules: no import cycles, plugins import only ``eyescan.api``.

Every import counts, also one inside a function: a cycle that only lazy
imports hide is still two modules that need each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/eyescan_*/__init__.py"))
REQUIRED = ("__init__", "task", "data", "models", "losses", "training", "evaluation")
CORE_STAGES = (
    "cli",
    "plugins",
    "data",
    "imaging",
    "models",
    "engine",
    "inference",
    "evaluation",
    "reports",
    "deploy",
)


def _module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _graph(package: Path) -> dict[str, set[str]]:
    """Intra-package import edges, module -> modules it imports (packages by their __init__)."""
    files = {_module_name(p, package): p for p in package.rglob("*.py")}
    edges = {}
    for name, path in files.items():
        targets = {t for t in _imports(path, name) if t in files and t != name}
        parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        edges[name] = targets - parents  # a submodule importing its own package is no cycle
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.mark.parametrize("package", PLUGINS, ids=lambda p: p.name)
def test_plugin_has_no_import_cycle(package):
    cycle = _cycle(_graph(package))
    assert cycle is None, " -> ".join(cycle or [])


def test_core_has_no_import_cycle():
    cycle = _cycle(_graph(ROOT / "eyescan"))
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("package", PLUGINS, ids=lambda p: p.name)
def test_plugin_imports_only_the_api_and_no_other_plugin(package):
    others = {p.name for p in PLUGINS} - {package.name}
    bad = []
    for path in package.rglob("*.py"):
        for name in _imports(path, _module_name(path, package)):
            top = name.split(".")[0]
            if (
                top == "eyescan"
                and name not in ("eyescan", "eyescan.api")
                and not name.startswith("eyescan.api.")
            ):
                bad.append(f"{path.relative_to(ROOT)}: {name}")
            if top in others:
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, bad


@pytest.mark.parametrize("package", PLUGINS, ids=lambda p: p.name)
def test_plugin_layout(package):
    missing = [m for m in REQUIRED if not (package / f"{m}.py").exists()]
    assert not missing, f"{package.name} lacks {missing}"


def test_evaluation_never_imports_training():
    for package in PLUGINS:
        edges = _graph(package)
        evaluation = f"{package.name}.evaluation"
        assert f"{package.name}.training" not in edges.get(evaluation, set()), package.name


def test_core_is_laid_out_by_stage():
    flat = sorted(p.stem for p in (ROOT / "eyescan").glob("*.py"))
    assert flat == ["__init__", "__main__", "api", "errors", "testing"], flat
    for stage in CORE_STAGES:
        assert (ROOT / "eyescan" / stage / "__init__.py").exists(), stage
