"""Run a learned hair model (an exported ``hairnet`` ONNX file) on a full-resolution photo.

The model sees the face's FFHQ-style aligned crop at its own resolution (the framing
its StyleGAN training pairs have); its output is pasted back through the mask it
predicts, limited to the hair/forehead edit region, so the rest of the photo keeps
its original resolution and pixels.

ONNX contract (see :mod:`portraitfx.train.hairnet.export`): input ``image``
``(1, 3, S, S)`` float32 in [-1, 1]; two outputs, the edited image (same shape, any
name but ``mask``) and ``mask`` ``(1, 1, S, S)`` in [0, 1]; metadata key
``portraitfx`` holds JSON with at least ``{"kind": "hairnet", "size": S}`` and
usually ``"edit"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from portraitfx.effects.hair.analysis import HairAnalysis, edit_region
from portraitfx.effects.hair.edits import HairEdit
from portraitfx.errors import ModelError
from portraitfx.face import topology as T
from portraitfx.face.align import align_face, warp_to_frame

__all__ = ["HairModel"]


class HairModel:
    """A hair-editing network loaded from an ONNX file.

    Args:
        path: the ``.onnx`` file (pickled or other files are refused).
        providers: onnxruntime providers (None: CPU).
    """

    def __init__(self, path: str | os.PathLike[str], providers: Any = None) -> None:
        from portraitfx.models.load import open_onnx_session

        self.path = Path(path)
        self.session = open_onnx_session(self.path, providers)  # refuses pickles and non-ONNX files
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            info = json.loads(meta.get("portraitfx", "{}"))
        except json.JSONDecodeError:
            info = {}
        if info.get("kind") != "hairnet":
            raise ModelError(
                f"'{self.path}' is not a hair model (no hairnet metadata; export one with 'export hairnet')"
            )
        names_in = [i.name for i in self.session.get_inputs()]
        names_out = [o.name for o in self.session.get_outputs()]
        if names_in != ["image"] or "mask" not in names_out or len(names_out) != 2:
            raise ModelError(
                f"'{self.path}': expected input 'image' and two outputs, the edited image and 'mask'"
            )
        self._outputs = [next(n for n in names_out if n != "mask"), "mask"]
        self.size = int(info.get("size") or self.session.get_inputs()[0].shape[-1])
        self.edit = str(info.get("edit", ""))
        self.info = info

    def run_crop(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model on one ``S x S`` uint8 crop: ``(edited uint8 crop, mask float32)``."""
        x = crop.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
        image, mask = self.session.run(self._outputs, {"image": x})
        out = np.clip((image[0].transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return out, np.clip(mask[0, 0], 0.0, 1.0).astype(np.float32)

    def apply(self, image: np.ndarray, a: HairAnalysis) -> HairEdit:
        """Edit the hair of one analysed face; pixels outside its edit region are kept exactly."""
        aligned = align_face(image, T.five_points(a.landmarks), size=self.size, template="ffhq")
        edited, mask = self.run_crop(aligned.image)
        allowed = edit_region(a, image.shape)
        x0, y0, x1, y1 = a.box
        roi = (x0, y0, x1, y1)
        size = (image.shape[1], image.shape[0])
        crop_f = warp_to_frame(edited, aligned.matrix, size, roi).astype(np.float32)
        weight = warp_to_frame(mask, aligned.matrix, size, roi)
        weight *= allowed[y0:y1, x0:x1]
        weight[weight < 1.0 / 512] = 0.0
        out = image.copy()
        part = out[y0:y1, x0:x1]
        change = weight > 0
        src = part[change].astype(np.float32)
        part[change] = np.clip(src + (crop_f[change] - src) * weight[change][:, None] + 0.5, 0, 255).astype(
            np.uint8
        )
        region = np.zeros(image.shape[:2], bool)
        region[y0:y1, x0:x1] = change
        return HairEdit(out, region)
