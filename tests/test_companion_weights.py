"""Companion models are refused like the primary one.

A tampered companion (strabismus' eye-region detector, rop's stage 2, a provider
task's shipped weights such as the vessels map another task uses) stops the run
with one line naming the file (SHA-256 mismatch); a companion whose model card
names another task or another model is refused the same way. drgrade's grader
and detector ship as one file (``screen``), checked as the primary weights.
Copies of the shipped weights are tampered with in ``tmp_path``; the repository's
files are never touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from eyescan.models import weights
from eyescan.plugins import registry as plugins
from eyescan.plugins.registry import get_registry
from eyescan.testing import invoke_cli

from . import toy_pair
from .toy_pair import PairPlugin


def _copy_shipped(task: str, names: list[str], folder: Path) -> Path:
    """Copies of a task's shipped weights and cards in ``folder``; the first one's path."""
    source = Path(get_registry().task(task).weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".safetensors", ".json"):
            shutil.copy(source / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder / f"{names[0]}.safetensors"


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_card(path: Path, **fields: object) -> None:
    card = json.loads(weights.card_path(path).read_text())
    weights.card_path(path).write_text(json.dumps({**card, **fields}))


def _predict(tmp_path: Path, task: str, *extra: object):
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (120, 60, 30)).save(image)
    result = invoke_cli("predict", task, image, "--out", tmp_path / "out", *extra)
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return " ".join(result.stderr.split())


CASES = {
    # task: (shipped files: primary first, the companion second)
    "strabismus": ["rfcnn-lite", "eye-detector"],
    "rop": ["mn-rop", "mn-tr-rop"],
}


@pytest.mark.parametrize("task", sorted(CASES))
def test_tampered_companion_is_refused(task, tmp_path):
    primary = _copy_shipped(task, CASES[task], tmp_path / "w")
    companion = primary.parent / f"{CASES[task][1]}.safetensors"
    _flip_byte(companion)
    said = _predict(tmp_path, task, "--weights", primary)
    assert f"{companion}: SHA-256" in said and "does not match its model card" in said


@pytest.mark.parametrize("task", sorted(CASES))
def test_companion_card_for_another_task_is_refused(task, tmp_path):
    primary = _copy_shipped(task, CASES[task], tmp_path / "w")
    companion = primary.parent / f"{CASES[task][1]}.safetensors"
    _edit_card(companion, task="vessels")
    said = _predict(tmp_path, task, "--weights", primary)
    assert f"{companion}: weights are for task 'vessels', not '{task}'" in said


def test_companion_card_for_another_model_is_refused(tmp_path):
    """strabismus names its detector's model: a card for another model is refused by name;
    rop's stage 2 card naming another architecture does not fit and is refused too."""
    primary = _copy_shipped("strabismus", CASES["strabismus"], tmp_path / "s")
    detector = primary.parent / "eye-detector.safetensors"
    _edit_card(detector, model="rfcnn-lite")
    said = _predict(tmp_path, "strabismus", "--weights", primary)
    assert f"{detector}: weights are for model 'rfcnn-lite', not 'eye-detector'" in said

    primary = _copy_shipped("rop", CASES["rop"], tmp_path / "r")
    stage2 = primary.parent / "mn-tr-rop.safetensors"
    _edit_card(stage2, model="ms-rop")
    said = _predict(tmp_path, "rop", "--weights", primary)
    assert f"{stage2}: weights do not fit the model" in said


@pytest.fixture
def pair(tmp_path):
    """A provider/consumer pair (toymap provides toy_map, toyuse needs it) whose shipped
    weights are copies in ``tmp_path``, the way the vessels task provides its map."""
    folder = toy_pair.write_weights(tmp_path / "weights")
    plugins.reset_registry([("pair", PairPlugin(folder))])
    return folder / "toymap" / "scale.safetensors"


def test_tampered_provider_is_refused(pair, tmp_path):
    _flip_byte(pair)
    said = _predict(tmp_path, "toyuse")
    assert f"{pair}: SHA-256" in said and "does not match its model card" in said


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("task", "toyuse", "weights are for task 'toyuse', not 'toymap'"),
        ("model", "other", "weights are for model 'other', not 'scale'"),
    ],
)
def test_provider_card_naming_another_task_or_model_is_refused(
    pair, tmp_path, field, value, message
):
    _edit_card(pair, **{field: value})
    said = _predict(tmp_path, "toyuse")
    assert f"{pair}: {message}" in said
