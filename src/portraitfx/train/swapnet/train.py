"""Training the swap network (seed 004), on one process or many (``torchrun``), resumable.

Each step, for a batch of targets (aligned crops of the prepared data):

* a source identity per target: the target's own person at ``same_rate`` (then the
  right output is the target itself: the reconstruction loss), another person
  otherwise;
* augmentations (seed 004): random occluders pasted on the target (hands, mics,
  glasses stand-ins: the network learns to keep what is in front of the face), colour
  jitter (skin tones), small shifts (steadiness between frames);
* the output ``final = mask * swapped + (1 - mask) * target``, and the losses of
  :mod:`portraitfx.train.swapnet.losses`, each with its weight: identity (cosine, in
  the space of an identity encoder), reconstruction, 3-D landmarks (a small regressor
  distilled from the analysis' meshes, on the output, against the morphable model's
  source shape with the target's expression and pose), the flow's landmarks (the
  same points), flow smoothness, attributes (the network's own encoder features of output and target),
  contextual (skin tone), the multi-scale hinge adversarial loss, and the paste
  mask against the target's face region (else it learns to paste nothing).

``device`` (a GPU by default when there is one) and ``precision="bf16"`` (the networks'
passes under autocast, the losses in fp32) suit GPUs.

The **identity encoder** for the loss must be differentiable; dlib's is not. By
default a small CNN is first trained to reproduce the dlib descriptors of the
training crops (``id_steps``, distillation), then frozen: the loss then lives in the
same space as the identity vectors the engine feeds the network.

A run folder holds ``checkpoint.safetensors`` (everything to resume), ``swapnet.safetensors``
(the EMA network, to export), ``log.csv`` and sample sheets.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from portraitfx.errors import ConfigError, ModelError
from portraitfx.train.checkpoints import (
    load_network,
    load_run,
    read_metadata,
    save_network,
    save_run,
)
from portraitfx.train.distributed import ProcessGroup
from portraitfx.train.swapnet import losses as L
from portraitfx.train.swapnet.data import SwapData
from portraitfx.train.swapnet.networks import SwapNet, SwapNetConfig

__all__ = ["IdentityEncoder", "SwapTrainOptions", "SwapTrainer", "load_swapnet", "save_swapnet"]

KIND = "portraitfx-swapnet"
IDENTITY_KIND = "portraitfx-swapnet-identity"
RUN_KIND = "portraitfx-swapnet-run"
LANDMARKS = tuple(range(0, 468, 6))  # every 6th mesh point: outline, features, cheeks


class IdentityEncoder(nn.Module):
    """A small CNN to a 128-d unit vector (distilled from dlib's descriptors of the training crops)."""

    def __init__(self, dim: int = 128, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for i in range(5):
            out = width * 2 ** min(i, 3)
            # group norm, not batch norm: per sample, so a batch split over processes changes nothing
            layers += [
                nn.Conv2d(c, out, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(4, out),
                nn.LeakyReLU(0.2),
            ]
            c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` in [0, 1] -> ``(N, dim)`` unit vectors."""
        h = self.features(image * 2 - 1)
        return F.normalize(self.head(F.adaptive_avg_pool2d(h, 1).flatten(1)), dim=1)


class LandmarkRegressor(IdentityEncoder):
    """The same small CNN to ``K`` 3-D mesh points in crop pixels (distilled from the analysis' meshes)."""

    def __init__(self, points: int, width: int = 16) -> None:
        super().__init__(points * 3, width)
        self.points = points

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.features(image * 2 - 1)
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1)).view(-1, self.points, 3) * image.shape[-1]


@dataclass
class SwapTrainOptions:
    size: int = 128
    width: int = 16
    max_channels: int = 256
    flow: bool = True
    batch: int = 4
    lr: float = 2e-4
    same_rate: float = 0.3
    identity_weight: float = 10.0
    reconstruction_weight: float = 10.0
    flow_weight: float = 1.0
    landmark_weight: float = 1.0
    tv_weight: float = 0.1
    attribute_weight: float = 1.0
    contextual_weight: float = 0.5
    adversarial_weight: float = 1.0
    mask_weight: float = 1.0
    occlusion: float = 0.3
    colour_jitter: float = 0.1
    shift: float = 0.02
    id_steps: int = 200
    identity: str = "dlib"
    ema: float = 0.999
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.same_rate <= 1.0 or not 0.0 <= self.occlusion <= 1.0:
            raise ConfigError("same_rate and occlusion are probabilities (0..1)")
        if self.identity not in ("dlib", "arcface"):
            raise ConfigError(f"identity must be 'dlib' or 'arcface', got {self.identity!r}")
        self.net_config()

    def net_config(self) -> SwapNetConfig:
        return SwapNetConfig(size=self.size, width=self.width, max_channels=self.max_channels, flow=self.flow)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwapTrainOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown swapnet training settings: {', '.join(sorted(unknown))}")
        return cls(**data)


def save_swapnet(path: str | os.PathLike[str], net: SwapNet, *, extra: dict[str, Any] | None = None) -> Path:
    return save_network(path, net, kind=KIND, prefix="G", config=net.cfg.to_dict(), extra=extra)


def _meta(path: str | os.PathLike[str]) -> dict[str, str]:
    return read_metadata(path, "a safetensors swap network")


def load_swapnet(path: str | os.PathLike[str]) -> SwapNet:
    """The network of a ``swapnet.safetensors`` or of a run's checkpoint (its EMA copy)."""
    build = lambda cfg: SwapNet(SwapNetConfig.from_dict(cfg))  # noqa: E731
    return load_network(path, build, kinds={KIND: "G", RUN_KIND: "G_ema"}, what="swap network")  # type: ignore[return-value]


class SwapTrainer:
    """See the module. ``data``: :class:`~portraitfx.train.swapnet.data.SwapData` at ``options.size``."""

    def __init__(
        self,
        data: SwapData,
        options: SwapTrainOptions | None = None,
        *,
        resume: str | os.PathLike[str] | None = None,
        distributed: bool | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
    ) -> None:
        from portraitfx.train.student.train import PatchDiscriminator
        from portraitfx.train.stylegan.train import _resolve_device
        from portraitfx.train.swapnet.morphable import build_basis

        self.options = o = options or SwapTrainOptions()
        if data.size != o.size:
            raise ConfigError(f"the data is at {data.size} px, the run at {o.size}")
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {precision!r}")
        self.device = _resolve_device(device)
        self.precision = precision
        self.group = ProcessGroup(distributed, self.device)
        self.group.check_batch(o.batch)
        self.data = data
        people = np.unique(data.person)
        self.by_person = {int(p): np.flatnonzero(data.person == p) for p in people}
        self.others = {int(p): np.flatnonzero(data.person != p) for p in people}
        self._regions: dict[int, np.ndarray] = {}
        self.basis = build_basis(data.meshes, data.person.tolist(), k_shape=min(20, len(people) - 1))
        self.fits = [self.basis.fit(m) for m in data.meshes]
        self.rng = torch.Generator().manual_seed(o.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.G = SwapNet(o.net_config())
            self.D = nn.ModuleList([PatchDiscriminator(32, 3), PatchDiscriminator(32, 3)])
            self.E = IdentityEncoder(data.ids.shape[1])
            self.Lm = LandmarkRegressor(len(LANDMARKS))
            n_people = int(data.person.max()) + 1
            self.arc_centres = nn.Parameter(torch.randn(n_people, data.ids.shape[1]))  # ArcFace class centres
            self._arc_holder = nn.ParameterList([self.arc_centres])
        for net in (self.G, self.D, self.E, self.Lm):
            net.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr, betas=(0.0, 0.99))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.lr, betas=(0.0, 0.99))
        self.arc_centres.data = self.arc_centres.data.to(self.device)
        self.opt_E = torch.optim.Adam(
            [*self.E.parameters(), *self.Lm.parameters(), self.arc_centres], lr=1e-3
        )
        self.step_count = 0
        self.id_step = 0
        self.history: list[dict[str, float]] = []
        if resume is not None:
            self._resume(resume)

    # -- batches (every draw for the whole batch, then this process's share) -----------
    def _indices(self) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        b, n = self.options.batch, len(self.data)
        targets = torch.randint(0, n, (b,), generator=self.rng).numpy()
        same = torch.rand(b, generator=self.rng) < self.options.same_rate
        pick = torch.rand(b, generator=self.rng).numpy()
        sources = np.empty(b, np.int64)
        for i, t in enumerate(targets):
            who = int(self.data.person[t])
            pool = self.by_person[who] if bool(same[i]) else self.others[who]
            sources[i] = pool[min(int(pick[i] * len(pool)), len(pool) - 1)]
        return targets, sources, same

    def _augment(self, x: torch.Tensor, lm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Occluders, colour jitter and a small shift (whole-batch draws; the landmarks move with the shift)."""
        o, b, s = self.options, x.shape[0], x.shape[-1]
        occ = torch.rand(b, generator=self.rng) < o.occlusion
        box = torch.rand(b, 4, generator=self.rng)
        colour = torch.rand(b, 3, generator=self.rng)
        gain = 1 + (torch.rand(b, 3, generator=self.rng) * 2 - 1) * o.colour_jitter
        shift = ((torch.rand(b, 2, generator=self.rng) * 2 - 1) * o.shift * s).round()
        out = x.clone()
        for i in range(b):
            if bool(occ[i]):  # a rectangle over the lower or side part of the face
                w, h = int(s * (0.15 + 0.25 * box[i, 0])), int(s * (0.1 + 0.3 * box[i, 1]))
                x0, y0 = int((s - w) * box[i, 2]), int(s * 0.45 + (s * 0.55 - h) * box[i, 3])
                out[i, :, y0 : y0 + h, x0 : x0 + w] = colour[i][:, None, None]
        out = (out * gain[:, :, None, None]).clamp(0, 1)
        dx, dy = shift[:, 0], shift[:, 1]
        out = torch.stack([torch.roll(out[i], (int(dy[i]), int(dx[i])), dims=(1, 2)) for i in range(b)])
        return out, lm + shift[:, None, :]

    def _batch(self) -> dict[str, torch.Tensor]:
        t_idx, s_idx, same = self._indices()
        d = self.data
        target = torch.from_numpy(d.crops[t_idx]).permute(0, 3, 1, 2).float() / 255
        lm_t = torch.from_numpy(d.meshes[t_idx][:, LANDMARKS, :2]).float()
        wanted3d = np.stack(
            [
                self.basis.combine(self.fits[s], self.fits[t])[list(LANDMARKS)]
                for s, t in zip(s_idx, t_idx, strict=True)
            ]
        )
        wanted = wanted3d[:, :, :2]
        region = torch.from_numpy(np.stack([self._face_region(int(t)) for t in t_idx]))[:, None]
        target, lm_t = self._augment(target, lm_t)
        shift = lm_t - torch.from_numpy(d.meshes[t_idx][:, LANDMARKS, :2]).float()
        region = torch.stack([torch.roll(region[i], (int(shift[i, 0, 1]), int(shift[i, 0, 0])), dims=(1, 2))
                              for i in range(len(region))])  # fmt: skip
        batch = {
            "target": target,
            "source": torch.from_numpy(d.crops[s_idx]).permute(0, 3, 1, 2).float() / 255,
            "identity": torch.from_numpy(d.ids[s_idx]),
            "same": same,
            "landmarks": lm_t,
            "wanted": torch.from_numpy(wanted).float() + shift,
            "wanted3d": torch.from_numpy(wanted3d).float() + F.pad(shift, (0, 1)),
            "region": region,
        }
        return {k: self.group.share(v) for k, v in batch.items()}

    def _face_region(self, index: int) -> np.ndarray:
        """The face (with forehead) of sample ``index`` as a float mask in crop pixels (cached)."""
        cache = self._regions
        if index not in cache:
            from portraitfx.face.regions import region_mask

            s = self.options.size
            cache[index] = region_mask(
                (s, s), self.data.meshes[index][:, :2], "face_forehead", forehead=0.2
            ).astype(np.float32)
        return cache[index]

    # -- the identity encoder (distilled from dlib) ----------------------------------------
    def train_identity(self, steps: int | None = None) -> float:
        """Train :class:`IdentityEncoder`; returns the final mean cosine (to dlib, or to the own class centre).

        ``identity="dlib"``: distilled to the crops' dlib descriptors. ``"arcface"``:
        trained on who each crop is, with an additive angular margin (ArcFace: ``s *
        cos(theta + m)`` for the right person), so the network gets an identity space
        of its own, exported beside it.
        """
        steps = self.options.id_steps if steps is None else steps
        cos = 0.0
        self.E.train()
        arcface = self.options.identity == "arcface"
        while self.id_step < steps:
            idx = torch.randint(0, len(self.data), (max(self.options.batch, 8),), generator=self.rng).numpy()
            x = torch.from_numpy(self.data.crops[idx]).permute(0, 3, 1, 2).float() / 255
            x = self.group.share(x)
            mesh = self.group.share(torch.from_numpy(self.data.meshes[idx][:, LANDMARKS]))
            landmark_loss = L.landmark_loss(self.Lm(x), mesh) / self.options.size
            emb = self.E(x)
            if arcface:
                labels = self.group.share(torch.from_numpy(self.data.person[idx]))
                cosines = emb @ F.normalize(self.arc_centres, dim=1).T
                theta = torch.acos(cosines.clamp(-1 + 1e-6, 1 - 1e-6))
                target = F.one_hot(labels, cosines.shape[1]).bool()
                logits = 30.0 * torch.where(target, torch.cos(theta + 0.3), cosines)
                loss = F.cross_entropy(logits, labels)
                sim = cosines[target]
            else:
                want = self.group.share(torch.from_numpy(self.data.ids[idx]))
                sim = F.cosine_similarity(emb, want, dim=1)
                loss = (1 - sim).mean()
            self.opt_E.zero_grad(set_to_none=True)
            (loss + landmark_loss).backward()
            self.group.sync_grads(self.E)
            self.group.sync_grads(self.Lm)
            if arcface:
                self.group.sync_grads(self._arc_holder)
            self.opt_E.step()
            (cos,) = self.group.mean(sim.detach().mean())
            self.id_step += 1
        self.E.eval().requires_grad_(False)
        self.Lm.eval().requires_grad_(False)
        return cos

    # -- one step -----------------------------------------------------------------------
    def _autocast(self) -> Any:
        """bf16 autocast for the networks' passes (the losses are computed in fp32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def step(self) -> dict[str, float]:
        o = self.options
        if self.id_step < o.id_steps:
            self.train_identity()
        b = self._batch()
        target, identity = b["target"], b["identity"]
        if o.identity == "arcface":  # the network's own identity space
            with torch.no_grad():
                identity = self.E(b["source"])
        # discriminators
        with torch.no_grad(), self._autocast():
            out, mask = self.G(target, identity)
            fake = (mask * out + (1 - mask) * target).float()
        with self._autocast():
            real_scores, fake_scores = self._judge(target), self._judge(fake)
        loss_d = L.hinge_d([r.float() for r in real_scores], [f.float() for f in fake_scores])
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.group.sync_grads(self.D)
        self.opt_D.step()
        # generator
        with self._autocast():
            out, mask = self.G(target, identity)
            flow = self.G.flow_pixels()
            final = mask * out + (1 - mask) * target
            id_out = self.E(final)
            landmarks_out = self.Lm(final)
            feats_out = self.G.encode(final)
            with torch.no_grad():
                feats_target = self.G.encode(target)
            scores = self._judge(final)
        final, mask = final.float(), mask.float()
        feats_out, feats_target = [f.float() for f in feats_out], [f.float() for f in feats_target]
        terms: dict[str, torch.Tensor] = {
            "identity": L.identity_loss(id_out.float(), identity),
            # 3-D landmarks of the output (the distilled regressor) against the morphable model's
            "landmark": L.landmark_loss(landmarks_out.float(), b["wanted3d"]) / o.size,
            "reconstruction": L.reconstruction_loss(final, target, b["same"]),
            "attribute": L.attribute_loss(feats_out[1:], feats_target[1:]),
            "contextual": L.contextual_loss(feats_out[2], feats_target[2]),
            "adversarial": L.hinge_g([x.float() for x in scores]),
            # the paste mask covers the face: without this it can learn to paste nothing at all
            "mask": F.binary_cross_entropy(mask.clamp(1e-4, 1 - 1e-4), b["region"]),
        }
        flow = flow.float() if flow is not None else None
        if flow is not None:
            terms["flow"] = L.flow_landmark_loss(flow, b["wanted"], b["landmarks"])
            terms["tv"] = L.tv_loss(flow)
        weights = {"identity": o.identity_weight, "reconstruction": o.reconstruction_weight, "flow": o.flow_weight,
                   "tv": o.tv_weight, "attribute": o.attribute_weight, "contextual": o.contextual_weight,
                   "adversarial": o.adversarial_weight, "mask": o.mask_weight,
                   "landmark": o.landmark_weight}  # fmt: skip
        loss = sum((weights[k] * v for k, v in terms.items()), start=target.new_zeros([]))
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.group.sync_grads(self.G)
        self.opt_G.step()
        with torch.no_grad():
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                pe.lerp_(p, 1 - o.ema)
        self.step_count += 1
        keys = sorted(terms)
        values = self.group.mean(loss_d.detach(), loss.detach(), *(terms[k].detach() for k in keys))
        return {"d": values[0], "total": values[1], **dict(zip(keys, values[2:], strict=True))}

    def _judge(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = image * 2 - 1
        return [self.D[0](x), self.D[1](F.avg_pool2d(x, 2))]

    # -- runs -----------------------------------------------------------------------------
    def _parts(self) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
        nets = {"G": self.G, "G_ema": self.G_ema, "D": self.D, "E": self.E, "Lm": self.Lm}
        return nets, {"opt_G": self.opt_G, "opt_D": self.opt_D, "opt_E": self.opt_E}

    def save(self, path: str | os.PathLike[str]) -> Path:
        nets, optimisers = self._parts()
        state = {"step": self.step_count, "id_step": self.id_step, "history": self.history[-500:]}
        meta = {"config": json.dumps(self.G.cfg.to_dict()), "options": json.dumps(asdict(self.options))}
        return save_run(
            path, kind=RUN_KIND, nets=nets, optimisers=optimisers, rng=self.rng, state=state, meta=meta,
            tensors={"arc_centres": self.arc_centres.detach().cpu()},
        )  # fmt: skip

    def _resume(self, path: str | os.PathLike[str]) -> None:
        nets, optimisers = self._parts()
        state, tensors = load_run(
            path,
            kind=RUN_KIND,
            what="swapnet training checkpoint",
            nets=nets,
            optimisers=optimisers,
            rng=self.rng,
        )
        self.step_count, self.id_step, self.history = (
            int(state["step"]),
            int(state["id_step"]),
            state["history"],
        )
        with torch.no_grad():
            self.arc_centres.copy_(tensors["arc_centres"])
        if self.id_step >= self.options.id_steps:
            self.E.eval().requires_grad_(False)
            self.Lm.eval().requires_grad_(False)

    def train(
        self,
        steps: int,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        log_every: int = 50,
        progress: bool = False,
    ) -> list[dict[str, float]]:
        """Train until ``steps`` in total (a resumed run continues); process 0 writes the run folder."""
        from tqdm import tqdm

        folder = Path(run_dir) if run_dir is not None and self.group.main else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        totals: dict[str, float] = {}
        count, t0 = 0, time.perf_counter()
        bar = tqdm(total=steps, initial=min(self.step_count, steps), unit="step", leave=False,
                   disable=not (progress and self.group.main))  # fmt: skip
        with bar:
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
                        self._log(folder, line)
                        self.save(folder / "checkpoint.safetensors")
                        save_swapnet(
                            folder / "swapnet.safetensors", self.G_ema, extra={"step": self.step_count}
                        )
                        if self.options.identity == "arcface":  # the export needs it beside the network
                            save_network(folder / "identity.safetensors", self.E, kind=IDENTITY_KIND, prefix="E",
                                         config={"dim": self.E.head.out_features})  # fmt: skip
        return self.history

    def _log(self, folder: Path, line: dict[str, float]) -> None:
        path = folder / "log.csv"
        new = not path.exists()
        with open(path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(line))
            if new:
                writer.writeheader()
            writer.writerow(line)
        self._sheet(folder / f"samples-{self.step_count:07d}.png")

    @torch.no_grad()
    def _sheet(self, path: Path) -> None:
        """Rows: targets, sources, swaps (the EMA network), for four fixed pairs."""
        from portraitfx.io.images import save_image
        from portraitfx.train.stylegan.networks import grid

        d = self.data
        rng = np.random.default_rng(0)
        targets = rng.choice(len(d), 4, replace=len(d) < 4)
        sources = np.array([rng.choice(self.others[int(d.person[t])]) for t in targets])
        x = torch.from_numpy(d.crops[targets]).permute(0, 3, 1, 2).float() / 255
        out, mask = self.G_ema(x, torch.from_numpy(d.ids[sources]))
        swapped = (
            ((mask * out + (1 - mask) * x) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        )
        rows = np.concatenate([d.crops[targets], d.crops[sources], swapped.numpy()])
        save_image(path, grid(rows, columns=4))


def options_from_run(path: str | os.PathLike[str]) -> SwapTrainOptions:
    meta = _meta(path)
    if meta.get("portraitfx") != RUN_KIND:
        raise ModelError(f"'{path}' is not a swapnet training checkpoint")
    return SwapTrainOptions.from_dict(json.loads(meta["options"]))


def load_identity_encoder(path: str | os.PathLike[str]) -> IdentityEncoder:
    """The ArcFace-style identity encoder an ``identity: arcface`` run keeps beside its network."""
    build = lambda cfg: IdentityEncoder(int(cfg["dim"]))  # noqa: E731
    return load_network(path, build, kinds={IDENTITY_KIND: "E"}, what="swap identity encoder")  # type: ignore[return-value]
