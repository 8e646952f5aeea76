"""Readers of the public vessel sets as distributed: CHASE_DB1, STARE, HRF.

Each is tried on a tiny layout written here (synthetic fundus images, masks in
the data set's own file forms) and CHASE_DB1 also on the real copy when present.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import DataError, find_reader, get_registry, imageio, read_split, synthetic
from eyescan_vessels.data import ChaseReader, HrfReader, StareReader, gunzipped

CHASE = Path(__file__).resolve().parents[4] / "shared" / "data" / "CHASE_DB1"
SIZE = 48


def _fundus(seed: int) -> synthetic.SyntheticFundus:
    return synthetic.make_fundus(SIZE, seed=seed)


def _save(array: np.ndarray, path: Path, mode: str | None = None, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    image = image.convert(mode) if mode else image
    if compress:
        plain = path.with_suffix("")  # name.ppm.gz -> name.ppm
        image.save(plain)
        path.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    else:
        image.save(path)
    return path


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- CHASE_DB1 -----------------------------------------------------------------------------

CHILDREN = (1, 10, 11, 14)  # both sides of the seed's split boundary


def write_chase(root: Path, flat: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CHASE_DB1 layout: flat (the official zip) or images/, 1stHO/, 2ndHO/ folders
    (plus a third-party fov_mask_unofficial/). Returns id -> (1st, 2nd observer mask)."""
    truth = {}
    for n, child in enumerate(CHILDREN):
        for k, eye in enumerate("LR"):
            stem = f"Image_{child:02d}{eye}"
            fundus = _fundus(2 * n + k)
            first = fundus.vessels
            second = first.copy()
            second[:, : SIZE // 2] = False  # the second observer differs
            folder = (lambda sub: root) if flat else (lambda sub: root / sub)
            _save(fundus.image, folder("images") / f"{stem}.jpg")
            _save(first, folder("1stHO") / f"{stem}_1stHO.png", "1")
            _save(second, folder("2ndHO") / f"{stem}_2ndHO.png", "1")
            if not flat:
                _save(
                    fundus.fov.astype(np.uint8) * 255, root / "fov_mask_unofficial" / f"{stem}.png"
                )
            truth[stem] = (first, second)
    return truth


@pytest.mark.parametrize("flat", [True, False], ids=["flat-zip", "folders"])
def test_chase_reader_splits_children_and_observers(tmp_path, flat):
    truth = write_chase(tmp_path, flat)
    reader = ChaseReader()
    assert reader.detect(tmp_path)
    samples = reader.read(tmp_path)
    assert [s.id for s in samples] == sorted(truth)
    split = {s.id: s.split for s in samples}
    assert split["Image_01L"] == split["Image_10R"] == "train"
    assert split["Image_11L"] == split["Image_14R"] == "test"
    assert {s.id: s.patient for s in samples}["Image_10L"] == "chase-10"
    assert len({s.patient for s in samples}) == len(CHILDREN)  # both eyes: one child
    assert all(s.fov is None for s in samples)  # unofficial FOV masks ignored: estimated
    for annotator, index in ((None, 0), (1, 0), (2, 1)):
        for sample in reader.read(tmp_path, annotator=annotator):
            assert sample.masks["vessels"].name.endswith(("_1stHO.png", "_2ndHO.png")[index])
            mask = imageio.read_mask(sample.masks["vessels"], reader.mask_threshold)
            assert np.array_equal(mask, truth[sample.id][index])
    with pytest.raises(DataError, match="annotator 3"):
        reader.read(tmp_path, annotator=3)


def test_chase_unofficial_fov_only_on_request(tmp_path):
    write_chase(tmp_path, flat=False)
    samples = ChaseReader(unofficial_fov=True).read(tmp_path)
    assert all(s.fov and s.fov.parent.name == "fov_mask_unofficial" for s in samples)


def test_chase_split_keeps_train_and_test_apart(tmp_path):
    write_chase(tmp_path, flat=True)
    registry = get_registry()
    train = read_split(registry, "vessels", tmp_path, "train")
    test = read_split(registry, "vessels", tmp_path, "test", annotator=2)
    assert train.reader == test.reader == "chase"
    assert train.info["rule"] == "the data set's own split"
    assert {s.id for s in test.samples} == {"Image_11L", "Image_11R", "Image_14L", "Image_14R"}
    assert not {s.image for s in train.samples} & {s.image for s in test.samples}
    assert not {s.patient for s in train.samples} & {s.patient for s in test.samples}


def test_chase_missing_label_is_one_line(tmp_path):
    write_chase(tmp_path, flat=False)
    (tmp_path / "2ndHO" / "Image_11L_2ndHO.png").unlink()
    with pytest.raises(DataError, match="Image_11L_2ndHO.png is missing"):
        ChaseReader().read(tmp_path, annotator=2)


@pytest.mark.skipif(not CHASE.is_dir(), reason="CHASE_DB1 not in ../shared/data")
def test_chase_reader_on_the_real_set():
    registry = get_registry()
    assert find_reader(registry, "vessels", CHASE)[0] == "chase"
    train = read_split(registry, "vessels", CHASE, "train")
    test = read_split(registry, "vessels", CHASE, "test")
    assert (train.info["count"], test.info["count"]) == (20, 8)
    assert [s.id for s in test.samples] == [f"Image_{n}{e}" for n in range(11, 15) for e in "LR"]
    assert train.samples[0].id == "Image_01L" and train.samples[-1].id == "Image_10R"
    assert all(s.fov is None for s in train.samples + test.samples)
    assert all(s.masks["vessels"].parent.name == "1stHO" for s in test.samples)
    second = read_split(registry, "vessels", CHASE, "test", annotator=2)
    assert [s.masks["vessels"].name for s in second.samples][0] == "Image_11L_2ndHO.png"
    assert second.info["annotator"] == 2
    mask = imageio.read_mask(second.samples[0].masks["vessels"], ChaseReader.mask_threshold)
    assert mask.shape == (960, 999) and 0.03 < mask.mean() < 0.2


# --- STARE ---------------------------------------------------------------------------------

STARE_IDS = ("im0001", "im0002", "im0044", "im0077", "im0081")


def write_stare(root: Path, folders: bool) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """STARE: im0001.ppm[.gz] images, .ah/.vk.ppm[.gz] labels (flat or in the tar folders);
    one extra image without labels. Returns id -> (image, ah mask, vk mask)."""
    where = {
        kind: root / name if folders else root
        for kind, name in (("im", "stare-images"), ("ah", "labels-ah"), ("vk", "labels-vk"))
    }
    truth = {}
    for n, stem in enumerate(STARE_IDS + ("im0003",)):
        fundus = _fundus(20 + n)
        gz = n % 2 == 0  # half gzipped, as distributed; half unpacked by the user
        suffix = ".ppm.gz" if gz else ".ppm"
        _save(fundus.image, where["im"] / f"{stem}{suffix}", compress=gz)
        if stem == "im0003":
            continue  # STARE has 400 images, only some labelled
        ah = fundus.vessels
        vk = np.roll(ah, 1, axis=1)
        _save(ah.astype(np.uint8) * 255, where["ah"] / f"{stem}.ah{suffix}", "RGB", gz)
        vk_suffix = ".ppm" if gz else ".ppm.gz"  # the other observer's the other way
        _save(vk.astype(np.uint8) * 255, where["vk"] / f"{stem}.vk{vk_suffix}", "RGB", not gz)
        truth[stem] = (fundus.image, ah, vk)
    return truth


@pytest.mark.parametrize("folders", [False, True], ids=["flat", "tar-folders"])
def test_stare_reader_gz_and_observers(tmp_path, folders):
    data = tmp_path / "stare"
    truth = write_stare(data, folders)
    before = _files(data)
    reader = StareReader(cache=tmp_path / "cache")
    assert reader.detect(data)
    samples = reader.read(data)
    assert [s.id for s in samples] == list(STARE_IDS)  # labelled images only
    assert all(s.split is None and s.fov is None and s.patient is None for s in samples)
    for annotator, index in ((None, 1), (1, 1), (2, 2)):
        for sample in reader.read(data, annotator=annotator):
            image, *masks = truth[sample.id]
            assert sample.image.suffix == ".ppm"  # gz unpacked to a readable path
            assert np.array_equal(imageio.read_image(sample.image), image)
            mask = imageio.read_mask(sample.masks["vessels"], reader.mask_threshold)
            assert np.array_equal(mask, masks[index - 1])
            assert (".ah." if index == 1 else ".vk.") in sample.masks["vessels"].name
    assert _files(data) == before  # nothing written into the data folder
    assert any(p.suffix == ".ppm" for p in (tmp_path / "cache").rglob("*"))
    with pytest.raises(DataError, match="annotator 3"):
        reader.read(data, annotator=3)


def test_stare_hold_out_never_overlaps(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the default cache
    data = tmp_path / "stare"
    write_stare(data, folders=True)
    registry = get_registry()
    train = read_split(registry, "vessels", data, "train")
    test = read_split(registry, "vessels", data, "test")
    assert train.reader == "stare" and "hold-out" in test.info["rule"]
    assert test.samples and len(train.samples) + len(test.samples) == len(STARE_IDS)
    assert not {s.id for s in train.samples} & {s.id for s in test.samples}
    cached = [p for p in (tmp_path / "tmp" / "eyescan-cache" / "gunzip").rglob("*.ppm")]
    assert cached and all(p.is_file() for p in cached)


def test_gunzipped_caches_by_content_and_refuses_junk(tmp_path):
    source = tmp_path / "a.ppm.gz"
    source.write_bytes(gzip.compress(b"one"))
    first = gunzipped(source, tmp_path / "cache")
    assert first.read_bytes() == b"one" and gunzipped(source, tmp_path / "cache") == first
    source.write_bytes(gzip.compress(b"two"))  # a changed file: a new entry
    assert gunzipped(source, tmp_path / "cache").read_bytes() == b"two"
    plain = tmp_path / "b.ppm"
    assert gunzipped(plain) == plain
    (tmp_path / "bad.ppm.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot unpack"):
        gunzipped(tmp_path / "bad.ppm.gz", tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.part"))


# --- HRF -----------------------------------------------------------------------------------


def write_hrf(root: Path) -> dict[str, np.ndarray]:
    """HRF: images/NN_x.jpg, manual1/NN_x.tif (grey-level, anti-aliased), mask/ for some."""
    truth = {}
    for n, stem in enumerate(("01_h", "01_g", "01_dr", "02_h", "02_dr")):
        fundus = _fundus(40 + n)
        grey = fundus.vessels.astype(np.uint8) * 230
        edge = np.roll(fundus.vessels, 1, axis=0) & ~fundus.vessels
        grey[edge] = 90  # anti-aliased rim: below the half level, not vessel
        grey[np.roll(edge, 1, axis=1) & fundus.vessels] = 180
        suffix = ".JPG" if stem == "02_dr" else ".jpg"  # HRF mixes the case
        _save(fundus.image, root / "images" / f"{stem}{suffix}")
        _save(grey, root / "manual1" / f"{stem}.tif")
        if n < 3:
            _save(fundus.fov.astype(np.uint8) * 255, root / "mask" / f"{stem}_mask.tif", "RGB")
        truth[stem] = fundus.vessels
    return truth


def test_hrf_reader_grey_masks_fov_and_no_split(tmp_path):
    truth = write_hrf(tmp_path)
    reader = HrfReader()
    assert reader.detect(tmp_path)
    samples = reader.read(tmp_path)
    assert sorted(s.id for s in samples) == sorted(truth)
    assert all(s.split is None and s.patient is None for s in samples)
    fov = {s.id: s.fov for s in samples}
    assert fov["01_h"].name == "01_h_mask.tif" and fov["02_h"] is None
    for sample in samples:
        mask = imageio.read_mask(sample.masks["vessels"], reader.mask_threshold)
        assert np.array_equal(mask, truth[sample.id])
    registry = get_registry()
    train = read_split(registry, "vessels", tmp_path, "train")
    test = read_split(registry, "vessels", tmp_path, "test")
    assert train.reader == "hrf" and test.samples
    assert not {s.id for s in train.samples} & {s.id for s in test.samples}


# --- detection -----------------------------------------------------------------------------


def test_each_reader_detects_only_its_own_layout(tmp_path):
    layouts = {name: tmp_path / name for name in ("chase-flat", "chase-folders", "stare", "hrf")}
    write_chase(layouts["chase-flat"], flat=True)
    write_chase(layouts["chase-folders"], flat=False)
    write_stare(layouts["stare"], folders=True)
    write_hrf(layouts["hrf"])
    layouts["drive"] = synthetic.write_drive_layout(
        tmp_path / "drive", n_train=1, n_test=1, size=32
    )
    readers = {"chase": ChaseReader(), "stare": StareReader(), "hrf": HrfReader()}
    registry = get_registry()
    for name, path in layouts.items():
        expected = name.split("-")[0]
        assert find_reader(registry, "vessels", path)[0] == expected
        for other, reader in readers.items():
            assert reader.detect(path) == (other == expected), (other, name)
    csv = tmp_path / "set.csv"
    csv.write_text("image,mask\n")
    assert not any(r.detect(csv) for r in readers.values())
