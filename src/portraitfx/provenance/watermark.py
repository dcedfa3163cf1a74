"""An invisible, calibrated watermark for pictures made by identity-changing effects.

Design (our own; see ``docs/responsible-use.md`` for the user-facing summary):

* **Canonical grid.** The mark lives on a square ``G×G`` grid (``G`` = 128, 256,
  512, 1024 or 2048: the largest not above the picture's short side, so one grid
  cell is 1-2 pixels) stretched over the whole picture. Resizing a picture
  without cropping maps the grid onto itself, so the detector only has to
  resample the suspect picture to each ``G×G`` again; no search.
* **Pattern.** On that grid, a key-seeded set of Fourier coefficients in a
  mid-frequency ring (radius ``G/12`` to ``G/4`` cycles per picture) gets unit
  amplitude and pseudo-random phases ``θ_f``. The coefficients are split at random
  into :data:`PAYLOAD_BITS` groups whose signs carry a small payload (the effect).
  The inverse FFT, upsampled to the picture (bicubic) and normalised, is a
  band-limited noise field computed once per size and cached.
* **Embedding.** The field is added to the luminance (the same amount to R, G and
  B, so colours do not shift), scaled by a perceptual mask: full strength where
  there is fine detail, a fifth in flat or smoothly shaded areas (and next to
  edges), where noise would show. The overall RMS change is capped, so PSNR stays above 39.5 dB at the
  default strength. Grids above 512 get ``512 / G`` of the amplitude: the score
  grows with the amplitude times ``G`` (the number of coefficients is about
  ``G²``), so big pictures keep the same margin with a fainter mark.
* **Detection.** The suspect picture's luminance is resampled to each grid size,
  high-passed and locally normalised (busy areas count less, flat ones more), and
  Fourier-transformed. Only the *phases* of the ring coefficients are kept:
  ``c_f = cos(φ_f - θ_f)``. Summed per payload group, the score is

  ``z = Σ_k |Σ_{f∈k} c_f| / sqrt(n / 2)``

  (with per-coefficient weights when several video frames are combined).
* **Calibration.** A picture that was never marked was made without knowledge of
  the key, so with the secret phases drawn uniformly and independently, each
  ``c_f`` is the cosine of a uniform random angle whatever the picture's own
  phases: mean 0, variance 1/2, ``E[exp(λ c_f)] = I0(λ) <= exp(λ²/4)``, and the
  terms are independent. The sum is therefore sub-Gaussian and
  ``P(z >= t) <= exp(-t²/2)`` for one sign pattern, whatever the content (weights
  that depend only on the pictures, as when frames are combined, keep this). A union bound over the 2^4 sign patterns and
  the 5 grids gives :func:`false_positive_bound`; at the :data:`THRESHOLD` of 7.5
  that is 5e-11 per picture. Unmarked pictures score about 1 to 4.

Robustness measured on the test photos (see ``tests/provenance``): JPEG quality
80, a 0.75× resize and both together keep the score far above the threshold;
cropping, rotation or a change of aspect ratio are *not* survived (the grid moves).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> photo = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    >>> marked = embed_watermark(photo, payload=1)
    >>> result = detect_watermark(marked)
    >>> result.found, result.payload
    (True, 1)
    >>> detect_watermark(photo).found
    False
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from portraitfx.errors import ConfigError, InputError

__all__ = [
    "BAND",
    "DEFAULT_STRENGTH",
    "GRIDS",
    "MIN_DETECT_SIDE",
    "MIN_SIDE",
    "PAYLOAD_BITS",
    "THRESHOLD",
    "WatermarkResult",
    "WatermarkSkippedWarning",
    "detect_watermark",
    "detect_watermark_frames",
    "embed_watermark",
    "embed_watermark_i420",
    "false_positive_bound",
]

MIN_SIDE = 128
"""Pictures whose short side is smaller than this are not marked (a warning says so)."""

MIN_DETECT_SIDE = 64
"""The detector gives up (not found) on pictures whose short side is smaller than this."""

GRIDS = (128, 256, 512, 1024, 2048)
"""Sizes of the canonical grid; the embedder uses the largest not above the short side."""

BAND = (1.0 / 12.0, 1.0 / 4.0)
"""Radius of the frequency ring holding the mark, as fractions of the grid size."""

PAYLOAD_BITS = 4
"""Bits carried by the mark (payload 0-15, used for the effect code)."""

THRESHOLD = 7.5
"""Detection threshold on the z-score; see :func:`false_positive_bound`."""

DEFAULT_STRENGTH = 4.0
"""Mark amplitude in detailed areas, in 8-bit gray levels (RMS; grids above 512: x 512 / G)."""

_KEY = b"portraitfx/watermark/v1"
_RMS_CAP = 0.675  # overall RMS change at most 0.675 x strength: PSNR >= 39.5 dB at strength 4
_FLAT_GAIN = 0.2  # mask value in flat areas
_TEXTURE_REF = 5.0  # fine-detail RMS (gray levels) at which the mask reaches 1
_DETECT_FLOOR = 2.0  # gray levels added to the local deviation in the detector's normalisation
_VALID = 0.01  # coefficients under this x grid size (flat content, float noise) are ignored
_CACHE_BYTES = 256 << 20
_FULL_STRENGTH_GRID = 512  # larger grids get strength * 512 / grid
_Y_UNIT = 219.0 / 255.0  # limited-range Y levels per 8-bit RGB level


class WatermarkSkippedWarning(UserWarning):
    """A picture was too small to carry the watermark and was returned unmarked."""


@dataclass(frozen=True)
class WatermarkResult:
    """What :func:`detect_watermark` found.

    Attributes:
        found: the score reached :attr:`threshold`.
        score: the detection z-score (unmarked pictures: about 1-4; marked ones
            usually 10-100+ even after re-compression).
        payload: the payload (0-15) read from the mark when found, else ``None``.
        threshold: the threshold the score was compared with.
        grid: the grid size the best score came from (``None`` if nothing was tried).
        frames: number of pictures combined (1 for a single picture).
        reason: why nothing could be measured (e.g. too small), else ``None``.
    """

    found: bool
    score: float
    payload: int | None
    threshold: float = THRESHOLD
    grid: int | None = None
    frames: int = 1
    reason: str | None = None

    @property
    def false_positive_bound(self) -> float:
        """Upper bound of the chance that an unmarked picture scores this high."""
        return false_positive_bound(self.score)


def false_positive_bound(threshold: float = THRESHOLD) -> float:
    """Upper bound of the probability that an unmarked picture scores ``>= threshold``.

    ``len(GRIDS) * 2**PAYLOAD_BITS * exp(-threshold² / 2)`` (a sub-Gaussian tail
    and a union bound; see the module docstring), capped at 1.

    Example:
        >>> f"{false_positive_bound():.0e}"
        '5e-11'
    """
    return min(1.0, len(GRIDS) * 2**PAYLOAD_BITS * math.exp(-(threshold**2) / 2.0))


# --------------------------------------------------------------------------- the key


@dataclass(frozen=True)
class _Ring:
    """The secret coefficients of one grid size (flat indices into ``rfft2`` output)."""

    size: int
    index: np.ndarray  # int64 flat indices into a (G, G//2 + 1) array
    phase: np.ndarray  # complex128 unit phases exp(i θ)
    group: np.ndarray  # int64 payload group of each coefficient


@functools.cache
def _ring(size: int) -> _Ring:
    # PCG64's raw stream is stable across NumPy versions (Generator methods are not
    # promised to be): marks made by one release must be found by the next.
    seed = int.from_bytes(hashlib.sha256(_KEY + b"/%d" % size).digest()[:16], "little")
    bits = np.random.PCG64(seed)
    fy = np.fft.fftfreq(size) * size
    fx = np.fft.rfftfreq(size) * size
    radius = np.hypot(fy[:, None], fx[None, :])
    # fx >= 1: one coefficient of each conjugate pair, none on the self-conjugate column
    keep = (radius >= BAND[0] * size) & (radius <= BAND[1] * size) & (fx[None, :] >= 1)
    index = np.flatnonzero(keep)
    raw = bits.random_raw(2 * index.size).astype(np.uint64)
    theta = (raw[: index.size] >> np.uint64(11)).astype(np.float64) * (2.0 * np.pi / 2.0**53)
    group = (raw[index.size :] >> np.uint64(60)).astype(np.int64) % PAYLOAD_BITS
    for a in (index, theta, group):
        a.setflags(write=False)
    return _Ring(size, index, np.exp(1j * theta), group)


@functools.lru_cache(maxsize=4)
def _grid_pattern(size: int, payload: int) -> np.ndarray:
    """The mark on the ``size×size`` grid, unit RMS, float32 (read-only)."""
    ring = _ring(size)
    signs = np.where((payload >> ring.group) & 1, -1.0, 1.0)
    spectrum = np.zeros((size, size // 2 + 1), np.complex128)
    spectrum.flat[ring.index] = ring.phase * signs
    pattern = np.fft.irfft2(spectrum, s=(size, size))
    pattern /= pattern.std()
    out = pattern.astype(np.float32)
    out.setflags(write=False)
    return out


class _PatternCache:
    """Full-size patterns by (height, width, payload), bounded in bytes (video frames reuse one)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, height: int, width: int, payload: int) -> np.ndarray:
        key = (height, width, payload)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        pattern = _image_pattern(height, width, payload)
        with self._lock:
            self._items[key] = pattern
            while sum(p.nbytes for p in self._items.values()) > self.max_bytes and len(self._items) > 1:
                self._items.popitem(last=False)
        return pattern


