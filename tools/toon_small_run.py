"""The recorded toon run: FaceBlit pencil pairs of the test photos -> student on the CPU -> ONNX (the default model).

1. Pairs: the real test photos (tests/data), augmented (turns, zoom, shift, mirror,
   colour), through the FaceBlit ``pencil`` teacher, cut as the ``toon`` effect cuts
   faces (256 px).
2. Student: the default width, every ladder stage (pixel, perceptual, edge, augment),
   ``--steps`` each; a stage's model is kept for the table.
3. Export: ONNX fp32 into ``src/portraitfx/assets/models/toon-pencil.onnx`` (the
   default model of ``portraitfx toon``), checked against PyTorch; figures for
   ``docs/toon.md``.

Writes its work to ``out/toon-run/`` (not tracked); resumable (run it again).

    .venv/bin/python tools/toon_small_run.py [--pairs 600] [--steps 1200] [--stage all|pairs|train|export]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "toon-run"
PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.jpg"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--stage", default="all", choices=["all", "pairs", "train", "export"])
    args = ap.parse_args()
    from portraitfx._tuning import tune_process

    tune_process()
    if args.stage in ("all", "pairs"):
        from portraitfx.train.student.teacher import TeacherJob, teacher_pairs

        t0 = time.perf_counter()
        job = TeacherJob("faceblit:pencil", tuple(str(ROOT / "tests" / "data" / p) for p in PHOTOS), args.pairs)
        n = teacher_pairs(job, OUT / "pairs", progress=True)
        print(f"pairs: {n} new of {args.pairs} in {time.perf_counter() - t0:.0f} s")
    if args.stage in ("all", "train"):
        from portraitfx.train.student.train import StudentOptions, StudentTrainer, load_pairs

        faces, styles = load_pairs(OUT / "pairs")
        ckpt = OUT / "run" / "checkpoint.safetensors"
        trainer = StudentTrainer(
            faces, styles, StudentOptions(steps=args.steps), resume=ckpt if ckpt.is_file() else None
        )
        t0 = time.perf_counter()
        history = trainer.train(OUT / "run", log_every=100, progress=True)
        print(f"train: {trainer.step_count} steps in {time.perf_counter() - t0:.0f} s; last {history[-1]}")
    if args.stage in ("all", "export"):
        from portraitfx.train.student.export import export_student

        model = ROOT / "src" / "portraitfx" / "assets" / "models" / "toon-pencil.onnx"
        report = export_student(OUT / "run" / "student.safetensors", model, calibration=OUT / "pairs" / "face")
        print(f"export: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
