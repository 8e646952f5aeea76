"""Shared recipe merge, initialisation from a local file, and model cost."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from eyescan.engine import recipes
from eyescan.errors import WeightsError
from eyescan.imaging.augment import AugmentConfig
from eyescan.models import cost, init, weights


def test_merge_order_and_nested_objects():
    defaults = {"lr": 0.1, "epochs": 5, "augment": {"rotation": 10, "hflip": True}}
    options = {
        "config": {
            "lr": 0.2,
            "augment": {"rotation": 30},
            "teacher": {"lr": 0.3},
            "student": {"x": 1},
        },
        "epochs": 9,
        "batch_size": None,
    }
    merged = recipes.merge_recipe(defaults, options, "teacher", sections=("teacher", "student"))
    assert merged == {"lr": 0.3, "epochs": 9, "augment": {"rotation": 30, "hflip": True}}
    assert recipes.merge_recipe(defaults, {}, None) == defaults
    assert recipes.recipe_hash({"a": 1, "b": 2}) == recipes.recipe_hash({"b": 2, "a": 1})
    assert recipes.recipe_hash({"a": 1}) != recipes.recipe_hash({"a": 2})


def test_augment_config_refuses_unknown_keys():
    assert AugmentConfig.from_dict({"rotation": 5, "scale": [0.9, 1.1]}).scale == (0.9, 1.1)
    with pytest.raises(ValueError, match="rotaton"):
        AugmentConfig.from_dict({"rotaton": 5})


class Net(torch.nn.Module):
    def __init__(self, classes: int = 2):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, classes)

    def forward(self, x):
        return self.head(self.backbone(x).mean((2, 3)))


def test_initialise_from_a_torchvision_style_file(tmp_path):
    source = Net(classes=1000)
    state = {f"features.{k}": v for k, v in source.backbone.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 4)
    torch.save(state, tmp_path / "imagenet.pth")
    target = Net()
    done = init.initialise(
        target, {"file": "imagenet.pth", "into": "backbone", "prefix": "features."}, base=tmp_path
    )
    assert torch.equal(target.backbone[0].weight, source.backbone[0].weight)
    assert done[0]["tensors_loaded"] == 2 and len(done[0]["sha256"]) == 64
    assert init.initialise(Net(), "none") == []


def test_initialise_from_an_eyescan_model_checks_its_hash(tmp_path):
    trained = Net()
    weights.save_weights(trained, tmp_path / "m.safetensors", {"task": "t", "model": "net"})
    target = Net(classes=5)  # other head: only the backbone fits
    done = init.initialise(target, str(tmp_path / "m.safetensors"))
    assert done[0]["tensors_loaded"] == 2
    save_file({"backbone.0.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_path / "m.safetensors"))
    with pytest.raises(WeightsError, match="SHA-256"):
        init.initialise(Net(), str(tmp_path / "m.safetensors"))


def test_initialise_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        init.initialise(Net(), str(tmp_path / "missing.pth"))
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "x.pth")
    with pytest.raises(WeightsError, match="no tensor fits"):
        init.initialise(Net(), str(tmp_path / "x.pth"))
    with pytest.raises(WeightsError, match="unknown key"):
        init.initialise(Net(), {"file": "x.pth", "strict": True}, base=tmp_path)


def test_cost_counts():
    net = Net()
    assert cost.count_parameters(net) == 4 * 3 * 9 + 4 + 4 * 2 + 2
    conv = 2 * (4 * 3 * 9) * 6 * 6
    linear = 2 * 4 * 2
    assert cost.count_flops(net, torch.zeros(1, 3, 8, 8)) == conv + linear
    assert cost.count_macs(net, 8) == (conv + linear) // 2
    assert net.training  # restored
