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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.errors import ImageReadError
from eyescan.imaging import imageio
from eyescan.reports.records import validate_prediction
from eyescan.testing import invoke_cli, json_lines

from . import figures, tiny_vessels
from .tiny_vessels import eyescan_process, fundus_png

vessels_weights = tiny_vessels.vessels_weights  # the session fixture

OK = "ok"
UNREADABLE = "unreadable_image"
UNSUITABLE = "unsuitable_image"


@dataclass(frozen=True)
class Sized:
    """The outcome of a decodable ``width``×``height`` image: a result for a task whose
    ``min_side``/``max_aspect`` it fits, else ``unsuitable_image``."""

    width: int
    height: int

    def outcome(self, min_side: int, max_aspect: float | None) -> str:
        short, long = sorted((self.width, self.height))
        fits = short >= min_side and (not max_aspect or long <= max_aspect * short)
        return OK if fits else UNSUITABLE


def expected_outcome(outcome: str | Sized, task: object) -> str:
    """``outcome`` for ``task`` (its ``min_side`` and ``max_aspect``)."""
    if isinstance(outcome, Sized):
        return outcome.outcome(task.min_side, task.max_aspect)
    return outcome


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


def _raw_png(width: int, height: int, depth: int, colour: int, pixels: np.ndarray) -> bytes:
    """A PNG written chunk by chunk (PIL cannot write 16-bit colour), ``pixels`` as stored."""
    rows = np.ascontiguousarray(pixels).reshape(height, -1) if height else []
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _png16(channels: int) -> Callable[[Path], None]:
    """A 16-bit-per-channel PNG: RGB (48-bit) or RGBA (64-bit, opaque)."""
    colour = {3: 2, 4: 6}[channels]

    def write(path: Path) -> None:
        pixels = _fundus().astype(">u2") * 257
        if channels == 4:
            pixels = np.concatenate([pixels, np.full((48, 48, 1), 65535, ">u2")], axis=2)
        path.write_bytes(_raw_png(48, 48, 16, colour, pixels))

    return write


