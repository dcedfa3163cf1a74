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
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from portraitfx.errors import ConfigError, InputError
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


def _done(out: Path, index: int) -> bool:
    name = f"{index:06d}.png"
    return (out / "face" / name).is_file() and (out / "style" / name).is_file()


def _write_range(
    face: Generator, style: Generator, job: PairJob, out: Path, indices: Iterable[int]
) -> list[dict]:
    from portraitfx.io.images import save_image

    records = []
    for i in indices:
        if _done(out, i):
            continue
        ws, record = pair_latents(face, job, i)
        a, b = _render([face, style], ws)
        name = f"{i:06d}.png"
        save_image(out / "face" / name, a)
        save_image(out / "style" / name, b)  # written last: both files exist only when the pair is whole
        records.append({"index": i, "face": f"face/{name}", "style": f"style/{name}", **record})
    return records


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
    (folder / "face").mkdir(parents=True, exist_ok=True)
    (folder / "style").mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(job.total) if not _done(folder, i)]
    from tqdm import tqdm

    written: list[dict] = []
    with tqdm(
        total=job.total, initial=job.total - len(todo), unit="pair", disable=not progress, leave=False
    ) as bar:
        chunks = [todo[k : k + chunk] for k in range(0, len(todo), chunk)]
        if workers > 0 and chunks:
            written = _ray_pairs(face, style, folder, job, chunks, workers, bar)
        else:
            for part in chunks:
                written += _write_range(face, style, job, folder, part)
                bar.update(len(part))
    if written:  # one line per pair, in index order (a redone pair replaces its line)
        manifest = folder / "manifest.jsonl"
        records = {}
        if manifest.is_file():
            for line in manifest.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    records[int(record["index"])] = record
        records.update({int(r["index"]): r for r in written})
        tmp = manifest.with_name(manifest.name + ".tmp")
        tmp.write_text("".join(json.dumps(records[i]) + "\n" for i in sorted(records)), encoding="utf-8")
        os.replace(tmp, manifest)
    meta = folder / "job.json"
    if not meta.exists():
        meta.write_text(json.dumps({**asdict(job), "latents": list(job.latents)}, indent=2))
    return len(written)


def _ray_pairs(
    face: Generator, style: Generator, folder: Path, job: PairJob, chunks: list[list[int]], workers: int, bar
) -> list[dict]:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)

    @ray.remote(num_cpus=1)
    class _Worker:
        def __init__(self, face_state: dict, style_state: dict, cfg: dict) -> None:
            from portraitfx.train.stylegan.checkpoint import build_generator, config_from_dict

            torch.set_num_threads(1)
            c = config_from_dict(cfg)
            self.face, self.style = build_generator(c).eval(), build_generator(c).eval()
            self.face.load_state_dict(face_state)
            self.style.load_state_dict(style_state)

        def run(self, indices: list[int]) -> list[dict]:
            return _write_range(self.face, self.style, job, folder, indices)

    cfg = face.cfg.to_dict()
    pool = [_Worker.remote(face.state_dict(), style.state_dict(), cfg) for _ in range(workers)]
    pending = {}
    queue = list(chunks)
    written: list[dict] = []
    for w in pool:
        if queue:
            part = queue.pop(0)
            pending[w.run.remote(part)] = (w, len(part))
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        w, size = pending.pop(done[0])
        written += ray.get(done[0])
        bar.update(size)
        if queue:
            part = queue.pop(0)
            pending[w.run.remote(part)] = (w, len(part))
    for w in pool:
        ray.kill(w)
    return written
