"""Eye-region boxes (one box around both eyes) for the strabismus-faces photographs.

    python plugins/strabismus/scripts/label_eye_boxes.py DATA_DIR OUT_CSV [--sheet /tmp/DIR]

Per image of ``DATA_DIR/labels.csv`` (OpenCV's bundled Haar cascades; needs
``opencv-python-headless`` 4.x — OpenCV 5 has no ``CascadeClassifier``):

1. faces: the largest face of each frontal-face cascade and setting in turn
   (``FACE_CASCADES`` × ``FACE_SETTINGS``), then the same on the image padded by
   ``FACE_PAD`` of its height (finds faces whose chin leaves the frame);
2. eyes: ``eye`` and ``eye_tree_eyeglasses`` detections in the band ``EYE_BAND`` of
   the face; :func:`pick_pair` takes one either side of the face's midline, level and
   of similar size, nearest ``EYE_CENTRES``. The first face with a pair gives
   :func:`box_from_eyes` (the two eye rectangles' union, ``MARGIN_X`` = 8 % of its
   width added left and right, none above or below), ``method=eyes``;
3. a face but no pair: :func:`box_from_face` (``FACE_BOX``: x 0.15–0.84, y 0.27–0.50
   of the first face box), ``method=face``; no face: empty box, ``method=none``;
4. rows of the overrides CSV (``path,x0,y0,x1,y1,note``, boxes reviewed by eye)
   replace the result last, ``method=manual``.

Deterministic. Output: ``path,split,label,x0,y0,x1,y1,method`` (integer pixels of the
original photograph, ``path`` relative to DATA_DIR as in labels.csv, ``label`` its
``binary`` column: normal/strabismus). The plugin's ``manifest`` reader takes it with
``--columns image=path,xmin=x0,ymin=y0,xmax=x1,ymax=y1`` (its paths are relative to
the CSV: use a copy beside the data). ``--sheet DIR`` writes contact sheets for review
(whole photographs and close-ups with the boxes); they show faces, so DIR must be
under /tmp.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Iterator
from pathlib import Path

Rect = tuple[int, int, int, int]  # x, y, w, h (OpenCV)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1

PLUGIN = Path(__file__).resolve().parents[1]
OVERRIDES = PLUGIN / "eyescan_strabismus" / "data" / "eye_boxes_overrides.csv"
COLUMNS = ("path", "split", "label", "x0", "y0", "x1", "y1", "method")

#: Face cascades and (scaleFactor, minNeighbors) settings, tried in order until a face is found.
FACE_CASCADES = (
    "haarcascade_frontalface_default.xml",
    "haarcascade_frontalface_alt2.xml",
    "haarcascade_frontalface_alt.xml",
)
FACE_SETTINGS = ((1.1, 5), (1.05, 3))
#: Second pass: the image padded by this fraction of its height on every side.
FACE_PAD = 0.25
EYE_CASCADES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
EYE_SETTINGS = ((1.05, 3),)
#: Band of the face box searched for eyes (fractions of the face height).
EYE_BAND = (0.12, 0.62)
#: box_from_eyes margin: fraction of the eyes' union width (left/right) and height (top/bottom).
MARGIN_X, MARGIN_Y = 0.08, 0.0
#: box_from_face: the eye region as fractions of the face box (x0, y0, x1, y1): the median
#: of the method=eyes boxes relative to their face boxes on the 285 strabismus-faces photos.
FACE_BOX = (0.15, 0.27, 0.84, 0.50)
#: Expected eye centres in a face box (fractions), to rank candidate pairs.
EYE_CENTRES = ((0.3, 0.38), (0.7, 0.38))


def box_from_eyes(a: Rect, b: Rect, width: int, height: int) -> Box:
    """Union of two eye rectangles grown by ``MARGIN_X`` of its width on the left and
    right and ``MARGIN_Y`` of its height above and below, clipped to the image."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    mx, my = MARGIN_X * (x1 - x0), MARGIN_Y * (y1 - y0)
    return _clip((x0 - mx, y0 - my, x1 + mx, y1 + my), width, height)


def box_from_face(face: Rect, width: int, height: int) -> Box:
    """The eye region at the fixed fractions ``FACE_BOX`` of a face rectangle."""
    x, y, w, h = face
    fx0, fy0, fx1, fy1 = FACE_BOX
    return _clip((x + fx0 * w, y + fy0 * h, x + fx1 * w, y + fy1 * h), width, height)


