"""Seconds per portrait on a GPU with real local weights (SD 1.5 at 512x512 through the seed's schedule,
SDXL at 1024x1024, both through the seed's schedule). Target: <= 5 s per image on one modern GPU (the seed
reports about 20 s).

    .venv/bin/python bench/portrait_gpu.py --sd15 models/sd15 --ip-adapter models/ip-adapter_sd15.safetensors
        [--sdxl models/sdxl] [--steps 30] [--images 4]

Says clearly, and exits 0, when it cannot run: no GPU, or no local weights given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd15", type=Path, help="SD 1.5-class diffusers folder or .safetensors")
    parser.add_argument("--ip-adapter", type=Path, help="IP-Adapter weights for it (.safetensors)")
    parser.add_argument("--sdxl", type=Path, help="SDXL diffusers folder")
    parser.add_argument("--ip-adapter-xl", type=Path, help="IP-Adapter weights for SDXL (.safetensors)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        print(
            "portrait_gpu: cannot run here: no CUDA GPU (torch.cuda.is_available() is False); nothing measured"
        )
        return 0
    if args.sd15 is None and args.sdxl is None:
        print(
            "portrait_gpu: cannot run: no local weights given (--sd15 DIR --ip-adapter FILE, and/or --sdxl DIR)"
        )
        return 0
    from portraitfx.portrait import Schedule, generate, load_pipeline

    ref = np.asarray(__import__("skimage.data", fromlist=["astronaut"]).astronaut())
    if args.sd15 is not None:
        if args.ip_adapter is None:
            print("portrait_gpu: --sd15 needs --ip-adapter for the identity schedule")
            return 0
        pipe = load_pipeline(args.sd15, ip_adapter=args.ip_adapter, device="cuda", dtype=torch.float16)
        s = Schedule(steps=args.steps, height=512, width=512)
        generate(pipe, "a portrait photo of a person", reference=ref, schedule=s, seed=0)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(args.images):
            generate(pipe, "a portrait photo of a person", reference=ref, schedule=s, seed=i)
        torch.cuda.synchronize()
        per = (time.perf_counter() - t0) / args.images
        print(
            f"portrait_gpu_sd15_512_s: {per:.2f} s per image ({args.steps} steps, dual pass from 40 %; target <= 5 s)"
        )
    if args.sdxl is not None:
        pipe = load_pipeline(args.sdxl, ip_adapter=args.ip_adapter_xl, device="cuda", dtype=torch.float16)
        s = Schedule(steps=args.steps, height=1024, width=1024)
        reference = ref if args.ip_adapter_xl is not None else None
        generate(pipe, "a portrait photo of a person", reference=reference, schedule=s, seed=0)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(args.images):
            generate(pipe, "a portrait photo of a person", reference=reference, schedule=s, seed=i)
        torch.cuda.synchronize()
        per = (time.perf_counter() - t0) / args.images
        what = "dual pass from 40 %" if reference is not None else "prompt only (no --ip-adapter-xl)"
        print(f"portrait_gpu_sdxl_1024_s: {per:.2f} s per image ({args.steps} steps, {what}; target <= 5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
