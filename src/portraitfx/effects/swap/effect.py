"""The ``swap`` effect: put a source person's face on the faces of a photo or video.

Example:
    >>> import portraitfx as pfx
    >>> swap = pfx.create_effect("swap", source="me.jpg")                    # doctest: +SKIP
    >>> out = swap.apply(image, pfx.analyze(image))                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from portraitfx._validate import check_choice, check_image, with_overrides
from portraitfx.effects.base import EffectState, register_effect
from portraitfx.effects.stylize.guides import smooth
from portraitfx.errors import ConfigError, InputError
from portraitfx.face import topology as T
from portraitfx.face.mesh import mesh_bbox
from portraitfx.face.regions import _up_vector, polygon_mask, region_mask, region_polygons
from portraitfx.face.types import Detection, Face

from .classic import (
    STABLE_POINTS,
    background_displacement,
    colour_stats,
    compose_without_detail,
    grow,
    identity_mesh,
    measure_step,
    mesh_triangles,
    occluders,
    pyramid_blend,
    shrink,
    steady_landmarks,
    subsample,
    to_lab,
    transfer_colour,
    visible_triangles,
    warp_piecewise_affine,
)

__all__ = ["SourceFace", "SwapEffect", "SwapOptions", "load_sources"]

Select = Literal["all", "largest"]
ZONE = 0.25  # how far around the face outline (in eye distances) the swap may change pixels
WORK_EYE_DISTANCE = 90.0  # swaps are computed with the eyes at most this far apart (pixels)
SOURCE_DETAIL = 1.75  # ... and at most this times the source photo's (it has no more detail)
NO_CORRECTION = (1.0, 1.0, 1.0, 0.0, 0.0)  # openness factors (left eye, right eye, mouth), turn (yaw, pitch)
CORRECT_EVERY = 12  # video: frames between two measurements of the eye and mouth openness of the result
SETTLED_AFTER = 4  # video: measurements after which a track's correction has settled (then half as often)
CORRECTION_LAG = 6  # video: frames after its measurement a correction applies (see SwapEffect.begin)
HOLD_FRAMES = 2  # video: frames a lost face is kept (no popping when the mesh misses a frame or two)
TURN_SLACK = 2.0  # degrees of pose error the correction leaves alone (turning back costs identity)
FOLLOW_EXPRESSION = 0.5  # video: share of the mesh's expression change taken each frame (the rest is noise)


@dataclass(frozen=True)
class SwapOptions:
    """Options of the ``swap`` effect.

    Attributes:
        select: which target faces: ``"all"`` or ``"largest"``.
        target_face: swap only the face with this index (largest first), if set.
        reference: only swap faces of this person (a photo path or an image); faces
            whose identity distance to it is under ``reference_distance``.
        shape: how far the target's jaw and cheeks move to the source's face shape (0..1).
        features: how far eyes, brows, nose and lips move to the source's places and
            sizes (0..1); their own shape (an open mouth, a closed eye) stays the target's.
        skin: how far the source's skin tone moves to the target's (0..1).
        lighting: share of the target's shading given to the new face (0..1).
        occlusion: keep what covers the target's face (hands, hair) in front. (Where
            hair or glasses cover the *source's* face, the target's skin is always kept.)
        forehead: how far above the brows (in eye distances) the source's forehead
            reaches; higher up the target's own skin, hairline and fringe stay (``None``:
            the whole forehead of the mesh is the source's).
        keep_eyes: how much of the target's eyes between the lids stays (0..1; the
            iris first): gaze is kept, but so is some of the target's look.
        correct: measure the eyes' and mouth's openness and the head's pose on the
            result and correct the new mesh so they stay the target's (stills: up to
            three passes; video: measured every CORRECT_EVERY frames, half as often once settled).
        steady: video: how much the face's measured motion (optical flow) rather than
            each frame's mesh places the new face (0 = the mesh alone; the mesh still
            corrects the pose by ``1 - steady`` per frame and the expression at once).
        persistence: video: share of last frame's result (moved by the face's motion)
            kept where the two frames agree, against shimmer (0 = none).
        max_yaw: faces turned further than this (degrees) are left as they are; below
            it only the mesh triangles facing the camera in both faces are used.
        feather: edge softness, fraction of the eye distance.
        model: a learned swapper exported to ONNX (path or registry name; see
            :mod:`.neural` for its contract): the faces are swapped by it instead
            of the model-free steps. ``restore``: an optional face-restoration ONNX
            model for faces larger than the swapper's crop; ``providers``: ONNX
            Runtime providers (default: TensorRT, CUDA, CPU, whichever exist).
        provenance: mark outputs as generated (metadata + invisible watermark); turning
            it off takes an explicit ``provenance=False``.
    """

    select: Select = "all"
    target_face: int | None = None
    reference: Any = None
    reference_distance: float = 0.6
    shape: float = 0.8
    features: float = 1.0
    skin: float = 0.85
    lighting: float = 0.3
    occlusion: bool = True
    keep_eyes: float = 0.0
    correct: bool = True
    steady: float = 0.85
    persistence: float = 0.5
    max_yaw: float = 60.0
    forehead: float | None = 0.2
    feather: float = 0.12
    model: Any = None
    restore: Any = None
    providers: Any = None
    provenance: bool = True

    def __post_init__(self) -> None:
        check_choice(self.select, ("all", "largest"), "select")
        for name in ("shape", "features", "skin", "lighting", "keep_eyes", "steady", "persistence"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {v}")


@dataclass
class SourceFace:
    """A source face: its picture, mesh and identity; ``texture`` is the picture with an
    alpha channel that is 0 where hair, glasses or a hand cover the face."""

    image: np.ndarray
    face: Face
    texture: np.ndarray | None = None
    visible: np.ndarray | None = None  # its mesh triangles facing the camera

    def __post_init__(self) -> None:
        if self.texture is None:
            self.texture = source_texture(self.image, self.face)
        if self.visible is None:
            self.visible = visible_triangles(self.face.landmarks)


def load_sources(sources: Any) -> list[SourceFace]:
    """Analyse one or several source photos (paths or arrays) of the same person.

    Raises:
        NoFaceError: a photo with no face.
        InputError: a photo with several faces of similar size (which one is meant?).
    """
    from portraitfx.face.analyze import FaceAnalyzer, require_face
    from portraitfx.io.images import load_image

    items = sources if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise ConfigError("give at least one source photo")
    out = []
    with FaceAnalyzer(embed=True, max_faces=4) as analyzer:
        for item in items:
            name = f"'{item}'" if isinstance(item, (str, os.PathLike)) else "the source image"
            image = load_image(item)
            faces = require_face(analyzer.run(image), name)
            if len(faces) > 1 and faces[1].size > 0.6 * faces[0].size:
                raise InputError(f"{name} shows {len(faces)} faces; use a photo of just the source person")
            out.append(SourceFace(image, faces[0]))
    return out


def source_texture(image: np.ndarray, face: Face) -> np.ndarray:
    """``image`` as RGBA: alpha 255 on usable face skin and features, 0 where something covers the face."""
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    x0, y0, x1, y1 = (int(v) for v in face.bbox)
    pad = int(0.3 * max(x1 - x0, y1 - y0))
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return rgba
    lm = face.landmarks.copy()
    lm[:, :2] -= [x0, y0]
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    skin = region_mask(crop.shape, lm, "skin", forehead=0.0) > 0.5
    # a stricter colour model than for targets: a missed fringe would be pasted onto the target
    rgba[y0:y1, x0:x1, 3][occluders(crop, skin, face.eye_distance, threshold=2.75)] = 0
    return rgba


class SwapTemplatePreparer:
    """What a swap template stores per face (see :mod:`portraitfx.runtime.template`): the
    parts of the work that depend only on the template video, not on the source person.

    ``prepare_face`` returns ``occlusion`` (uint8 mask of what covers the face, at the
    swap's working resolution), ``roi`` (the frame box it covers) and, from the second
    frame of a track on, ``motion`` (the face's 2x3 similarity motion since the track's
    previous frame, from optical flow).
    """

    name = "swap"
    template_version = "2"
    smooth_landmarks = False  # raw meshes: the face's measured motion steadies them (SwapEffect._steady)

    def __init__(self) -> None:
        self._last: dict[int, tuple[np.ndarray, tuple[int, int, int, int]]] = {}  # track -> (gray, box)

    def prepare_face(self, frame: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        """Per-face arrays; call it for the frames of a video in order (the motion is
        measured from the same track's previous frame)."""
        out = self._occlusion(frame, face)
        if face.track_id is not None:
            from portraitfx.face.motion import face_motion, face_roi, gray_roi

            h, w = frame.shape[:2]
            last = self._last.get(face.track_id)
            if last is not None:
                motion = face_motion(last[0], gray_roi(frame, last[1]), last[1])
                if motion is not None:
                    out["motion"] = motion.astype(np.float64)
            box = face_roi(face.bbox, w, h)
            self._last[face.track_id] = (gray_roi(frame, box), box)
        return out

    def _occlusion(self, frame: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        h, w = frame.shape[:2]
        iod = face.eye_distance
        lm = face.landmarks
        margin = max(2.0, ZONE * iod) + 2
        x0, y0 = (
            int(max(np.floor(lm[:468, 0].min() - margin), 0)),
            int(max(np.floor(lm[:468, 1].min() - margin), 0)),
        )
        x1, y1 = (
            int(min(np.ceil(lm[:468, 0].max() + margin), w)),
            int(min(np.ceil(lm[:468, 1].max() + margin), h)),
        )
        roi = np.array([x0, y0, x1, y1], np.int32)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return {"occlusion": np.zeros((1, 1), np.uint8), "roi": roi}
        k = min(1.0, WORK_EYE_DISTANCE / max(iod, 1e-6))
        sw, sh = max(int(round((x1 - x0) * k)), 8), max(int(round((y1 - y0) * k)), 8)
        crop = frame[y0:y1, x0:x1]
        small = _downscale(crop, (sw, sh)) if k < 1.0 else np.ascontiguousarray(crop)
        local = lm.astype(np.float64).copy()
        local[:, :2] = (local[:, :2] - [x0, y0]) * [sw / (x1 - x0), sh / (y1 - y0)]
        skin = region_mask(small.shape, local, "skin", forehead=0.0) > 0.5
        return {"occlusion": occluders(small, skin, iod * sw / (x1 - x0)).astype(np.uint8), "roi": roi}


@dataclass(eq=False)
class _Plan:
    """One face's swap in one frame, between :meth:`SwapEffect._plan` and :meth:`SwapEffect._render`.

    ``box`` is the region of the frame that may change; the working-resolution arrays
    (``zone``, ``original``, ``region``, the ``local_*`` meshes) are that region scaled by
    ``scale``; ``field`` is the background's displacement on a twice coarser grid.
    """

    face: Face
    src: SourceFace
    frame: np.ndarray
    t_lm: np.ndarray
    dst: np.ndarray
    tri: np.ndarray
    vis: np.ndarray
    box: tuple[int, int, int, int]
    scale: np.ndarray
    local_t: np.ndarray
    local_dst: np.ndarray
    iod: float
    zone: np.ndarray
    field: np.ndarray | None
    occlusion: np.ndarray | None
    motion: Any
    scratch: dict[str, Any] | None
    original: np.ndarray | None = None
    region: np.ndarray | None = None
    warped_full: np.ndarray | None = None
    local: _Local | None = None  # the pixel work's inputs, when prepared with the geometry


@dataclass(eq=False)
class _Local:
    """What :meth:`SwapEffect._local_inputs` hands to :meth:`SwapEffect._local_blend`
    (``base``: the region before the target's kept parts were drawn into it)."""

    patch: np.ndarray
    base: np.ndarray
    adapted: np.ndarray
    face_mask: np.ndarray
    mouth: np.ndarray
    occluded: np.ndarray
    keep_target: np.ndarray
    measure: np.ndarray


@dataclass(eq=False)
class _Job:
    """One face of a video frame between :meth:`SwapEffect.begin` and :meth:`SwapEffect.finish`."""

    face: Face
    scratch: dict[str, Any]
    plan: _Plan | None = None
    factors: tuple[float, ...] | None = None
    measure: int | None = None  # the track's frame count, when this frame's result is measured


@dataclass(eq=False)
class _Frame:
    """A video frame between :meth:`SwapEffect.begin` and :meth:`SwapEffect.finish`."""

    frame: np.ndarray
    jobs: list[_Job]
    chosen: bool
    changed: list[tuple[int, int, int, int]] | None = None  # set by finish


class _Measured:
    """A correction measured by ``finish``, waited for by ``begin`` (another thread)."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._value: tuple[float, ...] | None = None

    def set(self, value: tuple[float, ...] | None) -> None:
        self._value = value
        self._ready.set()

    def get(self) -> tuple[float, ...] | None:
        # in a pipeline whose queues are shallower than CORRECTION_LAG this never waits;
        # the timeout only guards against a stage that died
        self._ready.wait(timeout=60)
        return self._value


_STABLE = np.ascontiguousarray(STABLE_POINTS, np.int64)


def _measured_frame(count: int) -> bool:
    """Whether a track's frame ``count`` is measured for the correction: every
    ``CORRECT_EVERY``-th frame, every other one of those once it has settled (it is a
    property of the source and target faces, not of the moment: a mesh a frame costs
    ~10 ms, about 0.8 ms a frame at every 12th)."""
    if count % CORRECT_EVERY:
        return False
    return count < SETTLED_AFTER * CORRECT_EVERY or count % (2 * CORRECT_EVERY) == 0


def _measurement(scratch: dict[str, Any], count: int) -> _Measured:
    return scratch.setdefault("measured", {}).setdefault(count, _Measured())


_grid_lock = threading.Lock()
_grid = np.zeros((0, 0, 2), np.float32)
_GRID_KEEP = 1600 * 1600  # regions up to this many pixels share the kept grid (<= 20 MB)


def _pixel_grid(width: int, height: int) -> np.ndarray:
    """``height x width x 2`` float32: each pixel's own (x, y) (a read-only view of a
    shared grid that only grows, so regions of changing size reuse it)."""
    global _grid
    grid = _grid
    if height * width > _GRID_KEEP:  # a huge still: a grid of its own, not kept
        grid = np.empty((height, width, 2), np.float32)
        grid[..., 0] = np.arange(width, dtype=np.float32)[None, :]
        grid[..., 1] = np.arange(height, dtype=np.float32)[:, None]
        return grid
    if grid.shape[0] < height or grid.shape[1] < width:
        with _grid_lock:
            h, w = max(height, _grid.shape[0]), max(width, _grid.shape[1])
            grid = np.empty((h, w, 2), np.float32)
            grid[..., 0] = np.arange(w, dtype=np.float32)[None, :]
            grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
            grid.setflags(write=False)
            _grid = grid
    return grid[:height, :width]


def _offset_map(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ``cv2.remap`` map for a region of ``size = (w, h)`` (coordinates from its corner)
    from a coarse offset field (``h' x w' x 2``, in its own pixels; see
    :func:`~portraitfx.effects.swap.classic.resize_displacement`): the small field is
    scaled, the big one only resampled and added to the pixel grid."""
    fh, fw = field.shape[:2]
    w, h = size
    if (fw, fh) != (w, h):
        field = cv2.resize(
            cv2.multiply(field, (w / fw, h / fh, 0.0, 0.0)), size, interpolation=cv2.INTER_LINEAR
        )
    return cv2.add(field, _pixel_grid(w, h))


def _full_size_result(full: np.ndarray, change: np.ndarray, base: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """The swapped region at full size (uint8): ``full`` (the frame's deformed region) plus
    ``change`` (working resolution), with the target's own fine detail taken out where the
    source replaces it.

    The change is brought to full size and added to the frame, so the frame's detail finer
    than the working resolution stays: around the face that is what should happen, but
    where the source replaces the face (the blend's mask ``soft``) it is the target's fine
    features, which pull the identity back toward the target. There the frame's region is
    mixed, by the mask, with its working-resolution version (``base``) brought to full size.
    """
    rh, rw = full.shape[:2]
    change = cv2.resize(change, (rw, rh), interpolation=cv2.INTER_LINEAR)
    if not soft.any():
        return cv2.add(full, change, dtype=cv2.CV_8U)
    weight = cv2.resize(soft, (rw, rh), interpolation=cv2.INTER_LINEAR)
    smooth_base = cv2.resize(base, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return compose_without_detail(full, change, smooth_base, cv2.merge([weight] * 3))


def _downscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` made smaller, averaging its pixels (a bilinear resize would alias fine texture).

    OpenCV's area average is slow for ratios that are not whole numbers: the image is first
    resized bilinearly to a whole multiple ``m >= 2`` of ``size`` (an enlargement below
    a ratio of 2; above it a reduction by less than 1.5, too mild to alias much), then
    averaged ``m``:1 (within a grey level of the direct average, a third of the time or less).
    """
    w, h = size
    m = max(2, int(min(image.shape[1] / w, image.shape[0] / h)))
    if (image.shape[1], image.shape[0]) != (m * w, m * h):
        image = cv2.resize(image, (m * w, m * h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_mask(
    mask: np.ndarray, box: np.ndarray, region: tuple[int, int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """A mask stored for frame ``box`` moved into ``region`` (a frame box shown at ``size``)."""
    rx0, ry0, rx1, ry1 = region
    sx, sy = size[0] / max(rx1 - rx0, 1), size[1] / max(ry1 - ry0, 1)
    out = np.zeros((size[1], size[0]), bool)
    bx0, by0, bx1, by1 = (float(v) for v in np.asarray(box).ravel()[:4])
    x0, y0 = int(round((bx0 - rx0) * sx)), int(round((by0 - ry0) * sy))
    x1, y1 = int(round((bx1 - rx0) * sx)), int(round((by1 - ry0) * sy))
    if x1 - x0 < 1 or y1 - y0 < 1 or mask.size < 4:
        return out
    placed = cv2.resize(np.asarray(mask, np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST) > 0
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size[0]), min(y1, size[1])
    if cx1 > cx0 and cy1 > cy0:
        out[cy0:cy1, cx0:cx1] = placed[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return out


def _converged(new: tuple[float, ...], old: tuple[float, ...]) -> bool:
    """Corrections that barely moved: openness within 3 %, turns within half a degree."""
    opening = max(abs(a / b - 1) for a, b in zip(new[:3], old[:3], strict=True))
    turn = max((abs(a - b) for a, b in zip(new[3:], old[3:], strict=True)), default=0.0)
    return opening < 0.03 and turn < 0.5


def _turn(mesh: np.ndarray, depth: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """A ``(N, 2)`` mesh turned in depth by ``yaw`` and ``pitch`` degrees about its centre."""
    pts = np.concatenate([np.asarray(mesh, np.float64)[:, :2], np.asarray(depth, np.float64)[:, None]], 1)
    c = pts[:468].mean(0)
    a, b = -np.radians(yaw), -np.radians(pitch)
    x, y, z = (pts - c).T
    x, z = np.cos(a) * x + np.sin(a) * z, -np.sin(a) * x + np.cos(a) * z
    y = np.cos(b) * y - np.sin(b) * z
    return (np.stack([x, y], 1) + c[:2]).astype(np.float32)


def openings(landmarks: np.ndarray) -> tuple[float, float, float]:
    """How open the left eye, the right eye and the mouth are: lid (lip) gap over width."""
    lm = np.asarray(landmarks, np.float64)[:, :2]

    def ratio(a: int, b: int, c: int, d: int) -> float:
        return float(np.linalg.norm(lm[a] - lm[b]) / max(np.linalg.norm(lm[c] - lm[d]), 1e-6))

    return ratio(386, 374, 263, 362), ratio(159, 145, 33, 133), ratio(13, 14, 78, 308)


@register_effect("swap")
class SwapEffect:
    """Model-free face swap (see :mod:`.classic` for the steps).

    Args:
        source: a photo (path or array) of the source person, or a list of photos
            (the one whose head pose is closest to each target face is used).
        options: :class:`SwapOptions`; keyword arguments override its fields.
    """

    name = "swap"
    smooth_landmarks = SwapTemplatePreparer.smooth_landmarks
    holds_faces = True  # video runtimes call apply on frames without faces too (see _held)
    uses_template = True  # videos take their faces (and occluders) from a prepared template
    template_version = SwapTemplatePreparer.template_version

    @staticmethod
    def template_preparer() -> SwapTemplatePreparer:
        """What ``portraitfx swap prepare`` stores per face (no source photo needed)."""
        return SwapTemplatePreparer()

    @property
    def provenance_effect(self) -> str | None:
        """What runtimes write into output metadata (None when provenance is off)."""
        return "swap" if self.options.provenance else None

    def __init__(self, source: Any, options: SwapOptions | None = None, **overrides: Any) -> None:
        self.options = with_overrides(options or SwapOptions(), overrides)
        self.sources = load_sources(source)
        self.identity = np.mean([s.face.embedding for s in self.sources], axis=0)
        self._reference: np.ndarray | None = None
        if self.options.reference is not None:
            ref = load_sources(self.options.reference)[0]
            self._reference = ref.face.embedding
        self._embedder: Any = None
        self._mesher: Any = None
        self._neural: Any = None
        if self.options.model is not None:
            from .neural import NeuralSwapper

            self._neural = NeuralSwapper(
                self.options.model, restore=self.options.restore, providers=self.options.providers
            )
            if self._neural.identity_kind != "dlib128":  # the model brings its own identity encoder
                self.identity = np.mean([self._neural.embed(s.image, s.face) for s in self.sources], axis=0)

    # -- which faces ------------------------------------------------------------------
    def select(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        """The target faces to swap, by the options."""
        faces = sorted(faces, key=lambda f: -f.size)
        if self.options.target_face is not None:
            i = self.options.target_face
            return [faces[i]] if 0 <= i < len(faces) else []
        if self._reference is not None:
            from portraitfx.face.identity import FaceEmbedder, identity_distance

            if self._embedder is None:
                self._embedder = FaceEmbedder()
            keep = []
            for f in faces:
                emb = f.embedding if f.embedding is not None else self._embedder(frame, f)
                if identity_distance(emb, self._reference) < self.options.reference_distance:
                    keep.append(f)
            return keep
        return faces[:1] if self.options.select == "largest" else faces

    def _source_for(self, face: Face) -> SourceFace:
        yaw = face.pose.yaw
        return min(
            self.sources,
            key=lambda s: abs(s.face.pose.yaw - yaw) + 0.5 * abs(s.face.pose.pitch - face.pose.pitch),
        )

    # -- one face ---------------------------------------------------------------------
    def swap_face(self, frame: np.ndarray, face: Face, scratch: dict[str, Any] | None = None) -> np.ndarray:
        """Return ``frame`` with ``face`` swapped (a new array)."""
        out = frame.copy()
        self._swap_into(out, frame, face, scratch)
        return out

    def _swap_into(
        self,
        out: np.ndarray,
        frame: np.ndarray,
        face: Face,
        scratch: dict[str, Any] | None,
        correction: tuple[float, ...] | None = None,
    ) -> None:
        """Write the swap of ``face`` (found in ``frame``) into ``out`` (same size)."""
        plan = self._plan(frame, face, scratch, correction)
        if plan is not None:
            self._render(out, plan)

    def _plan(
        self,
        frame: np.ndarray,
        face: Face,
        scratch: dict[str, Any] | None,
        correction: tuple[float, ...] | None = None,
    ) -> _Plan | None:
        """The geometry of one face's swap and the frame's pixels it starts from (None: leave the face).

        Everything here depends on the target frame and the face's mesh alone, so a video
        runtime can plan frame ``n + 1`` while it renders frame ``n`` (see :meth:`begin`).
        """
        opt = self.options
        src = self._source_for(face)
        h, w = frame.shape[:2]
        t_lm = face.landmarks
        iod = face.eye_distance
        tri = mesh_triangles()
        vis = visible_triangles(t_lm) & src.visible
        # turned too far (the far cheek and the nose's side are not seen): leave the face as it is
        if vis.sum() < 0.3 * len(tri) or abs(face.pose.yaw) > opt.max_yaw:
            return None
        # 1. the new mesh: the source's shape and features in the target's pose and expression
        dst = identity_mesh(
            t_lm, src.face.landmarks, opt.shape, opt.features, correction[:3] if correction else None
        )
        if correction is not None and len(correction) > 3 and (correction[3] or correction[4]):
            dst = _turn(dst, t_lm[:, 2], correction[3], correction[4])
        oval = list(T.FACE_OVAL)
        reach = max(2.0, ZONE * iod)
        # everything happens in the zone around both outlines; the region is its box
        pts = np.concatenate([t_lm[:468, :2], dst[:468]])
        margin = reach + 2
        rx0, ry0 = (
            int(max(np.floor(pts[:, 0].min() - margin), 0)),
            int(max(np.floor(pts[:, 1].min() - margin), 0)),
        )
        rx1, ry1 = (
            int(min(np.ceil(pts[:, 0].max() + margin), w)),
            int(min(np.ceil(pts[:, 1].max() + margin), h)),
        )
        rw, rh = rx1 - rx0, ry1 - ry0
        if rw < 16 or rh < 16:
            return None
        # steps run at a working resolution capped at WORK_EYE_DISTANCE and at what the
        # source photo's own resolution can fill; the change they make is brought back to
        # full size (with the target's finer detail taken out where the source replaces it)
        work = min(WORK_EYE_DISTANCE, SOURCE_DETAIL * src.face.eye_distance)
        k = min(1.0, work / max(iod, 1e-6))
        sw, sh = max(int(round(rw * k)), 8), max(int(round(rh * k)), 8)
        scale = np.array([sw / rw, sh / rh], np.float64)
        local_t = t_lm.astype(np.float64).copy()
        local_t[:, :2] = (local_t[:, :2] - [rx0, ry0]) * scale
        local_t[:, 2] *= scale[0]
        local_dst = (dst.astype(np.float64) - [rx0, ry0]) * scale
        small_reach = max(1.0, reach * float(scale[0]))
        outlines = np.zeros((sh, sw), np.uint8)
        for outline in (local_t[oval, :2], local_dst[oval]):
            cv2.fillPoly(outlines, [np.round(outline).astype(np.int32)], 1)
        zone = grow(outlines > 0, small_reach)
        # 2. the frame deformed around the new outline; the displacement fades to zero at
        # the zone's edge, so nothing outside it moves and nothing tears
        field = None
        if opt.shape > 0 and not np.allclose(t_lm[oval, :2], dst[oval], atol=0.25):
            # the field is smooth: computed on a grid twice as coarse, then resampled
            field = background_displacement(local_t[oval, :2], local_dst[oval], zone, small_reach, coarse=2)
        template = (scratch.get("template") if scratch is not None else None) or {}
        occlusion = None
        if opt.occlusion and "occlusion" in template and "roi" in template:
            occlusion = _place_mask(template["occlusion"], template["roi"], (rx0, ry0, rx1, ry1), (sw, sh))
        plan = _Plan(
            face=face, src=src, frame=frame, t_lm=t_lm, dst=dst, tri=tri, vis=vis,
            box=(rx0, ry0, rx1, ry1), scale=scale, local_t=local_t.astype(np.float32),
            local_dst=local_dst.astype(np.float32), iod=iod * float(scale[0]), zone=zone, field=field,
            occlusion=occlusion, motion=template.get("motion"), scratch=scratch,
        )  # fmt: skip
        self._crop(plan, frame)
        return plan

    @staticmethod
    def _crop(plan: _Plan, frame: np.ndarray) -> None:
        """The plan's pixels from ``frame``: the region at the working resolution, as it is
        (``original``) and deformed (``region``), and deformed at full size (``warped_full``)."""
        rx0, ry0, rx1, ry1 = plan.box
        rw, rh = rx1 - rx0, ry1 - ry0
        sh, sw = plan.zone.shape
        plan.frame = frame
        region_full = frame[ry0:ry1, rx0:rx1]
        small = (sw, sh) != (rw, rh)
        original = _downscale(region_full, (sw, sh)) if small else np.ascontiguousarray(region_full)
        plan.original, plan.region, plan.warped_full = original, original.copy(), region_full
        if plan.field is None:
            return
        # (the field is already faded to nothing at the zone's edge)
        disp = _offset_map(plan.field, (sw, sh))
        plan.region = cv2.remap(original, disp, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if small:
            # read from the frame seen from the region's corner (right and bottom, the
            # frame's own edges; nothing moves at the region's top and left edges)
            full = _offset_map(plan.field, (rw, rh))
            plan.warped_full = cv2.remap(
                frame[ry0:, rx0:], full, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        else:
            plan.warped_full = plan.region

    def _render(self, out: np.ndarray, plan: _Plan) -> None:
        """Steps 3-6 of a planned swap, brought to full size and written into ``out``."""
        opt = self.options
        rx0, ry0, rx1, ry1 = plan.box
        rw, rh = rx1 - rx0, ry1 - ry0
        frame, zone, scratch, dst = plan.frame, plan.zone, plan.scratch, plan.dst
        local = plan.local
        if local is None:  # a still, or a region cropped again on top of another face
            local = self._local_inputs(plan)
        base = local.base.astype(np.float32)  # the region before the kept parts were drawn in
        change, soft = self._local_blend(plan, local)
        mouth, occluded = local.mouth, local.occluded
        # only the zone around the face may change (the blend's low bands reach a little outside)
        change = cv2.multiply(change, cv2.cvtColor(zone.view(np.uint8), cv2.COLOR_GRAY2RGB), dtype=cv2.CV_32F)
        if scratch is not None and opt.persistence > 0:
            # the temporal filter, at the working resolution: what shimmers is the new face
            settled = self._persist(base + change, plan, scratch)
            change = cv2.subtract(settled, base)
        if change.shape[:2] != (rh, rw):
            result = _full_size_result(np.ascontiguousarray(plan.warped_full), change, base, soft)
        else:
            result = cv2.add(np.ascontiguousarray(plan.warped_full), change, dtype=cv2.CV_8U)
        # full-size details that must stay sharp: the target's mouth interior (moved with the
        # lips) and whatever covers the face
        if mouth.any():
            inner = dst[list(T.LIPS_INNER)] - [rx0, ry0]
            bx0, by0 = (max(int(np.floor(v)) - 4, 0) for v in inner.min(0))
            bx1, by1 = (
                min(int(np.ceil(inner[:, 0].max())) + 5, rw),
                min(int(np.ceil(inner[:, 1].max())) + 5, rh),
            )
            if bx1 > bx0 and by1 > by0:
                sub = polygon_mask([inner], (bx0, by0, bx1, by1)) > 0.5
                box = (rx0 + bx0, ry0 + by0, rx0 + bx1, ry0 + by1)
                own, covered = warp_piecewise_affine(frame, plan.t_lm[:468, :2], dst[:468], box, plan.tri)
                np.copyto(result[by0:by1, bx0:bx1], own, where=(sub & covered)[..., None])
        if occluded.any():
            occ_full = cv2.resize(occluded.astype(np.uint8), (rw, rh), interpolation=cv2.INTER_LINEAR) > 0
            core_occ = cv2.erode(occ_full.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            np.copyto(result, frame[ry0:ry1, rx0:rx1], where=core_occ[..., None])
        out[ry0:ry1, rx0:rx1] = result

    def _local_inputs(self, plan: _Plan) -> _Local:
        """Steps 3-4, in the region's own pixel frame: the source's texture on the new mesh,
        the masks and the target's kept parts drawn into ``plan.region`` (in place).

        A video runtime runs this with the geometry (:meth:`begin`) and :meth:`_local_blend`
        with the pixels (:meth:`finish`), which evens out the two halves.
        """
        src, region, original, iod, occlusion = plan.src, plan.region, plan.original, plan.iod, plan.occlusion
        t_lm, dst, tri, vis = plan.local_t, plan.local_dst, plan.tri, plan.vis
        assert region is not None and original is not None
        opt = self.options
        h, w = region.shape[:2]
        roi = (0, 0, w, h)
        # 3. source texture onto the new mesh (triangles visible in both faces)
        patch4, covered = warp_piecewise_affine(
            src.texture, src.face.landmarks[:468, :2], dst[:468], roi, tri[vis]
        )
        patch = cv2.cvtColor(patch4, cv2.COLOR_RGBA2RGB)
        base = region.copy()
        # 4. masks: the face, minus the target's open mouth and what covers the face
        adapted = np.concatenate([dst, t_lm[:, 2:3]], axis=1)
        face_mask = (polygon_mask(region_polygons(adapted, "face"), roi) > 0.5) & covered
        holes = [p for r in ("eyes", "brows", "lips") for p in region_polygons(t_lm, r)]  # type: ignore[arg-type]
        skin = (polygon_mask(region_polygons(t_lm, "face"), roi, holes) > 0.5) & face_mask
        mouth = polygon_mask(region_polygons(adapted, "mouth"), roi) > 0.5
        # (no margin: a dilated mouth kept a ring of the target's lip colour)
        # the target's eyes between the lids (gaze, and how open they are) stay too
        eyes = np.zeros_like(mouth)
        if opt.keep_eyes > 0:
            eyes = region_mask(region.shape, adapted, "eyes") > 0.5
            # the opening's core only (iris and the white beside it): the lid line is the source's
            opening = np.linalg.norm(adapted[159, :2] - adapted[145, :2]) + np.linalg.norm(
                adapted[386, :2] - adapted[374, :2]
            )
            eyes = shrink(eyes, (1.0 - opt.keep_eyes) * opening / 4)
        keep = mouth | eyes
        if keep.any():
            # the target's own texture on the new mesh (its mouth interior moves with the
            # lips), drawn only in the box of what it is needed for
            bx, by, bw, bh = cv2.boundingRect(keep.view(np.uint8))
            box = (bx, by, bx + bw, by + bh)
            own, _ = warp_piecewise_affine(original, t_lm[:468, :2], dst[:468], box, tri)
            sub = region[box[1] : box[3], box[0] : box[2]]
            np.copyto(sub, own, where=keep[box[1] : box[3], box[0] : box[2], None])
        occluded = np.zeros_like(mouth)
        if opt.occlusion:
            # only inside the skin proper (eyes, brows, lips and their shadows are the face,
            # not occluders), and only blobs big enough to be a hand or hair, not a mole;
            # a template prepared for the video has it already
            if occlusion is None:
                target_skin = region_mask(region.shape, t_lm, "skin", forehead=0.0) > 0.5
                occlusion = occluders(original, target_skin, iod)
            occluded = occlusion & face_mask
            region[occluded] = original[occluded]
        # where hair or glasses cover the source's face there is no skin to take: keep the target's
        hidden = covered & (patch4[..., 3] < 128)
        keep_target = mouth | eyes | occluded | hidden
        return _Local(
            patch=patch, base=base, adapted=adapted, face_mask=face_mask, mouth=mouth,
            occluded=occluded, keep_target=keep_target, measure=skin & ~keep_target,
        )  # fmt: skip

    def _local_blend(self, plan: _Plan, local: _Local) -> tuple[np.ndarray, np.ndarray]:
        """Steps 5-6: the colour transfer and the blend; the change to add to the region as
        it was before :meth:`_local_inputs` (float32) and the blend's mask (where the source
        replaces the target; float32, 0..1)."""
        opt = self.options
        region, iod, scratch = plan.region, plan.iod, plan.scratch
        assert region is not None
        h, w = region.shape[:2]
        adapted, measure, patch = local.adapted, local.measure, local.patch
        # 5. colour; in video the transfer is smoothed over time so it does not pulse
        stats = None
        sigma_light = max(iod * 0.15, 2.0)
        step = measure_step(sigma_light, region.shape)
        labs = (to_lab(patch), to_lab(subsample(region, step)))
        if scratch is not None:
            stats = colour_stats(subsample(labs[0], step), labs[1], subsample(measure, step), opt.skin)
            last = scratch.get("colour")
            if last is not None:
                stats = (0.8 * last[0] + 0.2 * stats[0], 0.8 * last[1] + 0.2 * stats[1])
            scratch["colour"] = stats
        patch, _ = transfer_colour(patch, region, measure, opt.skin, opt.lighting, sigma_light, stats, labs)
        # 6. feathered mask inside the face outline, then a multi-band blend
        alpha = local.face_mask & ~local.keep_target
        sigma = max(opt.feather * iod, 1.0)
        soft = smooth(shrink(alpha, sigma).astype(np.float32), sigma) * alpha
        if opt.forehead is not None:
            # high on the forehead the target's own skin (and hairline, fringe) stays
            up = _up_vector(adapted)
            brows = float((adapted[list(T.RIGHT_EYEBROW + T.LEFT_EYEBROW), :2] @ up).max())
            height = (
                np.arange(w, dtype=np.float32)[None, :] * up[0]
                + np.arange(h, dtype=np.float32)[:, None] * up[1]
            )
            ramp = max(0.4 * iod, 1.0)
            soft *= np.clip((brows + opt.forehead * iod + ramp - height) / ramp, 0.0, 1.0)
        blended = pyramid_blend(region, patch, soft)
        return blended.astype(np.float32) - local.base.astype(np.float32), soft

    # -- Effect protocol --------------------------------------------------------------
    def apply(
        self, frame: np.ndarray, faces: list[Face], state: EffectState | None = None, *, mark: bool = True
    ) -> np.ndarray:
        """Swap the selected faces of ``frame``; returns a new ``H x W x 3`` uint8 RGB frame.

        ``mark=False`` leaves out the invisible watermark, for runtimes that add it in
        a later stage (the video runtime does, in its own thread); provenance still
        applies to what they write.
        """
        if state is not None:  # a frame of a video: exactly what the video runtime's two stages do
            out, chosen = self.finish(self.begin(frame, faces, state))
        else:
            frame = check_image(frame)
            out = frame.copy()
            chosen = self.select(frame, faces)
            for face in chosen:
                if self._neural is not None:
                    from .neural import swap_face_neural

                    out = swap_face_neural(
                        out, face, self._neural, self.identity, feather=self.options.feather
                    )
                elif not self.options.correct:
                    self._swap_into(out, out, face, None)
                else:
                    # a still: swap, look at the result, and swap again with the eyes and
                    # mouth opened or closed and the head turned by what the result got wrong
                    before = out.copy()
                    self._swap_into(out, before, face, None)
                    factors: tuple[float, ...] = NO_CORRECTION
                    for _ in range(3):
                        new = self._correction(out, face, factors)
                        if new is None or _converged(new, factors):
                            break
                        factors = new
                        out[:] = before
                        self._swap_into(out, before, face, None, factors)
        if chosen and mark:
            from portraitfx.provenance import mark_image

            # the invisible watermark; opting out takes provenance=False, explicitly
            out = mark_image(out, "swap", provenance=self.options.provenance)
        return out

    def begin(self, frame: np.ndarray, faces: list[Face], state: EffectState) -> _Frame:
        """A video frame's first half: which faces, their steadied meshes and each swap's plan.

        With :meth:`finish` this is :meth:`apply` for a video frame, split so a runtime can
        run the halves of consecutive frames at once (``begin`` of frame ``n + 1`` beside
        ``finish`` of frame ``n``). Each half keeps its own state, and ``begin`` takes a
        correction measured by ``finish`` only ``CORRECTION_LAG`` frames later, so the
        result does not depend on how the two overlap.
        """
        frame = check_image(frame)
        faces = list(faces) + self._held(faces, state)
        chosen = self.select(frame, faces)
        jobs: list[_Job] = []
        for face in chosen:
            scratch = state.for_face(face)
            face = self._steady(face, scratch)
            if self._neural is not None:
                jobs.append(_Job(face, scratch))
                continue
            job = _Job(face, scratch)
            if self.options.correct:
                count = scratch.get("frames", 0)
                scratch["frames"] = count + 1
                job.factors = self._lagged_correction(scratch, count)
                job.measure = count if _measured_frame(count) else None
            job.plan = plan = self._plan(frame, face, scratch, job.factors)
            if plan is not None:
                # the pixel work's inputs too: it evens out the two halves' time
                plan.local = self._local_inputs(plan)
            jobs.append(job)
        return _Frame(frame, jobs, bool(chosen))

    def finish(self, token: _Frame, *, reuse_frame: bool = False) -> tuple[np.ndarray, bool]:
        """A video frame's second half (see :meth:`begin`): the swapped frame (unmarked) and
        whether any face was chosen.

        ``reuse_frame=True`` draws into the frame given to :meth:`begin` instead of a copy
        of it (for a runtime with no further use for it). Afterwards ``token.changed``
        holds the boxes ``(x0, y0, x1, y1)`` outside of which the result is the frame as
        it was (``None`` when that is not known).
        """
        out = token.frame if reuse_frame else token.frame.copy()
        done: list[tuple[int, int, int, int]] = []
        token.changed = done
        for job in token.jobs:
            if self._neural is not None:
                token.changed = None
                from .neural import swap_face_neural

                out = swap_face_neural(
                    out,
                    job.face,
                    self._neural,
                    self.identity,
                    feather=self.options.feather,
                    scratch=job.scratch,
                )
                continue
            plan = job.plan
            if plan is not None:
                if any(_overlap(plan.box, box) for box in done):
                    self._crop(plan, out.copy())  # on top of the faces already swapped
                    plan.local = None  # (prepared again on those pixels)
                self._render(out, plan)
                done.append(plan.box)
            if job.measure is not None:
                new = self._correction(out, job.face, job.factors) if plan is not None else None
                _measurement(job.scratch, job.measure).set(new)
        return out, token.chosen

    @staticmethod
    def _lagged_correction(scratch: dict[str, Any], count: int) -> tuple[float, ...]:
        """The correction for the track's frame ``count``: the last one, moved halfway to
        what was measured ``CORRECTION_LAG`` frames ago (when that frame was measured)."""
        factors = scratch.get("correction", NO_CORRECTION)
        measured = count - CORRECTION_LAG
        if measured >= 0 and _measured_frame(measured):
            new = _measurement(scratch, measured).get()
            scratch.get("measured", {}).pop(measured, None)
            if new is not None:
                factors = tuple(0.5 * a + 0.5 * b for a, b in zip(factors, new, strict=True))
                scratch["correction"] = factors
        return factors

    def _held(self, faces: list[Face], state: EffectState) -> list[Face]:
        """Video: faces of tracks missing from this frame, kept for up to HOLD_FRAMES frames.

        A mesh that fails for a frame or two would make the swap pop off and back on;
        instead the track's last face stands in (moved on by its last measured motion).
        """
        present = {f.track_id for f in faces if f.track_id is not None}
        held = []
        for track_id, scratch in state.tracks.items():
            if track_id in present:
                scratch["missing"] = 0
                continue
            last = scratch.get("last_face")
            if last is None:
                continue
            scratch["missing"] = scratch.get("missing", 0) + 1
            if scratch["missing"] <= HOLD_FRAMES:
                held.append(last)
        return held

    def _persist(self, result: np.ndarray, plan: _Plan, scratch: dict[str, Any]) -> np.ndarray:
        """Video: blend in last frame's result, moved by the face's motion, where it still agrees.

        A motion-compensated temporal filter: what shimmers from frame to frame (resampling,
        a mesh point off by a pixel) averages out; where the picture really changed (the
        mouth opening, a hand coming in) the two frames disagree and this frame is kept.
        ``result`` is the region at the working resolution (float32): its pixel ``(x, y)``
        is the frame's ``plan.box[:2] + (x, y) / plan.scale``.
        """
        motion, origin, scale = plan.motion, plan.box[:2], plan.scale
        last = scratch.get("result")
        scratch["result"] = None
        h, w = result.shape[:2]
        if last is not None and motion is not None:
            prev, prev_origin, prev_scale = last
            # previous region's pixels -> frame -> moved -> this region's pixels
            m = np.eye(3)
            m[:2] = np.asarray(motion, np.float64).reshape(2, 3)
            to_frame = np.diag([1 / prev_scale[0], 1 / prev_scale[1], 1.0])
            to_frame[:2, 2] = prev_origin
            to_region = np.diag([scale[0], scale[1], 1.0])
            to_region[:2, 2] = -np.asarray(origin, np.float64) * scale
            m = (to_region @ m @ to_frame)[:2]
            # (kept in 8 bits: warping it costs ~40 % less than floats, and the output is 8-bit)
            moved8 = cv2.warpAffine(prev, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            moved = moved8.astype(np.float32)
            diff = cv2.absdiff(
                cv2.cvtColor(moved, cv2.COLOR_RGB2GRAY), cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)
            )
            _, agree = cv2.threshold(diff, 13, 1, cv2.THRESH_BINARY_INV)
            zone = plan.zone.astype(np.float32)
            weight = cv2.GaussianBlur(cv2.multiply(zone, agree, dtype=cv2.CV_32F), (3, 3), 0)
            weight *= np.float32(self.options.persistence)
            result = cv2.blendLinear(moved, result, weight, 1.0 - weight)
        scratch["result"] = (cv2.add(result, 0.0, dtype=cv2.CV_8U), origin, scale)
        return result

    def _steady(self, face: Face, scratch: dict[str, Any]) -> Face:
        """Video: the face's landmarks carried by its measured motion, pulled toward the mesh.

        A per-frame mesh is off by a pixel or two in a different way every frame, and the
        source's features drawn on it shimmer. When the face's motion since the last frame
        is known (optical flow, from the analysis stage or a template), last frame's
        landmarks moved by it predict this frame's; the mesh then corrects the expression
        quickly and the pose slowly, so there is neither jitter nor lag nor drift.
        """
        detected = face.landmarks.astype(np.float64)
        last = scratch.get("steady")
        motion = (scratch.get("template") or {}).get("motion")
        if last is None or motion is None or last.shape != detected.shape or self.options.steady <= 0:
            scratch["steady"] = detected
            scratch["last_face"] = face
            return face
        # (compiled: ~40 small array operations, which held the GIL for 0.4 ms a frame)
        steady = steady_landmarks(
            detected, last, np.asarray(motion, np.float64).reshape(2, 3), _STABLE,
            FOLLOW_EXPRESSION, 1.0 - self.options.steady,
        )  # fmt: skip
        scratch["steady"] = steady
        lm = steady.astype(np.float32)
        face = face.copy(landmarks=lm, bbox=mesh_bbox(lm))
        scratch["last_face"] = face
        return face

    def _correction(
        self, out: np.ndarray, face: Face, factors: tuple[float, ...]
    ) -> tuple[float, ...] | None:
        """New corrections from the mesh of the swapped face: (left eye, right eye, mouth)
        openness factors, then (yaw, pitch) turns in degrees.

        The source's lids and lips, drawn at the target's landmarks, can still read as
        more or less open than the target's (a smiling squint, thick lips): compare
        the openings on the result with the target's and scale the factors by the ratio.
        None when the result's mesh is not found.
        """
        from portraitfx.face.mesh import FaceMesher

        if self._mesher is None:
            self._mesher = FaceMesher()
        lm = face.landmarks
        r, left = T.eye_centers(lm)
        det = Detection(
            bbox=face.bbox.astype(np.float32), score=1.0,
            keypoints=np.stack([r, left, r, r, r, r]).astype(np.float32),
        )  # fmt: skip
        mesh = self._mesher(out, det)
        if mesh is None:
            return None
        new = []
        for f, want, got in zip(factors[:3], openings(lm), openings(mesh), strict=True):
            if want < 0.05:  # closed on the target: the opening has nothing to scale
                new.append(f)
            else:
                new.append(float(np.clip(f * want / max(got, 1e-3), 0.6, 1.8)))
        # the head's turn: a source photographed a little from the side makes the result
        # read as turned; the new mesh is turned back by what the result got wrong
        from portraitfx.face.pose import estimate_pose

        want_pose, got_pose = estimate_pose(lm), estimate_pose(mesh)
        turn = factors[3:5] if len(factors) >= 5 else (0.0, 0.0)
        for now, got_angle, want_angle in zip(
            turn, (got_pose.yaw, got_pose.pitch), (want_pose.yaw, want_pose.pitch), strict=True
        ):
            # only what is beyond TURN_SLACK degrees: each degree turned back costs some identity
            err = got_angle - want_angle
            excess = float(np.sign(err) * max(abs(err) - TURN_SLACK, 0.0))
            new.append(float(np.clip(now - excess, -12.0, 12.0)))
        return tuple(new)

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        if self._mesher is not None:
            self._mesher.close()
            self._mesher = None
