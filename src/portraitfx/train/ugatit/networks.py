"""U-GAT-IT networks, written for portraitfx (Kim et al., 2020, "U-GAT-IT: Unsupervised Generative
Attentional Networks with Adaptive Layer-Instance Normalization for Image-to-Image Translation").

* **CAM attention**: an auxiliary classifier on the encoder's features (one weight per
  channel, on their global average and global max pools) says which domain an image
  is from; its weights, multiplied back into the feature maps, make the network
  attend to the regions that tell the domains apart (the heatmap is their sum);
* **AdaLIN**: the decoder's residual blocks normalise with a learned mix ``rho`` of
  instance and layer normalisation (``rho`` in [0, 1]), then scale and shift with
  ``gamma`` and ``beta`` computed from the attended features by a small MLP: instance
  norm keeps content (shape), layer norm lets global style (texture, colour) change;
  the upsampling blocks use LIN (the same mix, learned ``gamma`` and ``beta``);
* the discriminators (a global one and a local one with a smaller receptive field)
  have the same CAM on their features, spectral normalisation, and a patch output.

``mask=True`` (seed 000's mask variant) adds a head that predicts where to translate:
the output is ``m * translated + (1 - m) * input``, so pixels the mask leaves out are
exactly the input's. A given mask (e.g. the face region from the mesh) can replace
the predicted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from portraitfx.errors import ConfigError

__all__ = ["CAM", "LIN", "AdaLIN", "Discriminator", "Generator", "UGATITConfig"]


@dataclass(frozen=True)
class UGATITConfig:
    """Shapes: image ``size``, base width ``ngf`` / ``ndf``, residual blocks, the mask head."""

    size: int = 128
    ngf: int = 32
    ndf: int = 32
    n_res: int = 4
    mask: bool = False

    def __post_init__(self) -> None:
        if self.size < 32 or self.size & (self.size - 1):
            raise ConfigError(f"U-GAT-IT size must be a power of two, at least 32, got {self.size}")
        if self.ngf < 4 or self.ndf < 4 or not 1 <= self.n_res <= 9:
            raise ConfigError("ngf and ndf must be >= 4 and n_res 1..9")

    @property
    def global_layers(self) -> int:
        """Strided layers of the global discriminator (5 at 128 px: a 2 x 2 patch map before the last conv)."""
        return max(3, int(math.log2(self.size)) - 2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UGATITConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class CAM(nn.Module):
    """Class activation attention: domain logits from pooled features, and the features re-weighted by them."""

    def __init__(self, channels: int, *, sn: bool = False, act: nn.Module | None = None) -> None:
        super().__init__()
        wrap = spectral_norm if sn else (lambda m: m)
        self.gap_fc = wrap(nn.Linear(channels, 1, bias=False))
        self.gmp_fc = wrap(nn.Linear(channels, 1, bias=False))
        self.fuse = nn.Conv2d(2 * channels, channels, 1)
        self.act = act or nn.ReLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features, cam_logits (N, 2), heatmap (N, 1, H, W))``."""
        gap_logit = self.gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
        x_gap = x * self.gap_fc.weight[0][None, :, None, None]
        x_gmp = x * self.gmp_fc.weight[0][None, :, None, None]
        y = self.act(self.fuse(torch.cat([x_gap, x_gmp], 1)))
        return y, torch.cat([gap_logit, gmp_logit], 1), y.sum(1, keepdim=True)


