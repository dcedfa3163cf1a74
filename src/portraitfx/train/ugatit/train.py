"""Training U-GAT-IT on two unpaired folders (photos, style images), with seed 000's two variants.

Losses (the paper's, weights as there): least-squares adversarial on the images and
on the discriminators' CAM logits (global and local discriminators per domain),
cycle consistency (A -> B -> A) and identity (B through the A -> B generator stays B)
in L1, and the generators' CAM loss (binary cross-entropy: the classifier must tell
which domain its input came from). Seed 000's edge lifting: the B discriminators also
see B images with blurred edges as fakes (``edge`` weight). The generators used for
translation are EMA copies.

Variants (seed 000, to keep the background and the non-face parts):

* ``plain``: whole images;
* ``region``: face-region crops (each image's largest face, aligned), translated and
  blended back inside the face region only (:func:`translate_faces`);
* ``mask``: a face mask gates the translation and so its losses: outside it the
  output is the input, exactly; the generator also learns to predict the mask
  (binary cross-entropy to the region masks) for images that come without one.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from portraitfx.errors import ConfigError, InputError, ModelError
from portraitfx.train.checkpoints import (
    load_network,
    load_run,
    read_metadata,
    save_network,
    save_run,
)
from portraitfx.train.ugatit.networks import Discriminator, Generator, UGATITConfig

__all__ = [
    "UGATITOptions",
    "UGATITTrainer",
    "cam_loss",
    "load_domain",
    "load_generator",
    "lsgan_fake",
    "lsgan_real",
    "save_generator",
]

KIND = "portraitfx-ugatit-generator"
RUN_KIND = "portraitfx-ugatit-run"
VARIANTS = ("plain", "region", "mask")


# --------------------------------------------------------------------------- losses


def lsgan_real(x: torch.Tensor) -> torch.Tensor:
    """Least-squares loss for outputs that should say "real": ``mean((x - 1)^2)``."""
    return (x - 1).square().mean()


def lsgan_fake(x: torch.Tensor) -> torch.Tensor:
    """Least-squares loss for outputs that should say "fake": ``mean(x^2)``."""
    return x.square().mean()


def cam_loss(logits: torch.Tensor, is_source: bool) -> torch.Tensor:
    """The generator's CAM classifier: binary cross-entropy against 1 (its own source domain) or 0."""
    target = torch.ones_like(logits) if is_source else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


# --------------------------------------------------------------------------- data


def load_domain(
    folder: str | os.PathLike[str], size: int, *, region: bool = False, crop_scale: float = 0.8
) -> tuple[np.ndarray, np.ndarray | None]:
    """A folder's images as ``N x S x S x 3`` uint8 (centre squares), or with ``region``
    each image's largest face aligned, with its face-region mask (``N x S x S`` float)."""
    import cv2

    from portraitfx.io.images import load_image
    from portraitfx.train.stylegan.train import image_files, square

    names = image_files(folder)
    if not region:
        images = [square(load_image(p), size) for p in names]
        if len(images) < 2:
            raise InputError(f"'{folder}' holds {len(images)} images; U-GAT-IT needs at least 2 per domain")
        return np.stack(images), None
    import portraitfx as pfx
    from portraitfx.face.align import alignment_matrix, transform_points
    from portraitfx.face.regions import region_mask

    images, masks = [], []
    for p in names:
        img = load_image(p)
        faces = pfx.analyze(img)
        if not faces:
            continue
        face = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
        m = alignment_matrix(face.five_points, size, "ffhq", crop_scale)
        images.append(
            cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101)
        )
        lm = transform_points(face.landmarks[:, :2], m)
        masks.append(region_mask((size, size), lm, "face_forehead", feather=0.03, forehead=0.3))
    if len(images) < 2:
        raise InputError(
            f"'{folder}' holds {len(images)} images with a face; U-GAT-IT needs at least 2 per domain"
        )
    return np.stack(images), np.stack(masks).astype(np.float32)


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous() / 127.5 - 1


# --------------------------------------------------------------------------- files


def save_generator(
    path: str | os.PathLike[str], g: Generator, *, extra: dict[str, Any] | None = None
) -> Path:
    return save_network(path, g, kind=KIND, prefix="G", config=g.cfg.to_dict(), extra=extra)


def _meta(path: str | os.PathLike[str]) -> dict[str, str]:
    return read_metadata(path, "a safetensors U-GAT-IT generator")


def load_generator(path: str | os.PathLike[str]) -> Generator:
    """A generator saved by :func:`save_generator` (A -> B, the EMA copy)."""
    build = lambda cfg: Generator(UGATITConfig.from_dict(cfg))  # noqa: E731
    return load_network(path, build, kinds={KIND: "G"}, what="U-GAT-IT generator")  # type: ignore[return-value]


# --------------------------------------------------------------------------- training


