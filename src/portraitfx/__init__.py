"""portraitfx: open-source AI portrait effects.

The public API. Nothing heavy is imported until a name is first used, so
``import portraitfx`` is instant and the CLI starts fast.

Example:
    >>> import portraitfx as pfx
    >>> image = pfx.load_image("portrait.jpg")                 # doctest: +SKIP
    >>> faces = pfx.analyze(image)                              # doctest: +SKIP
    >>> crop = pfx.align_face(image, faces[0], size=512)        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

from portraitfx._version import __version__
from portraitfx.errors import (
    ChecksumError,
    ConfigError,
    CorruptInputError,
    ImageTooLargeError,
    InputError,
    InputNotFoundError,
    ModelError,
    ModelNotFoundError,
    NoFaceError,
    NoVideoStreamError,
    OutputError,
    PortraitFxError,
    TruncatedVideoError,
    UnsafeModelError,
    UnsupportedFormatError,
    VideoError,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from portraitfx.face.analyze import AnalyzeOptions, FaceAnalyzer
    from portraitfx.face.types import Face

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # io
    "LoadedImage": "portraitfx.io.images",
    "read_image": "portraitfx.io.images",
    "load_image": "portraitfx.io.images",
    "save_image": "portraitfx.io.images",
    "VideoInfo": "portraitfx.io.video",
    "VideoFrame": "portraitfx.io.video",
    "VideoReader": "portraitfx.io.video",
    "VideoWriter": "portraitfx.io.video",
    "probe_video": "portraitfx.io.video",
    "process_video": "portraitfx.io.video",
    # face
    "Face": "portraitfx.face.types",
    "Pose": "portraitfx.face.types",
    "Detection": "portraitfx.face.types",
    "FaceAnalyzer": "portraitfx.face.analyze",
    "AnalyzeOptions": "portraitfx.face.analyze",
    "Analysis": "portraitfx.face.analyze",
    "require_face": "portraitfx.face.analyze",
    "FaceDetector": "portraitfx.face.detect",
    "FaceTracker": "portraitfx.face.track",
    "OneEuroFilter": "portraitfx.face.smooth",
    "AlignedFace": "portraitfx.face.align",
    "align_face": "portraitfx.face.align",
    "paste_back": "portraitfx.face.align",
    "region_mask": "portraitfx.face.regions",
    "PersonSegmenter": "portraitfx.face.segment",
    "hair_mask": "portraitfx.face.segment",
    "FaceEmbedder": "portraitfx.face.identity",
    "identity_distance": "portraitfx.face.identity",
    "identity_similarity": "portraitfx.face.identity",
    "estimate_pose": "portraitfx.face.pose",
    "draw_faces": "portraitfx.face.draw",
    # effects
    "create_effect": "portraitfx.effects.base",
    "list_effects": "portraitfx.effects.base",
    "EffectState": "portraitfx.effects.base",
    "build_style": "portraitfx.effects.stylize.pack",
    "load_style": "portraitfx.effects.stylize.pack",
    "save_style": "portraitfx.effects.stylize.pack",
    "list_styles": "portraitfx.effects.stylize.pack",
    "apply_to_path": "portraitfx.runtime.apply",
    # provenance
    "mark_image": "portraitfx.provenance",
    "save_marked_image": "portraitfx.provenance",
    "detect_watermark": "portraitfx.provenance",
    "read_provenance": "portraitfx.provenance",
}

__all__ = [
    "ChecksumError",
    "ConfigError",
    "CorruptInputError",
    "ImageTooLargeError",
    "InputError",
    "InputNotFoundError",
    "ModelError",
    "ModelNotFoundError",
    "NoFaceError",
    "NoVideoStreamError",
    "OutputError",
    "PortraitFxError",
    "TruncatedVideoError",
    "UnsafeModelError",
    "UnsupportedFormatError",
    "VideoError",
    "__version__",
    "analyze",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'portraitfx' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


_local = threading.local()


def _analyzer(options: AnalyzeOptions) -> FaceAnalyzer:
    cache: dict[AnalyzeOptions, FaceAnalyzer] = getattr(_local, "analyzers", None) or {}
    _local.analyzers = cache
    if options not in cache:
        from portraitfx.face.analyze import FaceAnalyzer

        if len(cache) >= 4:
            cache.pop(next(iter(cache))).close()
        cache[options] = FaceAnalyzer(options)
    return cache[options]


def analyze(image: np.ndarray, **options: Any) -> list[Face]:
    """Find and measure every face in an image.

    Args:
        image: ``H x W x 3`` uint8 RGB (see :func:`load_image`).
        **options: fields of :class:`AnalyzeOptions` (``max_faces``, ``detector``,
            ``min_score``, ``min_face_size``, ``embed``).

    Returns:
        Faces, largest first: box, score, ``(478, 3)`` mesh, pose and, with
        ``embed=True``, a 128-d identity embedding. Empty when there is no face.

    The analyzer (and its models) is cached per thread and option set.
    """
    from portraitfx.face.analyze import AnalyzeOptions

    return _analyzer(AnalyzeOptions(**options)).analyze(image)
