"""The vessels task end to end: readers, train → predict → evaluate via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import get_registry, imageio, read_split, splits, synthetic
from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines
from eyescan_vessels.data import DriveReader, manifest_reader

write_drive_layout = synthetic.write_drive_layout
RECIPES = Path(__file__).resolve().parents[1] / "eyescan_vessels" / "recipes"

DRIVE = Path(__file__).resolve().parents[4] / "shared" / "data" / "DRIVE"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SHIPPED = Path(__file__).resolve().parents[1] / "eyescan_vessels" / "weights"
README = Path(__file__).resolve().parents[1] / "README.md"
TINY_RECIPE = {
    "epochs": 2,
    "batch_size": 4,
    "optimizer": "adam",
    "lr": 0.01,
    "patch_size": 32,
    "patches_per_epoch": 16,
    "val_images": 1,
    "model_options": {"width": 4, "depth": 2},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vessels")
    data = write_drive_layout(root / "drive", n_train=3, n_test=2, size=64)
    recipe = root / "recipe.json"
    recipe.write_text(json.dumps(TINY_RECIPE))
    result = invoke_cli(
        "train", "vessels", data, "--config", recipe, "--out", root / "run", "--json"
    )
    assert result.exit_code == 0, result.output
    return data, Path(json_lines(result.stdout)[0]["weights"])


def test_drive_reader_marks_the_splits_of_a_drive_layout(tmp_path):
    data = write_drive_layout(tmp_path, n_train=2, n_test=1, size=48)
    reader = DriveReader()
    assert reader.detect(data)
    samples = reader.read(data)  # every sample, each with its split
    assert [(s.id, s.split) for s in samples] == [
        ("21_training", "train"),
        ("22_training", "train"),
        ("01_test", "test"),
    ]
    assert samples[0].masks["vessels"].name == "21_manual1.gif"
    assert samples[0].fov.name == "21_training_mask.gif"
    assert samples[2].fov.name == "01_test_mask.gif"
    test = read_split(get_registry(), "vessels", data, "test")
    assert [s.id for s in test.samples] == ["01_test"] and test.reader == "drive"
    assert test.info["rule"] == "the data set's own split" and test.info["count"] == 1


@pytest.mark.skipif(not DRIVE.exists(), reason="DRIVE not found at ../shared/data/DRIVE")
def test_drive_reader_marks_the_splits_of_real_drive():
    samples = DriveReader().read(DRIVE)
    train = [s.id for s in samples if s.split == "train"]
    test = [s.id for s in samples if s.split == "test"]
    assert train == [f"{n}_training" for n in range(21, 41)]
    assert test == [f"{n:02d}_test" for n in range(1, 21)]
    assert all(s.fov is not None and s.masks["vessels"].exists() for s in samples)
    registry = get_registry()
    chosen = {k: read_split(registry, "vessels", DRIVE, k).samples for k in ("train", "test")}
    assert not splits.overlap(chosen["train"], chosen["test"])
    # the DRIVE recipes' validation images are DRIVE ids, the last three training images
    # (drive-chase-*.json take theirs from the manifest's "val" rows, chase-*.json CHASE_DB1's
    # child 10, a training child)
    fixed = [json.loads(r.read_text()) for r in RECIPES.glob("*.json")]
    drive = [r for r in fixed if any(v.endswith("_training") for v in r.get("val_ids", []))]
    assert len(drive) >= 2 and all(r["val_ids"] == train[-3:] for r in drive)
    chase = [r for r in fixed if any(v.startswith("Image_") for v in r.get("val_ids", []))]
    assert chase and all(r["val_ids"] == ["Image_10L", "Image_10R"] for r in chase)


def test_drive_masks_read_as_before(tmp_path):
    """0/255 GIFs: the reader's threshold (127) and the automatic one agree."""
    from eyescan_vessels.data import load_sample, mask_threshold

    data = write_drive_layout(tmp_path, n_train=1, n_test=0, size=48)
    sample = DriveReader().read(data)[0]
    loaded = load_sample(sample, mask_threshold(DriveReader()))
    raw = np.asarray(imageio.read_image(sample.masks["vessels"]))[..., 0]
    assert np.array_equal(loaded.vessels, raw > 127) and loaded.vessels.any()
    assert np.array_equal(load_sample(sample).vessels, loaded.vessels)


