"""``eyescan plugin new``: each kind's plugin registers through its entry point, trains,
predicts and evaluates through the CLI, passes its own tests and the linter, and keeps
the import rules; the built-in plugins have the required layout."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from eyescan import HOOK_CONTRACT_VERSION
from eyescan.plugins import scaffold
from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines, use_plugins

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
NAMES = {"classify": "grade_demo", "segment": "lesion-demo", "detect": "disc_demo"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    """One plugin of each kind, written by the CLI: kind → plugin folder."""
    parent = tmp_path_factory.mktemp("plugins")
    roots = {}
    for kind, name in NAMES.items():
        result = invoke_cli("plugin", "new", name, "--kind", kind, "--dir", parent, "--json")
        assert result.exit_code == 0, result.output
        (made,) = json_lines(result.stdout)
        assert made["files"] == sorted(scaffold.plan(name, kind))
        roots[kind] = Path(made["path"])
    yield roots
    packages = tuple(f"eyescan_{name.replace('-', '_')}" for name in NAMES.values())
    for name in list(sys.modules):  # forget the generated packages and their tests
        if name.startswith(packages) or name.endswith("_generated_tests"):
            del sys.modules[name]


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread (and do not fight a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_by_entry_point(root: Path) -> tuple[str, types.ModuleType]:
    """Register-ready ``(name, plugin)`` from the plugin's pyproject entry point, as pip would."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    ((name, value),) = project["entry-points"]["eyescan"].items()
    return name, metadata.EntryPoint(name, value, "eyescan").load()


