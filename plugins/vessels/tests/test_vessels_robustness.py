"""The robustness / cross-data-set script, smoke-run on a tiny synthetic DRIVE layout."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import imageio, synthetic
from eyescan.testing import invoke_cli, json_lines

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "robustness.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("vessels_robustness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


robustness = _load_script()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_recipe):
    """A synthetic DRIVE layout (2 test images of 64 px) and 1-epoch weights trained on it."""
    root = tmp_path_factory.mktemp("robustness")
    data = synthetic.write_drive_layout(root / "drive", n_train=3, n_test=2, size=64)
    recipe = root / "recipe.json"
    recipe.write_text(json.dumps(tiny_recipe))
    result = invoke_cli(
        "train", "vessels", data, "--config", recipe, "--out", root / "run", "--json"
    )
    assert result.exit_code == 0, result.output
    return data, Path(json_lines(result.stdout)[0]["weights"])


def _values(path: Path) -> set[int]:
    from PIL import Image

    return set(np.unique(np.asarray(Image.open(path).convert("L"))).tolist())


@pytest.mark.parametrize("name", robustness.VARIANTS)
def test_variants_have_the_right_sizes_and_binary_labels(tiny, tmp_path, name):
    data, _ = tiny
    out = robustness.make_variant(data, name, tmp_path / robustness.slug(name))
    factor = robustness.SCALES.get(name, 1.0)
    for image, manual, mask in robustness.drive_test(data):
        original = imageio.read_image(image)
        changed = imageio.read_image(out / "test" / "images" / image.name)
        assert changed.shape == (round(64 * factor), round(64 * factor), 3)
        if factor == 1.0:
            assert not np.array_equal(changed, original)
        for label, folder in ((manual, "1st_manual"), (mask, "mask")):
            written = out / "test" / folder / label.name
            assert _values(written) <= {0, 255}
            shape = imageio.read_mask(written).shape
            assert shape == changed.shape[:2]
            if factor == 1.0:
                assert written.read_bytes() == label.read_bytes()
        if factor != 1.0:  # the labels are the original ones, resized
            resized = imageio.read_mask(out / "test" / "1st_manual" / manual.name)
            assert abs(resized.mean() - imageio.read_mask(manual).mean()) < 0.02


def test_table_has_every_variant_row_and_leaves_no_files(tiny, tmp_path, capsys, monkeypatch):
    data, weights = tiny
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the default work folder's parent
    rows = robustness.main([str(data), "--weights", str(weights)])
    table = capsys.readouterr().out.splitlines()
    assert list(tmp_path.iterdir()) == []  # the temporary variants are gone
    names = [line.split("|")[1].strip() for line in table[2:]]
    assert names == [robustness.UNCHANGED, *robustness.VARIANTS]
    assert [r["variant"] for r in rows] == names
    for r in rows:
        assert r["images"] == 2 and 0 <= r["min_image_sensitivity"] <= r["sensitivity"] + 1e-9
        low, high = r["auc_roc_ci95"]
        # resampled AUCs come from 8192-bin score histograms, and this untrained model's
        # scores bunch in a narrow band, so only the interval's order is checked here
        # (containment: tests/test_bootstrap.py and the real-DRIVE test)
        assert 0 <= low <= high <= 1
    assert rows[0]["delta_auc"] is None
    for r in rows[1:]:
        assert r["delta_auc"] == pytest.approx(r["auc_roc"] - rows[0]["auc_roc"])
        assert r["goal_met"] == (abs(r["delta_auc"]) <= 0.01)
        assert f"{r['delta_auc']:+.4f}" in table[names.index(r["variant"]) + 2]


def test_json_rows_and_kept_work_folder(tiny, tmp_path, capsys):
    data, weights = tiny
    work = tmp_path / "work"
    args = [str(data), "--weights", str(weights), "--work", str(work), "--json"]
    robustness.main([*args, "--variants", "scale 3×,gamma 0.6"])
    lines = json_lines(capsys.readouterr().out)
    assert [line["variant"] for line in lines] == ["unchanged", "scale 3×", "gamma 0.6"]
    assert sorted(p.name for p in work.iterdir()) == ["gamma-0.6", "scale-3x"]
    assert lines[1]["data"] == str(work.resolve() / "scale-3x")


def test_cross_mode_counts_images_below_the_sensitivity_floor(tiny, capsys):
    data, weights = tiny
    rows = robustness.main(["--cross", str(data), "--weights", str(weights)])
    table = capsys.readouterr().out.splitlines()
    assert len(rows) == 1 and len(table) == 3
    r = rows[0]
    assert r["split"] == "test" and r["images"] == 2
    assert r["goal_met"] == (r["auc_roc"] >= 0.95 and not r["images_below_sensitivity_floor"])
    assert f"| {len(r['images_below_sensitivity_floor'])}" in table[2]


def test_work_folder_inside_the_repository_is_refused(tiny):
    data, _ = tiny
    with pytest.raises(SystemExit, match="inside the repository"):
        robustness.main([str(data), "--work", str(robustness.ROOT / "scratch")])
    assert not (robustness.ROOT / "scratch").exists()


def test_validation_mode_varies_the_validation_images_not_the_test_ones(
    tiny, tmp_path, capsys, monkeypatch
):
    data, weights = tiny
    monkeypatch.setattr(robustness, "VALIDATION", ("training", ("22", "23")))  # 3-image layout
    work = tmp_path / "work"
    args = [str(data), "--weights", str(weights), "--work", str(work), "--validation", "--json"]
    robustness.main([*args, "--variants", "JPEG quality 40"])
    lines = json_lines(capsys.readouterr().out)
    assert [line["variant"] for line in lines] == ["unchanged", "JPEG quality 40"]
    assert all(line["images"] == 2 for line in lines)
    for name in ("unchanged", "jpeg-quality-40"):
        written = sorted(p.name for p in (work / "validation" / name / "test" / "images").iterdir())
        assert written == ["22_training.tif", "23_training.tif"]
    unchanged = work / "validation" / "unchanged" / "test" / "images" / "22_training.tif"
    original = data / "training" / "images" / "22_training.tif"
    assert np.array_equal(imageio.read_image(unchanged), imageio.read_image(original))
