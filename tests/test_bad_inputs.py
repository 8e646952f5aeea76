"""A corpus of bad inputs mixed with good images through ``eyescan predict``.

Every good image gets its result (record + files), every bad one a JSON
record with an error code and a one-line message; exit code 1; no traceback
unless ``--debug``. The corpus is generated in ``tmp_path`` (nothing is
stored in the repository).
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.errors import ImageReadError
from eyescan.imaging import imageio
from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines

from . import tiny_vessels
from .tiny_vessels import eyescan_process, fundus_png

vessels_weights = tiny_vessels.vessels_weights  # the session fixture

OK = "ok"
UNREADABLE = "unreadable_image"


def _fundus(size: int = 48, seed: int = 1) -> np.ndarray:
    from eyescan.data.synthetic import make_fundus

    return make_fundus(size, seed=seed).image


def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A 69-byte PNG whose header declares ``width``×``height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


# -- the corpus: name -> (writer, expected outcome, what it is) -------------------


def _save(array: np.ndarray, **options: object) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(array).save(path, **options)


def _convert(mode: str, array: np.ndarray | None = None) -> Callable[[Path], None]:
    return lambda path: (
        Image.fromarray(_fundus() if array is None else array).convert(mode).save(path)
    )


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _exif_rotated(path: Path) -> None:
    image = Image.fromarray(_fundus()[:, :40])  # 48 high, 40 wide; displayed rotated 90°
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif)


def _rgb16_tiff(path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(path, _fundus().astype(np.uint16) * 257, photometric="rgb")


def _locked(path: Path) -> None:
    Image.fromarray(_fundus()).save(path)
    os.chmod(path, 0)


def _symlink(target: str) -> Callable[[Path], None]:
    return lambda path: os.symlink(target, path)


GOOD = _fundus()
CORPUS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "good_a.png": (_save(GOOD), OK, "good PNG"),
    "good_b.jpg": (_save(GOOD, quality=90), OK, "good JPEG"),
    "zero.png": (_bytes(b""), UNREADABLE, "zero-byte file"),
    "truncated.jpg": (
        _bytes(_encoded(GOOD, "JPEG")[: len(_encoded(GOOD, "JPEG")) // 2]),
        UNREADABLE,
        "truncated JPEG",
    ),
    "truncated.png": (
        _bytes(_encoded(GOOD, "PNG")[: len(_encoded(GOOD, "PNG")) // 2]),
        UNREADABLE,
        "truncated PNG",
    ),
    "text.jpg": (_bytes(b"this is a text file, not a JPEG\n"), UNREADABLE, "text named .jpg"),
    "bomb.png": (_bytes(bomb_png(100_000, 100_000)), UNREADABLE, "10 gigapixel bomb"),
    "bomb_small.png": (_bytes(bomb_png(21_000, 21_000)), UNREADABLE, "441 megapixel bomb"),
    "grey16.tif": (_save(GOOD[..., 1].astype(np.uint16) * 257), OK, "16-bit greyscale TIFF"),
    "rgb16.tif": (_rgb16_tiff, OK, "16-bit RGB TIFF"),
    "float.tif": (
        _save(np.where(GOOD[..., 0] > 100, np.nan, GOOD[..., 0]).astype(np.float32)),
        OK,
        "32-bit float TIFF with NaN",
    ),
    "cmyk.jpg": (_convert("CMYK"), OK, "CMYK JPEG"),
    "palette.gif": (_convert("P"), OK, "palette GIF"),
    "grey.png": (_convert("L"), OK, "greyscale PNG"),
    "rgba.png": (_convert("RGBA"), OK, "RGBA PNG"),
    "exif_rotated.jpg": (_exif_rotated, OK, "EXIF orientation 6"),
    "tiny.png": (_save(GOOD[:8, :8]), OK, "8x8 image"),
    "wide.jpg": (_save(_fundus(1100, seed=2)[:160]), OK, "1100 px wide (tiled inference)"),
    "locked.png": (_locked, "locked", "no read permission"),
    "selfloop.png": (_symlink("selfloop.png"), UNREADABLE, "symlink to itself"),
    "dangling.png": (_symlink("nowhere.png"), UNREADABLE, "dangling symlink"),
    "fifo.png": (lambda path: os.mkfifo(path), UNREADABLE, "named pipe (would block)"),
    "markup[bold].jpg": (_bytes(b"GIF89a"), UNREADABLE, "rich markup in the name"),
}
#: Non-UTF-8 names (bytes): a good image and a bad one.
BYTES_NAMES: dict[bytes, tuple[Callable[[Path], None], str, str]] = {
    b"caf\xe9.png": (_save(GOOD), OK, "Latin-1 byte in the name"),
    b"bad\xff\xfe.jpg": (_bytes(b"\xff\xd8\xff garbage"), UNREADABLE, "non-UTF-8 name, bad JPEG"),
}


def build_corpus(folder: Path) -> dict[str, str]:
    """Write the corpus into ``folder``; return ``{input path: expected outcome}``."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    for name, (write, outcome, _) in CORPUS.items():
        write(folder / name)
        expected[str(folder / name)] = outcome
    for raw, (write, outcome, _) in BYTES_NAMES.items():
        path = Path(os.fsdecode(os.fsencode(folder) + b"/" + raw))
        write(path)
        expected[str(path)] = outcome
    os.symlink(".", folder / "loop")  # a symlink loop in the folder
    locked = str(folder / "locked.png")
    expected[locked] = OK if os.access(locked, os.R_OK) else UNREADABLE  # root reads all
    return expected


