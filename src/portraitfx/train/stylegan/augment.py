"""Adaptive discriminator augmentation (ADA, Karras et al. 2020), written for portraitfx.

With a few hundred training images the discriminator memorises them and training
collapses. ADA shows the discriminator augmented images only, real and generated
alike, with every augmentation applied with the same probability ``p``; because
each is applied with ``p < 1`` and is a "non-leaking" transform, the generator still
learns the clean distribution. ``p`` is tuned during training by an overfitting
heuristic: ``r_t = E[sign(D(real))]`` (how sure the discriminator is about the
training images); above the target (0.6) ``p`` goes up, below it goes down.

The pipeline here: x-flip, 90-degree rotations, integer translation (up to 1/8 of the
side), isotropic scaling (lognormal, 0.2 * ln 2), rotation (uniform), anisotropic
scaling, then brightness, contrast, luma flip-free saturation, all differentiable
(the generator's gradients go through it). Geometric steps are one affine warp with
reflection padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from portraitfx.train.stylegan.networks import current_shard

__all__ = ["AdaptiveAugment", "augment"]


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    z = torch.zeros_like(theta)
    o = torch.ones_like(theta)
    return torch.stack(
        [torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2
    )


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(sx)
    o = torch.ones_like(sx)
    return torch.stack(
        [torch.stack([sx, z, z], -1), torch.stack([z, sy, z], -1), torch.stack([z, z, o], -1)], -2
    )


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(tx)
    o = torch.ones_like(tx)
    return torch.stack(
        [torch.stack([o, z, tx], -1), torch.stack([z, o, ty], -1), torch.stack([z, z, o], -1)], -2
    )


def geometric_matrix(
    n: int, p: float, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(n, 3, 3)`` matrices in normalised coordinates ([-1, 1]), each step applied with probability ``p``.

    Inside :func:`~portraitfx.train.stylegan.networks.batch_shard` the draws cover the
    whole batch and this process's share is returned.
    """
    rank, world = current_shard()
    n = n * world

    # random numbers are drawn on the CPU (where the run's generator lives), then moved
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(device)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device)

    def gate(values: torch.Tensor, neutral: float) -> torch.Tensor:
        keep = rand(n) < p
        return torch.where(keep, values, torch.full_like(values, neutral))

    m = torch.eye(3, device=device).repeat(n, 1, 1)
    flip = gate(1 - 2 * torch.floor(rand(n) * 2), 1.0)
    m = m @ _scale(flip, torch.ones_like(flip))
    quarter = gate(torch.floor(rand(n) * 4) * (math.pi / 2), 0.0)
    m = m @ _rotation(quarter)
    t = (rand(n, 2) * 2 - 1) * 0.125 * 2  # up to 1/8 of the side (normalised side is 2)
    m = m @ _translate(gate(t[:, 0], 0.0), gate(t[:, 1], 0.0))
    s = gate(torch.exp2(randn(n) * 0.2), 1.0)
    m = m @ _scale(s, s)
    m = m @ _rotation(gate((rand(n) * 2 - 1) * math.pi, 0.0))
    a = gate(torch.exp2(randn(n) * 0.2), 1.0)
    m = m @ _scale(a, 1 / a)
    return m[rank::world]


def warp(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample ``images`` so output pixel ``q`` shows input point ``matrix @ q`` (normalised coordinates)."""
    grid = F.affine_grid(matrix[:, :2, :], list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def colour(images: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Brightness, contrast and saturation, each applied with probability ``p``."""
    rank, world = current_shard()
    n = images.shape[0] * world
    device = images.device

    def randn() -> torch.Tensor:
        return torch.randn(n, generator=generator).to(device)

    def gate(values: torch.Tensor, neutral: float) -> torch.Tensor:
        keep = torch.rand(n, generator=generator).to(device) < p
        return torch.where(keep, values, torch.full_like(values, neutral))[rank::world, None, None, None]

    brightness = gate(randn() * 0.2, 0.0)
    contrast = gate(torch.exp2(randn() * 0.5), 1.0)
    saturation = gate(torch.exp2(randn() * 1.0), 1.0)
    x = images + brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    luma = x.mean(dim=1, keepdim=True)
    return (x - luma) * saturation + luma


def augment(images: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The whole pipeline at probability ``p`` (``p == 0`` returns ``images`` itself); fp32 under autocast too."""
    if p <= 0:
        return images
    with torch.autocast(images.device.type, enabled=False):
        images = images.float()
        m = geometric_matrix(images.shape[0], p, images.device, generator)
        if not torch.allclose(m, torch.eye(3, device=images.device).expand_as(m)):
            images = warp(images, m)
        return colour(images, p, generator)


class AdaptiveAugment:
    """The augmentation probability ``p`` and its overfitting heuristic.

    Call :meth:`observe` with the discriminator's logits on real images each step and
    :meth:`update` every ``interval`` steps: ``p`` moves by ``batch * interval /
    (speed_kimg * 1000)`` toward more augmentation when ``r_t`` is above ``target``.
    """

    def __init__(self, target: float = 0.6, speed_kimg: float = 500.0, p: float = 0.0) -> None:
        self.target, self.speed_kimg, self.p = target, speed_kimg, float(p)
        self._sum, self._count = 0.0, 0
        self.rt = 0.0

    def observe(self, real_logits: torch.Tensor) -> None:
        self._sum += float(torch.sign(real_logits.detach()).sum())
        self._count += int(real_logits.numel())

    def update(self, images_seen: int) -> float:
        """Adjust ``p`` after ``images_seen`` images since the last update; returns ``r_t``."""
        if self._count == 0:
            return self.rt
        self.rt = self._sum / self._count
        step = images_seen / (self.speed_kimg * 1000)
        self.p = float(min(max(self.p + math.copysign(step, self.rt - self.target), 0.0), 1.0))
        self._sum, self._count = 0.0, 0
        return self.rt
