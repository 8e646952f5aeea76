"""Weights files: safetensors round trip, model card, SHA-256 check on load."""

from __future__ import annotations

import pytest
import torch

from eyescan.errors import WeightsError
from eyescan.models import weights


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def test_round_trip_with_card(tmp_path):
    model = _model()
    path = tmp_path / "m.safetensors"
    card = weights.save_weights(model, path, {"task": "t", "model": "m"})
    assert card["sha256"] == weights.sha256_file(path)
    assert card["parameters"] == 3 * 4 * 9 + 4
    state = weights.load_state_dict(path, card["sha256"])
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    weights.load_into(fresh, state, path)
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_tampered_file_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    card = weights.save_weights(_model(), path, {"task": "t", "model": "m"})
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its model card"):
        weights.load_state_dict(path, card["sha256"])


def test_shape_mismatch_message(tmp_path):
    path = tmp_path / "m.safetensors"
    weights.save_weights(_model(), path, {"task": "t", "model": "m"})
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))
    with pytest.raises(WeightsError, match="shape mismatches"):
        weights.load_into(other, weights.load_state_dict(path), path)


def test_wrong_task_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    card = weights.save_weights(_model(), path, {"task": "rop", "model": "m"})
    with pytest.raises(WeightsError, match="for task 'rop', not 'vessels'"):
        weights.check_card(card, path, "vessels", None)
