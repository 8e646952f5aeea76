"""Red-Seg's architecture: VGG16 encoder, the two branches, ablations, ImageNet loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from eyescan_redlesion.models import (
    VGG16_GROUPS,
    RedSeg,
    find_imagenet_vgg16,
    load_imagenet_vgg16,
    redseg,
    redseg_ma_c1234,
    redseg_ma_c2345,
)
from eyescan_redlesion.task import lesion_probabilities


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


def test_imagenet_weights_load_from_a_torchvision_file(tmp_path):
    source = redseg()
    state = {k: v.clone() for k, v in source.encoder.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored: not part of Red-Seg
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    assert find_imagenet_vgg16(path) == path
    assert find_imagenet_vgg16(tmp_path / "absent.pth") is None
    assert find_imagenet_vgg16(None) is None
    target = redseg()
    assert load_imagenet_vgg16(target, path) == 26
    assert torch.equal(target.encoder.features[28].weight, source.encoder.features[28].weight)
    with pytest.raises(ValueError, match="not VGG16"):
        load_imagenet_vgg16(redseg(width=0.5), path)


def test_probabilities_at_any_size_and_at_the_model_scale():
    model = redseg(width=0.125).eval()
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    probs = lesion_probabilities(model, image)
    assert probs["ma"].shape == probs["he"].shape == (37, 53)
    assert 0 <= probs["ma"].min() and probs["he"].max() <= 1
    scaled = lesion_probabilities(model, image, input_width=32)  # resized, then back
    assert scaled["he"].shape == (37, 53)
