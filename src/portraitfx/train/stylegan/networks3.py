"""StyleGAN3 ("alias-free") generators, written for portraitfx: for converted official models.

StyleGAN3 (Karras et al., 2021) treats the feature maps as samples of continuous
signals so the image moves with the latent's translation and rotation instead of
sticking to the pixel grid. What that takes, as implemented here:

* the synthesis starts from **Fourier features**: sinusoids of fixed random
  frequencies (inside a disc of radius ``first_cutoff``) whose phases and orientation
  an affine map of the first latent shifts and turns;
* each layer's cutoff frequency, stopband and sampling rate follow a geometric
  progression from the first layer to the last ``num_critical`` layers, which are
  critically sampled at the output resolution; feature maps carry a ``margin`` of
  extra pixels around the image;
* every layer is a modulated convolution (weights and styles pre-normalised, input
  scaled by the running mean of its magnitude) followed by a **filtered leaky ReLU**:
  bias, upsampling by zero insertion and a Kaiser-windowed low-pass filter, the
  nonlinearity at the higher rate, then low-pass filtering and decimation to the
  layer's own rate (radially symmetric jinc filters for the rotation-equivariant
  ``R`` config);
* a final 1x1 ToRGB, and the image scaled by ``output_scale``.

The network's shape is a handful of hyperparameters (:class:`Generator3Config`);
every layer's rates, sizes, filters and padding are worked out from them. The
mapping network is StyleGAN2's. These generators sample, fuse, invert and make pairs
like StyleGAN2 ones; training them is not supported (train StyleGAN2, or fine-tune
elsewhere and convert).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError
from portraitfx.train.stylegan.networks import EqualLinear, Generator, MappingNetwork, NoiseMode

__all__ = ["Generator3", "Generator3Config", "filtered_lrelu", "upfirdn2d"]

ARCHITECTURE = "stylegan3"


@dataclass(frozen=True)
class Generator3Config:
    """A StyleGAN3 generator's shape (the official defaults are the ``T`` config at 1024 px)."""

    resolution: int = 1024
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    margin_size: int = 10
    output_scale: float = 0.25
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    radial_filters: bool = False
    conv_clamp: float | None = 256.0

    def __post_init__(self) -> None:
        r = self.resolution
        if not isinstance(r, int) or r < 16 or r > 1024 or r & (r - 1):
            raise ConfigError(f"StyleGAN3 resolution must be a power of two from 16 to 1024, got {r!r}")
        if self.num_layers <= self.num_critical or self.num_critical < 0:
            raise ConfigError("num_layers must exceed num_critical")
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "img_channels"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer")

    @property
    def architecture(self) -> str:
        return ARCHITECTURE

    @property
    def log2(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """One latent for the Fourier features, one per layer, one for ToRGB."""
        return self.num_layers + 2

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": ARCHITECTURE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Generator3Config:
        data = {k: v for k, v in data.items() if k != "architecture"}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown StyleGAN3 settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def layers(self) -> list[LayerSpec]:
        """Every synthesis layer's rates, sizes, widths, filters' lengths and padding."""
        n, r = self.num_layers, self.resolution
        last_cutoff = r / 2
        last_stopband = last_cutoff * self.last_stopband_rel
        e = np.minimum(np.arange(n + 1) / (n - self.num_critical), 1.0)
        cutoffs = self.first_cutoff * (last_cutoff / self.first_cutoff) ** e
        stopbands = self.first_stopband * (last_stopband / self.first_stopband) ** e
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, r))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + self.margin_size * 2
        sizes[-2:] = r
        widths = np.rint(np.minimum((self.channel_base / 2) / cutoffs, self.channel_max))
        widths[-1] = self.img_channels
        specs = []
        for i in range(n + 1):
            p = max(i - 1, 0)
            torgb = i == n
            critical = i >= n - self.num_critical
            in_rate, out_rate = int(rates[p]), int(rates[i])
            tmp_rate = max(in_rate, out_rate) * (1 if torgb else self.lrelu_upsampling)
            up, down = tmp_rate // in_rate, tmp_rate // out_rate
            up_taps = self.filter_size * up if up > 1 and not torgb else 1
            down_taps = self.filter_size * down if down > 1 and not torgb else 1
            kernel = 1 if torgb else self.conv_kernel
            in_size, out_size = int(sizes[p]), int(sizes[i])
            total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
            lo = (total + up) // 2  # the symmetric sample positions of the paper's appendix
            specs.append(
                LayerSpec(
                    index=i,
                    in_channels=int(widths[p]),
                    out_channels=int(widths[i]),
                    in_size=in_size,
                    out_size=out_size,
                    in_rate=in_rate,
                    out_rate=out_rate,
                    tmp_rate=tmp_rate,
                    in_cutoff=float(cutoffs[p]),
                    out_cutoff=float(cutoffs[i]),
                    in_half_width=float(half_widths[p]),
                    out_half_width=float(half_widths[i]),
                    up=up,
                    down=down,
                    up_taps=up_taps,
                    down_taps=down_taps,
                    down_radial=self.radial_filters and not critical,
                    kernel=kernel,
                    padding=(lo, total - lo, lo, total - lo),
                    torgb=torgb,
                )
            )
        return specs


