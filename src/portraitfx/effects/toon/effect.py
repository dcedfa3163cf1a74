"""The ``toon`` effect: a real-time student (``portraitfx toon train``, exported to ONNX) on faces or frames.

* ``mode="crop"`` (default): each face is cut as the student's training pairs were
  (the FFHQ framing at the model's ``crop_scale``), all faces of a frame go through
  the network in one batch, and each result is pasted back with a feathered edge
  (the student leaves what it does not stylise nearly unchanged, so no seam shows);
* ``mode="frame"``: the whole frame through the network (padded to a multiple of 8).

In video, ``smoothing`` keeps part of the previous frame's result (warped into the
current face crop, or in place in frame mode) wherever the input pixels did not
change, so strokes on a still face do not shimmer while a moving mouth or eye is
drawn afresh.

The default model, ``toon-pencil.onnx``, ships with portraitfx: a student of the
FaceBlit ``pencil`` style trained on this project's test photos (see docs/toon.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from portraitfx._validate import check_choice, check_image
from portraitfx.effects.base import EffectState, register_effect
from portraitfx.errors import ConfigError, ModelError
from portraitfx.face.types import Face

__all__ = ["DEFAULT_MODEL", "ToonEffect", "ToonOptions"]

DEFAULT_MODEL = "toon-pencil.onnx"
Mode = Literal["crop", "frame"]


def default_model_path() -> Path:
    return Path(str(resources.files("portraitfx") / "assets" / "models" / DEFAULT_MODEL))


@dataclass(frozen=True)
class ToonOptions:
    """Options of the ``toon`` effect.

    Attributes:
        mode: ``"crop"`` (faces) or ``"frame"`` (everything).
        strength: blend of the stylised result over the original, ``0..1``.
        smoothing: in video, how much of the previous frame's result is kept (``0..0.9``).
        feather: width of the oval fade at the pasted crop's edge, fraction of its half side.
        threads: ONNX Runtime threads (None: its default).
        providers: ONNX Runtime providers in priority order (None: CPU).
    """

    mode: Mode = "crop"
    strength: float = 1.0
    smoothing: float = 0.5
    feather: float = 0.12
    threads: int | None = None
    providers: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        check_choice(self.mode, ("crop", "frame"), "toon mode")
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"strength must be within 0..1, got {self.strength}")
        if not 0.0 <= self.smoothing <= 0.9:
            raise ConfigError(f"smoothing must be within 0..0.9, got {self.smoothing}")
        if not 0.0 <= self.feather <= 0.5:
            raise ConfigError(f"feather must be within 0..0.5, got {self.feather}")


@register_effect("toon")
class ToonEffect:
    """Stylise faces (or frames) with an exported student network.

    Args:
        model: an ONNX file from ``portraitfx export student`` (default: the shipped
            ``toon-pencil.onnx``).
        options: :class:`ToonOptions`, or its fields as keywords.

    Example:
        >>> import portraitfx as pfx
        >>> effect = pfx.create_effect("toon")                              # doctest: +SKIP
        >>> out = effect.apply(image, pfx.analyze(image))                    # doctest: +SKIP
    """

    name = "toon"
    smooth_landmarks = True

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        options: ToonOptions | None = None,
        **overrides: Any,
    ) -> None:
        from dataclasses import replace

        from portraitfx.models.load import open_onnx_session

        opts = options or ToonOptions()
        if overrides:
            if "providers" in overrides and overrides["providers"] is not None:
                overrides["providers"] = tuple(overrides["providers"])
            opts = replace(opts, **overrides)
        self.options = opts
        self.model = Path(model) if model is not None else default_model_path()
        if model is None and not self.model.is_file():
            raise ModelError(f"the default toon model is missing from this installation ({self.model})")
        self.session = open_onnx_session(self.model, providers=list(opts.providers) if opts.providers else None,
                                         threads=opts.threads)  # fmt: skip
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("portraitfx") != "toon-student":
            raise ModelError(
                f"'{self.model}' is not a toon student (export one with 'portraitfx export student')"
            )
        self.size = int(meta.get("size", 256))
        self.crop_scale = float(meta.get("crop_scale", 0.8))
        self.config = json.loads(meta.get("config", "{}"))
        self.input_name = self.session.get_inputs()[0].name
        self._mask: np.ndarray | None = None

    # -- network ----------------------------------------------------------------------
    def _run(self, images: np.ndarray) -> np.ndarray:
        """``N x H x W x 3`` uint8 (H, W multiples of 8) -> the student's ``N x H x W x 3`` uint8."""
        x = images.astype(np.float32).transpose(0, 3, 1, 2) * (1 / 127.5) - 1.0
        y = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0]
        return np.clip((y.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)

    # -- effect -----------------------------------------------------------------------
    def apply(self, frame: np.ndarray, faces: list[Face], state: EffectState | None = None) -> np.ndarray:
        frame = check_image(frame, "frame")
        crop_mode = self.options.mode == "crop"
        out = self._faces(frame, faces, state) if crop_mode else self._frame(frame, state)
        s = self.options.strength
        if s < 1.0:
            out = cv2.addWeighted(out, s, frame, 1.0 - s, 0.0)
        return out

    def _frame(self, frame: np.ndarray, state: EffectState | None) -> np.ndarray:
        h, w = frame.shape[:2]
        ph, pw = (-h) % 8, (-w) % 8
        padded = cv2.copyMakeBorder(frame, 0, ph, 0, pw, cv2.BORDER_REFLECT_101) if ph or pw else frame
        out = self._run(padded[None])[0][:h, :w]
        a = self.options.smoothing
        if state is not None and a > 0:
            scratch = state.tracks.setdefault(-1, {})
            prev_in, prev_out = scratch.get("input"), scratch.get("output")
            if prev_in is not None and prev_in.shape == frame.shape:
                out = _keep_unchanged(frame, prev_in, out, prev_out, a)
            scratch["input"], scratch["output"] = frame, out
        return out

    def _faces(self, frame: np.ndarray, faces: list[Face], state: EffectState | None) -> np.ndarray:
        from portraitfx.face.align import alignment_matrix, paste_back

        if not faces:
            return frame.copy()
        size = self.size
        mats = [alignment_matrix(f.five_points, size, "ffhq", self.crop_scale) for f in faces]
        crops = np.stack(
            [
                cv2.warpAffine(
                    frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
                )
                for m in mats
            ]
        )
        styled = self._run(crops)
        mask = self._crop_mask()
        out = frame
        for face, m, crop_in, crop in zip(faces, mats, crops, styled, strict=True):
            if state is not None and self.options.smoothing > 0 and face.track_id is not None:
                crop = self._smooth(state.for_face(face), m, crop_in, crop)
            out = paste_back(out, crop, m, mask=mask)
        return out

    def _crop_mask(self) -> np.ndarray:
        """Where a face's result goes back: the crop but its edges, fading out over ``feather`` of its half side.

        The crop's corners and edges hold hair and shoulders the student may have
        changed too; an oval fade inside the crop leaves no straight seam where it ends.
        """
        if self._mask is None:
            n = self.size
            c = (np.arange(n, dtype=np.float32) + 0.5) / n - 0.5
            r = np.sqrt((c[None, :] / 0.5) ** 2 + (c[:, None] / 0.5) ** 2)  # 1 at the middle of each edge
            fade = max(self.options.feather, 1e-3)
            self._mask = np.clip((1.0 - r) / fade, 0.0, 1.0).astype(np.float32)
        return self._mask

    def _smooth(
        self, scratch: dict[str, Any], m: np.ndarray, crop_in: np.ndarray, crop: np.ndarray
    ) -> np.ndarray:
        """Keep the previous frame's result (warped into this crop) where the face's pixels did not change."""
        from portraitfx.face.align import invert_affine

        out = crop
        if scratch.get("crop") is not None:
            rel = m @ np.vstack(
                [invert_affine(scratch["matrix"]), [0, 0, 1]]
            )  # previous crop -> current crop
            warp = lambda img: cv2.warpAffine(  # noqa: E731
                img, rel, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
            )
            out = _keep_unchanged(
                crop_in, warp(scratch["input"]), crop, warp(scratch["crop"]), self.options.smoothing
            )
        scratch["input"], scratch["crop"], scratch["matrix"] = crop_in, out, m
        return out

    def close(self) -> None:
        self.session = None


def _keep_unchanged(
    now_in: np.ndarray, prev_in: np.ndarray, now_out: np.ndarray, prev_out: np.ndarray, amount: float
) -> np.ndarray:
    """``now_out`` with up to ``amount`` of ``prev_out`` where the input barely changed (a 12-level change: none)."""
    change = cv2.absdiff(now_in, prev_in).max(axis=2).astype(np.float32)
    keep = (amount * np.clip(1.0 - change / 12.0, 0.0, 1.0))[..., None]
    return (now_out * (1.0 - keep) + prev_out * keep + 0.5).astype(np.uint8)
