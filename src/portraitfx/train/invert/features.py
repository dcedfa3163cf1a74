"""Feature spaces for image losses: a built-in one that needs no download, and VGG16 from a weights file.

* :func:`pyramid_features`: a Laplacian pyramid of the image and the gradient
  magnitudes at each level: edges and texture at every scale, no learned weights.
* :class:`VGGFeatures`: the five ReLU stages of VGG16 (torchvision's layout),
  channel-normalised as LPIPS does, from a safetensors file you provide (convert
  torchvision's ``vgg16`` ImageNet weights once:
  ``safetensors.torch.save_file(torchvision.models.vgg16(weights="DEFAULT").features.state_dict(), "vgg16.safetensors")``).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ModelError

__all__ = ["VGGFeatures", "pyramid_features"]


def pyramid_features(image: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """``image`` (N x 3 x H x W in [-1, 1]) as band-pass levels and their gradient magnitudes."""
    out = []
    x = image
    for _ in range(levels):
        if min(x.shape[2:]) < 8:
            break
        low = F.avg_pool2d(x, 2)
        band = x - F.interpolate(low, size=x.shape[2:], mode="bilinear", align_corners=False)
        gx = x[..., :, 1:] - x[..., :, :-1]
        gy = x[..., 1:, :] - x[..., :-1, :]
        out += [band, gx, gy]
        x = low
    out.append(x)
    return out


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's numbering


class VGGFeatures(nn.Module):
    """VGG16's conv stages as a feature space (LPIPS-style normalisation), weights from a file."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> VGGFeatures:
        """Load torchvision-layout VGG16 ``features`` weights from safetensors (``0.weight``, ...)."""
        from portraitfx.models.load import load_safetensors

        tensors = load_safetensors(path)
        state = {k if k.startswith("features.") else f"features.{k}": v for k, v in tensors.items()}
        net = cls()
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [m for m in missing if m not in ("mean", "std")]
        if missing or unexpected:
            raise ModelError(
                f"'{path}' is not VGG16 features: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        return net.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))
            if i >= _TAPS[-1]:
                break
        return out