def test_corpus_through_predict(vessels_weights, tmp_path, capsys):
    folder = tmp_path / "mixed"
    expected = build_corpus(folder)
    out = tmp_path / "out"
    process = eyescan_process(
        "predict", "vessels", folder, "--weights", vessels_weights, "--out", out, "--json"
    )
    stdout, stderr = (s.decode("utf-8", "backslashreplace") for s in process.communicate(None, 120))
    records = {r["input"]: r for r in json_lines(stdout)}
    crashes, lost, wrong = [], [], []
    if process.returncode != 1 or "Traceback" in stderr:
        crashes.append(f"exit code {process.returncode}; stderr: {stderr[-2000:]}")
    for path, outcome in expected.items():
        record = records.get(path)
        if record is None:
            crashes.append(f"{path}: no record")
            continue
        assert validate_prediction(record) == [], record
        if outcome == OK:
            files = [out / f for f in record["files"].values()]
            if not record["ok"] or len(files) != 3 or not all(f.is_file() for f in files):
                lost.append(f"{path}: {record['error']}")
            elif not (out / f"{record['id']}.json").is_file():
                lost.append(f"{path}: no per-image JSON")
        else:
            error = record["error"] or {}
            message = error.get("message", "")
            if record["ok"] or error.get("code") != outcome:
                wrong.append(f"{path}: {record}")
            if "\n" in message or not message.startswith(path):
                crashes.append(f"{path}: message is not one line naming the file: {message!r}")
            saved = out / f"{record['id']}.json"
            if not saved.is_file() or json.loads(saved.read_text())["ok"] is not False:
                lost.append(f"{path}: error record not saved beside the results")
    assert set(records) == set(expected), "every input once, the loop folder not walked twice"
    bad = sum(outcome != OK for outcome in expected.values())
    with capsys.disabled():
        print(
            f"\n[bad inputs] bad inputs tried: {bad}, good inputs: {len(expected) - bad}, "
            f"crashes: {len(crashes)}, results lost: {len(lost)}, misclassified: {len(wrong)}"
        )
    assert crashes == [] and lost == [] and wrong == []
    assert len(stderr.strip().splitlines()) <= bad + 2  # one line per failure (+ summary)
    # EXIF orientation applied: stored 48 high × 40 wide, upright 40 × 48.
    rotated = records[str(folder / "exif_rotated.jpg")]["outputs"]
    assert (rotated["height"], rotated["width"]) == (40, 48)
    assert records[str(folder / "tiny.png")]["outputs"]["height"] == 8
    # Every output file stays inside --out.
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())


def test_error_messages_name_the_problem(tmp_path):
    build_corpus(tmp_path)
    messages = {
        "zero.png": "empty file",
        "truncated.jpg": "cannot decode image",
        "truncated.png": "cannot decode image",
        "text.jpg": "cannot decode image",
        "bomb.png": "image too large",
        "bomb_small.png": "image too large",
        "selfloop.png": "symbolic link loop",
        "dangling.png": "file not found",
        "fifo.png": "not a regular file",
    }
    for name, text in messages.items():
        with pytest.raises(ImageReadError, match=text) as caught:
            imageio.read_image(tmp_path / name)
        assert str(caught.value).startswith(str(tmp_path / name))
        assert "\n" not in str(caught.value)


def test_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    """The declared size is checked on the header: no pixel buffer is ever allocated."""
    from PIL import ImageFile

    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(30_000, 20_000))  # 600 Mpx: below PIL's own hard limit

    def no_decoding(self):
        raise AssertionError("decoded a decompression bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageReadError, match="30000x20000 pixels"):
        imageio.read_image(path)


def test_permission_denied_is_a_clear_error(tmp_path, monkeypatch):
    """Root reads every file, so the mapping is also checked with a simulated refusal."""
    from PIL import Image as PILImage

    path = fundus_png(tmp_path / "locked.png")
    os.chmod(path, 0)
    if os.access(path, os.R_OK):

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(PILImage, "open", refuse)
    with pytest.raises(ImageReadError, match="locked.png: permission denied"):
        imageio.read_image(path)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def test_traceback_only_with_debug(vessels_weights, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "text[bold].jpg").write_text("not an image")  # rich markup in the name
    fundus_png(tmp_path / "in" / "good.png")
    args = ["predict", "vessels", tmp_path / "in", "--weights", vessels_weights]
    quiet = invoke_cli(*args, "--out", tmp_path / "a")
    assert quiet.exit_code == 1
    assert "Traceback" not in quiet.stderr
    assert "text[bold].jpg: cannot decode image" in quiet.stderr  # printed literally
    loud = invoke_cli(*args, "--out", tmp_path / "b", "--json", "--debug")
    assert loud.exit_code == 1
    assert "Traceback" in loud.stderr
    records = {Path(r["input"]).name: r for r in json_lines(loud.stdout)}
    assert "Traceback" in records["text[bold].jpg"]["error"]["traceback"]
    assert records["good.png"]["ok"]