def _instance_layer(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` instance-normalised (per sample and channel) and layer-normalised (per sample)."""
    i_mean, i_var = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, unbiased=False)
    l_mean, l_var = x.mean((1, 2, 3), keepdim=True), x.var((1, 2, 3), keepdim=True, unbiased=False)
    return (x - i_mean) / torch.sqrt(i_var + eps), (x - l_mean) / torch.sqrt(l_var + eps)


class AdaLIN(nn.Module):
    """``(rho * IN(x) + (1 - rho) * LN(x)) * gamma + beta`` with ``gamma``, ``beta`` given per sample."""

    def __init__(self, channels: int, rho: float = 0.9) -> None:
        super().__init__()
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), rho))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        inorm, lnorm = _instance_layer(x)
        rho = self.rho.clamp(0.0, 1.0)
        out = rho * inorm + (1 - rho) * lnorm
        return out * gamma[:, :, None, None] + beta[:, :, None, None]


class LIN(nn.Module):
    """Layer-instance normalisation with learned ``rho`` (starting at layer norm), ``gamma`` and ``beta``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inorm, lnorm = _instance_layer(x)
        rho = self.rho.clamp(0.0, 1.0)
        return (rho * inorm + (1 - rho) * lnorm) * self.gamma + self.beta


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride=stride))


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(), _conv(c, c, 3), nn.InstanceNorm2d(c)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _AdaLINBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.norm1 = _conv(c, c, 3), AdaLIN(c)
        self.conv2, self.norm2 = _conv(c, c, 3), AdaLIN(c)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x), gamma, beta))
        return x + self.norm2(self.conv2(y), gamma, beta)


class Generator(nn.Module):
    """Image ``(N, 3, S, S)`` in [-1, 1] -> ``(translated, cam_logits, heatmap)`` (and the mask with ``cfg.mask``)."""

    def __init__(self, cfg: UGATITConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or UGATITConfig()
        c = cfg.ngf
        self.down = nn.Sequential(
            _conv(3, c, 7), nn.InstanceNorm2d(c), nn.ReLU(),
            _conv(c, 2 * c, 3, 2), nn.InstanceNorm2d(2 * c), nn.ReLU(),
            _conv(2 * c, 4 * c, 3, 2), nn.InstanceNorm2d(4 * c), nn.ReLU(),
            *(_ResBlock(4 * c) for _ in range(cfg.n_res)),
        )  # fmt: skip
        self.cam = CAM(4 * c)
        self.mlp = nn.Sequential(nn.Linear(4 * c, 4 * c), nn.ReLU(), nn.Linear(4 * c, 4 * c), nn.ReLU())
        self.gamma, self.beta = nn.Linear(4 * c, 4 * c), nn.Linear(4 * c, 4 * c)
        self.blocks = nn.ModuleList(_AdaLINBlock(4 * c) for _ in range(cfg.n_res))
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(4 * c, 2 * c, 3), LIN(2 * c), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(2 * c, c, 3), LIN(c), nn.ReLU(),
        )  # fmt: skip
        self.to_rgb = _conv(c, 3, 7)
        self.to_mask = _conv(c, 1, 7) if cfg.mask else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"image", "cam_logits", "heatmap"}`` and, with a mask head or a given ``mask``, ``"mask"``.

        ``mask``: ``(N, 1, S, S)`` in [0, 1] to use instead of the predicted one.
        """
        h, cam_logits, heatmap = self.cam(self.down(x))
        style = self.mlp(F.adaptive_avg_pool2d(h, 1).flatten(1))
        gamma, beta = self.gamma(style), self.beta(style)
        for block in self.blocks:
            h = block(h, gamma, beta)
        feats = self.up(h)
        image = torch.tanh(self.to_rgb(feats))
        out = {"cam_logits": cam_logits, "heatmap": heatmap}
        if mask is None and self.to_mask is not None:
            mask = torch.sigmoid(self.to_mask(feats))
        if mask is not None:
            image = mask * image + (1 - mask) * x  # outside the mask: exactly the input
            out["mask"] = mask
        out["image"] = image
        return out


class Discriminator(nn.Module):
    """A patch discriminator with CAM: ``x -> (patch logits, cam_logits, heatmap)``."""

    def __init__(self, ndf: int, layers: int) -> None:
        super().__init__()
        mods: list[nn.Module] = [
            nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(3, ndf, 4, 2)), nn.LeakyReLU(0.2)
        ]  # fmt: skip
        c = ndf
        for _ in range(1, layers - 1):
            mods += [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(c, 2 * c, 4, 2)), nn.LeakyReLU(0.2)]
            c *= 2
        mods += [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(c, 2 * c, 4, 1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*mods)
        self.cam = CAM(2 * c, sn=True, act=nn.LeakyReLU(0.2))
        self.out = nn.Sequential(nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(2 * c, 1, 4, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, cam_logits, heatmap = self.cam(self.features(x))
        return self.out(h), cam_logits, heatmap
