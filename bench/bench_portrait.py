"""The portrait schedule's dual-pass overhead, with tiny random SD components (issue target <= 1.6x).

    .venv/bin/python bench/bench_portrait.py [--steps 30] [--size 64]

Runs, in one process on the same pipeline and seed: the plain identity-adapter run
(identity on every step, one UNet pass per step) and the seed's schedule (prompt only
for the first 20 %, identity from there, mask-blended dual passes from 40 % of the
steps: 1.6x the UNet evaluations), and prints seconds per image and their ratio. The
face mask comes from a fixed ellipse (tiny random models draw no faces).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import cv2

    from portraitfx.portrait import Schedule, generate, load_pipeline, schedule_calls
    from portraitfx.testing.tiny_sd import build_tiny_sd

    with tempfile.TemporaryDirectory() as tmp:
        files = build_tiny_sd(tmp, size=args.size)
        pipe = load_pipeline(files["base"], ip_adapter=files["ip_adapter"])
        ref = np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
        mask = np.zeros((args.size, args.size), np.float32)
        cv2.ellipse(
            mask, (args.size // 2, args.size // 2), (args.size // 4, args.size // 3), 0, 0, 360, 1.0, -1
        )
        plain = Schedule(steps=args.steps, height=args.size, width=args.size, inject_at=0.0, blend_at=None)
        seed = Schedule(steps=args.steps, height=args.size, width=args.size, inject_at=0.2, blend_at=0.4)
        times = {}
        for name, s in (("plain", plain), ("dual", seed)):
            generate(pipe, "a portrait photo", reference=ref, schedule=s, seed=0, mask_fn=lambda im: mask)
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                generate(pipe, "a portrait photo", reference=ref, schedule=s, seed=0, mask_fn=lambda im: mask)
                best = min(best, time.perf_counter() - t0)
            times[name] = best
            print(f"{name}: {best:.3f} s per {args.size} px image, {schedule_calls(s)} UNet evaluations")
    ratio = times["dual"] / times["plain"]
    print(
        f"portrait_dual_pass_overhead: {ratio:.2f}x the plain IP-Adapter run (target <= 1.6x, split at 40 %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
