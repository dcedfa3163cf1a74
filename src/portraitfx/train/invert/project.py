"""Optimisation-based inversion: find the latents (and noise) with which a generator draws a given image.

As the StyleGAN2 projector does: start from the average ``w``, optimise ``w`` (the
``"w"`` space: one vector for every layer) or each layer's own ``w`` (``"w+"``: more
faithful, less editable) together with the per-layer noise maps, with

* an image loss: pixels plus a feature distance (see :mod:`portraitfx.train.invert.features`:
  VGG16 features from a weights file you supply, or a built-in multi-scale loss that
  needs no download);
* noise added to ``w`` early on (it anneals to zero) so the search does not stick;
* a noise regulariser that keeps the noise maps noise (no spatial correlation at any
  scale), renormalised after every step;
* Adam with a learning rate that ramps up and then down (cosine).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from portraitfx.errors import ConfigError
from portraitfx.train.stylegan.networks import Generator, SynthesisLayer

__all__ = ["Projection", "project", "psnr"]

Space = Literal["w", "w+"]


@dataclass
class Projection:
    """What :func:`project` found.

    Attributes:
        ws: ``(1, num_ws, w_dim)`` latents (all rows equal in the ``"w"`` space).
        noise: the per-layer noise maps, by layer name.
        image: ``(1, 3, R, R)`` the generator's rendering of them, in [-1, 1].
        losses: the image loss at every step.
    """

    ws: torch.Tensor
    noise: dict[str, torch.Tensor]
    image: torch.Tensor
    losses: list[float]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1]."""
    mse = float(((a.detach().clamp(-1, 1) - b.detach().clamp(-1, 1)) / 2).square().mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _noise_layers(generator: Generator) -> dict[str, SynthesisLayer]:
    return {n: m for n, m in generator.synthesis.named_modules() if isinstance(m, SynthesisLayer)}


def _noise_penalty(maps: list[torch.Tensor]) -> torch.Tensor:
    """Spatial autocorrelation of each noise map, at every scale down to 8x8 (0 for white noise)."""
    total = maps[0].new_zeros([])
    for n in maps:
        x = n
        while True:
            total = total + (x * torch.roll(x, 1, dims=3)).mean().square()
            total = total + (x * torch.roll(x, 1, dims=2)).mean().square()
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return total


def project(
    generator: Generator,
    target: torch.Tensor,
    *,
    space: Space = "w+",
    steps: int = 500,
    lr: float = 0.1,
    features: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
    pixel_weight: float = 1.0,
    feature_weight: float = 1.0,
    noise_weight: float = 1e5,
    initial_noise: float = 0.05,
    noise_ramp: float = 0.75,
    w_samples: int = 2000,
    optimise_noise: bool = True,
    init: torch.Tensor | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Projection:
    """Invert ``target`` (``(1, 3, R, R)`` in [-1, 1]) into ``generator``'s latent space.

    ``features``: a callable returning a list of feature maps (compared with a
    normalised L2 distance); ``None`` uses :func:`portraitfx.train.invert.features.pyramid_features`.
    ``init``: ``(1, num_ws, w_dim)`` latents to start from (e.g. an encoder's) instead
    of the average ``w``; ``steps=0`` then returns them as they are.
    """
    if space not in ("w", "w+"):
        raise ConfigError(f"space must be 'w' or 'w+', got {space!r}")
    res = generator.cfg.resolution
    if target.ndim != 4 or target.shape[0] != 1 or tuple(target.shape[1:]) != (3, res, res):
        raise ConfigError(f"target must be (1, 3, {res}, {res}), got {tuple(target.shape)}")
    if steps < 0 or (steps == 0 and init is None):
        raise ConfigError("steps must be >= 1 (0 only when starting from given latents)")
    if init is not None and tuple(init.shape) != (1, generator.cfg.num_ws, generator.cfg.w_dim):
        raise ConfigError(
            f"init latents must be (1, {generator.cfg.num_ws}, {generator.cfg.w_dim}), got {tuple(init.shape)}"
        )
    if features is None:
        from portraitfx.train.invert.features import pyramid_features

        features = pyramid_features
    g = copy.deepcopy(generator).eval().requires_grad_(False)
    device = next(g.parameters()).device
    target = target.to(device)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(w_samples, g.cfg.z_dim, generator=gen).to(device)
        w_all = g.mapping(z)[:, 0]
        w_avg = w_all.mean(0, keepdim=True)
        w_std = float(((w_all - w_avg).square().sum(1).mean()) ** 0.5)
        target_feats = [f.detach() for f in features(target)]
    num_ws = g.cfg.num_ws
    if init is not None:
        start = init.detach().to(device)
        w_opt = (start.clone() if space == "w+" else start.mean(1)).requires_grad_(True)
    else:
        w_opt = (w_avg[:, None].repeat(1, num_ws, 1) if space == "w+" else w_avg.clone()).requires_grad_(True)
    layers = _noise_layers(g)
    noise_maps = []
    for layer in layers.values():
        # from given latents (an encoder's): the noise they were found with, else fresh noise
        fresh = torch.randn(layer.noise_const.shape, generator=gen).to(device)
        n = layer.noise_const.detach().clone() if init is not None else fresh
        layer.noise_const = n.requires_grad_(optimise_noise)
        noise_maps.append(layer.noise_const)
    optimise_noise = optimise_noise and bool(noise_maps)  # StyleGAN3 has no noise inputs
    params = [w_opt] + (noise_maps if optimise_noise else [])
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    losses: list[float] = []
    from tqdm import tqdm

    for step in tqdm(range(steps), disable=not progress, leave=False, unit="step"):
        t = step / steps
        # learning rate: ramp up over the first 5 %, cosine down over the last 25 %
        ramp = 0.5 - 0.5 * math.cos(min(1.0, (1.0 - t) / 0.25) * math.pi)
        ramp *= min(1.0, (step + 1) / max(steps * 0.05, 1.0))
        for group in opt.param_groups:
            group["lr"] = lr * ramp
        w_noise_scale = w_std * initial_noise * max(0.0, 1.0 - t / noise_ramp) ** 2
        w_noise = torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale
        ws = w_opt + w_noise
        if space == "w":
            ws = ws[:, None].repeat(1, num_ws, 1)
        image = g.synthesis(ws, noise_mode="const")
        loss_image = pixel_weight * (image - target).square().mean()
        if feature_weight > 0:
            for a, b in zip(features(image), target_feats, strict=True):
                loss_image = loss_image + feature_weight * (a - b).square().mean()
        loss = loss_image + (noise_weight * _noise_penalty(noise_maps) if optimise_noise else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss_image.detach()))
        if optimise_noise:
            with torch.no_grad():
                for n in noise_maps:
                    n -= n.mean()
                    n *= n.square().mean().rsqrt()
    with torch.no_grad():
        ws = w_opt.detach() if space == "w+" else w_opt.detach()[:, None].repeat(1, num_ws, 1)
        image = g.synthesis(ws, noise_mode="const")
    noise = {name: layer.noise_const.detach().clone() for name, layer in layers.items()}
    return Projection(ws=ws, noise=noise, image=image, losses=losses)


def load_target(path: str, resolution: int) -> torch.Tensor:
    """An image file as a ``(1, 3, R, R)`` target (centre-cropped square, resized)."""
    from portraitfx.io.images import load_image
    from portraitfx.train.stylegan.train import square

    img = square(load_image(path), resolution)
    return torch.from_numpy(img.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
