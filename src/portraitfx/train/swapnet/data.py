"""Training data for the swap network: aligned crops, identities, meshes, morphable-model fits.

:func:`prepare_swap_data` reads a folder of face photos (identities from sub-folders,
or from the file name before its last ``_``), analyses each one with the project's
own face analysis (largest face), and keeps:

* the face cut with the swap engine's framing (``arcface`` template) at the run's size;
* its identity descriptor (dlib, 128-d: what the engine feeds the network at run time);
* its 478-point mesh in crop pixels;
* from videos, every ``video_step``-th frame (at most ``video_frames`` per video);
* ``augment`` extra copies of each photo, turned, zoomed, shifted and recoloured
  (:func:`portraitfx.train.student.teacher.augment_photo`), analysed afresh.

A morphable mesh model is then built from the meshes of all the people
(:func:`portraitfx.train.swapnet.morphable.build_basis`) and every crop fitted, so
a training pair can ask for "the source's shape with the target's expression". All
of it is one safetensors file (no pickle), loaded whole for training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from portraitfx.errors import InputError

__all__ = ["SwapData", "load_swap_data", "prepare_swap_data"]


@dataclass
class SwapData:
    """Crops ``(N, S, S, 3)`` uint8, ids ``(N, 128)``, person ``(N,)`` int, meshes ``(N, 478, 3)`` in crop pixels."""

    crops: np.ndarray
    ids: np.ndarray
    person: np.ndarray
    meshes: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])


def _identity_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    if len(rel.parts) > 1:
        return rel.parts[0]
    stem = path.stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def _pictures(path: Path, video_step: int, video_frames: int) -> list[np.ndarray]:
    """A photo, or every ``video_step``-th frame of a video (at most ``video_frames``)."""
    from portraitfx.io.images import load_image

    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return [load_image(path)]
    from portraitfx.io.video import VideoReader

    out = []
    with VideoReader(path, step=video_step) as reader:
        for frame in reader:
            out.append(frame.image)
            if len(out) >= video_frames:
                break
    return out


def prepare_swap_data(
    folder: str | os.PathLike[str],
    size: int,
    *,
    augment: int = 0,
    seed: int = 0,
    progress: bool = False,
    video_step: int = 15,
    video_frames: int = 40,
) -> SwapData:
    """Read and analyse ``folder`` (see the module); videos give every ``video_step``-th frame."""
    from tqdm import tqdm

    import portraitfx as pfx
    from portraitfx.face.align import alignment_matrix, transform_points
    from portraitfx.face.identity import FaceEmbedder
    from portraitfx.train.student.teacher import augment_photo

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"'{root}' is not a folder of face photos or videos")
    kinds = {".jpg", ".jpeg", ".png", ".webp", ".bmp"} | VIDEO_SUFFIXES
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in kinds)
    people = sorted({_identity_of(p, root) for p in files})
    crops, ids, person, meshes, names = [], [], [], [], []
    embed = FaceEmbedder()
    for k, path in enumerate(tqdm(files, disable=not progress, unit="file", leave=False)):
        for f, picture in enumerate(_pictures(path, video_step, video_frames)):
            for copy in range(augment + 1):
                image = (
                    picture
                    if copy == 0
                    else augment_photo(picture, ((seed * 7919 + k) * 1000 + f) * 100 + copy)
                )
                faces = pfx.analyze(image)
                if not faces:
                    continue
                face = max(faces, key=lambda x: float((x.bbox[2] - x.bbox[0]) * (x.bbox[3] - x.bbox[1])))
                m = alignment_matrix(face.five_points, size, "arcface")
                crop = cv2.warpAffine(
                    image, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101
                )
                crops.append(crop)
                ids.append(embed(image, face))
                mesh = face.landmarks.astype(np.float64).copy()
                mesh[:, :2] = transform_points(mesh[:, :2], m)
                mesh[:, 2] *= float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # depth in the crop's scale
                meshes.append(mesh)
                person.append(people.index(_identity_of(path, root)))
                names.append(f"{path.relative_to(root)}@{f}#{copy}")
    if len({*person}) < 2:
        raise InputError(f"'{root}' has faces of {len({*person})} people; the swap network needs at least 2")
    ids_arr = np.stack(ids).astype(np.float32)
    ids_arr /= np.linalg.norm(ids_arr, axis=1, keepdims=True)
    return SwapData(
        np.stack(crops), ids_arr, np.asarray(person, np.int64), np.stack(meshes).astype(np.float32), names
    )


def save_swap_data(data: SwapData, path: str | os.PathLike[str]) -> Path:
    from portraitfx.models.load import save_safetensors

    tensors = {"crops": data.crops, "ids": data.ids, "person": data.person, "meshes": data.meshes}
    return save_safetensors(path, tensors, {"portraitfx": "swap-data", "names": "\n".join(data.names)})


def load_swap_data(path: str | os.PathLike[str]) -> SwapData:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from portraitfx.errors import ModelError

    with safe_open(str(path), framework="np") as fh:
        meta = fh.metadata() or {}
    if meta.get("portraitfx") != "swap-data":
        raise ModelError(f"'{path}' is not prepared swap data")
    t = load_file(str(path))
    return SwapData(t["crops"], t["ids"], t["person"], t["meshes"], meta.get("names", "").split("\n"))
