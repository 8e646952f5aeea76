"""MS-ROP and MN-ROP: fused map shape, parameters and MACs near the seed's, ImageNet init."""

from __future__ import annotations

import pytest
import torch

from eyescan_rop.models import (
    MobileNetROP,
    count_macs,
    imagenet_files,
    init_from_imagenet,
    mn_rop,
    ms_rop,
)

SEED_TEACHER = (26.83e6, 5.12e9)  # parameters, MACs at 256²
SEED_STUDENT = (3.50e6, 0.33e9)


@pytest.fixture(scope="module")
def teacher_meta():
    with torch.device("meta"):
        return ms_rop()


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_fused_map_is_8x8x2944_at_256(teacher_meta):
    x = torch.zeros(1, 3, 256, 256, device="meta")
    assert tuple(teacher_meta.streams(x).shape) == (1, 2944, 8, 8)
    assert tuple(teacher_meta.fusion(teacher_meta.streams(x)).shape) == (1, 256, 8, 8)
    assert tuple(teacher_meta(x).shape) == (1, 2)


def test_mac_counter_against_a_hand_count():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(800, 2)
    )
    assert count_macs(model, 10) == 8 * 3 * 9 * 100 + 800 * 2


def test_teacher_size_is_near_the_seed(teacher_meta):
    params, macs = _params(teacher_meta), count_macs(teacher_meta, 256)
    assert params == 26_585_796  # 25.83 M backbone features + 0.75 M fusion + FC
    assert abs(params / SEED_TEACHER[0] - 1) < 0.015
    # FlopCounterMode counts 6.98 G at 256² (5.34 G at 224²); the seed says 5.12 G.
    assert macs == 6_975_838_656
    assert abs(macs / SEED_TEACHER[1] - 1) < 0.4


def test_student_size_is_near_the_seed():
    student = mn_rop()
    assert _params(student) == 3_506_874 and abs(_params(student) / SEED_STUDENT[0] - 1) < 0.01
    assert student.macs() == 392_458_192 and abs(student.macs() / SEED_STUDENT[1] - 1) < 0.2
    assert _params(mn_rop(embedding=0)) == 2_226_434


def test_forward_on_small_inputs():
    student = mn_rop().eval()
    with torch.no_grad():
        assert tuple(student(torch.rand(2, 3, 32, 32)).shape) == (2, 2)


def test_imagenet_weights_come_from_a_local_file_or_nowhere(tmp_path, monkeypatch):
    from torchvision.models import mobilenet_v2

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    student = mn_rop()
    before = student.mobilenet.features[0][0].weight.clone()
    assert init_from_imagenet(student, tmp_path) == []  # nothing there: from scratch
    assert torch.equal(student.mobilenet.features[0][0].weight, before)

    reference = mobilenet_v2(weights=None)
    torch.save(reference.state_dict(), imagenet_files("mobilenet_v2", tmp_path)[0])
    assert init_from_imagenet(student, tmp_path) == ["mobilenet_v2"]
    assert torch.equal(student.mobilenet.features[0][0].weight, reference.features[0][0].weight)
    assert torch.equal(student.mobilenet.classifier[1].weight, reference.classifier[1].weight)
    compact = MobileNetROP(embedding=0)
    assert init_from_imagenet(compact, tmp_path) == ["mobilenet_v2"]  # features only


def test_old_densenet_keys_are_renamed():
    from eyescan_rop.models import _DENSENET_KEY

    old = "features.denseblock1.denselayer1.norm.1.weight"
    assert _DENSENET_KEY.sub(r"\1\2", old) == "features.denseblock1.denselayer1.norm1.weight"
