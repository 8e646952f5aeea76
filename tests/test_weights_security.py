"""Untrusted weights: tampered, mismatched or code-carrying files are refused.

Every case goes through ``eyescan predict`` (the way a user meets it): exit
code 1 (2 for an unknown model name), one clear line on stderr, no traceback.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from eyescan.errors import WeightsError
from eyescan.models import weights
from eyescan.testing import invoke_cli

from . import tiny_vessels
from .tiny_vessels import drive_data, fundus_png, write_recipe

vessels_weights = tiny_vessels.vessels_weights  # the session fixture


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _copy(weights_path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / weights_path.name
    shutil.copy(weights_path, target)
    shutil.copy(weights.card_path(weights_path), weights.card_path(target))
    return target


def _edit_card(path: Path, **fields: object) -> None:
    card = json.loads(weights.card_path(path).read_text())
    card.update(fields)
    weights.card_path(path).write_text(json.dumps(card))


def _predict(tmp_path: Path, weights_path: Path, *extra: object):
    image = fundus_png(tmp_path / "eye.png")
    result = invoke_cli(
        "predict", "vessels", image, "--weights", weights_path, "--out", tmp_path / "o", *extra
    )
    assert "Traceback" not in result.output
    return result


def _save_foreign(path: Path, model: torch.nn.Module, **card: object) -> Path:
    weights.save_weights(model, path, {"task": "vessels", "model": "unet", **card})
    return path


def test_genuine_weights_load(vessels_weights, tmp_path):
    assert _predict(tmp_path, vessels_weights).exit_code == 0


def test_tampered_file_is_refused(vessels_weights, tmp_path):
    path = _copy(vessels_weights, tmp_path / "w")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in a tensor
    path.write_bytes(bytes(data))
    result = _predict(tmp_path, path)
    assert result.exit_code == 1
    assert "does not match its model card" in result.stderr


def test_missing_card_is_refused(vessels_weights, tmp_path):
    path = _copy(vessels_weights, tmp_path / "w")
    weights.card_path(path).unlink()
    result = _predict(tmp_path, path)
    assert result.exit_code == 1
    assert f"model card {path.stem}.json is missing" in result.stderr


def test_wrong_task_is_refused(vessels_weights, tmp_path):
    path = _copy(vessels_weights, tmp_path / "w")
    _edit_card(path, task="glaucoma")
    result = _predict(tmp_path, path)
    assert result.exit_code == 1
    assert "weights are for task 'glaucoma', not 'vessels'" in result.stderr


def test_wrong_model_name_is_refused(vessels_weights, tmp_path):
    path = _copy(vessels_weights, tmp_path / "w")
    _edit_card(path, model="resnet50")
    result = _predict(tmp_path, path)
    assert result.exit_code == 2 and "unknown model 'resnet50'" in result.stderr
    asked = _predict(tmp_path, vessels_weights, "--model", "resnet50")
    assert asked.exit_code == 1
    assert f"weights are for model '{vessels_weights.stem}', not 'resnet50'" in asked.stderr


def test_wrong_architecture_is_refused(tmp_path):
    path = _save_foreign(tmp_path / "unet.safetensors", torch.nn.Linear(3, 2))
    result = _predict(tmp_path, path)
    assert result.exit_code == 1
    assert "weights do not fit the model" in result.stderr
    assert "missing tensors" in result.stderr and "unexpected tensors" in result.stderr


def test_wrong_shapes_are_refused(tmp_path):
    from eyescan_vessels.models import unet

    path = _save_foreign(tmp_path / "unet.safetensors", unet(width=4))  # card: default width 8
    result = _predict(tmp_path, path)
    assert result.exit_code == 1
    assert "shape mismatches" in result.stderr and "vs model" in result.stderr


def test_payload_is_live(tmp_path):
    """The test payload really runs code when unpickled the unsafe way."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Payload(marker)))  # noqa: S301 - on purpose
    assert marker.exists()


@pytest.mark.parametrize("container", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_without_running(tmp_path, container):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    state = {"state_dict": {"weight": Payload(marker)}}
    if container == "pickle":
        path.write_bytes(pickle.dumps(state, protocol=2))
    else:
        torch.save(state, path)
    with pytest.raises(WeightsError, match="refused to load"):
        weights.load_state_dict(path)
    result = _predict(tmp_path, path)
    assert result.exit_code == 1 and "refused to load" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_pickle_disguised_as_safetensors_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "unet.safetensors"
    path.write_bytes(pickle.dumps(Payload(marker)))
    card = {"schema": weights.CARD_SCHEMA, "task": "vessels", "model": "unet"}
    weights.card_path(path).write_text(json.dumps({**card, "sha256": weights.sha256_file(path)}))
    result = _predict(tmp_path, path)
    assert result.exit_code == 1 and "not a valid safetensors file" in result.stderr
    assert not marker.exists()


def test_malicious_training_checkpoint_is_refused(tmp_path):
    """``eyescan train --resume`` reads ``last_state.pt`` with ``weights_only=True``."""
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": Payload(marker), "epoch": 1}, run / "last_state.pt")
    data = drive_data(tmp_path / "drive")
    result = invoke_cli(
        "train", "vessels", data, "--config", write_recipe(tmp_path / "r.json"),
        "--out", run, "--resume",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "refused to load the checkpoint" in result.stderr
    assert "Traceback" not in result.output
    assert not marker.exists()


def test_synthetic_only_weights_are_flagged_on_stderr(tmp_path, vessels_weights):
    plain = _predict(tmp_path / "a", vessels_weights)
    assert plain.exit_code == 0 and "synthetic images only" not in plain.stderr
    flagged = _copy(vessels_weights, tmp_path / "flagged")
    _edit_card(flagged, synthetic_only=True)
    result = _predict(tmp_path / "b", flagged, "--json")
    assert result.exit_code == 0, result.stderr
    assert "trained on synthetic images only" in " ".join(result.stderr.split())
    assert "synthetic images" not in result.stdout  # machine output stays clean
