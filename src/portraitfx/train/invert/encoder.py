"""A trainable StyleGAN encoder in the e4e spirit: one forward pass from an image to W+ latents.

Projection (:mod:`portraitfx.train.invert.project`) is faithful but takes hundreds of
generator passes per image. An encoder learns the inverse once and then inverts in a
single pass; its latents also start a short projection well.

Design (after "Designing an Encoder for StyleGAN Image Manipulation", Tov et al. 2021,
written for portraitfx):

* a residual CNN that halves the image down to 4 x 4, with **three taps**: the 4 x 4
  features drive the coarse synthesis layers (4-8 px: pose, face shape), the 8 x 8
  features the middle ones (16-32 px: features), the 16 x 16 features the fine ones
  (colour, texture), as pSp's feature pyramid does;
* the output is **one latent plus offsets**: ``ws[i] = w_avg + w + delta_i`` with
  ``delta_0 = 0``. A **delta regulariser** (``|delta_i|^2``) keeps the latents close to a
  single ``w`` (W rather than free W+), where the generator's latent space is well
  behaved and edits work; the offsets are switched on **progressively**, from the
  coarse layers up, as training goes on;
* losses: pixels plus a feature distance (the built-in pyramid or VGG16 from a file),
  and, on images the generator drew itself, the distance to the true latents (free
  supervision e4e did not use); real photos can be mixed in (reconstruction only).

An encoder file is safetensors: ``E.*`` weights, the network's shape and the
generator's shape as JSON, and, when saved by the trainer, its optimiser state and
step so a run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError, ModelError
from portraitfx.train.checkpoints import load_optimiser, optimiser_tensors, read_metadata
from portraitfx.train.stylegan.networks import Generator, GeneratorConfig

__all__ = [
    "Encoder",
    "EncoderConfig",
    "EncoderOptions",
    "EncoderTrainer",
    "encode",
    "load_encoder",
    "save_encoder",
]

KIND = "stylegan2-encoder"


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder's shape: the generator it serves (resolution, ``num_ws``, ``w_dim``) and its widths."""

    resolution: int = 64
    num_ws: int = 10
    w_dim: int = 64
    channel_base: int = 2048
    channel_max: int = 128

    def __post_init__(self) -> None:
        log = math.log2(self.resolution) if self.resolution > 0 else 0.5
        if log != int(log) or not 8 <= self.resolution <= 1024:
            raise ConfigError(f"encoder resolution must be a power of two, 8-1024, got {self.resolution}")
        if self.num_ws < 1 or self.w_dim < 1:
            raise ConfigError("num_ws and w_dim must be positive")

    @classmethod
    def for_generator(cls, cfg: GeneratorConfig, **widths: int) -> EncoderConfig:
        return cls(resolution=cfg.resolution, num_ws=cfg.num_ws, w_dim=cfg.w_dim, **widths)

    def channels(self, res: int) -> int:
        return int(min(self.channel_base // res, self.channel_max))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in data.items() if k in known})


def layer_tap(index: int) -> int:
    """Which feature tap (4, 8 or 16 px) drives synthesis latent ``index`` (its layer draws at ``4 * 2**(index // 2)`` px)."""
    res = 4 * 2 ** (index // 2)
    return 4 if res <= 8 else 8 if res <= 32 else 16


class _Down(nn.Module):
    """Residual block: two 3x3 convolutions, the second with stride 2, and a strided 1x1 skip."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(cin, cin, 3, padding=1)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2)
        y = F.leaky_relu(self.conv1(y), 0.2)
        return (y + self.skip(x)) * math.sqrt(0.5)


class Encoder(nn.Module):
    """Image ``(N, 3, R, R)`` in [-1, 1] -> latents ``(N, num_ws, w_dim)`` for a generator's synthesis.

    Example:
        >>> from portraitfx.train.stylegan import Generator, GeneratorConfig
        >>> G = Generator(GeneratorConfig(resolution=32, z_dim=32, w_dim=32, channel_base=512, channel_max=32))
        >>> E = Encoder(EncoderConfig.for_generator(G.cfg, channel_base=512, channel_max=32))
        >>> E(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 8, 32])
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        r = cfg.resolution
        self.stem = nn.Conv2d(3, cfg.channels(r), 3, padding=1)
        self.blocks = nn.ModuleDict(
            {f"b{res}": _Down(cfg.channels(res), cfg.channels(res // 2)) for res in _halvings(r)}
        )
        self.taps = sorted({min(layer_tap(i), r) for i in range(cfg.num_ws)})
        # each tap pooled to 4 x 4 (the coarse one already is), flattened, mapped to w_dim
        self.heads = nn.ModuleDict()
        self.heads["w"] = nn.Linear(cfg.channels(4) * 16, cfg.w_dim)
        for i in range(1, cfg.num_ws):
            tap = min(layer_tap(i), r)
            self.heads[f"d{i}"] = nn.Linear(cfg.channels(tap) * 16, cfg.w_dim)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        # how many offsets are on (progressive training); all of them once trained
        self.register_buffer("active", torch.tensor(cfg.num_ws - 1, dtype=torch.long))

    def features(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """The feature maps at 16, 8 and 4 px (those the image is large enough for)."""
        x = F.leaky_relu(self.stem(image), 0.2)
        out = {x.shape[-1]: x}
        for block in self.blocks.values():
            x = block(x)
            out[x.shape[-1]] = x
        return out

    def forward(self, image: torch.Tensor, *, with_deltas: bool = False) -> Any:
        """Latents ``w_avg + w + delta_i``; with ``with_deltas`` also ``(w, deltas)`` for the regulariser."""
        feats = self.features(image)
        n = image.shape[0]

        def pooled(res: int) -> torch.Tensor:
            return F.adaptive_avg_pool2d(feats[res], 4).flatten(1)

        w = self.heads["w"](pooled(4))
        active = int(self.active)
        deltas = [w.new_zeros(n, self.cfg.w_dim)]
        cache: dict[int, torch.Tensor] = {}
        for i in range(1, self.cfg.num_ws):
            if i > active:
                deltas.append(w.new_zeros(n, self.cfg.w_dim))
                continue
            tap = min(layer_tap(i), self.cfg.resolution)
            if tap not in cache:
                cache[tap] = pooled(tap)
            deltas.append(self.heads[f"d{i}"](cache[tap]))
        d = torch.stack(deltas, 1)
        ws = self.w_avg + w[:, None] + d
        return (ws, w, d) if with_deltas else ws


def _halvings(resolution: int) -> list[int]:
    """Resolutions at which a block halves the features: R, R/2, ..., 8 (down to 4 px)."""
    out, res = [], resolution
    while res > 4:
        out.append(res)
        res //= 2
    return out


# --------------------------------------------------------------------------- files


def save_encoder(
    path: str | os.PathLike[str],
    encoder: Encoder,
    generator_cfg: GeneratorConfig,
    *,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``encoder`` (and, for a training run, its optimiser state) to safetensors, atomically."""
    from portraitfx.models.load import save_safetensors

    tensors = {f"E.{k}": v.detach() for k, v in encoder.state_dict().items()}
    tensors.update(extra_tensors or {})
    meta = {
        "portraitfx": KIND,
        "config": json.dumps(encoder.cfg.to_dict(), sort_keys=True),
        "generator": json.dumps(generator_cfg.to_dict(), sort_keys=True),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    return save_safetensors(path, tensors, meta)


def _read(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    from portraitfx.models.load import load_safetensors

    meta = read_metadata(path, "a safetensors StyleGAN encoder")
    if meta.get("portraitfx") != KIND:
        raise ModelError(f"'{path}' is not a portraitfx StyleGAN encoder (no '{KIND}' header)")
    return meta, load_safetensors(path)


def load_encoder(
    path: str | os.PathLike[str], generator: Generator | None = None
) -> tuple[Encoder, GeneratorConfig]:
    """An encoder saved by :func:`save_encoder` and the generator shape it was trained for.

    With ``generator``: refuse an encoder trained for a generator of another shape.
    """
    meta, tensors = _read(path)
    try:
        cfg = EncoderConfig.from_dict(json.loads(meta["config"]))
        gen_cfg = GeneratorConfig.from_dict(json.loads(meta["generator"]))
    except (KeyError, ValueError, TypeError) as err:
        raise ModelError(f"'{path}' has a damaged encoder header: {err}") from err
    if generator is not None and generator.cfg != gen_cfg:
        raise ModelError(
            f"'{path}' was trained for a {gen_cfg.resolution}px generator of another shape than this one"
        )
    encoder = Encoder(cfg)
    try:
        encoder.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("E.")})
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelError(f"'{path}' does not fit its own encoder config: {first}") from err
    return encoder.eval(), gen_cfg


# --------------------------------------------------------------------------- training


@dataclass
class EncoderOptions:
    """How to train an encoder (the defaults suit a small generator on a CPU)."""

    batch: int = 8
    lr: float = 1e-3
    pixel_weight: float = 1.0
    feature_weight: float = 1.0
    latent_weight: float = 1.0
    delta_weight: float = 2e-3
    progressive_every: int = 200
    real_fraction: float = 0.5
    truncation: float = 1.0
    channel_base: int = 2048
    channel_max: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ConfigError("batch must be >= 1")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ConfigError("real_fraction must be within 0..1")
        if self.progressive_every < 0:
            raise ConfigError("progressive_every must be >= 0 (0: every offset from the start)")


class EncoderTrainer:
    """Train an :class:`Encoder` for a fixed generator.

    Args:
        generator: the generator to invert (kept fixed).
        options: :class:`EncoderOptions`.
        reals: optional ``N x 3 x R x R`` photos in [-1, 1] mixed into each batch
            (``options.real_fraction`` of it) with the image losses only.
        features: feature maps for the perceptual loss (default: the built-in pyramid).
        resume: an encoder file written by :meth:`save` (continues its step and optimiser).
    """

    def __init__(
        self,
        generator: Generator,
        options: EncoderOptions | None = None,
        *,
        reals: torch.Tensor | None = None,
        features: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> None:
        from portraitfx.train.invert.features import pyramid_features

        self.options = o = options or EncoderOptions()
        self.G = generator.eval().requires_grad_(False)
        res = generator.cfg.resolution
        if reals is not None and (reals.ndim != 4 or tuple(reals.shape[1:]) != (3, res, res)):
            raise ConfigError(f"real images must be N x 3 x {res} x {res}, got {tuple(reals.shape)}")
        self.reals = reals if reals is not None and len(reals) else None
        self.features = features or pyramid_features
        self.step_count = 0
        self._fine_tune = False
        self.history: list[dict[str, float]] = []
        torch.manual_seed(o.seed)
        self.rng = torch.Generator().manual_seed(o.seed)
        cfg = EncoderConfig.for_generator(
            generator.cfg, channel_base=o.channel_base, channel_max=o.channel_max
        )
        self.E = Encoder(cfg)
        with torch.no_grad():
            z = torch.randn(4096, generator.cfg.z_dim, generator=torch.Generator().manual_seed(o.seed + 1))
            self.E.w_avg.copy_(generator.mapping(z)[:, 0].mean(0))
        self.opt = torch.optim.Adam(self.E.parameters(), lr=o.lr, betas=(0.9, 0.99))
        if resume is not None:
            self._resume(resume)
        self._set_active()

    def _resume(self, path: str | os.PathLike[str]) -> None:
        meta, tensors = _read(path)
        if json.loads(meta.get("generator", "{}")) != self.G.cfg.to_dict():
            raise ModelError(f"'{path}' was trained for a generator of another shape")
        if json.loads(meta.get("config", "{}")) != self.E.cfg.to_dict():
            raise ModelError(f"'{path}' is an encoder of another shape than these options make")
        self.E.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("E.")})
        if "rng" not in tensors:
            self._fine_tune = True  # a bare encoder: fine-tune it from step 0, with the offsets it has
            return
        load_optimiser("opt", self.opt, tensors)
        extra = json.loads(meta.get("extra", "{}"))
        self.step_count = int(extra.get("step", 0))
        self.history = list(extra.get("history", []))
        self.rng.set_state(tensors["rng"])

    def _set_active(self) -> None:
        every = self.options.progressive_every
        total = self.E.cfg.num_ws - 1
        if not self._fine_tune:
            self.E.active.fill_(total if every == 0 else min(total, self.step_count // every))

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """Images, the true latents of the generated ones, and how many are generated."""
        o = self.options
        n_real = int(round(o.batch * o.real_fraction)) if self.reals is not None else 0
        n_fake = o.batch - n_real
        parts = []
        ws = None
        if n_fake:
            z = torch.randn(n_fake, self.G.cfg.z_dim, generator=self.rng)
            noise_seed = int(torch.randint(0, 2**62, (1,), generator=self.rng))
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(noise_seed)  # the generator's noise inputs, from the run's generator too
                ws = self.G.mapping(z, truncation=o.truncation)
                parts.append(self.G.synthesis(ws, noise_mode="random"))
        if n_real:
            assert self.reals is not None
            idx = torch.randint(0, len(self.reals), (n_real,), generator=self.rng)
            x = self.reals[idx]
            flip = torch.rand(n_real, generator=self.rng) < 0.5
            parts.append(torch.where(flip[:, None, None, None], x.flip(3), x))
        return torch.cat(parts), ws, n_fake

    def step(self) -> dict[str, float]:
        """One batch; returns the losses."""
        o = self.options
        self._set_active()
        images, ws_true, n_fake = self._batch()
        self.E.train()
        ws, _w, deltas = self.E(images, with_deltas=True)
        recon = self.G.synthesis(ws, noise_mode="const")
        loss_pix = (recon - images).square().mean()
        loss_feat = sum(
            (
                (a - b).square().mean()
                for a, b in zip(self.features(recon), self.features(images), strict=True)
            ),
            start=images.new_zeros([]),
        )
        loss_delta = deltas.square().sum(2).mean()
        loss = o.pixel_weight * loss_pix + o.feature_weight * loss_feat + o.delta_weight * loss_delta
        logs = {
            k: float(v.detach())
            for k, v in (("pixel", loss_pix), ("feature", loss_feat), ("delta", loss_delta))
        }
        if ws_true is not None and o.latent_weight > 0:
            loss_lat = (ws[:n_fake] - ws_true).square().sum(2).mean() / self.G.cfg.w_dim
            loss = loss + o.latent_weight * loss_lat
            logs["latent"] = float(loss_lat.detach())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        return logs

    def train(
        self,
        steps: int,
        output: str | os.PathLike[str] | None = None,
        *,
        snapshot_every: int = 500,
        progress: bool = False,
    ) -> list[dict[str, float]]:
        """Train until ``steps`` steps in total (a resumed run counts on), saving every ``snapshot_every``."""
        from tqdm import tqdm

        totals: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()

        def snapshot() -> None:
            line = {"step": self.step_count, "seconds": round(time.perf_counter() - t0, 2)}
            line.update({k: round(v / max(count, 1), 6) for k, v in totals.items()})
            self.history.append(line)
            if output is not None:
                self.save(output)

        with tqdm(
            total=steps, initial=min(self.step_count, steps), unit="step", disable=not progress, leave=False
        ) as bar:
            while self.step_count < steps:
                logs = self.step()
                for k, v in logs.items():
                    totals[k] = totals.get(k, 0.0) + v
                count += 1
                bar.update(1)
                bar.set_postfix(pixel=f"{logs['pixel']:.4f}", delta=f"{logs['delta']:.3f}")
                if self.step_count % snapshot_every == 0:
                    snapshot()
                    totals, count = {}, 0
        if count:
            snapshot()
        self._set_active()
        self.E.eval()
        return self.history

    def save(self, path: str | os.PathLike[str]) -> Path:
        """The encoder with its optimiser, random state and step (resumable)."""
        extra: dict[str, torch.Tensor] = {"rng": self.rng.get_state()}
        extra.update(optimiser_tensors("opt", self.opt))
        return save_encoder(
            path,
            self.E,
            self.G.cfg,
            extra_tensors=extra,
            extra={
                "step": self.step_count,
                "options": asdict(self.options),
                "history": self.history[-200:],
            },
        )


@torch.no_grad()
def encode(encoder: Encoder, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Latents for ``images`` (``N x 3 x R x R`` in [-1, 1]), in batches."""
    encoder.eval()
    out = [encoder(images[i : i + batch]) for i in range(0, len(images), batch)]
    return torch.cat(out) if out else images.new_zeros(0, encoder.cfg.num_ws, encoder.cfg.w_dim)
