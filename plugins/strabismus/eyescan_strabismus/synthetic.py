"""Synthetic face photographs for the Hirschberg test, with exact eye-region boxes.

A face-like image with two eyes, each an almond-shaped opening with sclera,
iris, pupil and a corneal light reflex. The light reflex sits where the
cornea faces the light: for a fixating eye that is the pupil centre plus a
small offset shared by both eyes (light position, gaze). A deviating eye
turns (its iris and pupil move by ``d``) while its reflex stays put, so its
reflex is displaced from its pupil centre by ``d`` relative to the other eye.

* normal: both reflexes placed alike (difference ≤ ``jitter`` iris radii);
* strabismus: one eye (random side) deviates horizontally (eso/exo, 75 %)
  or vertically (hyper/hypo) by ``d`` ∈ [``min_deviation``, ``max_deviation``]
  iris radii.

Position, scale, roll, skin tone, iris colour, lighting, blur and noise vary.
``box`` is the eye region: the smallest box holding both eye openings, padded
by ``BOX_PAD`` of the eye height. Images without a face (``face=False``) hold
background clutter only. A test and demo tool: no clinical claim rests on it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eyescan.api import imageio

#: Padding of the eye-region box around the eye openings, in eye half-heights.
BOX_PAD = 0.6
SKIN_LIGHT = np.array([0.96, 0.80, 0.70])
SKIN_DARK = np.array([0.33, 0.22, 0.16])
IRIS_COLOURS = np.array(
    [
        [0.35, 0.20, 0.10],
        [0.22, 0.13, 0.07],
        [0.45, 0.35, 0.18],
        [0.30, 0.45, 0.60],
        [0.32, 0.42, 0.30],
    ]
)


@dataclass
class SyntheticFace:
    """A synthetic face photograph and its truth."""

    image: np.ndarray  # uint8 H×W×3
    box: tuple[float, float, float, float] | None  # eye region x0, y0, x1, y1 (None: no face)
    label: int | None  # 1 strabismus, 0 normal, None without a face
    deviation: float = 0.0  # reflex displacement between the eyes, in iris radii
    eyes: list[dict[str, tuple[float, float] | float]] = field(default_factory=list)


def _smooth(distance: np.ndarray, softness: float = 0.7) -> np.ndarray:
    """Anti-aliased inside-ness (1 inside, 0 outside) of a signed distance (negative inside)."""
    return np.clip(0.5 - distance / (2 * softness), 0.0, 1.0)


def _paint(canvas: np.ndarray, alpha: np.ndarray, colour) -> None:
    """Blend ``colour`` (RGB, or an H×W×3 array) into ``canvas`` in place with weight ``alpha``."""
    a = alpha.astype(np.float32)[..., None]
    canvas *= 1 - a
    canvas += a * np.asarray(colour, dtype=np.float32)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0.15, 0.85, 3)
    ramp = rng.uniform(-0.25, 0.25, 3)
    angle = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    coarse = rng.normal(0, 0.06, (6, 6, 3))
    index = np.clip((np.arange(size) * 6 // size), 0, 5)
    blotch = coarse[index][:, index]
    return np.clip(base + ramp * grad + blotch, 0, 1).astype(np.float32)


def _clutter(canvas: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Random ellipses and dark dots (distractors for the detector)."""
    size = canvas.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(count):
        cx, cy = rng.uniform(0, size, 2)
        a, b = rng.uniform(0.03, 0.25, 2) * size
        d = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2) - 1
        _paint(canvas, _smooth(d * min(a, b)) * rng.uniform(0.4, 1), rng.uniform(0, 1, 3))


