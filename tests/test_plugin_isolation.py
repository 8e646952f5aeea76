"""A plugin failing at import, at registration or mid-predict is isolated and named.

The other tasks keep working: each case ends with a real ``eyescan predict``
of another task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from eyescan.api import hookimpl
from eyescan.plugins import registry as plugins
from eyescan.testing import invoke_cli, json_lines

from . import tiny_vessels
from .tiny_vessels import fundus_png
from .toy_plugin import ToyPlugin, ToyTask

vessels_weights = tiny_vessels.vessels_weights  # the session fixture


class _EntryPoint:
    """Stands in for an installed distribution's ``eyescan`` entry point."""

    def __init__(self, name, loader):
        self.name, self._loader, self.dist = name, loader, None

    def load(self):
        return self._loader()


def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    fundus_png(folder / "a.png", seed=1)
    fundus_png(folder / "b.png", seed=2)
    return folder


def _toy_weights(tmp_path: Path) -> str:
    trained = invoke_cli("train", "toy", tmp_path, "--out", tmp_path / "toyrun", "--json")
    assert trained.exit_code == 0, trained.output
    return json_lines(trained.stdout)[0]["weights"]


def _predict(task: str, images: Path, weights: object, out: Path):
    result = invoke_cli("predict", task, images, "--weights", weights, "--out", out, "--json")
    assert "Traceback" not in result.output
    return result, json_lines(result.stdout)


def _vessels_still_work(vessels_weights, tmp_path: Path) -> None:
    result, records = _predict("vessels", _images(tmp_path), vessels_weights, tmp_path / "vo")
    assert result.exit_code == 0, result.output
    assert [r["ok"] for r in records] == [True, True]


def test_failing_at_import(monkeypatch, vessels_weights, tmp_path):
    def broken():
        raise ImportError("No module named 'cv3'")

    real = list(plugins._entry_points())
    monkeypatch.setattr(plugins, "_entry_points", lambda: [*real, _EntryPoint("brokenimp", broken)])
    plugins.reset_registry()
    listed = invoke_cli("tasks")
    assert listed.exit_code == 0 and "vessels" in listed.stdout
    assert "plugin brokenimp" in listed.stderr and "cv3" in listed.stderr
    status = {p["plugin"]: p["error"] for p in json_lines(invoke_cli("plugins", "--json").stdout)}
    assert "import failed" in status["brokenimp"] and status["vessels"] is None
    _vessels_still_work(vessels_weights, tmp_path)


class HalfRegistered:
    """Registers a task, then fails: the task must not be left half-registered."""

    @hookimpl
    def register_tasks(self, register):
        register(ToyTask())
        raise RuntimeError("registry exploded")


def test_failing_at_registration(vessels_weights, tmp_path):
    plugins.reset_registry([("halfway", HalfRegistered())])
    listed = invoke_cli("tasks", "--json")
    tasks = {t["task"] for t in json_lines(listed.stdout)}
    assert "vessels" in tasks and "toy" not in tasks  # nothing half-registered
    assert "plugin halfway" in listed.stderr and "registry exploded" in listed.stderr
    _vessels_still_work(vessels_weights, tmp_path)


class FailsFirst:
    """Answers ``predict`` first (tryfirst) and raises, for the vessels task only."""

    @hookimpl(tryfirst=True)
    def predict(self, task, model, batch):
        if task.name == "vessels":
            raise RuntimeError("GPU driver went away")
        return None  # let the task answer


class FailsAround:
    """Wraps ``predict`` and raises after the task answered, for the toy task only."""

    @hookimpl(wrapper=True)
    def predict(self, task, model, batch):
        result = yield
        if task.name == "toy":
            raise ValueError("post-processing failed")
        return result


def _fails_named(records: list[dict], plugin: str, text: str) -> None:
    assert records and all(not r["ok"] for r in records)
    for record in records:
        assert record["error"]["code"] == "plugin_error"
        message = record["error"]["message"]
        assert f"plugin {plugin} failed in predict" in message and text in message
        assert message.startswith(record["input"]) and "\n" not in message


def test_failing_mid_predict_is_named_and_isolated(vessels_weights, tmp_path):
    plugins.reset_registry(
        [("toy", ToyPlugin()), ("failsfirst", FailsFirst()), ("failsaround", FailsAround())]
    )
    images = _images(tmp_path)
    toy_weights = _toy_weights(tmp_path)
    result, records = _predict("vessels", images, vessels_weights, tmp_path / "v")
    assert result.exit_code == 1
    _fails_named(records, "failsfirst", "RuntimeError: GPU driver went away")
    result, records = _predict("toy", images, toy_weights, tmp_path / "t")
    assert result.exit_code == 1
    _fails_named(records, "failsaround", "ValueError: post-processing failed")
    # Without the failing plugins both tasks work again in the same process.
    plugins.reset_registry([("toy", ToyPlugin())])
    result, records = _predict("toy", images, toy_weights, tmp_path / "t2")
    assert result.exit_code == 0 and all(r["ok"] for r in records)
    _vessels_still_work(vessels_weights, tmp_path)


class BrokenTask(ToyTask):
    name = "brokentoy"

    def predict(self, model, batch):
        raise ZeroDivisionError("division by zero in the task")


class BrokenTaskPlugin:
    @hookimpl
    def register_tasks(self, register):
        register(BrokenTask())

    @hookimpl
    def register_models(self, register):
        from .toy_plugin import scale_model

        register("brokentoy", "scale", lambda **_: scale_model())


def test_failing_task_names_its_plugin(vessels_weights, tmp_path):
    plugins.reset_registry([("toy", ToyPlugin()), ("brokentask", BrokenTaskPlugin())])
    folder = tmp_path / "gray"
    folder.mkdir()
    Image.fromarray(np.full((8, 8, 3), 51, np.uint8)).save(folder / "x.png")
    toy_weights = Path(_toy_weights(tmp_path))
    card = toy_weights.with_suffix(".json")
    card.write_text(card.read_text().replace('"task": "toy"', '"task": "brokentoy"'))
    result, records = _predict("brokentoy", folder, toy_weights, tmp_path / "b")
    assert result.exit_code == 1
    (record,) = records
    assert record["error"]["code"] == "plugin_error"
    assert "plugin brokentask failed: ZeroDivisionError" in record["error"]["message"]
    _vessels_still_work(vessels_weights, tmp_path)


class FailingReport:
    """A third-party ``report`` (extra outputs for every task) that raises."""

    @hookimpl
    def report(self, task, prediction, out_dir, stem):
        raise OSError("disk quota exceeded")


def test_failing_report_hook_is_named(vessels_weights, tmp_path):
    plugins.reset_registry([("extras", FailingReport())])
    result, records = _predict("vessels", _images(tmp_path), vessels_weights, tmp_path / "r")
    assert result.exit_code == 1
    assert all("plugin extras failed in report" in r["error"]["message"] for r in records)
