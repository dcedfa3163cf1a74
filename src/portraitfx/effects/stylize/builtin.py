"""Built-in styles, made from the sample portrait with classic non-photorealistic filters.

No artwork is shipped: each style is a recipe (an OpenCV filter chain) applied to
the built-in sample portrait (aligned and enlarged to the style's 512 px frame
first, so strokes are crisp), built into a pack on first use and cached under
``$PORTRAITFX_HOME/styles/builtin-<name>-v<N>.pfxstyle``. The face landmarks come
from the unfiltered sample, so they are exact even for strong filters.

Example:
    >>> from portraitfx.effects.stylize.builtin import BUILTIN_STYLES
    >>> sorted(BUILTIN_STYLES)
    ['ink', 'oil', 'pencil', 'watercolour']
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["BUILTIN_STYLES", "builtin_style", "render_builtin"]

RECIPE_VERSION = 8


def _pencil(rgb: np.ndarray) -> np.ndarray:
    gray, _ = cv2.pencilSketch(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=50, sigma_r=0.08, shade_factor=0.06
    )
    paper = np.full_like(rgb, (246, 240, 226))
    tone = gray.astype(np.float32)[..., None] / 255.0
    ink = np.array([40, 38, 52], np.float32)
    return (paper * tone + ink * (1 - tone)).astype(np.uint8)


def _watercolour(rgb: np.ndarray) -> np.ndarray:
    bgr = cv2.stylization(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=45, sigma_r=0.5)
    soft = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    rng = np.random.default_rng(7)  # paper grain: fixed, so the style is reproducible
    grain = cv2.GaussianBlur(rng.normal(0, 1, rgb.shape[:2]).astype(np.float32), (0, 0), 1.2)
    washed = 0.82 * soft + 0.18 * 250 + 6 * grain[..., None]
    return np.clip(washed, 0, 255).astype(np.uint8)


def _oil(rgb: np.ndarray) -> np.ndarray:
    bgr = cv2.xphoto.oilPainting(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 4, 1)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.25, 0, 255)  # richer colour, as oils are
    return cv2.cvtColor(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR), cv2.COLOR_BGR2RGB)


def _ink(rgb: np.ndarray) -> np.ndarray:
    smooth = rgb
    for _ in range(3):
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB)
    lab[..., 0] = (lab[..., 0] // 52) * 52 + 40  # a few flat tones; hue and saturation kept
    flat = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.adaptiveThreshold(
        cv2.medianBlur(gray, 5), 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4
    )
    return (flat * (edges[..., None] / 255.0)).astype(np.uint8)


BUILTIN_STYLES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "pencil": _pencil,
    "watercolour": _watercolour,
    "oil": _oil,
    "ink": _ink,
}

_lock = threading.Lock()


def _aligned_sample(size: int = 512):
    """The sample portrait aligned to the canonical frame at ``size`` and its mesh there.

    Filters run on this (not on the small original) so strokes have the exemplar's
    own resolution instead of being enlarged afterwards.
    """
    from portraitfx.assets import sample_path
    from portraitfx.face.align import align_face
    from portraitfx.face.analyze import FaceAnalyzer, require_face
    from portraitfx.io.images import load_image

    sample = load_image(sample_path())
    with FaceAnalyzer() as analyzer:
        face = require_face(analyzer.run(sample), "the sample portrait")[0]
    aligned = align_face(sample, face, size=size, template="ffhq", border="replicate")
    return aligned.image, aligned.to_crop(face.landmarks)


def render_builtin(name: str) -> np.ndarray:
    """The stylised sample portrait of built-in style ``name`` (aligned, 512 x 512 uint8 RGB)."""
    image, _ = _aligned_sample()
    return BUILTIN_STYLES[name](image)


def builtin_style(name: str):  # -> StylePack (import cycle kept out of the signature)
    """Load built-in style ``name``, building and caching it on first use."""
    from .pack import _read, build_style, save_style, styles_dir

    path = styles_dir() / f"builtin-{name}-v{RECIPE_VERSION}.pfxstyle"
    with _lock:
        if path.is_file():
            try:
                return _read(path)
            except Exception:  # a damaged cache is rebuilt
                path.unlink(missing_ok=True)
        image, landmarks = _aligned_sample()
        pack = build_style(BUILTIN_STYLES[name](image), name=name, landmarks=landmarks,
                           source=f"built-in style '{name}'")  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        save_style(pack, path)
        return pack
