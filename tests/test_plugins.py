"""Plugin discovery, isolation of broken plugins, and the hook contract."""

from __future__ import annotations

import importlib.metadata as metadata
import inspect

import numpy as np
import pytest
from PIL import Image

from eyescan import HOOK_CONTRACT_VERSION
from eyescan.api import hookimpl
from eyescan.plugins import hookspecs
from eyescan.plugins import registry as plugins
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin


def test_every_hook_is_documented():
    hooks = [
        f
        for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "eyescan_spec")
    ]
    assert {h.__name__ for h in hooks} >= {
        "register_tasks",
        "register_models",
        "register_losses",
        "register_readers",
        "preprocess",
        "predict",
        "train",
        "evaluate",
        "report",
    }
    for hook in hooks:
        assert hook.__doc__ and len(hook.__doc__.strip()) > 40, hook.__name__


def test_in_test_plugin_through_cli(invoke, tmp_path):
    plugins.reset_registry([("toy", ToyPlugin())])
    assert "toy" in invoke("tasks").stdout
    trained = invoke("train", "toy", tmp_path, "--out", tmp_path / "run", "--json")
    assert trained.exit_code == 0, trained.output
    weights = json_lines(trained.stdout)[0]["weights"]
    Image.fromarray(np.full((8, 8, 3), 51, np.uint8)).save(tmp_path / "a.png")
    result = invoke(
        "predict",
        "toy",
        tmp_path / "a.png",
        "--weights",
        weights,
        "--out",
        tmp_path / "out",
        "--json",
    )
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    assert record["outputs"]["score"] == pytest.approx(0.4, abs=1e-6)  # 51/255 * 2
    assert (tmp_path / "out" / record["files"]["gray"]).exists()
    evaluated = invoke("evaluate", "toy", tmp_path, "--weights", weights, "--json")
    assert json_lines(evaluated.stdout)[-1]["kind"] == "summary"


class _FakeEntryPoint:
    def __init__(self, name, loader):
        self.name, self._loader, self.dist = name, loader, None

    def load(self):
        return self._loader()


def _with_entry_points(monkeypatch, extra):
    real = list(plugins._entry_points())
    monkeypatch.setattr(plugins, "_entry_points", lambda: real + extra)


def test_plugin_failing_at_import_is_isolated(monkeypatch, invoke):
    def boom():
        raise ImportError("no module named 'missing_dependency'")

    _with_entry_points(monkeypatch, [_FakeEntryPoint("broken", boom)])
    plugins.reset_registry([("toy", ToyPlugin())])
    result = invoke("tasks")
    assert result.exit_code == 0
    assert "toy" in result.stdout
    assert "broken" in result.stderr and "missing_dependency" in result.stderr
    listed = json_lines(invoke("plugins", "--json").stdout)
    assert any(p["plugin"] == "broken" and p["error"] for p in listed)


def test_plugin_failing_at_registration_is_isolated():
    class Bad:
        @hookimpl
        def register_tasks(self, register):
            raise RuntimeError("registration exploded")

    registry = plugins.build_registry([("bad", Bad()), ("toy", ToyPlugin())], entry_points=False)
    assert "toy" in registry.tasks
    assert "registration exploded" in registry.plugins["bad"].error
    assert any("bad" in w for w in registry.warnings)


def test_incompatible_contract_is_refused():
    class Future:
        EYESCAN_HOOK_CONTRACT = HOOK_CONTRACT_VERSION + 1

        @hookimpl
        def register_tasks(self, register):
            from .toy_plugin import ToyTask

            register(ToyTask())

    registry = plugins.build_registry([("future", Future())], entry_points=False)
    assert "toy" not in registry.tasks
    assert "hook contract" in registry.plugins["future"].error


def test_wrapper_plugin_can_wrap_preprocess():
    class AddOne:
        @hookimpl(wrapper=True)
        def preprocess(self, task, image, source):
            result = yield
            return result + 1.0

    registry = plugins.build_registry(
        [("toy", ToyPlugin()), ("addone", AddOne())], entry_points=False
    )
    task = registry.task("toy")
    out = registry.hook.preprocess(
        task=task, image=np.zeros((2, 2, 3), np.uint8), source="x", provided={}
    )
    assert float(out.mean()) == 1.0


def test_installed_vessels_plugin_is_discovered():
    names = {ep.name for ep in metadata.entry_points(group="eyescan")}
    assert "vessels" in names
    assert "vessels" in plugins.build_registry().tasks


def test_load_plugins_env_narrows(monkeypatch):
    monkeypatch.setenv("EYESCAN_LOAD_PLUGINS", "")
    assert plugins.build_registry().tasks == {}


def test_unknown_task_is_a_usage_error(invoke):
    result = invoke("models", "nosuchtask")
    assert result.exit_code == 2
    assert "unknown task 'nosuchtask'" in result.stderr