@dataclass
class UGATITOptions:
    size: int = 128
    ngf: int = 32
    ndf: int = 32
    n_res: int = 4
    variant: str = "plain"
    batch: int = 2
    lr: float = 1e-4
    weight_decay: float = 1e-4
    adv_weight: float = 1.0
    cycle_weight: float = 10.0
    identity_weight: float = 10.0
    cam_weight: float = 1000.0
    edge_weight: float = 0.0
    mask_weight: float = 10.0
    ema: float = 0.999
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        self.config()  # validates the shapes

    def config(self) -> UGATITConfig:
        return UGATITConfig(
            size=self.size, ngf=self.ngf, ndf=self.ndf, n_res=self.n_res, mask=self.variant == "mask"
        )


class UGATITTrainer:
    """Two generators (A -> B, B -> A), four discriminators, EMA copies; see the module.

    Args:
        a, b: ``N x S x S x 3`` uint8 images of the two domains (see :func:`load_domain`).
        options: :class:`UGATITOptions`.
        masks_a, masks_b: face-region masks (``N x S x S``), needed by the ``mask`` variant.
        resume: a run's ``checkpoint.safetensors``.
    """

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        options: UGATITOptions | None = None,
        *,
        masks_a: np.ndarray | None = None,
        masks_b: np.ndarray | None = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> None:
        self.options = o = options or UGATITOptions()
        for name, x in (("A", a), ("B", b)):
            if x.ndim != 4 or x.shape[1:] != (o.size, o.size, 3):
                raise ConfigError(f"domain {name} must be N x {o.size} x {o.size} x 3, got {x.shape}")
        if o.variant == "mask" and (masks_a is None or masks_b is None):
            raise ConfigError(
                "the mask variant needs face masks for both domains (load_domain(..., region=True))"
            )
        self.a, self.b, self.masks_a, self.masks_b = a, b, masks_a, masks_b
        self.rng = torch.Generator().manual_seed(o.seed)
        cfg = o.config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.G_AB, self.G_BA = Generator(cfg), Generator(cfg)
            layers = cfg.global_layers
            self.D = torch.nn.ModuleDict(
                {
                    "A_global": Discriminator(cfg.ndf, layers),
                    "A_local": Discriminator(cfg.ndf, layers - 2),
                    "B_global": Discriminator(cfg.ndf, layers),
                    "B_local": Discriminator(cfg.ndf, layers - 2),
                }
            )
        self.G_AB_ema = copy.deepcopy(self.G_AB).eval().requires_grad_(False)
        gen_params = list(self.G_AB.parameters()) + list(self.G_BA.parameters())
        self.opt_G = torch.optim.Adam(gen_params, lr=o.lr, betas=(0.5, 0.999), weight_decay=o.weight_decay)
        self.opt_D = torch.optim.Adam(
            self.D.parameters(), lr=o.lr, betas=(0.5, 0.999), weight_decay=o.weight_decay
        )
        self.step_count = 0
        self.history: list[dict[str, Any]] = []
        if resume is not None:
            self._resume(resume)

    # -- data -------------------------------------------------------------------------
    def _pick(self, images: np.ndarray, masks: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(0, len(images), (self.options.batch,), generator=self.rng).numpy()
        flip = torch.rand(self.options.batch, generator=self.rng) < 0.5
        x = _tensor(images[idx])
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if masks is None:
            return x, None
        m = torch.from_numpy(masks[idx])[:, None].float()
        return x, torch.where(flip[:, None, None, None], m.flip(3), m)

    # -- one step ---------------------------------------------------------------------
    def _judge(self, domain: str, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self.D[f"{domain}_{scale}"](x)[:2] for scale in ("global", "local")]

    def step(self) -> dict[str, float]:
        from portraitfx.train.student.train import blur_edges

        o = self.options
        real_a, mask_a = self._pick(self.a, self.masks_a)
        real_b, mask_b = self._pick(self.b, self.masks_b)
        gate_a = mask_a if o.variant == "mask" else None
        gate_b = mask_b if o.variant == "mask" else None
        # discriminators
        with torch.no_grad():
            fake_b = self.G_AB(real_a, gate_a)["image"]
            fake_a = self.G_BA(real_b, gate_b)["image"]
        loss_d = real_a.new_zeros([])
        for domain, real, fake in (("A", real_a, fake_a), ("B", real_b, fake_b)):
            for (r_out, r_cam), (f_out, f_cam) in zip(
                self._judge(domain, real), self._judge(domain, fake), strict=True
            ):
                loss_d = (
                    loss_d + lsgan_real(r_out) + lsgan_fake(f_out) + lsgan_real(r_cam) + lsgan_fake(f_cam)
                )
        if o.edge_weight > 0:  # edge lifting: style images with soft edges are not the style
            for out, cam in self._judge("B", blur_edges(real_b)):
                loss_d = loss_d + o.edge_weight * (lsgan_fake(out) + lsgan_fake(cam))
        self.opt_D.zero_grad(set_to_none=True)
        (o.adv_weight * loss_d).backward()
        self.opt_D.step()
        # generators
        ab, ba = self.G_AB(real_a, gate_a), self.G_BA(real_b, gate_b)
        aba, bab = self.G_BA(ab["image"], gate_a), self.G_AB(ba["image"], gate_b)
        bb, aa = self.G_AB(real_b, gate_b), self.G_BA(real_a, gate_a)
        adv = real_a.new_zeros([])
        for domain, fake in (("B", ab["image"]), ("A", ba["image"])):
            for out, cam in self._judge(domain, fake):
                adv = adv + lsgan_real(out) + lsgan_real(cam)
        cycle = (aba["image"] - real_a).abs().mean() + (bab["image"] - real_b).abs().mean()
        identity = (bb["image"] - real_b).abs().mean() + (aa["image"] - real_a).abs().mean()
        cam = (
            cam_loss(ab["cam_logits"], True) + cam_loss(bb["cam_logits"], False)
            + cam_loss(ba["cam_logits"], True) + cam_loss(aa["cam_logits"], False)
        )  # fmt: skip
        loss = o.adv_weight * adv + o.cycle_weight * cycle + o.identity_weight * identity + o.cam_weight * cam
        terms = {"d": loss_d, "adv": adv, "cycle": cycle, "identity": identity, "cam": cam}
        logs = {k: float(v.detach()) for k, v in terms.items()}
        if o.variant == "mask":  # the mask head learns the face region, for images without a given mask
            pred_a = self.G_AB(real_a)["mask"]
            pred_b = self.G_BA(real_b)["mask"]
            mask_term = F.binary_cross_entropy(pred_a, mask_a) + F.binary_cross_entropy(pred_b, mask_b)
            loss = loss + o.mask_weight * mask_term
            logs["mask"] = float(mask_term.detach())
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        with torch.no_grad():
            for pe, p in zip(self.G_AB_ema.parameters(), self.G_AB.parameters(), strict=True):
                pe.lerp_(p, 1 - o.ema)
        self.step_count += 1
        return logs

    # -- runs -------------------------------------------------------------------------
    def _parts(self) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
        nets = {"G_AB": self.G_AB, "G_BA": self.G_BA, "G_AB_ema": self.G_AB_ema, "D": self.D}
        return nets, {"opt_G": self.opt_G, "opt_D": self.opt_D}

    def save(self, path: str | os.PathLike[str]) -> Path:
        nets, optimisers = self._parts()
        return save_run(
            path, kind=RUN_KIND, nets=nets, optimisers=optimisers, rng=self.rng,
            state={"step": self.step_count, "history": self.history}, meta={"options": json.dumps(asdict(self.options))},
        )  # fmt: skip

    def _resume(self, path: str | os.PathLike[str]) -> None:
        nets, optimisers = self._parts()
        state, _ = load_run(
            path,
            kind=RUN_KIND,
            what="U-GAT-IT training checkpoint",
            nets=nets,
            optimisers=optimisers,
            rng=self.rng,
        )
        self.step_count, self.history = int(state["step"]), list(state["history"])

    def train(
        self,
        steps: int,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        log_every: int = 100,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """Train until ``steps`` in total (a resumed run continues); log, checkpoint and the EMA generator as it goes."""
        from tqdm import tqdm

        folder = Path(run_dir) if run_dir is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        totals: dict[str, float] = {}
        count, t0 = 0, time.perf_counter()
        with tqdm(
            total=steps, initial=min(self.step_count, steps), unit="step", disable=not progress, leave=False
        ) as bar:
            while self.step_count < steps:
                for k, v in self.step().items():
                    totals[k] = totals.get(k, 0.0) + v
                count += 1
                bar.update(1)
                if self.step_count % log_every == 0 or self.step_count == steps:
                    line = {"step": self.step_count, "seconds": round(time.perf_counter() - t0, 1)}
                    line.update({k: round(v / count, 5) for k, v in totals.items()})
                    self.history.append(line)
                    totals, count = {}, 0
                    if folder is not None:
                        with open(folder / "log.jsonl", "a", encoding="utf-8") as fh:
                            fh.write(json.dumps(line) + "\n")
                        self.save(folder / "checkpoint.safetensors")
                        save_generator(
                            folder / "generator.safetensors", self.G_AB_ema, extra={"step": self.step_count}
                        )
        return self.history


def options_from_run(path: str | os.PathLike[str]) -> UGATITOptions:
    meta = _meta(path)
    if meta.get("portraitfx") != RUN_KIND:
        raise ModelError(f"'{path}' is not a U-GAT-IT training checkpoint")
    data = json.loads(meta["options"])
    known = {f.name for f in fields(UGATITOptions)}
    return UGATITOptions(**{k: v for k, v in data.items() if k in known})
