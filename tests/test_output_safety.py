"""Output names derived from inputs: never outside ``--out``, never colliding."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eyescan.imaging.imageio import iter_images
from eyescan.inference.predicting import safe_stems
from eyescan.testing import invoke_cli, json_lines

from . import tiny_vessels
from .tiny_vessels import fundus_png

vessels_weights = tiny_vessels.vessels_weights  # the session fixture

#: Path segments an attacker (or an unlucky camera) could produce.
SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "", "/", "\\", "~", "-", ".hidden", "C:", "a" * 300]),
    st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
)


def _inside(out: Path, stem: str) -> bool:
    for name in (f"{stem}.json", f"{stem}_mask.png"):
        target = (out / name).resolve()
        if not target.is_relative_to(out.resolve()):
            return False
    return True


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.lists(SEGMENTS, min_size=1, max_size=4), min_size=1, max_size=6))
def test_stems_stay_inside_out_and_are_unique(paths):
    root = Path("/data/in")
    out = Path("/data/out")
    items = [(Path(str(root) + "/" + "/".join(parts) + ".png"), root) for parts in paths]
    items.append((Path("/etc/passwd.png"), root))  # not under root at all
    stems = [item.stem for item in safe_stems(items)]
    assert all(_inside(out, s) for s in stems)
    assert all(not s.startswith("/") and ".." not in s.split("/") for s in stems)
    assert all(len(part) <= 110 for s in stems for part in s.split("/"))
    assert len({s.lower() for s in stems}) == len(stems)
    assert stems == [item.stem for item in safe_stems(items)]  # deterministic


def test_traversal_names_are_neutralised():
    root = Path("/data/in")
    items = [
        (Path("/data/in/../../etc/cron.d/evil.png"), root),
        (Path("/data/in/sub/..png"), root),
        (Path("/tmp/elsewhere/x.png"), root),
    ]
    assert [i.stem for i in safe_stems(items)] == ["etc/cron.d/evil", "sub", "x"]


def test_collisions_resolved_in_input_order():
    root = Path("/r")
    names = ["a-2.png", "a.jpg", "a.png", "A.tif", "sub/a.png", "sub_a.png", "sub/a.jpg"]
    items = sorted((Path("/r") / n, root) for n in names)
    stems = {str(p.relative_to(root)): i.stem for (p, _), i in zip(items, safe_stems(items))}
    assert stems == {
        "A.tif": "A",
        "a-2.png": "a-2",
        "a.jpg": "a-3",  # "a" is taken (case-insensitively), and so is "a-2"
        "a.png": "a-4",
        "sub/a.jpg": "sub/a",
        "sub/a.png": "sub/a-2",
        "sub_a.png": "sub_a",
    }


def test_same_names_in_subfolders_through_predict(vessels_weights, tmp_path):
    folder = tmp_path / "in"
    for n, name in enumerate(["img.png", "img.jpg", "left/img.png", "right/img.png", "img-2.png"]):
        fundus_png(folder / name, seed=n)
    results = []
    for run in ("first", "second"):
        result = invoke_cli(
            "predict", "vessels", folder, "--weights", vessels_weights,
            "--out", tmp_path / run, "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        results.append({Path(r["input"]).relative_to(folder).as_posix(): r["id"]
                        for r in json_lines(result.stdout)})  # fmt: skip
    assert (
        results[0]
        == results[1]
        == {
            "img-2.png": "img-2",
            "img.jpg": "img",
            "img.png": "img-3",
            "left/img.png": "left/img",
            "right/img.png": "right/img",
        }
    )
    outputs = sorted(p.relative_to(tmp_path / "first").as_posix()
                     for p in (tmp_path / "first").rglob("*.json"))  # fmt: skip
    assert len(outputs) == 5  # one record per input, none overwritten
    assert sorted(os.listdir(tmp_path / "first" / "left")) == [
        "img.json",
        "img_mask.png",
        "img_overlay.png",
        "img_probability.png",
    ]


def test_out_folder_inside_the_input_is_not_read_back(vessels_weights, tmp_path):
    folder = tmp_path / "in"
    fundus_png(folder / "a.png")
    fundus_png(folder / "b.png", seed=1)
    out = folder / "results"
    counts = []
    for _ in range(2):
        result = invoke_cli(
            "predict", "vessels", folder, "--weights", vessels_weights, "--out", out, "--json"
        )
        assert result.exit_code == 0, result.output
        counts.append(len(json_lines(result.stdout)))
    assert counts == [2, 2]
    assert [p for p, _ in iter_images([folder], exclude=out)] == [
        folder / "a.png",
        folder / "b.png",
    ]


def test_unwritable_output_fails_that_image_only(vessels_weights, tmp_path):
    folder = tmp_path / "in"
    fundus_png(folder / "a.png")
    fundus_png(folder / "b.png", seed=1)
    out = tmp_path / "out"
    (out / "a.json").mkdir(parents=True)  # the record of a.png cannot be written
    result = invoke_cli(
        "predict", "vessels", folder, "--weights", vessels_weights, "--out", out, "--json"
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    a, b = json_lines(result.stdout)
    assert a["error"]["code"] == "io_error" and "I/O error" in a["error"]["message"]
    assert b["ok"] and (out / "b.json").is_file()
