"""Red-Seg's architecture: VGG16 encoder, the two branches, ablations, init from a VGG16 file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from eyescan.api import WeightsError
from eyescan.api import init as init_files
from eyescan_redlesion.models import (
    VGG16_GROUPS,
    RedSeg,
    lesion_probabilities,
    redseg,
    redseg_ma_c1234,
    redseg_ma_c2345,
)


def test_encoder_is_vgg16_thirteen_convs_laid_out_as_torchvision():
    from torchvision.models.vgg import cfgs, make_layers

    model = redseg()
    convs = [m for m in model.encoder.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    assert [c.out_channels for c in convs] == [c for group in VGG16_GROUPS for c in group]
    assert all(c.kernel_size == (3, 3) for c in convs)
    reference = make_layers(cfgs["D"])[:30].state_dict()  # torchvision's vgg16().features
    own = model.encoder.state_dict()
    assert {k: v.shape for k, v in own.items()} == {
        f"features.{k}": v.shape for k, v in reference.items()
    }
    for branch, levels in ((model.ma, (2, 3, 4)), (model.he, (3, 4, 5))):
        assert branch.levels == levels
        assert all(s.kernel_size == (1, 1) and s.out_channels == 1 for s in branch.sides)
        assert branch.fuse.in_channels == 3 and branch.fuse.kernel_size == (1, 1)


def test_side_outputs_resolutions_and_eight_supervised_maps():
    model = redseg(width=0.125).eval()
    x = torch.randn(1, 3, 32, 48)
    features = model.encoder(x)
    assert [f.shape[-2:] for f in features] == [(32 // s, 48 // s) for s in (1, 2, 4, 8, 16)]
    outputs = model.deep_outputs(x)
    assert list(outputs) == [
        "ma/conv2", "ma/conv3", "ma/conv4", "ma/fused",
        "he/conv3", "he/conv4", "he/conv5", "he/fused",
    ]  # fmt: skip
    assert all(v.shape == (1, 1, 32, 48) for v in outputs.values())
    fused = model(x)
    assert fused.shape == (1, 2, 32, 48)
    assert torch.allclose(fused[:, 0:1], outputs["ma/fused"])
    assert torch.allclose(fused[:, 1:2], outputs["he/fused"])


def test_ablation_variants_fuse_other_groups():
    assert redseg_ma_c2345(width=0.125).ma.levels == (2, 3, 4, 5)
    assert redseg_ma_c1234(width=0.125).ma.levels == (1, 2, 3, 4)
    assert len(redseg_ma_c1234(width=0.125).output_names()) == 9
    with pytest.raises(ValueError):
        RedSeg(ma_levels=(0, 2))


class _TorchvisionVGG16(nn.Module):
    """torchvision's ``vgg16()`` layout: ``features`` (31 layers) and a classifier."""

    def __init__(self):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.features = make_layers(cfgs["D"])
        self.classifier = nn.Sequential(nn.Linear(4, 2))  # stands in for the 4096-wide head


def test_a_torchvision_vgg16_file_initialises_the_encoder_through_the_core(tmp_path):
    source = _TorchvisionVGG16()
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(source.state_dict(), path)  # keys as torchvision's: features.N.*, classifier.*
    target = redseg()
    done = init_files.initialise(target, {"file": str(path), "into": "encoder"})
    assert done[0]["tensors_loaded"] == done[0]["tensors_in_part"] == 26
    assert done[0]["file"] == path.name and len(done[0]["sha256"]) == 64
    assert torch.equal(target.encoder.features[28].weight, source.features[28].weight)
    assert torch.equal(target.encoder.features[0].bias, source.features[0].bias)
    with pytest.raises(WeightsError, match="no tensor fits"):
        init_files.initialise(redseg(width=0.5), {"file": str(path), "into": "encoder"})


def test_probabilities_at_any_size_and_at_the_model_scale():
    model = redseg(width=0.125).eval()
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    probs = lesion_probabilities(model, image)
    assert probs["ma"].shape == probs["he"].shape == (37, 53)
    assert 0 <= probs["ma"].min() and probs["he"].max() <= 1
    scaled = lesion_probabilities(model, image, input_width=32)  # resized, then back
    assert scaled["he"].shape == (37, 53)
    # the field of view at a fixed width: maps of the image's size, zero outside the view
    disc = np.zeros((40, 60, 3), np.uint8)
    yy, xx = np.mgrid[:40, :60]
    disc[(yy - 20) ** 2 + (xx - 30) ** 2 <= 15**2] = (170, 80, 40)
    framed = lesion_probabilities(model, disc, fov_width=48)
    assert framed["ma"].shape == (40, 60) and framed["ma"][:, :10].max() == 0.0
    assert framed["ma"][20, 30] > 0
