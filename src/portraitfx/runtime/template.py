"""Template cache: analyse a video once, apply effects to it many times without re-analysing.

:func:`prepare_template` decodes a video once, tracks its faces with the same
:class:`~portraitfx.face.track.FaceTracker` settings the video runtime uses, and
stores every frame's faces (mesh, box, score, pose, track id) in one safetensors
file, with, when an effect is given, the per-face arrays its ``prepare_face``
returns (masks, crops: whatever depends only on the template video). Applying an
effect to that video later (:func:`~portraitfx.runtime.apply.apply_to_file`)
reads the faces from the file instead of running the tracker.

File format (``.pfxtemplate``, safetensors, no pickle): the safetensors metadata
holds one key, ``portraitfx_template``, a JSON object (format version, video
fingerprint, frame count, fps, size, tracker settings, portraitfx version, the
effect's name and ``template_version``). Tensors, for ``N`` faces over ``F`` frames:

* ``frame_offsets`` ``(F+1,)`` int64: frame ``i``'s faces are rows
  ``frame_offsets[i]:frame_offsets[i+1]`` of the per-face tensors below;
* ``frame_time`` ``(F,)`` float64 seconds;
* ``landmarks`` ``(N, 478, 3)`` float32, ``bbox`` ``(N, 4)`` float32,
  ``score`` ``(N,)`` float64, ``pose`` ``(N, 3)`` float64 (yaw, pitch, roll),
  ``track_id`` ``(N,)`` int64 (-1: none), and ``embedding`` ``(N, D)`` float32 with
  ``has_embedding`` ``(N,)`` uint8 when some face has one;
* per extra key ``K`` (arrays of any shape, one dtype per key): ``extra/K/data``
  (all faces' values, flattened and concatenated), ``extra/K/offset`` ``(N+1,)``
  int64 into it, ``extra/K/shape`` ``(N, D)`` int64 (-1 padded) and
  ``extra/K/ndim`` ``(N,)`` int64 (-1: this face has no value for ``K``).

Templates found automatically live in ``$PORTRAITFX_HOME/templates/<sha256>.pfxtemplate``,
named by the sha256 of the video file, so a copy or a renamed file finds its
template and a modified one does not.

Example:
    >>> path = prepare_template("template.mp4")                                 # doctest: +SKIP
    >>> tpl = Template.load(path)                                                # doctest: +SKIP
    >>> tpl.frames, len(tpl.faces(0))                                            # doctest: +SKIP
    (300, 1)
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from portraitfx.errors import (
    ConfigError,
    CorruptInputError,
    InputError,
    PortraitFxError,
    TruncatedVideoError,
    VideoError,
)
from portraitfx.face.analyze import AnalyzeOptions
from portraitfx.face.types import Face, Pose
from portraitfx.io.paths import atomic_output, check_input_path

if TYPE_CHECKING:  # pragma: no cover
    from portraitfx.face.track import FaceTracker

__all__ = [
    "FORMAT_VERSION",
    "TEMPLATE_SUFFIX",
    "Template",
    "default_template_path",
    "make_tracker",
    "prepare_template",
    "templates_dir",
    "tracker_settings",
    "video_fingerprint",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "portraitfx-template"
FORMAT_VERSION = 1
TEMPLATE_SUFFIX = ".pfxtemplate"
_META_KEY = "portraitfx_template"
_FACE_KEYS = ("frame_offsets", "frame_time", "landmarks", "bbox", "score", "pose", "track_id")


# --------------------------------------------------------------------------- helpers


def templates_dir() -> Path:
    """Where automatically found templates live: ``$PORTRAITFX_HOME/templates`` (may not exist yet)."""
    from portraitfx._home import home_dir

    return home_dir() / "templates"


def video_fingerprint(video: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of the whole file, streamed; remembered per (path, size, mtime) in this process.

    Hashing runs at about 1.5 GB/s, so even a long 720p clip costs well under a
    second, a small fraction of decoding it.
    """
    from portraitfx.models.registry import file_sha256

    return file_sha256(check_input_path(video, "video"))  # cached per (path, size, mtime, inode)


def default_template_path(video: str | os.PathLike[str]) -> Path:
    """Where :func:`prepare_template` writes the template of ``video`` by default."""
    return templates_dir() / f"{video_fingerprint(video)}{TEMPLATE_SUFFIX}"


