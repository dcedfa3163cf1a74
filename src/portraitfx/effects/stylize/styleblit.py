"""Guided patch synthesis: FaceBlit's lookup table + StyleBlit's hierarchical seeds.

Given an exemplar (the style) and, for every target pixel, guide values (the
exemplar position it corresponds to and an appearance value), synthesis copies
whole chunks of the exemplar:

1. **Lookup table** (built once per style): for every cell of a coarse grid over
   the exemplar and every quantised appearance level, the exemplar pixel ``p``
   minimising ``|p - c|^2 + w_app^2 (app(p) - a)^2``. For each level this is a
   2-D generalised distance transform of ``w_app^2 (app - a)^2`` (Felzenszwalb &
   Huttenlocher), linear in the number of pixels: no window search.
2. **Seeds** (StyleBlit): each target pixel looks at the nearest seed of a
   jittered grid, coarsest level first. The seed's match comes from the table;
   the pixel takes the exemplar position ``match(seed) + pos(pixel) - pos(seed)``
   if the guide error there is under a threshold, else tries the next finer
   level, ending with its own table match. Chunks of exemplar texture result.
3. **Temporal reuse**: in video, a pixel first tries the exemplar position it had
   in the previous frame (same place relative to the face).
4. **Voting**: every pixel averages the colours its 3x3 neighbours' chunks predict
   for it, which cleans chunk seams.

Every pixel is computed independently from fixed inputs (the seed jitter is a
hash of the seed's grid index), so results do not depend on the number of threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portraitfx._numba import nb

__all__ = ["LookupTable", "SynthesisParams", "build_lookup_table", "synthesize", "vote"]

_INF = 1e20


@nb.njit(cache=True)
def _envelope(f: np.ndarray, d: np.ndarray, arg: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    """1-D squared-distance transform (lower envelope of parabolas).

    ``d[q] = min_p (q - p)^2 + f[p]`` and ``arg[q]`` the minimising ``p``.
    """
    n = f.shape[0]
    k = 0
    v[0] = 0
    z[0] = -_INF
    z[1] = _INF
    for q in range(1, n):
        s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
        while s <= z[k]:
            k -= 1
            s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
        k += 1
        v[k] = q
        z[k] = s
        z[k + 1] = _INF
    k = 0
    for q in range(n):
        while z[k + 1] < q:
            k += 1
        p = v[k]
        d[q] = (q - p) * (q - p) + f[p]
        arg[q] = p


@nb.njit(cache=True, parallel=True)
def _build_table(app: np.ndarray, cell: int, levels: int, w_app2: float) -> np.ndarray:
    h, w = app.shape
    gy = (h + cell - 1) // cell
    gx = (w + cell - 1) // cell
    table = np.empty((gy, gx, levels, 2), np.int16)
    for lv in nb.prange(levels):
        a = (lv + 0.5) / levels
        n = max(h, w)
        f = np.empty(n)
        d = np.empty(n)
        arg = np.empty(n, np.int64)
        v = np.empty(n, np.int64)
        z = np.empty(n + 1)
        col_d = np.empty((h, w))
        col_arg = np.empty((h, w), np.int64)
        # pass 1: along columns (y) for every x
        for x in range(w):
            for y in range(h):
                diff = app[y, x] - a
                f[y] = w_app2 * diff * diff
            _envelope(f[:h], d[:h], arg[:h], v, z)
            for y in range(h):
                col_d[y, x] = d[y]
                col_arg[y, x] = arg[y]
        # pass 2: along rows (x), only on the rows at cell centres
        for cy in range(gy):
            y = min(cy * cell + cell // 2, h - 1)
            for x in range(w):
                f[x] = col_d[y, x]
            _envelope(f[:w], d[:w], arg[:w], v, z)
            for cx in range(gx):
                x = min(cx * cell + cell // 2, w - 1)
                bx = arg[x]
                table[cy, cx, lv, 0] = bx
                table[cy, cx, lv, 1] = col_arg[y, bx]
    return table


@dataclass
class LookupTable:
    """FaceBlit's lookup table for one exemplar.

    Attributes:
        table: ``(Gy, Gx, L, 2)`` int16 exemplar (x, y) per cell and appearance level.
        cell: cell side in exemplar pixels.
        w_app: weight of the appearance term, in pixels per unit of appearance.
    """

    table: np.ndarray
    cell: int
    w_app: float

    @property
    def levels(self) -> int:
        return int(self.table.shape[2])


def build_lookup_table(
    app: np.ndarray, *, cell: int = 4, levels: int = 32, w_app: float = 250.0
) -> LookupTable:
    """Build the lookup table of an exemplar's appearance guide.

    Args:
        app: ``H x W`` float32 appearance guide of the exemplar, in ``[0, 1]``.
        cell: grid cell side in pixels.
        levels: appearance quantisation levels.
        w_app: pixels of positional error worth one unit of appearance error.
    """
    app = np.ascontiguousarray(app, np.float64)
    table = _build_table(app, int(cell), int(levels), float(w_app) ** 2)
    return LookupTable(table=table, cell=int(cell), w_app=float(w_app))


@dataclass(frozen=True)
class SynthesisParams:
    """Options of :func:`synthesize`.

    Attributes:
        spacings: seed grid spacings in target pixels, coarsest first.
        threshold: guide error (in pixels^2 of positional error) under which a
            chunk is accepted.
        w_app: weight of appearance error (pixels per unit); default: the table's.
        reuse_threshold: error under which a pixel keeps last frame's position.
        seed: seed of the jitter hash (different looks, same quality).
    """

    spacings: tuple[int, ...] = (64, 32, 16, 8, 4)
    threshold: float = 80.0
    w_app: float | None = None
    reuse_threshold: float = 640.0
    seed: int = 0


@nb.njit(cache=True, inline="always")
def _hash(i: int, j: int, level: int, seed: int) -> float:
    h = (i * 73856093) ^ (j * 19349663) ^ (level * 83492791) ^ (seed * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF) / 65536.0


@nb.njit(cache=True, inline="always")
def _error(
    cx: float, cy: float, px: float, py: float, a: float, style_app: np.ndarray, w_app2: float
) -> float:
    h, w = style_app.shape
    if cx < -0.5 or cy < -0.5:
        return _INF
    ix = int(cx + 0.5)
    iy = int(cy + 0.5)
    if ix >= w or iy >= h:
        return _INF
    dx = cx - px
    dy = cy - py
    da = style_app[iy, ix] - a
    return dx * dx + dy * dy + w_app2 * da * da


@nb.njit(cache=True, inline="always")
def _lookup(px: float, py: float, a: float, table: np.ndarray, cell: int, out: np.ndarray) -> None:
    gy, gx, levels, _ = table.shape
    # positions outside the exemplar look up (and copy from) its nearest edge
    px = min(max(px, 0.0), gx * cell - 1.0)
    py = min(max(py, 0.0), gy * cell - 1.0)
    cx = min(max(int(px / cell), 0), gx - 1)
    cy = min(max(int(py / cell), 0), gy - 1)
    lv = min(max(int(a * levels), 0), levels - 1)
    # the table holds the match for the cell centre; carry the sub-cell offset along
    out[0] = max(table[cy, cx, lv, 0] + (px - (cx * cell + cell // 2)), 0.0)
    out[1] = max(table[cy, cx, lv, 1] + (py - (cy * cell + cell // 2)), 0.0)


@nb.njit(cache=True)
def _seeds(h: int, w: int, spacings: np.ndarray, seed: int) -> np.ndarray:
    """Jittered seed positions ``(L, GH, GW, 2)`` (y, x), clamped inside the image."""
    n_levels = spacings.shape[0]
    gh = h // spacings[-1] + 3
    gw = w // spacings[-1] + 3
    out = np.zeros((n_levels, gh, gw, 2), np.int32)
    for level in range(n_levels):
        sp = spacings[level]
        for i in range(min(gh, h // sp + 3)):
            for j in range(min(gw, w // sp + 3)):
                cy = (i + _hash(i, j, level, seed) - 0.5) * sp
                cx = (j + _hash(j, i, level, seed + 7) - 0.5) * sp
                out[level, i, j, 0] = min(max(int(cy + 0.5), 0), h - 1)
                out[level, i, j, 1] = min(max(int(cx + 0.5), 0), w - 1)
    return out


@nb.njit(cache=True, parallel=True)
def _synthesize(
    pos: np.ndarray,
    app: np.ndarray,
    mask: np.ndarray,
    style_app: np.ndarray,
    table: np.ndarray,
    cell: int,
    spacings: np.ndarray,
    seeds: np.ndarray,
    threshold: float,
    w_app2: float,
    prev: np.ndarray,
    has_prev: bool,
    reuse_threshold: float,
) -> np.ndarray:
    h, w = app.shape
    n_levels, gh, gw, _ = seeds.shape
    # the table match of every seed, once per frame
    match = np.empty((n_levels, gh, gw, 2), np.float32)
    for level in nb.prange(n_levels):
        m = np.empty(2)
        sp = spacings[level]
        for i in range(min(gh, h // sp + 3)):
            for j in range(min(gw, w // sp + 3)):
                sy = seeds[level, i, j, 0]
                sx = seeds[level, i, j, 1]
                _lookup(pos[sy, sx, 0], pos[sy, sx, 1], app[sy, sx], table, cell, m)
                match[level, i, j, 0] = m[0] - pos[sy, sx, 0]
                match[level, i, j, 1] = m[1] - pos[sy, sx, 1]
    out = np.full((h, w, 2), -1.0, np.float32)
    for y in nb.prange(h):
        m = np.empty(2)
        for x in range(w):
            if mask[y, x] == 0:
                continue
            px = pos[y, x, 0]
            py = pos[y, x, 1]
            a = app[y, x]
            if (
                has_prev
                and prev[y, x, 0] >= 0.0
                and _error(prev[y, x, 0], prev[y, x, 1], px, py, a, style_app, w_app2) < reuse_threshold
            ):
                out[y, x, 0] = prev[y, x, 0]
                out[y, x, 1] = prev[y, x, 1]
                continue
            done = False
            for level in range(n_levels):
                sp = spacings[level]
                gi = int(y / sp + 0.5)
                gj = int(x / sp + 0.5)
                best = 1e30
                bi = gi
                bj = gj
                for i in range(max(gi - 1, 0), min(gi + 2, gh)):
                    for j in range(max(gj - 1, 0), min(gj + 2, gw)):
                        dy = seeds[level, i, j, 0] - y
                        dx = seeds[level, i, j, 1] - x
                        dd = dy * dy + dx * dx
                        if dd < best:
                            best = dd
                            bi = i
                            bj = j
                # the seed's chunk continued to this pixel: match(seed) + pos(pixel) - pos(seed)
                cx2 = match[level, bi, bj, 0] + px
                cy2 = match[level, bi, bj, 1] + py
                if _error(cx2, cy2, px, py, a, style_app, w_app2) < threshold:
                    out[y, x, 0] = cx2
                    out[y, x, 1] = cy2
                    done = True
                    break
            if not done:
                _lookup(px, py, a, table, cell, m)
                out[y, x, 0] = m[0]
                out[y, x, 1] = m[1]
    return out


_SEED_CACHE: dict[tuple[int, int, tuple[int, ...], int], np.ndarray] = {}


def _seed_grid(h: int, w: int, spacings: tuple[int, ...], seed: int) -> np.ndarray:
    key = (h, w, tuple(int(s) for s in spacings), int(seed))
    grid = _SEED_CACHE.get(key)
    if grid is None:
        if len(_SEED_CACHE) > 32:
            _SEED_CACHE.clear()
        grid = _seeds(h, w, np.asarray(key[2], np.int64), key[3])
        _SEED_CACHE[key] = grid
    return grid


def synthesize(
    pos: np.ndarray,
    app: np.ndarray,
    style_app: np.ndarray,
    table: LookupTable,
    *,
    mask: np.ndarray | None = None,
    prev: np.ndarray | None = None,
    params: SynthesisParams | None = None,
) -> np.ndarray:
    """Find, for every target pixel, the exemplar position to copy.

    Args:
        pos: ``(h, w, 2)`` float32 positional guide (exemplar x, y per target pixel).
        app: ``(h, w)`` float32 target appearance guide, matched to the exemplar's.
        style_app: ``(H, W)`` float32 exemplar appearance guide.
        table: the exemplar's :class:`LookupTable`.
        mask: ``(h, w)`` pixels to synthesise (default all).
        prev: ``(h, w, 2)`` exemplar positions of the previous frame (-1 = none).
        params: :class:`SynthesisParams`.

    Returns:
        ``(h, w, 2)`` float32 exemplar positions; -1 where the mask is off.
    """
    params = params or SynthesisParams()
    h, w = app.shape
    mask_u8 = np.ones((h, w), np.uint8) if mask is None else (np.asarray(mask) > 0).astype(np.uint8)
    has_prev = prev is not None and prev.shape == (h, w, 2)
    prev_arr = np.ascontiguousarray(prev, np.float32) if has_prev else np.full((1, 1, 2), -1.0, np.float32)
    spacings = tuple(sorted({max(int(s), 1) for s in params.spacings}, reverse=True))
    return _synthesize(
        np.ascontiguousarray(pos, np.float32),
        np.ascontiguousarray(app, np.float32),
        mask_u8,
        np.ascontiguousarray(style_app, np.float32),
        table.table,
        table.cell,
        np.asarray(spacings, np.int64),
        _seed_grid(h, w, spacings, params.seed),
        float(params.threshold),
        float(table.w_app if params.w_app is None else params.w_app) ** 2,
        prev_arr,
        bool(has_prev),
        float(params.reuse_threshold),
    )


@nb.njit(cache=True, parallel=True)
def _vote(coords: np.ndarray, pos: np.ndarray, style: np.ndarray, radius: int) -> np.ndarray:
    h, w, _ = coords.shape
    sh, sw, _ = style.shape
    # each pixel's chunk offset (exemplar position minus guide): equal offsets = same chunk
    off = np.empty((h, w, 2), np.float32)
    for y in nb.prange(h):
        for x in range(w):
            if coords[y, x, 0] < 0.0:
                off[y, x, 0] = np.inf
                off[y, x, 1] = np.inf
            else:
                off[y, x, 0] = coords[y, x, 0] - pos[y, x, 0]
                off[y, x, 1] = coords[y, x, 1] - pos[y, x, 1]
    out = np.zeros((h, w, 3), np.uint8)
    for y in nb.prange(h):
        for x in range(w):
            if coords[y, x, 0] < 0.0:
                continue
            ox = off[y, x, 0]
            oy = off[y, x, 1]
            # inside a chunk (every neighbour continues the same offset) voting changes nothing
            same = True
            for dy in range(-radius, radius + 1):
                yy = min(max(y + dy, 0), h - 1)
                for dx in range(-radius, radius + 1):
                    xx = min(max(x + dx, 0), w - 1)
                    if abs(off[yy, xx, 0] - ox) > 0.5 or abs(off[yy, xx, 1] - oy) > 0.5:
                        same = False
                        break
                if not same:
                    break
            if same:
                ix = min(max(int(coords[y, x, 0] + 0.5), 0), sw - 1)
                iy = min(max(int(coords[y, x, 1] + 0.5), 0), sh - 1)
                out[y, x, 0] = style[iy, ix, 0]
                out[y, x, 1] = style[iy, ix, 1]
                out[y, x, 2] = style[iy, ix, 2]
                continue
            px = pos[y, x, 0]
            py = pos[y, x, 1]
            acc0 = 0.0
            acc1 = 0.0
            acc2 = 0.0
            n = 0
            for dy in range(-radius, radius + 1):
                yy = y + dy
                if yy < 0 or yy >= h:
                    continue
                for dx in range(-radius, radius + 1):
                    xx = x + dx
                    if xx < 0 or xx >= w or coords[yy, xx, 0] < 0.0:
                        continue
                    # the neighbour's chunk, continued to this pixel
                    ix = min(max(int(off[yy, xx, 0] + px + 0.5), 0), sw - 1)
                    iy = min(max(int(off[yy, xx, 1] + py + 0.5), 0), sh - 1)
                    acc0 += style[iy, ix, 0]
                    acc1 += style[iy, ix, 1]
                    acc2 += style[iy, ix, 2]
                    n += 1
            out[y, x, 0] = int(acc0 / n + 0.5)
            out[y, x, 1] = int(acc1 / n + 0.5)
            out[y, x, 2] = int(acc2 / n + 0.5)
    return out


def vote(coords: np.ndarray, pos: np.ndarray, style: np.ndarray, radius: int = 1) -> np.ndarray:
    """Colours from exemplar positions, each pixel averaging its neighbours' chunks.

    Args:
        coords: ``(h, w, 2)`` exemplar positions from :func:`synthesize` (-1 = skip).
        pos: the positional guide used for them.
        style: ``(H, W, 3)`` uint8 exemplar.
        radius: voting radius (1 = 3x3; 0 = plain copy).

    Returns:
        ``(h, w, 3)`` uint8; black where ``coords`` is -1.
    """
    return _vote(
        np.ascontiguousarray(coords, np.float32),
        np.ascontiguousarray(pos, np.float32),
        np.ascontiguousarray(style, np.uint8),
        int(radius),
    )
