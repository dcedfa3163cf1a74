"""A small, real StyleGAN run on this machine's CPU, end to end, with figures (the toolkit's proof).

1. Data: FFHQ-aligned 64 px crops of the real test photos (tests/data), augmented
   (small turns, zooms, shifts, mirror, colour) into a few hundred training images.
2. Train a face model from scratch with ADA; the identity-space FID of its samples to
   the data is measured at the start and at every stage.
3. "Style" set: the same crops through a non-photorealistic filter (edge-preserving
   smoothing, flat colours, dark outlines); fine-tune the face model on it (transfer,
   FreezeD).
4. Fuse the two (low resolutions from the face model), and render paired data.

Writes everything to ``out/stylegan-run/`` (not tracked) and one sheet to
``docs/images/stylegan-small-run.png``; prints the figures for docs/stylegan.md.

    .venv/bin/python tools/stylegan_small_run.py [--kimg 20] [--style-kimg 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "stylegan-run"
RES = 64
PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.jpg"]


def crops() -> list[np.ndarray]:
    import portraitfx as pfx
    from portraitfx.face.align import align_face

    out = []
    for name in PHOTOS:
        img = pfx.load_image(ROOT / "tests" / "data" / name)
        face = pfx.analyze(img)[0]
        out.append(align_face(img, face, 256).image)
    return out


def augment(crop: np.ndarray, k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    m = cv2.getRotationMatrix2D((127.5, 127.5), rng.uniform(-8, 8), rng.uniform(0.92, 1.08))
    m[:, 2] += rng.uniform(-8, 8, 2)
    img = cv2.warpAffine(crop, m, (256, 256), borderMode=cv2.BORDER_REFLECT_101)
    if k % 2:
        img = img[:, ::-1]
    img = img.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12)
    gray = img.mean(axis=2, keepdims=True)
    img = gray + (img - gray) * rng.uniform(0.8, 1.2)
    return cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (RES, RES), interpolation=cv2.INTER_AREA)


def toon(img: np.ndarray) -> np.ndarray:
    """A non-photorealistic filter: smooth, flatten the colours, draw dark outlines."""
    big = cv2.resize(img, (256, 256), interpolation=cv2.INTER_CUBIC)
    smooth = cv2.bilateralFilter(big, 9, 60, 7)
    flat = (smooth // 40) * 40 + 20
    edges = cv2.adaptiveThreshold(cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY), 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                  cv2.THRESH_BINARY, 9, 4)  # fmt: skip
    out = (flat.astype(np.float32) * (edges[..., None] / 255.0 * 0.75 + 0.25)).astype(np.uint8)
    return cv2.resize(out, (RES, RES), interpolation=cv2.INTER_AREA)


def to_tensor(images: list[np.ndarray]):
    import torch

    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kimg", type=float, default=20.0)
    ap.add_argument("--style-kimg", type=float, default=4.0)
    ap.add_argument("--per-photo", type=int, default=60)
    args = ap.parse_args()

    import torch

    from portraitfx.io.images import save_image
    from portraitfx.metrics import IdentityFeatures, clarity, fid
    from portraitfx.train.stylegan import fuse_generators
    from portraitfx.train.stylegan.networks import grid
    from portraitfx.train.stylegan.pairs import PairJob, generate_pairs
    from portraitfx.train.stylegan.train import Trainer, TrainOptions

    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    base = crops()
    faces = [augment(c, i * 1000 + k) for i, c in enumerate(base) for k in range(args.per_photo)]
    toons = [toon(f) for f in faces]
    save_image(OUT / "data-faces.png", grid(np.stack(faces[:: args.per_photo // 4][:16]), columns=8))
    save_image(OUT / "data-toons.png", grid(np.stack(toons[:: args.per_photo // 4][:16]), columns=8))
    feats = IdentityFeatures()
    real = np.stack(faces)
    figures: dict[str, object] = {"images": len(faces), "resolution": RES}

    def measure(generator, label: str, data: np.ndarray) -> float:
        samples = generator.sample(200, seed=123)
        value = fid(data, samples, feats)
        figures[f"fid_{label}"] = round(value, 4)
        figures[f"clarity_{label}"] = round(float(np.mean([clarity(s) for s in samples])), 2)
        print(f"  {label}: identity FID {value:.4f}, clarity {figures[f'clarity_{label}']}", flush=True)
        return value

    options = TrainOptions(resolution=RES, channel_base=1024, channel_max=64, z_dim=64, batch=8, seed=0)
    trainer = Trainer(to_tensor(faces), options)
    measure(trainer.G_ema, "face_start", real)
    t0 = time.perf_counter()
    for stage in (0.1, 0.25, 0.5, 0.75, 1.0):
        trainer.train(args.kimg * stage, OUT / "face", snapshot_kimg=args.kimg / 4)
        measure(trainer.G_ema, f"face_{args.kimg * stage:g}kimg", real)
    figures["face_train_seconds"] = round(time.perf_counter() - t0, 1)
    face_g = trainer.G_ema
    # transfer to the style set
    toon_options = TrainOptions(**{**options.__dict__, "freeze_d": 1, "seed": 1})
    t0 = time.perf_counter()
    styler = Trainer(to_tensor(toons), toon_options, resume=OUT / "face" / "generator.safetensors")
    styler.train(args.style_kimg, OUT / "toon", snapshot_kimg=args.style_kimg / 2)
    figures["style_train_seconds"] = round(time.perf_counter() - t0, 1)
    measure(styler.G_ema, "style_vs_faces", real)
    measure(styler.G_ema, "style_vs_toons", np.stack(toons))
    fused = fuse_generators(face_g, styler.G_ema, "sigmoid:16")
    measure(fused, "fused_vs_faces", real)
    n = 8
    rows = [g.sample(n, seed=7) for g in (face_g, styler.G_ema, fused)]
    sheet = grid(np.concatenate([np.stack(faces[:: len(faces) // n][:n]), np.stack(toons[:: len(toons) // n][:n]), *rows]),
                 columns=n)  # fmt: skip
    save_image(OUT / "summary.png", sheet)
    big = cv2.resize(sheet, (sheet.shape[1] * 2, sheet.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    save_image(ROOT / "docs" / "images" / "stylegan-small-run.png", big)
    t0 = time.perf_counter()
    written = generate_pairs(
        face_g, fused, OUT / "pairs", PairJob(n=64, seed=3, truncation=0.7, interpolate=1)
    )
    figures["pairs"] = written
    figures["pairs_seconds"] = round(time.perf_counter() - t0, 2)
    (OUT / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
