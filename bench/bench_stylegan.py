"""StyleGAN2 generator speed on the CPU, at the official widths (channel_base 32768, channel_max 512).

    .venv/bin/python bench/bench_stylegan.py [--resolutions 256 1024] [--batch 4]

Prints ms per image and GFLOPs per image for each resolution, and as the baseline
measured in the same run the same network with its modulated convolutions run one
sample at a time (the naive way) instead of as one grouped convolution over the batch.
Then the projection (inversion) time per image for 500 steps at 256 px, from the time
of ``--projection-steps`` steps (the seed's route: ~75 s for 1000 steps at 1024 on a GPU),
against one pass of an (untrained, same-shape) e4e-style encoder at 256 px and default widths.
Last, training speed in seconds per kimg for ``--train-resolution`` at the CPU-sized
default widths, in fp32 and in bf16 mixed precision (``--device cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--projection-steps", type=int, default=10, help="measured steps (0: skip the projection)"
    )
    ap.add_argument("--train-resolution", type=int, default=64, help="0: skip the training figure")
    ap.add_argument("--train-steps", type=int, default=6)
    ap.add_argument(
        "--train-official",
        action="store_true",
        help="train at the official widths (GPUs), not CPU-sized ones",
    )
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from portraitfx.train.stylegan import Generator, GeneratorConfig
    from portraitfx.train.stylegan.networks import ModulatedConv2d, upsample2d

    torch.manual_seed(0)

    def per_sample(self, x, w):  # the naive modulated convolution, for the baseline
        weight = self.modulated_weight(self.affine(w))
        if self.up:
            x = upsample2d(x)
        return torch.cat(
            [F.conv2d(x[i : i + 1], weight[i], padding=self.kernel // 2) for i in range(x.shape[0])]
        )

    grouped = ModulatedConv2d.forward
    for res in args.resolutions:
        g = Generator(GeneratorConfig(resolution=res)).eval().requires_grad_(False)
        z = torch.randn(args.batch, g.cfg.z_dim)
        with FlopCounterMode(
            display=False
        ) as counter:  # (not under no_grad: its module hooks need grad mode)
            g(z[:1], noise_mode="const")
        gflops = counter.get_total_flops() / 1e9
        with torch.no_grad():
            timings = {}
            for name, impl in (("grouped", grouped), ("per-sample", per_sample)):
                ModulatedConv2d.forward = impl
                g(z, noise_mode="const")  # warm up
                best = float("inf")
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    g(z, noise_mode="const")
                    best = min(best, time.perf_counter() - t0)
                timings[name] = best / args.batch * 1000
            ModulatedConv2d.forward = grouped
        params = sum(p.numel() for p in g.parameters()) / 1e6
        print(
            f"stylegan2_generator_{res}_ms_per_image: {timings['grouped']:.0f}  "
            f"({gflops:.1f} GFLOPs per image, {params:.1f} M parameters, batch {args.batch}, "
            f"{torch.get_num_threads()} threads)"
        )
        print(
            f"  baseline_per_sample_modconv_ms: {timings['per-sample']:.0f}  "
            f"ratio: {timings['per-sample'] / timings['grouped']:.2f}x"
        )
    if args.projection_steps > 0:
        from portraitfx.train.invert import project

        g = Generator(GeneratorConfig(resolution=256)).eval()
        with torch.no_grad():
            target = g(torch.randn(1, g.cfg.z_dim), noise_mode="const")
        project(g, target, steps=2, w_samples=500)  # warm up
        t0 = time.perf_counter()
        project(g, target, steps=args.projection_steps, w_samples=500)
        per_step = (time.perf_counter() - t0) / args.projection_steps
        print(
            f"stylegan2_projection_256_s_per_image_500_steps: {per_step * 500:.0f}  "
            f"({per_step * 1000:.0f} ms per step, measured over {args.projection_steps} steps, W+, noise optimised)"
        )
        from portraitfx.train.invert.encoder import Encoder, EncoderConfig

        enc = Encoder(EncoderConfig.for_generator(g.cfg, channel_base=32768, channel_max=512)).eval()
        with torch.no_grad():
            enc(target)  # warm up
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                enc(target)
            one = (time.perf_counter() - t0) / args.repeats
        params = sum(p.numel() for p in enc.parameters()) / 1e6
        print(
            f"  encoder_256_ms_per_image: {one * 1000:.0f}  ({params:.1f} M parameters)  "
            f"ratio projection/encoder: {per_step * 500 / one:.0f}x"
        )
    if args.train_resolution > 0:
        train_figures(args)
    return 0


def train_figures(args: argparse.Namespace) -> None:
    import numpy as np

    from portraitfx.train.stylegan.train import Trainer, TrainOptions

    r = args.train_resolution
    data = np.random.default_rng(0).integers(0, 255, (64, r, r, 3), dtype=np.uint8)
    widths = (
        {"channel_base": 32768, "channel_max": 512, "z_dim": 512, "mapping_layers": 8}
        if args.train_official
        else {}
    )
    options = TrainOptions(resolution=r, batch=8, augment="0.2", **widths)
    seconds = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(data, options, device=args.device, precision=precision)
        for _ in range(2):
            trainer.step()  # warm up (and one lazy-regularisation step)
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            trainer.step()
        seconds[precision] = (time.perf_counter() - t0) / (args.train_steps * options.batch) * 1000
    print(
        f"stylegan2_train_{r}_s_per_kimg_fp32: {seconds['fp32']:.0f}  "
        f"(batch 8, channel_base {options.channel_base}, channel_max {options.channel_max}, {args.device}, "
        f"lazy R1/PL amortised over {args.train_steps} steps)"
    )
    print(
        f"  bf16_s_per_kimg: {seconds['bf16']:.0f}  ratio fp32/bf16: {seconds['fp32'] / seconds['bf16']:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
