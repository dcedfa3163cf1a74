"""The learned hair route end to end on this CPU, small: StyleGAN pairs -> interpolation -> hair models -> ONNX -> photos.

1. Pairs by iterative reconstruction through the small face generator of
   ``tools/stylegan_small_run.py`` (64 px, trained here on the test photos), bangs,
   template crude edits (the generator's faces are too small for the model-free edit).
2. More pairs by latent interpolation.
3. Three hair models on them, same steps: GLEAN with the face generator as its prior,
   GLEAN with a random prior, and the pix2pixHD baseline; held-out PSNR against the
   unedited input, in the whole crop and in the edit region.
4. Each exported to ONNX and run on the full-resolution test photos with
   ``portraitfx hair bangs --model``; a before/after sheet for docs/hair.md.

    .venv/bin/python tools/hair_small_run.py [--generator out/stylegan-run/face/generator.safetensors]
        [--pairs 96] [--steps 1500]

Writes under ``out/hair-run/`` (not tracked), ``docs/images/hair-learned.png`` and
``out/hair-run/figures.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "hair-run"


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 20), (255, 255, 255), -1)
    cv2.putText(out, text, (5, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--generator", type=Path, default=ROOT / "out" / "stylegan-run" / "face" / "generator.safetensors"
    )
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--interpolated", type=int, default=96)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--recon-steps", type=int, default=200)
    args = parser.parse_args()
    import torch

    from portraitfx.effects.hair import add_bangs, analyze_hair
    from portraitfx.effects.hair.model import HairModel
    from portraitfx.face.analyze import FaceAnalyzer
    from portraitfx.io.images import load_image, save_image
    from portraitfx.train.hairnet import (
        HairNetTrainer,
        HairPairJob,
        HairTrainOptions,
        ReconstructOptions,
        count_flops,
        export_hairnet,
        interpolate_pairs,
        load_hair_pairs,
        write_hair_pairs,
    )
    from portraitfx.train.stylegan.checkpoint import read_config

    torch.set_num_threads(2)
    if not args.generator.is_file():
        raise SystemExit(
            f"{args.generator} is missing: run tools/stylegan_small_run.py first (or give --generator)"
        )
    g_cfg, _ = read_config(args.generator)
    size = g_cfg.resolution
    OUT.mkdir(parents=True, exist_ok=True)
    figures: dict = {"generator": str(args.generator), "size": size}

    # 1-2. pairs
    t0 = time.perf_counter()
    job = HairPairJob(
        edit="bangs", count=args.pairs, crude="template",
        options=ReconstructOptions(steps=args.recon_steps, edit_scale=4 if size >= 64 else 2),
    )  # fmt: skip
    write_hair_pairs(args.generator, OUT / "pairs", job, progress=True)
    figures["pairs_seconds"] = round(time.perf_counter() - t0, 1)
    records = [
        json.loads(x) for x in (OUT / "pairs" / "manifest.jsonl").read_text().splitlines() if x.strip()
    ]
    figures["reconstruction"] = {
        k: [
            float(np.mean([r["losses"][k][0] for r in records])),
            float(np.mean([r["losses"][k][1] for r in records])),
        ]
        for k in ("outside", "edit", "latent")
    }
    t0 = time.perf_counter()
    interpolate_pairs(OUT / "pairs", args.generator, OUT / "interpolated", args.interpolated, progress=True)
    figures["interpolation_seconds"] = round(time.perf_counter() - t0, 1)
    # one folder with both (links keep the pair folder layout)
    both = OUT / "all"
    for sub in ("face", "style", "mask"):
        (both / sub).mkdir(parents=True, exist_ok=True)
    k = 0
    for src in (OUT / "pairs", OUT / "interpolated"):
        for p in sorted((src / "face").glob("*.png")):
            for sub in ("face", "style", "mask"):
                dst = both / sub / f"{k:06d}.png"
                if not dst.exists():
                    dst.write_bytes((src / sub / p.name).read_bytes())
            k += 1
    before, after, masks = load_hair_pairs(both, size)
    # hold out the last 16 sampled pairs (and keep the interpolated ones for training)
    order = np.r_[
        np.arange(0, args.pairs - 16),
        np.arange(args.pairs, args.pairs + args.interpolated),
        np.arange(args.pairs - 16, args.pairs),
    ]
    before, after, masks = before[order], after[order], masks[order]
    figures["pairs"] = {"sampled": args.pairs, "interpolated": args.interpolated, "held_out": 16}

    # 3. models
    base = HairTrainOptions(
        size=size, edit="bangs", channel_base=g_cfg.channel_base, channel_max=g_cfg.channel_max, w_dim=g_cfg.w_dim,
        steps=args.steps, batch=8, val_fraction=16 / len(before), width=16, downs=3, blocks=4,
    )  # fmt: skip
    variants = {
        "glean_prior": replace(base, arch="glean", prior=str(args.generator)),
        "glean_random": replace(base, arch="glean"),
        "pix2pixhd": replace(base, arch="pix2pixhd"),
    }
    figures["models"] = {}
    onnx = {}
    for name, opts in variants.items():
        run = OUT / name
        ck = run / "checkpoint.safetensors"
        trainer = HairNetTrainer(before, after, masks, opts, resume=ck if ck.is_file() else None)
        t0 = time.perf_counter()
        trainer.train(run, log_every=250, progress=True)
        last = trainer.history[-1]
        net = trainer.net
        figures["models"][name] = {
            **{k: last[k] for k in ("psnr", "psnr_edit", "identity_psnr", "identity_psnr_edit")},
            "train_seconds": round(time.perf_counter() - t0, 1),
            "gflops": round(count_flops(net, size), 3),
            "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
        }
        onnx[name] = run / f"{name}.onnx"
        export_hairnet(run / "hairnet.safetensors", onnx[name])
        print(name, figures["models"][name])

    # 4. on the photos, at full resolution
    rows = []
    with FaceAnalyzer(max_faces=1) as analyzer:
        for photo in ("obama.jpg", "biden.jpg", "astronaut.jpg"):
            img = load_image(ROOT / "tests" / "data" / photo)
            a = analyze_hair(img, analyzer.analyze(img)[0])
            x0, y0, x1, y1 = a.box
            cells = [("photo", img)]
            for name in variants:
                cells.append((name.replace("_", " "), HairModel(onnx[name]).apply(img, a).image))
            cells.append(("model-free bangs", add_bangs(img, a).image))
            side = max(x1 - x0, y1 - y0)
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            tiles = []
            for label, out in cells:
                pad = np.pad(out, ((side, side), (side, side), (0, 0)), mode="edge")
                crop = pad[
                    cy - side // 2 + side : cy + side // 2 + side,
                    cx - side // 2 + side : cx + side // 2 + side,
                ]
                tiles.append(_label(cv2.resize(crop, (200, 200), interpolation=cv2.INTER_AREA), label))
            rows.append(np.concatenate(tiles, 1))
    # and held-out pairs: input | target | each model
    held = []
    for name, opts in variants.items():
        trainer = HairNetTrainer(before, after, masks, opts, resume=OUT / name / "checkpoint.safetensors")
        pred, _ = trainer.predict(before[trainer.val_idx[:6]])
        held.append(pred)
    sheet_rows = []
    for i in range(6):
        j = len(before) - 16 + i
        tiles = [before[j], after[j]] + [h[i] for h in held]
        sheet_rows.append(
            np.concatenate([cv2.resize(t, (100, 100), interpolation=cv2.INTER_NEAREST) for t in tiles], 1)
        )
    pairs_sheet = np.concatenate(sheet_rows, 0)
    save_image(OUT / "held-out.png", pairs_sheet)
    sheet = np.concatenate(rows, 0)
    save_image(ROOT / "docs" / "images" / "hair-learned.png", sheet)
    save_image(ROOT / "docs" / "images" / "hair-learned-pairs.png", pairs_sheet)
    (OUT / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
