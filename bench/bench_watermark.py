"""Benchmark the provenance watermark: embed and detect on a 720p frame and a 12 MP photo.

Pictures are textured synthetic stills with light sensor-like noise
(:func:`portraitfx.testing.clips.synthetic_still`). For each size it measures:

* the first embed (builds and caches the full-size pattern: once per size);
* embed (what every video frame pays);
* detect (what ``portraitfx verify`` pays per picture or sampled frame);
* PSNR of the marked picture and the detection score after JPEG 80 + 0.75×.

Figures are the best of ``--repeat`` runs (medians are printed too).

Run: ``.venv/bin/python bench/bench_watermark.py [--repeat 10]``.
The target is a few milliseconds per 720p frame for embedding.
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
from PIL import Image

from bench_video_io import timed  # the same timing rule for every benchmark (bench/ is on sys.path)
from portraitfx.provenance import detect_watermark, embed_watermark
from portraitfx.provenance import watermark as wm
from portraitfx.testing import clips as clipmaker

SIZES = {"720p": (720, 1280), "12mp": (3000, 4000)}


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    still = clipmaker.synthetic_still(height, width, seed=seed)
    noise = rng.integers(-3, 4, size=still.shape, dtype=np.int16)
    return np.clip(still.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def attacked(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((round(w * 0.75), round(h * 0.75)), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per measurement")
    args = parser.parse_args()
    print(f"# cpu cores: {os.cpu_count()}; best of {args.repeat} runs (medians also shown)")
    for name, (height, width) in SIZES.items():
        image = picture(height, width)
        t0 = time.perf_counter()
        marked = embed_watermark(image)
        first = time.perf_counter() - t0
        repeat = args.repeat if name == "720p" else max(3, args.repeat // 3)
        t_embed, t_embed_med = timed(repeat, lambda image=image: embed_watermark(image))
        t_detect, t_detect_med = timed(repeat, lambda marked=marked: detect_watermark(marked))
        mse = np.mean((marked.astype(np.float64) - image) ** 2)
        psnr = 10 * np.log10(255.0**2 / mse)
        result = detect_watermark(marked)
        after = detect_watermark(attacked(marked))
        print(f"watermark_embed_{name}_ms: {t_embed * 1e3:.2f}  (median {t_embed_med * 1e3:.2f})")
        print(f"watermark_detect_{name}_ms: {t_detect * 1e3:.2f}  (median {t_detect_med * 1e3:.2f})")
        print(f"  first_embed_{name}_ms (pattern built): {first * 1e3:.1f}")
        print(f"  psnr_{name}_db: {psnr:.1f}  grid: {result.grid}")
        print(f"  score_{name}: {result.score:.1f}  after_jpeg80_resize0.75: {after.score:.1f}")
    print(f"threshold: {wm.THRESHOLD}  false_positive_bound: {wm.false_positive_bound():.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