def test_manifest_reader_marks_splits(tmp_path):
    write_drive_layout(tmp_path, n_train=2, n_test=1, size=48)
    (tmp_path / "m.csv").write_text(
        "image,mask,split\n"
        "training/images/21_training.tif,training/1st_manual/21_manual1.gif,train\n"
        "test/images/01_test.tif,test/1st_manual/01_manual1.gif,test\n"
    )
    samples = manifest_reader().read(tmp_path / "m.csv")
    assert [s.split for s in samples] == ["train", "test"]
    assert samples[1].fov is None  # FOV estimated later
    assert samples[1].image.exists()
    test = read_split(get_registry(), "vessels", tmp_path / "m.csv", "test", reader="manifest")
    assert [s.id for s in test.samples] == ["test/images/01_test"]  # the path: ids never collide


def test_validation_split_by_ids_count_or_marks():
    from eyescan.api import Sample
    from eyescan_vessels.training import validation_split

    samples = [Sample(f"{n}_training", Path(f"{n}.tif"), split="train") for n in range(21, 41)]
    ids = ["38_training", "39_training", "40_training"]
    train, val = validation_split(samples, {"val_ids": ids, "val_images": 3}, seed=0)
    assert [s.id for s in val] == ids and len(train) == 17
    assert [s.id for s in train] == [f"{n}_training" for n in range(21, 38)]  # order kept
    train, val = validation_split(samples, {"val_images": 3}, seed=0)
    assert len(val) == 3 and len(train) == 17 and not splits.overlap(train, val)
    assert validation_split(samples, {"val_images": 3}, seed=0)[1] == val  # seeded
    assert validation_split(samples[:3], {"val_images": 3}, seed=0) == (samples[:3], [])
    samples[0].split = "val"  # the data set's own validation images come first
    assert validation_split(samples, {"val_ids": ids}, seed=0)[1] == [samples[0]]


def test_train_writes_weights_card_and_metrics(tiny_run):
    _, weights = tiny_run
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["task"] == "vessels" and card["model"] == "unet-isam"  # the default
    assert card["model_options"] == {"width": 4, "depth": 2}
    assert card["init"] == []  # from scratch
    assert len(card["sha256"]) == 64
    assert card["training"]["selected_by"] == "val_loss" and "val_loss" in card["training"]
    assert (weights.parent / "metrics.jsonl").exists()


def test_train_never_sees_a_test_image(tiny_run):
    data, weights = tiny_run
    training = json.loads(weights.with_suffix(".json").read_text())["training"]
    assert training["data"]["split"] == "train" and training["data"]["count"] == 3
    seen = set(training["data"]["ids"])
    assert seen == {"21_training", "22_training", "23_training"}
    assert set(training["val_images"]) < seen and training["train_images"] == 2
    test = read_split(get_registry(), "vessels", data, "test").samples
    assert not seen & {s.id for s in test}


def test_train_initialises_from_a_file_and_records_it(tiny_run, tmp_path):
    data, weights = tiny_run
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "epochs": 1, "init": str(weights)}))
    result = invoke_cli(
        "train", "vessels", data, "--config", recipe, "--out", tmp_path / "run", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[0]
    assert summary["selected_by"] == "val_loss" and "best_val_loss" in summary
    card = json.loads(Path(summary["weights"]).with_suffix(".json").read_text())
    sha = json.loads(weights.with_suffix(".json").read_text())["sha256"]
    assert [(i["file"], i["sha256"]) for i in card["init"]] == [(weights.name, sha)]
    assert card["init"][0]["tensors_loaded"] == card["init"][0]["tensors_in_part"]


def test_unknown_augment_key_is_refused(tiny_run, tmp_path):
    data, _ = tiny_run
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({**TINY_RECIPE, "augment": {"rotate": 10}}))
    result = invoke_cli("train", "vessels", data, "--config", recipe, "--out", tmp_path / "r")
    assert result.exit_code != 0 and "rotate" in result.output


