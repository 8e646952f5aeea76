"""Interrupted runs: a real ``eyescan`` process killed mid-run, then ``--resume``.

Prediction: killed with SIGINT and with SIGKILL after a few images, the
resumed run loses nothing (every image ends with a complete record and its
files) and redoes only what was not complete. Training: killed after an
epoch's checkpoint, ``--resume`` continues from it; a NaN loss stops with a
clear message and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from eyescan.engine.training import TrainConfig, TrainingError, WeightedLoss, fit
from eyescan.models.loading import load
from eyescan.plugins.registry import get_registry
from eyescan.testing import invoke_cli, json_lines

from . import tiny_vessels
from .figures import record as record_figures
from .test_training import _problem  # a 3-parameter regression
from .tiny_vessels import drive_data, eyescan_process, fundus_png, write_recipe

vessels_weights = tiny_vessels.vessels_weights  # the session fixture

N_IMAGES = 10


def _complete(out: Path) -> set[str]:
    """Stems whose record says ok and whose files all exist (what --resume may skip)."""
    done = set()
    for path in out.rglob("*.json"):
        if path.name.startswith("."):
            continue  # a temporary file left by SIGKILL
        try:
            record = json.loads(path.read_text())
        except ValueError:
            raise AssertionError(f"{path} is half-written") from None
        if record["ok"] and all((out / f).is_file() for f in record["files"].values()):
            done.add(record["id"])
    return done


def _wait_for(condition, process, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            _, stderr = process.communicate()
            pytest.fail(f"finished before it could be interrupted: {stderr.decode()[-800:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for progress")
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_predict_killed_then_resumed(vessels_weights, tmp_path, sig, capsys):
    folder = tmp_path / "in"
    for i in range(N_IMAGES):
        fundus_png(folder / f"eye{i:02d}.png", size=128, seed=i)
    out = tmp_path / "out"
    args = ["predict", "vessels", folder, "--weights", vessels_weights, "--out", out]
    process = eyescan_process(*args, "--workers", "1")
    _wait_for(lambda: len(_complete(out)) >= 2, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert process.returncode == 130
        assert "interrupted" in stderr.decode() and "Traceback" not in stderr.decode()
    else:
        assert process.returncode == -signal.SIGKILL
    before = _complete(out)
    assert 2 <= len(before) < N_IMAGES
    for png in out.glob("*.png"):  # whatever was written is whole (atomic writes)
        if not png.name.startswith("."):  # a temporary file a SIGKILL left half-written
            Image.open(png).load()
    logged = {r["id"] for r in json_lines((out / "predictions.jsonl").read_text())}
    assert logged and logged <= before  # finished records were appended as they came

    resumed = invoke_cli(*args, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    records = json_lines(resumed.stdout)
    skipped = {r["id"] for r in records if r.get("resumed")}
    assert len(records) == N_IMAGES and all(r["ok"] for r in records)
    assert _complete(out) == {r["id"] for r in records}  # nothing lost
    assert skipped == before  # every complete image skipped, nothing else
    record_figures(
        capsys, f"resume after {sig.name}", images=N_IMAGES, complete_at_signal=len(before),
        in_predictions_jsonl=len(logged), skipped=len(skipped), redone=N_IMAGES - len(skipped),
        lost=0,
    )  # fmt: skip


def test_resume_ignores_results_of_other_weights(vessels_weights, tmp_path):
    image = fundus_png(tmp_path / "in" / "eye.png")
    out = tmp_path / "out"
    args = ["predict", "vessels", image, "--weights", vessels_weights, "--out", out, "--json"]
    assert invoke_cli(*args).exit_code == 0
    record_file = out / "eye.json"
    record = json.loads(record_file.read_text())
    record["weights_sha256"] = "0" * 64  # as if made by other weights
    record_file.write_text(json.dumps(record))
    (again,) = json_lines(invoke_cli(*args, "--resume").stdout)
    assert again["ok"] and not again.get("resumed")


def test_training_killed_then_resumed(tmp_path, capsys):
    data = drive_data(tmp_path / "drive")
    recipe = write_recipe(tmp_path / "recipe.json", epochs=2)
    run = tmp_path / "run"
    args = ["train", "vessels", data, "--config", recipe, "--out", run]
    process = eyescan_process(*args)
    _wait_for(lambda: (run / "last_state.pt").exists(), process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    first = (run / "metrics.jsonl").read_text().splitlines()[0]
    done = torch.load(run / "last_state.pt", weights_only=True)["epoch"]
    assert done == 1

    result = invoke_cli(*args, "--resume", "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert lines[0] == first  # epoch 1 was not trained again
    assert summary["epochs_run"] == 2
    loaded = load(get_registry(), "vessels", weights=Path(summary["weights"]))  # hash checked
    assert loaded.sha256
    record_figures(capsys, "training resume after SIGKILL", killed_after_epoch=done,
                   resumed_to_epoch=2, epochs_trained_twice=0)  # fmt: skip


# -- the training loop itself (in-process, a 3-parameter regression) ----------------


def test_resume_after_kill_between_metrics_and_checkpoint(tmp_path):
    """Lines written after the last checkpoint (or cut mid-line) are not duplicated."""
    batches, val, mse = _problem()
    card = {"model": "lin"}
    fit(torch.nn.Linear(3, 1), batches, val, [mse], TrainConfig(epochs=2, lr=0.01), tmp_path, card)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"epoch": 3, "train_loss": 1.0}) + "\n" + '{"epoch": 4, "tr')
    result = fit(
        torch.nn.Linear(3, 1), batches, val, [mse], TrainConfig(epochs=4, lr=0.01), tmp_path,
        card, resume=True,
    )  # fmt: skip
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().split("\n")
              if x]  # fmt: skip
    assert epochs == [1, 2, 3, 4] and [h["epoch"] for h in result.history] == [1, 2, 3, 4]


def test_nan_loss_keeps_the_last_good_checkpoint(tmp_path):
    batches, val, mse = _problem()
    card = {"task": "t", "model": "lin"}
    model = torch.nn.Linear(3, 1)
    fit(model, batches, val, [mse], TrainConfig(epochs=2, lr=0.01), tmp_path, card)
    good = (tmp_path / "lin.safetensors").read_bytes()
    nan = WeightedLoss("mse", lambda out, b: mse.fn(out, b) * float("nan"))
    with pytest.raises(TrainingError, match="loss became nan at epoch 3") as caught:
        fit(model, batches, val, [nan], TrainConfig(epochs=4, lr=0.01), tmp_path, card,
            resume=True)  # fmt: skip
    assert str(tmp_path / "lin.safetensors") in str(caught.value)  # names the good weights
    assert (tmp_path / "lin.safetensors").read_bytes() == good
    assert torch.load(tmp_path / "last_state.pt", weights_only=True)["epoch"] == 2
    result = fit(torch.nn.Linear(3, 1), batches, val, [mse], TrainConfig(epochs=4, lr=0.01),
                 tmp_path, card, resume=True)  # fmt: skip
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
