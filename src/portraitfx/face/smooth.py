"""One-Euro filter for landmark smoothing (Casiez, Roussel & Vogel, CHI 2012).

A low-pass filter whose cutoff rises with speed: still faces get strong smoothing
(no jitter), fast motion little (no lag). Works element-wise on arrays of any
shape and uses real timestamps, so variable-frame-rate video is handled.

Example:
    >>> import numpy as np
    >>> f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    >>> _ = f(np.zeros(2), t=0.0)
    >>> f(np.ones(2), t=1 / 30).round(3).tolist()
    [0.173, 0.173]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter"]


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Speed-adaptive low-pass filter.

    Args:
        min_cutoff: cutoff frequency (Hz) at rest; lower = smoother, more lag.
        beta: how fast the cutoff rises with speed; higher = less lag when moving.
        d_cutoff: cutoff (Hz) for the speed estimate.
        scale: values are divided by this before computing speed (e.g. the face's
            inter-ocular distance), so ``beta`` does not depend on image size.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0, scale: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0:
            raise ValueError("cutoff frequencies must be positive")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.scale = float(scale)
        self.reset()

    def reset(self) -> None:
        """Forget the history; the next value passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter one sample ``x`` taken at time ``t`` (seconds); returns the smoothed value."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or t <= self._t:
            if self._x is not None and self._t is not None and t <= self._t and self._x.shape == x.shape:
                return self._x.astype(np.float32)  # repeated timestamp: nothing new to learn
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.astype(np.float32)
        if x.shape != self._x.shape:
            self.reset()
            return self(x, t)
        dt = t - self._t
        dx = (x - self._x) / dt / max(self.scale, 1e-9)
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = self._dx + a_d * (dx - self._dx)  # type: ignore[operator]
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        x_hat = self._x + a * (x - self._x)
        self._x, self._dx, self._t = x_hat, dx_hat, t
        return x_hat.astype(np.float32)