def test_train_with_photo_variants_and_camera_augmentation(tiny_run, tmp_path):
    data, _ = tiny_run
    recipe = tmp_path / "recipe.json"
    camera = {"gamma": 0.5, "blur": 1.0, "blur_p": 0.5, "jpeg": 0.5, "scale": [0.8, 1.2]}
    recipe.write_text(
        json.dumps({**TINY_RECIPE, "photo_variants": {"copies": 2, "p": 0.9}, "augment": camera})
    )
    result = invoke_cli(
        "train", "vessels", data, "--config", recipe, "--out", tmp_path / "r", "--json"
    )
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TINY_RECIPE, "photo_variants": {"copy": 2}}))
    refused = invoke_cli("train", "vessels", data, "--config", bad, "--out", tmp_path / "b")
    assert refused.exit_code != 0 and "photo_variants" in refused.output


def test_predict_writes_outputs_and_valid_json(tiny_run, tmp_path):
    data, weights = tiny_run
    out = tmp_path / "out"
    result = invoke_cli(
        "predict", "vessels", data / "test" / "images", "--weights", weights, "--out", out, "--json"
    )
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert len(records) == 2
    for record in records:
        assert validate_prediction(record) == []
        assert 0.0 <= record["outputs"]["vessel_fraction"] <= 1.0
        for name in ("probability", "mask", "overlay"):
            assert (out / record["files"][name]).exists()
    probability = imageio.read_image(out / records[0]["files"]["probability"])
    assert probability.shape[:2] == (64, 64)
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_evaluate_reports_fov_metrics(tiny_run):
    data, weights = tiny_run
    result = invoke_cli("evaluate", "vessels", data, "--weights", weights, "--json")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [line["kind"] for line in lines] == ["image", "image", "summary"]
    summary = lines[-1]
    assert summary["region"] == "inside FOV" and summary["images"] == 2
    assert 0 <= summary["auc_roc"] <= 1
    assert summary["data_split"]["ids"] == ["01_test", "02_test"]
    assert summary["data_split"]["split"] == "test" and summary["data_split"]["reader"] == "drive"


def test_evaluate_gives_bootstrap_intervals_around_the_point_estimates(tmp_path):
    """Intervals over images for every headline metric; the pooled values stay exact."""
    from types import SimpleNamespace

    import torch

    from eyescan_vessels.evaluation import HEADLINE, evaluate, fov_metrics

    data = write_drive_layout(tmp_path, n_train=0, n_test=6, size=48)
    # a "model" whose scores spread over [0, 1]: dark green (vessels) → high probability
    darkness = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        darkness.weight.copy_(torch.tensor([0.0, -2.0, 0.0]).view(1, 3, 1, 1))
        darkness.bias.fill_(-1.0)
    model = SimpleNamespace(module=torch.nn.Sequential(darkness).eval())  # stride: 16
    result = evaluate(model, data, {})
    summary = result["summary"]
    assert set(summary["ci95"]) == set(HEADLINE) and "bootstrap" in summary["ci_method"]
    for key in HEADLINE:
        low, high = summary["ci95"][key]
        assert low <= summary[key] <= high, (key, low, summary[key], high)
        assert low < high
    rows = result["images"]
    assert [r["id"] for r in rows] == [f"{n:02d}_test" for n in range(1, 7)]
    assert summary["data_split"]["count"] == 6
    single = evaluate(model, data, {})["summary"]  # deterministic, intervals too
    assert single["ci95"] == summary["ci95"] and single["auc_roc"] == summary["auc_roc"]
    assert set(fov_metrics(np.zeros((2, 2)), np.eye(2, dtype=bool), np.ones((2, 2), bool))) >= {
        *HEADLINE
    }


