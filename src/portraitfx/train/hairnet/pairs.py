"""Hair-edit training pairs from a StyleGAN generator by iterative reconstruction, and their interpolation.

For each index: take latents (sampled from the generator, or an inverted photo),
render the original, make a **crude edit** of it and reconstruct the edit through the
generator (:func:`~portraitfx.train.hairnet.reconstruct.reconstruct`). Crude edits:

* ``"classical"``: the model-free hair edit (:mod:`portraitfx.effects.hair`) on the
  render -- needs a generator that draws detectable faces (128 px and up);
* ``"template"``: blocks of colour at fixed places of the FFHQ-aligned framing every
  StyleGAN face model shares (bangs over the upper forehead, a band below the
  hairline, the hair region painted a flat colour), as the seed describes; works with
  any aligned generator, tiny test ones included;
* ``"auto"``: classical, falling back to the template when no face or hair is found.

A pair folder (see :mod:`portraitfx.train.pairfolder`) gets ``face/`` (before),
``style/`` (after: the reconstruction, pasted into the original through the feathered
edit mask), ``mask/`` (that mask, 8-bit) and ``latents/NNNNNN.npz`` (``before`` and
``after`` latents). :func:`interpolate_pairs` makes more pairs from those latents:
part-way edits (between a pair's two latents) and new people (between two pairs).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from portraitfx.errors import ConfigError, HairNotFoundError, InputError, NoFaceError
from portraitfx.train.hairnet.reconstruct import ReconstructOptions, reconstruct, w_statistics
from portraitfx.train.pairfolder import is_done, pair_names, write_pairs
from portraitfx.train.stylegan.networks import Generator, to_uint8

__all__ = [
    "EDIT_KINDS",
    "HairPairJob",
    "classical_edit",
    "interpolate_pairs",
    "make_pair",
    "template_edit",
    "write_hair_pairs",
]

EDIT_KINDS = ("bangs", "hairline", "recolor", "fill")
CRUDE_MODES = ("auto", "classical", "template")

# FFHQ framing, as fractions of the side: eyes at y 0.47, 0.25 apart
_BROWS_Y = 0.395
_HAIRLINE_Y = 0.21
_TOP_Y = 0.06


@dataclass(frozen=True)
class HairPairJob:
    """What to make: ``count`` pairs of one edit.

    Attributes:
        edit: ``"bangs"``, ``"hairline"``, ``"recolor"`` or ``"fill"``.
        count: number of pairs (indices ``0 .. count - 1``).
        seed: base seed; pair ``i`` uses ``seed + i``.
        truncation: truncation of sampled latents toward the average (1: none).
        crude: ``"auto"``, ``"classical"`` or ``"template"`` crude edits.
        amount: the edit's amount (as the ``portraitfx hair`` commands take it); for
            bangs and the hairline it varies by up to +-25 % per pair.
        colour: the recolour target (hex or name).
        photos: inverted photos' latents (``.npz`` with ``ws`` from ``stylegan invert``)
            used in turn instead of sampling.
        options: the reconstruction's settings.
    """

    edit: str = "bangs"
    count: int = 100
    seed: int = 0
    truncation: float = 0.7
    crude: str = "auto"
    amount: float | None = None
    colour: str = "platinum"
    photos: tuple[str, ...] = ()
    options: ReconstructOptions = field(default_factory=ReconstructOptions)

    def __post_init__(self) -> None:
        if self.edit not in EDIT_KINDS:
            raise ConfigError(f"unknown hair edit {self.edit!r}; choose from {', '.join(EDIT_KINDS)}")
        if self.crude not in CRUDE_MODES:
            raise ConfigError(f"crude edits are {', '.join(CRUDE_MODES)}, got {self.crude!r}")
        if self.count < 0:
            raise ConfigError("the number of pairs must be >= 0")
        if not 0.0 <= self.truncation <= 1.0:
            raise ConfigError(f"truncation must be within 0..1, got {self.truncation}")

    def amount_for(self, index: int) -> float:
        from portraitfx.effects.hair.effect import DEFAULT_AMOUNT

        base = DEFAULT_AMOUNT[self.edit] if self.amount is None else float(self.amount)
        if self.edit in ("bangs", "hairline"):
            jitter = np.random.default_rng([self.seed, index, 1]).uniform(-0.25, 0.25)
            base *= 1.0 + jitter
            base = float(np.clip(base, 0.2, 1.0)) if self.edit == "bangs" else float(np.clip(base, -0.6, 0.6))
        return base


# --------------------------------------------------------------------------- crude edits


def _ellipse(size: int, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return ((((xx + 0.5) / size - cx) / ax) ** 2 + (((yy + 0.5) / size - cy) / ay) ** 2 <= 1.0).astype(
        np.float32
    )


def _hair_colour(image: np.ndarray) -> np.ndarray:
    """Median colour of the top of the head in the FFHQ framing."""
    s = image.shape[0]
    patch = image[
        int(_TOP_Y * s) : max(int(0.16 * s), int(_TOP_Y * s) + 1), int(0.38 * s) : max(int(0.62 * s), 1)
    ]
    return np.median(patch.reshape(-1, 3), 0)


def template_edit(
    image: np.ndarray, edit: str, *, amount: float, colour: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A crude edit of an FFHQ-aligned ``S x S`` image: ``(edited uint8, mask float32)``.

    Bangs and hairline paint the hair's own colour (from the top of the head) over the
    forehead; recolour paints ``colour`` (RGB) over the hair region; fill paints the
    hair's colour over it.
    """
    s = image.shape[0]
    if image.shape[:2] != (s, s):
        raise ConfigError(f"template edits need a square aligned image, got {image.shape[:2]}")
    hair_rgb = _hair_colour(image)
    if edit == "bangs":
        bottom = _HAIRLINE_Y + float(np.clip(amount, 0.0, 1.0)) * (_BROWS_Y - 0.01 - _HAIRLINE_Y)
        mask = _ellipse(s, 0.5, _HAIRLINE_Y, 0.21, bottom - _HAIRLINE_Y) * (
            np.arange(s)[:, None] + 0.5 >= (_HAIRLINE_Y - 0.04) * s
        )
        paint = hair_rgb
    elif edit == "hairline":
        if amount >= 0:  # lower: hair over the top of the forehead
            depth = amount * (_BROWS_Y - _HAIRLINE_Y)
            mask = _ellipse(s, 0.5, _HAIRLINE_Y, 0.2, depth + 0.01)
            paint = hair_rgb
        else:  # raise: skin over the lowest hair
            depth = -amount * (_HAIRLINE_Y - _TOP_Y)
            mask = _ellipse(s, 0.5, _HAIRLINE_Y, 0.2, depth + 0.01) * (
                np.arange(s)[:, None] + 0.5 <= _HAIRLINE_Y * s
            )
            forehead = image[int(0.28 * s) : int(0.34 * s), int(0.42 * s) : int(0.58 * s)]
            paint = np.median(forehead.reshape(-1, 3), 0) if forehead.size else hair_rgb
    elif edit in ("recolor", "fill"):
        head = _ellipse(s, 0.5, 0.34, 0.33, 0.31)
        face = _ellipse(s, 0.5, 0.6, 0.24, 0.38)
        above = (np.arange(s)[:, None] + 0.5 <= 0.55 * s).astype(np.float32)
        mask = head * (1.0 - face) * above
        paint = np.asarray(colour, np.float32) if (edit == "recolor" and colour is not None) else hair_rgb
    else:
        raise ConfigError(f"unknown hair edit {edit!r}; choose from {', '.join(EDIT_KINDS)}")
    mask = mask.astype(np.float32)
    out = image.astype(np.float32)
    out = out * (1 - mask[..., None]) + np.asarray(paint, np.float32) * mask[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mask


def classical_edit(
    image: np.ndarray, edit: str, *, amount: float, colour: np.ndarray | None = None, analyzer: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The model-free hair edit on ``image``: ``(edited uint8, mask float32 of the changed region)``.

    Raises:
        NoFaceError, HairNotFoundError: nothing to edit (use :func:`template_edit`).
    """
    from portraitfx.effects.hair import (
        add_bangs,
        adjust_hairline,
        analyze_hair,
        fill_sparse,
        recolor,
        rgb_to_lab,
    )
    from portraitfx.face.analyze import FaceAnalyzer

    own = analyzer is None
    analyzer = analyzer or FaceAnalyzer(max_faces=1, min_face_size=16)
    try:
        faces = analyzer.analyze(image)
    finally:
        if own:
            analyzer.close()
    if not faces:
        raise NoFaceError("no face in the render")
    a = analyze_hair(image, faces[0])
    if edit == "bangs":
        result = add_bangs(image, a, amount=amount)
    elif edit == "hairline":
        result = adjust_hairline(image, a, amount)
    elif edit == "recolor":
        target = rgb_to_lab(np.asarray(colour if colour is not None else (220, 214, 196)))
        result = recolor(image, a, target, strength=min(max(amount, 0.0), 1.0))
    else:
        result = fill_sparse(image, a, amount=min(max(amount, 0.0), 1.0))
    return result.image, result.region.astype(np.float32)


# --------------------------------------------------------------------------- pairs


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def _latents(g: Generator, job: HairPairJob, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
    if job.photos:
        path = job.photos[index % len(job.photos)]
        with np.load(path, allow_pickle=False) as data:
            if "ws" not in data:
                raise InputError(f"'{path}' holds no 'ws' latents (make them with 'stylegan invert')")
            ws = torch.from_numpy(np.asarray(data["ws"], np.float32)).reshape(1, g.cfg.num_ws, g.cfg.w_dim)
        return ws, {"source": str(path)}
    gen = torch.Generator().manual_seed(job.seed + index)
    with torch.no_grad():
        z = torch.randn(1, g.cfg.z_dim, generator=gen)
        w = g.mapping(z)
        if job.truncation < 1.0:
            w_avg = g.mapping(
                torch.randn(512, g.cfg.z_dim, generator=torch.Generator().manual_seed(12345))
            ).mean(0)
            w = w_avg + job.truncation * (w - w_avg)
    return w, {"seed": job.seed + index, "truncation": job.truncation}


def make_pair(
    g: Generator,
    job: HairPairJob,
    index: int,
    *,
    w_stats: tuple[torch.Tensor, float] | None = None,
    analyzer: Any = None,
) -> dict[str, Any]:
    """One pair: ``{"before", "after", "mask"`` (uint8 images), ``"ws_before", "ws_after"``, ``"record"}``."""
    ws, record = _latents(g, job, index)
    with torch.no_grad():
        before_t = g.synthesis(ws, noise_mode="const")
    before = to_uint8(before_t)[0]
    amount = job.amount_for(index)
    colour = None
    if job.edit == "recolor":
        from portraitfx.effects.hair.colors import parse_colour

        colour = np.asarray(parse_colour(job.colour), np.float32)
    used = job.crude
    if job.crude in ("auto", "classical"):
        try:
            crude, mask = classical_edit(before, job.edit, amount=amount, colour=colour, analyzer=analyzer)
            used = "classical"
        except (NoFaceError, HairNotFoundError, ConfigError):
            if job.crude == "classical":
                raise
            crude, mask = template_edit(before, job.edit, amount=amount, colour=colour)
            used = "template"
    else:
        crude, mask = template_edit(before, job.edit, amount=amount, colour=colour)
    mask_t = torch.from_numpy(mask.astype(np.float32))[None, None]
    rec = reconstruct(g, before_t, _to_tensor(crude), mask_t, ws, job.options, w_stats=w_stats)
    # the pair's target: the reconstruction through the feathered, slightly grown edit mask
    s = before.shape[0]
    k = max(int(round(job.options.margin * s)) * 2 + 1, 3)
    soft = cv2.dilate(mask.astype(np.float32), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    soft = np.clip(cv2.GaussianBlur(soft, (0, 0), k / 3.0), 0.0, 1.0)
    recon = to_uint8(rec.image)[0].astype(np.float32)
    after = np.clip(before * (1 - soft[..., None]) + recon * soft[..., None] + 0.5, 0, 255).astype(np.uint8)
    record = {
        **record,
        "edit": job.edit,
        "amount": round(amount, 4),
        "crude": used,
        "losses": {k: [round(v[0], 6), round(v[-1], 6)] for k, v in rec.losses.items()},
    }
    return {
        "before": before,
        "after": after,
        "crude": crude,
        "mask": (soft * 255 + 0.5).astype(np.uint8),
        "ws_before": ws.numpy(),
        "ws_after": rec.ws.numpy(),
        "record": record,
    }


def _save_pair(out: Path, index: int, pair: dict[str, Any]) -> dict[str, Any]:
    from portraitfx.io.images import save_image

    face_name, style_name = pair_names(index)
    name = f"{index:06d}"
    (out / "mask").mkdir(exist_ok=True)
    (out / "latents").mkdir(exist_ok=True)
    tmp = out / "latents" / f"{name}.tmp.npz"
    np.savez(tmp, before=pair["ws_before"].astype(np.float32), after=pair["ws_after"].astype(np.float32))
    os.replace(tmp, out / "latents" / f"{name}.npz")
    save_image(out / "mask" / f"{name}.png", pair["mask"])
    save_image(out / face_name, pair["before"])
    save_image(out / style_name, pair["after"])  # written last: the pair is whole once it exists
    return {
        "index": index,
        "face": face_name,
        "style": style_name,
        "mask": f"mask/{name}.png",
        **pair["record"],
    }


def _write_range(generator_path: str, job: HairPairJob, out: str, indices: list[int]) -> list[dict[str, Any]]:
    from portraitfx.train.stylegan.checkpoint import load_generator

    folder = Path(out)
    todo = [i for i in indices if not is_done(folder, i)]
    if not todo:
        return []
    g = _cached_generator(generator_path, load_generator)
    stats = w_statistics(g)
    analyzer = None
    if job.crude != "template":
        from portraitfx.face.analyze import FaceAnalyzer

        analyzer = FaceAnalyzer(max_faces=1, min_face_size=16)
    try:
        return [_save_pair(folder, i, make_pair(g, job, i, w_stats=stats, analyzer=analyzer)) for i in todo]
    finally:
        if analyzer is not None:
            analyzer.close()


@functools.lru_cache(maxsize=2)
def _cached_generator(path: str, loader: Any) -> Generator:
    return loader(path).eval()


def write_hair_pairs(
    generator_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    job: HairPairJob,
    *,
    progress: bool = False,
    workers: int = 0,
    chunk: int = 8,
) -> int:
    """Write the job's pairs under ``out`` (finished ones are skipped); returns how many were written."""
    from portraitfx.train.stylegan.checkpoint import read_config

    read_config(generator_path)  # a clear error before any work when the file is not a generator
    make = functools.partial(functools.partial, _write_range, str(generator_path), job, str(out))
    meta = {**asdict(job), "photos": list(job.photos), "generator": str(generator_path)}
    return write_pairs(Path(out), job.count, make, job=meta, progress=progress, workers=workers, chunk=chunk)


# --------------------------------------------------------------------------- interpolation


def interpolate_pairs(
    folder: str | os.PathLike[str],
    generator_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    count: int,
    *,
    seed: int = 0,
    within: float = 0.5,
    progress: bool = False,
) -> int:
    """Make ``count`` new pairs from the latents of a hair pair folder.

    A share ``within`` of them are part-way edits of one pair (before stays, after is
    its latents moved a random part of the way toward the edit); the rest mix two pairs
    (before and after both interpolated at the same point, the masks too). Resumable
    like the pair folders themselves.
    """
    from portraitfx.io.images import load_image
    from portraitfx.train.stylegan.checkpoint import load_generator

    src = Path(folder)
    names = sorted(p.stem for p in (src / "latents").glob("*.npz")) if (src / "latents").is_dir() else []
    names = [n for n in names if is_done(src, int(n))]
    if len(names) < 2:
        raise InputError(
            f"'{src}' holds {len(names)} finished hair pairs with latents; interpolation needs 2"
        )
    g = load_generator(generator_path).eval()
    lat = {}
    for n in names:
        with np.load(src / "latents" / f"{n}.npz", allow_pickle=False) as data:
            lat[n] = (torch.from_numpy(data["before"]), torch.from_numpy(data["after"]))
    masks = {n: load_image(src / "mask" / f"{n}.png")[..., 0].astype(np.float32) / 255 for n in names}
    edit = None
    manifest = src / "manifest.jsonl"
    if manifest.is_file():
        first = manifest.read_text(encoding="utf-8").splitlines()[:1]
        edit = json.loads(first[0]).get("edit") if first else None

    def writer() -> Any:
        def write(indices: list[int]) -> list[dict[str, Any]]:
            records = []
            for i in indices:
                rng = np.random.default_rng([seed, i])
                t = float(rng.uniform(0.2, 0.8))
                if rng.uniform() < within:
                    n = names[int(rng.integers(len(names)))]
                    wb, we = lat[n][0], lat[n][0] + t * (lat[n][1] - lat[n][0])
                    mask = masks[n]
                    info = {"kind": "within", "from": n, "t": round(t, 4)}
                else:
                    a, b = rng.choice(len(names), 2, replace=False)
                    na, nb = names[int(a)], names[int(b)]
                    wb = (1 - t) * lat[na][0] + t * lat[nb][0]
                    we = (1 - t) * lat[na][1] + t * lat[nb][1]
                    mask = np.maximum((1 - t) * masks[na], t * masks[nb])
                    info = {"kind": "between", "from": [na, nb], "t": round(t, 4)}
                with torch.no_grad():
                    before = to_uint8(g.synthesis(wb, noise_mode="const"))[0]
                    recon = to_uint8(g.synthesis(we, noise_mode="const"))[0].astype(np.float32)
                after = np.clip(before * (1 - mask[..., None]) + recon * mask[..., None] + 0.5, 0, 255)
                pair = {
                    "before": before,
                    "after": after.astype(np.uint8),
                    "mask": (mask * 255 + 0.5).astype(np.uint8),
                    "ws_before": wb.numpy(),
                    "ws_after": we.numpy(),
                    "record": {"edit": edit, **info},
                }
                records.append(_save_pair(Path(out), i, pair))
            return records

        return write

    return write_pairs(
        Path(out),
        count,
        writer,
        job={"interpolated_from": str(src), "seed": seed, "within": within},
        progress=progress,
    )
