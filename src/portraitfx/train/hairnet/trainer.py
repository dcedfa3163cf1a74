"""Training a hair model on a hair pair folder, saving, resuming, and exporting it to ONNX.

Data: a pair folder from ``portraitfx hair pairs`` (``face/`` before, ``style/`` after,
``mask/`` the edit region; see :mod:`portraitfx.train.hairnet.pairs`), optionally only
the pairs of one edit. Losses, per step on a batch of flipped-or-not pairs:

* L1 to the target, with the edit region weighted up (``region_weight``), since it is
  a small part of the crop;
* a multi-scale perceptual distance (the built-in pyramid features);
* the predicted mask against the pair's edit mask (binary cross-entropy), so the
  model learns *where* to draw and leaves the rest of the photo alone;
* LSGAN against a two-scale PatchGAN that sees (input, output) pairs, with pix2pixHD's
  feature matching.

Runs keep their own random generator and resume exactly from ``checkpoint.safetensors``.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from portraitfx.errors import ConfigError, InputError, ModelError
from portraitfx.train.checkpoints import load_network, load_run, save_network, save_run
from portraitfx.train.hairnet.glean import (
    HairNetConfig,
    MultiScaleDiscriminator,
    build_hairnet,
    from_settings,
)

__all__ = [
    "HairNetTrainer",
    "HairTrainOptions",
    "export_hairnet",
    "load_hair_pairs",
    "load_hairnet",
    "save_hairnet",
]

KIND = "portraitfx.hairnet"
RUN_KIND = "portraitfx.hairnet.run"


# --------------------------------------------------------------------------- data


def load_hair_pairs(
    folder: str | os.PathLike[str], size: int, edit: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A hair pair folder as ``(before, after, mask)``: ``N x S x S x 3`` uint8 twice and ``N x S x S`` float32.

    ``edit``: keep only the pairs of that edit (from ``manifest.jsonl``). Pairs without a
    mask get the pixels that differ (blurred) as theirs.
    """
    import cv2

    from portraitfx.io.images import load_image

    root = Path(folder)
    names = sorted(p.name for p in (root / "face").glob("*.png")) if (root / "face").is_dir() else []
    names = [n for n in names if (root / "style" / n).is_file()]
    if edit:
        manifest = root / "manifest.jsonl"
        edits: dict[str, str] = {}
        if manifest.is_file():
            for line in manifest.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    r = json.loads(line)
                    edits[f"{int(r['index']):06d}.png"] = str(r.get("edit") or "")
        names = [n for n in names if edits.get(n) == edit]
    if len(names) < 2:
        what = f" of the edit {edit!r}" if edit else ""
        raise InputError(
            f"'{root}' holds {len(names)} complete pairs{what} (face/ and style/); training needs 2"
        )

    def fit(img: np.ndarray) -> np.ndarray:
        return (
            img
            if img.shape[:2] == (size, size)
            else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        )

    a, b, m = [], [], []
    for n in names:
        x, y = load_image(root / "face" / n), load_image(root / "style" / n)
        if x.shape != y.shape:
            raise InputError(f"pair {n}: the before and after images differ in size")
        x, y = fit(x), fit(y)
        if (root / "mask" / n).is_file():
            mask = fit(load_image(root / "mask" / n))[..., 0].astype(np.float32) / 255.0
        else:
            diff = (np.abs(x.astype(np.int16) - y.astype(np.int16)).max(-1) > 8).astype(np.float32)
            mask = cv2.GaussianBlur(cv2.dilate(diff, np.ones((5, 5), np.uint8)), (0, 0), 1.5)
        a.append(x)
        b.append(y)
        m.append(mask)
    return np.stack(a), np.stack(b), np.stack(m)


# --------------------------------------------------------------------------- files


def save_hairnet(
    path: str | os.PathLike[str], net: torch.nn.Module, *, extra: dict[str, Any] | None = None
) -> Path:
    """A hair model's weights and shape (safetensors)."""
    return save_network(path, net, kind=KIND, prefix="H", config=net.cfg.to_dict(), extra=extra)  # type: ignore[operator]


def load_hairnet(path: str | os.PathLike[str]) -> torch.nn.Module:
    """A hair model saved by :func:`save_hairnet` (or the network inside a training checkpoint)."""
    return load_network(path, build_hairnet, kinds={KIND: "H", RUN_KIND: "H"}, what="hair model")


