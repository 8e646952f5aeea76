"""The plugin author's guide (docs/plugins.md) documents the whole contract and its
examples run: every hook with its arguments and call semantics, every public API
name, the testing helpers, the version declarations."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import numpy as np
import pytest

from eyescan import HOOK_CONTRACT_VERSION, api, testing
from eyescan.api import Prediction, Task, hookimpl
from eyescan.plugins import hookspecs, scaffold
from eyescan.testing import registry_with

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HOOKS = {
    name: function
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "eyescan_spec")
}


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    start = text.index(heading) + len(heading)
    following = re.search(r"^#{1,6} ", text[start:], flags=re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_is_documented_with_its_arguments(guide, hook):
    arguments = list(inspect.signature(HOOKS[hook]).parameters)
    heading = f"### `{hook}({', '.join(arguments)})`"
    assert heading in guide, f"docs/plugins.md lacks the heading {heading}"
    body = section(guide, heading)
    for argument in arguments:
        assert f"`{argument}`" in body, f"{hook}: argument {argument} not explained"
    assert "Returns" in body, f"{hook}: return value not documented"
    if HOOKS[hook].eyescan_spec["firstresult"]:
        assert "firstresult" in body, f"{hook} is firstresult: say so"
    else:
        assert "firstresult" not in body.replace("not firstresult", "")
    row = re.search(rf"^\| `{hook}` \|[^\n]*$", guide, flags=re.MULTILINE)
    assert row and all(f"`{a}`" in row.group(0) for a in arguments), f"{hook}: table row"


def test_documents_no_hook_that_does_not_exist(guide):
    documented = set(re.findall(r"^### `(\w+)\(", guide, flags=re.MULTILINE))
    assert documented == set(HOOKS)


def test_every_public_api_name_is_documented(guide):
    api_table = section(guide, "## The public API: `eyescan.api`")
    missing = [name for name in api.__all__ if f"`{name}`" not in api_table]
    assert not missing, f"eyescan.api names missing from docs/plugins.md: {missing}"


def test_testing_helpers_are_documented(guide):
    helpers = [
        name
        for name, f in inspect.getmembers(testing, inspect.isfunction)
        if f.__module__ == testing.__name__ and not name.startswith("_")
    ]
    body = section(guide, "## Testing a plugin in-process")
    assert helpers and all(f"`{name}(" in body for name in helpers)


def test_version_declarations_and_kinds_are_documented(guide):
    assert f"EYESCAN_HOOK_CONTRACT = {HOOK_CONTRACT_VERSION}" in guide
    assert f'dependencies = ["{scaffold.core_requirement()}"]' in guide
    for kind in scaffold.KINDS:
        assert f"| `{kind}` |" in guide
    assert "eyescan plugin new NAME [--kind classify|segment|detect] [--dir DIR]" in guide


class EchoTask(Task):
    name, kind, default_model, description = "echo", "classify", "none", "test task"

    def predict(self, model, batch):
        return [Prediction({}, {}, image) for image in batch]


class EchoPlugin:
    @hookimpl
    def register_tasks(self, register):
        register(EchoTask())


def test_worked_example_hook_only_plugin_runs(guide, tmp_path):
    body = section(guide, "## Worked example: optic disc detection")
    (code,) = [c for c in re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)]
    example = types.ModuleType("extras")
    exec(compile(code, str(GUIDE), "exec"), example.__dict__)
    registry = registry_with(("echo", EchoPlugin()), ("extras", example))
    assert registry.plugins["extras"].error is None
    task = registry.task("echo")
    image = np.full((40, 40, 3), 10, np.uint8)
    image[10:30, 10:30] = 200
    (prediction,) = registry.hook.predict(task=task, model=None, batch=[image])
    assert prediction.values["mean_brightness"] == pytest.approx(image.mean())
    files = [
        f
        for f in registry.hook.report(task=task, prediction=prediction, out_dir=tmp_path, stem="a")
        if f
    ]
    assert {"fov": "a_fov.png"} in files and (tmp_path / "a_fov.png").exists()