def _tiff(array: np.ndarray, **options: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        tifffile = pytest.importorskip("tifffile")
        tifffile.imwrite(path, array, **options)

    return write


def _pages(path: Path) -> None:
    first, second = (Image.fromarray(_fundus(seed=s)) for s in (1, 2))
    first.save(path, save_all=True, append_images=[second])


def _animated(path: Path) -> None:
    frames = [Image.fromarray(_fundus(seed=s)).convert("P") for s in (1, 2, 3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _bad_exif(path: Path) -> None:
    """A JPEG whose EXIF block is garbage (orientation unreadable: the image is kept)."""
    jpeg = _encoded(GOOD, "JPEG")
    app1 = b"Exif\0\0" + b"MM\0\x2a\xff\xff\xff\xff" + b"\x13" * 40
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:])


def _corrupt_middle(data: bytes) -> bytes:
    """``data`` with a run of bytes in its middle overwritten."""
    middle = len(data) // 2
    return data[:middle] + b"\x00\xff" * 64 + data[middle + 128 :]


def _stripe(path: Path) -> None:
    """A black frame with one bright 4-pixel-wide vertical stripe (a thin "field of view")."""
    image = np.zeros((256, 256, 3), np.uint8)
    image[:, 126:130] = (200, 90, 40)
    Image.fromarray(image).save(path)


def _in_folder(name: str, array: np.ndarray) -> Callable[[Path], None]:
    """A folder called like an image (``x.png``) holding an image ``name``."""

    def write(path: Path) -> None:
        path.mkdir()
        Image.fromarray(array).save(path / name)

    return write


def _sized(width: int, height: int) -> Callable[[Path], None]:
    return _save(np.resize(_fundus(64), (height, width, 3)).astype(np.uint8))


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
    "tiny.png": (_save(GOOD[:8, :8]), Sized(8, 8), "8x8 image"),
    "wide.jpg": (
        _save(_fundus(1100, seed=2)[:160]),
        Sized(1100, 160),
        "1100 px wide (tiled inference)",
    ),
    "locked.png": (_locked, "locked", "no read permission"),
    "selfloop.png": (_symlink("selfloop.png"), UNREADABLE, "symlink to itself"),
    "dangling.png": (_symlink("nowhere.png"), UNREADABLE, "dangling symlink"),
    "fifo.png": (lambda path: os.mkfifo(path), UNREADABLE, "named pipe (would block)"),
    "markup[bold].jpg": (_bytes(b"GIF89a"), UNREADABLE, "rich markup in the name"),
    # odd inputs added in reliability round two (issue 25)
    "rgb16.png": (_png16(3), OK, "48-bit RGB PNG"),
    "rgba16.png": (_png16(4), OK, "64-bit RGBA PNG"),
    "pages.tif": (_pages, OK, "two-page TIFF (first page)"),
    "two_channel.tif": (
        _tiff(
            np.stack([GOOD[..., 0], GOOD[..., 1]], axis=2),
            photometric="minisblack",
            planarconfig="contig",
        ),
        OK,
        "two-channel TIFF",
    ),
    "rgb16.ppm": (
        _bytes(b"P6\n48 48\n65535\n" + (GOOD.astype(">u2") * 257).tobytes()),
        OK,
        "16-bit PPM",
    ),
    "float64.tif": (_tiff(np.random.default_rng(1).random((32, 32))), UNREADABLE, "float64 TIFF"),
    "zero_width.png": (
        _bytes(_raw_png(0, 48, 8, 2, np.zeros((0, 0, 3), np.uint8))),
        UNREADABLE,
        "PNG declaring 0 x 48 pixels",
    ),
    "grey16.png": (_save(GOOD[..., 1].astype(np.uint16) * 257), OK, "16-bit greyscale PNG"),
    "bilevel.png": (_convert("1"), OK, "1-bit PNG"),
    "grey_alpha.png": (_convert("LA"), OK, "greyscale + alpha PNG"),
    "animated.gif": (_animated, OK, "animated GIF (first frame)"),
    "progressive.jpg": (_save(GOOD, progressive=True), OK, "progressive JPEG"),
    "bad_exif.jpg": (_bad_exif, OK, "JPEG with a garbage EXIF block"),
    "UPPER.JPG": (_save(GOOD), OK, "upper-case extension"),
    "png_inside.jpg": (_save(GOOD, format="PNG"), OK, "PNG named .jpg"),
    "webp_inside.png": (_save(GOOD, format="WEBP"), OK, "WebP named .png"),
    "text.png": (_bytes(b"hello, not a PNG\n"), UNREADABLE, "text named .png"),
    "svg.png": (_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"/>'), UNREADABLE, "SVG named .png"),
    "gzip.tif": (_bytes(zlib.compress(b"x" * 100)), UNREADABLE, "compressed bytes named .tif"),
    "corrupt.png": (
        _bytes(_corrupt_middle(_encoded(_fundus(64, seed=5), "PNG"))),
        UNREADABLE,
        "PNG with corrupted pixel data",
    ),
    "dir.png": (_in_folder("inner.png", GOOD), OK, "folder named .png (walked)"),
    "one.png": (_sized(1, 1), Sized(1, 1), "1x1 image"),
    "thin.png": (_sized(3, 4000), Sized(3, 4000), "3x4000 image"),
    "flat.png": (_sized(4000, 3), Sized(4000, 3), "4000x3 image"),
    "strip.png": (_sized(40, 300), Sized(40, 300), "40x300 image"),
    "black.png": (_save(np.zeros((64, 64, 3), np.uint8)), OK, "all black"),
    "white.png": (_save(np.full((64, 64, 3), 255, np.uint8)), OK, "all white"),
    "noise.png": (
        _save(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)),
        OK,
        "random noise",
    ),
    "stripe.png": (_stripe, OK, "black with a 4-pixel bright stripe"),
}
#: Non-UTF-8 names (bytes): a good image and a bad one.
BYTES_NAMES: dict[bytes, tuple[Callable[[Path], None], str, str]] = {
    b"caf\xe9.png": (_save(GOOD), OK, "Latin-1 byte in the name"),
    b"bad\xff\xfe.jpg": (_bytes(b"\xff\xd8\xff garbage"), UNREADABLE, "non-UTF-8 name, bad JPEG"),
}


def build_corpus(folder: Path, names: Iterable[str] | None = None) -> dict[str, str | Sized]:
    """Write the corpus (or its entries ``names``, plus the odd names, the loop and the
    locked file) into ``folder``; return ``{input path: expected outcome}``."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | Sized] = {}
    chosen = set(CORPUS if names is None else names) | {"locked.png"}
    for name, (write, outcome, _) in CORPUS.items():
        if name not in chosen:
            continue
        write(folder / name)
        if (folder / name).is_dir():  # a folder named like an image: its images are inputs
            for inner in sorted((folder / name).iterdir()):
                expected[str(inner)] = outcome
        else:
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
    from eyescan.plugins.registry import get_registry

    folder = tmp_path / "mixed"
    vessels = get_registry().task("vessels")
    expected = {p: expected_outcome(o, vessels) for p, o in build_corpus(folder).items()}
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
    figures.record(
        capsys,
        "bad inputs: vessels (tiny weights)",
        inputs=len(expected),
        bad_inputs=bad,
        crashes=len(crashes),
        results_lost=len(lost),
        misclassified=len(wrong),
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
    path.write_bytes(bomb_png(12_000, 10_000))  # 120 Mpx: over ours, under PIL's (2x ours)

    def no_decoding(self):
        raise AssertionError("decoded a decompression bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageReadError, match="12000x10000 pixels"):
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
