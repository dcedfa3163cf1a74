"""StyleGAN2 networks, written for portraitfx: mapping, synthesis (skip) and a residual discriminator.

What the StyleGAN2 paper (Karras et al., 2020) describes, in plain PyTorch:

* **Equalised learning rate**: weights are stored ~N(0, 1) and scaled by
  ``1 / sqrt(fan_in)`` at run time (the mapping network's layers also by ``lr_mul``).
* **Mapping network**: ``z`` normalised, an MLP to ``w``, a running average of ``w``
  for the truncation trick, ``w`` broadcast to one copy per synthesis layer (``ws``,
  which style mixing and inversion in W+ change one by one).
* **Modulated convolution**: each sample's style scales the weights' input channels;
  demodulation rescales each output channel to unit expected variance (instead of
  AdaIN's normalisation, which caused the "droplet" artefacts). Run as one grouped
  convolution over the batch.
* **Noise**: a per-pixel noise image per layer, scaled by a learned strength.
* **Skip generator**: every resolution adds its RGB to the upsampled image of the
  one below; **residual discriminator** with a minibatch standard deviation layer.
* Resampling with the ``[1, 3, 3, 1]`` low-pass filter (zero insertion then blur to
  upsample, blur then stride 2 to downsample).

Channel widths are ``min(channel_base / resolution, channel_max)``: the official
widths are ``channel_base=32768, channel_max=512``; a model that trains on a CPU in
minutes uses e.g. ``channel_base=1024, channel_max=64``. Resolutions are powers of
two from 8 (tests) to 1024.

Tensors are ``N x C x H x W`` in ``[-1, 1]`` (images) as everywhere in ``train``.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError

__all__ = [
    "Discriminator",
    "Generator",
    "GeneratorConfig",
    "MappingNetwork",
    "ModulatedConv2d",
    "batch_randn",
    "batch_shard",
    "current_shard",
    "downsample2d",
    "grid",
    "to_uint8",
    "upsample2d",
]

NoiseMode = Literal["random", "const", "none"]
_LRELU_GAIN = math.sqrt(2.0)
_SHARD: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("stylegan_shard", default=(0, 1))


@contextlib.contextmanager
def batch_shard(rank: int, world: int) -> Iterator[None]:
    """Inside, per-sample random draws (noise inputs, augmentations) cover ``world`` times the batch; this rank keeps its share.

    Data-parallel training splits a batch over processes by stride (process ``r`` has
    samples ``r, r + world, ...``). Drawing every sample's noise on every process,
    from generators seeded alike, gives each sample the noise it would get in a
    single process: the split changes nothing but the speed.
    """
    if not 0 <= rank < world:
        raise ConfigError(f"rank {rank} is not within a world of {world}")
    token = _SHARD.set((rank, world))
    try:
        yield
    finally:
        _SHARD.reset(token)


def current_shard() -> tuple[int, int]:
    """``(rank, world)`` set by :func:`batch_shard` (``(0, 1)`` outside it)."""
    return _SHARD.get()


def batch_randn(
    n: int, *shape: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``randn(n, *shape)`` from the global generator, this process's share within :func:`batch_shard`."""
    rank, world = _SHARD.get()
    if world == 1:
        return torch.randn(n, *shape, device=device, dtype=dtype)
    return torch.randn(n * world, *shape, device=device, dtype=dtype)[rank::world]


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class GeneratorConfig:
    """The shape of a StyleGAN2 generator (and of its discriminator).

    Attributes:
        resolution: output side in pixels, a power of two from 8 to 1024.
        z_dim, w_dim: latent sizes.
        mapping_layers: depth of the mapping MLP.
        channel_base, channel_max: widths, ``min(channel_base // res, channel_max)``.
        mapping_lr_mul: learning-rate multiplier of the mapping network.
        img_channels: 3 (RGB).
    """

    resolution: int = 256
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 32768
    channel_max: int = 512
    mapping_lr_mul: float = 0.01
    img_channels: int = 3

    def __post_init__(self) -> None:
        r = self.resolution
        if not isinstance(r, int) or r < 8 or r > 1024 or r & (r - 1):
            raise ConfigError(f"resolution must be a power of two from 8 to 1024, got {r!r}")
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "img_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not self.mapping_lr_mul > 0:
            raise ConfigError(f"mapping_lr_mul must be > 0, got {self.mapping_lr_mul!r}")

    @property
    def log2(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """Style vectors the synthesis network takes (two per resolution, less one)."""
        return 2 * self.log2 - 2

    def channels(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown generator settings: {', '.join(sorted(unknown))}")
        return cls(**data)


# --------------------------------------------------------------------------- resampling


def _fir(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device, dtype=dtype)
    k = torch.outer(k, k)
    return k / k.sum()


def _depthwise(
    x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int, int, int], stride: int = 1
) -> torch.Tensor:
    c = int(x.shape[1])  # a constant when traced, so exported graphs know the kernel's shape
    x = F.pad(x, pad)
    return F.conv2d(x, kernel[None, None].expand(c, 1, *kernel.shape), stride=stride, groups=c)


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """Twice the size: zeros between the pixels, then the low-pass filter (gain 4)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _depthwise(up, _fir(x.device, x.dtype) * 4, (2, 1, 2, 1))


def blur2d(x: torch.Tensor) -> torch.Tensor:
    """The low-pass filter at the same size (the 4-tap filter is centred half a pixel off)."""
    return _depthwise(x, _fir(x.device, x.dtype), (2, 1, 2, 1))


def downsample2d(x: torch.Tensor) -> torch.Tensor:
    """Half the size: the low-pass filter, then every other pixel."""
    return _depthwise(x, _fir(x.device, x.dtype), (1, 1, 1, 1), stride=2)


# --------------------------------------------------------------------------- layers


class EqualLinear(nn.Module):
    """Linear layer with an equalised learning rate (optionally leaky ReLU x sqrt 2)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        act: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * _LRELU_GAIN if self.act else x


class EqualConv2d(nn.Module):
    """Convolution with an equalised learning rate; ``down`` blurs and strides by 2."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, *, bias: bool = True, act: bool = True, down: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.kernel, self.act, self.down = kernel, act, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.scale
        if self.down:
            x = blur2d(x)
            x = F.conv2d(x, w, self.bias, stride=2, padding=self.kernel // 2 if self.kernel > 1 else 0)
        else:
            x = F.conv2d(x, w, self.bias, padding=self.kernel // 2)
        return F.leaky_relu(x, 0.2) * _LRELU_GAIN if self.act else x


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated (and demodulated) convolution.

    ``forward(x, w)``: the style ``affine(w)`` (one scale per input channel, initialised
    to 1) multiplies the weights; with ``demodulate``, each sample's output channels are
    rescaled to unit expected variance. ``up`` doubles the size (a transposed
    convolution, then the low-pass filter).

    Two equivalent ways to run it: scaling the input by the style, one ordinary batched
    convolution with the shared weights, then scaling the output by the demodulation
    coefficients (the default: fast on CPUs); or ``fused=True``, each sample's modulated
    weights as one grouped convolution (the paper's formulation).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        w_dim: int,
        *,
        demodulate: bool = True,
        up: bool = False,
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.in_ch, self.out_ch, self.kernel = in_ch, out_ch, kernel
        self.demodulate, self.up, self.fused = demodulate, up, fused

    def modulated_weight(self, styles: torch.Tensor) -> torch.Tensor:
        """``(N, out, in, k, k)``: the weights for each sample's ``styles (N, in)``."""
        w = self.weight[None] * self.scale * styles[:, None, :, None, None]
        if self.demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        return w

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
        """``weight (out, in / groups, k, k)`` applied at the same size, or at twice it with ``up``."""
        if not self.up:
            return F.conv2d(x, weight, padding=self.kernel // 2, groups=groups)
        # stride-2 transposed convolution with the kernel flipped (= zero insertion then the
        # convolution), its first row and column dropped to stay centred, then the filter
        o, i, k = weight.shape[0] // groups, weight.shape[1], self.kernel
        t = weight.reshape(groups, o, i, k, k).transpose(1, 2).reshape(groups * i, o, k, k).flip(2, 3)
        y = F.conv_transpose2d(x, t, stride=2, groups=groups)
        y = y[:, :, k // 2 : k // 2 + 2 * x.shape[2], k // 2 : k // 2 + 2 * x.shape[3]]
        return _depthwise(y, _fir(x.device, x.dtype) * 4, (2, 1, 2, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        styles = self.affine(w)
        if self.fused:
            weight = self.modulated_weight(styles)
            h, wd = x.shape[2:]
            out = self._conv(
                x.reshape(1, n * self.in_ch, h, wd),
                weight.reshape(n * self.out_ch, self.in_ch, self.kernel, self.kernel),
                groups=n,
            )
            return out.reshape(n, self.out_ch, *out.shape[2:])
        weight = self.weight * self.scale
        out = self._conv(x * styles[:, :, None, None], weight, groups=1)
        if self.demodulate:
            # 1 / ||W * s|| per sample and output channel, without forming W * s
            energy = styles.square() @ weight.square().sum(dim=(2, 3)).T
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return out


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution, noise, bias, leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, res: int, *, up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(1, 1, res, res))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "random") -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            x = x + batch_randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype) * (
                self.noise_strength
            )
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * _LRELU_GAIN


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to RGB, not demodulated."""

    def __init__(self, in_ch: int, w_dim: int, img_channels: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator; takes 3 ``w`` (2 at 4x4)."""

    def __init__(self, in_ch: int, out_ch: int, res: int, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.res = res
        if res == 4:
            self.const = nn.Parameter(torch.randn(out_ch, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_ch, out_ch, cfg.w_dim, res, up=True)
        self.conv1 = SynthesisLayer(out_ch, out_ch, cfg.w_dim, res)
        self.torgb = ToRGB(out_ch, cfg.w_dim, cfg.img_channels)
        self.num_ws = 2 if res == 4 else 3

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: NoiseMode
    ) -> tuple[torch.Tensor, torch.Tensor]:
        i = 0
        if self.conv0 is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        else:
            assert x is not None
            x = self.conv0(x, ws[:, 0], noise_mode)
            i = 1
        x = self.conv1(x, ws[:, i], noise_mode)
        rgb = self.torgb(x, ws[:, i + 1])
        img = rgb if img is None else upsample2d(img) + rgb
        return x, img


# --------------------------------------------------------------------------- networks


class MappingNetwork(nn.Module):
    """``z -> w``, with the running average of ``w`` for truncation."""

    def __init__(self, cfg: GeneratorConfig, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        self.layers = nn.ModuleList(
            EqualLinear(a, b, lr_mul=cfg.mapping_lr_mul, act=True) for a, b in itertools.pairwise(dims)
        )
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.w_avg_beta = w_avg_beta
        self.num_ws = cfg.num_ws

    def forward(
        self, z: torch.Tensor, *, truncation: float = 1.0, update_w_avg: bool = False
    ) -> torch.Tensor:
        """``(N, z_dim) -> (N, num_ws, w_dim)``; ``truncation`` < 1 pulls toward the average ``w``."""
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation != 1.0:
            x = self.w_avg.lerp(x, truncation)
        return x[:, None].repeat(1, self.num_ws, 1)


class SynthesisNetwork(nn.Module):
    """``ws (N, num_ws, w_dim) -> image (N, 3, R, R)``."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        blocks = {}
        in_ch = 0
        for log in range(2, cfg.log2 + 1):
            res = 2**log
            out_ch = cfg.channels(res)
            blocks[f"b{res}"] = SynthesisBlock(in_ch, out_ch, res, cfg)
            in_ch = out_ch
        self.blocks = nn.ModuleDict(blocks)

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "random") -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.cfg.num_ws:
            raise ConfigError(f"ws must be (N, {self.cfg.num_ws}, {self.cfg.w_dim}), got {tuple(ws.shape)}")
        x = img = None
        i = 0
        for block in self.blocks.values():
            # each block's last w (its toRGB) is the next block's first
            x, img = block(x, img, ws[:, i : i + block.num_ws], noise_mode)
            i += block.num_ws - 1
        assert img is not None
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: ``G(z) = synthesis(mapping(z))``.

    Example:
        >>> cfg = GeneratorConfig(resolution=64, z_dim=64, w_dim=64, channel_base=1024, channel_max=64)
        >>> G = Generator(cfg)
        >>> G(torch.randn(2, 64)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, cfg: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or GeneratorConfig()
        self.mapping = MappingNetwork(self.cfg)
        self.synthesis = SynthesisNetwork(self.cfg)

    def forward(
        self,
        z: torch.Tensor,
        *,
        truncation: float = 1.0,
        noise_mode: NoiseMode = "random",
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation=truncation, update_w_avg=update_w_avg), noise_mode)

    def resolution_of(self, name: str) -> int | None:
        """The resolution a parameter or buffer belongs to (None for the mapping network)."""
        parts = name.split(".")
        if len(parts) > 2 and parts[0] == "synthesis" and parts[1] == "blocks" and parts[2].startswith("b"):
            return int(parts[2][1:])
        return None

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        seed: int = 0,
        truncation: float = 1.0,
        noise_mode: NoiseMode = "const",
        batch: int = 8,
    ) -> np.ndarray:
        """``n`` images as ``(n, R, R, 3)`` uint8 RGB, from ``z`` drawn with ``seed``."""
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.cfg.z_dim, generator=gen)
        device = next(self.parameters()).device
        out = []
        for i in range(0, n, batch):
            img = self(z[i : i + batch].to(device), truncation=truncation, noise_mode=noise_mode)
            out.append(to_uint8(img))
        return np.concatenate(out)


class Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator with a minibatch standard deviation layer."""

    def __init__(self, cfg: GeneratorConfig | None = None, mbstd_group: int = 4) -> None:
        super().__init__()
        self.cfg = cfg or GeneratorConfig()
        self.mbstd_group = mbstd_group
        top = self.cfg.resolution
        self.from_rgb = EqualConv2d(self.cfg.img_channels, self.cfg.channels(top), 1)
        blocks = {}
        for log in range(self.cfg.log2, 2, -1):
            res = 2**log
            blocks[f"b{res}"] = _DiscriminatorBlock(self.cfg.channels(res), self.cfg.channels(res // 2))
        self.blocks = nn.ModuleDict(blocks)
        c4 = self.cfg.channels(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``(N, 3, R, R) -> (N,)`` logits (real: high)."""
        x = self.from_rgb(img)
        for block in self.blocks.values():
            x = block(x)
        x = _minibatch_std(x, self.mbstd_group)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x).squeeze(1)

    def resolution_of(self, name: str) -> int | None:
        parts = name.split(".")
        if parts[0] == "from_rgb":
            return self.cfg.resolution
        if parts[0] == "blocks":
            return int(parts[1][1:])
        return 4


class _DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, act=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + y) * math.sqrt(0.5)


def _minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append the spread of features across groups of samples as one more channel."""
    n, c, h, w = x.shape
    g = min(group, n)
    while n % g:
        g -= 1
    y = x.reshape(g, -1, c, h, w)
    y = (y - y.mean(0)).square().mean(0)
    y = (y + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n / g,)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], 1)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``N x 3 x H x W`` in ``[-1, 1]`` -> ``N x H x W x 3`` uint8."""
    x = ((img.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 images as one contact sheet (``columns`` per row)."""
    n, h, w, c = images.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 24, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        sheet[
            pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w
        ] = img
    return sheet