def generated_tests(root: Path) -> types.ModuleType:
    """The generated plugin's own test module (for its ``make_dataset``)."""
    (path,) = (root / "tests").glob("test_*_plugin.py")
    spec = importlib.util.spec_from_file_location(f"{root.name}_generated_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_core_requirement_follows_the_core_version():
    assert scaffold.core_requirement("0.1.0") == "eyescan>=0.1,<0.2"
    assert scaffold.core_requirement("1.4.2") == "eyescan>=1.4,<2"


def test_pyproject_declares_entry_point_and_core_version(generated):
    for kind, root in generated.items():
        module = NAMES[kind].replace("-", "_")
        pyproject = tomllib.loads((root / "pyproject.toml").read_text())
        project = pyproject["project"]
        assert project["name"] == f"eyescan-{NAMES[kind].replace('_', '-')}"
        assert project["entry-points"]["eyescan"] == {NAMES[kind]: f"eyescan_{module}"}
        assert project["dependencies"] == [scaffold.core_requirement()]
        package_data = pyproject["tool"]["setuptools"]["package-data"][f"eyescan_{module}"]
        assert {"weights/*.safetensors", "weights/*.json", "recipes/*.json"} <= set(package_data)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kind", list(NAMES))
def test_generated_plugin_trains_predicts_evaluates(kind, generated, tmp_path, monkeypatch):
    root = generated[kind]
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("EYESCAN_LOAD_PLUGINS", "")  # the generated plugin alone
    name, plugin = load_by_entry_point(root)
    use_plugins((name, plugin))
    (listed,) = json_lines(invoke_cli("tasks", "--json").stdout)
    assert (listed["task"], listed["kind"]) == (name, kind)

    data = generated_tests(root).make_dataset(tmp_path / "data")
    recipe = next((root / f"eyescan_{name.replace('-', '_')}" / "recipes").glob("*.json"))
    trained = invoke_cli(
        "train", name, data, "--config", recipe, "--out", tmp_path / "run", "--json"
    )
    assert trained.exit_code == 0, trained.output
    weights = json_lines(trained.stdout)[0]["weights"]
    assert Path(weights).with_suffix(".json").exists()  # the model card

    inputs = data / "test" if kind == "classify" else data / "test" / "images"
    out = tmp_path / "out"
    predicted = invoke_cli("predict", name, inputs, "--weights", weights, "--out", out, "--json")
    assert predicted.exit_code == 0, predicted.output
    records = json_lines(predicted.stdout)
    assert records and all(r["ok"] and not validate_prediction(r) for r in records)
    assert all((out / f).exists() for r in records for f in r["files"].values())

    plots = tmp_path / "plots"
    evaluated = invoke_cli("evaluate", name, data, "--weights", weights, "--plots", plots, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    lines = json_lines(evaluated.stdout)
    summary = lines[-1]
    assert summary["kind"] == "summary" and summary["images"] == len(lines) - 1
    assert summary["split"] == "test" and summary["data_split"]["split"] == "test"
    assert summary["data_split"]["count"] == summary["images"]
    assert summary["ci95"] and summary["ci_method"].startswith("percentile bootstrap")
    figures = {p.name for p in plots.glob("*.png")}
    expected = {
        "classify": {"roc.png", "pr.png", "confusion.png", "calibration.png"},
        "segment": {"roc.png", "pr.png"},
        "detect": set(),
    }[kind]
    assert expected <= figures, figures


@pytest.mark.usefixtures("one_thread")
def test_unsplit_csv_with_mapped_columns_is_held_out_through_the_cli(
    generated, tmp_path, monkeypatch
):
    root = generated["classify"]
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("EYESCAN_LOAD_PLUGINS", "")
    name, plugin = load_by_entry_point(root)
    use_plugins((name, plugin))
    tests = generated_tests(root)
    data = tests.make_dataset(tmp_path / "data", split=False)
    rows = ["path,diagnosis,infant"]
    for label, folder in enumerate(tests.CLASSES):
        for i, image in enumerate(sorted((data / folder).glob("*.png"))):
            rows.append(f"{folder}/{image.name},{label},{folder}{i // 2}")
    table = data / "table.csv"
    table.write_text("\n".join(rows) + "\n")
    mapping = "image=path,label=diagnosis,patient=infant"
    recipe = next((root / f"eyescan_{name}" / "recipes").glob("*.json"))
    trained = invoke_cli(
        "train", name, table, "--columns", mapping, "--config", recipe, "--out", tmp_path / "r"
    )
    assert trained.exit_code == 0, trained.output
    weights = tmp_path / "r" / "tiny_cnn.safetensors"
    card = json.loads(weights.with_suffix(".json").read_text())
    evaluated = invoke_cli(
        "evaluate", name, table, "--columns", mapping, "--weights", weights, "--json"
    )
    assert evaluated.exit_code == 0, evaluated.output
    scored = json_lines(evaluated.stdout)[-1]["data_split"]
    assert (
        "hold-out" in scored["rule"]
        and scored["count"] + card["training"]["data"]["count"] == len(rows) - 1
    )
    assert set(scored["ids"]).isdisjoint(card["training"]["data"]["ids"])
    refused = invoke_cli(
        "evaluate", name, table, "--columns", mapping, "--weights", weights, "--holdout", "0"
    )
    assert refused.exit_code == 1 and "--holdout" in refused.stderr


def test_generated_plugins_pass_their_own_tests(generated):
    count = sum(
        path.read_text().count("\ndef test_")
        for root in generated.values()
        for path in (root / "tests").glob("test_*.py")
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(r) for r in generated.values())}
    env.pop("EYESCAN_LOAD_PLUGINS", None)
    env["OMP_NUM_THREADS"] = "1"  # tiny models: threads only add overhead
    tests = [str(root / "tests") for root in generated.values()]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=next(iter(generated.values())).parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"{count} passed" in result.stdout


def test_generated_hooks_import_no_torch(generated):
    probe = (
        "import sys\n"
        "from eyescan.plugins.registry import build_registry\n"
        f"names = {[(n, 'eyescan_' + n.replace('-', '_')) for n in NAMES.values()]!r}\n"
        "reg = build_registry([(n, __import__(m)) for n, m in names], entry_points=False)\n"
        "assert sorted(reg.tasks) == sorted(n for n, _ in names), reg.warnings\n"
        "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'TORCH-FREE')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(r) for r in generated.values())}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "TORCH-FREE", result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_generated_code_is_lint_clean(tmp_path):
    longest = "x" * (scaffold.MAX_NAME_LENGTH - 5)
    for kind in scaffold.KINDS:
        scaffold.new_plugin(f"{kind}_{longest}"[: scaffold.MAX_NAME_LENGTH], kind, tmp_path)
        scaffold.new_plugin(f"{kind}-{longest}"[: scaffold.MAX_NAME_LENGTH - 1], kind, tmp_path)
    config = str(REPO / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            ["ruff", *command, "--config", config, str(tmp_path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_refuses_bad_names_and_existing_folders(tmp_path):
    bad = invoke_cli("plugin", "new", "Optic Disc", "--dir", tmp_path)
    assert bad.exit_code == 2 and "lower-case" in bad.stderr
    assert invoke_cli("plugin", "new", "disc", "--dir", tmp_path).exit_code == 0
    again = invoke_cli("plugin", "new", "disc", "--dir", tmp_path)
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disc"]  # no staging left behind


def test_incompatible_contract_is_refused_with_a_clear_message(generated, monkeypatch):
    monkeypatch.syspath_prepend(str(generated["classify"]))
    monkeypatch.setenv("EYESCAN_LOAD_PLUGINS", "")
    name, plugin = load_by_entry_point(generated["classify"])
    future = types.ModuleType("future_plugin")
    future.__dict__.update({k: v for k, v in vars(plugin).items() if not k.startswith("__")})
    future.EYESCAN_HOOK_CONTRACT = HOOK_CONTRACT_VERSION + 1
    use_plugins((name, future))
    listed = invoke_cli("tasks")
    warning = " ".join(listed.stderr.split())  # rich wraps long lines
    assert name not in listed.stdout
    assert f"plugin {name}" in warning and "needs hook contract" in warning
    (info,) = [p for p in json_lines(invoke_cli("plugins", "--json").stdout) if p["plugin"] == name]
    assert info["tasks"] == [] and "hook contract" in info["error"]


# -- the built-in plugins have the scaffold's layout --------------------------------------


def layout_problems(root: Path) -> list[str]:
    """How a plugin folder differs from the required layout (what ``eyescan plugin new`` writes)."""
    name = root.name
    package = f"eyescan_{name.replace('-', '_')}"
    problems = [
        f"{package}/{module} is missing"
        for module in scaffold.PLUGIN_MODULES
        if not (root / package / module).exists()
    ]
    for relative in ("README.md", f"{package}/weights", f"{package}/recipes"):
        if not (root / relative).exists():
            problems.append(f"{relative} is missing")
    if not list((root / "tests").glob(f"test_{name.replace('-', '_')}_*.py")):
        problems.append(f"no tests/test_{name}_*.py")
    if (root / "tests" / "__init__.py").exists():
        problems.append("tests/__init__.py (test basenames must be unique instead)")
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    if project.get("entry-points", {}).get("eyescan") != {name: package}:
        problems.append(f'entry point is not [project.entry-points.eyescan] {name} = "{package}"')
    if not any(d.replace(" ", "").startswith("eyescan>=") for d in project["dependencies"]):
        problems.append("no eyescan>=… dependency")
    problems += init_problems(root / package / "__init__.py")
    return problems + import_problems(root / package, package)


def module_imports(folder: Path, package: str) -> dict[str, set[str]]:
    """Every module of the package → the modules it imports (at module or function level)."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = [package, *path.relative_to(folder).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        parts = parts[:-1] if is_package else parts
        modules, members = set(), set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .data import x
                    anchor = parts if is_package else parts[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                modules.add(base)
                members.update(f"{base}.{alias.name}" for alias in node.names)
        found[".".join(parts)] = (modules, members)
    # "from package import data" imports the module package.data
    return {name: modules | (members & set(found)) for name, (modules, members) in found.items()}


def import_problems(folder: Path, package: str) -> list[str]:
    """The import rules: the core only through ``eyescan.api``, no other plugin, no circles
    between the package's modules, ``evaluation`` never reaching ``training``."""
    if not folder.is_dir():
        return []
    graph = module_imports(folder, package)
    problems = []
    for module, names in graph.items():
        for name in sorted(names):
            top = name.split(".")[0]
            if top == "eyescan" and name != "eyescan.api":
                problems.append(f"{module} imports {name} (only eyescan.api)")
            elif top.startswith("eyescan_") and top != package:
                problems.append(f"{module} imports another plugin, {top}")
    # edges between the package's own modules (the package itself holds hooks only)
    edges = {m: {n for n in names if n in graph and n != package} for m, names in graph.items()}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for following in edges.get(todo.pop(), ()):
                if following not in seen:
                    seen.add(following)
                    todo.append(following)
        return seen

    for module in sorted(edges):
        if module != package and module in reachable(module):
            problems.append(f"{module} is in an import circle")
    evaluation, training = f"{package}.evaluation", f"{package}.training"
    if evaluation in graph and training in reachable(evaluation):
        problems.append(f"{evaluation} imports {training} (directly or not)")
    return problems


def init_problems(path: Path) -> list[str]:
    """``__init__.py`` holds hook implementations only: no heavy imports, a declared contract."""
    if not path.exists():
        return []
    tree = ast.parse(path.read_text())
    problems = []
    contract = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", "") == "EYESCAN_HOOK_CONTRACT" for t in node.targets)
    ]
    if not contract:
        problems.append("__init__.py does not declare EYESCAN_HOOK_CONTRACT")
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module not in ("__future__", "eyescan.api"):
            problems.append(f"__init__.py imports {node.module} at module level")
        elif isinstance(node, ast.Import):
            problems.append(f"__init__.py imports {node.names[0].name} at module level")
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            hooks = [ast.unparse(d) for d in getattr(node, "decorator_list", [])]
            if not any(h.startswith("hookimpl") for h in hooks):
                problems.append(f"__init__.py defines {node.name}, which is no hook")
    return problems


def test_scaffold_output_passes_the_layout_check(generated):
    for root in generated.values():
        assert layout_problems(root) == []
        package = root / f"eyescan_{root.name.replace('-', '_')}"
        assert {p.name for p in package.glob("*.py")} == set(scaffold.PLUGIN_MODULES)


def test_import_check_finds_circles_core_imports_and_evaluation_using_training(tmp_path):
    package = tmp_path / "eyescan_bad"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "task.py").write_text("def train():\n    from eyescan_bad.training import t\n")
    (package / "training.py").write_text("from eyescan_bad.task import train\n")
    (package / "evaluation.py").write_text(
        "from eyescan.data.splits import hold_out\nfrom .training import train\n"
    )
    (package / "data.py").write_text("from eyescan.api import splits\nimport eyescan_rop\n")
    problems = import_problems(package, "eyescan_bad")
    assert "eyescan_bad.task is in an import circle" in problems
    assert "eyescan_bad.training is in an import circle" in problems
    assert "eyescan_bad.evaluation imports eyescan_bad.training (directly or not)" in problems
    assert "eyescan_bad.evaluation imports eyescan.data.splits (only eyescan.api)" in problems
    assert "eyescan_bad.data imports another plugin, eyescan_rop" in problems
    assert len(problems) == 5, problems  # eyescan.api is fine


@pytest.mark.parametrize(
    "plugin",
    sorted(p.name for p in (REPO / "plugins").iterdir() if (p / "pyproject.toml").exists()),
)
def test_builtin_plugin_has_the_required_layout(plugin):
    assert layout_problems(REPO / "plugins" / plugin) == []
