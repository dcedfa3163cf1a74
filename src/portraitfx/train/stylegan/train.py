"""StyleGAN2-ADA training, written for portraitfx: losses, lazy regularisation, EMA, ADA, resumable runs.

One training step (as in the StyleGAN2 and ADA papers):

1. **G**: non-saturating logistic loss ``softplus(-D(aug(G(z))))``;
2. **G, every ``pl_every`` steps**: path-length regularisation, ``(|J_w^T y| - a)^2``
   with ``y`` random image-space noise and ``a`` the running mean of the lengths;
3. **D**: ``softplus(D(aug(fake))) + softplus(-D(aug(real)))``;
4. **D, every ``r1_every`` steps**: R1, ``gamma / 2 * |grad_x D(aug(x))|^2`` on real images;
5. the EMA generator (the one to sample with) follows G; ADA adjusts its probability.

Lazy regularisation scales the terms by their interval and Adam's learning rate and
betas by ``every / (every + 1)``. A run is a folder: ``checkpoint.safetensors``
(everything needed to resume exactly: both networks, the EMA copy, the optimisers,
the random state), ``generator.safetensors`` (the EMA generator, for sampling and
fusion), sample sheets and ``log.jsonl``.

Transfer learning (``resume`` a generator or a run): start from a base model's
weights; ``freeze_g`` keeps that many generator resolutions from 4 px up fixed, and
``freeze_d`` that many discriminator resolutions from the input down (FreezeD).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from portraitfx.errors import ConfigError, InputError, ModelError
from portraitfx.train.stylegan.augment import AdaptiveAugment, augment
from portraitfx.train.stylegan.networks import Discriminator, Generator, GeneratorConfig, grid

__all__ = ["TrainOptions", "Trainer", "load_image_folder", "path_length", "r1_penalty"]

KIND = "stylegan2-run"


@dataclass
class TrainOptions:
    """A training run's settings (the network's shape, then the optimisation).

    ``r1_gamma`` and ``ema_kimg`` default to the ADA paper's heuristics for the
    resolution and batch. ``augment`` is ``"ada"``, ``"off"`` or a fixed probability.
    """

    resolution: int = 64
    z_dim: int = 64
    mapping_layers: int = 4
    channel_base: int = 2048
    channel_max: int = 128
    batch: int = 8
    lr: float = 0.0025
    r1_gamma: float | None = None
    r1_every: int = 16
    pl_weight: float = 2.0
    pl_every: int = 4
    pl_decay: float = 0.01
    ema_kimg: float | None = None
    augment: str = "ada"
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 100.0
    mirror: bool = True
    freeze_g: int = 0
    freeze_d: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch < 2:
            raise ConfigError("batch must be at least 2 (the discriminator compares samples)")
        if self.augment not in ("ada", "off"):
            try:
                p = float(self.augment)
            except ValueError:
                raise ConfigError(
                    f"augment must be 'ada', 'off' or a probability, got {self.augment!r}"
                ) from None
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"a fixed augmentation probability must be within 0..1, got {p}")
        for name in ("r1_every", "pl_every", "ada_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        self.generator_config()  # validates the shape

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(
            resolution=self.resolution,
            z_dim=self.z_dim,
            w_dim=self.z_dim,
            mapping_layers=self.mapping_layers,
            channel_base=self.channel_base,
            channel_max=self.channel_max,
        )

    @property
    def gamma(self) -> float:
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution**2 / self.batch

    @property
    def ema_beta(self) -> float:
        kimg = self.ema_kimg if self.ema_kimg is not None else self.batch * 10 / 32
        return 0.5 ** (self.batch / max(kimg * 1000, 1e-8))


# --------------------------------------------------------------------------- losses


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """Per-sample ``|grad_x D(x)|^2`` on real images (differentiable, for the D update)."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grads.square().sum(dim=tuple(range(1, grads.ndim)))


