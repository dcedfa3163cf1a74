"""Paired training data from two generators that share a latent space (seeds 000 and 001).

A style model fine-tuned from a face model (or a fusion of the two) draws "the same
person" in its style from the same latents. Rendering each latent through both gives
an aligned (face, stylised) pair, the training data of an image-to-image network (the
real-time student of seed 000, the hair editor of seed 001):

* latents are sampled (``z`` from a per-index seed, with a truncation option) or come
  from inverted photos (``ws`` saved by ``portraitfx stylegan invert``);
* both images use the same ``ws`` (and each model's fixed noise maps: the same ones
  when the style model was fine-tuned from the face model);
* **interpolation** (seed 001's augmentation): between consecutive latents, extra pairs
  at random points on the line between them;
* output: ``DIR/face/NNNNNN.png``, ``DIR/style/NNNNNN.png`` and ``DIR/manifest.jsonl``
  (one line per pair: index, kind, seed or source, truncation). Each pair is a pure
  function of its index, so a run that stopped resumes by skipping finished pairs,
  and indices can be spread over Ray workers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portraitfx.errors import ConfigError, InputError
from portraitfx.train.pairfolder import is_done, pair_names, write_pairs
from portraitfx.train.stylegan.networks import Generator, to_uint8

__all__ = ["PairJob", "encode_photos", "generate_pairs", "pair_latents"]


@dataclass(frozen=True)
class PairJob:
    """What to generate: ``n`` sampled pairs, then ``interpolate`` per consecutive latents, plus inverted ``latents``."""

    n: int
    seed: int = 0
    truncation: float = 0.7
    interpolate: int = 0
    latents: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 0 or self.interpolate < 0:
            raise ConfigError("the number of pairs and of interpolations must be >= 0")
        if not 0.0 <= self.truncation <= 1.0:
            raise ConfigError(f"truncation must be within 0..1, got {self.truncation}")

    @property
    def total(self) -> int:
        sampled = self.n + len(self.latents)
        return sampled + self.interpolate * max(sampled - 1, 0)


def _sample_w(face: Generator, seed: int, truncation: float) -> torch.Tensor:
    z = torch.randn(1, face.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    return face.mapping(z, truncation=truncation)


@functools.lru_cache(maxsize=64)
def _inverted_ws(path: str) -> torch.Tensor:
    """The ``ws`` of an inverted photo, read once per process (every pair that uses it asks again)."""
    from portraitfx.models.load import load_safetensors

    return load_safetensors(path)["ws"].float()


def encode_photos(
    face: Generator,
    encoder: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
) -> list[Path]:
    """Invert every photo in ``folder`` with an encoder; one latents file per photo in ``out`` (kept, reused)."""
    from portraitfx.io.images import load_image
    from portraitfx.models.load import save_safetensors
    from portraitfx.train.invert.encoder import encode, load_encoder
    from portraitfx.train.stylegan.train import image_files, square

    names = image_files(folder)
    if not names:
        raise InputError(f"'{folder}' holds no photos")
    paths = [Path(out) / f"{p.stem}.safetensors" for p in names]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        enc, _ = load_encoder(encoder, face)
        crops = np.stack([square(load_image(names[i]), face.cfg.resolution) for i in todo])
        images = torch.from_numpy(crops.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
        ws = encode(enc, images)
        Path(out).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(todo):
            meta = {"portraitfx": "stylegan2-latents", "space": "w+", "source": names[i].name}
            save_safetensors(paths[i], {"ws": ws[k : k + 1]}, meta)
    return paths


def pair_latents(face: Generator, job: PairJob, index: int) -> tuple[torch.Tensor, dict[str, object]]:
    """The ``ws`` of pair ``index`` and its manifest record (a pure function of the index)."""
    base = job.n + len(job.latents)

    def base_w(i: int) -> tuple[torch.Tensor, dict[str, object]]:
        if i < job.n:
            seed = job.seed * 1_000_003 + i
            return _sample_w(face, seed, job.truncation), {
                "kind": "sample",
                "seed": seed,
                "truncation": job.truncation,
            }
        path = job.latents[i - job.n]
        ws = _inverted_ws(path)
        if ws.shape[1:] != (face.cfg.num_ws, face.cfg.w_dim):
            raise ConfigError(f"'{path}' holds latents of another generator shape: {tuple(ws.shape)}")
        return ws[:1], {"kind": "inverted", "source": Path(path).name}

    if index < base:
        return base_w(index)
    k = (index - base) // job.interpolate
    t = float(torch.rand(1, generator=torch.Generator().manual_seed(job.seed * 7919 + index)))
    wa, ra = base_w(k)
    wb, rb = base_w(k + 1)
    return wa.lerp(wb, t), {"kind": "interpolated", "between": [k, k + 1], "t": round(t, 4), "of": [ra, rb]}


def _render(generators: Sequence[Generator], ws: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        return [to_uint8(g.synthesis(ws, noise_mode="const"))[0] for g in generators]


def _write_range(
    face: Generator, style: Generator, job: PairJob, out: Path, indices: Iterable[int]
) -> list[dict]:
    from portraitfx.io.images import save_image

    records = []
    for i in indices:
        if is_done(out, i):
            continue
        ws, record = pair_latents(face, job, i)
        a, b = _render([face, style], ws)
        face_name, style_name = pair_names(i)
        save_image(out / face_name, a)
        save_image(out / style_name, b)  # written last: both files exist only when the pair is whole
        records.append({"index": i, "face": face_name, "style": style_name, **record})
    return records


def _writer(face_state: dict, style_state: dict, cfg: dict, job: PairJob, out: Path) -> Any:
    """A writer with its own copies of the two generators (built where it runs: here or on a Ray worker)."""
    from portraitfx.train.stylegan.checkpoint import build_generator, config_from_dict

    c = config_from_dict(cfg)
    face, style = build_generator(c).eval(), build_generator(c).eval()
    face.load_state_dict(face_state)
    style.load_state_dict(style_state)
    return functools.partial(_write_range, face, style, job, out)


def generate_pairs(
    face: Generator,
    style: Generator,
    out: str | os.PathLike[str],
    job: PairJob,
    *,
    progress: bool = False,
    workers: int = 0,
    chunk: int = 64,
) -> int:
    """Write the job's pairs under ``out`` (skipping finished ones); returns how many were written.

    ``workers > 0`` spreads chunks of indices over that many Ray workers (``ray.init``
    is called if Ray is not running), each holding the two generators once.
    """
    if face.cfg != style.cfg:
        raise ConfigError(f"the two generators differ in shape: {face.cfg} vs {style.cfg}")
    folder = Path(out)
    if workers > 0:
        make = functools.partial(
            _writer, face.state_dict(), style.state_dict(), face.cfg.to_dict(), job, folder
        )
    else:
        make = functools.partial(functools.partial, _write_range, face, style, job, folder)
    meta = {**asdict(job), "latents": list(job.latents)}
    return write_pairs(folder, job.total, make, job=meta, progress=progress, workers=workers, chunk=chunk)
