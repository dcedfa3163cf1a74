"""The ``swap`` effect: put a source person's face on the faces of a photo or video.

Example:
    >>> import portraitfx as pfx
    >>> swap = pfx.create_effect("swap", source="me.jpg")                    # doctest: +SKIP
    >>> out = swap.apply(image, pfx.analyze(image))                           # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from portraitfx._validate import check_choice, check_image, with_overrides
from portraitfx.effects.base import EffectState, register_effect
from portraitfx.effects.stylize.guides import smooth
from portraitfx.errors import ConfigError, InputError
from portraitfx.face import topology as T
from portraitfx.face.regions import region_mask
from portraitfx.face.types import Face

from .classic import (
    colour_stats,
    grow,
    identity_mesh,
    mesh_triangles,
    pyramid_blend,
    shrink,
    skin_occlusion,
    transfer_colour,
    visible_triangles,
    warp_background,
    warp_piecewise_affine,
)

__all__ = ["SourceFace", "SwapEffect", "SwapOptions", "load_sources"]

Select = Literal["all", "largest"]
ZONE = 0.25  # how far around the face outline (in eye distances) the swap may change pixels
WORK_EYE_DISTANCE = 90.0  # swaps are computed with the eyes at most this far apart (pixels)


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
        occlusion: keep what covers the target's face (hands, hair) in front.
        feather: edge softness, fraction of the eye distance.
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
    feather: float = 0.12
    provenance: bool = True

    def __post_init__(self) -> None:
        check_choice(self.select, ("all", "largest"), "select")
        for name in ("shape", "features", "skin", "lighting"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {v}")


@dataclass
class SourceFace:
    """A source face: its picture, mesh and identity."""

    image: np.ndarray
    face: Face


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


@register_effect("swap")
class SwapEffect:
    """Model-free face swap (see :mod:`.classic` for the steps).

    Args:
        source: a photo (path or array) of the source person, or a list of photos
            (the one whose head pose is closest to each target face is used).
        options: :class:`SwapOptions`; keyword arguments override its fields.
    """

    name = "swap"
    smooth_landmarks = True

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
        opt = self.options
        src = self._source_for(face)
        h, w = frame.shape[:2]
        t_lm = face.landmarks
        iod = face.eye_distance
        x0, y0, x1, y1 = face.bbox
        pad = 0.35 * max(x1 - x0, y1 - y0)
        roi = (int(max(x0 - pad, 0)), int(max(y0 - pad, 0)), int(min(x1 + pad, w)), int(min(y1 + pad, h)))
        rx0, ry0, rx1, ry1 = roi
        if rx1 - rx0 < 16 or ry1 - ry0 < 16:
            return frame
        # 1-2. the new outline, and the frame deformed around it (inside a zone close to the face)
        dst = identity_mesh(t_lm, src.face.landmarks, opt.shape, opt.features)
        oval = list(T.FACE_OVAL)
        outlines = np.zeros((ry1 - ry0, rx1 - rx0), np.uint8)
        for outline in (t_lm[oval, :2], dst[oval]):
            cv2.fillPoly(outlines, [np.round(outline - [rx0, ry0]).astype(np.int32)], 1)
        reach = max(2.0, ZONE * iod)
        zone = grow(outlines > 0, reach).astype(np.uint8)
        base = frame
        if opt.shape > 0:
            warped = warp_background(frame, t_lm[oval, :2], dst[oval], roi)[ry0:ry1, rx0:rx1]
            # fade the deformation out toward the zone's edge: nothing outside it moves
            fade = (
                smooth(shrink(zone > 0, reach / 2).astype(np.float32), reach / 4 + 0.5)[..., None]
                * zone[..., None]
            )
            base = frame.copy()
            orig = frame[ry0:ry1, rx0:rx1].astype(np.float32)
            base[ry0:ry1, rx0:rx1] = np.clip(
                orig + fade * (warped.astype(np.float32) - orig) + 0.5, 0, 255
            ).astype(np.uint8)
        # 3-6 run at a working resolution capped at WORK_EYE_DISTANCE (the source photo
        # rarely has more detail); the change they make is brought back to full size
        tri = mesh_triangles()
        vis = visible_triangles(t_lm) & visible_triangles(src.face.landmarks)
        if vis.sum() < 0.3 * len(tri):  # turned too far: leave the face as it is
            return frame
        k = min(1.0, WORK_EYE_DISTANCE / max(iod, 1e-6))
        rw, rh = rx1 - rx0, ry1 - ry0
        sw, sh = max(int(round(rw * k)), 8), max(int(round(rh * k)), 8)
        scale = np.array([sw / rw, sh / rh], np.float64)
        local_t = t_lm.astype(np.float64).copy()
        local_t[:, :2] = (local_t[:, :2] - [rx0, ry0]) * scale
        local_t[:, 2] *= scale[0]
        local_dst = (dst.astype(np.float64) - [rx0, ry0]) * scale
        region_full = base[ry0:ry1, rx0:rx1]
        original_full = frame[ry0:ry1, rx0:rx1]
        if k < 1.0:
            region = cv2.resize(region_full, (sw, sh), interpolation=cv2.INTER_AREA)
            original = cv2.resize(original_full, (sw, sh), interpolation=cv2.INTER_AREA)
        else:
            region, original = region_full.copy(), original_full
        change, mouth, occluded = self._swap_local(
            src,
            region,
            original,
            local_t.astype(np.float32),
            local_dst.astype(np.float32),
            tri,
            vis,
            iod * k,
            scratch,
        )
        if k < 1.0:
            change = cv2.resize(change, (rw, rh), interpolation=cv2.INTER_LINEAR)
        result = np.clip(region_full.astype(np.float32) + change + 0.5, 0, 255).astype(np.uint8)
        # full-size details that must stay sharp: the target's mouth interior (moved with the
        # lips) and whatever covers the face
        if mouth.any():
            mouth_full = (
                region_mask(result.shape, np.concatenate([dst - [rx0, ry0], t_lm[:, 2:3]], 1), "mouth") > 0.5
            )
            if mouth_full.any():
                my, mx = np.nonzero(mouth_full)
                box = (rx0 + max(mx.min() - 4, 0), ry0 + max(my.min() - 4, 0),
                       rx0 + min(mx.max() + 5, rw), ry0 + min(my.max() + 5, rh))  # fmt: skip
                own, covered = warp_piecewise_affine(frame, t_lm[:468, :2], dst[:468], box, tri)
                sub = mouth_full[box[1] - ry0 : box[3] - ry0, box[0] - rx0 : box[2] - rx0] & covered
                result[box[1] - ry0 : box[3] - ry0, box[0] - rx0 : box[2] - rx0][sub] = own[sub]
        if occluded.any():
            occ_full = cv2.resize(occluded.astype(np.float32), (rw, rh), interpolation=cv2.INTER_LINEAR) > 0.5
            core_occ = cv2.erode(occ_full.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            result[core_occ] = original_full[core_occ]
        out = frame.copy()
        # only the zone around the face may change (the blend's low bands reach a little outside)
        inside = zone.astype(bool)
        out[ry0:ry1, rx0:rx1][inside] = result[inside]
        return out

    def _swap_local(
        self,
        src: SourceFace,
        region: np.ndarray,
        original: np.ndarray,
        t_lm: np.ndarray,
        dst: np.ndarray,
        tri: np.ndarray,
        vis: np.ndarray,
        iod: float,
        scratch: dict[str, Any] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps 3-6 in a region's own pixel frame.

        Returns:
            ``(change, mouth, occluded)``: float32 ``h x w x 3`` to add to ``region``,
            and the mouth-interior and occluder masks.
        """
        opt = self.options
        h, w = region.shape[:2]
        roi = (0, 0, w, h)
        # 3. source texture onto the new mesh (triangles visible in both faces)
        patch, covered = warp_piecewise_affine(
            src.image, src.face.landmarks[:468, :2], dst[:468], roi, tri[vis]
        )
        # the target's own texture on the new mesh: its mouth interior moves with the lips
        own, _ = warp_piecewise_affine(original, t_lm[:468, :2], dst[:468], roi, tri)
        base = region.copy()
        # 4. masks: the face, minus the target's open mouth and what covers the face
        adapted = np.concatenate([dst, t_lm[:, 2:3]], axis=1)
        face_mask = (region_mask(region.shape, adapted, "face") > 0.5) & covered
        skin = (region_mask(region.shape, t_lm, "skin", forehead=0.0) > 0.5) & face_mask
        mouth = region_mask(region.shape, adapted, "mouth") > 0.5
        mouth = cv2.dilate(mouth.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        region[mouth] = own[mouth]
        occluded = np.zeros_like(mouth)
        if opt.occlusion:
            # only inside the skin proper (eyes, brows, lips and their shadows are the face,
            # not occluders), and only blobs big enough to be a hand or hair, not a mole
            occluded = skin_occlusion(original, skin) & shrink(skin, max(1.0, 0.04 * iod))
            n, labels, blob_stats, _ = cv2.connectedComponentsWithStats(
                occluded.astype(np.uint8), connectivity=8
            )
            big = np.zeros(n, bool)
            big[1:] = blob_stats[1:, cv2.CC_STAT_AREA] >= (0.25 * iod) ** 2
            occluded = big[labels]
            region[occluded] = original[occluded]
        keep_target = mouth | occluded
        # 5. colour; in video the transfer is smoothed over time so it does not pulse
        measure = skin & ~keep_target
        stats = None
        if scratch is not None:
            lab = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2LAB).astype(np.float32)  # noqa: E731
            stats = colour_stats(lab(patch), lab(region), measure, opt.skin)
            last = scratch.get("colour")
            if last is not None:
                stats = (0.8 * last[0] + 0.2 * stats[0], 0.8 * last[1] + 0.2 * stats[1])
            scratch["colour"] = stats
        patch, _ = transfer_colour(
            patch, region, measure, opt.skin, opt.lighting, max(iod * 0.15, 2.0), stats
        )
        # 6. feathered mask inside the face outline, then a multi-band blend
        alpha = face_mask & ~keep_target
        sigma = max(opt.feather * iod, 1.0)
        soft = smooth(shrink(alpha, sigma).astype(np.float32), sigma) * alpha
        blended = pyramid_blend(region, patch, soft)
        return blended.astype(np.float32) - base.astype(np.float32), mouth, occluded

    # -- Effect protocol --------------------------------------------------------------
    def apply(self, frame: np.ndarray, faces: list[Face], state: EffectState | None = None) -> np.ndarray:
        """Swap the selected faces of ``frame``; returns a new ``H x W x 3`` uint8 RGB frame."""
        frame = check_image(frame)
        out = frame.copy()
        chosen = self.select(frame, faces)
        for face in chosen:
            scratch = state.for_face(face) if state is not None else None
            out = self.swap_face(out, face, scratch)
        if chosen:
            from portraitfx.provenance import mark_image

            # the invisible watermark; opting out takes provenance=False, explicitly
            out = mark_image(out, "swap", provenance=self.options.provenance)
        return out

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
