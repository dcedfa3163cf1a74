"""Training the student on pairs, with seed 000's loss ladder, each stage switchable and reported.

The ladder (each stage adds to the ones before):

1. ``pixel``: L1 between the student's output and the teacher's;
2. ``perceptual``: a feature distance (VGG16 from a weights file, or the built-in
   multi-scale pyramid) and an adversarial loss from a patch discriminator (least
   squares), which together bring back the texture L1 averages away;
3. ``edge``: edge-promoting adversarial loss (CartoonGAN): the discriminator also sees
   the teacher's images with their edges blurred, labelled fake, so soft outlines
   are penalised and lines stay crisp;
4. ``augment``: the pairs are flipped, turned, zoomed and shifted together, and the
   input's colours jittered, so the student holds up on faces unlike the training
   set.

A run trains the stages one after the other (``steps`` each, the networks carried
over) and saves the student after each stage (``stage-NAME.safetensors``), so the
ladder can be compared in one run (``portraitfx toon eval``). ``checkpoint.safetensors``
has everything to resume (both networks, optimisers, step, random state).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError, InputError, ModelError
from portraitfx.train.checkpoints import (
    load_network,
    load_run,
    read_metadata,
    save_network,
    save_run,
)
from portraitfx.train.student.network import KIND, Student, StudentConfig

__all__ = [
    "LADDER",
    "PatchDiscriminator",
    "StudentOptions",
    "StudentTrainer",
    "blur_edges",
    "load_pairs",
    "load_student",
    "save_student",
]

LADDER = ("pixel", "perceptual", "edge", "augment")
RUN_KIND = "portraitfx-student-run"


# --------------------------------------------------------------------------- data


def load_pairs(folder: str | os.PathLike[str], size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A pair folder's ``face/`` and ``style/`` images as two ``N x S x S x 3`` uint8 arrays (index order)."""
    from portraitfx.io.images import load_image

    root = Path(folder)
    faces = sorted((root / "face").glob("*.png")) if (root / "face").is_dir() else []
    names = [p.name for p in faces if (root / "style" / p.name).is_file()]
    if len(names) < 2:
        raise InputError(
            f"'{root}' holds {len(names)} complete pairs (face/ and style/); training needs at least 2"
        )
    a, b = [], []
    for name in names:
        x, y = load_image(root / "face" / name), load_image(root / "style" / name)
        if x.shape != y.shape:
            raise InputError(f"pair {name}: the face and style images differ in size")
        if size is not None and x.shape[:2] != (size, size):
            import cv2

            x = cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)
            y = cv2.resize(y, (size, size), interpolation=cv2.INTER_AREA)
        a.append(x)
        b.append(y)
    if len({i.shape for i in a}) != 1:
        raise InputError(f"the pairs in '{root}' have different sizes; give a training size")
    return np.stack(a), np.stack(b)


def blur_edges(images: torch.Tensor, width: int = 2) -> torch.Tensor:
    """CartoonGAN's edge-smoothed fakes: the images with a blur where their edges are (N x 3 x H x W in [-1, 1])."""
    gray = images.mean(1, keepdim=True)
    gx = gray[..., :, 1:] - gray[..., :, :-1]
    gy = gray[..., 1:, :] - gray[..., :-1, :]
    mag = F.pad(gx.abs(), (0, 1, 0, 0)) + F.pad(gy.abs(), (0, 0, 0, 1))
    edges = (mag > mag.flatten(1).quantile(0.9, dim=1)[:, None, None, None]).float()
    k = 2 * width + 1
    edges = F.max_pool2d(edges, k, stride=1, padding=width)  # dilated edge regions
    kernel = torch.exp(-((torch.arange(k, dtype=images.dtype) - width) ** 2) / (2 * (width / 1.5) ** 2))
    kernel = (kernel / kernel.sum()).to(images.device)
    c = images.shape[1]
    blurred = F.conv2d(
        F.pad(images, (width, width, 0, 0), mode="replicate"),
        kernel.view(1, 1, 1, k).expand(c, 1, 1, k),
        groups=c,
    )
    blurred = F.conv2d(
        F.pad(blurred, (0, 0, width, width), mode="replicate"),
        kernel.view(1, 1, k, 1).expand(c, 1, k, 1),
        groups=c,
    )
    return images * (1 - edges) + blurred * edges


def _augment(x: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same flip, turn, zoom and shift for input and target; colour jitter on the input only."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=rng) * 2 - 1) * math.radians(8)
    scale = 1 + (torch.rand(n, generator=rng) * 2 - 1) * 0.08
    shift = (torch.rand(n, 2, generator=rng) * 2 - 1) * 0.06
    flip = torch.where(torch.rand(n, generator=rng) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warp = lambda t: F.grid_sample(t, grid, mode="bilinear", padding_mode="reflection", align_corners=False)  # noqa: E731
    x, y = warp(x), warp(y)
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=rng) * 2 - 1) * 0.15
    bias = (torch.rand(n, 1, 1, 1, generator=rng) * 2 - 1) * 0.1
    sat = 1 + (torch.rand(n, 1, 1, 1, generator=rng) * 2 - 1) * 0.25
    luma = x.mean(1, keepdim=True)
    x = ((luma + (x - luma) * sat) * gain + bias).clamp(-1, 1)
    return x, y


