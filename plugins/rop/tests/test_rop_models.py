"""MS-ROP and MN-ROP: fused map shape, parameters and MACs near the seed's, init from files."""

from __future__ import annotations

import pytest
import torch

from eyescan_rop.models import DENSENET_RENAME, MobileNetROP, init_specs, mn_rop, ms_rop

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


def test_teacher_size_is_near_the_seed(teacher_meta):
    params, macs = _params(teacher_meta), ms_rop().macs(256)  # eyescan.api.cost.count_macs
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


def test_imagenet_weights_come_from_a_named_file_only(tmp_path, monkeypatch):
    from torchvision.models import mobilenet_v2

    from eyescan.api import WeightsError
    from eyescan.api import init as initialisation

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    student = mn_rop()
    before = student.mobilenet.features[0][0].weight.clone()
    assert initialisation.initialise(student, init_specs("none")) == []  # from scratch
    assert torch.equal(student.mobilenet.features[0][0].weight, before)
    with pytest.raises(WeightsError, match="not found"):
        initialisation.initialise(student, {"file": str(tmp_path / "absent.pth")})

    reference = mobilenet_v2(weights=None)
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(reference.state_dict(), path)
    spec = init_specs([{"file": str(path), "into": "mobilenet"}])
    done = initialisation.initialise(student, spec)
    assert done[0]["tensors_loaded"] == done[0]["tensors_in_part"] and done[0]["sha256"]
    assert torch.equal(student.mobilenet.features[0][0].weight, reference.features[0][0].weight)
    assert torch.equal(student.mobilenet.classifier[1].weight, reference.classifier[1].weight)
    compact = MobileNetROP(embedding=0)  # its 1280→2 head does not fit: features only
    done = initialisation.initialise(compact, spec)
    assert done[0]["tensors_loaded"] == done[0]["tensors_in_part"] - 2


def test_old_densenet_keys_are_renamed_and_backbones_get_their_prefix(tmp_path):
    import re

    from torchvision.models import densenet121

    from eyescan.api import init as initialisation

    (pattern, replacement), *_ = DENSENET_RENAME.items()
    old = "denseblock1.denselayer1.norm.1.weight"
    assert re.sub(pattern, replacement, old) == "denseblock1.denselayer1.norm1.weight"
    spec = init_specs({"file": "d.pth", "into": "densenet"})
    assert spec["prefix"] == "features." and spec["rename"] == DENSENET_RENAME
    assert init_specs({"file": "d.pth", "into": "densenet", "prefix": ""})["prefix"] == ""

    # An old-style torchvision DenseNet file ("norm.1") fits the teacher's DenseNet stream.
    # (old files predate BatchNorm's num_batches_tracked)
    state = {
        k: v for k, v in densenet121(weights=None).state_dict().items() if "num_batches" not in k
    }
    renamed = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)", r"\1.\2", k): v for k, v in state.items()
    }
    assert any(".norm.1." in k for k in renamed)
    path = tmp_path / "densenet121-old.pth"
    torch.save(renamed, path)
    teacher = ms_rop()
    done = initialisation.initialise(teacher, init_specs({"file": str(path), "into": "densenet"}))
    assert done[0]["tensors_loaded"] == len(state) - 2  # all but the classifier
    assert torch.equal(teacher.densenet.conv0.weight, state["features.conv0.weight"])
