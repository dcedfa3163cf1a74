"""Paired data for the student from a teacher that needs no pretrained GAN: FaceBlit, or any effect.

For pair ``i``: photo ``i mod len(photos)``, augmented by a seed that depends on ``i``
only (rotation, zoom, shift, mirror, brightness, contrast, saturation); its largest
face analysed; the teacher effect applied to the whole frame; then the photo and the
teacher's result cut with the same face alignment (``crop_scale`` of the FFHQ
framing: the head with some hair and neck) into ``face/`` and ``style/``. The
``toon`` effect cuts faces the same way at run time. Teachers:

* ``faceblit:STYLE`` (``STYLE`` a built-in style name or a ``.pfxstyle`` file): the
  example-based stylizer of this project (``region="head"``);
* ``ugatit:GENERATOR``: a trained U-GAT-IT generator (``portraitfx ugatit train``),
  translating inside the face region;
* ``effect:NAME[:key=value,...]``: any registered effect.

(StyleGAN teachers write the same folders with ``portraitfx stylegan pairs``.)
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from portraitfx.errors import ConfigError, InputError, NoFaceError
from portraitfx.train.pairfolder import is_done, pair_names, write_pairs

__all__ = ["CROP_SCALE", "TeacherJob", "augment_photo", "make_teacher", "teacher_pairs"]

CROP_SCALE = 0.8
"""Face crops for the student: the FFHQ framing zoomed out to 0.8 (hair, ears, chin and some neck)."""


@dataclass(frozen=True)
class TeacherJob:
    """``n`` pairs from ``photos`` through ``teacher`` at ``size`` px."""

    teacher: str
    photos: tuple[str, ...]
    n: int
    size: int = 256
    seed: int = 0
    crop_scale: float = CROP_SCALE

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ConfigError("the number of pairs must be >= 0")
        if not self.photos:
            raise InputError("no photos to make pairs from")
        if self.size < 32 or self.size % 8:
            raise ConfigError(f"pair size must be a multiple of 8, at least 32, got {self.size}")


def make_teacher(spec: str) -> Any:
    """An effect from a teacher spec (see the module)."""
    from portraitfx.effects import create_effect

    kind, _, rest = spec.partition(":")
    if kind == "faceblit" and rest:
        return create_effect("stylize", style=rest, region="head")
    if kind == "ugatit" and rest:
        return create_effect("ugatit", model=rest)
    if kind == "effect" and rest:
        name, _, opts = rest.partition(":")
        options: dict[str, Any] = {}
        for item in filter(None, opts.split(",")):
            key, _, value = item.partition("=")
            options[key.strip()] = _value(value.strip())
        return create_effect(name, **options)
    raise ConfigError(
        f"bad teacher {spec!r}: use faceblit:STYLE, ugatit:GENERATOR or effect:NAME[:key=value,...]"
    )


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def augment_photo(image: np.ndarray, seed: int) -> np.ndarray:
    """A photo turned (up to 10 degrees), zoomed (0.9-1.1), shifted (5 %), maybe mirrored, recoloured."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-10, 10), rng.uniform(0.9, 1.1))
    m[:, 2] += rng.uniform(-0.05, 0.05, 2) * (w, h)
    out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    x = out.astype(np.float32)
    x = (x - x.mean()) * rng.uniform(0.85, 1.15) + x.mean() + rng.uniform(-15, 15)
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * rng.uniform(0.75, 1.25)
    return np.ascontiguousarray(np.clip(x, 0, 255).astype(np.uint8))


class _Writer:
    """Writes teacher pairs (holds the teacher effect and the face analyser of one process)."""

    def __init__(self, job: TeacherJob, out: Path) -> None:
        self.job, self.out = job, out
        self.teacher = make_teacher(job.teacher)
        self.photos: dict[str, np.ndarray] = {}

    def photo(self, path: str) -> np.ndarray:
        from portraitfx.io.images import load_image

        if path not in self.photos:
            self.photos[path] = load_image(path)
        return self.photos[path]

    def __call__(self, indices: list[int]) -> list[dict[str, Any]]:
        import portraitfx as pfx
        from portraitfx.face.align import alignment_matrix
        from portraitfx.io.images import save_image

        job, records = self.job, []
        for i in indices:
            if is_done(self.out, i):
                continue
            source = job.photos[i % len(job.photos)]
            base = self.photo(source)
            for attempt in range(4):  # an augmentation that hides the face is drawn again
                seed = (job.seed * 1_000_003 + i) * 4 + attempt
                frame = augment_photo(base, seed) if attempt < 3 else base
                faces = pfx.analyze(frame)
                if faces:
                    break
            else:
                raise NoFaceError(f"no face in '{source}', even without augmentation")
            face = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
            styled = self.teacher.apply(frame, [face])
            m = alignment_matrix(face.five_points, job.size, "ffhq", job.crop_scale)
            cut = functools.partial(
                cv2.warpAffine,
                M=m,
                dsize=(job.size, job.size),
                flags=cv2.INTER_AREA,
                borderMode=cv2.BORDER_REFLECT_101,
            )
            face_name, style_name = pair_names(i)
            save_image(self.out / face_name, cut(frame))
            save_image(self.out / style_name, cut(styled))
            records.append(
                {
                    "index": i,
                    "face": face_name,
                    "style": style_name,
                    "source": Path(source).name,
                    "seed": seed,
                }
            )
        return records


def _make_writer(job: TeacherJob, out: Path) -> _Writer:
    return _Writer(job, out)


def teacher_pairs(
    job: TeacherJob, out: str | os.PathLike[str], *, progress: bool = False, workers: int = 0, chunk: int = 16
) -> int:
    """Write the job's pairs under ``out`` (skipping finished ones); returns how many were written."""
    make_teacher(job.teacher)  # a bad spec fails here, before any work
    folder = Path(out)
    meta = {**asdict(job), "photos": [str(p) for p in job.photos], "kind": "teacher"}
    make = functools.partial(_make_writer, job, folder)
    return write_pairs(folder, job.n, make, job=meta, progress=progress, workers=workers, chunk=chunk)
