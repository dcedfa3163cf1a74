"""Style packs: one stylised portrait, prepared once, applied to any face.

A pack holds the exemplar aligned to a canonical face frame (FFHQ-style
framing, ``size x size``), its 478-point mesh in that frame, its appearance guide
and FaceBlit's lookup table. It is one ``.pfxstyle`` file in safetensors format
(arrays + a JSON header; nothing is unpickled) and is cached under
``$PORTRAITFX_HOME/styles``.

Example:
    >>> pack = build_style(load_image("my_painting.jpg"), name="my-painting")   # doctest: +SKIP
    >>> save_style(pack, "my-painting.pfxstyle")                                 # doctest: +SKIP
    >>> pack = load_style("my-painting.pfxstyle")                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portraitfx._home import home_dir
from portraitfx._version import __version__
from portraitfx.errors import ConfigError, InputError, ModelError, ModelNotFoundError
from portraitfx.face.align import align_face, transform_points
from portraitfx.face.regions import region_mask
from portraitfx.face.types import Face

from .guides import app_quantiles, appearance_guide, normalise_contrast
from .styleblit import LookupTable, build_lookup_table

__all__ = [
    "STYLE_SUFFIX",
    "StyleLevel",
    "StylePack",
    "build_style",
    "load_style",
    "save_style",
    "styles_dir",
]

STYLE_SUFFIX = ".pfxstyle"
FORMAT_VERSION = 2
APP_SIGMA = 0.25  # appearance-guide blur, as a fraction of the inter-ocular distance
MIN_STYLE_EYE_DISTANCE = 40.0
REFERENCE_SIZE = 512  # synthesis parameters are stated for this canonical frame size  # pixels: smaller style faces are too coarse to copy from


def styles_dir() -> Path:
    """``$PORTRAITFX_HOME/styles``: cached and user-built packs."""
    return home_dir() / "styles"


@dataclass
class StyleLevel:
    """The style at one resolution.

    Attributes:
        exemplar: ``(S, S, 3)`` uint8 RGB, the style aligned to the canonical frame.
        landmarks: ``(478, 3)`` float32 mesh of the style face in that frame.
        app: ``(S, S)`` float32 appearance guide of the exemplar (contrast-normalised).
        app_q: quantiles of ``app`` inside the face (what targets are matched to).
        table: FaceBlit lookup table over ``app``.
    """

    exemplar: np.ndarray
    landmarks: np.ndarray
    app: np.ndarray
    app_q: np.ndarray
    table: LookupTable

    @property
    def size(self) -> int:
        return int(self.exemplar.shape[0])

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[473, :2] - self.landmarks[468, :2]))


@dataclass
class StylePack:
    """A prepared style: the exemplar at a few resolutions (largest first).

    Faces are stylized at the smallest level that is at least as detailed as the
    face in the frame, so a small face costs a fraction of a large one.
    """

    name: str
    levels: list[StyleLevel]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def exemplar(self) -> np.ndarray:
        return self.levels[0].exemplar

    @property
    def landmarks(self) -> np.ndarray:
        return self.levels[0].landmarks

    @property
    def size(self) -> int:
        return self.levels[0].size

    def level_for(self, eye_distance: float, detail: float = 0.9) -> StyleLevel:
        """The smallest level whose face is at least ``detail`` times a face of ``eye_distance`` px.

        ``detail`` > 1 synthesises finer than the frame shows (seams stay below a
        pixel); the largest level is used when none is large enough.
        """
        for level in reversed(self.levels):
            if level.eye_distance >= detail * eye_distance:
                return level
        return self.levels[0]


def _level(image: np.ndarray, lm: np.ndarray, cell: int, levels: int, w_app: float) -> StyleLevel:
    iod = float(np.linalg.norm(lm[473, :2] - lm[468, :2]))
    face_mask = region_mask(image.shape, lm, "face_forehead")
    app = normalise_contrast(appearance_guide(image, APP_SIGMA * iod), face_mask)
    table = build_lookup_table(app, cell=cell, levels=levels, w_app=w_app)
    return StyleLevel(image, lm.astype(np.float32), app, app_quantiles(app, face_mask), table)


def _style_face(image: np.ndarray, landmarks: np.ndarray | None, source: str) -> Face:
    from portraitfx.face.analyze import FaceAnalyzer, require_face
    from portraitfx.face.pose import estimate_pose

    if landmarks is not None:
        lm = np.asarray(landmarks, np.float32)
        if lm.shape not in ((478, 3), (478, 2)):
            raise InputError(f"style landmarks must be a (478, 2|3) mesh, got {lm.shape}")
        if lm.shape[1] == 2:
            lm = np.concatenate([lm, np.zeros((478, 1), np.float32)], axis=1)
        pts = lm[:468, :2]
        bbox = np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32)
        return Face(bbox=bbox, score=1.0, landmarks=lm, pose=estimate_pose(lm))
    with FaceAnalyzer(max_faces=4, min_face_size=0) as analyzer:
        result = analyzer.run(image)
    faces = require_face(result, source)
    if len(faces) > 1 and faces[1].size > 0.5 * faces[0].size:
        raise InputError(
            f"{source} shows {len(faces)} faces; a style needs one clear face (crop the image to one portrait)"
        )
    return faces[0]


def build_style(
    image: np.ndarray,
    *,
    name: str = "style",
    landmarks: np.ndarray | None = None,
    size: int = 512,
    source: str = "the style image",
    cell: int = 4,
    levels: int = 32,
    w_app: float = 250.0,
) -> StylePack:
    """Prepare a stylised portrait as a style.

    Args:
        image: ``H x W x 3`` uint8 RGB stylised portrait (any resolution), facing the camera.
        name: the style's name.
        landmarks: optional ``(478, 2|3)`` mesh in ``image`` pixels (hand-corrected);
            by default the face is analysed.
        size: side of the canonical frame the exemplar is stored in.
        source: how to name the image in error messages.
        cell, levels, w_app: lookup-table parameters (see :func:`build_lookup_table`).

    Raises:
        NoFaceError: no face in the image.
        InputError: several faces, a face too small or turned too far away.
    """
    if not 128 <= size <= 2048:
        raise ConfigError(f"style size must be within 128..2048 pixels, got {size}")
    started = time.perf_counter()
    face = _style_face(image, landmarks, source)
    if face.eye_distance < MIN_STYLE_EYE_DISTANCE:
        raise InputError(
            f"the face in {source} is too small ({face.eye_distance:.0f} px between the eyes, at least "
            f"{MIN_STYLE_EYE_DISTANCE:.0f} needed); use a larger picture of the face"
        )
    if abs(face.pose.yaw) > 30 or abs(face.pose.pitch) > 30:
        raise InputError(
            f"the face in {source} is turned away (yaw {face.pose.yaw:+.0f}, pitch {face.pose.pitch:+.0f} degrees); "
            "a style needs a roughly frontal portrait"
        )
    levels_out = []
    side = size
    while not levels_out or (side >= 256 and len(levels_out) < 3):
        aligned = align_face(image, face, size=side, template="ffhq", border="replicate")
        lm = transform_points(face.landmarks, aligned.matrix)
        levels_out.append(_level(aligned.image, lm, cell, levels, w_app))
        side //= 2
    iod = levels_out[0].eye_distance
    meta = {
        "format": FORMAT_VERSION,
        "portraitfx": __version__,
        "source": source,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.perf_counter() - started, 3),
        "eye_distance": iod,
        "source_eye_distance": face.eye_distance,
        "app_sigma": APP_SIGMA,
    }
    return StylePack(name, levels_out, meta)


def save_style(pack: StylePack, path: str | os.PathLike[str]) -> Path:
    """Write ``pack`` to a ``.pfxstyle`` file (safetensors; atomic)."""
    from safetensors.numpy import save_file

    from portraitfx.io.paths import atomic_output

    dst = Path(path)
    if dst.suffix != STYLE_SUFFIX:
        raise ConfigError(f"style files end in {STYLE_SUFFIX}, got '{dst.name}'")
    tensors: dict[str, np.ndarray] = {}
    for i, lv in enumerate(pack.levels):
        tensors[f"{i}.exemplar"] = np.ascontiguousarray(lv.exemplar, np.uint8)
        tensors[f"{i}.landmarks"] = np.ascontiguousarray(lv.landmarks, np.float32)
        tensors[f"{i}.app"] = np.ascontiguousarray(lv.app, np.float32)
        tensors[f"{i}.app_q"] = np.ascontiguousarray(lv.app_q, np.float32)
        tensors[f"{i}.table"] = np.ascontiguousarray(lv.table.table, np.int16)
    table = pack.levels[0].table
    header = {
        "name": pack.name,
        "meta": json.dumps(
            {**pack.meta, "levels": len(pack.levels), "cell": table.cell, "w_app": table.w_app}
        ),
    }
    with atomic_output(dst) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return dst


def _read(path: Path) -> StylePack:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            header = fh.metadata() or {}
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises its own error types
        raise ModelError(f"'{path}' is not a readable style file ({type(err).__name__}: {err})") from None
    if "meta" not in header:
        raise ModelError(f"'{path}' is not a portraitfx style file (no style header)")
    try:
        meta = json.loads(header["meta"])
    except ValueError:
        raise ModelError(
            f"'{path}' has a damaged style header; rebuild it with `portraitfx style build`"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise ModelError(
            f"'{path}' has style format {meta.get('format')}; rebuild it with `portraitfx style build`"
        )
    try:
        n_levels = int(meta.pop("levels", 0))
        cell, w_app = int(meta.pop("cell")), float(meta.pop("w_app"))
    except (KeyError, TypeError, ValueError):
        raise ModelError(
            f"'{path}' has an incomplete style header; rebuild it with `portraitfx style build`"
        ) from None
    parts = ("exemplar", "landmarks", "app", "app_q", "table")
    missing = [f"{i}.{p}" for i in range(n_levels) for p in parts if f"{i}.{p}" not in arrays]
    if n_levels < 1 or missing:
        raise ModelError(
            f"'{path}' is not a complete style file (missing {', '.join(missing[:3]) or 'levels'})"
        )
    levels = [
        StyleLevel(
            arrays[f"{i}.exemplar"],
            arrays[f"{i}.landmarks"],
            arrays[f"{i}.app"],
            arrays[f"{i}.app_q"],
            LookupTable(arrays[f"{i}.table"], cell, w_app),
        )
        for i in range(n_levels)
    ]
    return StylePack(header.get("name", path.stem), levels, meta)


def list_styles() -> list[str]:
    """Names of the built-in styles and of the packs in :func:`styles_dir`."""
    from .builtin import BUILTIN_STYLES

    user = sorted(p.stem for p in styles_dir().glob(f"*{STYLE_SUFFIX}") if not p.stem.startswith("builtin-"))
    return [*BUILTIN_STYLES, *[u for u in user if u not in BUILTIN_STYLES]]


def load_style(style: str | os.PathLike[str] | StylePack) -> StylePack:
    """Load a style by path, by built-in name, or by the name of a pack in :func:`styles_dir`.

    Raises:
        ModelNotFoundError: unknown name (with close matches) or missing file.
        ModelError: the file is not a valid style pack.
    """
    if isinstance(style, StylePack):
        return style
    text = str(style)
    path = Path(text).expanduser()
    if path.suffix == STYLE_SUFFIX or os.sep in text or (os.altsep and os.altsep in text):
        if not path.is_file():
            raise ModelNotFoundError(f"style file not found: '{path}'")
        return _read(path)
    from .builtin import BUILTIN_STYLES, builtin_style

    if text in BUILTIN_STYLES:
        return builtin_style(text)
    cached = styles_dir() / f"{text}{STYLE_SUFFIX}"
    if cached.is_file():
        return _read(cached)
    raise ModelNotFoundError.for_name(text, list_styles(), what="style")
