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
    ap.add_argument("--stage", default="all", choices=["all", "pairs", "train", "export", "figures"])
    args = ap.parse_args()
    from portraitfx._tuning import tune_process

    tune_process()
    if args.stage in ("all", "pairs"):
        from portraitfx.train.student.teacher import TeacherJob, teacher_pairs

        t0 = time.perf_counter()
        job = TeacherJob(
            "faceblit:pencil", tuple(str(ROOT / "tests" / "data" / p) for p in PHOTOS), args.pairs
        )
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
        report = export_student(
            OUT / "run" / "student.safetensors", model, calibration=OUT / "pairs" / "face"
        )
        print(f"export: {report}")
        int8 = export_student(
            OUT / "run" / "student.safetensors", OUT / "toon-pencil-int8.onnx", precision="int8",
            calibration=OUT / "pairs" / "face",
        )  # fmt: skip
        print(f"export int8: {int8}")
    if args.stage in ("all", "figures"):
        figures()
    return 0


def figures() -> None:
    """The eval table, the shipped ONNX model against the teacher on held-out pairs, and the picture."""
    import numpy as np

    from portraitfx.effects.toon.effect import default_model_path
    from portraitfx.face.identity import identity_similarity
    from portraitfx.io.images import save_image
    from portraitfx.metrics import IdentityFeatures
    from portraitfx.runtime.demo import contact_sheet
    from portraitfx.train.student.evaluate import _ffhq, evaluate_run, format_table
    from portraitfx.train.student.train import load_pairs

    print(format_table(evaluate_run(OUT / "run", OUT / "pairs", limit=60)))
    faces, styles = load_pairs(OUT / "pairs")
    n_val = max(2, int(round(len(faces) * 0.1)))
    faces, styles = faces[-n_val:], styles[-n_val:]
    import onnxruntime as ort

    session = ort.InferenceSession(str(default_model_path()), providers=["CPUExecutionProvider"])
    x = faces.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1
    y = np.concatenate([session.run(None, {"image": x[i : i + 1]})[0] for i in range(len(x))])
    out = np.clip((y.transpose(0, 2, 3, 1) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    mse = ((out.astype(np.float64) - styles) ** 2).reshape(len(out), -1).mean(1)
    psnr = float(np.mean(10 * np.log10(255.0**2 / mse)))
    feats = IdentityFeatures()
    f_in, f_out, f_t = (feats(_ffhq(a, 0.8)) for a in (faces, out, styles))
    sim_s = float(np.mean([identity_similarity(a, b) for a, b in zip(f_out, f_in, strict=True)]))
    sim_t = float(np.mean([identity_similarity(a, b) for a, b in zip(f_t, f_in, strict=True)]))
    print(f"held-out ({len(faces)} pairs): ONNX student vs teacher PSNR {psnr:.2f} dB; identity to the photo: "
          f"student {sim_s:.3f}, teacher {sim_t:.3f}")  # fmt: skip
    pick = np.linspace(0, len(faces) - 1, 4).round().astype(int)
    tiles = []
    for i in pick:
        tiles += [("photo", faces[i]), ("teacher (FaceBlit)", styles[i]), ("student (ONNX)", out[i])]
    sheet = contact_sheet(tiles, size=200, columns=6)
    path = save_image(ROOT / "docs" / "images" / "toon-before-after.png", sheet)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
