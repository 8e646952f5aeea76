"""Synthetic colour fundus images with exact ground truth (a test and demo tool).

The generator paints an orange-red retina inside a circular field of view (FOV), a bright
optic disc, a darker macula, a branching vessel tree and, optionally, diabetic-retinopathy-like
lesions. Every mask is exact: a pixel is in a mask if and only if it was painted as that
structure. The pictures are plausible, not realistic; no accuracy claim may rest on them.

Lesion load (``severity``; what each level draws, nothing more: how a task grades
the lesions is the task's business, e.g. the drgrade plugin's rule):

* 0 -- no lesions;
* 1 -- microaneurysms only;
* 2 -- microaneurysms plus a few (under 10) haemorrhage blobs and/or one exudate cluster;
* 3 -- microaneurysms plus 10 or more haemorrhage blobs, sometimes an exudate cluster;
* 4 -- as 3 with several exudate clusters and neovascular-like tangles of fine vessels.

``SyntheticFundus.lesion_counts`` says how many of each were drawn (a crowded or small
image may hold fewer than planned).

Lesions never touch each other (except exudate spots, which may merge within a cluster),
the vessels, the optic disc or the FOV border, so the number of 8-connected components of
``microaneurysms`` and ``haemorrhages`` equals the number of lesions drawn.
Only numpy, scipy and scikit-image are used to generate; the writers use Pillow for TIFF/GIF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.transform import resize

__all__ = [
    "SEVERITY_LEVELS",
    "SyntheticFundus",
    "make_fundus",
    "write_drive_layout",
    "write_folder",
]

_MIN_SIZE = 32
#: Lesion-load levels of :func:`make_fundus` (``severity``).
SEVERITY_LEVELS = (0, 1, 2, 3, 4)


@dataclass
class SyntheticFundus:
    """A synthetic fundus photograph and its exact ground truth.

    ``neovascular`` (subset of ``vessels``), ``disc_radius`` and ``fovea_center`` are extras
    beyond the core fields; :func:`make_fundus` always fills them.
    """

    image: np.ndarray  # uint8 H×W×3 RGB
    vessels: np.ndarray  # bool H×W, exact vessel mask (includes neovascular tangles)
    fov: np.ndarray  # bool H×W, circular field of view
    disc_center: tuple[int, int]  # (row, col) of the optic disc
    microaneurysms: np.ndarray  # bool H×W
    haemorrhages: np.ndarray  # bool H×W
    exudates: np.ndarray  # bool H×W, hard exudates (yellow)
    neovascular: np.ndarray | None = None  # bool H×W, new-vessel tangles (severity 4)
    disc_radius: float = 0.0  # horizontal optic-disc radius in pixels
    fovea_center: tuple[int, int] | None = None  # (row, col) of the fovea
    #: Lesions drawn: ``microaneurysms``, ``haemorrhages`` (blobs), ``exudates`` (spots),
    #: ``neovascular`` (tangles).
    lesion_counts: dict[str, int] = field(default_factory=dict)
    severity: int = 0  # the lesion-load level drawn (0 when no lesions were asked for)


@dataclass
class _Plan:
    n_ma: int = 0
    n_haem: int = 0
    exudate_clusters: tuple[int, ...] = ()  # spots per cluster
    n_nv: int = 0  # neovascular tangles


@dataclass
class _Poly:
    pts: np.ndarray  # (n, 2) float (row, col)
    radii: np.ndarray  # (n,) float half-widths
    contrast: float


def _resolve_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        h, w = (int(v) for v in size)  # type: ignore[union-attr]
    if h < _MIN_SIZE or w < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE} px, got {(h, w)}")
    return h, w


def _plan_lesions(
    rng: np.random.Generator, lesions: bool | int, severity: int | None
) -> tuple[_Plan, int]:
    """Decide how many lesions of each kind to draw; also the severity level drawn."""
    if severity is None:
        if isinstance(lesions, (bool, np.bool_)):
            if not lesions:
                return _Plan(), 0
            severity = int(rng.integers(1, 5))
        else:
            n = int(lesions)
            if n < 0:
                raise ValueError(f"lesions must be >= 0, got {n}")
            n_ma, n_haem, n_ex = (int(v) for v in rng.multinomial(n, [0.5, 0.3, 0.2]))
            return _Plan(n_ma, n_haem, (n_ex,) if n_ex else ()), 0
    if severity not in SEVERITY_LEVELS:
        raise ValueError(f"severity must be in 0..4, got {severity}")
    return _severity_plan(rng, severity), severity


def _severity_plan(rng: np.random.Generator, severity: int) -> _Plan:
    """The lesions of one severity level (see the module docstring)."""
    ri = rng.integers
    if severity == 0:
        return _Plan()
    if severity == 1:
        return _Plan(n_ma=int(ri(2, 9)))
    if severity == 2:
        variant = int(ri(3))  # 0: haemorrhages, 1: exudates, 2: both
        n_haem = int(ri(1, 7)) if variant != 1 else 0
        clusters = (int(ri(3, 9)),) if variant != 0 else ()
        return _Plan(int(ri(2, 10)), n_haem, clusters)
    if severity == 3:
        clusters = (int(ri(3, 9)),) if rng.random() < 0.5 else ()
        return _Plan(int(ri(5, 16)), int(ri(10, 18)), clusters)
    clusters = tuple(int(ri(4, 13)) for _ in range(int(ri(2, 4))))
    return _Plan(int(ri(8, 21)), int(ri(12, 23)), clusters, int(ri(1, 3)))


class _Geometry:
    """Shared geometry and the random source for one image."""

    def __init__(self, h: int, w: int, rng: np.random.Generator) -> None:
        self.h, self.w, self.rng = h, w, rng
        self.s = float(min(h, w))
        self.cy, self.cx = (h - 1) / 2.0, (w - 1) / 2.0
        self.R = 0.46 * self.s
        self.side = 1 if rng.random() < 0.5 else -1  # +1: disc right of centre
        self.disc_r = 0.08 * self.s * rng.uniform(0.9, 1.1)
        self.disc = (
            self.cy + rng.uniform(-0.06, 0.06) * self.R,
            self.cx + self.side * rng.uniform(0.5, 0.6) * self.R,
        )
        self.fovea = (
            self.disc[0] + rng.uniform(0.0, 0.08) * self.R,
            self.disc[1] - self.side * rng.uniform(0.78, 0.88) * self.R,
        )
        self.step = max(1.0, self.s / 128.0)
        self.faz_r = 0.05 * self.s
        self.r_main = max(2.0, self.s / 90.0) / 2.0


def _grow_tree(g: _Geometry, polys: list[_Poly]) -> None:
    """Append main vessels and their recursive branches (3 levels) to ``polys``."""
    rng, side, R = g.rng, g.side, g.R
    max_level = 2

    def grow(
        p0: np.ndarray,
        a0: float,
        r0: float,
        r1: float,
        length: float,
        kappa: float,
        level: int,
        contrast: float,
    ) -> None:
        n = max(2, int(length / g.step))
        noise = rng.normal(0.0, 0.035, n + 1)
        pts = np.empty((n + 1, 2))
        heads = np.empty(n + 1)
        pts[0], heads[0] = p0, a0
        a, om, k = a0, 0.0, 0
        decay = 0.9 * R
        fy, fx = g.fovea
        for i in range(1, n + 1):
            om = 0.8 * om + noise[i]
            a += kappa * g.step * math.exp(-i * g.step / decay) + om
            y = pts[i - 1, 0] + g.step * math.sin(a)
            x = pts[i - 1, 1] + g.step * math.cos(a)
            if (y - g.cy) ** 2 + (x - g.cx) ** 2 > (R + g.step) ** 2:
                break
            if (y - fy) ** 2 + (x - fx) ** 2 < g.faz_r**2:
                break
            pts[i, 0], pts[i, 1], heads[i] = y, x, a
            k = i
        pts, heads = pts[: k + 1], heads[: k + 1]
        radii = r0 + (r1 - r0) * np.arange(k + 1) / n
        if k >= 1:
            polys.append(_Poly(pts, radii, contrast))
        if level >= max_level or k < 4:
            return
        arc_end = k * g.step
        shrink = 0.75**level
        pos = rng.uniform(0.08, 0.2) * R * shrink
        sign = 1 if rng.random() < 0.5 else -1
        while pos < arc_end - 2 * g.step:
            i = int(pos / g.step)
            child_r0 = max(0.5, radii[i] * rng.uniform(0.6, 0.85))
            child_len = rng.uniform(0.25, 0.55) * R * 0.7**level
            ca = heads[i] + sign * rng.uniform(0.45, 1.05)
            grow(
                pts[i].copy(),
                ca,
                child_r0,
                0.5,
                child_len,
                rng.normal(0.0, 0.6) / R,
                level + 1,
                contrast * 0.92,
            )
            if rng.random() < 0.75:
                sign = -sign
            pos += rng.uniform(0.12, 0.25) * R * shrink

    n_main = int(rng.integers(4, 7))
    base = np.array(g.disc)
    for j in range(n_main):
        vein = j % 2 == 0
        r0 = g.r_main * (rng.uniform(0.9, 1.05) if vein else rng.uniform(0.7, 0.85))
        contrast = 0.62 if vein else 0.48
        p0 = base + rng.uniform(-0.25, 0.25, 2) * g.disc_r
        if j < 4:  # superior (j=0,1) and inferior (j=2,3) temporal arcades
            tilt = rng.uniform(0.1, 0.35)
            kap = rng.uniform(1.0, 1.4) / (0.9 * R)
            if j < 2:
                a0, kappa = -math.pi / 2 - side * tilt, -side * kap
            else:
                a0, kappa = math.pi / 2 + side * tilt, side * kap
            length = rng.uniform(1.3, 1.7) * R
        else:  # nasal vessels
            nasal = 0.0 if side > 0 else math.pi
            a0 = nasal + (1 if j == 4 else -1) * rng.uniform(0.3, 0.9)
            kappa = rng.normal(0.0, 0.5) / R
            length = rng.uniform(0.6, 0.9) * R
        grow(p0, a0, r0, max(0.5, 0.5 * r0), length, kappa, 0, contrast)


def _grow_tangles(g: _Geometry, n: int, trunk: list[_Poly]) -> list[_Poly]:
    """Neovascular-like tangles: tortuous 1 px vessels confined to small discs."""
    rng = g.rng
    out: list[_Poly] = []
    rt = 0.05 * g.s
    st = max(0.7, g.s / 300.0)
    for t in range(n):
        if t == 0 or not trunk:  # on the disc (NVD)
            centre = np.array(g.disc) + rng.uniform(-0.6, 0.6, 2) * g.disc_r
        else:  # elsewhere, on a main vessel (NVE)
            p = trunk[int(rng.integers(len(trunk)))].pts
            centre = p[int(len(p) * rng.uniform(0.4, 0.7))].copy()
        for _ in range(int(rng.integers(4, 8))):
            m = int(0.25 * g.s / st)
            noise = rng.normal(0.0, 0.45, m)
            pts = np.empty((m, 2))
            pts[0] = centre + rng.uniform(-0.5, 0.5, 2) * rt
            a = rng.uniform(0, 2 * math.pi)
            for i in range(1, m):
                dy, dx = centre - pts[i - 1]
                if dy * dy + dx * dx > rt * rt:
                    a = math.atan2(dy, dx) + 0.5 * noise[i]
                else:
                    a += noise[i]
                pts[i] = pts[i - 1] + st * np.array([math.sin(a), math.cos(a)])
            out.append(_Poly(pts, np.full(m, 0.5), 0.45))
    return out


def _rasterise(polys: list[_Poly], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre-line images: half-width and contrast at each centre-line pixel (0 elsewhere)."""
    rad = np.zeros((h, w), np.float32)
    con = np.zeros((h, w), np.float32)
    for p in polys:
        seg = np.hypot(*np.diff(p.pts, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        t = np.arange(0.0, cum[-1] + 1e-9, 0.5)
        rr = np.rint(np.interp(t, cum, p.pts[:, 0])).astype(np.intp)
        cc = np.rint(np.interp(t, cum, p.pts[:, 1])).astype(np.intp)
        rv = np.interp(t, cum, p.radii).astype(np.float32)
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        rr, cc, rv = rr[ok], cc[ok], rv[ok]
        rad[rr, cc] = np.maximum(rad[rr, cc], rv)
        con[rr, cc] = np.maximum(con[rr, cc], p.contrast)
    return rad, con


def _thick_mask(rad: np.ndarray) -> np.ndarray:
    """Union of discs of the (0.5-quantised) half-width around every centre-line pixel."""
    q = np.round(rad * 2.0) / 2.0
    q[(rad > 0) & (q < 0.5)] = 0.5
    mask = np.zeros(rad.shape, bool)
    for val in np.unique(q[q > 0]):
        centres = q == val
        if val <= 0.5:
            mask |= centres
            continue
        rows, cols = np.nonzero(centres)
        m = int(math.ceil(val)) + 1
        r0, r1 = max(rows.min() - m, 0), min(rows.max() + m + 1, rad.shape[0])
        c0, c1 = max(cols.min() - m, 0), min(cols.max() + m + 1, rad.shape[1])
        dist = ndimage.distance_transform_edt(~centres[r0:r1, c0:c1])
        mask[r0:r1, c0:c1] |= dist <= val
    return mask


def _blob(
    cy: int, cx: int, r: float, rng: np.random.Generator, kind: str, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of one lesion, all within distance ``r`` of its centre, 8-connected."""
    m = int(math.ceil(r)) + 1
    yy, xx = np.mgrid[-m : m + 1, -m : m + 1].astype(np.float64)
    if kind == "ma":
        inside = yy**2 + xx**2 <= r * r
    else:
        if kind == "haem":
            a = r * rng.uniform(0.75, 1.0)
            shapes = [(0.0, 0.0, a, a * rng.uniform(0.6, 1.0))]
            for _ in range(int(rng.integers(1, 3))):
                o, phi = rng.uniform(0.0, 0.3) * r, rng.uniform(0, 2 * math.pi)
                shapes.append(
                    (
                        o * math.sin(phi),
                        o * math.cos(phi),
                        r * rng.uniform(0.45, 0.7),
                        r * rng.uniform(0.45, 0.7),
                    )
                )
        else:  # exudate spot
            a = r * rng.uniform(0.7, 1.0)
            shapes = [(0.0, 0.0, a, a * rng.uniform(0.6, 1.0))]
        inside = np.zeros(yy.shape, bool)
        for oy, ox, a, b in shapes:
            th = rng.uniform(0, math.pi)
            dy, dx = yy - oy, xx - ox
            u = dy * math.cos(th) + dx * math.sin(th)
            v = -dy * math.sin(th) + dx * math.cos(th)
            inside |= (u / a) ** 2 + (v / b) ** 2 <= 1.0
        inside &= yy**2 + xx**2 <= r * r
    inside[m, m] = True
    lab, _ = ndimage.label(inside, structure=np.ones((3, 3), bool))
    inside = lab == lab[m, m]
    dy, dx = np.nonzero(inside)
    rr, cc = dy - m + cy, dx - m + cx
    ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    return rr[ok], cc[ok]


def _place_lesions(
    g: _Geometry, plan: _Plan, vessels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Place non-overlapping lesions away from vessels, disc and FOV border."""
    rng, h, w, s = g.rng, g.h, g.w, g.s
    ma = np.zeros((h, w), bool)
    haem = np.zeros((h, w), bool)
    ex = np.zeros((h, w), bool)
    if plan.n_ma + plan.n_haem + sum(plan.exudate_clusters) == 0:
        return ma, haem, ex, (0, 0, 0)
    dist_v = ndimage.distance_transform_edt(~vessels)
    n_c = 8000
    cr = rng.integers(0, h, n_c)
    cc = rng.integers(0, w, n_c)
    d_fov = g.R - np.hypot(cr - g.cy, cc - g.cx)
    d_disc = np.hypot(cr - g.disc[0], cc - g.disc[1]) - 1.4 * g.disc_r
    d_ves = dist_v[cr, cc] - 1.5
    base_room = np.minimum(np.minimum(d_fov - 2.0, d_disc), d_ves)
    clr_lesion = np.full(n_c, np.inf)  # clearance to microaneurysms and haemorrhages
    clr_ex = np.full(n_c, np.inf)  # clearance to exudates

    def pick(r: float, kind: str, region: np.ndarray | None = None) -> int | None:
        room = np.minimum(base_room, clr_lesion)
        if kind != "ex":
            room = np.minimum(room, clr_ex)
        ok = room > r
        if region is not None:
            ok &= region
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return None
        j = int(idx[rng.integers(idx.size)])
        d = np.hypot(cr - cr[j], cc - cc[j]) - r - 2.0
        if kind == "ex":
            np.minimum(clr_ex, d, out=clr_ex)
        else:
            np.minimum(clr_lesion, d, out=clr_lesion)
        return j

    counts = [0, 0, 0]
    for _ in range(plan.n_haem):
        r = max(2.0, rng.uniform(3.0, 8.0) * s / 256.0)
        j = pick(r, "haem")
        if j is None and r > 2.0:  # crowded: try a smaller blob
            r = max(2.0, 0.6 * r)
            j = pick(r, "haem")
        if j is not None:
            haem[_blob(int(cr[j]), int(cc[j]), r, rng, "haem", h, w)] = True
            counts[1] += 1
    d_fovea = np.hypot(cr - g.fovea[0], cc - g.fovea[1])
    ring = (d_fovea > 0.08 * s) & (d_fovea < 0.3 * s)
    ex_scale = max(1.0, s / 256.0)
    for n_spots in plan.exudate_clusters:
        r_centre = 1.0 * ex_scale
        j = pick(r_centre, "ex", ring) if ring.any() else None
        if j is None:
            j = pick(r_centre, "ex")
        if j is None:
            continue
        cluster = np.hypot(cr - cr[j], cc - cc[j]) <= 0.07 * s
        ex[_blob(int(cr[j]), int(cc[j]), r_centre, rng, "ex", h, w)] = True
        counts[2] += 1
        for _ in range(n_spots - 1):
            r = rng.uniform(1.0, 2.2) * ex_scale
            k = pick(r, "ex", cluster)
            if k is not None:
                ex[_blob(int(cr[k]), int(cc[k]), r, rng, "ex", h, w)] = True
                counts[2] += 1
    for _ in range(plan.n_ma):
        r = rng.uniform(1.0, 2.0)
        j = pick(r, "ma")
        if j is not None:
            ma[_blob(int(cr[j]), int(cc[j]), r, rng, "ma", h, w)] = True
            counts[0] += 1
    return ma, haem, ex, (counts[0], counts[1], counts[2])


def make_fundus(
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    lesions: bool | int = False,
    severity: int | None = None,
) -> SyntheticFundus:
    """Generate a synthetic fundus image with exact masks; deterministic for a given seed.

    ``size`` is an int (square) or ``(H, W)``, at least 32 px. ``lesions=True`` draws the
    lesions of a random severity level 1-4; an int ``n`` draws about ``n`` lesions of mixed
    kinds (microaneurysms, haemorrhages, one exudate cluster; no neovascularisation).
    ``severity=N`` (0-4, see the module docstring) draws level ``N``'s lesions and overrides
    ``lesions``. ``lesion_counts`` of the result says what was drawn: a small or crowded
    image holds fewer lesions than planned (levels 3-4 need about 80 px or more).
    """
    h, w = _resolve_size(size)
    rng = np.random.default_rng(seed)
    g = _Geometry(h, w, rng)
    plan, level = _plan_lesions(rng, lesions, severity)

    # Vessels: geometry, then exact masks.
    polys: list[_Poly] = []
    _grow_tree(g, polys)
    nv_polys = _grow_tangles(g, plan.n_nv, polys[:8])
    rad, con = _rasterise(polys, h, w)
    yy, xx = np.ogrid[0:h, 0:w]
    fov = (yy - g.cy) ** 2 + (xx - g.cx) ** 2 <= g.R**2
    vessels = _thick_mask(rad) & fov
    neovascular = np.zeros((h, w), bool)
    if nv_polys:
        rad_nv, con_nv = _rasterise(nv_polys, h, w)
        neovascular = _thick_mask(rad_nv) & fov
        vessels |= neovascular
        rad = np.maximum(rad, rad_nv)
        con = np.maximum(con, con_nv)

    ma, haem, ex, counts = _place_lesions(g, plan, vessels)
    n_ma, n_haem, n_ex = counts
    lesion_counts = {
        "microaneurysms": n_ma,
        "haemorrhages": n_haem,
        "exudates": n_ex,
        "neovascular": plan.n_nv if neovascular.any() else 0,
    }

    # Background: base colour, illumination falloff, smooth texture, macula, optic disc.
    rho2 = ((yy - g.cy) ** 2 + (xx - g.cx) ** 2) / g.R**2
    illum = 1.0 - 0.45 * np.clip(rho2, 0.0, 1.0) ** 1.25
    illum = illum + 0.05 * g.side * (xx - g.cx) / g.R
    coarse = rng.normal(0.0, 1.0, (max(4, h // 40), max(4, w // 40)))
    texture = resize(coarse, (h, w), order=3, mode="reflect", anti_aliasing=False)
    shade = (illum * (1.0 + 0.03 * texture)).astype(np.float32)
    base = np.array([rng.uniform(172, 195), rng.uniform(75, 95), rng.uniform(32, 46)], np.float32)
    img = shade[..., None] * base
    fy, fx = g.fovea
    mac = np.exp(-((yy - fy) ** 2 + (xx - fx) ** 2) / (2 * (0.075 * g.s) ** 2))
    img *= 1.0 - mac[..., None].astype(np.float32) * np.array([0.18, 0.35, 0.3], np.float32)
    dy0, dx0 = g.disc
    dd = np.sqrt(((yy - dy0) / 1.08) ** 2 + (xx - dx0) ** 2) / g.disc_r
    alpha = np.clip((1.0 - dd) / 0.25 + 0.5, 0.0, 1.0).astype(np.float32)[..., None]
    img = img * (1 - alpha) + alpha * np.array([248, 205, 135], np.float32)
    cup_x = dx0 - g.side * 0.15 * g.disc_r
    dcup = np.sqrt(((yy - dy0) / 1.1) ** 2 + (xx - cup_x) ** 2) / (0.45 * g.disc_r)
    beta = np.clip((1.0 - dcup) / 0.5 + 0.5, 0.0, 1.0).astype(np.float32)[..., None]
    img = img * (1 - beta) + beta * np.array([255, 238, 190], np.float32)

    # Lesions, then vessels on top (lesion masks never touch vessels anyway).
    img[ma] *= np.array([0.6, 0.4, 0.48], np.float32)
    img[haem] *= np.array([0.58, 0.36, 0.45], np.float32)
    img[ex] = 0.15 * img[ex] + 0.85 * np.array([245, 222, 115], np.float32)
    dist, (iy, ix) = ndimage.distance_transform_edt(rad == 0, return_indices=True)
    vr, vc = np.nonzero(vessels)
    near_r = rad[iy[vr, vc], ix[vr, vc]]
    near_c = con[iy[vr, vc], ix[vr, vc]]
    prof = 1.0 - 0.45 * np.clip(dist[vr, vc] / (near_r + 0.5), 0.0, 1.0) ** 2
    strength = near_c * (0.7 + 0.3 * np.minimum(1.0, near_r / g.r_main)) * prof
    img[vr, vc] *= 1.0 - strength[:, None].astype(np.float32) * np.array(
        [0.42, 0.85, 0.7], np.float32
    )

    # Noise; dark outside the FOV.
    noise = rng.normal(0.0, 2.0, (h, w, 3)).astype(np.float32)
    img = np.where(fov[..., None], img + noise, 1.0 + np.abs(noise))
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    return SyntheticFundus(
        image=image,
        vessels=vessels,
        fov=fov,
        disc_center=(int(round(g.disc[0])), int(round(g.disc[1]))),
        microaneurysms=ma,
        haemorrhages=haem,
        exudates=ex,
        neovascular=neovascular,
        disc_radius=float(g.disc_r),
        fovea_center=(int(round(fy)), int(round(fx))),
        lesion_counts=lesion_counts,
        severity=level,
    )


def _child_seeds(seed: int, n: int) -> list[int]:
    return [int(v) for v in np.random.SeedSequence(seed).generate_state(n, np.uint32)]


def _save_gif(mask: np.ndarray, path: Path) -> None:
    from PIL import Image

    # optimize=False keeps the full grey palette, so the GIF reopens as mode 'L' with 0/255.
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, optimize=False)


def write_drive_layout(
    root: Path, n_train: int = 4, n_test: int = 2, size: int = 96, seed: int = 0
) -> Path:
    """Write a DRIVE-like tree: ``root/{training,test}/{images,1st_manual,mask}``.

    Names as in DRIVE: ``21_training.tif`` (training numbered from 21), ``01_test.tif``;
    ``21_manual1.gif``; ``21_training_mask.gif`` / ``01_test_mask.gif``. Images are RGB TIFF,
    manual and mask are greyscale GIF with values 0/255. No lesions. Returns ``root``.
    """
    from PIL import Image

    root = Path(root)
    seeds = _child_seeds(seed, n_train + n_test)
    jobs = [("training", 21 + i, seeds[i]) for i in range(n_train)]
    jobs += [("test", 1 + i, seeds[n_train + i]) for i in range(n_test)]
    for split in ("training", "test"):
        for sub in ("images", "1st_manual", "mask"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
    for split, num, s in jobs:
        f = make_fundus(size, seed=s)
        d = root / split
        Image.fromarray(f.image).save(d / "images" / f"{num:02d}_{split}.tif")
        _save_gif(f.vessels, d / "1st_manual" / f"{num:02d}_manual1.gif")
        _save_gif(f.fov, d / "mask" / f"{num:02d}_{split}_mask.gif")
    return root


def write_folder(
    root: Path, n: int = 3, size: int = 128, seed: int = 0, ext: str = ".png"
) -> list[Path]:
    """Write ``n`` synthetic fundus images (no masks) as ``synth_000{ext}``...; return paths."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ext = ext if ext.startswith(".") else "." + ext
    paths = []
    for i, s in enumerate(_child_seeds(seed, n)):
        p = root / f"synth_{i:03d}{ext}"
        Image.fromarray(make_fundus(size, seed=s).image).save(p)
        paths.append(p)
    return paths
