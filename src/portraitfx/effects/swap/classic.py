"""Model-free face swap: the source's face texture on the target's mesh.

Pure functions, each usable on its own; :class:`~.effect.SwapEffect` chains them:

1. :func:`shape_adapted_mesh`: the target's mesh with its outline (jaw, cheeks)
   moved toward the source's face shape, expression and pose kept;
2. :func:`background_displacement`: the target frame deformed around the new
   outline (moving least squares faded out at the zone's edge, so nothing tears);
3. :func:`warp_piecewise_affine`: the source face warped triangle by triangle onto
   that mesh, using only triangles facing the camera in both faces;
4. :func:`transfer_colour`: the source's skin matched to the target's skin tone
   and lighting (Lab statistics + low-frequency illumination);
5. :func:`pyramid_blend`: multi-band blending under a feathered mask that leaves
   out the target's mouth interior and anything occluding the face.

Coordinates are full-frame pixels; meshes are ``(478, 3)`` float32.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from portraitfx._numba import nb
from portraitfx.face import topology as T
from portraitfx.face.pose import umeyama

__all__ = [
    "STABLE_POINTS",
    "background_displacement",
    "colour_stats",
    "grow",
    "identity_mesh",
    "measure_step",
    "mesh_triangles",
    "occluders",
    "pyramid_blend",
    "resize_displacement",
    "shape_adapted_mesh",
    "shrink",
    "skin_occlusion",
    "steady_landmarks",
    "subsample",
    "to_lab",
    "transfer_colour",
    "visible_triangles",
    "warp_piecewise_affine",
]

# points that move little with expression: used to align one face onto another
STABLE_POINTS = np.array(
    [
        10,
        151,
        9,
        8,
        168,
        6,
        197,
        195,
        5,
        4,
        1,
        33,
        133,
        263,
        362,
        234,
        454,
        93,
        323,
        127,
        356,
        70,
        300,
        105,
        334,
    ]
)


@functools.cache
def mesh_triangles() -> np.ndarray:
    """``(T, 3)`` int32 triangles over the 468 mesh points (Delaunay of the frontal canonical face)."""
    from scipy.spatial import Delaunay

    from portraitfx.face.pose import canonical_face

    tri = Delaunay(canonical_face()[: T.N_MESH, :2]).simplices.astype(np.int32)
    tri.setflags(write=False)
    return tri


def visible_triangles(landmarks: np.ndarray, triangles: np.ndarray | None = None) -> np.ndarray:
    """Boolean ``(T,)``: triangles facing the camera (counter-clockwise as in the frontal face)."""
    from portraitfx.face.pose import canonical_face

    tri = mesh_triangles() if triangles is None else triangles
    p = np.asarray(landmarks, np.float64)[:, :2]
    ref = canonical_face()[:, :2].astype(np.float64)
    ref_cross = _default_ref_cross() if triangles is None else _cross(ref, tri)
    cross = _cross(p, tri)
    # same orientation as in the frontal face, and not collapsed to a sliver
    return (np.sign(cross) == np.sign(ref_cross)) & (
        np.abs(cross) > 0.05 * np.abs(ref_cross) * _scale2(p, ref)
    )


def _cross(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Signed doubled area of each triangle ``tri`` of points ``p``."""
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


@functools.lru_cache(maxsize=1)
def _default_ref_cross() -> np.ndarray:
    from portraitfx.face.pose import canonical_face

    out = _cross(canonical_face()[:, :2].astype(np.float64), mesh_triangles())
    out.setflags(write=False)
    return out


def _scale2(p: np.ndarray, ref: np.ndarray) -> float:
    d = np.linalg.norm(p[473] - p[468]) if len(p) >= 478 else np.linalg.norm(p[263] - p[33])
    d_ref = np.linalg.norm(ref[473] - ref[468])
    return float((d / max(d_ref, 1e-9)) ** 2)


