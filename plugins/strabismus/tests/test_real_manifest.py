"""``scripts/real_manifest.py``: the manifest of strabismus-faces (labels + reviewed boxes,
sub-types, byte-identical copies grouped and train copies of test photographs dropped),
on a made-up folder of coloured rectangles (no faces) and on the real set when present."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from eyescan.api import get_registry, imageio, read_split, splits
from eyescan.testing import load_script
from eyescan_strabismus.data import BoxManifestReader

PLUGIN = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "strabismus-faces"


def _script():
    return load_script(PLUGIN / "scripts" / "real_manifest.py")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


LABELS = {"11": "normal", "12": "exotropia", "13": "esotropia", "21": "esotropia"}


def _made_up_set(root: Path) -> tuple[Path, Path]:
    """A strabismus-faces-like folder of plain coloured pictures, and its box CSV.

    ``train/11/c.png`` has the bytes of ``test/11/a.png`` (dropped);
    ``train/12/d.png`` and ``train/12/e.png`` are identical (kept, one patient).
    """
    data = root / "faces"
    files = {
        "test/11/a.png": (200, 30, 30),
        "test/21/b.png": (30, 200, 30),
        "train/11/c.png": (200, 30, 30),
        "train/12/d.png": (30, 30, 200),
        "train/12/e.png": (30, 30, 200),
        "train/13/f.png": (120, 120, 0),
        "train/11/g.png": (0, 120, 120),
    }
    labels, boxes = [], []
    for path, colour in files.items():
        split, code, _ = path.split("/")
        image = np.zeros((48, 64, 3), np.uint8)
        image[12:30, 8:56] = colour  # a coloured band where the "eyes" would be
        imageio.save_png(data / path, image)
        binary = "normal" if code == "11" else "strabismus"
        labels.append([path, split, code, LABELS[code], binary, 64, 48])
        boxes.append([path, split, binary, 8, 12, 56, 30, "eyes"])
    for name, header, rows in (
        (
            data / "labels.csv",
            ["path", "split", "code", "label", "binary", "width", "height"],
            labels,
        ),
        (root / "boxes.csv", ["path", "split", "label", "x0", "y0", "x1", "y1", "method"], boxes),
    ):
        with open(name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    return data, root / "boxes.csv"


def test_made_up_set_drops_train_copies_of_test_images(tmp_path, capsys):
    script = _script()
    data, boxes = _made_up_set(tmp_path)
    out = tmp_path / "elsewhere" / "manifest.csv"  # not beside the data: absolute paths
    assert script.main([str(data), str(out), "--boxes", str(boxes)]) == 0
    assert "kept test/11/a, dropped train/11/c" in capsys.readouterr().err
    rows = {r["id"]: r for r in _rows(out)}
    assert set(rows) == {
        "test/11/a",
        "test/21/b",
        "train/12/d",
        "train/12/e",
        "train/13/f",
        "train/11/g",
    }
    assert all(Path(r["image"]).is_absolute() for r in rows.values())
    assert rows["test/21/b"]["subtype"] == "esotropia" and rows["train/12/d"]["subtype"] == (
        "exotropia"
    )
    assert rows["train/11/g"]["subtype"] == "normal" and rows["train/11/g"]["label"] == "normal"
    assert rows["train/12/d"]["patient"] == rows["train/12/e"]["patient"] != ""  # identical
    assert rows["test/11/a"]["patient"].startswith("identical:")
    assert rows["train/13/f"]["patient"] == "" and rows["train/13/f"]["xmax"] == "56"
    (dropped,) = _rows(script.dropped_path(out))
    assert dropped["id"] == "train/11/c" and dropped["same_as"] == "test/11/a"

    # the plugin's manifest reader takes it as written: ids, subtypes, splits, patients
    samples = {s.id: s for s in BoxManifestReader().read(out)}
    assert samples["test/21/b"].subtype == "esotropia" and samples["test/21/b"].label == 1
    assert samples["train/12/d"].boxes == [(8.0, 12.0, 56.0, 30.0)]
    assert samples["test/11/a"].image == (data / "test/11/a.png").resolve()
    registry = get_registry()
    train = read_split(registry, "strabismus", out, "train", reader="manifest")
    test = read_split(registry, "strabismus", out, "test", reader="manifest")
    assert len(train.samples) == 4 and len(test.samples) == 2
    assert not splits.overlap(train.samples, test.samples)


def test_a_photograph_without_a_box_is_an_error(tmp_path, capsys):
    script = _script()
    data, boxes = _made_up_set(tmp_path)
    lines = boxes.read_text().splitlines()
    boxes.write_text("\n".join(line for line in lines if "g.png" not in line) + "\n")
    assert script.main([str(data), str(tmp_path / "m.csv"), "--boxes", str(boxes)]) == 2
    assert "no eye-region box for train/11/g.png" in capsys.readouterr().err


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/strabismus-faces is absent")
def test_real_set_manifest(tmp_path):
    script = _script()
    manifest, dropped, notes = script.build(DATA)
    assert len(manifest) == 279 and len(dropped) == 6 and len(notes) == 6
    by_split = {s: [r for r in manifest if r["split"] == s] for s in ("train", "test")}
    assert len(by_split["train"]) == 199 and len(by_split["test"]) == 80  # test set whole
    assert all(d["split"] == "train" and d["same_as"].startswith("test/") for d in dropped)
    test_subtypes = [r["subtype"] for r in by_split["test"]]
    assert {s: test_subtypes.count(s) for s in set(test_subtypes)} == {
        "normal": 46,
        "esotropia": 20,
        "exotropia": 14,
    }
    assert sum(r["patient"].startswith("identical:") for r in manifest) == 6
    script.write(tmp_path / "m.csv", manifest, dropped)
    samples = BoxManifestReader().read(tmp_path / "m.csv")
    assert all(len(s.boxes) == 1 and s.subtype for s in samples)
    train_ids = {s.id for s in samples if s.split == "train"}
    assert not train_ids & {d["id"] for d in dropped}


def test_faces_reader_is_detected_by_its_labels_csv(tmp_path):
    from eyescan.api import find_reader, get_registry
    from eyescan_strabismus.faces import FacesReader

    (tmp_path / "labels.csv").write_text("path,split,code,right,left,label,binary,size\n")
    assert find_reader(get_registry(), "strabismus", tmp_path)[0] == "strabismus-faces"
    other = tmp_path / "other"
    other.mkdir()
    (other / "labels.csv").write_text("image,label\n")  # the folders layout's labels
    assert not FacesReader().detect(other)
