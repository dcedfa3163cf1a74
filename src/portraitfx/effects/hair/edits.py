"""Model-free hair edits: recolour, hairline, sparse-area fill and bangs.

Every edit takes the photo and a :class:`~portraitfx.effects.hair.analysis.HairAnalysis`
of one face and returns a :class:`HairEdit`: the new photo and the region it was
allowed to change. Pixels outside that region are the input's, bit for bit; the
region always lies inside the hair, the forehead and a margin around them.

* :func:`recolor` -- new hue and chroma in Lab, the hair's own luminance texture and
  highlights kept, blended by the soft matte.
* :func:`adjust_hairline` -- moves the hairline by a share of the forehead's height
  with a smooth one-dimensional warp along the face's vertical: the forehead skin is
  squeezed (or stretched) and the person's own hair is drawn down (or pushed up)
  over it; the move fades out toward the temples so nothing tears.
* :func:`fill_sparse` -- where the density map says scalp shows through, lays the
  colour of the surrounding dense hair with strand detail copied from the densest
  hair nearby.
* :func:`add_bangs` -- a fringe made of the person's own hair mirrored down over the
  forehead, with uneven strand tips and a soft shadow on the skin below.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from portraitfx.effects.hair.analysis import HairAnalysis, edit_region, lab
from portraitfx.errors import ConfigError
from portraitfx.face import topology as T

__all__ = ["HairEdit", "add_bangs", "adjust_hairline", "fill_sparse", "recolor"]


@dataclass
class HairEdit:
    """An edited photo.

    Attributes:
        image: the result (a new array; the input is never modified).
        region: ``H x W`` bool, the pixels the edit was allowed to change.
    """

    image: np.ndarray
    region: np.ndarray


# --------------------------------------------------------------------------- plumbing


def _bounds(mask: np.ndarray, pad: int = 0) -> tuple[int, int, int, int] | None:
    """``(r0, r1, c0, c1)`` of the True pixels of ``mask`` (padded, clipped), None when empty."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    h, w = mask.shape
    return (
        max(int(rows[0]) - pad, 0),
        min(int(rows[-1]) + 1 + pad, h),
        max(int(cols[0]) - pad, 0),
        min(int(cols[-1]) + 1 + pad, w),
    )


def _composite(
    image: np.ndarray,
    a: HairAnalysis,
    sub: tuple[int, int, int, int],
    edited: np.ndarray,
    weight: np.ndarray,
) -> HairEdit:
    """Blend ``edited`` (float RGB 0-255 over ``sub`` of the box) in by ``weight``; only where weight > 0."""
    x0, y0 = a.box[:2]
    r0, r1, c0, c1 = sub
    out = image.copy()
    region = np.zeros(image.shape[:2], bool)
    change = weight > 0
    if change.any():
        roi = out[y0 + r0 : y0 + r1, x0 + c0 : x0 + c1]
        src = roi[change].astype(np.float32)
        w = weight[change][:, None]
        roi[change] = np.clip(src + (edited[change] - src) * w + 0.5, 0, 255).astype(np.uint8)
        region[y0 + r0 : y0 + r1, x0 + c0 : x0 + c1] = change
    return HairEdit(out, region)