def align_mesh(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` mesh ``(N, 2|3)`` moved by the 2-D similarity that best fits its stable points onto ``target``'s."""
    s, r, t = umeyama(np.asarray(source)[STABLE_POINTS, :2], np.asarray(target)[STABLE_POINTS, :2])
    return (s * np.asarray(source, np.float64)[:, :2] @ r.T + t).astype(np.float32)


def shape_adapted_mesh(
    target: np.ndarray, source: np.ndarray, strength: float = 0.6, aligned: np.ndarray | None = None
) -> np.ndarray:
    """The target's mesh with its outline moved toward the source's face shape.

    Args:
        target: ``(478, 2|3)`` target mesh (pose, expression).
        source: ``(478, 2|3)`` source mesh (identity).
        strength: 0 keeps the target's outline, 1 takes the source's (aligned).
        aligned: ``align_mesh(source, target)``, if already at hand.

    Returns:
        ``(478, 2)`` float32 mesh: outline blended, everything else the target's.
    """
    out = np.asarray(target, np.float32)[:, :2].copy()
    if aligned is None:
        aligned = align_mesh(source, target)
    oval = list(T.FACE_OVAL)
    # the top of the head (forehead, hairline) stays: only jaw and cheeks follow the source
    t_pts = out[oval]
    eye_y = (
        out[[T.RIGHT_IRIS_CENTER, T.LEFT_IRIS_CENTER], 1].mean()
        if len(out) >= 478
        else out[[33, 263], 1].mean()
    )
    weight = np.clip((t_pts[:, 1] - eye_y) / max(np.ptp(out[:, 1]) * 0.25, 1e-6), 0, 1)[:, None] * strength
    out[oval] = t_pts + weight * (aligned[oval] - t_pts)
    return out


_FEATURES = (
    T.LEFT_EYE + T.LEFT_IRIS + (T.LEFT_IRIS_CENTER,),
    T.RIGHT_EYE + T.RIGHT_IRIS + (T.RIGHT_IRIS_CENTER,),
    T.LEFT_EYEBROW,
    T.RIGHT_EYEBROW,
    T.NOSE,
    T.LIPS_OUTER + T.LIPS_INNER,
)


# the openings identity_mesh can widen or narrow: feature group -> the points that open,
# and the two corners they open from
_OPENINGS = {0: T.LEFT_EYE, 1: T.RIGHT_EYE, 5: T.LIPS_INNER}
_CORNERS = {0: (263, 362), 1: (33, 133), 5: (78, 308)}
_OPENINGS_ORDER = (0, 1, 5)
_GROUPS = tuple(np.array(g, np.intp) for g in _FEATURES)
_OVAL = np.array(T.FACE_OVAL, np.intp)
# per opening: the rows of its group that open, and the rows of its two corners
_OPENING_ROWS = {
    i: (
        np.array([_FEATURES[i].index(j) for j in lids], np.intp),
        _FEATURES[i].index(_CORNERS[i][0]),
        _FEATURES[i].index(_CORNERS[i][1]),
    )
    for i, lids in _OPENINGS.items()
}

# the same, flat for the compiled feature step: group g is _GROUP_IDX[_GROUP_STARTS[g]:_GROUP_STARTS[g + 1]];
# its opening rows (positions in the group) _OPEN_IDX[_OPEN_STARTS[g]:_OPEN_STARTS[g + 1]], corners _OPEN_A/_OPEN_B
_GROUP_IDX = np.concatenate(_GROUPS).astype(np.int64)
_GROUP_STARTS = np.cumsum([0] + [len(g) for g in _GROUPS]).astype(np.int64)
_OPEN_IDX = np.concatenate(
    [_OPENING_ROWS[i][0] if i in _OPENING_ROWS else np.zeros(0, np.intp) for i in range(len(_GROUPS))]
).astype(np.int64)
_OPEN_STARTS = np.cumsum(
    [0] + [len(_OPENING_ROWS[i][0]) if i in _OPENING_ROWS else 0 for i in range(len(_GROUPS))]
).astype(np.int64)
_OPEN_A = np.array([_OPENING_ROWS[i][1] if i in _OPENING_ROWS else -1 for i in range(len(_GROUPS))], np.int64)
_OPEN_B = np.array([_OPENING_ROWS[i][2] if i in _OPENING_ROWS else -1 for i in range(len(_GROUPS))], np.int64)


@nb.njit(cache=True, nogil=True)
def _moved_features(
    t: np.ndarray,
    s: np.ndarray,
    idx: np.ndarray,
    starts: np.ndarray,
    features: float,
    open_idx: np.ndarray,
    open_starts: np.ndarray,
    open_a: np.ndarray,
    open_b: np.ndarray,
    factor: np.ndarray,
) -> np.ndarray:
    """Each feature group of ``t`` moved to the place and size of the same group of ``s``
    (by ``features``), keeping its own shape; openings scaled by ``factor`` across the
    line between their corners. ``(len(idx), 2)`` float64, in ``idx`` order."""
    out = np.empty((idx.shape[0], 2))
    for g in range(starts.shape[0] - 1):
        lo, hi = starts[g], starts[g + 1]
        n = hi - lo
        ctx = cty = csx = csy = 0.0
        for j in range(lo, hi):
            ctx += t[idx[j], 0]
            cty += t[idx[j], 1]
            csx += s[idx[j], 0]
            csy += s[idx[j], 1]
        ctx, cty, csx, csy = ctx / n, cty / n, csx / n, csy / n
        vt = vs = 0.0
        for j in range(lo, hi):
            vt += (t[idx[j], 0] - ctx) ** 2 + (t[idx[j], 1] - cty) ** 2
            vs += (s[idx[j], 0] - csx) ** 2 + (s[idx[j], 1] - csy) ** 2
        st = np.sqrt(vt / n) + 1e-6
        ss = np.sqrt(vs / n) + 1e-6
        k = (ss / st) ** features
        for j in range(lo, hi):
            out[j, 0] = (t[idx[j], 0] - ctx) * k + ctx + features * (csx - ctx)
            out[j, 1] = (t[idx[j], 1] - cty) * k + cty + features * (csy - cty)
        if open_a[g] >= 0 and factor[g] != 1.0:
            ax, ay = out[lo + open_a[g], 0], out[lo + open_a[g], 1]
            dx, dy = out[lo + open_b[g], 0] - ax, out[lo + open_b[g], 1] - ay
            length = max(np.hypot(dx, dy), 1e-9)
            nx, ny = -dy / length, dx / length
            for q in range(open_starts[g], open_starts[g + 1]):
                r = lo + open_idx[q]
                offset = (out[r, 0] - ax) * nx + (out[r, 1] - ay) * ny
                out[r, 0] += (factor[g] - 1.0) * offset * nx
                out[r, 1] += (factor[g] - 1.0) * offset * ny
    return out


def identity_mesh(
    target: np.ndarray,
    source: np.ndarray,
    shape: float = 0.6,
    features: float = 0.8,
    openness: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """The mesh the swapped face is drawn on: the source's proportions, the target's pose and expression.

    The outline moves toward the source's (see :func:`shape_adapted_mesh`); each
    feature (eyes, brows, nose, lips) moves to the source's place and size, aligned
    to the target's head, but keeps the target's own shape, so an open mouth or a
    closed eye stays so; the rest of the mesh follows smoothly (moving least squares).

    Args:
        target: ``(478, 2|3)`` target mesh.
        source: ``(478, 2|3)`` source mesh.
        shape: outline strength (0..1).
        features: feature placement strength (0..1).
        openness: factors for how far the left eye, the right eye and the mouth open
            (1 = as the target's); the swap uses them to correct what the source's
            texture does to the apparent openness (a squint, thick lips).

    Returns:
        ``(478, 2)`` float32.
    """
    from portraitfx.effects.stylize.guides import mls_deform

    t = np.asarray(target, np.float64)[:, :2]
    aligned = align_mesh(source, target)
    s = aligned.astype(np.float64)
    outline = shape_adapted_mesh(target, source, shape, aligned).astype(np.float64)
    factor = np.ones(len(_GROUPS))
    if openness is not None:
        for i in _OPENING_ROWS:
            factor[i] = float(openness[_OPENINGS_ORDER.index(i)])
    moved = _moved_features(
        np.ascontiguousarray(t), np.ascontiguousarray(s), _GROUP_IDX, _GROUP_STARTS, float(features),
        _OPEN_IDX, _OPEN_STARTS, _OPEN_A, _OPEN_B, factor,
    )  # fmt: skip
    src_pts = np.concatenate([t[_OVAL], t[_GROUP_IDX]])
    dst_pts = np.concatenate([outline[_OVAL], moved])
    out = mls_deform(t, src_pts, dst_pts)
    return out.astype(np.float32)


def background_displacement(
    old: np.ndarray, new: np.ndarray, zone: np.ndarray, reach: float, *, coarse: int = 1
) -> np.ndarray:
    """Where each pixel of a region reads from so that points ``old (K, 2)`` move to ``new (K, 2)``.

    A moving-least-squares inverse map over the region, as an offset from each pixel,
    faded to zero toward the edge of ``zone`` (``h x w`` bool): the deformation is
    full within ``reach / 2`` pixels of the outlines and nothing outside the zone
    moves, so nothing tears.

    Args:
        coarse: compute the (smooth) field on a grid this many times coarser; bring it
            to any size with :func:`resize_displacement`.

    Returns:
        ``(ceil(h / coarse), ceil(w / coarse), 2)`` float32 (x, y) offsets in that
        grid's pixels; at ``coarse=1`` add the pixel's own position for a ``cv2.remap`` map.
    """
    from portraitfx.effects.stylize.guides import mls_positional_guide, smooth

    h, w = zone.shape
    c = max(int(coarse), 1)
    hs, ws = -(-h // c), -(-w // c)
    if c > 1:
        # the region's pixel centres on the coarse grid, as cv2.resize relates them
        k = np.array([ws / w, hs / h])
        old, new = (
            (np.asarray(old, np.float64) + 0.5) * k - 0.5,
            (np.asarray(new, np.float64) + 0.5) * k - 0.5,
        )
        zone = cv2.resize(zone.astype(np.float32), (ws, hs), interpolation=cv2.INTER_AREA) > 0.5
        reach = reach * float(k.mean())
    grid = mls_positional_guide(new, old, (ws, hs), step=max(2, int(round(reach / 3))))
    fade = smooth(shrink(zone, reach / 2).astype(np.float32), reach / 4 + 0.5) * zone
    grid[..., 0] -= np.arange(ws, dtype=np.float32)[None, :]
    grid[..., 1] -= np.arange(hs, dtype=np.float32)[:, None]
    return cv2.multiply(grid, cv2.merge([fade, fade]))


def resize_displacement(disp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A displacement field (``h x w x 2`` offsets in its own pixels) resampled to ``size = (w, h)``."""
    h, w = disp.shape[:2]
    if (w, h) == tuple(size):
        return disp
    out = cv2.resize(disp, size, interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= np.float32(size[0] / w)
    out[..., 1] *= np.float32(size[1] / h)
    return out


def warp_piecewise_affine(
    source: np.ndarray,
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    roi: tuple[int, int, int, int],
    triangles: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``source`` triangle by triangle so ``src_pts`` land on ``dst_pts`` (inside ``roi``).

    Args:
        source: ``H x W x 3`` uint8 image holding the texture.
        src_pts: ``(N, 2)`` points in ``source``.
        dst_pts: ``(N, 2)`` points in the output frame.
        roi: ``(x0, y0, x1, y1)`` output region to fill.
        triangles: ``(T, 3)`` vertex indices to use.

    Returns:
        ``(patch, covered)``: ``(y1-y0, x1-x0, 3)`` uint8 and an ``(y1-y0, x1-x0)`` bool
        mask of the pixels some triangle covers.
    """
    x0, y0, x1, y1 = roi
    w, h = x1 - x0, y1 - y0
    tri = np.ascontiguousarray(triangles, np.int64)
    dst = np.ascontiguousarray(np.asarray(dst_pts, np.float64)[:, :2] - [x0, y0])
    src = np.ascontiguousarray(np.asarray(src_pts, np.float64)[:, :2])
    map_x, map_y, covered = _raster_maps(dst, src, tri, h, w)
    patch = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return patch, covered


@nb.njit(cache=True, nogil=True)
def _raster_maps(
    dst: np.ndarray, src: np.ndarray, tri: np.ndarray, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every pixel covered by a ``dst`` triangle, its position in ``src`` (barycentric).

    Each triangle is scanned row by row over the span its three edges allow (the
    barycentric coordinates are affine in x, so the span is solved for, not searched).
    """
    map_x = np.zeros((h, w), np.float32)
    map_y = np.zeros((h, w), np.float32)
    covered = np.zeros((h, w), np.bool_)
    eps = 1e-6
    for t in range(tri.shape[0]):
        a, b, c = tri[t, 0], tri[t, 1], tri[t, 2]
        ax, ay, bx, by, cx, cy = dst[a, 0], dst[a, 1], dst[b, 0], dst[b, 1], dst[c, 0], dst[c, 1]
        den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(den) < 1e-9:
            continue
        inv = 1.0 / den
        # l0 = p0 + q0 * x + r0 * y, l1 likewise, l2 = 1 - l0 - l1
        q0, r0 = (by - cy) * inv, (cx - bx) * inv
        p0 = -(q0 * cx + r0 * cy)
        q1, r1 = (cy - ay) * inv, (ax - cx) * inv
        p1 = -(q1 * cx + r1 * cy)
        q2, r2, p2 = -q0 - q1, -r0 - r1, 1.0 - p0 - p1
        # the source position is affine in (x, y) too
        sx0 = p0 * src[a, 0] + p1 * src[b, 0] + p2 * src[c, 0]
        sxx = q0 * src[a, 0] + q1 * src[b, 0] + q2 * src[c, 0]
        sxy = r0 * src[a, 0] + r1 * src[b, 0] + r2 * src[c, 0]
        sy0 = p0 * src[a, 1] + p1 * src[b, 1] + p2 * src[c, 1]
        syx = q0 * src[a, 1] + q1 * src[b, 1] + q2 * src[c, 1]
        syy = r0 * src[a, 1] + r1 * src[b, 1] + r2 * src[c, 1]
        xa = max(int(np.floor(min(ax, bx, cx))), 0)
        xb = min(int(np.ceil(max(ax, bx, cx))), w - 1)
        ya = max(int(np.floor(min(ay, by, cy))), 0)
        yb = min(int(np.ceil(max(ay, by, cy))), h - 1)
        for y in range(ya, yb + 1):
            lo, hi = float(xa), float(xb)
            # each l_i(x) = k + q * x >= -eps bounds x on one side
            for k, q in ((p0 + r0 * y, q0), (p1 + r1 * y, q1), (p2 + r2 * y, q2)):
                if q > 1e-12:
                    lo = max(lo, (-eps - k) / q)
                elif q < -1e-12:
                    hi = min(hi, (-eps - k) / q)
                elif k < -eps:
                    hi = lo - 1.0
            x0 = max(int(np.ceil(lo)), xa)
            x1 = min(int(np.floor(hi)), xb)
            bx_ = sx0 + sxy * y
            by_ = sy0 + syy * y
            for x in range(x0, x1 + 1):
                map_x[y, x] = bx_ + sxx * x
                map_y[y, x] = by_ + syx * x
                covered[y, x] = True
    return map_x, map_y, covered


def measure_step(sigma: float, shape: tuple[int, ...]) -> int:
    """Every how many pixels :func:`transfer_colour` measures (statistics and lighting).

    Both are averages over many pixels (the lighting a blur of ``sigma`` pixels), so
    every second pixel in each direction gives the same answer for a quarter of the work.
    """
    return 2 if sigma >= 4.0 and min(shape[:2]) >= 64 else 1


def subsample(image: np.ndarray, step: int) -> np.ndarray:
    """Every ``step``-th pixel of ``image`` in each direction (a contiguous array)."""
    return image if step == 1 else np.ascontiguousarray(image[::step, ::step])


def transfer_colour(
    patch: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    strength: float = 1.0,
    lighting: float = 0.7,
    sigma: float = 8.0,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    labs: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Match the source patch's colour to the target's skin, then its lighting.

    Args:
        patch: ``h x w x 3`` uint8 warped source face.
        target: ``h x w x 3`` uint8 target pixels under the patch.
        mask: ``h x w`` bool skin pixels to measure both on.
        strength: 0 keeps the source's skin tone, 1 takes the target's.
        lighting: share of the target's low-frequency shading given to the patch.
        sigma: blur (pixels) separating lighting from detail.
        stats: precomputed ``(gain, offset)`` (e.g. smoothed over video frames).
        labs: ``patch`` in float32 Lab (:func:`to_lab`) and ``target``'s measured pixels
            (``subsample(target, measure_step(sigma, target.shape))``) in Lab, if at hand.

    Returns:
        ``(patch, (gain, offset))``: the corrected patch and the Lab transfer used.
    """
    from portraitfx.effects.stylize.guides import smooth

    h, w = patch.shape[:2]
    step = measure_step(sigma, patch.shape)
    if labs is not None:
        src_lab, tgt_lab = labs
    else:
        src_lab, tgt_lab = to_lab(patch), to_lab(subsample(target, step))
    mask_s = subsample(mask, step)
    if stats is None:
        stats = colour_stats(subsample(src_lab, step), tgt_lab, mask_s, strength)
    gain, offset = stats
    out = cv2.transform(src_lab, np.concatenate([np.diag(gain), offset[:, None]], 1).astype(np.float32))
    if lighting > 0:
        # low-frequency shading of the target (inside the skin), detail of the source
        # (the three masked averages blurred as the channels of one image), measured on
        # every step-th pixel and brought back to full size (it is smooth)
        m = mask_s.astype(np.float32)
        low = smooth(cv2.merge([m, tgt_lab[..., 0] * m, out[::step, ::step, 0] * m]), sigma / step)
        weight = low[..., 0] + np.float32(1e-4)
        shade = lighting * (low[..., 1] - low[..., 2]) / weight * (weight > 0.2)
        if step > 1:
            shade = cv2.resize(shade.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        out[..., 0] += shade
    return cv2.cvtColor(np.clip(out, 0, 255, out=out).astype(np.uint8), cv2.COLOR_LAB2RGB), stats


def to_lab(image: np.ndarray) -> np.ndarray:
    """``h x w x 3`` uint8 RGB as float32 Lab in OpenCV's 8-bit scaling (L, a, b all 0..255)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)


def colour_stats(
    src_lab: np.ndarray, tgt_lab: np.ndarray, mask: np.ndarray, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(gain, offset)`` taking the source's Lab mean and spread toward the target's."""
    m8 = mask.astype(np.uint8)
    if cv2.countNonZero(m8) < 16:
        return np.ones(3, np.float32), np.zeros(3, np.float32)
    s_mean, s_std = (v.ravel() for v in cv2.meanStdDev(src_lab, mask=m8))
    t_mean, t_std = (v.ravel() for v in cv2.meanStdDev(tgt_lab, mask=m8))
    s_std, t_std = s_std + 1e-3, t_std + 1e-3
    gain = 1.0 + strength * (np.clip(t_std / s_std, 0.5, 2.0) - 1.0)
    offset = (1 - strength) * s_mean + strength * t_mean - gain * s_mean
    return gain.astype(np.float32), offset.astype(np.float32)


def grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilate a boolean mask by ``radius`` pixels (Euclidean; fast for large radii)."""
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3) <= radius


def shrink(mask: np.ndarray, radius: float) -> np.ndarray:
    """Erode a boolean mask by ``radius`` pixels (Euclidean; fast for large radii)."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3) > radius


def skin_occlusion(target: np.ndarray, skin: np.ndarray, threshold: float = 3.5) -> np.ndarray:
    """Pixels inside the face that do not look like the face's skin (hands, hair, glasses).

    A Gaussian colour model (Cr, Cb and a loose luminance term) is fitted on the
    face's skin; pixels far from it (Mahalanobis distance over ``threshold``) are
    occluders.

    Args:
        target: ``h x w x 3`` uint8 target region.
        skin: ``h x w`` bool skin pixels of the face (from the mesh).

    Returns:
        ``h x w`` bool: True where something covers the face.
    """
    h, w = skin.shape
    if min(h, w) > 240:  # the colour model needs no more than ~240 px: work at half size
        half = skin_occlusion(cv2.resize(target, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                              cv2.resize(skin.astype(np.uint8), (w // 2, h // 2), interpolation=cv2.INTER_NEAREST) > 0,
                              threshold)  # fmt: skip
        return cv2.resize(half.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    ycc = cv2.cvtColor(target, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    feats = np.stack([ycc[..., 1], ycc[..., 2], ycc[..., 0] * 0.25], -1)
    # the skin's features as rows (3 x n): NumPy reduces along contiguous rows far faster
    pix = np.ascontiguousarray(feats[skin].T, np.float64)
    if pix.shape[1] < 32:
        return np.zeros(skin.shape, bool)
    # robust fit: drop the farthest 15 % once (occluders inside the skin mask)
    mean, cov = _mean_cov(pix)
    centred = pix - mean[:, None]
    d = ((np.linalg.inv(cov) @ centred) * centred).sum(0)
    keep = pix[:, d <= _quantile(d, 0.85)]
    mean, cov = _mean_cov(keep)
    # whitening: |A (x - mean)|^2 is the squared Mahalanobis distance when A^T A = cov^-1
    a = np.linalg.cholesky(np.linalg.inv(cov)).T
    white = cv2.transform(feats, np.concatenate([a, -(a @ mean)[:, None]], 1).astype(np.float32))
    dist2 = cv2.transform(cv2.multiply(white, white), np.ones((1, 3), np.float32))
    occ = (dist2 > threshold * threshold).astype(np.uint8)
    occ = cv2.morphologyEx(occ, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    return occ > 0


def _mean_cov(pix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (sample) covariance of ``3 x n`` float64 points, plus 4 on the diagonal
    (as ``np.cov``, a fraction of its cost)."""
    mean = pix.mean(1)
    centred = pix - mean[:, None]
    return mean, centred @ centred.T / max(pix.shape[1] - 1, 1) + np.eye(3) * 4.0


def _quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) by partial sorting."""
    pos = q * (len(values) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(values) - 1)
    part = np.partition(values, [lo, hi])
    return float(part[lo] + (pos - lo) * (part[hi] - part[lo]))


def occluders(image: np.ndarray, skin: np.ndarray, iod: float, threshold: float = 3.5) -> np.ndarray:
    """What covers a face (hands, hair, glasses): :func:`skin_occlusion` inside the skin proper,
    keeping only blobs big enough to be one (a quarter of the eye distance across), not a mole.

    Args:
        image: ``h x w x 3`` uint8 around the face.
        skin: ``h x w`` bool skin of the face (eyes, brows and lips are holes in it).
        iod: the face's eye distance in pixels.
    """
    occluded = skin_occlusion(image, skin, threshold) & shrink(skin, max(1.0, 0.04 * iod))
    n, labels, blob_stats, _ = cv2.connectedComponentsWithStats(occluded.astype(np.uint8), connectivity=8)
    big = np.zeros(n, bool)
    big[1:] = blob_stats[1:, cv2.CC_STAT_AREA] >= (0.25 * iod) ** 2
    return big[labels]


@nb.njit(cache=True, nogil=True, fastmath=True)
def compose_without_detail(
    full: np.ndarray, change: np.ndarray, smooth: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """``full + change - weight * (full - smooth)`` per value, rounded to uint8: a change
    added to a picture whose own detail (``full`` minus its smooth version) is taken out
    by ``weight`` (0..1). ``full``: ``h x w x 3`` uint8; the others float32 of the same
    shape; all C-contiguous (one flat loop, which the compiler vectorises)."""
    n = full.size
    f_, c_, s_, w_ = full.reshape(n), change.reshape(n), smooth.reshape(n), weight.reshape(n)
    out = np.empty(n, np.uint8)
    lo, hi, half = np.float32(0.0), np.float32(255.0), np.float32(0.5)
    for i in range(n):
        f = np.float32(f_[i])
        out[i] = np.uint8(min(max(f + c_[i] - w_[i] * (f - s_[i]) + half, lo), hi))
    return out.reshape(full.shape)


@nb.njit(cache=True, nogil=True)
def steady_landmarks(
    detected: np.ndarray, last: np.ndarray, motion: np.ndarray, stable: np.ndarray, follow: float, pull: float
) -> np.ndarray:
    """Last frame's landmarks moved by the face's ``motion`` (2x3 similarity), taking
    ``follow`` of the detected mesh's expression (its shape in the predicted pose) and
    ``pull`` of its pose (see ``SwapEffect._steady``). All ``(N, 3)`` float64."""
    n = detected.shape[0]
    a, b, tx = motion[0, 0], motion[0, 1], motion[0, 2]
    c, d, ty = motion[1, 0], motion[1, 1], motion[1, 2]
    scale = np.sqrt(abs(a * d - b * c))
    predicted = np.empty((n, 3))
    for i in range(n):
        x, y = last[i, 0], last[i, 1]
        predicted[i, 0] = a * x + b * y + tx
        predicted[i, 1] = c * x + d * y + ty
        predicted[i, 2] = last[i, 2] * scale
    # the detected shape in the predicted pose: a 2-D least-squares similarity (closed form)
    k = stable.shape[0]
    msx = msy = mdx = mdy = 0.0
    for j in range(k):
        i = stable[j]
        msx += detected[i, 0]
        msy += detected[i, 1]
        mdx += predicted[i, 0]
        mdy += predicted[i, 1]
    msx, msy, mdx, mdy = msx / k, msy / k, mdx / k, mdy / k
    dot = cross = norm = 0.0
    for j in range(k):
        i = stable[j]
        ax, ay = detected[i, 0] - msx, detected[i, 1] - msy
        bx, by = predicted[i, 0] - mdx, predicted[i, 1] - mdy
        dot += ax * bx + ay * by
        cross += ax * by - ay * bx
        norm += ax * ax + ay * ay
    length = np.hypot(dot, cross)
    cs, sn = (dot / length, cross / length) if length > 0 else (1.0, 0.0)
    s = length / norm if norm > 0 else 1.0
    t0 = mdx - s * (cs * msx - sn * msy)
    t1 = mdy - s * (sn * msx + cs * msy)
    steady = np.empty((n, 3))
    for i in range(n):
        x, y = detected[i, 0], detected[i, 1]
        sx = s * (cs * x - sn * y) + t0
        sy = s * (sn * x + cs * y) + t1
        steady[i, 0] = predicted[i, 0] + follow * (sx - predicted[i, 0])
        steady[i, 1] = predicted[i, 1] + follow * (sy - predicted[i, 1])
        steady[i, 2] = predicted[i, 2] + follow * (detected[i, 2] * s - predicted[i, 2])
    # the pose drifts toward the detected one: part of the inverse similarity
    i00, i01, i10, i11 = cs / s, sn / s, -sn / s, cs / s  # inv_r = R.T / s
    m00, m01 = 1.0 + pull * (i00 - 1.0), pull * i01
    m10, m11 = pull * i10, 1.0 + pull * (i11 - 1.0)
    cx = cy = 0.0
    for i in range(min(468, n)):
        cx += steady[i, 0]
        cy += steady[i, 1]
    cx, cy = cx / min(468, n), cy / min(468, n)
    gx = (cx - t0) * i00 + (cy - t1) * i01
    gy = (cx - t0) * i10 + (cy - t1) * i11
    ox, oy = cx + pull * (gx - cx), cy + pull * (gy - cy)
    z = 1.0 + pull * (1.0 / s - 1.0)
    for i in range(n):
        x, y = steady[i, 0] - cx, steady[i, 1] - cy
        steady[i, 0] = m00 * x + m01 * y + ox
        steady[i, 1] = m10 * x + m11 * y + oy
        steady[i, 2] *= z
    return steady


def pyramid_blend(
    background: np.ndarray, foreground: np.ndarray, mask: np.ndarray, levels: int = 5
) -> np.ndarray:
    """Multi-band (Laplacian pyramid) blend of two ``h x w x 3`` uint8 images under ``mask`` (float, 0..1).

    Only the mask's bounding box (plus the reach of the coarsest band) is computed.
    """
    h, w = mask.shape
    levels = max(1, min(levels, int(np.log2(max(min(h, w), 2))) - 2))
    ys, xs = (
        np.nonzero(cv2.reduce(mask, 1, cv2.REDUCE_MAX)[:, 0] > 0)[0],
        np.nonzero(cv2.reduce(mask, 0, cv2.REDUCE_MAX)[0] > 0)[0],
    )
    if len(ys) == 0:
        return background.copy()
    pad = 2 ** (levels + 1)
    y0, y1 = max(int(ys[0]) - pad, 0), min(int(ys[-1]) + pad + 1, h)
    x0, x1 = max(int(xs[0]) - pad, 0), min(int(xs[-1]) + pad + 1, w)
    if (y1 - y0) * (x1 - x0) < 0.8 * h * w:
        out = background.copy()
        out[y0:y1, x0:x1] = pyramid_blend(
            background[y0:y1, x0:x1],
            foreground[y0:y1, x0:x1],
            np.ascontiguousarray(mask[y0:y1, x0:x1]),
            levels,
        )
        return out
    # the background's own bands pass through unchanged, so only the difference needs a
    # pyramid: out = background + sum over bands of band(foreground - background) * mask
    g_d = [cv2.subtract(foreground, background, dtype=cv2.CV_32F)]
    g_m = [mask.astype(np.float32)]
    for _ in range(levels):
        g_d.append(cv2.pyrDown(g_d[-1]))
        g_m.append(cv2.pyrDown(g_m[-1]))
    out = cv2.multiply(g_d[-1], cv2.merge([g_m[-1]] * 3))
    for i in range(levels - 1, -1, -1):
        size = (g_d[i].shape[1], g_d[i].shape[0])
        band = cv2.subtract(g_d[i], cv2.pyrUp(g_d[i + 1], dstsize=size))
        out = cv2.add(cv2.pyrUp(out, dstsize=size), cv2.multiply(band, cv2.merge([g_m[i]] * 3)))
    return cv2.add(background, out, dtype=cv2.CV_8U)