@dataclass(frozen=True)
class LayerSpec:
    index: int
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_rate: int
    out_rate: int
    tmp_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    up: int
    down: int
    up_taps: int
    down_taps: int
    down_radial: bool
    kernel: int
    padding: tuple[int, int, int, int]
    torgb: bool

    @property
    def name(self) -> str:
        """The official layer name, ``L{index}_{size}_{channels}``."""
        return f"L{self.index}_{self.out_size}_{self.out_channels}"


def lowpass_filter(
    taps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """A Kaiser-windowed low-pass FIR (1-D, applied separably) or a radial jinc one (2-D); None for 1 tap."""
    if taps <= 1:
        return None
    import scipy.signal
    import scipy.special

    if not radial:
        return torch.as_tensor(scipy.signal.firwin(taps, cutoff, width=width, fs=fs), dtype=torch.float32)
    t = (np.arange(taps) - (taps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(t, t))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = scipy.special.j1(2 * cutoff * np.pi * r) / (np.pi * r)
    f[r == 0] = cutoff  # the limit of j1(2 pi c r) / (pi r) at r = 0
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(taps, width / (fs / 2)))
    window = np.kaiser(taps, beta)
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# --------------------------------------------------------------------------- resampling


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative: crop; ``x0, x1, y0, y1``), convolve with ``f``, decimate.

    ``f`` is 1-D (applied along x, then y, each with ``sqrt(gain)``) or 2-D (with
    ``gain``); None is the identity filter.
    """
    n, c, h, w = x.shape
    if up > 1:
        y = x.new_zeros(n, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x0, x1, y0, y1 = padding
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    if f is not None:
        f = f.to(x.dtype).flip(list(range(f.ndim)))  # a convolution, not a correlation
        if f.ndim == 1:
            g = f * math.sqrt(gain)
            x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
            x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        else:
            x = F.conv2d(x, (f * gain)[None, None].expand(c, 1, *f.shape), groups=c)
    elif gain != 1.0:
        x = x * gain
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def filtered_lrelu(
    x: torch.Tensor,
    bias: torch.Tensor,
    up_filter: torch.Tensor | None,
    down_filter: torch.Tensor | None,
    spec: LayerSpec,
    clamp: float | None,
) -> torch.Tensor:
    """Bias, upsample and low-pass, leaky ReLU (with gain and clamp) at the high rate, low-pass and decimate."""
    x = x + bias.to(x.dtype)[None, :, None, None]
    x = upfirdn2d(x, up_filter, up=spec.up, padding=spec.padding, gain=spec.up**2)
    if not spec.torgb:  # ToRGB is linear
        x = F.leaky_relu(x, 0.2) * math.sqrt(2.0)
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return upfirdn2d(x, down_filter, down=spec.down)


# --------------------------------------------------------------------------- layers


class FourierInput(nn.Module):
    """Fourier features whose phase and orientation the first latent turns and shifts."""

    def __init__(self, w_dim: int, channels: int, size: int, rate: float, bandwidth: float) -> None:
        super().__init__()
        self.channels, self.size, self.rate, self.bandwidth = channels, size, rate, bandwidth
        freqs = torch.randn(channels, 2)
        radii = freqs.square().sum(1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = EqualLinear(w_dim, 4)
        with torch.no_grad():  # starts as the identity transform
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # (cos, sin, tx, ty), the rotation normalised
        rot = torch.eye(3, device=w.device, dtype=w.dtype).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=w.device, dtype=w.dtype).repeat(n, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rot @ shift @ self.transform[None]
        phases = self.phases[None] + (self.freqs[None] @ m[:, :2, 2:]).squeeze(2)
        freqs = self.freqs[None] @ m[:, :2, :2]
        # frequencies a user transform pushed beyond the band fade out
        amplitude = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.rate / 2 - self.bandwidth)).clamp(0, 1)
        # sample positions: pixel centres in units of the sampling rate's period
        s = self.size
        coords = (torch.arange(s, device=w.device, dtype=w.dtype) + 0.5 - s / 2) / self.rate
        gx, gy = coords[None, :].expand(s, s), coords[:, None].expand(s, s)
        grid = torch.stack([gx, gy], -1)  # (s, s, 2): x, y
        x = torch.einsum("hwk,nck->nhwc", grid, freqs) + phases[:, None, None, :]
        x = torch.sin(x * (2 * math.pi)) * amplitude[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).T
        return x.permute(0, 3, 1, 2)


class Synthesis3Layer(nn.Module):
    """Modulated convolution and filtered leaky ReLU (see the module)."""

    def __init__(self, spec: LayerSpec, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.spec, self.conv_clamp = spec, conv_clamp
        self.affine = EqualLinear(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, spec.kernel, spec.kernel))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        up = lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_rate)
        down = lowpass_filter(
            spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, spec.tmp_rate, radial=spec.down_radial
        )
        self.register_buffer("up_filter", up)
        self.register_buffer("down_filter", down)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        n = x.shape[0]
        styles = self.affine(w)
        weight = self.weight
        if spec.torgb:
            styles = styles / math.sqrt(spec.in_channels * spec.kernel**2)
        else:  # pre-normalise, modulate, demodulate
            weight = weight * weight.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
        wgt = weight[None] * styles[:, None, :, None, None]
        if not spec.torgb:
            wgt = wgt * (wgt.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
        wgt = wgt * self.magnitude_ema.rsqrt()  # input gain
        out = F.conv2d(
            x.reshape(1, n * spec.in_channels, *x.shape[2:]),
            wgt.reshape(n * spec.out_channels, spec.in_channels, spec.kernel, spec.kernel),
            padding=spec.kernel - 1,
            groups=n,
        )
        out = out.reshape(n, spec.out_channels, *out.shape[2:])
        return filtered_lrelu(out, self.bias, self.up_filter, self.down_filter, spec, self.conv_clamp)


class Synthesis3Network(nn.Module):
    def __init__(self, cfg: Generator3Config) -> None:
        super().__init__()
        self.cfg = cfg
        specs = cfg.layers()
        first = specs[0]
        self.input = FourierInput(cfg.w_dim, first.in_channels, first.in_size, first.in_rate, first.in_cutoff)
        self.layers = nn.ModuleDict({s.name: Synthesis3Layer(s, cfg.w_dim, cfg.conv_clamp) for s in specs})

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const") -> torch.Tensor:
        """``(N, num_ws, w_dim) -> (N, 3, R, R)``; ``noise_mode`` is accepted and ignored (no noise inputs)."""
        ws = ws.float().unbind(1)
        x = self.input(ws[0])
        for layer, w in zip(self.layers.values(), ws[1:], strict=True):
            x = layer(x, w)
        return x * self.cfg.output_scale


class Generator3(nn.Module):
    """A StyleGAN3 generator: StyleGAN2's mapping network, the alias-free synthesis network."""

    def __init__(self, cfg: Generator3Config | None = None) -> None:
        super().__init__()
        self.cfg = cfg or Generator3Config()
        self.mapping = MappingNetwork(self.cfg)  # type: ignore[arg-type]
        self.synthesis = Synthesis3Network(self.cfg)

    def forward(
        self,
        z: torch.Tensor,
        *,
        truncation: float = 1.0,
        noise_mode: NoiseMode = "const",
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation=truncation, update_w_avg=update_w_avg), noise_mode)

    def resolution_of(self, name: str) -> int | None:
        """The power-of-two resolution a tensor works at (fusion's schedule key); None for the mapping network."""
        parts = name.split(".")
        if parts[0] != "synthesis":
            return None
        if parts[1] == "input":
            return self.synthesis.layers[next(iter(self.synthesis.layers))].spec.in_rate
        spec = self.synthesis.layers[parts[2]].spec
        return min(spec.out_rate, self.cfg.resolution)

    # ``n`` images as ``(n, R, R, 3)`` uint8 from ``z`` drawn with ``seed``: the same as StyleGAN2's
    sample = Generator.sample