def tracker_settings(options: AnalyzeOptions | None = None, smooth: bool = True) -> dict[str, Any]:
    """The :class:`~portraitfx.face.track.FaceTracker` settings the video runtime uses for ``options``.

    A template is reused automatically only when these are equal to the ones it was
    prepared with.
    """
    options = options or AnalyzeOptions()
    return {
        "max_faces": int(options.max_faces),
        "min_score": float(options.min_score),
        "min_face_size": float(options.min_face_size),
        # "auto" in video is the full-range model: new faces can be far away
        "detector": "full" if options.detector == "auto" else str(options.detector),
        "smooth": bool(smooth),
    }


def make_tracker(settings: Mapping[str, Any]) -> FaceTracker:
    """A tracker built from :func:`tracker_settings`."""
    from portraitfx.face.track import FaceTracker

    return FaceTracker(
        settings["max_faces"],
        smooth=settings["smooth"],
        min_score=settings["min_score"],
        min_face_size=settings["min_face_size"],
        detector=settings["detector"],
    )


def _template_identity(effect: Any) -> tuple[str | None, str | None]:
    """``(name, template_version)`` an effect's template arrays are stored and matched under."""
    if effect is None:
        return None, None
    version = getattr(effect, "template_version", None)
    name = getattr(effect, "name", None) or type(effect).__name__
    return str(name), None if version is None else str(version)


def _effect_preparer(effect: Any) -> tuple[Any, str | None, str | None]:
    """``(prepare_face, name, template_version)`` of ``effect`` (``None``s without ``prepare_face``)."""
    prepare = getattr(effect, "prepare_face", None) if effect is not None else None
    if not callable(prepare):
        return None, None, None
    return (prepare, *_template_identity(effect))


