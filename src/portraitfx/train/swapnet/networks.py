"""The learned face swapper (SaSwap-style), written for portraitfx.

``SwapNet(target, identity) -> (swapped, mask)``, the swap engine's neural contract:
``target`` the aligned target crop (RGB in [0, 1]), ``identity`` the source's
L2-normalised identity vector (the project's dlib descriptor by default).

* **Attribute encoder** (U-Net style): the target crop down to 1/32 of its side, the
  features of every scale kept (pose, expression, lighting, background, occluders);
* **shape-aware flow** (seed 004): from the deepest attribute features and the
  identity, a dense 2-D flow at 1/8 scale (upsampled to each scale) that warps the
  target's features toward the source's face shape; training supervises it with the
  landmarks of a morphable-model fit (the source's shape with the target's expression
  and pose, see :mod:`portraitfx.train.swapnet.morphable`) and keeps it smooth;
* **generator**: from the bottleneck up, one block per scale that mixes the (warped)
  attribute features and the identity by adaptive attentional denormalisation: the
  normalised activations are modulated twice, by the identity (``gamma_id``,
  ``beta_id`` from the vector) and by the attributes (``gamma_att``, ``beta_att`` from
  the features, per pixel), and a learned per-pixel attention chooses between the
  two: identity where the face is, attributes elsewhere;
* a head to RGB and a paste mask.

``width`` scales every channel count; ``SwapNetConfig.mobile()`` is the small one
(under 2 GFLOPs at 256 px).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError

__all__ = ["SwapNet", "SwapNetConfig", "warp"]


@dataclass(frozen=True)
class SwapNetConfig:
    """Resolution (128, 256 or 512), identity size, and width (channels at full resolution)."""

    size: int = 256
    id_dim: int = 128
    width: int = 16
    max_channels: int = 256
    flow: bool = True

    def __post_init__(self) -> None:
        if self.size not in (64, 128, 256, 512):
            raise ConfigError(f"swapnet size must be 128, 256 or 512 (64 for tests), got {self.size}")
        if self.id_dim < 8 or self.width < 4 or self.max_channels < self.width:
            raise ConfigError("id_dim must be >= 8, width >= 4, max_channels >= width")

    @classmethod
    def mobile(cls, size: int = 256) -> SwapNetConfig:
        return cls(size=size, width=8, max_channels=128)

    @property
    def levels(self) -> int:
        """Down-sampling steps of the attribute encoder: to 1/32 of the side."""
        return 5

    def channels(self, level: int) -> int:
        """Channels at ``level`` (0: full resolution ... 5: 1/32)."""
        return int(min(self.width * 2**level, self.max_channels))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwapNetConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: output pixel ``p`` takes ``x`` at ``p + flow(p)`` (flow in pixels of ``x``, ``(N, 2, H, W)``)."""
    h, w = x.shape[-2:]
    if flow.shape[-2:] != (h, w):
        scale = torch.tensor([w / flow.shape[-1], h / flow.shape[-2]], device=x.device, dtype=x.dtype)
        flow = (
            F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            * scale[None, :, None, None]
        )
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype),
        torch.arange(w, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    gx = (xs[None] + flow[:, 0] + 0.5) / w * 2 - 1
    gy = (ys[None] + flow[:, 1] + 0.5) / h * 2 - 1
    return F.grid_sample(
        x, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=False
    )


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False)  # the norm would cancel a bias
        self.norm = nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class AAD(nn.Module):
    """Adaptive attentional denormalisation: identity and attribute modulations, blended by a learned attention."""

    def __init__(self, channels: int, att_channels: int, id_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.id_gamma, self.id_beta = nn.Linear(id_dim, channels), nn.Linear(id_dim, channels)
        # per-pixel modulations from the attribute features (1x1: those features carry their context)
        self.att_gamma = nn.Conv2d(att_channels, channels, 1)
        self.att_beta = nn.Conv2d(att_channels, channels, 1)
        self.attention = nn.Conv2d(channels, 1, 1)

    def forward(self, h: torch.Tensor, att: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        m = torch.sigmoid(self.attention(h))
        a = self.att_gamma(att) * h + self.att_beta(att)
        i = self.id_gamma(identity)[:, :, None, None] * h + self.id_beta(identity)[:, :, None, None]
        return (1 - m) * a + m * i


class _UpBlock(nn.Module):
    """Upsample x2 (as a 1x1 to the new width first: cheaper), then AAD + 3x3 conv, with a residual."""

    def __init__(self, cin: int, cout: int, att_channels: int, id_dim: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1)
        self.aad, self.conv = AAD(cout, att_channels, id_dim), nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, h: torch.Tensor, att: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(self.reduce(h), scale_factor=2.0, mode="bilinear", align_corners=False)
        return h + self.conv(F.relu(self.aad(h, att, identity)))


class SwapNet(nn.Module):
    """See the module. ``forward(target, identity)`` returns ``(swapped, mask)``; ``.last_flow`` keeps the flow."""

    def __init__(self, cfg: SwapNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SwapNetConfig()
        c = [cfg.channels(i) for i in range(cfg.levels + 1)]
        self.stem = nn.Conv2d(3, c[0], 3, padding=1)
        self.down = nn.ModuleList(_Down(c[i], c[i + 1]) for i in range(cfg.levels))
        self.bottleneck = nn.Linear(cfg.id_dim, c[-1])
        self.flow_head = (
            nn.Sequential(
                nn.Conv2d(c[3] + cfg.id_dim, c[3], 3, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(c[3], 2, 3, padding=1),
            )
            if cfg.flow
            else None
        )
        if self.flow_head is not None:
            with torch.no_grad():  # start with no displacement
                self.flow_head[-1].weight.zero_()
                self.flow_head[-1].bias.zero_()
        self.up = nn.ModuleList(
            _UpBlock(c[i + 1] if i + 1 < cfg.levels else c[-1], c[i], c[i], cfg.id_dim)
            for i in reversed(range(cfg.levels))
        )
        self.to_rgb = nn.Conv2d(c[0], 3, 3, padding=1)
        self.to_mask = nn.Conv2d(c[0], 1, 3, padding=1)
        self.last_flow: torch.Tensor | None = None

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The attribute encoder's features at every scale (``image`` in [0, 1]); the attribute loss compares these."""
        feats = [F.leaky_relu(self.stem(image * 2 - 1), 0.2)]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats

    def forward(self, target: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encode(target)
        flow = None
        if self.flow_head is not None:  # at 1/8: where the face's outline lives at a workable size
            f8 = feats[3]
            ident = identity[:, :, None, None].expand(-1, -1, *f8.shape[-2:])
            flow = self.flow_head(torch.cat([f8, ident], 1)) * (f8.shape[-1] / 8)  # in 1/8-scale pixels
            feats = [warp(f, flow) for f in feats]
        self.last_flow = flow
        h = feats[-1] + self.bottleneck(identity)[:, :, None, None]
        for block, att in zip(self.up, reversed(feats[:-1]), strict=True):
            h = block(h, att, identity)
        rgb = torch.sigmoid(self.to_rgb(F.relu(h)))
        mask = torch.sigmoid(self.to_mask(F.relu(h)))
        return rgb, mask

    def flow_pixels(self) -> torch.Tensor | None:
        """The last flow in pixels of the full-resolution crop (``(N, 2, S, S)``), for the losses."""
        if self.last_flow is None:
            return None
        f = self.last_flow
        s = self.cfg.size
        return F.interpolate(f, size=(s, s), mode="bilinear", align_corners=False) * (s / f.shape[-1])


def count(cfg: SwapNetConfig) -> tuple[int, float]:
    """Parameters and GFLOPs per face at the config's size."""
    from torch.utils.flop_counter import FlopCounterMode

    net = SwapNet(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, cfg.size, cfg.size), F.normalize(torch.ones(1, cfg.id_dim), dim=1))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() / 1e9
