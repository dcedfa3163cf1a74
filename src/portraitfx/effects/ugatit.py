"""The ``ugatit`` effect: a trained U-GAT-IT generator (photo -> style) on every face, inside the face region.

Seed 000's region-based variant at run time: each face is cut as in training (the
FFHQ framing at ``crop_scale``), translated, and blended back through the face-region
mask from the mesh (feathered), so the background, hair and clothes are the photo's
own pixels. With ``region=False`` the whole crop is pasted back. A generator trained
with the mask variant gates its own output with the same mask.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from portraitfx._validate import check_image
from portraitfx.effects.base import EffectState, register_effect
from portraitfx.errors import ConfigError
from portraitfx.face.types import Face

__all__ = ["UGATITEffect"]


@register_effect("ugatit")
class UGATITEffect:
    """Translate faces with a U-GAT-IT generator (``portraitfx ugatit train``'s ``generator.safetensors``)."""

    name = "ugatit"
    smooth_landmarks = True

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        region: bool = True,
        strength: float = 1.0,
        crop_scale: float = 0.8,
        feather: float = 0.02,
    ) -> None:
        import torch

        from portraitfx.train.ugatit.train import load_generator

        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be within 0..1, got {strength}")
        self.generator = load_generator(model)
        self.size = self.generator.cfg.size
        self.region, self.strength, self.crop_scale, self.feather = region, strength, crop_scale, feather
        self._torch = torch

    def translate_crop(self, crop: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """One aligned ``S x S`` crop through the generator (gated by ``mask`` when given)."""
        torch = self._torch
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
        m = torch.from_numpy(mask)[None, None].float() if mask is not None else None
        with torch.no_grad():
            y = self.generator(x, m)["image"][0]
        return ((y.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)

    def apply(self, frame: np.ndarray, faces: list[Face], state: EffectState | None = None) -> np.ndarray:
        from portraitfx.face.align import alignment_matrix, paste_back, transform_points
        from portraitfx.face.regions import region_mask

        frame = check_image(frame, "frame")
        out = frame
        for face in faces:
            m = alignment_matrix(face.five_points, self.size, "ffhq", self.crop_scale)
            crop = cv2.warpAffine(
                frame, m, (self.size, self.size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101
            )
            mask = None
            if self.region:
                lm = transform_points(face.landmarks[:, :2], m)
                mask = region_mask((self.size, self.size), lm, "face_forehead", feather=0.03, forehead=0.3)
            styled = self.translate_crop(crop, mask)
            if self.strength < 1.0:
                styled = cv2.addWeighted(styled, self.strength, crop, 1.0 - self.strength, 0.0)
            out = paste_back(out, styled, m, mask=mask, feather=self.feather)
        return out if faces else frame.copy()

    def close(self) -> None:
        self.generator = None  # type: ignore[assignment]
