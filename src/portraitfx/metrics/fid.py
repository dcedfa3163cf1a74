"""Fréchet distances between two image sets in a pluggable feature space (FID and kin).

``fid(real, fake, features)``: both sets through the same feature extractor, each
summarised by the mean and covariance of its features, and the Fréchet distance
between the two Gaussians, ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

Feature spaces:

* :class:`IdentityFeatures`: the project's dlib face-identity descriptors (128-d) of
  FFHQ-aligned face crops (what the StyleGAN tools train on and generate); offline,
  with the model the project already uses for identity. It measures whether the
  faces look like plausible, varied people, not texture.
* :class:`OnnxFeatures`: any image network exported to ONNX, e.g. Inception-v3's
  2048-d pool features for the standard FID when you have those weights (they are
  not shipped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from portraitfx.errors import ConfigError, ModelError

__all__ = ["IdentityFeatures", "OnnxFeatures", "feature_stats", "fid", "frechet_distance"]

Features = Callable[[np.ndarray], np.ndarray]

# FFHQ-aligned crop (unit side) -> dlib's 150 px face chip (padding 0.25): measured on the
# test photos by composing the two alignments (spread: 4 % in scale, 5 % in position)
_CHIP_FROM_UNIT_FFHQ = np.array([[212.86, 0.0, -34.05], [0.0, 212.86, -55.47]])


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``(N, D)`` features."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ConfigError(f"need at least 2 feature vectors, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between two Gaussians (a small ridge keeps singular covariances stable)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    s1, s2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ConfigError("the two sets have features of different sizes")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        ridge = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + ridge) @ (s2 + ridge))
    covmean = np.real(covmean)
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def fid(
    real: Sequence[np.ndarray] | np.ndarray, fake: Sequence[np.ndarray] | np.ndarray, features: Features
) -> float:
    """Fréchet distance between two sets of ``H x W x 3`` uint8 images in the space of ``features``."""
    a, b = features(np.asarray(real)), features(np.asarray(fake))
    return frechet_distance(*feature_stats(a), *feature_stats(b))


class IdentityFeatures:
    """dlib face-identity descriptors of FFHQ-aligned square face crops (``N x R x R x 3`` uint8)."""

    def __init__(self, model: str = "dlib/face_recognition_resnet_v1") -> None:
        from portraitfx.models.registry import resolve_model

        self.path = resolve_model(model)
        self._net = None

    def chip(self, image: np.ndarray) -> np.ndarray:
        """The 150 px dlib face chip of one aligned crop."""
        import cv2

        size = image.shape[0]
        m = _CHIP_FROM_UNIT_FFHQ.copy()
        m[:, :2] /= size
        return cv2.warpAffine(np.ascontiguousarray(image), m, (150, 150), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import dlib

        arr = np.asarray(images)
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or arr.shape[1] != arr.shape[2]:
            raise ConfigError(f"expected N x R x R x 3 uint8 aligned crops, got {arr.dtype} {arr.shape}")
        if self._net is None:
            self._net = dlib.face_recognition_model_v1(str(self.path))
        chips = [self.chip(img) for img in arr]
        return np.asarray([np.asarray(self._net.compute_face_descriptor(c)) for c in chips], np.float32)


class OnnxFeatures:
    """Features from an ONNX image network (NCHW float input; e.g. Inception-v3 pool3).

    Args:
        path: the ``.onnx`` file.
        size: the network's input side (299 for Inception-v3).
        mean, std: per-channel normalisation of ``[0, 1]`` RGB input.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        size: int = 299,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        batch: int = 16,
    ) -> None:
        from portraitfx.models.load import open_onnx_session

        self.session = open_onnx_session(path)
        self.input = self.session.get_inputs()[0].name
        self.size, self.batch = int(size), int(batch)
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import cv2

        out = []
        for i in range(0, len(images), self.batch):
            part = [cv2.resize(np.asarray(im), (self.size, self.size), interpolation=cv2.INTER_AREA)
                    for im in images[i : i + self.batch]]  # fmt: skip
            x = np.stack(part).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            x = (x - self.mean) / self.std
            y = self.session.run(None, {self.input: x})[0]
            out.append(np.asarray(y, np.float32).reshape(len(part), -1))
        if not out:
            raise ModelError("no images to compute features of")
        return np.concatenate(out)
