"""numba kernels of the watermark embedder (imported on first use: detection does not need numba).

They fuse what OpenCV would run as separate full-size passes (several through its
slow paths for mixed 8-bit/float operands): at 720p the embedder's cost drops from
~3 ms to ~1.5 ms a frame. The mask is smooth, so it is computed at half resolution
and brought to full size (linear, pixel centres aligned as OpenCV's
``INTER_LINEAR``) inside the kernels that use it, never stored at full size.
"""

from __future__ import annotations

import numpy as np

from portraitfx._numba import nb


@nb.njit(cache=True, nogil=True)
def pooled_energy(luma: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(luma - mean)²`` averaged over 2x2 blocks: ``(H//2) x (W//2)`` float32 (an odd last
    row or column is left out)."""
    h, w = luma.shape[0] // 2, luma.shape[1] // 2
    out = np.empty((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            acc = 0
            for di in range(2):
                for dj in range(2):
                    d = np.int32(luma[2 * i + di, 2 * j + dj]) - np.int32(mean[2 * i + di, 2 * j + dj])
                    acc += d * d
            out[i, j] = np.float32(acc) * np.float32(0.25)
    return out


@nb.njit(cache=True, nogil=True, fastmath=True)
def gain_of_energy(energy: np.ndarray, gain: float, floor: float) -> np.ndarray:
    """``min(sqrt(energy) * gain + floor, 1)``, float32, in one pass."""
    h, w = energy.shape
    out = np.empty((h, w), np.float32)
    g, f, zero, one = np.float32(gain), np.float32(floor), np.float32(0.0), np.float32(1.0)
    for i in range(h):
        for j in range(w):
            # (a box filter's running sum may dip a hair below 0)
            out[i, j] = min(np.sqrt(max(energy[i, j], zero)) * g + f, one)
    return out


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _half_row(mask: np.ndarray, r: int, factor: np.float32, v: np.ndarray) -> None:
    """Output row ``r`` of ``mask`` upsampled 2x vertically, times ``factor``, into ``v[1:-1]``
    (``v[0]`` and ``v[-1]`` repeat the ends, for the horizontal taps)."""
    mh, mw = mask.shape
    src = (r + 0.5) * 0.5 - 0.5
    i0 = int(np.floor(src))
    fy = np.float32(src - i0)
    if i0 < 0:
        i0, fy = 0, np.float32(0.0)
    i1 = min(i0 + 1, mh - 1)
    a, b = mask[i0], mask[i1]
    for k in range(mw):
        v[k + 1] = (a[k] + fy * (b[k] - a[k])) * factor
    v[0] = v[1]
    v[mw + 1] = v[mw]


@nb.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _taps(v: np.ndarray, k: int) -> tuple[np.float32, np.float32]:
    """The two output pixels ``2k`` and ``2k + 1`` of a row ``v`` (see :func:`_half_row`)
    upsampled 2x horizontally."""
    return (
        np.float32(0.25) * v[k] + np.float32(0.75) * v[k + 1],
        np.float32(0.75) * v[k + 1] + np.float32(0.25) * v[k + 2],
    )


@nb.njit(cache=True, nogil=True, fastmath=True)
def sum_squares_2x(mask: np.ndarray, pattern: np.ndarray) -> float:
    """Sum of ``(up(mask) * pattern)²`` over the picture; ``pattern`` is twice ``mask``'s size."""
    h = pattern.shape[0]
    mw = mask.shape[1]
    v = np.empty(mw + 2, np.float32)
    total = 0.0
    for r in range(h):
        _half_row(mask, r, np.float32(1.0), v)
        p = pattern[r]
        acc = np.float32(0.0)
        for k in range(mw):
            m0, m1 = _taps(v, k)
            d0, d1 = m0 * p[2 * k], m1 * p[2 * k + 1]
            acc += d0 * d0 + d1 * d1
        total += acc
    return total


@nb.njit(cache=True, nogil=True, fastmath=True)
def delta_2x(mask: np.ndarray, pattern: np.ndarray, factor: float) -> np.ndarray:
    """``up(mask) * pattern * factor`` as float32 (``pattern``: twice ``mask``'s size)."""
    h, w = pattern.shape
    mw = mask.shape[1]
    v = np.empty(mw + 2, np.float32)
    out = np.empty((h, w), np.float32)
    for r in range(h):
        _half_row(mask, r, np.float32(factor), v)
        p, o = pattern[r], out[r]
        for k in range(mw):
            m0, m1 = _taps(v, k)
            o[2 * k] = m0 * p[2 * k]
            o[2 * k + 1] = m1 * p[2 * k + 1]
    return out


@nb.njit(cache=True, nogil=True, fastmath=True)
def add_2x(plane: np.ndarray, mask: np.ndarray, pattern: np.ndarray, factor: float) -> None:
    """``plane += up(mask) * pattern * factor`` in place, rounded and saturated to 0-255."""
    h = plane.shape[0]
    mw = mask.shape[1]
    v = np.empty(mw + 2, np.float32)
    lo, hi, half = np.float32(0.0), np.float32(255.0), np.float32(0.5)
    for r in range(h):
        _half_row(mask, r, np.float32(factor), v)
        p, y = pattern[r], plane[r]
        for k in range(mw):
            c = 2 * k
            m0, m1 = _taps(v, k)
            x0 = np.float32(y[c]) + m0 * p[c]
            x1 = np.float32(y[c + 1]) + m1 * p[c + 1]
            y[c] = np.uint8(min(max(x0 + half, lo), hi))
            y[c + 1] = np.uint8(min(max(x1 + half, lo), hi))