@torch.no_grad()
def predict(net: nn.Module, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """A network's outputs for ``N x S x S x 3`` uint8 images (in [-1, 1] in between), in batches."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float().contiguous() / 127.5 - 1
        y = ((net(x) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        out.append(y.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out) if out else images[:0]


# --------------------------------------------------------------------------- networks


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: strided 4x4 convolutions to a map of real/fake scores (70 px receptive field at 3 layers)."""

    def __init__(self, channels: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c = 3
        for i in range(layers):
            out = channels * 2**i
            mods += [
                nn.utils.parametrizations.spectral_norm(nn.Conv2d(c, out, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
            ]
            c = out
        mods.append(nn.utils.parametrizations.spectral_norm(nn.Conv2d(c, 1, 3, padding=1)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------- files


def save_student(path: str | os.PathLike[str], net: Student, *, extra: dict[str, Any] | None = None) -> Path:
    """The student's weights and shape as safetensors (atomic)."""
    return save_network(path, net, kind=KIND, prefix="S", config=net.cfg.to_dict(), extra=extra)


def _meta(path: str | os.PathLike[str]) -> dict[str, str]:
    return read_metadata(path, "a safetensors student")


def load_student(path: str | os.PathLike[str]) -> Student:
    """A student saved by :func:`save_student` or the student of a run's checkpoint."""
    build = lambda cfg: Student(StudentConfig.from_dict(cfg))  # noqa: E731
    return load_network(path, build, kinds={KIND: "S", RUN_KIND: "S"}, what="student")  # type: ignore[return-value]


# --------------------------------------------------------------------------- training


@dataclass
class StudentOptions:
    """A student run's settings."""

    width: float = 0.75
    middle_blocks: int = 4
    ladder: tuple[str, ...] = LADDER
    steps: int = 1000
    batch: int = 8
    lr: float = 2e-3
    d_lr: float = 1e-3
    perceptual_weight: float = 1.0
    adversarial_weight: float = 0.05
    edge_weight: float = 1.0
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        self.ladder = tuple(self.ladder)
        unknown = [s for s in self.ladder if s not in LADDER]
        if unknown or not self.ladder:
            raise ConfigError(
                f"ladder stages are {', '.join(LADDER)}; got {', '.join(self.ladder) or 'none'}"
            )
        if self.steps < 1 or self.batch < 1:
            raise ConfigError("steps and batch must be >= 1")
        if not 0.0 <= self.val_fraction < 0.9:
            raise ConfigError("val_fraction must be within 0..0.9")

    def enabled(self, stage: str) -> set[str]:
        """The terms on in ``stage``: it and every stage before it in the full ladder."""
        return set(LADDER[: LADDER.index(stage) + 1])


class StudentTrainer:
    """Train a :class:`Student` on pairs (see the module).

    Args:
        faces, styles: ``N x S x S x 3`` uint8 inputs and teacher outputs (see :func:`load_pairs`).
        options: :class:`StudentOptions`.
        features: feature maps for the perceptual term (default: the built-in pyramid).
        resume: a run's ``checkpoint.safetensors``.
    """

    def __init__(
        self,
        faces: np.ndarray,
        styles: np.ndarray,
        options: StudentOptions | None = None,
        *,
        features: Any = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> None:
        from portraitfx.train.invert.features import pyramid_features

        self.options = o = options or StudentOptions()
        if faces.shape != styles.shape or faces.ndim != 4 or faces.shape[-1] != 3:
            raise ConfigError(
                f"faces and styles must be matching N x S x S x 3 arrays, got {faces.shape}, {styles.shape}"
            )
        if faces.shape[1] % 8 or faces.shape[2] % 8:
            raise ConfigError("pair images must have sides that are multiples of 8")
        n_val = int(round(len(faces) * o.val_fraction))
        n_val = min(n_val, len(faces) - 2)
        self.train_idx = np.arange(len(faces) - n_val)
        self.val_idx = np.arange(len(faces) - n_val, len(faces))
        self.faces, self.styles = faces, styles
        self.features = features or pyramid_features
        self.rng = torch.Generator().manual_seed(o.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.S = Student(StudentConfig(width=o.width, middle_blocks=o.middle_blocks))
            self.D = PatchDiscriminator()
        self.opt_S = torch.optim.Adam(self.S.parameters(), lr=o.lr, betas=(0.5, 0.99))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.d_lr, betas=(0.5, 0.99))
        self.step_count = 0
        self.history: list[dict[str, Any]] = []
        if resume is not None:
            self._resume(resume)

    # -- state ------------------------------------------------------------------------
    @property
    def stage(self) -> str:
        k = min(self.step_count // self.options.steps, len(self.options.ladder) - 1)
        return self.options.ladder[k]

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_run(
            path, kind=RUN_KIND, nets={"S": self.S, "D": self.D}, optimisers={"opt_S": self.opt_S, "opt_D": self.opt_D},
            rng=self.rng, state={"step": self.step_count, "history": self.history},
            meta={"config": json.dumps(self.S.cfg.to_dict()), "options": json.dumps(asdict(self.options))},
        )  # fmt: skip

    def _resume(self, path: str | os.PathLike[str]) -> None:
        state, _ = load_run(
            path, kind=RUN_KIND, what="student training checkpoint", nets={"S": self.S, "D": self.D},
            optimisers={"opt_S": self.opt_S, "opt_D": self.opt_D}, rng=self.rng,
        )  # fmt: skip
        self.step_count, self.history = int(state["step"]), list(state["history"])

    # -- one step ---------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randint(0, len(self.train_idx), (self.options.batch,), generator=self.rng).numpy()
        idx = self.train_idx[pick]
        x = torch.from_numpy(self.faces[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = torch.from_numpy(self.styles[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
        return x.contiguous(), y.contiguous()

    def step(self) -> dict[str, float]:
        o = self.options
        on = o.enabled(self.stage)
        x, y = self._batch()
        if "augment" in on:
            x, y = _augment(x, y, self.rng)
        logs: dict[str, float] = {}
        gan = "perceptual" in on
        if gan:  # discriminator: teacher images real; student outputs (and blurred-edge teacher images) fake
            with torch.no_grad():
                fake = self.S(x)
            d_real, d_fake = self.D(y), self.D(fake)
            loss_d = (d_real - 1).square().mean() + d_fake.square().mean()
            if "edge" in on:
                loss_d = loss_d + o.edge_weight * self.D(blur_edges(y)).square().mean()
            self.opt_D.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_D.step()
            logs["d"] = float(loss_d.detach())
        out = self.S(x)
        loss_l1 = (out - y).abs().mean()
        loss = loss_l1
        logs["l1"] = float(loss_l1.detach())
        if gan:
            perc = sum(
                ((a - b).abs().mean() for a, b in zip(self.features(out), self.features(y), strict=True)),
                start=out.new_zeros([]),
            )
            adv = (self.D(out) - 1).square().mean()
            loss = loss + o.perceptual_weight * perc + o.adversarial_weight * adv
            logs.update(perceptual=float(perc.detach()), adversarial=float(adv.detach()))
        self.opt_S.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_S.step()
        self.step_count += 1
        return logs

    # -- evaluation -------------------------------------------------------------------
    def predict(self, images: np.ndarray, batch: int = 16) -> np.ndarray:
        """The student's outputs for ``N x S x S x 3`` uint8 images."""
        self.S.eval()
        try:
            return predict(self.S, images, batch)
        finally:
            self.S.train()

    def validate(self) -> dict[str, float]:
        """PSNR of the student's outputs against the teacher's on the held-out pairs."""
        idx = self.val_idx if len(self.val_idx) else self.train_idx[:8]
        pred = self.predict(self.faces[idx]).astype(np.float64)
        mse = ((pred - self.styles[idx].astype(np.float64)) ** 2).reshape(len(idx), -1).mean(1)
        return {"psnr": float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))}

    # -- runs -------------------------------------------------------------------------
    def train(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        log_every: int = 100,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """Every ladder stage for ``options.steps`` steps (a resumed run continues); saves as it goes."""
        from tqdm import tqdm

        o = self.options
        total = o.steps * len(o.ladder)
        folder = Path(run_dir) if run_dir is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        totals: dict[str, float] = {}
        count, t0 = 0, time.perf_counter()
        with tqdm(
            total=total, initial=self.step_count, unit="step", disable=not progress, leave=False
        ) as bar:
            while self.step_count < total:
                stage = self.stage
                for k, v in self.step().items():
                    totals[k] = totals.get(k, 0.0) + v
                count += 1
                bar.update(1)
                bar.set_postfix(stage=stage, l1=f"{totals['l1'] / count:.4f}")
                end_of_stage = self.step_count % o.steps == 0
                if self.step_count % log_every == 0 or end_of_stage:
                    line = {
                        "step": self.step_count,
                        "stage": stage,
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                    line.update({k: round(v / count, 5) for k, v in totals.items()})
                    line.update(self.validate())
                    self.history.append(line)
                    totals, count = {}, 0
                    if folder is not None:
                        with open(folder / "log.jsonl", "a", encoding="utf-8") as fh:
                            fh.write(json.dumps(line) + "\n")
                        if end_of_stage:
                            save_student(
                                folder / f"stage-{stage}.safetensors", self.S, extra={"stage": stage, **line}
                            )
                        self.save(folder / "checkpoint.safetensors")
        if folder is not None:
            save_student(
                folder / "student.safetensors",
                self.S,
                extra={"stage": o.ladder[-1], "steps": self.step_count},
            )
        return self.history


def options_from_run(path: str | os.PathLike[str]) -> StudentOptions:
    """The options a run's checkpoint was trained with."""
    meta = _meta(path)
    if meta.get("portraitfx") != RUN_KIND:
        raise ModelError(f"'{path}' is not a student training checkpoint")
    data = json.loads(meta["options"])
    known = {f.name for f in fields(StudentOptions)}
    return StudentOptions(**{k: v for k, v in data.items() if k in known})
