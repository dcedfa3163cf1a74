"""Guides for example-based face stylization (FaceBlit, Texler et al. 2021).

* **Positional guide**: for every target pixel, the exemplar coordinate it
  corresponds to, from a moving-least-squares deformation (Schaefer et al. 2006)
  driven by corresponding landmarks, evaluated on a coarse grid and bilinearly
  interpolated.
* **Appearance guide**: grayscale minus a strong blur (the structure of eyes,
  brows, mouth and shading, without the overall lighting), mapped to ``[0, 1]``;
  the exemplar's is contrast-normalised and the target's is histogram-matched to it.

Coordinates are pixels, x right, y down. Example:
    >>> import numpy as np
    >>> src = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    >>> guide = mls_positional_guide(src, src * 2, (8, 8), step=4)
    >>> guide.shape, float(guide[4, 6, 0])
    ((8, 8, 2), 12.0)
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from portraitfx._numba import nb
from portraitfx.errors import ConfigError

__all__ = [
    "APP_QUANTILES",
    "app_quantiles",
    "appearance_guide",
    "match_appearance",
    "mls_deform",
    "mls_positional_guide",
    "smooth",
]

MlsMode = Literal["similarity", "rigid"]
APP_QUANTILES = 65
"""Number of quantiles kept to describe an appearance-guide distribution."""


def mls_deform(
    points: np.ndarray, src: np.ndarray, dst: np.ndarray, *, alpha: float = 1.0, mode: MlsMode = "similarity"
) -> np.ndarray:
    """Moving-least-squares deformation of ``points`` by control points ``src -> dst``.

    Args:
        points: ``(N, 2)`` positions to map.
        src: ``(K, 2)`` control points in the source (target image) frame.
        dst: ``(K, 2)`` corresponding points in the destination (exemplar) frame.
        alpha: weight fall-off ``1 / d^(2 alpha)``.
        mode: ``"similarity"`` (rotation + uniform scale, locally) or ``"rigid"``
            (rotation only).

    Returns:
        ``(N, 2)`` float32 mapped positions. Control points map exactly onto their
        destinations.
    """
    if mode not in ("similarity", "rigid"):
        raise ConfigError(f"MLS mode must be 'similarity' or 'rigid', got {mode!r}")
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ConfigError(
            f"control points must be two (K, 2) arrays with K >= 2, got {src.shape} and {dst.shape}"
        )
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    # the compiled grid kernel, on an (N, 1) "grid" of the points
    out = _mls(
        np.ascontiguousarray(pts[:, 0:1]),
        np.ascontiguousarray(pts[:, 1:2]),
        src,
        dst,
        float(alpha),
        mode == "rigid",
    )
    return out[:, 0]


@nb.njit(cache=True, parallel=True)
def _mls_grid(
    gx: np.ndarray, gy: np.ndarray, src: np.ndarray, dst: np.ndarray, alpha: float, rigid: bool
) -> np.ndarray:
    """Compiled :func:`mls_deform` over a grid ``(GH, GW)`` of points (same maths, complex-free)."""
    gh, gw = gx.shape
    k = src.shape[0]
    out = np.empty((gh, gw, 2), np.float32)
    for i in nb.prange(gh):
        wgt = np.empty(k)
        for j in range(gw):
            vx = gx[i, j]
            vy = gy[i, j]
            ws = 0.0
            psx = 0.0
            psy = 0.0
            qsx = 0.0
            qsy = 0.0
            for n in range(k):
                dx = src[n, 0] - vx
                dy = src[n, 1] - vy
                d2 = dx * dx + dy * dy
                wn = 1.0 / ((d2 if alpha == 1.0 else d2**alpha) + 1e-8)
                wgt[n] = wn
                ws += wn
                psx += wn * src[n, 0]
                psy += wn * src[n, 1]
                qsx += wn * dst[n, 0]
                qsy += wn * dst[n, 1]
            psx /= ws
            psy /= ws
            qsx /= ws
            qsy /= ws
            # c = sum w conj(ph) qh / sum w |ph|^2, with ph = p - p*, qh = q - q* as complex numbers
            cre = 0.0
            cim = 0.0
            den = 0.0
            for n in range(k):
                px = src[n, 0] - psx
                py = src[n, 1] - psy
                qx = dst[n, 0] - qsx
                qy = dst[n, 1] - qsy
                cre += wgt[n] * (px * qx + py * qy)
                cim += wgt[n] * (px * qy - py * qx)
                den += wgt[n] * (px * px + py * py)
            den = max(den, 1e-12)
            cre /= den
            cim /= den
            if rigid:
                norm = max((cre * cre + cim * cim) ** 0.5, 1e-12)
                cre /= norm
                cim /= norm
            ux = vx - psx
            uy = vy - psy
            out[i, j, 0] = cre * ux - cim * uy + qsx
            out[i, j, 1] = cre * uy + cim * ux + qsy
    return out


_mls_grid_serial = nb.njit(cache=True, nogil=True)(_mls_grid.py_func)


def _mls(
    gx: np.ndarray, gy: np.ndarray, src: np.ndarray, dst: np.ndarray, alpha: float, rigid: bool
) -> np.ndarray:
    """:func:`_mls_grid`, on one thread when the job is small (starting the pool costs more)."""
    if gx.size * len(src) < 400_000:
        return _mls_grid_serial(gx, gy, src, dst, alpha, rigid)
    return _mls_grid(gx, gy, src, dst, alpha, rigid)


def mls_positional_guide(
    src: np.ndarray,
    dst: np.ndarray,
    size: tuple[int, int],
    *,
    origin: tuple[float, float] = (0.0, 0.0),
    step: int = 8,
    alpha: float = 1.0,
    mode: MlsMode = "similarity",
) -> np.ndarray:
    """Positional guide over a ``size = (width, height)`` region whose top-left pixel is at ``origin``.

    MLS is evaluated every ``step`` pixels and bilinearly interpolated.

    Returns:
        ``(height, width, 2)`` float32: the exemplar (x, y) of every pixel.
    """
    w, h = int(size[0]), int(size[1])
    gw, gh = (w - 1) // step + 2, (h - 1) // step + 2
    if mode not in ("similarity", "rigid"):
        raise ConfigError(f"MLS mode must be 'similarity' or 'rigid', got {mode!r}")
    gx, gy = np.meshgrid(
        np.arange(gw, dtype=np.float64) * step + origin[0], np.arange(gh, dtype=np.float64) * step + origin[1]
    )
    grid = _mls(
        gx, gy, np.asarray(src, np.float64), np.asarray(dst, np.float64), float(alpha), mode == "rigid"
    )
    # sample the grid at (x / step, y / step): an exact bilinear interpolation
    scale = np.array([[1.0 / step, 0, 0], [0, 1.0 / step, 0]], np.float64)
    return cv2.warpAffine(grid, scale, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def appearance_guide(image: np.ndarray, sigma: float) -> np.ndarray:
    """Grayscale minus a Gaussian blur of it, mapped to ``[0, 1]`` around 0.5.

    Args:
        image: ``H x W x 3`` uint8 RGB or ``H x W`` gray.
        sigma: blur sigma in pixels (a fraction of the face size: structure, not lighting).

    Returns:
        ``H x W`` float32 (0.5 = as bright as the surroundings).
    """
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    gray = gray.astype(np.float32) * (1.0 / 255.0)
    return np.clip(0.5 + (gray - smooth(gray, sigma)), 0.0, 1.0)


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide blurs run on a downscaled copy (same look, a fraction of the cost).

    Args:
        image: ``H x W`` or ``H x W x C`` float32.
        sigma: standard deviation in pixels.
    """
    sigma = max(float(sigma), 0.5)
    h, w = image.shape[:2]
    factor = int(min(sigma / 3.0, min(h, w) / 16.0))
    if factor < 2:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    small = cv2.resize(image, (max(w // factor, 1), max(h // factor, 1)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / factor, sigmaY=sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def app_quantiles(app: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``(APP_QUANTILES,)`` float32 quantiles of an appearance guide (inside ``mask`` when given)."""
    values = app[mask > 0.5] if mask is not None else app.ravel()
    if values.size < 16:
        values = app.ravel()
    # quantiles from a 1024-bin histogram over [0, 1]: exact to a bin, and fast
    hist = np.bincount(np.clip(values * 1023.0 + 0.5, 0, 1023).astype(np.intp), minlength=1024)
    cdf = np.cumsum(hist) / float(values.size)
    levels = np.searchsorted(cdf, np.linspace(0, 1, APP_QUANTILES), side="left")
    return (np.clip(levels, 0, 1023) / 1023.0).astype(np.float32)


def match_appearance(app: np.ndarray, source_q: np.ndarray, target_q: np.ndarray) -> np.ndarray:
    """Histogram-match ``app`` (whose quantiles are ``source_q``) to the distribution ``target_q``."""
    src = np.maximum.accumulate(np.asarray(source_q, np.float64))
    src = src + np.arange(len(src)) * 1e-7  # strictly increasing for interpolation
    # a 1024-entry table over [0, 1] instead of interpolating every pixel
    lut = np.interp(np.linspace(0.0, 1.0, 1024), src, np.asarray(target_q, np.float64)).astype(np.float32)
    idx = np.clip(app * 1023.0 + 0.5, 0, 1023).astype(np.intp)
    return lut[idx]


def normalise_contrast(app: np.ndarray, mask: np.ndarray | None = None, spread: float = 0.12) -> np.ndarray:
    """Rescale an appearance guide so its spread (std inside ``mask``) is ``spread`` around 0.5."""
    values = app[mask > 0.5] if mask is not None and (mask > 0.5).sum() > 16 else app
    std = float(values.std()) or 1.0
    mean = float(values.mean())
    return np.clip(0.5 + (app - mean) * (spread / std), 0.0, 1.0).astype(np.float32)
