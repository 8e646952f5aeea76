"""A stage-2-only cascade (data without normal images) and students from the fundus backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eyescan.testing import invoke_cli, json_lines
from eyescan_rop.models import mn_rop

#: The drgrade grader's backbone file (MobileNetV3-Small trunk, torchvision names).
FUNDUS = (
    Path(__file__).resolve().parents[2]
    / "drgrade/eyescan_drgrade/weights/fundus-backbone/mobilenet_v3_small.safetensors"
)


def test_v3_small_student_loads_the_whole_fundus_trunk():
    if not FUNDUS.exists():
        pytest.skip("drgrade's fundus backbone not in this checkout")
    from eyescan.api import init

    (done,) = init.initialise(
        mn_rop(backbone="mobilenet_v3_small"), {"file": FUNDUS, "into": "mobilenet"}
    )
    assert done["tensors_loaded"] == 240 and done["tensors_in_part"] == 244  # all but the head
    (v2,) = init.initialise(mn_rop(), {"file": FUNDUS, "into": "mobilenet"})
    assert v2["tensors_loaded"] == 1  # MobileNetV2: nothing fits but one tensor by chance


def test_stage2_cascade_with_a_fundus_initialised_student(dragon_table, dragon_columns, tmp_path):
    if not FUNDUS.exists():
        pytest.skip("drgrade's fundus backbone not in this checkout")
    student = {"model_options": {"mn-rop": {"backbone": "mobilenet_v3_small"}},
               "init": {"file": str(FUNDUS), "into": "mobilenet"}}  # fmt: skip
    recipe = {"cascade": True, "stages": [2], "image_size": 32, "epochs": 1, "val_fraction": 0,
              "student": student}  # fmt: skip
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    result = invoke_cli("train", "rop", dragon_table, "--columns", dragon_columns, "--config",
                        tmp_path / "r.json", "--out", tmp_path / "run", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert summary["weights"].endswith("mn-tr-rop/mn-rop.safetensors")
    assert "stage1_weights" not in summary  # no stage 1 without normal images
    card = json.loads(Path(summary["weights"]).with_suffix(".json").read_text())
    assert card["stage"] == 2 and card["model_options"] == {"backbone": "mobilenet_v3_small"}
    assert card["distilled_from"]["model"] == "ms-rop"
    (init,) = card["init"]
    assert init["tensors_loaded"] == 240 and len(init["sha256"]) == 64
