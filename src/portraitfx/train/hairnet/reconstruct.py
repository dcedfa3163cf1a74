"""Paired hair data by iterative reconstruction (the seed's method).

Given a StyleGAN image (or a photo inverted into the generator), a crude edit of it
(a block of colour painted over the hair, a bangs template pasted on, the model-free
edit's output) and the mask of the edited region, optimise the latents so that

(a) outside the (slightly dilated) mask the full-resolution render matches the
    original -- pixels and multi-scale features;
(b) the render, downsampled, matches the crude edit inside the mask -- at low
    resolution only, so the generator draws real hair texture where the crude edit has
    flat colour;
(c) the latents stay in the generator's distribution: each layer's ``w`` no further
    from the average than typical samples are, and the layers close to one another
    (a ``w+`` spread penalty), so the render stays sharp and plausible.

The original render and the result make one (before, after) pair; their latents are
kept so pairs can be interpolated into more pairs.

Example:
    >>> rec = reconstruct(generator, original, crude, mask, init_ws)     # doctest: +SKIP
    >>> rec.losses["edit"][-1] < rec.losses["edit"][0]                  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from portraitfx.errors import ConfigError
from portraitfx.train.stylegan.networks import Generator

__all__ = ["ReconstructOptions", "Reconstruction", "latent_penalty", "reconstruct", "w_statistics"]


@dataclass(frozen=True)
class ReconstructOptions:
    """Weights and schedule of :func:`reconstruct`.

    Attributes:
        steps: optimisation steps.
        lr: peak Adam learning rate (cosine decay to 10 %).
        outside_weight: weight of (a), pixels and features outside the mask.
        feature_weight: share of the feature distance inside (a).
        edit_weight: weight of (b), the crude edit at low resolution.
        edit_scale: downsampling factor of (b) (4: a 256 px render is compared at 64 px).
        latent_weight: weight of (c).
        margin: the mask is dilated by this share of the image side before (a) excludes it.
    """

    steps: int = 300
    lr: float = 0.03
    outside_weight: float = 1.0
    feature_weight: float = 0.5
    edit_weight: float = 1.0
    edit_scale: int = 4
    latent_weight: float = 0.1
    margin: float = 0.03

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")
        if self.edit_scale < 1:
            raise ConfigError(f"edit_scale must be at least 1, got {self.edit_scale}")
        for name in ("lr", "outside_weight", "edit_weight", "latent_weight", "feature_weight", "margin"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class Reconstruction:
    """What :func:`reconstruct` found.

    Attributes:
        ws: ``(1, num_ws, w_dim)`` latents of the edited image.
        image: ``(1, 3, R, R)`` their render in [-1, 1].
        losses: per step, the three terms (unweighted): ``"outside"``, ``"edit"``, ``"latent"``.
    """

    ws: torch.Tensor
    image: torch.Tensor
    losses: dict[str, list[float]] = field(default_factory=dict)


def w_statistics(generator: Generator, samples: int = 2000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """The average ``w`` ``(w_dim,)`` and the typical distance of a sample from it (RMS norm)."""
    gen = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    with torch.no_grad():
        z = torch.randn(samples, generator.cfg.z_dim, generator=gen).to(device)
        w = generator.mapping(z)[:, 0]
        avg = w.mean(0)
        std = float((w - avg).square().sum(1).mean().sqrt())
    return avg, std


def latent_penalty(ws: torch.Tensor, w_avg: torch.Tensor, w_std: float) -> torch.Tensor:
    """Term (c): how far ``ws`` ``(N, L, D)`` leave the generator's latent distribution.

    The spread of the layers around their mean (0 for a plain ``w``) plus, per layer,
    how much further than twice the typical distance from the average it lies.
    """
    scale = max(w_std, 1e-8) ** 2
    spread = (ws - ws.mean(1, keepdim=True)).square().sum(-1).mean() / scale
    far = F.relu((ws - w_avg).square().sum(-1) / scale - 2.0**2).mean()
    return spread + far


def _features(x: torch.Tensor) -> list[torch.Tensor]:
    from portraitfx.train.invert.features import pyramid_features

    return pyramid_features(x)


def reconstruct(
    generator: Generator,
    original: torch.Tensor,
    crude: torch.Tensor,
    mask: torch.Tensor,
    init_ws: torch.Tensor,
    options: ReconstructOptions | None = None,
    *,
    noise: dict[str, torch.Tensor] | None = None,
    w_stats: tuple[torch.Tensor, float] | None = None,
    progress: bool = False,
) -> Reconstruction:
    """Find latents whose render is ``original`` outside ``mask`` and ``crude`` (at low resolution) inside.

    Args:
        generator: the StyleGAN generator (not modified).
        original: ``(1, 3, R, R)`` the image before the edit, in [-1, 1].
        crude: ``(1, 3, R, R)`` the crude edit, in [-1, 1].
        mask: ``(1, 1, R, R)`` in [0, 1], where the edit is.
        init_ws: ``(1, num_ws, w_dim)`` where to start (the original's latents).
        noise: per-layer noise maps to render with (e.g. from the inversion); else the generator's own.
        w_stats: ``(w_avg, w_std)`` from :func:`w_statistics` (computed when None).
    """
    o = options or ReconstructOptions()
    res = generator.cfg.resolution
    for name, t, ch in (("original", original, 3), ("crude", crude, 3), ("mask", mask, 1)):
        if tuple(t.shape) != (1, ch, res, res):
            raise ConfigError(f"{name} must be (1, {ch}, {res}, {res}), got {tuple(t.shape)}")
    if tuple(init_ws.shape) != (1, generator.cfg.num_ws, generator.cfg.w_dim):
        raise ConfigError(
            f"init_ws must be (1, {generator.cfg.num_ws}, {generator.cfg.w_dim}), got {tuple(init_ws.shape)}"
        )
    if res % o.edit_scale:
        raise ConfigError(f"edit_scale {o.edit_scale} must divide the resolution {res}")
    g = copy.deepcopy(generator).eval().requires_grad_(False)
    device = next(g.parameters()).device
    if noise:
        layers = dict(g.synthesis.named_modules())
        for name, n in noise.items():
            if name in layers and hasattr(layers[name], "noise_const"):
                layers[name].noise_const = n.detach().to(device).clone()
    w_avg, w_std = w_stats if w_stats is not None else w_statistics(g)
    w_avg = w_avg.to(device)
    original, crude, mask = original.to(device), crude.to(device), mask.to(device).clamp(0, 1)
    # (a) excludes the mask grown by the margin
    grow = max(int(round(o.margin * res)), 0)
    grown = F.max_pool2d(mask, 2 * grow + 1, stride=1, padding=grow) if grow else mask
    outside = 1.0 - grown
    outside_n = outside.sum().clamp_min(1.0)
    target_feats = [f.detach() for f in _features(original * outside)]
    down = (lambda x: F.avg_pool2d(x, o.edit_scale)) if o.edit_scale > 1 else (lambda x: x)
    crude_d, mask_d = down(crude), down(mask)
    mask_n = mask_d.sum().clamp_min(1e-6)
    ws = init_ws.detach().clone().to(device).requires_grad_(True)
    opt = torch.optim.Adam([ws], lr=o.lr, betas=(0.9, 0.999))
    losses: dict[str, list[float]] = {"outside": [], "edit": [], "latent": []}
    from tqdm import tqdm

    for step in tqdm(range(o.steps), disable=not progress, leave=False, unit="step"):
        t = step / max(o.steps - 1, 1)
        for group in opt.param_groups:
            group["lr"] = o.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
        image = g.synthesis(ws, noise_mode="const")
        l_out = ((image - original).square() * outside).sum() / (3 * outside_n)
        if o.feature_weight > 0:
            for a, b in zip(_features(image * outside), target_feats, strict=True):
                l_out = l_out + o.feature_weight * (a - b).square().mean()
        l_edit = ((down(image) - crude_d).square() * mask_d).sum() / (3 * mask_n)
        l_lat = latent_penalty(ws, w_avg, w_std)
        loss = o.outside_weight * l_out + o.edit_weight * l_edit + o.latent_weight * l_lat
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses["outside"].append(float(l_out.detach()))
        losses["edit"].append(float(l_edit.detach()))
        losses["latent"].append(float(l_lat.detach()))
    with torch.no_grad():
        final = g.synthesis(ws.detach(), noise_mode="const")
    return Reconstruction(ws=ws.detach(), image=final, losses=losses)
