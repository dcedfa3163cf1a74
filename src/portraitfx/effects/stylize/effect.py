"""The ``stylize`` effect: FaceBlit example-based stylization of every face in a frame.

Per face (see :mod:`.styleblit` for the synthesis):

1. cut the face out into the style's canonical frame (same framing as the exemplar);
2. positional guide: moving least squares from the face's mesh to the style's;
3. appearance guide: structure of the face, histogram-matched to the style's;
4. synthesis with the style's lookup table and hierarchical seeds; in video the
   previous frame's result is reused where it still fits (seeds and reuse are in
   the face's own frame, so texture sticks to the face instead of the screen);
5. voting, then paste back with a feathered mask of the region.

``region="face"`` stylizes the face and forehead, ``"head"`` the whole person in
the head crop (hair, neck), ``"frame"`` also the background, from the style's.

Example:
    >>> import portraitfx as pfx
    >>> effect = pfx.create_effect("stylize", style="pencil")          # doctest: +SKIP
    >>> out = effect.apply(image, pfx.analyze(image))                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np

from portraitfx._validate import check_choice, check_image, with_overrides
from portraitfx.effects.base import EffectState, register_effect
from portraitfx.errors import ConfigError
from portraitfx.face import topology as T
from portraitfx.face.align import align_face, alignment_matrix, invert_affine, paste_back, transform_points
from portraitfx.face.motion import compose_affine, face_motion, face_roi, gray_roi
from portraitfx.face.regions import region_mask
from portraitfx.face.types import Face

from .guides import app_quantiles, appearance_guide, match_appearance, mls_positional_guide, smooth
from .pack import APP_SIGMA, REFERENCE_SIZE, StylePack, load_style
from .styleblit import SynthesisParams, synthesize, vote

__all__ = ["CONTROL_POINTS", "StylizeEffect", "StylizeOptions"]

Region = Literal["face", "head", "frame"]
FOREHEAD = 0.2  # how far the face region reaches over the forehead (hairlines differ between faces)

CONTROL_POINTS: tuple[int, ...] = tuple(
    sorted(
        set(
            T.FACE_OVAL
            + T.LEFT_EYE
            + T.RIGHT_EYE
            + T.LEFT_EYEBROW
            + T.RIGHT_EYEBROW
            + T.LIPS_OUTER
            + T.LIPS_INNER
        )
        | set(T.NOSE)
        | {T.LEFT_IRIS_CENTER, T.RIGHT_IRIS_CENTER}
    )
)
"""Mesh vertices that drive the positional guide (outline, eyes, brows, lips, nose, irises)."""


@dataclass(frozen=True)
class StylizeOptions:
    """Options of the ``stylize`` effect.

    Attributes:
        region: ``"face"``, ``"head"`` or ``"frame"``.
        strength: blend of stylized over original, ``0..1``.
        feather: edge softness of the blend, fraction of the inter-ocular distance.
        voting: voting radius (1 = 3x3; 0 = off).
        guide_step: grid step of the positional guide, pixels (default: 8 for
            images, 16 in video).
        detail: synthesis resolution relative to the face in the frame (default:
            1.5 for images, for quality; 0.9 in video, for speed).
        mls: ``"similarity"`` or ``"rigid"`` moving least squares.
        synthesis: seeds and thresholds (:class:`SynthesisParams`).
        temporal: reuse last frame's synthesis in video.
        persistence: in video, weight of last frame's stylized face in this one's
            (blended in the face's own frame, so it follows the motion).
        steady: in video, how much the crop follows the measured motion of the face
            rather than each frame's landmarks (0 = landmarks only).
    """

    region: Region = "face"
    strength: float = 1.0
    feather: float = 0.06
    voting: int = 1
    guide_step: int | None = None
    detail: float | None = None
    mls: Literal["similarity", "rigid"] = "similarity"
    synthesis: SynthesisParams = field(default_factory=SynthesisParams)
    temporal: bool = True
    persistence: float = 0.5
    steady: float = 0.95

    def __post_init__(self) -> None:
        check_choice(self.region, ("face", "head", "frame"), "region")
        for name in ("strength", "persistence", "steady"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {value}")
        if self.guide_step is not None and not 2 <= self.guide_step <= 64:
            raise ConfigError(f"guide_step must be within 2..64 pixels, got {self.guide_step}")
        if self.detail is not None and self.detail <= 0:
            raise ConfigError(f"detail must be positive, got {self.detail}")
        if self.voting < 0 or self.voting > 3:
            raise ConfigError(f"voting radius must be 0..3, got {self.voting}")


@register_effect("stylize")
class StylizeEffect:
    """Example-based stylization of faces with a style pack.

    Args:
        style: a :class:`StylePack`, a built-in style name (``pencil``,
            ``watercolour``, ``oil``, ``ink``), a style name in the cache or a
            ``.pfxstyle`` path.
        options: :class:`StylizeOptions`; keyword arguments override its fields.
    """

    name = "stylize"
    smooth_landmarks = False
    """Video runtimes should feed raw (unsmoothed) landmarks: the effect steadies the face
    crop itself with optical flow, and landmark smoothing would only add lag."""

    def __init__(self, style: str | os.PathLike[str] | StylePack = "pencil", options: StylizeOptions | None = None,
                 **overrides: Any) -> None:  # fmt: skip
        synth = overrides.pop("synthesis", None)
        self.options = with_overrides(options or StylizeOptions(), overrides)
        if synth is not None:
            self.options = replace(self.options, synthesis=synth)
        self.style = load_style(style)
        self._segmenter: Any = None

    # -- per face ---------------------------------------------------------------------
    def _region(self, crop: np.ndarray, lm: np.ndarray) -> np.ndarray:
        if self.options.region == "face":
            return region_mask(crop.shape, lm, "face_forehead", forehead=FOREHEAD)
        if self._segmenter is None:
            from portraitfx.face.segment import PersonSegmenter

            self._segmenter = PersonSegmenter()
        person = (self._segmenter(crop) > 0.5).astype(np.float32)
        return np.maximum(person, region_mask(crop.shape, lm, "face_forehead", forehead=FOREHEAD))

    def stylize_face(
        self, frame: np.ndarray, face: Face, scratch: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stylize one face in the style's canonical frame.

        Returns:
            ``(crop, mask, matrix)``: the stylized ``S x S`` crop, its blend mask
            (float, feathered, times strength) and the frame -> crop matrix.
        """
        opt = self.options
        video = scratch is not None
        detail = opt.detail if opt.detail is not None else (0.9 if video else 1.5)
        step = opt.guide_step if opt.guide_step is not None else (16 if video else 8)
        pack = self.style.level_for(face.eye_distance, detail)
        size = pack.size
        matrix = self._matrix(frame, face, size, scratch)
        crop_in = cv2.warpAffine(
            frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        lm = transform_points(face.landmarks, matrix)
        iod = float(np.linalg.norm(lm[T.LEFT_IRIS_CENTER, :2] - lm[T.RIGHT_IRIS_CENTER, :2]))
        cp = list(CONTROL_POINTS)
        pos = mls_positional_guide(lm[cp, :2], pack.landmarks[cp, :2], (size, size), step=step, mode=opt.mls)
        region = self._region(crop_in, lm)
        app = appearance_guide(crop_in, APP_SIGMA * iod)
        app = match_appearance(app, app_quantiles(app, region), pack.app_q)
        # The blend mask fades out inside the region (eroded by two sigmas, then blurred),
        # so nothing outside the region needs synthesising.
        sigma = opt.feather * iod
        todo = (region > 0.02).astype(np.uint8)
        prev = scratch.get("coords") if (scratch is not None and opt.temporal) else None
        params = self._params_for(size)
        coords = synthesize(pos, app, pack.app, pack.table, mask=todo, prev=prev, params=params)
        if scratch is not None:
            scratch["coords"] = coords
        crop = vote(coords, pos, pack.exemplar, opt.voting)
        if scratch is not None and opt.temporal and opt.persistence > 0:
            # the crop follows the face, so blending with last frame's crop is motion-compensated;
            # only where both frames were synthesised (pixels new to the region start fresh)
            last, last_todo = scratch.get("crop"), scratch.get("todo")
            if last is not None and last.shape == crop.shape:
                both = cv2.bitwise_and(todo, last_todo)
                mixed = cv2.addWeighted(crop, 1.0 - opt.persistence, last, opt.persistence, 0.0)
                cv2.copyTo(mixed, both, crop)
            scratch["crop"], scratch["todo"] = crop, todo
        if sigma > 0:
            # blurred region, rescaled so it reaches 0 at the region's edge and 1 about 2 sigma inside
            # (everything in place: these are full crops of float32)
            mask = smooth(todo.astype(np.float32), sigma)
            cv2.multiply(mask, 2.0, dst=mask)
            cv2.subtract(mask, 1.0, dst=mask)
            cv2.max(mask, 0.0, dst=mask)
        else:
            mask = todo.astype(np.float32)
        mask[todo == 0] = 0.0
        cv2.min(mask, 1.0, dst=mask)
        if opt.strength != 1.0:
            cv2.multiply(mask, float(opt.strength), dst=mask)
        return crop, mask, matrix

    def _matrix(self, frame: np.ndarray, face: Face, size: int, scratch: dict[str, Any] | None) -> np.ndarray:
        """Frame -> canonical-crop matrix, steadied in video.

        Landmark noise makes a per-frame alignment jitter, and smoothing it lags; the
        stylized texture then swims on the face. In video the crop instead follows
        the face's measured motion (sparse optical flow inside the face, a robust
        similarity fit) and is pulled gently toward the landmark alignment, which
        removes jitter without lag and without drift.
        """
        target = alignment_matrix(face.five_points, size, "ffhq")
        if scratch is None or not self.options.temporal or self.options.steady <= 0:
            return target
        h, w = frame.shape[:2]
        prev_gray, prev_roi, prev_m = scratch.get("gray"), scratch.get("roi"), scratch.get("matrix")
        motion = None
        if prev_gray is not None and prev_m is not None and scratch.get("size") == size:
            motion = face_motion(prev_gray, gray_roi(frame, prev_roi), prev_roi)
        if motion is None:
            steady = target
        else:
            predicted = compose_affine(prev_m, invert_affine(motion))  # where last frame's crop moved to
            steady = predicted + (1.0 - self.options.steady) * (target - predicted)
        roi = face_roi(face.bbox, w, h)
        scratch["gray"], scratch["roi"] = gray_roi(frame, roi), roi
        scratch["matrix"], scratch["size"] = steady, size
        return steady

    def _params_for(self, size: int) -> SynthesisParams:
        """Seed spacings are stated for a 512 px canonical frame; scale them to this level.

        Thresholds and the appearance weight stay as they are: a coarser level is
        allowed proportionally larger positional slack, which keeps structure
        (matched through the appearance guide) where it belongs.
        """
        p = self.options.synthesis
        k = size / REFERENCE_SIZE
        if k == 1:
            return p
        return replace(p, spacings=tuple(max(2, round(s * k)) for s in p.spacings))

    def _whole_frame(self, frame: np.ndarray, face: Face, scratch: dict[str, Any] | None) -> np.ndarray:
        """Background from the style: positional guide over the full frame."""
        opt = self.options
        pack = self.style.levels[0]
        h, w = frame.shape[:2]
        m = align_face(np.zeros((8, 8, 3), np.uint8), face, size=pack.size, template="ffhq").matrix
        lm = transform_points(face.landmarks, m)
        cp = list(CONTROL_POINTS)
        # frame pixel -> canonical crop (similarity) -> style (MLS): control points in frame coordinates
        pos = mls_positional_guide(face.landmarks[cp, :2], pack.landmarks[cp, :2], (w, h),
                                   step=24, mode=opt.mls)  # fmt: skip
        iod_frame = face.eye_distance
        scale = float(np.linalg.norm(lm[T.LEFT_IRIS_CENTER, :2] - lm[T.RIGHT_IRIS_CENTER, :2])) / max(
            iod_frame, 1e-6
        )
        app = appearance_guide(frame, APP_SIGMA * iod_frame)
        app = match_appearance(app, app_quantiles(app), pack.app_q)
        # spacings are in target pixels: scale them so chunks look the same size as on the face
        params = replace(
            opt.synthesis, spacings=tuple(max(2, int(round(s / scale))) for s in opt.synthesis.spacings)
        )
        prev = scratch.get("frame_coords") if (scratch is not None and opt.temporal) else None
        coords = synthesize(pos, app, pack.app, pack.table, prev=prev, params=params)
        if scratch is not None:
            scratch["frame_coords"] = coords
        return vote(coords, pos, pack.exemplar, opt.voting)

    # -- Effect protocol --------------------------------------------------------------
    def apply(self, frame: np.ndarray, faces: list[Face], state: EffectState | None = None) -> np.ndarray:
        """Stylize ``faces`` in ``frame``; returns a new ``H x W x 3`` uint8 RGB frame."""
        frame = check_image(frame)
        out = frame.copy() if not faces else frame
        faces = sorted(faces, key=lambda f: -f.size)
        if self.options.region == "frame" and faces:
            scratch = state.tracks.setdefault(-1, {}) if state is not None else None
            out = self._whole_frame(frame, faces[0], scratch)
        for face in faces:
            scratch = state.for_face(face) if state is not None else None
            crop, mask, matrix = self.stylize_face(frame, face, scratch)
            out = paste_back(out, crop, matrix, mask=mask)
        return out

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None