def _clip(box: tuple[float, ...], width: int, height: int) -> Box:
    x0, y0, x1, y1 = (round(v) for v in box)
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def pick_pair(eyes: list[Rect], face: Rect) -> tuple[Rect, Rect] | None:
    """The candidate pair (image-left, image-right) closest to ``EYE_CENTRES`` of the face,
    one eye either side of its midline, level and of similar size; ``None`` without one."""
    fx, fy, fw, fh = face
    best, best_cost = None, float("inf")
    for i, a in enumerate(eyes):
        for b in eyes[i + 1 :]:
            left, right = sorted((a, b), key=lambda r: r[0] + r[2] / 2)
            (lx, ly), (rx, ry) = (_centre(left), _centre(right))
            mid = fx + fw / 2
            dx, dy = rx - lx, abs(ry - ly)
            size = max(left[2], right[2]) / min(left[2], right[2])
            if not (lx < mid < rx and 0.25 * fw <= dx <= 0.7 * fw and dy <= 0.12 * fw):
                continue
            if size > 1.7 or _overlap(left, right):
                continue
            cost = 0.0
            for (cx, cy), (ex, ey) in zip(((lx, ly), (rx, ry)), EYE_CENTRES):
                cost += ((cx - fx) / fw - ex) ** 2 + ((cy - fy) / fh - ey) ** 2
            if cost < best_cost:
                best, best_cost = (left, right), cost
    return best


def _centre(r: Rect) -> tuple[float, float]:
    return r[0] + r[2] / 2, r[1] + r[3] / 2


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


class Detector:
    """Haar cascades for faces and eyes (OpenCV's bundled files)."""

    def __init__(self) -> None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise SystemExit(f"OpenCV {cv2.__version__} has no Haar cascades: use 4.x")
        self.cv2 = cv2
        load = lambda name: cv2.CascadeClassifier(cv2.data.haarcascades + name)  # noqa: E731
        self.faces_cascades = [load(n) for n in FACE_CASCADES]
        self.eyes = [load(n) for n in EYE_CASCADES]

    def faces(self, gray) -> Iterator[Rect]:
        """The largest face of each cascade and setting in turn, then the same on the image
        padded by ``FACE_PAD`` of its height on every side (edge pixels repeated), which finds
        faces whose chin or forehead leaves the frame. Repeats are skipped."""
        cv2 = self.cv2
        side = min(gray.shape[:2])
        seen: set[Rect] = set()
        for pad in (0, round(FACE_PAD * gray.shape[0])):
            image = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            for cascade in self.faces_cascades:
                for scale, neighbours in FACE_SETTINGS:
                    found = cascade.detectMultiScale(
                        image, scale, neighbours, minSize=(side // 5, side // 5)
                    )
                    if len(found):
                        x, y, w, h = (int(v) for v in max(found, key=lambda r: (r[2] * r[3], *r)))
                        face = (x - pad, y - pad, w, h)
                        if face not in seen:
                            seen.add(face)
                            yield face

    def eye_pair(self, gray, face: Rect) -> tuple[Rect, Rect] | None:
        """The best eye pair in the face's ``EYE_BAND``, in image coordinates."""
        x, y, w, h = face
        top, bottom = y + int(EYE_BAND[0] * h), y + int(EYE_BAND[1] * h)
        top, left = max(0, top), max(0, x)
        roi = gray[top:bottom, left : x + w]
        lo, hi = max(8, w // 10), w // 3
        candidates: list[Rect] = []
        for cascade in self.eyes:
            for scale, neighbours in EYE_SETTINGS:
                found = cascade.detectMultiScale(
                    roi, scale, neighbours, minSize=(lo, lo), maxSize=(hi, hi)
                )
                candidates += [
                    (int(a) + left, int(b) + top, int(c), int(d)) for a, b, c, d in found
                ]
        return pick_pair(sorted(set(candidates)), face)

    def label(self, path: Path) -> tuple[Box | None, str, Rect | None]:
        """``(box, method, face)`` for one photograph."""
        cv2 = self.cv2
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SystemExit(f"{path}: cannot read the image")
        height, width = image.shape
        gray = cv2.equalizeHist(image)
        first = None
        for face in self.faces(gray):
            first = first or face
            pair = self.eye_pair(gray, face)
            if pair is not None:
                return box_from_eyes(*pair, width, height), "eyes", face
        if first is None:
            return None, "none", None
        return box_from_face(first, width, height), "face", first


def read_overrides(path: Path) -> dict[str, Box]:
    """``path -> box`` from an overrides CSV (``path,x0,y0,x1,y1,note``); empty if absent."""
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        boxes = {
            row["path"]: tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))
            for row in csv.DictReader(handle)
        }
    bad = [p for p, (x0, y0, x1, y1) in boxes.items() if not (0 <= x0 < x1 and 0 <= y0 < y1)]
    if bad:
        raise SystemExit(f"{path}: empty or negative boxes for {bad}")
    return boxes