def _grid_for(short_side: int) -> int:
    return max(g for g in GRIDS if g <= max(short_side, GRIDS[0]))


def _image_pattern(height: int, width: int, payload: int) -> np.ndarray:
    import cv2

    grid = _grid_pattern(_grid_for(min(height, width)), payload)
    pattern = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    pattern *= np.float32(1.0 / max(float(pattern.std()), 1e-6))
    pattern.setflags(write=False)
    return pattern


_patterns = _PatternCache(_CACHE_BYTES)


# --------------------------------------------------------------------------- embedding


def _check_image(image: object, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected the {what} as an H×W×3 uint8 RGB array, got {type(image).__name__}")
    ok_shape = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
    if image.dtype != np.uint8 or not ok_shape or image.size == 0:
        raise InputError(
            f"expected the {what} as an H×W×3 uint8 RGB array, got {image.dtype} {tuple(image.shape)}"
        )
    return image


def _check_payload(payload: int | bytes | None) -> int:
    if payload is None:
        return 0
    if isinstance(payload, (bytes, bytearray)):
        value = int.from_bytes(bytes(payload), "big") if payload else -1
    elif isinstance(payload, (int, np.integer)) and not isinstance(payload, bool):
        value = int(payload)
    else:
        raise ConfigError(f"payload must be an integer from 0 to 15 (or None), got {payload!r}")
    if not 0 <= value < 2**PAYLOAD_BITS:
        raise ConfigError(f"payload must be from 0 to {2**PAYLOAD_BITS - 1}, got {payload!r}")
    return value


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Luminance (BT.601 weights) as float32."""
    return _luma8(rgb).astype(np.float32)


def _luma8(rgb: np.ndarray) -> np.ndarray:
    """Luminance (BT.601 weights) as uint8, what the embedder's mask is computed from."""
    import cv2

    if rgb.ndim == 2:
        return rgb
    if rgb.shape[2] == 1:
        return np.ascontiguousarray(rgb[:, :, 0])
    return cv2.cvtColor(np.ascontiguousarray(rgb[:, :, :3]), cv2.COLOR_RGB2GRAY)


def _mask(luma: np.ndarray, scale: float, unit: float = 1.0) -> np.ndarray:
    """Perceptual mask in [_FLAT_GAIN, 1]: local fine-detail energy.

    Only fine detail (a 3-5 px high-pass) hides the mark; smooth folds and
    gradients do not. ``luma`` is uint8; ``unit`` is its gray levels per 8-bit RGB
    level (219/255 for a video's limited-range Y plane). ``scale`` is image pixels
    per grid pixel (1 to 2). From 480 px on the short side the (smooth) energy map
    is pooled at half resolution and the mask comes back at that resolution
    (``H//2 x W//2``; :func:`_scaled_mask` brings it to full size).
    """
    import cv2

    height, width = luma.shape
    k1 = 2 * round(scale) + 1
    # the local mean in 8 bits (rounded): a quarter of the float filter's cost, and
    # half a gray level is nothing next to _TEXTURE_REF
    mean = cv2.blur(luma, (k1, k1))
    pooled = min(height, width) >= 480
    if pooled:
        from portraitfx.provenance import _kernels

        energy = _kernels.pooled_energy(luma, mean)  # the squared detail, 2x2 block means
        scale /= 2
    else:
        high = cv2.subtract(luma, mean, dtype=cv2.CV_32F)
        energy = cv2.multiply(high, high)
    k2 = 2 * round(3 * scale) + 1
    # local minimum: a strong edge must not raise the mark in the flat area beside it
    # (taken before the square root, which keeps the order of values)
    energy = cv2.erode(cv2.blur(energy, (k2, k2)), np.ones((k2, k2), np.uint8))
    gain = (1.0 - _FLAT_GAIN) / (_TEXTURE_REF * unit)
    if pooled:
        return _kernels.gain_of_energy(energy, gain, _FLAT_GAIN)
    return np.minimum(cv2.sqrt(energy) * np.float32(gain) + np.float32(_FLAT_GAIN), np.float32(1.0))


def _check_strength(strength: object) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 20:
        raise ConfigError(f"strength must be a number in (0, 20], got {strength!r}")
    return float(strength)


def _warn_small(width: int, height: int) -> None:
    warnings.warn(
        f"image is {width}×{height}; pictures under {MIN_SIDE} px on the short side are "
        "too small to carry the portraitfx watermark and were left unmarked",
        WatermarkSkippedWarning,
        stacklevel=3,
    )


def _scaled_mask(
    luma: np.ndarray, code: int, strength: float, unit: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """The mark's parts for ``luma``: ``(mask, pattern, factor)``; the change is
    ``mask * pattern * factor`` with ``mask`` at full size or, when it is exactly half
    the pattern's size, linearly upsampled (see :mod:`portraitfx.provenance._kernels`)."""
    import cv2

    height, width = luma.shape
    short = min(height, width)
    grid = _grid_for(short)
    pattern = _patterns.get(height, width, code)
    mask = _mask(luma, short / grid, unit)
    # The score grows with amplitude x grid size: big pictures keep the same
    # detection margin with a fainter mark.
    strength = strength * min(1.0, _FULL_STRENGTH_GRID / grid)
    if mask.shape == (height // 2, width // 2) and not (height % 2 or width % 2):
        from portraitfx.provenance import _kernels

        squares = _kernels.sum_squares_2x(mask, pattern)
    else:
        if mask.shape != pattern.shape:
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        squares = cv2.norm(mask * pattern, cv2.NORM_L2SQR)
    rms = math.sqrt(squares / pattern.size) * strength
    return mask, pattern, strength * unit * min(1.0, _RMS_CAP * strength / max(rms, 1e-12))


def _delta(luma: np.ndarray, code: int, strength: float, unit: float = 1.0) -> np.ndarray:
    """The mark's change to ``luma``, in its gray levels (float32, full size)."""
    mask, pattern, factor = _scaled_mask(luma, code, strength, unit)
    if mask.shape != pattern.shape:
        from portraitfx.provenance import _kernels

        return _kernels.delta_2x(mask, pattern, factor)
    return mask * pattern * np.float32(factor)


def embed_watermark(
    image: np.ndarray,
    payload: int | bytes | None = None,
    *,
    strength: float = DEFAULT_STRENGTH,
) -> np.ndarray:
    """Return a copy of ``image`` carrying the invisible portraitfx watermark.

    Args:
        image: H×W×3 ``uint8`` RGB (also H×W gray or H×W×4 RGBA; alpha is kept).
        payload: 0-15 (or one byte), read back by :func:`detect_watermark`;
            ``None`` means 0. portraitfx stores the effect code here.
        strength: amplitude in gray levels in textured areas; the overall RMS
            change is capped at ``0.675 * strength`` (PSNR >= 39.5 dB at the default 4).

    Returns:
        A new array of the same shape and dtype. Pictures whose short side is
        under :data:`MIN_SIDE` (128 px) are returned unchanged (a copy) with a
        :class:`WatermarkSkippedWarning`.

    Raises:
        InputError: not a ``uint8`` image array.
        ConfigError: bad ``payload`` or ``strength``.
    """
    import cv2

    arr = _check_image(image)
    code = _check_payload(payload)
    strength = _check_strength(strength)
    height, width = arr.shape[:2]
    if min(height, width) < MIN_SIDE:
        _warn_small(width, height)
        return arr.copy()
    color = arr if arr.ndim == 2 else arr[:, :, : min(3, arr.shape[2])]
    delta = _delta(_luma8(color), code, strength)
    if arr.ndim == 2:
        return cv2.add(arr, delta, dtype=cv2.CV_8U)
    if arr.shape[2] == 1:
        return cv2.add(np.ascontiguousarray(arr[:, :, 0]), delta, dtype=cv2.CV_8U)[:, :, None]
    # the same change on every channel, as two saturating 8-bit steps (rounded like cv2.add
    # with a float operand, at half the cost): up where delta > 0, down where it is < 0
    up = cv2.cvtColor(cv2.convertScaleAbs(cv2.max(delta, 0.0)), cv2.COLOR_GRAY2RGB)
    down = cv2.cvtColor(cv2.convertScaleAbs(cv2.min(delta, 0.0)), cv2.COLOR_GRAY2RGB)
    rgb = cv2.subtract(cv2.add(np.ascontiguousarray(color), up), down)
    if arr.shape[2] == 3:
        return rgb
    out = arr.copy()  # RGBA: alpha kept
    out[:, :, :3] = rgb
    return out


def embed_watermark_i420(
    buffer: np.ndarray,
    payload: int | bytes | None = None,
    *,
    strength: float = DEFAULT_STRENGTH,
) -> bool:
    """Mark a video frame already converted for the encoder, in place: the same mark as
    :func:`embed_watermark` gives its RGB picture, added to the Y plane only.

    Adding ``d`` to R, G and B adds ``d x 219/255`` to limited-range (BT.601) Y and
    nothing to U and V, so marking Y is the same change on one plane instead of three,
    with no colour conversion for the mask (Y is the luminance).

    Args:
        buffer: ``(H * 3/2) x W`` uint8 I420 (see :class:`portraitfx.io.video.I420Image`).
        payload, strength: as for :func:`embed_watermark`.

    Returns:
        True when marked; False (with a :class:`WatermarkSkippedWarning`) for frames
        under :data:`MIN_SIDE` px on the short side.

    Raises:
        InputError: not a uint8 I420 buffer.
        ConfigError: bad ``payload`` or ``strength``.
    """
    import cv2

    from portraitfx.io.video import is_i420_buffer

    if not is_i420_buffer(buffer):
        got = (
            f"{buffer.dtype} {tuple(buffer.shape)}"
            if isinstance(buffer, np.ndarray)
            else type(buffer).__name__
        )
        raise InputError(f"expected a contiguous (H*3/2)×W uint8 I420 buffer, got {got}")
    code = _check_payload(payload)
    strength = _check_strength(strength)
    height, width = buffer.shape[0] * 2 // 3, buffer.shape[1]
    if min(height, width) < MIN_SIDE:
        _warn_small(width, height)
        return False
    y = buffer[:height]
    mask, pattern, factor = _scaled_mask(y, code, strength, _Y_UNIT)
    if mask.shape != pattern.shape:
        from portraitfx.provenance import _kernels

        _kernels.add_2x(y, mask, pattern, factor)  # upsampled, multiplied and added in one pass
    else:
        cv2.add(y, mask * pattern * np.float32(factor), dst=y, dtype=cv2.CV_8U)
    return True


# --------------------------------------------------------------------------- detection


def _unit_coefficients(luma: np.ndarray, size: int) -> np.ndarray:
    """Unit-magnitude ring coefficients of the whitened, resampled picture (0 where flat)."""
    import cv2
    import scipy.fft

    height, width = luma.shape
    shrink = height >= size and width >= size
    grid = cv2.resize(luma, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    grid -= np.float32(grid.mean())  # small values: float rounding noise stays far below _VALID
    high = grid - cv2.GaussianBlur(grid, (0, 0), min(3.0, 3.0 * size / 256.0))
    spread = cv2.sqrt(cv2.GaussianBlur(high * high, (0, 0), 2.0)) + np.float32(_DETECT_FLOOR)
    white = high / (spread * spread)
    coeff = scipy.fft.rfft2(white, workers=-1).ravel()[_ring(size).index]
    magnitude = np.abs(coeff)
    valid = magnitude > _VALID * size
    return np.where(valid, coeff / np.where(valid, magnitude, 1.0), 0.0)


def _score(summed: np.ndarray, size: int) -> tuple[float, int]:
    """z-score and payload from the (frame-summed) unit coefficients of one grid."""
    ring = _ring(size)
    weight2 = float(np.sum(np.abs(summed) ** 2))
    if weight2 <= 0.0:
        return 0.0, 0
    corr = (summed * np.conj(ring.phase)).real
    groups = np.bincount(ring.group, weights=corr, minlength=PAYLOAD_BITS)
    z = float(np.abs(groups).sum() / math.sqrt(weight2 / 2.0))
    payload = sum(1 << k for k in range(PAYLOAD_BITS) if groups[k] < 0)
    return z, payload


def detect_watermark_frames(frames: Iterable[np.ndarray], *, threshold: float = THRESHOLD) -> WatermarkResult:
    """Look for the watermark in several pictures of one size (e.g. video frames), jointly.

    The frames' unit coefficients are summed before correlating, which keeps the
    calibration of :func:`false_positive_bound` (the weights depend on the
    pictures only) while the evidence of all frames adds up.

    Args:
        frames: H×W×3 ``uint8`` RGB pictures, all of the same size.
        threshold: z-score needed to report ``found``.

    Raises:
        InputError: a frame is not a ``uint8`` image or the sizes differ.
    """
    sums: dict[int, np.ndarray] = {}
    shape: tuple[int, int] | None = None
    count = 0
    for frame in frames:
        arr = _check_image(frame, "frame")
        if shape is None:
            shape = (int(arr.shape[0]), int(arr.shape[1]))
        elif arr.shape[:2] != shape:
            raise InputError(f"frames differ in size: {arr.shape[1]}×{arr.shape[0]} vs {shape[1]}×{shape[0]}")
        count += 1
        short = min(shape)
        if short < MIN_DETECT_SIDE:
            continue
        luma = _luma(arr)
        for size in GRIDS:
            if size <= 2 * short:
                coeff = _unit_coefficients(luma, size)
                sums[size] = coeff if size not in sums else sums[size] + coeff
    if not sums:
        reason = "no frames" if count == 0 else f"smaller than {MIN_DETECT_SIDE} px on the short side"
        return WatermarkResult(False, 0.0, None, threshold, None, count, reason)
    best = max(((*_score(s, size), size) for size, s in sums.items()), key=lambda t: t[0])
    z, payload, size = best
    found = z >= threshold
    return WatermarkResult(found, z, payload if found else None, threshold, size, count, None)


def detect_watermark(image: np.ndarray, *, threshold: float = THRESHOLD) -> WatermarkResult:
    """Look for the portraitfx watermark in one picture.

    Args:
        image: H×W×3 ``uint8`` RGB (also gray or RGBA), e.g. from
            :func:`portraitfx.io.images.load_image`.
        threshold: z-score needed to report ``found`` (default :data:`THRESHOLD`,
            false-positive probability below :func:`false_positive_bound`).

    Returns:
        A :class:`WatermarkResult`; pictures under :data:`MIN_DETECT_SIDE` px are
        reported as not found with a ``reason``.
    """
    return detect_watermark_frames([image], threshold=threshold)