def path_length(
    synthesis: Callable[[torch.Tensor], torch.Tensor], ws: torch.Tensor, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample ``|J_w^T y|`` for image-space noise ``y`` scaled by ``1 / sqrt(H W)``."""
    ws = ws.detach().requires_grad_(True) if not ws.requires_grad else ws
    images = synthesis(ws)
    if noise is None:
        noise = torch.randn_like(images)
    noise = noise / math.sqrt(images.shape[2] * images.shape[3])
    (grads,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grads.square().sum(dim=2).mean(dim=1).sqrt()


# --------------------------------------------------------------------------- data


def square(image: np.ndarray, resolution: int) -> np.ndarray:
    """The centre square of ``image``, resized to ``resolution`` px (area average)."""
    import cv2

    h, w = image.shape[:2]
    s = min(h, w)
    crop = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return cv2.resize(crop, (resolution, resolution), interpolation=cv2.INTER_AREA)


def load_image_folder(
    folder: str | os.PathLike[str], resolution: int, limit: int | None = None
) -> torch.Tensor:
    """Every image in ``folder`` (not recursive), centre-cropped square and resized, as ``N x 3 x R x R`` in [-1, 1]."""
    from portraitfx.io.images import load_image

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"training data '{root}' is not a folder")
    names = sorted(
        p for p in root.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    )
    if limit is not None:
        names = names[:limit]
    out = [square(load_image(p), resolution) for p in names]
    if len(out) < 2:
        raise InputError(f"'{root}' holds {len(out)} usable images; training needs at least 2")
    arr = np.stack(out).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- trainer


@dataclass
class _State:
    step: int = 0
    images: int = 0
    pl_mean: float = 0.0
    p: float = 0.0
    rt: float = 0.0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """A StyleGAN2-ADA training run over an in-memory image set.

    Args:
        data: ``N x 3 x R x R`` float in [-1, 1] (see :func:`load_image_folder`).
        options: :class:`TrainOptions` (its resolution must match ``data``).
        resume: a generator file (transfer learning: G and its EMA copy start from it)
            or a run's ``checkpoint.safetensors`` (continue exactly where it stopped).
    """

    def __init__(
        self, data: torch.Tensor, options: TrainOptions, resume: str | os.PathLike[str] | None = None
    ) -> None:
        if (
            data.ndim != 4
            or data.shape[1] != 3
            or data.shape[2] != options.resolution
            or data.shape[3] != options.resolution
        ):
            raise ConfigError(
                f"data must be N x 3 x {options.resolution} x {options.resolution}, got {tuple(data.shape)}"
            )
        self.options = options
        self.data = data
        self.state = _State()
        torch.manual_seed(options.seed)
        cfg = options.generator_config()
        self.G = Generator(cfg)
        self.D = Discriminator(cfg)
        self.G_ema = Generator(cfg).eval().requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.ada = AdaptiveAugment(options.ada_target, options.ada_kimg)
        if options.augment not in ("ada", "off"):
            self.ada.p = float(options.augment)
        self.rng = torch.Generator().manual_seed(options.seed)
        tensors = self._resume(resume) if resume is not None else None
        self._freeze()
        g_ratio = options.pl_every / (options.pl_every + 1)
        d_ratio = options.r1_every / (options.r1_every + 1)
        self.opt_G = torch.optim.Adam(
            [p for p in self.G.parameters() if p.requires_grad],
            lr=options.lr * g_ratio,
            betas=(0.0, 0.99**g_ratio),
        )
        self.opt_D = torch.optim.Adam(
            [p for p in self.D.parameters() if p.requires_grad],
            lr=options.lr * d_ratio,
            betas=(0.0, 0.99**d_ratio),
        )
        if tensors is not None:  # a run's checkpoint: the optimisers continue too
            self._load_optimisers(tensors)

    # -- setup ------------------------------------------------------------------------
    def _resume(self, path: str | os.PathLike[str]) -> dict[str, torch.Tensor] | None:
        """Load a generator (returns None) or a run's checkpoint (returns its tensors, for the optimisers)."""
        from portraitfx.models.load import load_safetensors
        from portraitfx.train.stylegan.checkpoint import KIND as GENERATOR_KIND
        from portraitfx.train.stylegan.checkpoint import read_config

        tensors = load_safetensors(path)
        meta = _run_metadata(path)
        kind = meta.get("portraitfx")
        if kind == GENERATOR_KIND:
            cfg, _ = read_config(path)
            if cfg != self.G.cfg:
                raise ModelError(
                    f"'{path}' is a {cfg.resolution}px generator of another shape than this run's: {cfg}"
                )
            state = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
            self.G.load_state_dict(state)
            self.G_ema.load_state_dict(state)
            return None
        if kind != KIND:
            raise ModelError(f"'{path}' is neither a StyleGAN generator nor a training checkpoint")
        saved = options_from_dict(json.loads(meta["options"]))
        if saved.generator_config() != self.G.cfg:
            raise ModelError(f"'{path}' was trained with another network shape: {saved.generator_config()}")
        for prefix, net in (("G.", self.G), ("G_ema.", self.G_ema), ("D.", self.D)):
            net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        raw = json.loads(meta["state"])
        self.state = _State(**raw)
        self.ada.p = self.state.p
        self.rng.set_state(tensors["rng.cpu"])
        torch.set_rng_state(tensors["rng.torch"])
        return tensors

    def _load_optimisers(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            sd = opt.state_dict()
            params = sd["param_groups"][0]["params"]
            state = {}
            for idx in params:
                key = f"{name}.{idx}."
                if f"{key}exp_avg" in tensors:
                    state[idx] = {
                        "step": tensors[f"{key}step"].clone(),
                        "exp_avg": tensors[f"{key}exp_avg"].clone(),
                        "exp_avg_sq": tensors[f"{key}exp_avg_sq"].clone(),
                    }
            sd["state"] = state
            opt.load_state_dict(sd)

    def _freeze(self) -> None:
        o = self.options
        if o.freeze_g > 0:
            lowest = {2**i for i in range(2, 2 + o.freeze_g)}
            for name, p in self.G.named_parameters():
                res = self.G.resolution_of(name)
                if res is not None and res in lowest:
                    p.requires_grad_(False)
        if o.freeze_d > 0:
            top = self.options.resolution
            frozen = {top // 2**i for i in range(o.freeze_d)}
            for name, p in self.D.named_parameters():
                if self.D.resolution_of(name) in frozen:
                    p.requires_grad_(False)

    # -- one step ---------------------------------------------------------------------
    def _reals(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.options.batch,), generator=self.rng)
        x = self.data[idx]
        if self.options.mirror:
            flip = torch.rand(self.options.batch, generator=self.rng) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self.ada.p, self.rng) if self.options.augment != "off" else x

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.options.z_dim, generator=self.rng)

    def step(self) -> dict[str, float]:
        """One minibatch: G, (G reg), D, (D reg), EMA, ADA. Returns the losses."""
        o, s = self.options, self.state
        t0 = time.perf_counter()
        logs: dict[str, float] = {}
        # G main
        self.G.requires_grad_(True)
        self._freeze()
        self.D.requires_grad_(False)
        fake = self.G(self._z(o.batch), update_w_avg=True)
        loss_g = F.softplus(-self.D(self._aug(fake))).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        logs["loss_g"] = float(loss_g.detach())
        if o.pl_weight > 0 and s.step % o.pl_every == 0:
            n = max(o.batch // 2, 1)
            ws = self.G.mapping(self._z(n))
            lengths = path_length(lambda w: self.G.synthesis(w), ws)
            mean = s.pl_mean + o.pl_decay * (float(lengths.detach().mean()) - s.pl_mean)
            s.pl_mean = mean
            penalty = (lengths - mean).square().mean() * o.pl_weight * o.pl_every
            penalty.backward()
            logs["pl"] = float(lengths.detach().mean())
        self.opt_G.step()
        # D main
        self.D.requires_grad_(True)
        self._freeze()
        reals = self._reals()
        with torch.no_grad():
            fake = self.G(self._z(o.batch))
        real_logits = self.D(self._aug(reals))
        fake_logits = self.D(self._aug(fake))
        loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.ada.observe(real_logits)
        logs["loss_d"] = float(loss_d.detach())
        if o.gamma > 0 and s.step % o.r1_every == 0:
            r1 = r1_penalty(lambda x: self.D(self._aug(x)), reals)
            (r1.mean() * (o.gamma / 2) * o.r1_every).backward()
            logs["r1"] = float(r1.detach().mean())
        self.opt_D.step()
        # EMA generator
        with torch.no_grad():
            beta = o.ema_beta
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                pe.copy_(p.detach().lerp(pe, beta))
            for be, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                be.copy_(b)
        s.step += 1
        s.images += o.batch
        if o.augment == "ada" and s.step % o.ada_interval == 0:
            s.rt = self.ada.update(o.batch * o.ada_interval)
        s.p = self.ada.p
        s.seconds += time.perf_counter() - t0
        logs.update(p=s.p, rt=s.rt)
        return logs

    # -- runs -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Everything needed to continue exactly (atomic)."""
        from portraitfx.models.load import save_safetensors

        tensors: dict[str, torch.Tensor] = {}
        for prefix, net in (("G.", self.G), ("G_ema.", self.G_ema), ("D.", self.D)):
            tensors.update({prefix + k: v.detach() for k, v in net.state_dict().items()})
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            for idx, st in opt.state_dict()["state"].items():
                for key in ("step", "exp_avg", "exp_avg_sq"):
                    value = st[key]
                    tensors[f"{name}.{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        tensors["rng.cpu"] = self.rng.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "portraitfx": KIND,
            "options": json.dumps(asdict(self.options), sort_keys=True),
            "state": json.dumps(asdict(self.state), sort_keys=True),
            "config": json.dumps(self.G.cfg.to_dict(), sort_keys=True),
        }
        return save_safetensors(path, tensors, meta)

    def train(
        self,
        kimg: float,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        snapshot_kimg: float = 1.0,
        progress: bool = False,
        samples: int = 16,
    ) -> _State:
        """Train until ``kimg`` thousand images have been shown in total (a resumed run counts on).

        With ``run_dir``: a checkpoint, the EMA generator, a sample sheet and a log line
        every ``snapshot_kimg``, and at the end.
        """
        from tqdm import tqdm

        from portraitfx.train.stylegan.checkpoint import save_generator

        target = int(kimg * 1000)
        folder = Path(run_dir) if run_dir is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        next_snap = (self.state.images // max(int(snapshot_kimg * 1000), 1) + 1) * int(snapshot_kimg * 1000)
        bar = tqdm(
            total=target,
            initial=min(self.state.images, target),
            unit="img",
            disable=not progress,
            leave=False,
        )
        totals: dict[str, float] = {}
        count = 0

        def snapshot() -> None:
            if folder is None:
                return
            line = {"kimg": self.state.images / 1000, "seconds": round(self.state.seconds, 2)}
            line.update({k: round(v / max(count, 1), 5) for k, v in totals.items()})
            self.state.history.append(line)
            self.save(folder / "checkpoint.safetensors")
            save_generator(folder / "generator.safetensors", self.G_ema, extra={"kimg": line["kimg"]})
            from portraitfx.io.images import save_image

            imgs = self.G_ema.sample(samples, seed=self.options.seed, noise_mode="const")
            save_image(folder / f"samples-{self.state.images / 1000:010.3f}kimg.png", grid(imgs))
            with open(folder / "log.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")

        with bar:
            while self.state.images < target:
                logs = self.step()
                for k, v in logs.items():
                    totals[k] = totals.get(k, 0.0) + v
                count += 1
                bar.update(self.options.batch)
                bar.set_postfix(
                    loss_g=f"{logs['loss_g']:.3f}", loss_d=f"{logs['loss_d']:.3f}", p=f"{self.ada.p:.2f}"
                )
                if self.state.images >= next_snap:
                    snapshot()
                    totals, count = {}, 0
                    next_snap += int(snapshot_kimg * 1000)
        if count:
            snapshot()
        return self.state


def options_from_dict(data: dict[str, Any]) -> TrainOptions:
    known = {f.name for f in fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in data.items() if k in known})


def _run_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata() or {}


def read_run_options(path: str | os.PathLike[str]) -> TrainOptions:
    """The :class:`TrainOptions` a run's checkpoint was trained with."""
    meta = _run_metadata(path)
    if meta.get("portraitfx") != KIND or "options" not in meta:
        raise ModelError(f"'{path}' is not a portraitfx StyleGAN training checkpoint")
    return options_from_dict(json.loads(meta["options"]))
