"""The scripts that measure and ship the real-data model: image-level AUCs on IDRiD part
B, the README tables and the data sources written into the cards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eyescan.testing import load_script

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str):
    return load_script(SCRIPTS / f"{name}.py")


def _grading_copy(root: Path, grades: dict[str, int], red: dict[str, bool]) -> Path:
    """A part-B-shaped folder: the test labels CSV and CODRAS label files."""
    truth = root / "2. Groundtruths"
    truth.mkdir(parents=True)
    rows = ["Image name,Retinopathy grade,Risk of macular edema "]
    rows += [f"{image},{grade},0" for image, grade in grades.items()]
    (truth / "b. IDRiD_Disease Grading_Testing Labels.csv").write_text("\n".join(rows) + "\n")
    boxes = root / "3. Lesion boxes (CODRAS, YOLO)"
    (boxes / "b. Testing Set").mkdir(parents=True)
    (boxes / "classes.txt").write_text("optic_disc\nhard_exudates\nhaemorrhage\n")
    for image, has_red in red.items():
        lines = ["0 0.5 0.5 0.1 0.1"] + (["2 0.3 0.3 0.02 0.02"] if has_red else [])
        (boxes / "b. Testing Set" / f"{image}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_image_level_aucs_from_grades_and_codras_boxes(tmp_path, capsys):
    grades = {"IDRiD_001": 0, "IDRiD_002": 0, "IDRiD_003": 1, "IDRiD_004": 2, "IDRiD_005": 3}
    red = {"IDRiD_001": False, "IDRiD_002": True, "IDRiD_003": True, "IDRiD_004": True}
    folder = _grading_copy(tmp_path / "grading", grades, red)  # 005 has no box file
    ma = {"IDRiD_001": 0.1, "IDRiD_002": 0.2, "IDRiD_003": 0.9, "IDRiD_004": 0.8, "IDRiD_005": 0.7}
    he = {"IDRiD_001": 0.1, "IDRiD_002": 0.6, "IDRiD_003": 0.3, "IDRiD_004": 0.9, "IDRiD_005": 0.8}
    records = [{"ok": True, "input": f"x/{i}.jpg", "outputs": {"ma_score": ma[i],
                "he_score": he[i]}} for i in grades]  # fmt: skip
    records.append({"ok": False, "input": "x/IDRiD_006.jpg", "outputs": {}})  # failed: left out
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert _script("image_level").main([str(predictions), str(folder)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 5
    assert out["ma_image_auc"]["auc"] == 1.0  # grade ≥ 1 ranked above grade 0
    assert (out["ma_image_auc"]["positive"], out["ma_image_auc"]["negative"]) == (3, 2)
    # grade ≥ 2 (004, 005) vs 001–003: 0.9, 0.8 above 0.1, 0.6, 0.3
    assert out["he_image_auc"]["auc"] == 1.0 and out["he_image_auc"]["positive"] == 2
    # red boxes: only the 4 images with a label file; 001 (0.1) below 002–004
    assert out["red_image_auc"]["auc"] == 1.0
    assert out["red_image_auc"]["positive"] + out["red_image_auc"]["negative"] == 4
    low, high = out["ma_image_auc"]["ci95"]
    assert low <= 1.0 <= high


def _summary(value: float) -> dict:
    keys = ("ma_froc", "he_froc", "ma_lesion_recall", "he_image_auc")
    s = {"kind": "summary", "images": 27, **dict.fromkeys(keys, value)}
    s.update(ma_froc_lesions=100, he_froc_lesions=50, ma_froc_false_positives=270)
    s.update({f"ma_froc_at_{r}_fp": value for r in ("0.125", "0.25", "0.5", "1", "2", "4", "8")})
    s.update({f"he_froc_at_{r}_fp": value for r in ("0.125", "1", "8")})
    s["ci95"] = {"ma_froc": [value - 0.1, value + 0.1]}
    return s


def test_readme_tables_print_every_table(tmp_path, capsys):
    folds = []
    for stage, base in (("stage1", 0.2), ("stage2", 0.3)):
        for k in range(5):
            folds.append({"kind": "fold", "fold": k, "stage": stage, "ma_images": 11,
                          "ma_auc_pr": base + 0.01 * k, "he_auc_pr": base,
                          "he_auc_pr_1072": base})  # fmt: skip
    stat = {"mean": 0.3, "sd": 0.02, "folds": 5}
    stage = {"ma_auc_pr": stat, "he_auc_pr": stat, "he_auc_pr_1072": stat,
             "ma_pooled_auc_pr": 0.31, "he_pooled_auc_pr": 0.32, "ma_threshold": 0.4,
             "he_threshold": 0.5}  # fmt: skip
    cv = {"kind": "cv", "stages": {"stage1": stage, "stage2": stage},
          "thresholds": {"ma": 0.4, "he": 0.5}}  # fmt: skip
    (tmp_path / "cv.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*folds, cv]))
    for name, value in (("stage1", 0.25), ("stage2", 0.35)):
        (tmp_path / f"test-{name}.jsonl").write_text(json.dumps(_summary(value)) + "\n")
    auc = {"auc": 0.9, "ci95": [0.8, 0.95], "positive": 60, "negative": 43}
    image = {"images": 100, "stage": "stage1", "excluded": ["IDRiD_088"], "ma_image_auc": auc,
             "he_image_auc": auc, "red_image_auc": auc}  # fmt: skip
    (tmp_path / "image-level.json").write_text(json.dumps(image))
    assert _script("readme_tables").main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    cells = " | ".join(["0.300 ± 0.020"] * 3 + ["0.310", "0.320"])
    assert f"| two-stage (+ MSE) | {cells} |" in out
    assert "| 4 | 11 | 0.240 | 0.340 | 0.200 | 0.300 | 0.200 | 0.300 |" in out
    assert "| two-stage (+ MSE) | 27 | 0.350 (0.250–0.450) | 0.350 | 100 | 50 | 10.0 |" in out
    assert "| ma_image_auc | 0.900 (0.800–0.950) | 60 | 43 |" in out
    assert "Official test set 55–81 (27 images" in out
    assert "left out as part A training images: IDRiD_088), one-stage" in out


def test_card_sources_inherit_the_backbone_terms():
    card = {"training": {"data": {"count": 54}}}
    aptos = {"source": "aptos2019", "images": 2402, "terms": "non-commercial research use only"}
    backbone = {"file": "mobilenet_v3_small.safetensors", "training": {"data_sources": [aptos]}}
    sources = _script("card_sources").sources(card, backbone)
    assert sources[0]["source"] == "idrid-part-a" and sources[0]["images"] == 54
    assert "CC BY 4.0" in sources[0]["terms"]
    assert sources[1]["source"] == "aptos2019" and "non-commercial" in sources[1]["terms"]
    assert "encoder initialisation" in sources[1]["via"]


@pytest.mark.parametrize("values, sd", [([0.2, 0.4], 0.14142135623730953), ([0.3], None)])
def test_cv_mean_sd(values, sd):
    out = _script("cv_measure").mean_sd(values)
    assert out["mean"] == pytest.approx(sum(values) / len(values))
    assert out["sd"] == (pytest.approx(sd) if sd else None)


def test_image_level_leaves_out_the_photographs_the_model_trained_on(tmp_path, capsys):
    grades = {"IDRiD_001": 0, "IDRiD_002": 1, "IDRiD_003": 2}
    folder = _grading_copy(tmp_path / "grading", grades, dict.fromkeys(grades, True))
    records = [{"ok": True, "input": f"{i}.jpg", "outputs": {"ma_score": 0.5, "he_score": 0.5}}
               for i in grades]  # fmt: skip
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in records))
    same = tmp_path / "same.json"
    same.write_text(json.dumps({"pairs": [{"a": "IDRiD_09", "b": "IDRiD_003", "score": 0.99}]}))
    args = [str(predictions), str(folder), "--exclude", str(same)]
    assert _script("image_level").main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 2 and out["excluded"] == ["IDRiD_003"]


def test_same_photos_matches_a_resized_copy_and_not_another_photo(tmp_path):
    """A made-up fundus-like disc with random 'vessels', and a resized, re-saved copy."""
    from PIL import Image

    def photo(seed: int, size: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        yy, xx = np.mgrid[:256, :256]
        disc = (yy - 128) ** 2 + (xx - 128) ** 2 < 120**2
        noise = r.normal(0, 1, (32, 32))
        texture = np.asarray(Image.fromarray(noise.astype(np.float32)).resize((256, 256)))
        img = np.zeros((256, 256, 3), np.uint8)
        img[..., 0] = np.clip(150 + 40 * texture, 0, 255) * disc
        img[..., 1] = np.clip(80 + 30 * texture, 0, 255) * disc
        return np.asarray(Image.fromarray(img).resize((size, size)))

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    Image.fromarray(photo(1, 256)).save(a / "x.png")
    Image.fromarray(photo(1, 400)).save(b / "x_big.jpg", quality=90)
    for seed in (2, 3, 4):
        Image.fromarray(photo(seed, 300)).save(b / f"other{seed}.jpg")
    same = _script("same_photos")
    pairs = same.same_photos(same.images(a, "*"), same.images(b, "*"))
    assert [(p["a"], p["b"]) for p in pairs] == [("x", "x_big")]