def _check_extras(extras: Any, face_row: int, dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    if not isinstance(extras, Mapping):
        raise ConfigError(f"prepare_face must return a dict of str to arrays, got {type(extras).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in extras.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ConfigError(f"prepare_face keys must be non-empty strings without '/', got {key!r}")
        arr = np.ascontiguousarray(np.asarray(value))
        if arr.dtype.kind not in "biuf":
            raise ConfigError(
                f"prepare_face value {key!r} has dtype {arr.dtype}; use a numeric or bool array"
            )
        known = dtypes.setdefault(key, arr.dtype)
        if arr.dtype != known:
            raise ConfigError(
                f"prepare_face value {key!r} is {arr.dtype} for face {face_row} but {known} before; "
                "keep one dtype per key"
            )
        out[key] = arr
    return out


def _pack_extras(rows: list[dict[str, np.ndarray]], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    n = len(rows)
    for key, dtype in dtypes.items():
        values = [row.get(key) for row in rows]
        dims = max((v.ndim for v in values if v is not None), default=0)
        shape = np.full((n, max(dims, 1)), -1, np.int64)
        ndim = np.full(n, -1, np.int64)
        offset = np.zeros(n + 1, np.int64)
        for i, v in enumerate(values):
            size = 0
            if v is not None:
                ndim[i] = v.ndim
                shape[i, : v.ndim] = v.shape
                size = v.size
            offset[i + 1] = offset[i] + size
        flat = [v.reshape(-1) for v in values if v is not None and v.size]
        data = np.concatenate(flat) if flat else np.zeros(0, dtype)
        tensors[f"extra/{key}/data"] = data.astype(dtype, copy=False)
        tensors[f"extra/{key}/offset"] = offset
        tensors[f"extra/{key}/shape"] = shape
        tensors[f"extra/{key}/ndim"] = ndim
    return tensors


# --------------------------------------------------------------------------- prepare


def prepare_template(
    video: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    options: AnalyzeOptions | None = None,
    smooth: bool | None = None,
    progress: bool = False,
    effect: Any = None,
) -> Path:
    """Analyse ``video`` once and store its faces (and the effect's per-face arrays) in a template.

    Args:
        video: the template video.
        output: the ``.pfxtemplate`` file to write; by default
            ``$PORTRAITFX_HOME/templates/<sha256 of the video>.pfxtemplate``, where
            :meth:`Template.find` (and the video runtime) look for it.
        options: face analysis options (``max_faces``, ``min_score``, ``min_face_size``,
            ``detector``), as for :func:`~portraitfx.runtime.apply.apply_to_file`.
        smooth: smooth landmarks over time (default: the effect's ``smooth_landmarks``,
            else ``True``), as the video runtime does.
        progress: show a progress bar.
        effect: optional effect with ``prepare_face(frame, face) -> dict[str, np.ndarray]``;
            its results are stored per face, with its ``template_version`` attribute.

    Returns:
        The path written.

    Raises:
        InputError: the video cannot be read (or is truncated).
        OutputError: the output cannot be written.
        ConfigError: ``prepare_face`` returned something that cannot be stored.
    """
    from safetensors.numpy import save_file
    from tqdm import tqdm

    from portraitfx._version import __version__
    from portraitfx.io.video import VideoReader, prefetch_frames

    started = time.perf_counter()
    src = check_input_path(video, "video")
    if smooth is None:
        smooth = bool(getattr(effect, "smooth_landmarks", True)) if effect is not None else True
    settings = tracker_settings(options, smooth)
    prepare, effect_name, effect_version = _effect_preparer(effect)
    fingerprint = video_fingerprint(src)
    size = src.stat().st_size
    if output is None:
        dst = templates_dir() / f"{fingerprint}{TEMPLATE_SUFFIX}"
        dst.parent.mkdir(parents=True, exist_ok=True)
    else:
        dst = Path(output).expanduser()

    offsets, times = [0], []
    landmarks, boxes, scores, poses, ids, embeddings = [], [], [], [], [], []
    extras: list[dict[str, np.ndarray]] = []
    dtypes: dict[str, np.dtype] = {}
    with VideoReader(src) as reader, make_tracker(settings) as tracker:
        info = reader.info
        with tqdm(
            total=info.frame_count or None,
            unit="frame",
            desc=f"prepare {src.name}",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        ) as bar:
            for frame in prefetch_frames(reader, 4):
                faces = tracker.update(frame.image, frame.time)
                for face in faces:
                    landmarks.append(np.asarray(face.landmarks, np.float32))
                    boxes.append(np.asarray(face.bbox, np.float32))
                    scores.append(float(face.score))
                    poses.append(face.pose.as_tuple())
                    ids.append(-1 if face.track_id is None else int(face.track_id))
                    embeddings.append(face.embedding)
                    row = prepare(frame.image, face) if prepare is not None else {}
                    extras.append(_check_extras(row or {}, len(extras), dtypes))
                offsets.append(offsets[-1] + len(faces))
                times.append(frame.time)
                bar.update(1)
        if reader.truncated:
            raise TruncatedVideoError(
                f"'{src}' is damaged or truncated ({reader.truncation_reason}); "
                "cannot prepare a template from it",
                frames_decoded=len(times),
            )
    if not times:
        raise VideoError(f"no frame could be decoded from '{src}'")

    n = len(landmarks)
    tensors: dict[str, np.ndarray] = {
        "frame_offsets": np.asarray(offsets, np.int64),
        "frame_time": np.asarray(times, np.float64),
        "landmarks": np.stack(landmarks).astype(np.float32) if n else np.zeros((0, 478, 3), np.float32),
        "bbox": np.stack(boxes).astype(np.float32) if n else np.zeros((0, 4), np.float32),
        "score": np.asarray(scores, np.float64).reshape(n),
        "pose": np.asarray(poses, np.float64).reshape(n, 3),
        "track_id": np.asarray(ids, np.int64).reshape(n),
    }
    with_embedding = [e for e in embeddings if e is not None]
    if with_embedding:
        dim = int(np.asarray(with_embedding[0]).size)
        emb = np.zeros((n, dim), np.float32)
        has = np.zeros(n, np.uint8)
        for i, e in enumerate(embeddings):
            if e is not None:
                emb[i], has[i] = np.asarray(e, np.float32).reshape(dim), 1
        tensors["embedding"], tensors["has_embedding"] = emb, has
    tensors.update(_pack_extras(extras, dtypes))
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "portraitfx": __version__,
        "video": {"name": src.name, "size": size, "sha256": fingerprint},
        "frames": len(times),
        "faces": n,
        "fps": float(info.fps),
        "width": int(info.width),
        "height": int(info.height),
        "tracker": settings,
        "effect": effect_name,
        "effect_version": effect_version,
        "extras": {k: str(v) for k, v in dtypes.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    with atomic_output(dst, inputs=(src,)) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    return dst


# --------------------------------------------------------------------------- load


class Template:
    """A prepared template: per-frame faces (and effect arrays) of one video.

    Load one with :meth:`load` (explicit file) or :meth:`find` (the cache of a
    video). Faces load at once (a few MB for minutes of video); effect arrays are
    read per face, on demand, from the memory-mapped file.

    Attributes:
        path: the template file.
        meta: its JSON metadata (see the module docstring).
        frames: frame count of the video.
        fps: its average frame rate.
        width, height: its frame size.
        sha256: fingerprint of the video it was made from.
        tracker: tracker settings it was prepared with (:func:`tracker_settings`).
        effect, effect_version: the effect whose arrays it holds (``None`` if none).
    """

    def __init__(self, path: Path, meta: dict[str, Any], tensors: dict[str, np.ndarray], handle: Any) -> None:
        self.path = path
        self.meta = meta
        self._handle = handle
        self._slices: dict[str, Any] = {}
        self._offsets = tensors["frame_offsets"]
        self.frame_times = tensors["frame_time"]
        self._landmarks = tensors["landmarks"]
        self._bbox = tensors["bbox"]
        self._score = tensors["score"]
        self._pose = tensors["pose"]
        self._track_id = tensors["track_id"]
        self._embedding = tensors.get("embedding")
        self._has_embedding = tensors.get("has_embedding")
        self._extra_index = {
            key: (tensors[f"extra/{key}/offset"], tensors[f"extra/{key}/shape"], tensors[f"extra/{key}/ndim"])
            for key in self.extra_keys
        }
        self._lock = threading.Lock()

    # -- metadata views
    @property
    def frames(self) -> int:
        return int(self.meta["frames"])

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def width(self) -> int:
        return int(self.meta["width"])

    @property
    def height(self) -> int:
        return int(self.meta["height"])

    @property
    def sha256(self) -> str:
        return str(self.meta["video"]["sha256"])

    @property
    def video_size(self) -> int:
        return int(self.meta["video"]["size"])

    @property
    def tracker(self) -> dict[str, Any]:
        return dict(self.meta["tracker"])

    @property
    def effect(self) -> str | None:
        return self.meta.get("effect")

    @property
    def effect_version(self) -> str | None:
        return self.meta.get("effect_version")

    @property
    def extra_keys(self) -> list[str]:
        return sorted(self.meta.get("extras") or {})

    @property
    def face_count(self) -> int:
        """Faces stored, summed over frames."""
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return f"Template('{self.path}', frames={self.frames}, faces={self.face_count})"

    # -- loading
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Template:
        """Open a template file.

        Raises:
            InputNotFoundError: no such file.
            CorruptInputError: it is not a (complete, current) portraitfx template.
        """
        from safetensors import safe_open

        p = check_input_path(path, "template")
        again = "prepare it again (portraitfx swap prepare VIDEO)"
        try:
            handle = safe_open(str(p), framework="numpy")
            header = (handle.metadata() or {}).get(_META_KEY)
            if header is None:
                raise CorruptInputError(f"'{p}' is not a portraitfx template (no template metadata)")
            meta = json.loads(header)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
                raise CorruptInputError(f"'{p}' is not a portraitfx template")
            if meta.get("format_version") != FORMAT_VERSION:
                raise CorruptInputError(
                    f"template '{p}' has format version {meta.get('format_version')}, this portraitfx "
                    f"reads version {FORMAT_VERSION}; {again}"
                )
            names = set(handle.keys())
            wanted = [k for k in (*_FACE_KEYS, "embedding", "has_embedding") if k in names]
            for key in meta.get("extras") or {}:
                wanted += [f"extra/{key}/offset", f"extra/{key}/shape", f"extra/{key}/ndim"]
            missing = [k for k in (*_FACE_KEYS, *wanted) if k not in names]
            if missing:
                raise CorruptInputError(
                    f"template '{p}' is incomplete (no {', '.join(missing[:3])}); {again}"
                )
            tensors = {k: handle.get_tensor(k) for k in wanted}
            _validate(meta, tensors, names)
        except PortraitFxError:
            raise
        except Exception as err:  # SafetensorError, JSON, bad shapes: all mean "damaged"
            msg = " ".join(str(err).split()) or type(err).__name__
            raise CorruptInputError(f"'{p}' is not a valid portraitfx template ({msg}); {again}") from None
        return cls(p, meta, tensors, handle)

    @classmethod
    def find(cls, video: str | os.PathLike[str]) -> Template | None:
        """The cached template of ``video`` (found by the file's content), or ``None``.

        A damaged or mismatched cache file is ignored with a logged warning.
        """
        template, _ = _find(video)
        return template

    # -- per frame
    def _rows(self, frame_index: int) -> range:
        if not 0 <= frame_index < self.frames:
            raise InputError(
                f"frame {frame_index} is outside template '{self.path.name}' ({self.frames} frames); "
                "the video does not match its template"
            )
        return range(int(self._offsets[frame_index]), int(self._offsets[frame_index + 1]))

    def faces(self, frame_index: int) -> list[Face]:
        """Faces of frame ``frame_index`` (fresh copies), as the tracker returned them."""
        out = []
        for r in self._rows(frame_index):
            emb = None
            if self._embedding is not None and self._has_embedding is not None and self._has_embedding[r]:
                emb = self._embedding[r].copy()
            tid = int(self._track_id[r])
            yaw, pitch, roll = (float(v) for v in self._pose[r])
            out.append(
                Face(
                    bbox=self._bbox[r].copy(),
                    score=float(self._score[r]),
                    landmarks=self._landmarks[r].copy(),
                    pose=Pose(yaw, pitch, roll),
                    embedding=emb,
                    track_id=None if tid < 0 else tid,
                )
            )
        return out

    def extras(self, frame_index: int, face_index: int) -> dict[str, np.ndarray]:
        """The effect arrays of face ``face_index`` of frame ``frame_index`` (``{}`` if none)."""
        rows = self._rows(frame_index)
        if not 0 <= face_index < len(rows):
            raise IndexError(f"frame {frame_index} has {len(rows)} face(s), no face {face_index}")
        r = rows[face_index]
        if self._extra_index and self._handle is None:
            raise InputError(f"template '{self.path.name}' was closed")
        out: dict[str, np.ndarray] = {}
        for key, (offset, shape, ndim) in self._extra_index.items():
            nd = int(ndim[r])
            if nd < 0:
                continue
            a, b = int(offset[r]), int(offset[r + 1])
            with self._lock:
                part = self._slices.get(key)
                if part is None:  # (one slice object per array, not one per frame)
                    part = self._slices[key] = self._handle.get_slice(f"extra/{key}/data")
                flat = part[a:b]
            out[key] = np.asarray(flat).reshape(tuple(int(s) for s in shape[r, :nd]))
        return out

    def close(self) -> None:
        """Release the file (extras cannot be read afterwards)."""
        self._handle = None
        self._slices = {}


def _validate(meta: dict[str, Any], t: dict[str, np.ndarray], names: set[str]) -> None:
    frames = int(meta["frames"])
    offsets = t["frame_offsets"]
    if frames < 1 or offsets.shape != (frames + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("bad frame index")
    n = int(offsets[-1])
    expected = {
        "frame_time": (frames,),
        "landmarks": (n, 478, 3),
        "bbox": (n, 4),
        "score": (n,),
        "pose": (n, 3),
        "track_id": (n,),
    }
    for key, shape in expected.items():
        if t[key].shape != shape:
            raise ValueError(f"{key} has shape {t[key].shape}, expected {shape}")
    if "embedding" in t and (
        t["embedding"].shape[0] != n or t.get("has_embedding", np.zeros(0)).shape != (n,)
    ):
        raise ValueError("bad embeddings")
    for key in meta.get("extras") or {}:
        if f"extra/{key}/data" not in names:
            raise ValueError(f"no data for {key!r}")
        offset, ndim = t[f"extra/{key}/offset"], t[f"extra/{key}/ndim"]
        if offset.shape != (n + 1,) or ndim.shape != (n,) or t[f"extra/{key}/shape"].shape[0] != n:
            raise ValueError(f"bad index for {key!r}")
    for value in (meta["width"], meta["height"], meta["fps"], meta["video"]["size"]):
        float(value)
    if not isinstance(meta["video"]["sha256"], str) or not isinstance(meta["tracker"], dict):
        raise ValueError("bad metadata")


def _find(video: str | os.PathLike[str]) -> tuple[Template | None, str | None]:
    """``(template, why it was ignored)``: the cache of ``video`` if there is a usable one."""
    src = check_input_path(video, "video")
    if not templates_dir().is_dir():  # nothing prepared yet: do not even hash the video
        return None, None
    fingerprint = video_fingerprint(src)
    path = templates_dir() / f"{fingerprint}{TEMPLATE_SUFFIX}"
    if not path.is_file():
        return None, None
    try:
        template = Template.load(path)
    except PortraitFxError as err:
        why = f"ignored the template cache of '{src.name}': {err}"
        log.warning(why)
        return None, why
    if template.sha256 != fingerprint or template.video_size != src.stat().st_size:
        why = f"ignored the template cache '{path}': it was made from another file"
        log.warning(why)
        return None, why
    return template, None