def test_evaluate_of_unsplit_manifest_uses_the_hold_out(tiny_run, tmp_path):
    """A manifest without a split column is scored on the core's hold-out, never whole."""
    data, weights = tiny_run
    rows = [
        f"training/images/{n}_training.tif,training/1st_manual/{n}_manual1.gif"
        for n in (21, 22, 23)
    ] + [f"test/images/0{n}_test.tif,test/1st_manual/0{n}_manual1.gif" for n in (1, 2)]
    manifest = data / "all.csv"
    manifest.write_text("image,mask\n" + "\n".join(rows) + "\n")
    result = invoke_cli("evaluate", "vessels", manifest, "--weights", weights, "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    assert summary["data_split"]["count"] == summary["images"] == 1  # 20 % of 5
    assert "hold-out" in summary["data_split"]["rule"]
    train = read_split(get_registry(), "vessels", manifest, "train").samples
    assert set(summary["data_split"]["ids"]).isdisjoint(s.id for s in train)


def test_broken_image_is_reported_and_skipped(tiny_run, tmp_path):
    data, weights = tiny_run
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    good = imageio.read_image(data / "test" / "images" / "01_test.tif")
    from PIL import Image

    Image.fromarray(good).save(folder / "good.png")
    result = invoke_cli(
        "predict", "vessels", folder, "--weights", weights, "--out", tmp_path / "out", "--json"
    )
    assert result.exit_code == 1
    records = {r["id"]: r for r in json_lines(result.stdout)}
    assert records["good"]["ok"] and not records["broken"]["ok"]
    assert records["broken"]["error"]["code"] == "unreadable_image"
    assert "broken.jpg" in records["broken"]["error"]["message"]
    assert "Traceback" not in result.output


def test_shipped_weights_predict_the_bundled_examples(tmp_path):
    if not (SHIPPED / "unet.safetensors").exists():
        pytest.skip("no shipped weights yet")
    result = invoke_cli("predict", "vessels", EXAMPLES, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    for record in json_lines(result.stdout):
        assert 0.03 < record["outputs"]["vessel_fraction"] < 0.25, record


@pytest.mark.skipif(not DRIVE.exists(), reason="DRIVE not found at ../shared/data/DRIVE")
@pytest.mark.parametrize("model", sorted(p.stem for p in SHIPPED.glob("*.safetensors")))
def test_shipped_weights_reproduce_their_card_and_readme_row(model):
    """``evaluate --model M`` gives the card's DRIVE-test numbers, and the README quotes them.

    Measured the README's way: the 20 test images, inside the FOV, pooled, threshold 0.5.
    Every shipped model also clears the core issue's bar (AUC ≥ 0.97, F1 ≥ 0.78).
    """
    card = json.loads((SHIPPED / f"{model}.json").read_text())
    result = invoke_cli("evaluate", "vessels", DRIVE, "--model", model, "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    assert summary["images"] == 20
    assert summary["data_split"]["ids"] == [f"{n:02d}_test" for n in range(1, 21)]
    assert summary["auc_roc"] >= 0.97 and summary["f1"] >= 0.78, summary
    for key, (low, high) in summary["ci95"].items():
        assert low <= summary[key] <= high, key
    keys = ["auc_roc", "f1", "accuracy", "sensitivity", "specificity"]
    for key in keys:
        assert summary[key] == pytest.approx(card["metrics"][key], abs=5e-5), key
    quoted = " | ".join(f"{card['metrics'][key]:.4f}" for key in keys)
    for readme in (README, README.parents[2] / "README.md"):
        rows = [line for line in readme.read_text().splitlines() if line.startswith(f"| `{model}`")]
        assert any(quoted in line for line in rows), f"{readme} has no `{model}` row with {quoted}"
        keys_ci = [*keys, "auc_pr"]
        intervals = " | ".join("{:.4f}–{:.4f}".format(*summary["ci95"][k]) for k in keys_ci)
        assert any(intervals in line for line in rows), f"{readme}: `{model}` CIs {intervals}"


CHASE = DRIVE.parent / "CHASE_DB1"


def _measured_on(data_set: str) -> list[str]:
    """Shipped models whose card records a test evaluation on ``data_set``."""
    return sorted(
        p.stem
        for p in SHIPPED.glob("*.safetensors")
        if f"{data_set}/test"
        in json.loads(p.with_suffix(".json").read_text()).get("evaluations", {})
    )


@pytest.mark.skipif(not CHASE.exists(), reason="CHASE_DB1 not found at ../shared/data/CHASE_DB1")
@pytest.mark.parametrize("model", _measured_on("CHASE_DB1"))
def test_shipped_weights_reproduce_their_chase_card_and_readme_row(model):
    """``evaluate`` on CHASE_DB1's 8 test images (FOV estimated) gives the card's numbers,
    and the README's CHASE_DB1 table quotes them."""
    card = json.loads((SHIPPED / f"{model}.json").read_text())["evaluations"]["CHASE_DB1/test"]
    result = invoke_cli("evaluate", "vessels", CHASE, "--model", model, "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    assert summary["images"] == 8 and summary["data_split"]["ids"][0] == "Image_11L"
    keys = ["auc_roc", "f1", "accuracy", "sensitivity", "specificity"]
    for key in keys:
        assert summary[key] == pytest.approx(card[key], abs=5e-5), key
    quoted = " | ".join(f"{card[key]:.4f}" for key in keys)
    rows = [line for line in README.read_text().splitlines() if line.startswith(f"| `{model}`")]
    assert any(quoted in line for line in rows), f"README has no `{model}` CHASE row {quoted}"


def _kept_runs() -> list[tuple[str, str]]:
    """(weights file under ``weights/SUBDIR/``, data set) for every test evaluation its card
    records: the comparison models the README's cross-data-set tables quote."""
    found = []
    for path in sorted(SHIPPED.glob("*/*.safetensors")):
        card = json.loads(path.with_suffix(".json").read_text())
        for key in sorted(card.get("evaluations", {})):
            name, split = key.split("/")
            if split == "test" and name in ("DRIVE", "CHASE_DB1"):
                found.append((str(path.relative_to(SHIPPED)), name))
    return found


@pytest.mark.parametrize(("weights", "data_set"), _kept_runs())
def test_kept_comparison_models_reproduce_their_cross_data_set_rows(weights, data_set):
    """The DRIVE-only, CHASE_DB1-only and earlier DRIVE + CHASE_DB1 models (``weights/*/``):
    ``evaluate --weights`` gives the card's numbers and the README quotes them with their
    intervals, as robustness.py --cross prints them."""
    data = DRIVE.parent / data_set
    if not data.exists():
        pytest.skip(f"{data_set} not found at {data}")
    path = SHIPPED / weights
    card = json.loads(path.with_suffix(".json").read_text())["evaluations"][f"{data_set}/test"]
    result = invoke_cli("evaluate", "vessels", data, "--weights", path, "--json")
    assert result.exit_code == 0, result.output
    summary = json_lines(result.stdout)[-1]
    for key in ("auc_roc", "f1", "sensitivity"):
        assert summary[key] == pytest.approx(card[key], abs=5e-5), key
    cells = [
        "{:.4f} [{:.4f}–{:.4f}]".format(summary[k], *summary["ci95"][k]) for k in ("auc_roc", "f1")
    ]
    quoted = f"| {data_set} | test | {summary['images']} | {cells[0]} | {cells[1]} |"
    assert quoted in README.read_text(), f"README has no {weights} row {quoted}"


def test_fov_is_estimated_without_mask():
    from eyescan_vessels.task import VesselsTask

    sample = synthetic.make_fundus(128, seed=5)
    item = VesselsTask().preprocess(sample.image, "x")
    assert (item["fov"] == sample.fov).mean() > 0.97
    assert item["image"].dtype == np.float32


def test_photo_variants_share_the_photos_masks(tmp_path):
    from eyescan.api import augment
    from eyescan_vessels.data import load_sample, load_with_variants

    data = write_drive_layout(tmp_path, n_train=1, n_test=0, size=64)
    sample = DriveReader().read(data)[0]
    make = augment.PhotoVariants(copies=2).make
    loaded = load_with_variants(sample, fov_diameter=48, variants=lambda photo: make(photo, seed=0))
    assert len(loaded) == 3
    first = loaded[0]
    assert np.array_equal(first.image, load_sample(sample, fov_diameter=48).image)
    assert not np.array_equal(loaded[1].original, first.original)
    for copy in loaded[1:]:
        assert copy.image.shape == first.image.shape
        assert np.array_equal(copy.vessels, first.vessels) and np.array_equal(copy.fov, first.fov)