def write_sheets(data: Path, rows: list[dict[str, str]], faces: list, folder: Path) -> None:
    """Contact sheets for review: ``sheet_NN.png``, 5×4 whole photographs (face blue; box
    green eyes, orange face, magenta manual), and ``crops_NN.png``, 3×6 close-ups of the
    boxes (15 % of their width and half their height around them)."""
    from PIL import Image, ImageDraw

    folder = _under_tmp(folder)
    folder.mkdir(parents=True, exist_ok=True)
    colours = {"eyes": (0, 255, 0), "face": (255, 160, 0), "manual": (255, 0, 255)}
    photos = []
    for row in rows:
        with Image.open(data / row["path"]) as photo:
            photos.append(photo.convert("RGB"))
    boxes = [
        tuple(float(r[c]) for c in ("x0", "y0", "x1", "y1")) if r["x0"] else None for r in rows
    ]
    layouts = {"sheet": (5, 20, 384, 288), "crops": (3, 18, 460, 180)}
    for name, (cols, per, tw, th) in layouts.items():
        for start in range(0, len(rows), per):
            sheet = Image.new("RGB", (cols * tw, (per // cols) * th), "black")
            draw = ImageDraw.Draw(sheet)
            for k in range(start, min(start + per, len(rows))):
                ox, oy = ((k - start) % cols) * tw, ((k - start) // cols) * th
                photo, box, face, row = photos[k], boxes[k], faces[k], rows[k]
                drawn: list[tuple[tuple[float, ...], tuple[int, int, int], int]] = []
                if name == "sheet":
                    region = (0.0, 0.0, float(photo.width), float(photo.height))
                    if face is not None:
                        fx, fy, fw, fh = face
                        drawn.append(((fx, fy, fx + fw, fy + fh), (80, 80, 255), 1))
                elif box is not None:
                    mx, my = 0.15 * (box[2] - box[0]), 0.5 * (box[3] - box[1])
                    region = (box[0] - mx, box[1] - my, box[2] + mx, box[3] + my)
                else:
                    region = None
                if box is not None:
                    drawn.append((box, colours[row["method"]], 2))
                if region is not None:
                    _tile(sheet, draw, photo, region, (ox, oy + 14, tw, th - 14), drawn)
                draw.text((ox + 4, oy + 2), f"{k} {row['method']} {row['path']}", fill="yellow")
            sheet.save(folder / f"{name}_{start // per:02d}.png")


def _under_tmp(folder: Path) -> Path:
    """``folder`` resolved; refused unless it lies under /tmp (the sheets show faces)."""
    tmp, folder = Path("/tmp").resolve(), folder.resolve()
    if folder != tmp and tmp not in folder.parents:
        raise SystemExit(f"--sheet {folder}: contact sheets show faces; only under /tmp")
    return folder


def _tile(sheet, draw, photo, region: tuple[float, ...], cell: tuple[int, ...], drawn) -> None:
    """Paste ``region`` of ``photo`` into ``cell`` (x, y, w, h), with ``drawn`` rectangles."""
    ox, oy, tw, th = cell
    s = min(tw / (region[2] - region[0]), th / (region[3] - region[1]))
    size = (round((region[2] - region[0]) * s), round((region[3] - region[1]) * s))
    sheet.paste(photo.resize(size, box=region), (ox, oy))
    for b, colour, width in drawn:
        x0, y0 = ox + (b[0] - region[0]) * s, oy + (b[1] - region[1]) * s
        x1, y1 = ox + (b[2] - region[0]) * s, oy + (b[3] - region[1]) * s
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with labels.csv (strabismus-faces)")
    parser.add_argument("out", type=Path, help="output CSV")
    parser.add_argument(
        "--overrides",
        type=Path,
        default=OVERRIDES,
        help="reviewed manual boxes applied last (default: the plugin's)",
    )
    parser.add_argument("--sheet", type=Path, help="write contact sheets here (under /tmp only)")
    args = parser.parse_args(argv)

    if args.sheet:
        _under_tmp(args.sheet)
    started = time.perf_counter()
    with open(args.data / "labels.csv", newline="", encoding="utf-8") as handle:
        labels = list(csv.DictReader(handle))
    overrides = read_overrides(args.overrides)
    unknown = sorted(set(overrides) - {row["path"] for row in labels})
    if unknown:
        raise SystemExit(f"{args.overrides}: paths not in labels.csv: {unknown}")
    detector = Detector()
    rows, faces = [], []
    for item in labels:
        box, method, face = detector.label(args.data / item["path"])
        if item["path"] in overrides:
            box, method = overrides[item["path"]], "manual"
        coords = [str(v) for v in box] if box else ["", "", "", ""]
        rows.append(
            dict(zip(COLUMNS, (item["path"], item["split"], item["binary"], *coords, method)))
        )
        faces.append(face)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    counts = {m: sum(r["method"] == m for r in rows) for m in ("eyes", "face", "manual", "none")}
    print(f"{len(rows)} images → {args.out}: {counts} ({time.perf_counter() - started:.1f} s)")
    if args.sheet:
        write_sheets(args.data, rows, faces, args.sheet)
        print(f"contact sheets in {args.sheet}")


if __name__ == "__main__":
    main()