@dataclass(frozen=True)
class HairTrainOptions:
    """Settings of :class:`HairNetTrainer` (the ``options:`` of ``train hairnet``'s config).

    Attributes:
        arch, size, channel_base, channel_max, w_dim, width, downs, blocks: the model (see :class:`HairNetConfig`).
        edit: train on the pairs of this edit only (and record it in the model).
        prior: a StyleGAN2 generator (``.safetensors``) whose synthesis weights start the GLEAN prior.
        freeze_prior: keep the prior's weights fixed.
        steps: optimisation steps; batch: pairs per step.
        lr, d_lr: Adam learning rates of the model and the discriminator.
        region_weight: L1 weight inside the edit region (1 outside).
        perceptual_weight, mask_weight, adversarial_weight, feature_match_weight: loss weights.
        val_fraction: share of the pairs held out for validation.
        seed: the run's random seed.
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
    prior: str | None = None
    freeze_prior: bool = False
    steps: int = 2000
    batch: int = 8
    lr: float = 1e-3
    d_lr: float = 1e-3
    region_weight: float = 5.0
    perceptual_weight: float = 1.0
    mask_weight: float = 0.5
    adversarial_weight: float = 0.05
    feature_match_weight: float = 1.0
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1:
            raise ConfigError("steps must be >= 0 and batch >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be within [0, 1), got {self.val_fraction}")
        self.model_config()  # validates the shape

    def model_config(self) -> HairNetConfig:
        return HairNetConfig(
            arch=self.arch, size=self.size, channel_base=self.channel_base, channel_max=self.channel_max,
            w_dim=self.w_dim, width=self.width, downs=self.downs, blocks=self.blocks, edit=self.edit,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HairTrainOptions:
        return from_settings(cls, data, "hairnet options")


class HairNetTrainer:
    """Train a hair model on ``(before, after, mask)`` arrays (see :func:`load_hair_pairs`)."""

    def __init__(
        self,
        before: np.ndarray,
        after: np.ndarray,
        masks: np.ndarray,
        options: HairTrainOptions | None = None,
        *,
        resume: str | os.PathLike[str] | None = None,
    ) -> None:
        from portraitfx.train.invert.features import pyramid_features

        self.options = o = options or HairTrainOptions()
        s = o.size
        if before.shape != after.shape or before.shape[1:] != (s, s, 3) or masks.shape != before.shape[:3]:
            raise ConfigError(
                f"pairs must be N x {s} x {s} x 3 (and N x {s} x {s} masks), got {before.shape}, {after.shape}, {masks.shape}"
            )
        n_val = min(int(round(len(before) * o.val_fraction)), len(before) - 2)
        self.train_idx = np.arange(len(before) - n_val)
        self.val_idx = np.arange(len(before) - n_val, len(before))
        self.before, self.after, self.masks = before, after, masks.astype(np.float32)
        self.features = pyramid_features
        self.rng = torch.Generator().manual_seed(o.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.net = build_hairnet(o.model_config())
            self.D = MultiScaleDiscriminator()
        if o.prior and o.arch == "glean" and resume is None:
            from portraitfx.train.stylegan.checkpoint import load_generator

            self.net.load_prior(load_generator(o.prior), freeze=o.freeze_prior)  # type: ignore[operator]
        elif o.prior and o.arch == "glean" and o.freeze_prior:
            self.net.prior.requires_grad_(False)  # type: ignore[union-attr]
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=o.lr, betas=(0.5, 0.99))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.d_lr, betas=(0.5, 0.99))
        self.step_count = 0
        self.history: list[dict[str, Any]] = []
        if resume is not None:
            state, _ = load_run(
                resume, kind=RUN_KIND, what="hair model training checkpoint", nets={"H": self.net, "D": self.D},
                optimisers={"opt": self.opt, "opt_D": self.opt_D}, rng=self.rng,
            )  # fmt: skip
            self.step_count, self.history = int(state["step"]), list(state["history"])

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_run(
            path, kind=RUN_KIND, nets={"H": self.net, "D": self.D}, optimisers={"opt": self.opt, "opt_D": self.opt_D},
            rng=self.rng, state={"step": self.step_count, "history": self.history},
            meta={"config": json.dumps(self.net.cfg.to_dict()), "options": json.dumps(asdict(self.options))},
        )  # fmt: skip

    # -- one step ---------------------------------------------------------------------
    def _tensors(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.before[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = torch.from_numpy(self.after[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
        m = torch.from_numpy(self.masks[idx])[:, None]
        return x.contiguous(), y.contiguous(), m.contiguous()

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pick = torch.randint(0, len(self.train_idx), (self.options.batch,), generator=self.rng).numpy()
        x, y, m = self._tensors(self.train_idx[pick])
        flip = torch.rand(len(pick), generator=self.rng) < 0.5
        if flip.any():
            x[flip], y[flip], m[flip] = x[flip].flip(3), y[flip].flip(3), m[flip].flip(3)
        return x, y, m

    def step(self) -> dict[str, float]:
        o = self.options
        x, y, m = self._batch()
        gan = o.adversarial_weight > 0
        logs: dict[str, float] = {}
        out, mask = self.net(x)
        if gan:
            real = self.D(torch.cat([x, y], 1))
            fake = self.D(torch.cat([x, out.detach()], 1))
            loss_d = sum(
                ((r[-1] - 1).square().mean() + f[-1].square().mean()) for r, f in zip(real, fake, strict=True)
            )
            self.opt_D.zero_grad(set_to_none=True)
            loss_d.backward()  # type: ignore[union-attr]
            self.opt_D.step()
            logs["d"] = float(loss_d.detach())  # type: ignore[union-attr]
        weight = 1.0 + (o.region_weight - 1.0) * m
        l1 = ((out - y).abs() * weight).mean() / weight.mean()
        perc = sum(
            ((a - b).abs().mean() for a, b in zip(self.features(out), self.features(y), strict=True)),
            start=out.new_zeros([]),
        )
        l_mask = F.binary_cross_entropy(mask.clamp(1e-5, 1 - 1e-5), m.clamp(0, 1))
        loss = l1 + o.perceptual_weight * perc + o.mask_weight * l_mask
        if gan:
            real = self.D(torch.cat([x, y], 1))
            fake = self.D(torch.cat([x, out], 1))
            adv = sum((f[-1] - 1).square().mean() for f in fake)
            fm = sum(
                (a - b.detach()).abs().mean()
                for rf, ff in zip(real, fake, strict=True)
                for a, b in zip(ff[:-1], rf[:-1], strict=True)
            )
            loss = loss + o.adversarial_weight * adv + o.feature_match_weight * o.adversarial_weight * fm
            logs.update(adversarial=float(adv.detach()), feature_match=float(fm.detach()))  # type: ignore[union-attr]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        logs.update(l1=float(l1.detach()), perceptual=float(perc.detach()), mask=float(l_mask.detach()))
        return logs

    # -- evaluation -------------------------------------------------------------------
    def predict(self, images: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """The model's edited images (uint8) and masks (float) for ``N x S x S x 3`` uint8 inputs."""
        self.net.eval()
        outs, masks = [], []
        try:
            with torch.no_grad():
                for k in range(0, len(images), batch):
                    x = torch.from_numpy(images[k : k + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
                    y, m = self.net(x)
                    outs.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
                    masks.append(m[:, 0].numpy())
        finally:
            self.net.train()
        return np.concatenate(outs), np.concatenate(masks)

    def validate(self) -> dict[str, float]:
        """On the held-out pairs: PSNR of the output, and of the unedited input (the identity baseline), to
        the target, over the whole crop and inside the edit region."""
        idx = self.val_idx if len(self.val_idx) else self.train_idx[: min(8, len(self.train_idx))]
        pred, _ = self.predict(self.before[idx])
        target = self.after[idx].astype(np.float64)
        region = self.masks[idx][..., None] > 0.5

        def psnr(a: np.ndarray, inside: bool) -> float:
            err = (a.astype(np.float64) - target) ** 2
            if inside:
                err = np.where(region, err, np.nan)
            mse = np.nanmean(err.reshape(len(idx), -1), 1)
            return float(np.nanmean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))

        return {
            "psnr": psnr(pred, False),
            "psnr_edit": psnr(pred, True),
            "identity_psnr": psnr(self.before[idx], False),
            "identity_psnr_edit": psnr(self.before[idx], True),
        }

    # -- runs -------------------------------------------------------------------------
    def train(
        self, run_dir: str | os.PathLike[str] | None = None, *, log_every: int = 100, progress: bool = False
    ) -> list[dict[str, Any]]:
        """Train up to ``options.steps`` (a resumed run continues), logging, previewing and checkpointing."""
        from tqdm import tqdm

        o = self.options
        folder = Path(run_dir) if run_dir is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        totals: dict[str, float] = {}
        count, t0 = 0, time.perf_counter()
        with tqdm(
            total=o.steps, initial=self.step_count, unit="step", disable=not progress, leave=False
        ) as bar:
            while self.step_count < o.steps:
                for k, v in self.step().items():
                    totals[k] = totals.get(k, 0.0) + v
                count += 1
                bar.update(1)
                bar.set_postfix(l1=f"{totals['l1'] / count:.4f}")
                if self.step_count % log_every == 0 or self.step_count == o.steps:
                    line: dict[str, Any] = {
                        "step": self.step_count,
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                    line.update({k: round(v / count, 5) for k, v in totals.items()})
                    line.update({k: round(v, 3) for k, v in self.validate().items()})
                    self.history.append(line)
                    totals, count = {}, 0
                    if folder is not None:
                        with open(folder / "log.jsonl", "a", encoding="utf-8") as fh:
                            fh.write(json.dumps(line) + "\n")
                        self.preview(folder / "preview.png")
                        self.save(folder / "checkpoint.safetensors")
        if folder is not None:
            save_hairnet(
                folder / "hairnet.safetensors",
                self.net,
                extra={"steps": self.step_count, "options": asdict(o)},
            )
        return self.history

    def preview(self, path: str | os.PathLike[str], rows: int = 4) -> Path:
        """A sheet of held-out pairs: input | output | target | predicted mask."""
        from portraitfx.io.images import save_image
        from portraitfx.train.stylegan.networks import grid

        idx = (self.val_idx if len(self.val_idx) else self.train_idx)[:rows]
        pred, masks = self.predict(self.before[idx])
        mask_rgb = (np.repeat(masks[..., None], 3, -1) * 255).astype(np.uint8)
        tiles = np.stack(
            [
                t
                for k in range(len(idx))
                for t in (self.before[idx][k], pred[k], self.after[idx][k], mask_rgb[k])
            ]
        )
        return save_image(path, grid(tiles, columns=4))


# --------------------------------------------------------------------------- export


def export_hairnet(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, tolerance: float = 1e-3
) -> dict[str, Any]:
    """Export a hair model (``hairnet.safetensors`` or a run's checkpoint) to ONNX, checked against PyTorch.

    The file has the contract :class:`~portraitfx.effects.hair.model.HairModel` runs:
    input ``image`` ``(1, 3, S, S)`` in [-1, 1], outputs ``edited`` and ``mask``, and
    ``{"kind": "hairnet", "size", "edit", "arch"}`` under the metadata key ``portraitfx``.
    """
    import onnx
    import onnxruntime as ort

    from portraitfx.io.paths import check_output_path

    check_output_path(out)
    net = load_hairnet(checkpoint).eval()
    cfg: HairNetConfig = net.cfg  # type: ignore[assignment]
    s = cfg.size
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, torch.zeros(1, 3, s, s), buf, input_names=["image"], output_names=["edited", "mask"],
            opset_version=17, dynamo=False,
        )  # fmt: skip
    model = onnx.load_from_string(buf.getvalue())
    info = {"kind": "hairnet", "size": s, "edit": cfg.edit, "arch": cfg.arch}
    entry = model.metadata_props.add()
    entry.key, entry.value = "portraitfx", json.dumps(info)
    data = model.SerializeToString()
    # the file must compute what PyTorch computes
    x = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        want = [t.numpy() for t in net(x)]
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(["edited", "mask"], {"image": x.numpy()})
    err = max(float(np.abs(a - b).max()) for a, b in zip(got, want, strict=True))
    if err > tolerance:
        raise ModelError(f"the ONNX export differs from the PyTorch model by {err:.2e} (> {tolerance:g})")
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {**info, "max_abs_error": err, "bytes": len(data)}
