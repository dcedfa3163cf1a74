"""Batch throughput on Ray: 1 worker against 2, on 100 small portraits (stylize pencil).

    .venv/bin/python bench/bench_batch.py [--images 100] [--repeat 3] [--no-ray-data]

Figures (target from the interfaces issue):
    batch_images_per_s[1 worker], [2 workers]   files per second once the workers are ready
    batch_speedup_2_vs_1_workers                >= 1.7 on this 2-core machine
Also printed: the time to start the workers, the end-to-end rate (worker start-up
included; Ray itself is started once, as a running cluster would be), and two
references measured in the same run: the single-process folder runner of
`portraitfx stylize FOLDER` (apply_to_folder, which opens a face analyser per
image) and Ray Data's map_batches with an actor pool running the same worker
class (why run_batch drives actors itself). Each figure is the best of --repeat
runs: other processes on the machine only ever make a run slower.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("obama.jpg", "biden.jpg", "astronaut.jpg", "obama2.jpg", "obama3.jpg")


def make_images(folder: Path, n: int, side: int = 320) -> None:
    """``n`` portraits of about ``side`` px: random crops (85-100 %) of the test photos, resized."""
    from portraitfx.io.images import load_image, save_image

    photos = [load_image(ROOT / "tests/data" / name) for name in PHOTOS]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        s = rng.uniform(0.85, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        k = side / max(ch, cw)
        crop = cv2.resize(
            img[y : y + ch, x : x + cw], (round(cw * k), round(ch * k)), interpolation=cv2.INTER_AREA
        )
        save_image(folder / f"img{i:03d}.jpg", crop)


def bench_batch(src: Path, work: Path, workers: int, repeat: int) -> tuple[float, float, float]:
    """Best (files/s after start-up, start-up s, end-to-end s) of ``repeat`` runs with ``workers``."""
    from portraitfx.runtime.batch import run_batch

    best: tuple[float, float, float] = (0.0, 0.0, 0.0)
    for r in range(repeat):
        out = work / f"out-{workers}-{r}"
        shutil.rmtree(out, ignore_errors=True)
        report = run_batch(src, out, "stylize", {"style": "pencil"}, workers=workers, progress=False)
        assert len(report.done) == len(list(src.iterdir())) and not report.failed, report.failed
        got = (report.throughput, report.setup_seconds, report.seconds)
        best = max(best, got)
    return best


def bench_folder(src: Path, work: Path) -> float:
    """Files/s of apply_to_folder in this process (the runner of `portraitfx stylize FOLDER`)."""
    from portraitfx.effects import create_effect
    from portraitfx.runtime.apply import apply_to_file, apply_to_folder

    effect = create_effect("stylize", style="pencil")
    first = sorted(src.iterdir())[0]
    apply_to_file(effect, first, work / "warm.jpg")  # models and kernels loaded before timing
    out = work / "out-folder"
    shutil.rmtree(out, ignore_errors=True)
    report = apply_to_folder(effect, src, out, require_faces=False)
    effect.close()
    return len(report.outputs) / report.seconds


def bench_ray_data(ray, src: Path, work: Path, workers: int) -> tuple[float, float]:
    """(files/s after the first result, seconds to the first result) with Ray Data's actor pool."""
    import ray.data

    from portraitfx.runtime.batch import _BatchWorker, portable_options

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    out = work / f"out-data-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    rows = [{"input": str(p), "output": str(out / p.name)} for p in sorted(src.iterdir())]
    options = portable_options("stylize", {"style": "pencil"})
    started = time.perf_counter()
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _BatchWorker, fn_constructor_args=("stylize", options), batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
    )  # fmt: skip
    first, n = None, 0
    for row in ds.iter_rows():
        assert row["status"] == "done", row
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None and n == len(rows)
    return (n - 1) / (end - first), first - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-ray-data", action="store_true", help="skip the Ray Data reference")
    args = ap.parse_args()
    os.environ.setdefault("PORTRAITFX_HOME", tempfile.mkdtemp(prefix="pfx-bench-"))
    import ray

    from portraitfx._tuning import tune_process
    from portraitfx.effects.stylize.pack import load_style

    tune_process()
    load_style("pencil")  # the built-in style is built once, before any timing
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "in"
        make_images(src, args.images)
        load_before = os.getloadavg()[0]
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)  # fmt: skip
        try:
            one = bench_batch(src, work, 1, args.repeat)
            two = bench_batch(src, work, 2, args.repeat)
            data = None if args.no_ray_data else [bench_ray_data(ray, src, work, n) for n in (1, 2)]
        finally:
            ray.shutdown()
        folder = bench_folder(src, work)
        load_after = os.getloadavg()[0]
    what = f"{args.images} images of ~320 px, stylize pencil, best of {args.repeat}"
    for n, (rate, setup, total) in ((1, one), (2, two)):
        print(f"batch_images_per_s[{n} worker{'s' if n > 1 else ''}]: {rate:.1f}  ({what}; workers ready after "
              f"{setup:.1f} s; end to end {args.images / total:.1f} images/s)")  # fmt: skip
    print(f"batch_speedup_2_vs_1_workers: {two[0] / one[0]:.2f}  (target >= 1.7)")
    print(f"  baseline_apply_to_folder_images_per_s: {folder:.1f}  (one process, a fresh face analyser per "
          f"image: `portraitfx stylize FOLDER`)  batch with 2 workers: {two[0] / folder:.1f}x")  # fmt: skip
    if data is not None:
        (d1, s1), (d2, s2) = data
        print(f"  ray_data_images_per_s[1 worker]: {d1:.1f}, [2 workers]: {d2:.1f}  (map_batches, actor pool, "
              f"batch_size=1, same worker class; first result after {s1:.1f} s / {s2:.1f} s)")  # fmt: skip
    print(
        f"  load average (1 min) before/after: {load_before:.2f} / {load_after:.2f} on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
