"""The seed's clarity measure: how much fine detail a picture has (sum of Laplacian magnitudes)."""

from __future__ import annotations

import numpy as np

__all__ = ["clarity"]


def clarity(image: np.ndarray, *, per_pixel: bool = True) -> float:
    """Sum of the Laplacian's magnitudes over the picture's gray levels (higher = sharper).

    Args:
        image: ``H x W x 3`` uint8 RGB (or ``H x W`` gray).
        per_pixel: divide by the pixel count, so pictures of different sizes compare.
    """
    import cv2

    from portraitfx._validate import check_image

    img = check_image(image) if image.ndim == 3 else np.asarray(image)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    lap = cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=3)
    total = float(np.abs(lap).sum())
    return total / gray.size if per_pixel else total
