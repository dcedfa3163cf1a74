"""The real-time student: a small encoder-decoder of MobileNet-style blocks, written for portraitfx.

Seed ``000``'s stage three: a supervised image-to-image network small enough for a
phone, trained on (photo, stylised) pairs from a teacher. Its shape:

* a strided 3x3 stem to half resolution, **depthwise-separable** convolutions
  (depthwise 3x3, then 1x1) down to 1/4, an **inverted residual** block (1x1 expand,
  depthwise 3x3, 1x1 project) down to 1/8;
* inverted residual blocks at 1/8, where most of the computation is (the receptive
  field for strokes and flat colour areas);
* a decoder that doubles the resolution twice (bilinear upsampling plus a 1x1
  projection of the encoder's features at that scale: U-Net skips), a
  depthwise-separable block per scale, and a 3x3 head at half resolution with four
  RGB values per pixel, rearranged into a full-resolution residual (depth to space:
  sharp lines without a single convolution at full resolution);
* the output is the input plus that residual, clipped to [-1, 1], so an untrained
  network starts as the identity and training only learns the change.

No expanded layer runs above 1/4: at the default width (0.75) the network has 52 k
parameters and takes 0.23 GFLOPs per 256 px crop.

``width`` multiplies every channel count (0.5 for low-end phones, 2 for quality).
Inputs are ``N x 3 x H x W`` in [-1, 1] with ``H`` and ``W`` multiples of 8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError

__all__ = ["Student", "StudentConfig"]

KIND = "portraitfx-student"


@dataclass(frozen=True)
class StudentConfig:
    """The student's shape: ``width`` multiplier, blocks at 1/8, their expansion."""

    width: float = 0.75
    middle_blocks: int = 4
    expand: int = 2

    def __post_init__(self) -> None:
        if not 0.125 <= self.width <= 4:
            raise ConfigError(f"width must be within 0.125..4, got {self.width}")
        if not 1 <= self.middle_blocks <= 16 or not 1 <= self.expand <= 8:
            raise ConfigError("middle_blocks must be 1..16 and expand 1..8")

    def channels(self) -> tuple[int, int, int, int]:
        """Channels at 1/2, 1/4, 1/8 and in the middle."""
        return tuple(max(8, int(round(c * self.width / 8)) * 8) for c in (16, 32, 64, 64))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Separable(nn.Module):
    """Depthwise 3x3 (stride 1 or 2), ReLU6, 1x1."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(F.relu6(self.depthwise(x)))


class InvertedResidual(nn.Module):
    """1x1 expand -> depthwise 3x3 (stride 1 or 2) -> 1x1 project, ReLU6 between, residual when it fits."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 2) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = nn.Conv2d(cin, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x))
        y = F.relu6(self.depthwise(y))
        y = self.project(y)
        return x + y if self.residual else y


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class Student(nn.Module):
    """The student network (see the module).

    Example:
        >>> net = Student(StudentConfig(width=0.5))
        >>> net(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, cfg: StudentConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or StudentConfig()
        c2, c4, c8, cm = cfg.channels()
        self.stem = nn.Conv2d(3, c2, 3, stride=2, padding=1)
        self.down4 = Separable(c2, c4, stride=2)
        self.down8 = InvertedResidual(c4, c8, stride=2, expand=cfg.expand)
        blocks = [InvertedResidual(c8, cm, expand=cfg.expand)]
        blocks += [InvertedResidual(cm, cm, expand=cfg.expand) for _ in range(cfg.middle_blocks - 1)]
        self.middle = nn.Sequential(*blocks)
        self.skip4 = nn.Conv2d(c4, cm, 1)
        self.up4 = Separable(cm, c4)
        self.skip2 = nn.Conv2d(c2, c4, 1)
        self.up2 = Separable(c4, c2)
        self.head = nn.Conv2d(c2, 12, 3, padding=1)
        with torch.no_grad():  # start as the identity: no residual yet
            self.head.weight.zero_()
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s2 = F.relu6(self.stem(x))  # 1/2
        s4 = F.relu6(self.down4(s2))  # 1/4
        y = self.middle(self.down8(s4))  # 1/8
        y = F.relu6(self.up4(_up(y) + self.skip4(s4)))  # 1/4
        y = F.relu6(self.up2(_up(y) + self.skip2(s2)))  # 1/2
        return (x + F.pixel_shuffle(self.head(y), 2)).clamp(-1.0, 1.0)
