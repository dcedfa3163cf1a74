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

**Devices and precision.** ``device`` is any torch device (CUDA when present by
default); ``precision="bf16"`` or ``"fp16"`` runs the main G and D passes under
autocast (fp16 with a gradient scaler), the regularisers stay in fp32.

**Several processes** (``torchrun --nproc_per_node=N -m portraitfx stylegan train``):
``options.batch`` is the whole batch, split by stride over the processes (process
``r`` takes samples ``r, r + N, ...``). Every process draws every sample's random
numbers from generators seeded alike and keeps its share, gradients are averaged
over the processes before each optimiser step, and the few statistics (``w``'s
running mean, the path-length mean, ADA's ``r_t``, the logged losses) are averaged
too, so N processes compute what one process computes with the same batch, up to
floating-point rounding. Process 0 writes the run folder.
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
from portraitfx.train.checkpoints import load_optimiser, optimiser_tensors
from portraitfx.train.distributed import ProcessGroup, init_distributed
from portraitfx.train.stylegan.augment import AdaptiveAugment, augment
from portraitfx.train.stylegan.networks import (
    Discriminator,
    Generator,
    GeneratorConfig,
    batch_randn,
    batch_shard,
    grid,
)

__all__ = [
    "TrainOptions",
    "Trainer",
    "init_distributed",
    "load_image_folder",
    "open_training_data",
    "path_length",
    "prepare_data",
    "r1_penalty",
]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

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
        noise = batch_randn(images.shape[0], *images.shape[1:], device=images.device, dtype=images.dtype)
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


def image_files(folder: str | os.PathLike[str], limit: int | None = None) -> list[Path]:
    """The images in ``folder`` (not recursive), sorted by name; at most ``limit``."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"image folder '{root}' is not a folder")
    names = sorted(
        p for p in root.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    )
    return names[:limit] if limit is not None else names


def load_image_folder(
    folder: str | os.PathLike[str], resolution: int, limit: int | None = None
) -> torch.Tensor:
    """Every image in ``folder`` (not recursive), centre-cropped square and resized, as ``N x 3 x R x R`` in [-1, 1]."""
    from portraitfx.io.images import load_image

    names = image_files(folder, limit)
    root = Path(folder)
    out = [square(load_image(p), resolution) for p in names]
    if len(out) < 2:
        raise InputError(f"'{root}' holds {len(out)} usable images; training needs at least 2")
    arr = np.stack(out).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def prepare_data(
    folder: str | os.PathLike[str],
    resolution: int,
    output: str | os.PathLike[str],
    *,
    progress: bool = False,
) -> Path:
    """Crop and resize every image in ``folder`` once into an ``N x R x R x 3`` uint8 ``.npy`` file.

    Training reads batches straight from it (memory-mapped), so a data set larger than
    memory (FFHQ at 1024 px is 70,000 x 3 MiB = 206 GiB) trains without decoding a
    PNG per sample per step. Written atomically.
    """
    from tqdm import tqdm

    from portraitfx.io.images import load_image
    from portraitfx.io.paths import atomic_output

    names = image_files(folder)
    if not names:
        raise InputError(f"'{folder}' holds no images")
    out = Path(output)
    if out.suffix != ".npy":
        raise ConfigError(f"prepared data is a .npy file, got '{out}'")
    with atomic_output(out) as tmp:
        arr = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(len(names), resolution, resolution, 3)
        )
        for i, name in enumerate(tqdm(names, unit="img", disable=not progress, leave=False)):
            arr[i] = square(load_image(name), resolution)
        arr.flush()
        del arr
    return out


def open_training_data(path: str | os.PathLike[str], resolution: int) -> np.ndarray:
    """Training images as ``N x R x R x 3`` uint8: a prepared ``.npy`` (memory-mapped) or a folder (loaded)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".npy":
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise InputError(f"cannot read prepared data '{p}': {err}") from None
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (resolution, resolution, 3):
            raise InputError(
                f"'{p}' holds {arr.dtype} {tuple(arr.shape)}; this run needs N x {resolution} x {resolution} x 3 uint8"
            )
        return arr
    from portraitfx.io.images import load_image

    names = image_files(p)
    if len(names) < 2:
        raise InputError(f"'{p}' holds {len(names)} usable images; training needs at least 2")
    return np.stack([square(load_image(n), resolution) for n in names])


# --------------------------------------------------------------------------- processes


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to train on: the given one (checked), else this process's GPU, else the CPU."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"'{device}' is not a device (cpu, cuda, cuda:1, mps, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for, but this machine has no CUDA GPU PyTorch can use")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device '{device}' asked for, but there are {torch.cuda.device_count()} GPUs")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but Metal is not available here")
    return dev


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
        data: the training images: ``N x R x R x 3`` uint8 (see :func:`open_training_data`;
            a memory-mapped array is read a batch at a time) or ``N x 3 x R x R`` float in
            [-1, 1] (see :func:`load_image_folder`). It stays where it is (the CPU); each
            batch moves to ``device``.
        options: :class:`TrainOptions` (its resolution must match ``data``).
        resume: a generator file (transfer learning: G and its EMA copy start from it)
            or a run's ``checkpoint.safetensors`` (continue exactly where it stopped).
        device: where the networks run (default: this process's GPU if any, else the CPU).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` for the main passes.
        distributed: split the batch over the process group (default: when one is
            initialised, see :func:`init_distributed`).
    """

    def __init__(
        self,
        data: torch.Tensor | np.ndarray,
        options: TrainOptions,
        resume: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        distributed: bool | None = None,
    ) -> None:
        r = options.resolution
        if isinstance(data, np.ndarray):
            ok = data.dtype == np.uint8 and data.ndim == 4 and data.shape[1:] == (r, r, 3)
        else:
            ok = data.ndim == 4 and tuple(data.shape[1:]) == (3, r, r)
        if not ok or len(data) < 1:
            raise ConfigError(
                f"data must be N x {r} x {r} x 3 uint8 or N x 3 x {r} x {r} float, got {tuple(data.shape)}"
            )
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = _resolve_device(device)
        self.group = ProcessGroup(distributed, self.device)
        self.rank, self.world = self.group.rank, self.group.world
        self.group.check_batch(options.batch, 2 if options.pl_weight > 0 else 1)
        self.precision = precision
        self.options = options
        self.data = data
        self.state = _State()
        cfg = options.generator_config()
        with torch.random.fork_rng(devices=[]):  # the run's seed, without touching torch's global generator
            torch.manual_seed(options.seed)
            self.G = Generator(cfg)
            self.D = Discriminator(cfg)
        self.G_ema = Generator(cfg).eval().requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())
        for net in (self.G, self.D, self.G_ema):
            net.to(self.device)
        fp16 = precision == "fp16"
        self.scaler_G = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_D = torch.amp.GradScaler(self.device.type, enabled=fp16)
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
            if getattr(cfg, "architecture", "stylegan2") != "stylegan2":
                raise ModelError(
                    f"'{path}' is a StyleGAN3 generator; portraitfx trains StyleGAN2 generators only"
                )
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
        return tensors

    def _load_optimisers(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            load_optimiser(name, opt, tensors)

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
    def _share(self, x: torch.Tensor) -> torch.Tensor:
        """This process's samples of a whole-batch draw (by stride), on the device."""
        return self.group.share(x)

    def _reals(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.options.batch,), generator=self.rng)
        flip = torch.rand(self.options.batch, generator=self.rng) < 0.5 if self.options.mirror else None
        idx = idx[self.rank :: self.world]
        if isinstance(self.data, np.ndarray):  # uint8 NHWC, maybe memory-mapped: read just these rows
            rows = np.asarray(self.data[np.asarray(idx)])
            x = torch.from_numpy(rows).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0
        else:
            x = self.data[idx]
        if flip is not None:
            x = torch.where(flip[self.rank :: self.world, None, None, None], x.flip(3), x)
        return x.to(self.device)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self.ada.p, self.rng) if self.options.augment != "off" else x

    def _z(self, n: int) -> torch.Tensor:
        """``n`` latents for the whole batch; this process's share."""
        return self._share(torch.randn(n, self.options.z_dim, generator=self.rng))

    def _autocast(self) -> Any:
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _mean(self, *values: float | torch.Tensor) -> list[float]:
        """Scalars averaged over the processes (one collective for all of them)."""
        return self.group.mean(*values)

    def _sync_grads(self, net: torch.nn.Module) -> None:
        self.group.sync_grads(net)

    def _track_w(self, ws: torch.Tensor) -> None:
        """Move the generator's running mean of ``w`` toward this batch's (all processes')."""
        mapping = self.G.mapping
        mean = self.group.mean_tensor(ws[:, 0].detach().float().mean(0))
        with torch.no_grad():
            mapping.w_avg.copy_(mean.lerp(mapping.w_avg, mapping.w_avg_beta))

    def step(self) -> dict[str, float]:
        """One minibatch: G, (G reg), D, (D reg), EMA, ADA. Returns the losses.

        Every random number comes from the run's own generator: the noise inputs (drawn
        on the device) from torch's generators seeded per step from it, restored after.
        """
        seed = int(torch.randint(0, 2**62, (1,), generator=self.rng))
        devices = [self.device] if self.device.type == "cuda" else []
        with batch_shard(self.rank, self.world), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self._step()

    def _step(self) -> dict[str, float]:
        o, s = self.options, self.state
        t0 = time.perf_counter()
        logs: dict[str, float] = {}
        # G main
        self.G.requires_grad_(True)
        self._freeze()
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        with self._autocast():
            ws = self.G.mapping(self._z(o.batch))
            self._track_w(ws)
            loss_g = F.softplus(-self.D(self._aug(self.G.synthesis(ws)))).float().mean()
        self.scaler_G.scale(loss_g).backward()
        logs["loss_g"] = float(loss_g.detach())
        if o.pl_weight > 0 and s.step % o.pl_every == 0:
            ws = self.G.mapping(self._z(max(o.batch // 2, 1)))
            lengths = path_length(lambda w: self.G.synthesis(w), ws)
            (batch_mean,) = self._mean(lengths.detach().mean())
            mean = s.pl_mean + o.pl_decay * (batch_mean - s.pl_mean)
            s.pl_mean = mean
            penalty = (lengths - mean).square().mean() * o.pl_weight * o.pl_every
            self.scaler_G.scale(penalty).backward()
            logs["pl"] = batch_mean
        self._sync_grads(self.G)
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()
        # D main
        self.D.requires_grad_(True)
        self._freeze()
        self.opt_D.zero_grad(set_to_none=True)
        reals = self._reals()
        with self._autocast():
            with torch.no_grad():
                fake = self.G(self._z(o.batch))
            real_logits = self.D(self._aug(reals)).float()
            fake_logits = self.D(self._aug(fake)).float()
            loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        self.scaler_D.scale(loss_d).backward()
        self.ada.observe(real_logits)
        logs["loss_d"] = float(loss_d.detach())
        if o.gamma > 0 and s.step % o.r1_every == 0:
            r1 = r1_penalty(lambda x: self.D(self._aug(x)), reals)
            self.scaler_D.scale(r1.mean() * (o.gamma / 2) * o.r1_every).backward()
            logs["r1"] = float(r1.detach().mean())
        self._sync_grads(self.D)
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()
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
            if self.world > 1:  # r_t over every process's logits
                total, count = self._mean(self.ada._sum, self.ada._count)
                self.ada._sum, self.ada._count = total * self.world, round(count * self.world)
            s.rt = self.ada.update(o.batch * o.ada_interval)
        s.p = self.ada.p
        s.seconds += time.perf_counter() - t0
        if self.world > 1:
            keys = sorted(k for k in logs if k != "pl")
            logs.update(zip(keys, self._mean(*(logs[k] for k in keys)), strict=True))
        logs.update(p=s.p, rt=s.rt)
        return logs

    # -- runs -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Everything needed to continue exactly (atomic)."""
        from portraitfx.models.load import save_safetensors

        tensors: dict[str, torch.Tensor] = {}
        for prefix, net in (("G.", self.G), ("G_ema.", self.G_ema), ("D.", self.D)):
            tensors.update({prefix + k: v.detach().cpu() for k, v in net.state_dict().items()})
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            tensors.update(optimiser_tensors(name, opt))
        tensors["rng.cpu"] = self.rng.get_state()
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
        every ``snapshot_kimg``, and at the end (written by process 0 only).
        """
        from tqdm import tqdm

        from portraitfx.train.stylegan.checkpoint import save_generator

        target = int(kimg * 1000)
        writer = self.rank == 0
        folder = Path(run_dir) if run_dir is not None and writer else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        next_snap = (self.state.images // max(int(snapshot_kimg * 1000), 1) + 1) * int(snapshot_kimg * 1000)
        bar = tqdm(
            total=target,
            initial=min(self.state.images, target),
            unit="img",
            disable=not (progress and writer),
            leave=False,
        )
        totals: dict[str, float] = {}
        count = 0

        def snapshot() -> None:
            line = {"kimg": self.state.images / 1000, "seconds": round(self.state.seconds, 2)}
            line.update({k: round(v / max(count, 1), 5) for k, v in totals.items()})
            self.state.history.append(line)
            if folder is None:
                return
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