def make_face(
    size: int = 224,
    seed: int = 0,
    strabismus: bool | None = None,
    face: bool = True,
    min_deviation: float = 0.3,
    max_deviation: float = 0.9,
    jitter: float = 0.06,
) -> SyntheticFace:
    """One synthetic Hirschberg photograph (``strabismus=None``: either, with equal odds)."""
    rng = np.random.default_rng(seed)
    canvas = _background(size, rng)
    if not face:
        _clutter(canvas, rng, int(rng.integers(1, 6)))
        return SyntheticFace(_finish(canvas, rng), None, None)
    if strabismus is None:
        strabismus = bool(rng.random() < 0.5)
    _clutter(canvas, rng, int(rng.integers(0, 3)))

    fw = rng.uniform(0.55, 0.9) * size  # face width
    a, b = fw / 2, 0.62 * fw
    cx = size / 2 + rng.uniform(-1, 1) * max(0.0, size / 2 - a) * 0.8
    cy = size / 2 + rng.uniform(-1, 1) * max(0.0, size / 2 - 0.5 * b) * 0.5
    roll = math.radians(rng.uniform(-12, 12))
    cos, sin = math.cos(roll), math.sin(roll)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = cos * (xx - cx) + sin * (yy - cy)  # face frame: u right, v down
    v = -sin * (xx - cx) + cos * (yy - cy)

    def to_image(pu: float, pv: float) -> tuple[float, float]:
        return cx + cos * pu - sin * pv, cy + sin * pu + cos * pv

    skin = SKIN_LIGHT + rng.random() * (SKIN_DARK - SKIN_LIGHT) + rng.normal(0, 0.02, 3)
    hair = rng.uniform(0.02, 0.35) * np.array([1.0, 0.8, 0.6])
    head = np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1
    _paint(canvas, _smooth(head * a) * ((v < -0.35 * b) | (head > -0.08)), hair)  # hair
    face_alpha = _smooth((np.sqrt((u / (0.93 * a)) ** 2 + (v / (0.95 * b)) ** 2) - 1) * a)
    shade = 1 - 0.28 * np.clip((u / a) ** 2 + 0.5 * np.clip(v / b, 0, 1) ** 2, 0, 1)
    _paint(canvas, face_alpha, np.clip(skin, 0, 1) * shade[..., None])

    # nose shadow and mouth
    nose = np.sqrt((u / (0.06 * fw)) ** 2 + ((v - 0.18 * b) / (0.1 * b)) ** 2) - 1
    _paint(canvas, _smooth(nose * 0.06 * fw, 2.0) * 0.25, skin * 0.6)
    mouth = np.sqrt((u / (0.16 * fw)) ** 2 + ((v - 0.5 * b) / (0.035 * b)) ** 2) - 1
    _paint(canvas, _smooth(mouth * 0.035 * b), np.array([0.6, 0.22, 0.25]) * rng.uniform(0.7, 1.1))

    half_gap = rng.uniform(0.19, 0.24) * fw
    eye_v = -rng.uniform(0.05, 0.15) * b
    ew = rng.uniform(0.085, 0.11) * fw  # eye half-width
    eh = ew * rng.uniform(0.42, 0.55)  # eye half-height
    r = ew * rng.uniform(0.42, 0.5)  # iris radius
    pupil = r * rng.uniform(0.35, 0.5)
    glint = max(1.4, r * rng.uniform(0.15, 0.22))
    iris_colour = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.8, 1.2)
    gaze = np.array([rng.uniform(-0.25, 0.25), rng.uniform(-0.12, 0.12)]) * r
    light = np.array([rng.uniform(-0.12, 0.12), rng.uniform(-0.12, 0.12)]) * r
    deviating = int(rng.integers(2)) if strabismus else -1
    turn = np.zeros(2)
    if strabismus:
        d = rng.uniform(min_deviation, max_deviation) * r
        if rng.random() < 0.75:
            angle = rng.choice([0.0, np.pi]) + rng.normal(0, 0.15)
        else:
            angle = rng.choice([np.pi / 2, -np.pi / 2]) + rng.normal(0, 0.15)
        turn = d * np.array([math.cos(angle), math.sin(angle)])

    eyes, reflexes, corners = [], [], []
    for side, eu in enumerate((-half_gap, half_gap)):
        ex, ey = to_image(eu, eye_v)
        reach = 1.4 * ew + 3 * eh
        window = (
            slice(max(0, int(ey - reach)), max(0, int(ey + reach) + 1)),
            slice(max(0, int(ex - reach)), max(0, int(ex + reach) + 1)),
        )
        view = canvas[window]
        du, dv = u[window] - eu, v[window] - eye_v
        lid = eh * (1 - np.clip(du / ew, -1, 1) ** 2)
        opening = np.maximum(np.abs(du) - ew, np.abs(dv) - lid)
        inside = _smooth(opening)
        # eyebrow
        brow = np.abs(dv + 2.2 * eh + 0.25 * eh * (du / ew) ** 2) - 0.22 * eh
        brow = np.maximum(brow, np.abs(du) - 1.15 * ew)
        _paint(view, _smooth(brow) * 0.8, hair * 1.1)
        _paint(view, inside, np.array([0.95, 0.93, 0.9]) * rng.uniform(0.85, 1.0))
        iris_centre = gaze + (turn if side == deviating else 0.0)
        jitter_vec = rng.uniform(-jitter / 2, jitter / 2, 2) * r
        reflex = gaze + light + jitter_vec  # the reflex stays where the cornea faces the light
        dist = np.sqrt((du - iris_centre[0]) ** 2 + (dv - iris_centre[1]) ** 2)
        texture = 1 + 0.12 * np.sin(np.arctan2(dv - iris_centre[1], du - iris_centre[0]) * 9)
        iris_rgb = np.clip(iris_colour[None, None, :] * texture[..., None], 0, 1)
        rim = np.clip((dist / r - 0.75) * 3, 0, 1)[..., None]
        iris_rgb = iris_rgb * (1 - 0.45 * rim)
        alpha = _smooth(dist - r) * inside
        _paint(view, alpha, iris_rgb)
        _paint(view, _smooth(dist - pupil) * inside, [0.03, 0.03, 0.04])
        rdist = np.sqrt((du - reflex[0]) ** 2 + (dv - reflex[1]) ** 2)
        glow = np.exp(-((rdist / (2.2 * glint)) ** 2)) * 0.45 * inside
        _paint(view, glow, [1.0, 1.0, 1.0])
        _paint(view, _smooth(rdist - glint, 0.5) * inside, [1.0, 1.0, 0.98])
        # upper lid line (lashes)
        lash = np.maximum(np.abs(dv + lid + 0.06 * eh) - 0.12 * eh, np.abs(du) - ew)
        _paint(view, _smooth(lash, 0.5) * 0.85, hair * 0.5)
        eyes.append(
            {
                "iris": to_image(eu + iris_centre[0], eye_v + iris_centre[1]),
                "reflex": to_image(eu + reflex[0], eye_v + reflex[1]),
                "iris_radius": float(r),
            }
        )
        reflexes.append(reflex - iris_centre)
        for pu in np.linspace(-ew, ew, 9):
            h = eh * (1 - (pu / ew) ** 2)
            corners += [to_image(eu + pu, eye_v - h), to_image(eu + pu, eye_v + h)]

    pts = np.asarray(corners)
    pad = BOX_PAD * eh
    box = (
        float(max(0.0, pts[:, 0].min() - pad)),
        float(max(0.0, pts[:, 1].min() - pad)),
        float(min(size, pts[:, 0].max() + pad)),
        float(min(size, pts[:, 1].max() + pad)),
    )
    deviation = float(np.linalg.norm(reflexes[0] - reflexes[1]) / r)
    return SyntheticFace(_finish(canvas, rng), box, int(strabismus), deviation, eyes)


