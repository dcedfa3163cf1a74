"""The hair models: a GLEAN-like network with a StyleGAN generator prior, and a pix2pixHD-style baseline.

Both map an FFHQ-aligned crop ``(N, 3, S, S)`` in [-1, 1] to ``(edited, mask)``: the
edited crop is ``mask * drawn + (1 - mask) * input``, so what the network leaves
alone (mask 0) is the input exactly, and the runner pastes only the masked part back
into the full-resolution photo.

**HairGLEAN** (the seed's figure 9; GLEAN, Chan et al., CVPR 2021): an encoder turns
the photo into multi-scale features and into the ``w+`` latents of a StyleGAN2
synthesis network (the *generator prior*, which can be a trained face model's); the
prior runs from 4x4 up to S with the encoder's features of each resolution fused
into its features (a zero-initialised 1x1 convolution over both, so a freshly built
network starts as the plain prior); a decoder climbs back up through the prior's and
the encoder's features of every resolution to the drawn image and the mask.

**Pix2PixHD** (Wang et al., CVPR 2018; the seed's baseline): a global generator --
7x7 convolution, strided convolutions down, residual blocks, transposed
convolutions up -- with the same two heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError
from portraitfx.train.stylegan.networks import GeneratorConfig, SynthesisNetwork

__all__ = [
    "ARCHS",
    "HairGLEAN",
    "HairNetConfig",
    "MultiScaleDiscriminator",
    "Pix2PixHD",
    "build_hairnet",
    "count_flops",
]

ARCHS = ("glean", "pix2pixhd")


@dataclass(frozen=True)
class HairNetConfig:
    """The shape of a hair model.

    Attributes:
        arch: ``"glean"`` or ``"pix2pixhd"``.
        size: crop side, a power of two from 16 to 1024.
        channel_base, channel_max: widths ``min(channel_base // res, channel_max)``
            of the encoder, the prior and the decoder (GLEAN), as in StyleGAN.
        w_dim: latent width of the prior.
        width, downs, blocks: the pix2pixHD generator's first width, down-samplings
            and residual blocks.
        edit: which edit the model is trained for (recorded, checked by the effect).
    """

    arch: str = "glean"
    size: int = 256
    channel_base: int = 4096
    channel_max: int = 128
    w_dim: int = 128
    width: int = 16
    downs: int = 3
    blocks: int = 4
    edit: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        s = self.size
        if not isinstance(s, int) or s < 16 or s > 1024 or s & (s - 1):
            raise ConfigError(f"size must be a power of two from 16 to 1024, got {s!r}")
        for name in ("channel_base", "channel_max", "w_dim", "width", "downs", "blocks"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.arch == "pix2pixhd" and s >> self.downs < 4:
            raise ConfigError(f"{self.downs} down-samplings leave less than 4 px of a {s} px crop")

    def prior_config(self) -> GeneratorConfig:
        """The StyleGAN2 synthesis network the GLEAN model uses as its prior."""
        return GeneratorConfig(
            resolution=self.size,
            z_dim=self.w_dim,
            w_dim=self.w_dim,
            mapping_layers=1,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HairNetConfig:
        return from_settings(cls, data, "hair model settings")


def from_settings(cls: Any, data: dict[str, Any], what: str) -> Any:
    """``cls(**data)`` for a dataclass, with unknown keys named in a :class:`ConfigError`."""
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown {what}: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return cls(**data)


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class _Heads(nn.Module):
    """The drawn image (tanh) and the mask (sigmoid, starting low) from the last features."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.rgb = nn.Conv2d(ch, 3, 3, padding=1)
        self.mask = nn.Conv2d(ch, 1, 3, padding=1)
        nn.init.constant_(self.mask.bias, -2.0)

    def forward(self, feats: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        drawn = torch.tanh(self.rgb(feats))
        mask = torch.sigmoid(self.mask(feats))
        return mask * drawn + (1 - mask) * x, mask


class HairGLEAN(nn.Module):
    """Encoder -> StyleGAN2 prior with fused encoder features -> decoder (see the module)."""

    def __init__(self, cfg: HairNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        pc = cfg.prior_config()
        self.prior_cfg = pc
        self.res = [2**k for k in range(2, pc.log2 + 1)]  # 4 .. S
        ch = pc.channels
        # encoder: S -> 4, one feature map per resolution
        self.stem = nn.Conv2d(3, ch(cfg.size), 3, padding=1)
        self.down = nn.ModuleDict()
        for r in reversed(self.res[:-1]):  # S/2 .. 4
            self.down[str(r)] = nn.Sequential(
                nn.Conv2d(ch(2 * r), ch(r), 3, stride=2, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(ch(r), ch(r), 3, padding=1),
            )
        self.to_ws = nn.Linear(ch(4) * 16, pc.num_ws * pc.w_dim)
        nn.init.zeros_(self.to_ws.weight)
        nn.init.zeros_(self.to_ws.bias)
        self.register_buffer("w_avg", torch.zeros(pc.w_dim))
        # the generator prior and the fusions into it
        self.prior = SynthesisNetwork(pc)
        self.fuse = nn.ModuleDict()
        for r in self.res:
            conv = nn.Conv2d(2 * ch(r), ch(r), 1)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            self.fuse[str(r)] = conv
        # decoder: 4 -> S through the prior's and the encoder's features
        self.up = nn.ModuleDict()
        self.up["4"] = nn.Conv2d(2 * ch(4), ch(4), 3, padding=1)
        for r in self.res[1:]:
            self.up[str(r)] = nn.Conv2d(ch(r // 2) + 2 * ch(r), ch(r), 3, padding=1)
        self.heads = _Heads(ch(cfg.size))

    def load_prior(self, generator: Any, *, freeze: bool = False) -> None:
        """Take the synthesis weights (and average ``w``) of a trained StyleGAN2 generator of the same shape."""
        g_cfg = generator.cfg
        want = self.prior_cfg
        if (g_cfg.resolution, g_cfg.w_dim, g_cfg.channel_base, g_cfg.channel_max) != (
            want.resolution,
            want.w_dim,
            want.channel_base,
            want.channel_max,
        ):
            raise ConfigError(
                f"the prior must be a {want.resolution} px generator with w_dim {want.w_dim}, channel_base "
                f"{want.channel_base}, channel_max {want.channel_max}; got {g_cfg.resolution} px, w_dim "
                f"{g_cfg.w_dim}, channel_base {g_cfg.channel_base}, channel_max {g_cfg.channel_max}"
            )
        self.prior.load_state_dict(generator.synthesis.state_dict())
        with torch.no_grad():
            self.w_avg.copy_(generator.mapping.w_avg)
        self.prior.requires_grad_(not freeze)

    def encode(self, x: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        feats = {self.cfg.size: _act(self.stem(x))}
        h = feats[self.cfg.size]
        for r in reversed(self.res[:-1]):
            h = _act(self.down[str(r)](h))
            feats[r] = h
        ws = self.to_ws(feats[4].flatten(1)).view(-1, self.prior_cfg.num_ws, self.prior_cfg.w_dim)
        return feats, ws + self.w_avg

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc, ws = self.encode(x)
        gen: dict[int, torch.Tensor] = {}
        h = img = None
        i = 0
        for r, block in zip(self.res, self.prior.blocks.values(), strict=True):
            h, img = block(h, img, ws[:, i : i + block.num_ws], "const")
            i += block.num_ws - 1
            h = h + self.fuse[str(r)](torch.cat([h, enc[r]], 1))
            gen[r] = h
        d = _act(self.up["4"](torch.cat([gen[4], enc[4]], 1)))
        for r in self.res[1:]:
            d = F.interpolate(d, scale_factor=2.0, mode="bilinear", align_corners=False)
            d = _act(self.up[str(r)](torch.cat([d, gen[r], enc[r]], 1)))
        return self.heads(d, x)


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect")
        self.b = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect")
        self.na, self.nb = nn.InstanceNorm2d(ch), nn.InstanceNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.nb(self.b(F.relu(self.na(self.a(x)))))


class Pix2PixHD(nn.Module):
    """pix2pixHD's global generator with the image and mask heads (see the module)."""

    def __init__(self, cfg: HairNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        layers: list[nn.Module] = [
            nn.Conv2d(3, w, 7, padding=3, padding_mode="reflect"),
            nn.InstanceNorm2d(w),
            nn.ReLU(),
        ]
        for k in range(cfg.downs):
            a, b = w * 2**k, w * 2 ** (k + 1)
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.InstanceNorm2d(b), nn.ReLU()]
        mid = w * 2**cfg.downs
        layers += [_ResBlock(mid) for _ in range(cfg.blocks)]
        for k in reversed(range(cfg.downs)):
            a, b = w * 2 ** (k + 1), w * 2**k
            layers += [
                nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(b),
                nn.ReLU(),
            ]
        self.body = nn.Sequential(*layers)
        self.heads = _Heads(w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.body(x), x)


def build_hairnet(cfg: HairNetConfig | dict[str, Any]) -> nn.Module:
    """An untrained hair model of the given shape."""
    c = cfg if isinstance(cfg, HairNetConfig) else HairNetConfig.from_dict(cfg)
    return HairGLEAN(c) if c.arch == "glean" else Pix2PixHD(c)


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's discriminator: PatchGANs on the image and its half-size copy.

    ``forward(x)`` returns, per scale, the list of its layers' outputs (the last is the
    patch score map); the features feed the feature-matching loss.
    """

    def __init__(self, in_ch: int = 6, width: int = 32, layers: int = 3, scales: int = 2) -> None:
        super().__init__()
        self.nets = nn.ModuleList()
        for _ in range(scales):
            mods = nn.ModuleList()
            ch = in_ch
            for k in range(layers):
                out = width * 2 ** min(k, 3)
                mods.append(nn.Sequential(nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)))
                ch = out
            mods.append(nn.Conv2d(ch, 1, 3, padding=1))
            self.nets.append(mods)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outs = []
        for k, mods in enumerate(self.nets):
            h = x if k == 0 else F.avg_pool2d(x, 2**k)
            feats = []
            for m in mods:
                h = m(h)
                feats.append(h)
            outs.append(feats)
        return outs


def count_flops(net: nn.Module, size: int) -> float:
    """GFLOPs of one forward pass at ``size`` px (multiply-adds counted as two)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # (with gradients on: its module tracker needs them)
        net(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9