def _grid(
    a: HairAnalysis, sub: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Image coordinates ``(x, y)`` of the pixels of ``sub`` and their face coordinates:
    ``s`` across the face (eye distances from its centre line), ``h`` height above the brows (pixels)."""
    x0, y0 = a.box[:2]
    r0, r1, c0, c1 = sub
    yy, xx = np.mgrid[y0 + r0 : y0 + r1, x0 + c0 : x0 + c1].astype(np.float32)
    across = a.across
    r, l_ = T.eye_centers(a.landmarks)
    centre = float(((r + l_) / 2) @ across)
    s = (xx * across[0] + yy * across[1] - centre) / a.eye_distance
    h = xx * a.up[0] + yy * a.up[1] - a.brow_top
    return xx, yy, s, h


def _column(a: HairAnalysis, values: np.ndarray) -> np.ndarray:
    """Per-column values with the gaps (NaN) filled from the nearest valid columns."""
    v = np.asarray(values, np.float32)
    ok = np.isfinite(v)
    if not ok.any():
        raise ConfigError("no hairline to work from")
    return np.interp(a.columns, a.columns[ok], v[ok]).astype(np.float32)


def robust_hairline(a: HairAnalysis) -> np.ndarray:
    """Per-column hairline heights with stray columns (a temple's side hair, a dark patch of
    forehead) replaced by a smooth dome fitted to the others (``h = c0 + c1 s + c2 s^2``)."""
    h = np.asarray(a.hairline_height, np.float64)
    s = a.columns.astype(np.float64)
    ok = np.isfinite(h) & (np.abs(s) <= 0.8)
    if ok.sum() < 5:
        ok = np.isfinite(h)
    if ok.sum() < 3:
        raise ConfigError("no hairline to work from")
    keep = ok.copy()
    for _ in range(3):
        coef = np.polyfit(s[keep], h[keep], 2)
        fit = np.polyval(coef, s)
        tol = 0.15 * max(float(np.median(h[ok])), 1.0)
        keep = ok & (np.abs(h - fit) <= tol)
        if keep.sum() < 3:
            keep = ok
            break
    # the middle follows the dome where a column strays; the temples keep what was measured
    # (a hairline really does come down at the sides)
    outer = np.isfinite(h) & (np.abs(s) > 0.6)
    out = np.where(keep | outer, h, fit)
    return _smooth_columns(np.maximum(out, 0.0).astype(np.float32))


def _smooth_columns(v: np.ndarray, passes: int = 2) -> np.ndarray:
    out = v.astype(np.float32)
    for _ in range(passes):
        padded = np.concatenate([out[:1], out, out[-1:]])
        out = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return out


def _along(a: HairAnalysis, s: np.ndarray, per_column: np.ndarray) -> np.ndarray:
    """Per-column values interpolated at offsets ``s`` (eye distances), held beyond the end columns."""
    return np.interp(s.ravel(), a.columns, per_column).astype(np.float32).reshape(s.shape)


def _taper(s: np.ndarray, flat: float, end: float) -> np.ndarray:
    """1 for ``|s| <= flat``, a cosine fade to 0 at ``|s| = end``."""
    t = np.clip((np.abs(s) - flat) / max(end - flat, 1e-6), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)


def _forehead_span(a: HairAnalysis) -> tuple[float, float]:
    """Middle and half-width of the forehead across the face (eye distances), from the face
    oval at brow height: off-centre for a turned head."""
    oval = a.landmarks[T.FACE_OVAL, :2]
    r, l_ = T.eye_centers(a.landmarks)
    centre = float(((r + l_) / 2) @ a.across)
    height = oval @ a.up - a.brow_top
    near = np.abs(height) < 0.35 * a.eye_distance
    pts = oval[near] if near.sum() >= 2 else oval
    across = (pts @ a.across - centre) / a.eye_distance
    lo, hi = float(across.min()), float(across.max())
    return (lo + hi) / 2, (hi - lo) / 2


def _lab_to_rgb(values: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(values.astype(np.float32), cv2.COLOR_Lab2RGB) * 255.0


def _check_unit(name: str, value: float, lo: float, hi: float) -> float:
    value = float(value)
    if not np.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be within [{lo:g}, {hi:g}], got {value:g}")
    return value


# --------------------------------------------------------------------------- recolour


def hair_statistics(image: np.ndarray, a: HairAnalysis) -> tuple[np.ndarray, np.ndarray]:
    """Mean Lab colour and Lab standard deviation of the confident hair (analysis size)."""
    x0, y0, x1, y1 = a.box
    h, w = a.alpha_work.shape
    work = cv2.resize(image[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_AREA)
    px = lab(work)[a.alpha_work > 0.7]
    if len(px) < 10:
        px = lab(work)[a.alpha_work > 0.3]
    return px.mean(0), px.std(0) + 1e-3


def recolor(image: np.ndarray, a: HairAnalysis, target_lab: np.ndarray, *, strength: float = 1.0) -> HairEdit:
    """Dye the hair ``target_lab`` (a Lab colour; see :mod:`~portraitfx.effects.hair.colors`).

    The hair keeps its luminance detail (strands, shading): each pixel's deviation from
    the hair's mean lightness is carried over unchanged, the chroma is the target's plus
    a third of the hair's own variation, and highlights keep their whiteness.
    """
    strength = _check_unit("strength", strength, 0.0, 1.0)
    target = np.asarray(target_lab, np.float32).reshape(3)
    mean, std = hair_statistics(image, a)
    weight = a.alpha * strength
    sub = _bounds(weight > 1.0 / 512)
    if sub is None:
        return HairEdit(image.copy(), np.zeros(image.shape[:2], bool))
    r0, r1, c0, c1 = sub
    x0, y0 = a.box[:2]
    roi = image[y0 + r0 : y0 + r1, x0 + c0 : x0 + c1]
    px = lab(roi)
    new = np.empty_like(px)
    new[..., 0] = target[0] + (px[..., 0] - mean[0])
    highlight = np.clip((px[..., 0] - mean[0]) / (2.0 * std[0]), 0.0, 1.0)
    keep_chroma = 1.0 - 0.4 * highlight
    for c in (1, 2):
        new[..., c] = (target[c] + 0.33 * (px[..., c] - mean[c])) * keep_chroma
    new[..., 0] = np.clip(new[..., 0], 0.0, 100.0)
    return _composite(image, a, sub, _lab_to_rgb(new), weight[r0:r1, c0:c1])


# --------------------------------------------------------------------------- hairline


def adjust_hairline(image: np.ndarray, a: HairAnalysis, amount: float) -> HairEdit:
    """Move the hairline down by ``amount`` times the forehead's height (negative: up).

    ``amount`` is within [-0.6, 0.6]. The warp runs along the face's vertical only:
    between just above the brows and the hairline the forehead is squeezed (or
    stretched) and between the hairline and the top of the hair the person's own hair
    is stretched down over it (or squeezed up); it is full strength across the middle
    of the forehead and fades out toward the temples.
    """
    amount = _check_unit("amount", amount, -0.6, 0.6)
    heights = robust_hairline(a)
    forehead = float(np.median(heights))
    if forehead < 0.15 * a.eye_distance:
        raise ConfigError("the hairline sits on the brows (bangs?); there is no forehead to move it over")
    thickness = _column(a, np.where(np.isfinite(a.hairline_height), a.hair_thickness, np.nan))
    thickness = _smooth_columns(np.minimum(thickness, 1.2 * forehead))
    move = amount * forehead
    low = 0.12 * forehead  # the brows and just above them never move
    top_col = heights + np.maximum(thickness, abs(move) * 1.6 + 2.0)
    # work only where something moves
    xx, yy, s, h = _grid(a, (0, a.shape[0], 0, a.shape[1]))
    band = (np.abs(s) < 1.25) & (h > low) & (h < _along(a, s, top_col))
    sub = _bounds(band, pad=2)
    if sub is None or move == 0:
        return HairEdit(image.copy(), np.zeros(image.shape[:2], bool))
    r0, r1, c0, c1 = sub
    xx, yy, s, h = xx[r0:r1, c0:c1], yy[r0:r1, c0:c1], s[r0:r1, c0:c1], h[r0:r1, c0:c1]
    hl = _along(a, s, heights)
    top = _along(a, s, top_col)
    d = move * _taper(s, 0.75, 1.2)
    src = h.copy()
    skin = (h > low) & (h < hl - d)
    src[skin] = low + (h[skin] - low) * (hl[skin] - low) / np.maximum(hl[skin] - d[skin] - low, 1e-3)
    hair = (h >= hl - d) & (h < top)
    src[hair] = hl[hair] + (h[hair] - (hl[hair] - d[hair])) * (top[hair] - hl[hair]) / np.maximum(
        top[hair] - hl[hair] + d[hair], 1e-3
    )
    # never move anything outside the hair/forehead region: the shift fades to 0 before its edge
    allowed = edit_region(a, image.shape)[a.box[1] : a.box[3], a.box[0] : a.box[2]][r0:r1, c0:c1]
    k = max(int(0.05 * a.eye_distance) * 2 + 1, 3)
    inner = cv2.erode(allowed.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    soft = cv2.blur(inner.astype(np.float32), (k, k)) * inner
    shift = (src - h) * soft
    moving = np.abs(shift) > 1e-3
    map_x = (xx + shift * a.up[0]).astype(np.float32)
    map_y = (yy + shift * a.up[1]).astype(np.float32)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return _composite(image, a, sub, warped.astype(np.float32), moving.astype(np.float32))


# --------------------------------------------------------------------------- sparse fill


def fill_sparse(
    image: np.ndarray, a: HairAnalysis, *, amount: float = 1.0, threshold: float = 0.85
) -> HairEdit:
    """Thicken thin hair: where the density is below ``threshold``, lay the colour of the
    dense hair around it with strand detail copied from the densest hair nearby.

    ``amount`` (0..1) scales the effect.
    """
    amount = _check_unit("amount", amount, 0.0, 1.0)
    threshold = _check_unit("threshold", threshold, 0.05, 1.0)
    iod_w = a.eye_distance * a.scale
    support = a.support_work
    dens = a.density_work
    # the thinner, the more: full strength once half of the threshold is missing
    sparse = support * np.clip((threshold - dens) / (0.5 * threshold), 0.0, 1.0)
    sparse = cv2.GaussianBlur(sparse, (0, 0), max(0.5, 0.02 * iod_w)) * support
    weight_w = np.clip(sparse, 0.0, 1.0) * amount
    if not (weight_w > 1.0 / 256).any():
        return HairEdit(image.copy(), np.zeros(image.shape[:2], bool))
    x0, y0, x1, y1 = a.box
    hh, ww = a.alpha_work.shape
    work = cv2.resize(image[y0:y1, x0:x1], (ww, hh), interpolation=cv2.INTER_AREA)
    lab_w = lab(work)
    dense = (a.alpha_work * (dens >= threshold)).astype(np.float32)
    sigma = max(1.0, 0.18 * iod_w)
    num = cv2.GaussianBlur(lab_w * dense[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(dense, (0, 0), sigma)[..., None]
    if float(dense.sum()) < 20:
        raise ConfigError("the hair is thin everywhere; there is no dense hair to fill from")
    target_w = num / np.maximum(den, 1e-4)
    far = den[..., 0] < 1e-3  # no dense hair within reach: the hair's overall colour
    target_w[far] = (lab_w * dense[..., None]).sum((0, 1)) / dense.sum()
    # strand detail: from the densest of a few nearby places (a one-step patch search)
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    offsets = [(0.0, 0.0)] + [
        (r * iod_w * np.cos(t), r * iod_w * np.sin(t)) for r in (0.25, 0.45) for t in angles
    ]
    gx, gy = np.meshgrid(np.arange(ww, dtype=np.float32), np.arange(hh, dtype=np.float32))
    best = np.full((hh, ww), -1.0, np.float32)
    choice = np.zeros((hh, ww), np.int32)
    for k, (dx, dy) in enumerate(offsets):
        sample = cv2.remap(
            dense, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1
        )
        better = sample > best + 0.05
        best[better] = sample[better]
        choice[better] = k
    off = np.array(offsets, np.float32)[choice] / a.scale  # image pixels
    weight = a.full(weight_w)
    sub = _bounds(weight > 1.0 / 256, pad=1)
    assert sub is not None
    r0, r1, c0, c1 = sub
    weight = weight[r0:r1, c0:c1]
    h, w = y1 - y0, x1 - x0
    target = cv2.resize(target_w, (w, h), interpolation=cv2.INTER_LINEAR)[r0:r1, c0:c1]
    off_x = cv2.resize(off[..., 0], (w, h), interpolation=cv2.INTER_NEAREST)[r0:r1, c0:c1]
    off_y = cv2.resize(off[..., 1], (w, h), interpolation=cv2.INTER_NEAREST)[r0:r1, c0:c1]
    roi = image[y0:y1, x0:x1]
    lum = lab(roi)[..., 0]
    fine = max(0.8, 0.5 / a.scale)
    detail = lum - cv2.GaussianBlur(lum, (0, 0), fine * 2.0)
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    detail = cv2.remap(detail, xx + off_x, yy + off_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    new = target.copy()
    new[..., 0] = np.clip(target[..., 0] + detail, 0.0, 100.0)
    return _composite(image, a, sub, _lab_to_rgb(new), weight)


# --------------------------------------------------------------------------- bangs


def add_bangs(
    image: np.ndarray, a: HairAnalysis, *, amount: float = 0.75, width: float = 0.85, seed: int = 0
) -> HairEdit:
    """A fringe of the person's own hair over the forehead.

    ``amount`` (0.2..1): how far down the forehead the fringe reaches (1: to the brows).
    ``width`` (0.3..1.1): its width as a share of the forehead's (temple to temple).
    ``seed`` varies the strand tips.
    """
    amount = _check_unit("amount", amount, 0.2, 1.0)
    width = _check_unit("width", width, 0.3, 1.1)
    mid, half = _forehead_span(a)
    half *= width
    heights = robust_hairline(a)
    # a fringe is symmetric about the forehead's middle; reach the higher side's hair
    heights = np.maximum(heights, np.interp(2 * mid - a.columns, a.columns, heights).astype(np.float32))
    forehead = float(np.median(heights[np.abs(a.columns) <= 0.5]))
    if forehead < 0.1 * a.eye_distance:
        raise ConfigError("the hair already covers the forehead; there is no room for bangs")
    centre = np.isfinite(a.hairline_height) & (np.abs(a.columns) <= 0.6)
    thick_all = a.hair_thickness[centre] if centre.any() else a.hair_thickness
    thick = np.full_like(heights, max(float(np.median(thick_all)), 2.0))
    rng = np.random.default_rng(seed)
    iod = a.eye_distance
    # the fringe's lower edge: a share of the forehead, rounded up at the ends, a little uneven
    bottom = np.full_like(heights, forehead * (1.0 - amount) + 0.04 * forehead * amount)
    fine = np.linspace(-1.2, 1.2, 241, dtype=np.float32)
    wave = sum(
        rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * fine + rng.uniform(0, 2 * np.pi))
        for f in (1.3, 2.9, 5.1)
    )
    wave = 0.05 * forehead * wave / 1.8
    xx, yy, s, h = _grid(a, (0, a.shape[0], 0, a.shape[1]))
    hl_full = _along(a, s, heights)
    region = (np.abs(s - mid) < half) & (h > 0.0) & (h < hl_full + 0.15 * forehead)
    sub = _bounds(region, pad=2)
    if sub is None:
        return HairEdit(image.copy(), np.zeros(image.shape[:2], bool))
    r0, r1, c0, c1 = sub
    xx, yy, s, h = xx[r0:r1, c0:c1], yy[r0:r1, c0:c1], s[r0:r1, c0:c1], h[r0:r1, c0:c1]
    hl = _along(a, s, heights)
    th = _along(a, s, thick)
    ends = 1.0 - np.clip(np.abs(s - mid) / half, 0.0, 1.0) ** 6  # 1 in the middle, 0 at the ends
    low = _along(a, s, bottom)
    low = hl - (hl - low) * ends + np.interp(s, fine, wave).astype(np.float32)
    # strand tips: per-pixel-column jitter at the photo's resolution
    tips_n = max(int((c1 - c0) + (r1 - r0)), 8)
    tips = cv2.GaussianBlur(rng.standard_normal((1, tips_n)).astype(np.float32), (0, 0), max(1.0, iod * 0.01))
    tips = tips.ravel() / (tips.std() + 1e-6) * 0.035 * forehead
    pos = (xx * a.across[0] + yy * a.across[1]) - float((xx * a.across[0] + yy * a.across[1]).min())
    low = low + tips[np.clip(pos.astype(np.int64), 0, tips_n - 1)]
    length = np.maximum(hl - low, 1e-3)
    ramp = max(1.5, 0.04 * forehead)
    alpha = np.clip((h - low) / ramp, 0.0, 1.0) * (np.abs(s - mid) < half)
    # blend into the hair above the hairline over a short distance
    over = np.clip((hl + 0.15 * forehead - h) / (0.15 * forehead + 1e-3), 0.0, 1.0)
    alpha = alpha * np.minimum(over * 2.0, 1.0)
    # texture: the hair above the hairline, mirrored down (strands now fall over the forehead)
    k = np.minimum(1.0, 0.6 * th / length)  # stay inside the hair, off its outer edge
    mirror = hl + 0.1 * th + np.abs(hl - h) * k
    shift = np.where(h < hl, mirror - h, 0.0).astype(np.float32)
    # columns with little hair above them borrow it from the nearest column that has plenty
    raw = np.where(np.isfinite(a.hairline_height), a.hair_thickness, 0.0)
    good = raw >= 0.5 * float(np.median(thick))
    if good.any():
        donors = a.columns[good]
        nearest = donors[np.abs(a.columns[:, None] - donors[None, :]).argmin(1)]
        sideways = (_along(a, s, nearest) - s) * iod * (h < hl)
    else:
        sideways = np.zeros_like(s)
    map_x = (xx + shift * a.up[0] + sideways * a.across[0]).astype(np.float32)
    map_y = (yy + shift * a.up[1] + sideways * a.across[1]).astype(np.float32)
    fringe = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(
        np.float32
    )
    # and only hair is copied: where the source is not hair the fringe thins out
    x0, y0 = a.box[:2]
    source_hair = cv2.remap(a.alpha, map_x - x0, map_y - y0, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = alpha * np.where(h < hl, np.clip(source_hair * 1.5, 0.0, 1.0), 1.0)
    # slightly darker toward the tips (the fringe shades itself), and a soft shadow on the skin below
    depth = np.clip((h - low) / length, 0.0, 1.0)
    fringe *= (0.85 + 0.15 * depth)[..., None]
    # strands: fine streaks along the fall of the hair, so even smooth or light hair reads as a fringe
    streaks = cv2.GaussianBlur(
        rng.standard_normal((1, tips_n)).astype(np.float32), (0, 0), max(0.7, iod * 0.006)
    )
    streaks = streaks.ravel() / (streaks.std() + 1e-6)
    fringe *= (1.0 + 0.045 * streaks[np.clip(pos.astype(np.int64), 0, tips_n - 1)])[..., None]
    shadow_w = 0.08 * forehead
    shadow = np.clip(1.0 - (low - h) / shadow_w, 0.0, 1.0) * (h < low) * ends
    base = image[a.box[1] + r0 : a.box[1] + r1, a.box[0] + c0 : a.box[0] + c1].astype(np.float32)
    shaded = base * (1.0 - 0.25 * shadow)[..., None]
    edited = shaded + (fringe - shaded) * alpha[..., None]
    weight = np.maximum(alpha, (shadow > 0).astype(np.float32))
    weight = np.where(weight > 0, 1.0, 0.0).astype(np.float32)
    return _composite(image, a, sub, edited, weight)