def _finish(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting (level, gradient, colour cast), blur and sensor noise."""
    from scipy import ndimage

    size = canvas.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(0.6, 1.25) * (
        1 + rng.uniform(0, 0.5) * (np.cos(angle) * xx + np.sin(angle) * yy)
    )
    image = canvas * light[..., None] * (1 + rng.uniform(-0.08, 0.08, 3))
    sigma = rng.uniform(0, 0.9)
    if sigma > 0.3:
        image = ndimage.gaussian_filter(image, (sigma, sigma, 0))
    image = image + rng.normal(0, rng.uniform(0.005, 0.04), image.shape)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


VOC_TEMPLATE = """<annotation>
\t<folder>images</folder>
\t<filename>{filename}</filename>
\t<path>{path}</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>{width}</width>
\t\t<height>{height}</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
{objects}</annotation>
"""

VOC_OBJECT = """\t<object>
\t\t<name>{name}</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>{x0}</xmin>
\t\t\t<ymin>{y0}</ymin>
\t\t\t<xmax>{x1}</xmax>
\t\t\t<ymax>{y1}</ymax>
\t\t</bndbox>
\t</object>
"""


def voc_xml(
    filename: str, width: int, height: int, boxes: list[tuple[float, ...]], name="eyes"
) -> str:
    """A Pascal VOC annotation as labelImg writes it (integer pixel coordinates)."""
    objects = "".join(
        VOC_OBJECT.format(name=name, x0=round(b[0]), y0=round(b[1]), x1=round(b[2]), y1=round(b[3]))
        for b in boxes
    )
    return VOC_TEMPLATE.format(
        filename=filename, path=filename, width=width, height=height, objects=objects
    )


def write_split(
    folder: Path,
    count: int,
    size: int = 224,
    seed: int = 0,
    boxes: str = "voc",
    labels: str = "csv",
    no_face_fraction: float = 0.0,
    **options: float,
) -> Path:
    """Write ``count`` synthetic faces as one split folder of the ``folders`` layout.

    ``boxes``: ``"voc"`` (``annotations/<stem>.xml``), ``"csv"`` (``boxes.csv``)
    or ``"none"``; ``labels``: ``"csv"`` (``images/`` + ``labels.csv``) or
    ``"folders"`` (``normal/``, ``strabismus/``; faceless images are then left out).
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    box_rows, label_rows = [], []
    for i in range(count):
        has_face = not (rng.random() < no_face_fraction and labels == "csv")
        sample = make_face(size, int(rng.integers(2**31)), face=has_face, **options)
        name = f"face_{seed:03d}_{i:05d}.png"
        if labels == "folders":
            relative = Path(("normal", "strabismus")[sample.label]) / name
        else:
            relative = Path("images") / name
        imageio.save_png(folder / relative, sample.image)
        found = [sample.box] if sample.box else []
        if boxes == "voc":
            xml = voc_xml(name, size, size, found)
            imageio.write_text(folder / "annotations" / f"{Path(name).stem}.xml", xml)
        for b in found:
            box_rows.append([relative.name, "eyes", *(f"{v:.1f}" for v in b)])
        if not found:
            box_rows.append([relative.name, "", "", "", "", ""])
        if sample.label is not None:
            label_rows.append([relative.name, sample.label])
    if boxes == "csv":
        _write_csv(
            folder / "boxes.csv", ["image", "label", "xmin", "ymin", "xmax", "ymax"], box_rows
        )
    if labels == "csv":
        _write_csv(folder / "labels.csv", ["image", "label"], label_rows)
    return folder


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_dataset(
    root: Path, n_train: int, n_test: int, size: int = 224, seed: int = 0, **options
) -> Path:
    """A ``train/`` + ``test/`` data set of the ``folders`` layout (test seeds never overlap)."""
    root = Path(root)
    write_split(root / "train", n_train, size, seed, **options)
    write_split(root / "test", n_test, size, seed + 1, **options)
    return root
