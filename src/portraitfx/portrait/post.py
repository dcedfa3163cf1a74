"""Optional post-processing of the kept portraits: face restoration and super-resolution (ONNX).

* **Face restoration** -- the restoration contract of the swap engine (one input
  ``image``, ``1 x 3 x R x R`` in [0, 1], first output the same shape; GFPGAN/CodeFormer
  exports fit it): the portrait's face is cut in the FFHQ framing at ``R``, restored,
  and pasted back through a feathered face mask.
* **Super-resolution** -- one input ``image`` ``1 x 3 x H x W`` in [0, 1] (dynamic or
  matching the picture), first output ``1 x 3 x sH x sW``: the whole portrait, scale
  taken from the output.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from portraitfx.errors import ModelError

__all__ = ["FaceRestorer", "Upscaler"]


class FaceRestorer:
    """Restore the largest face of a picture with a face-restoration ONNX model."""

    def __init__(self, model: str | os.PathLike[str], providers: Any = None) -> None:
        from portraitfx.effects.swap.neural import _Restorer

        self._restorer = _Restorer(model, providers)
        self.size = self._restorer.size

    def __call__(self, image: np.ndarray, analyzer: Any) -> tuple[np.ndarray, bool]:
        """``(picture, restored?)``; a picture without a face comes back as it is."""
        from portraitfx.face.align import align_face, paste_back
        from portraitfx.face.regions import region_mask

        faces = analyzer.analyze(image)
        if not faces:
            return image, False
        aligned = align_face(image, faces[0], size=self.size, template="ffhq")
        restored = self._restorer(aligned.image)
        mask = region_mask(
            aligned.image.shape, aligned.to_crop(faces[0].landmarks), "face_forehead", feather=0.08
        )
        return paste_back(image, restored, aligned.matrix, mask=mask), True


class Upscaler:
    """Super-resolution of a whole picture with an ONNX model."""

    def __init__(self, model: str | os.PathLike[str], providers: Any = None) -> None:
        from portraitfx.effects.swap.neural import _open_onnx

        self.session, self.path = _open_onnx(model, providers, "super-resolution model")
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != ["image"]:
            raise ModelError(
                f"super-resolution model '{self.path}': expected one input named 'image' (1 x 3 x H x W)"
            )
        self._output = self.session.get_outputs()[0].name

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        try:
            (out,) = self.session.run([self._output], {"image": x})
        except Exception as err:
            raise ModelError(
                f"super-resolution model '{self.path}': {str(err).splitlines()[0][:200]}"
            ) from None
        if out.ndim != 4 or out.shape[1] != 3 or out.shape[2] < image.shape[0]:
            raise ModelError(
                f"super-resolution model '{self.path}': output {out.shape} is not a larger picture"
            )
        return np.clip(out[0].transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
