"""Several tasks in one run, one task using another's output, and the predict options
every task shares (--threshold, --fov, --skip-ungradable, the input hash), through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from eyescan.plugins import registry as plugins
from eyescan.reports.records import SCREENING_SCHEMA, validate_prediction
from eyescan.testing import json_lines

from . import toy_pair
from .toy_pair import MapTask, PairPlugin


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):  # fundus-like: a bright textured disc on black
        image = np.zeros((64, 64, 3), np.uint8)
        yy, xx = np.mgrid[:64, :64]
        disc = (yy - 32) ** 2 + (xx - 32) ** 2 < 30**2
        image[disc] = rng.integers(60, 200, (int(disc.sum()), 3))
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


@pytest.fixture
def pair(tmp_path):
    toy_pair.CALLS.clear()
    folder = toy_pair.write_weights(tmp_path / "weights")
    plugins.reset_registry([("pair", PairPlugin(folder))])
    return folder


def test_consumer_alone_gets_the_providers_output(invoke, pair, photos, tmp_path):
    result = invoke("predict", "toyuse", photos, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["ok"] for r in records] == [True, True]
    for record in records:
        assert not validate_prediction(record), validate_prediction(record)
        gray = np.asarray(Image.open(record["input"])).mean(axis=2) / 255.0
        assert record["outputs"]["map_mean"] == pytest.approx(gray.mean(), abs=1e-6)
        (companion,) = record["companions"]
        assert companion["role"] == "toy_map from toymap" and companion["sha256"]
    assert toy_pair.CALLS == {"toymap": 2, "toyuse": 2}


def test_multi_task_run_runs_the_provider_once_per_photo(invoke, pair, photos, tmp_path):
    out = tmp_path / "out"
    result = invoke("predict", "toyuse,toymap", photos, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert toy_pair.CALLS == {"toymap": 2, "toyuse": 2}  # not 4: the map was handed over
    records = json_lines(result.stdout)
    assert [r["schema"] for r in records] == [SCREENING_SCHEMA] * 2
    first = records[0]
    assert list(first["tasks"]) == ["toymap", "toyuse"]  # provider first
    assert first["input_sha256"] and first["ok"] and first["error"] is None
    assert first["tasks"]["toymap"]["files"] == {"gray": "toymap/a_gray.png"}
    assert (out / first["tasks"]["toymap"]["files"]["gray"]).exists()
    assert first["quality"] is not None  # fundus tasks: the gate ran
    saved = json_lines((out / "predictions.jsonl").read_text())
    assert [r["id"] for r in saved] == ["a", "b"]
    own = json_lines((out / "toymap" / "predictions.jsonl").read_text())
    assert own[0]["files"] == {"gray": "a_gray.png"} and not validate_prediction(own[0])
    table = invoke("predict", "toyuse,toymap", photos, "--out", tmp_path / "o2")
    assert table.exit_code == 0 and "score" in table.stdout and "map_mean" in table.stdout


def test_a_failing_task_keeps_the_other_tasks_results(invoke, pair, photos, tmp_path):
    (photos / "fail.png").write_bytes((photos / "a.png").read_bytes())
    result = invoke("predict", "toymap,toyuse", photos, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 1
    records = {r["id"]: r for r in json_lines(result.stdout)}
    bad = records["fail"]
    assert not bad["ok"] and bad["tasks"]["toymap"]["ok"]
    assert "toyuse fail" in bad["tasks"]["toyuse"]["error"]["message"]
    assert records["a"]["ok"] and records["b"]["ok"]


def test_unreadable_photo_is_one_record_with_every_task_failed(invoke, pair, photos, tmp_path):
    (photos / "broken.png").write_bytes(b"not a png")
    result = invoke("predict", "toymap,toyuse", photos, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 1
    records = {r["id"]: r for r in json_lines(result.stdout)}
    broken = records["broken"]
    assert broken["error"]["code"] == "image_read_error" or "decode" in broken["error"]["message"]
    assert set(broken["tasks"]) == {"toymap", "toyuse"}
    assert not any(r["ok"] for r in broken["tasks"].values())


def test_required_need_without_a_provider_is_an_error(invoke, tmp_path, photos):
    folder = toy_pair.write_weights(tmp_path / "weights")
    plugins.reset_registry([("pair", PairPlugin(folder, (toy_pair.UseTask,)))])
    result = invoke("predict", "toyuse", photos, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "needs 'toy_map', which no installed task provides" in result.output


def test_threshold_is_checked_passed_and_recorded(invoke, pair, photos, tmp_path):
    def run(*extra):
        return invoke("predict", "toyuse", photos, "--out", tmp_path / "out", "--json", *extra)

    low, high = (
        json_lines(run("--threshold", "0.01").stdout),
        json_lines(run("--threshold", "0.99").stdout),
    )
    assert [r["outputs"]["above"] for r in low] == [True, True]
    assert [r["outputs"]["above"] for r in high] == [False, False]
    assert low[0]["options"]["threshold"] == 0.01
    for bad in ("0", "1.5", "x"):
        result = run("--threshold", bad)
        assert result.exit_code == 2 and "--threshold" in result.output
    several = invoke("predict", "toymap,toyuse", photos, "--threshold", "0.3")
    assert several.exit_code == 2 and "TASK=VALUE" in several.output
    per = invoke("predict", "toymap,toyuse", photos, "--out", tmp_path / "o", "--json",
                 "--threshold", "toyuse=0.99")  # fmt: skip
    (record, _) = json_lines(per.stdout)
    assert record["tasks"]["toyuse"]["options"]["threshold"] == 0.99
    assert record["tasks"]["toymap"]["options"]["threshold"] is None
    assert not record["tasks"]["toyuse"]["outputs"]["above"]


def test_fov_masks_by_name_or_one_file(invoke, pair, photos, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    half = np.zeros((64, 64), np.uint8)
    half[:, :32] = 255
    Image.fromarray(half).save(masks / "a_mask.png")
    Image.fromarray(half).save(masks / "b.gif")
    result = invoke(
        "predict", "toyuse", photos, "--out", tmp_path / "out", "--json", "--fov", masks
    )
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    for record in records:
        gray = np.asarray(Image.open(record["input"])).mean(axis=2) / 255.0
        assert record["outputs"]["fov_given"]
        assert record["outputs"]["map_mean"] == pytest.approx(gray[:, :32].mean(), abs=1e-6)
        assert record["options"]["fov"] == str(masks)
    (masks / "b.gif").unlink()
    missing = invoke(
        "predict", "toyuse", photos, "--out", tmp_path / "o2", "--json", "--fov", masks
    )
    assert missing.exit_code == 1
    failed = [r for r in json_lines(missing.stdout) if not r["ok"]]
    assert len(failed) == 1 and "no FOV mask" in failed[0]["error"]["message"]
    small = tmp_path / "small.png"
    Image.fromarray(half[:10, :10]).save(small)
    wrong = invoke("predict", "toyuse", photos, "--out", tmp_path / "o3", "--json", "--fov", small)
    assert wrong.exit_code == 1 and "10x10, the photo 64x64" in wrong.stdout
    noted = invoke("predict", "toymap", photos, "--out", tmp_path / "o4", "--fov", small)
    assert "toymap do not use a field-of-view mask" in noted.stderr


def test_skip_ungradable_abstains_and_default_flags(invoke, pair, photos, tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photos / "black.png")
    flagged = json_lines(
        invoke("predict", "toymap", photos, "--out", tmp_path / "o1", "--json").stdout
    )
    black = next(r for r in flagged if r["id"] == "black")
    assert black["quality"]["gradable"] is False and black["quality"]["reasons"]
    assert black["outputs"]  # by default the task still ran, its result flagged
    skipped = invoke(
        "predict", "toymap,toyuse", photos, "--out", tmp_path / "o2", "--json", "--skip-ungradable"
    )
    assert skipped.exit_code == 0, skipped.output
    black = next(r for r in json_lines(skipped.stdout) if r["id"] == "black")
    for part in black["tasks"].values():
        assert part["ok"] and part["abstained"] == "ungradable" and part["outputs"] == {}


def test_resume_reuses_records_until_the_input_changes(invoke, pair, photos, tmp_path):
    out = tmp_path / "out"
    assert invoke("predict", "toymap,toyuse", photos, "--out", out).exit_code == 0
    toy_pair.CALLS.clear()
    again = invoke("predict", "toymap,toyuse", photos, "--out", out, "--resume", "--json")
    assert again.exit_code == 0 and toy_pair.CALLS == {}
    assert all(p.get("resumed") for r in json_lines(again.stdout) for p in r["tasks"].values())
    image = np.asarray(Image.open(photos / "a.png")).copy()
    image[0, 0] = 255
    Image.fromarray(image).save(photos / "a.png")  # same name, other bytes
    toy_pair.CALLS.clear()
    third = json_lines(
        invoke("predict", "toymap,toyuse", photos, "--out", out, "--resume", "--json").stdout
    )
    assert toy_pair.CALLS == {"toymap": 1, "toyuse": 1}
    redone = next(r for r in third if r["id"] == "a")
    assert not any(p.get("resumed") for p in redone["tasks"].values())
    assert (
        redone["input_sha256"]
        == json.loads((out / "toymap" / "a.json").read_text())["input_sha256"]
    )


def test_per_task_model_option_and_help(invoke, pair, photos, tmp_path):
    bad = invoke("predict", "toymap,toyuse", photos, "--model", "scale")
    assert bad.exit_code == 2 and "TASK=VALUE" in bad.output
    good = invoke(
        "predict", "toymap,toyuse", photos, "--out", tmp_path / "o", "--model", "toymap=scale"
    )
    assert good.exit_code == 0, good.output
    shown = invoke("predict", "toymap,toyuse", "--help")
    assert "toymap options" in shown.stdout and "toyuse options" in shown.stdout


def test_shipped_fundus_tasks_together_on_the_example(invoke, tmp_path):
    """The README's screening run on one bundled photo: every installed fundus task."""
    from pathlib import Path

    from eyescan.plugins.registry import get_registry

    names = [n for n in ("vessels", "drgrade", "redlesion") if n in get_registry().tasks]
    if len(names) < 2:
        pytest.skip("needs two of the fundus plugins")
    photo = Path(__file__).resolve().parents[1] / "examples" / "haggstrom_fundus_left_584.jpg"
    result = invoke("predict", ",".join(names), photo, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    assert list(record["tasks"]) == names and record["ok"]
    assert record["quality"]["gradable"], record["quality"]
    assert MapTask.name not in record["tasks"]


def test_screening_report_from_predict_and_from_eyescan_report(invoke, pair, photos, tmp_path):
    out = tmp_path / "out"
    (photos / "fail.png").write_bytes((photos / "a.png").read_bytes())
    result = invoke("predict", "toymap,toyuse", photos, "--out", out, "--report", out / "r.html")
    assert result.exit_code == 1  # the failing photo; the report is still written
    page = (out / "r.html").read_text()
    assert "eyescan screening report" in page and "toyuse.map_mean" in page
    assert "toyuse fail" in page and page.count('class="image-row') == 3
    again = invoke("report", out)
    assert again.exit_code == 0, again.output
    assert "toymap.score" in (out / "report.html").read_text()


def test_prob16_and_threshold_through_the_cli_on_a_shipped_task(invoke, tmp_path):
    """--prob16 writes 16-bit probability maps; --threshold reaches a real task's record."""
    from pathlib import Path

    from eyescan.plugins.registry import get_registry

    if "vessels" not in get_registry().tasks:
        pytest.skip("needs the vessels plugin")
    photo = Path(__file__).resolve().parents[1] / "examples" / "haggstrom_fundus_left_584.jpg"
    out = tmp_path / "out"
    result = invoke("predict", "vessels", photo, "--out", out, "--json", "--prob16",
                    "--threshold", "0.7")  # fmt: skip
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    assert record["options"]["prob16"] and record["outputs"]["threshold"] == 0.7
    with Image.open(out / record["files"]["probability"]) as image:
        assert image.mode.startswith("I")  # 16-bit
