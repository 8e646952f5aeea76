"""RF-CNN networks against the seed's tables, stage by stage; parameters and FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eyescan.api import cost
from eyescan_strabismus.models import (
    DETECTOR_TABLE,
    LITE_TABLE,
    DetectorBackbone,
    InvertedResidual,
    RFCNNLite,
    RFCNNPlain,
    eye_detector,
    parameter_megabytes,
)


def _stage_shapes(stages: nn.Sequential, x: torch.Tensor) -> list[tuple[str, tuple, tuple]]:
    rows = []
    for name, stage in stages.named_children():
        y = stage(x)
        rows.append((name, tuple(x.shape[1:]), tuple(y.shape[1:])))
        x = y
    return rows


def _table_shapes(table) -> list[tuple[tuple, tuple]]:
    """(input C, H, W) of each row and the next row's input as the output."""
    inputs = [(row.channels, row.size, row.size) for row in table]
    return list(zip(inputs, inputs[1:]))


def test_lite_matches_the_seed_table_stage_by_stage():
    model = RFCNNLite().eval()
    with torch.no_grad():
        x = torch.zeros(1, 3, 224, 224)
        shapes = _stage_shapes(model.features, x)
        pooled = model.pool(model.features(x))
        logits = model(x)
    expected = _table_shapes(LITE_TABLE)
    assert [s[0] for s in shapes] == [
        "stem",
        "bottleneck1",
        "bottleneck2",
        "bottleneck3",
        "bottleneck4",
        "conv1x1",
    ]
    assert [(s[1], s[2]) for s in shapes] == expected[:6]
    assert tuple(pooled.shape[1:]) == (1024, 1, 1) == expected[6][1]  # avgpool 7×7
    assert tuple(logits.shape) == (1, 2)  # 1×1 conv to 2 classes
    # t, c, n, s of every bottleneck row
    for row, (name, stage) in zip(LITE_TABLE[1:5], list(model.features.named_children())[1:5]):
        blocks = list(stage)
        assert len(blocks) == row.n, name
        first_depthwise = [m for m in blocks[0].modules() if isinstance(m, nn.Conv2d)]
        depthwise = next(c for c in first_depthwise if c.groups > 1)
        assert depthwise.stride == (row.s, row.s)
        assert depthwise.in_channels == row.channels * row.t


def test_detector_backbone_matches_the_seed_table():
    model = DetectorBackbone().eval()
    with torch.no_grad():
        shapes = _stage_shapes(model.features, torch.zeros(1, 3, 256, 256))
    expected = _table_shapes(DETECTOR_TABLE)
    assert [(s[1], s[2]) for s in shapes[:-1]] == expected
    assert shapes[-1][2] == (1024, 8, 8)  # the table's last row: 1×1 conv to 1024
    assert [len(list(model.features[i])) for i in range(1, 6)] == [r.n for r in DETECTOR_TABLE[1:6]]


def test_plain_cnn_has_5_conv_3_pool_3_fc():
    model = RFCNNPlain().eval()
    kinds = [type(m) for m in model.modules()]
    assert kinds.count(nn.Conv2d) == 5
    assert kinds.count(nn.MaxPool2d) == 3
    assert kinds.count(nn.Linear) == 3
    with torch.no_grad():
        shapes = _stage_shapes(model.features, torch.zeros(1, 3, 224, 224))
    assert shapes[-1] == ("pool3", (256, 13, 13), (256, 6, 6))
    assert model(torch.zeros(2, 3, 128, 128)).shape == (2, 2)  # other input sizes work


def test_bottleneck_rules():
    t1 = InvertedResidual(32, 16, stride=2, expansion=1)
    assert len(t1.block) == 2 and not t1.residual  # no 1×1 expansion when t = 1
    assert InvertedResidual(32, 32, 1, 6).residual
    assert not InvertedResidual(32, 64, 1, 6).residual


def test_parameters_and_flops_reported(record_property):
    """Measured here; the seed says Lite 16 MB / 579 MFLOPs, plain 51 MB / 2 GFLOPs."""
    lite, plain = RFCNNLite(), RFCNNPlain()
    x = torch.zeros(1, 3, 224, 224)
    numbers = {
        "rfcnn-lite": (cost.count_parameters(lite), cost.count_flops(lite, x)),
        "rfcnn-cnn": (cost.count_parameters(plain), cost.count_flops(plain, x)),
    }
    for name, (params, flops) in numbers.items():
        record_property(name, f"{params} parameters, {flops / 1e6:.0f} MFLOPs at 224²")
    assert numbers["rfcnn-lite"][0] == 986_882
    assert numbers["rfcnn-cnn"][0] == 13_449_698
    assert 0.20e9 < numbers["rfcnn-lite"][1] < 0.22e9
    assert 2.1e9 < numbers["rfcnn-cnn"][1] < 2.25e9  # the seed's "2 GFLOPs"
    assert parameter_megabytes(plain) == pytest.approx(53.8, abs=0.1)  # seed: 51 MB


def test_detector_flops_count_with_the_core_counter():
    model = eye_detector(width=0.5, out_channels=512)
    flops = cost.count_flops(model, [torch.zeros(3, 256, 256)])
    assert 0.1e9 < flops < 0.3e9  # README: 0.17 GFLOPs at 256² (shipped size)


def test_detector_trains_and_detects_one_class():
    torch.manual_seed(0)
    model = eye_detector(width=0.25, out_channels=32, min_size=64, max_size=64)
    images = [torch.rand(3, 64, 80), torch.rand(3, 64, 64)]
    targets = [
        {"boxes": torch.tensor([[10.0, 20.0, 60.0, 35.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # no eyes
    ]
    losses = model.train()(images, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    sum(losses.values()).backward()
    with torch.no_grad():
        out = model.eval()(images)
    assert len(out) == 2 and set(out[0]) == {"boxes", "scores", "labels"}
    assert all((o["labels"] == 1).all() for o in out)
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # background + eye region
