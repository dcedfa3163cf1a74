"""The real-time student (toon) on this CPU, against its FaceBlit teacher measured in the same run.

    .venv/bin/python bench/bench_toon.py [--model M.onnx] [--seconds 5]

Figures (targets from the face-stylization studio issue):
    toon_crop_256_ms          <= 10 ms   one 256 px face crop through the ONNX student (fp32 and int8)
    toon_frame_720p_ms        <= 40 ms   a whole 1280x720 frame (frame mode)
    toon_video_720p30_s_per_s <= 1.0     decode + track + toon + encode (audio kept)
Plus parameters and GFLOPs. Baselines: int8 against fp32; the teacher (FaceBlit
``pencil``, the same faces) for the video.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _session(path: Path, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _ms(session, x: np.ndarray, repeats: int) -> float:
    session.run(None, {"image": x})
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            session.run(None, {"image": x})
        best.append((time.perf_counter() - t0) / repeats * 1000)
    return min(best)


def bench_network(model: Path, int8: Path | None) -> None:
    import json

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from portraitfx.train.student.network import Student, StudentConfig

    fp32 = _session(model)
    cfg = StudentConfig.from_dict(json.loads(fp32.get_modelmeta().custom_metadata_map["config"]))
    net = Student(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, 256, 256))
    params = sum(p.numel() for p in net.parameters())
    print(f"toon_student: {params / 1e3:.0f} k parameters, {counter.get_total_flops() / 1e9:.2f} GFLOPs per 256 px "
          f"crop (width {cfg.width}), {model.stat().st_size / 1e6:.2f} MB")  # fmt: skip
    rng = np.random.default_rng(0)
    crop = rng.uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32)
    frame = rng.uniform(-1, 1, (1, 3, 720, 1280)).astype(np.float32)
    sessions = {"fp32": fp32}
    if int8 is not None:
        sessions["int8"] = _session(int8)
    figures = {name: (_ms(s, crop, 20), _ms(s, frame, 5)) for name, s in sessions.items()}
    for name, (c, f) in figures.items():
        print(
            f"toon_crop_256_ms_{name}: {c:.2f}  (target <= 10)   toon_frame_720p_ms_{name}: {f:.1f}  (target <= 40)"
        )
    if "int8" in figures:
        (c32, f32), (c8, f8) = figures["fp32"], figures["int8"]
        print(f"  ratio fp32/int8: crop {c32 / c8:.2f}x, frame {f32 / f8:.2f}x")


def bench_video(seconds: float, model: Path | None) -> None:
    from portraitfx.effects import create_effect
    from portraitfx.io.images import load_image
    from portraitfx.runtime.apply import apply_to_file
    from portraitfx.testing import clips

    img = load_image(ROOT / "tests/data/obama.jpg")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        n = int(seconds * 30)
        wide = cv2.copyMakeBorder(img, 0, 0, 150, 150, cv2.BORDER_REFLECT_101)
        frames = clips.iter_moving_crop_frames(wide, n, size=(1280, 720), center=(0.52, 0.3), crop=0.8)
        clip = clips.make_clip(d / "clip.mp4", frames, fps=30)
        for name, effect in (
            ("toon", create_effect("toon", model=model)),
            ("faceblit_teacher", create_effect("stylize", style="pencil", region="head")),
        ):
            apply_to_file(effect, ROOT / "tests/data/obama.jpg", d / f"warm-{name}.png")
            report = apply_to_file(effect, clip, d / f"{name}.mp4")
            rates[name] = report.seconds / report.media_seconds
            effect.close()
    print(f"toon_video_720p30_s_per_s: {rates['toon']:.3f}  ({n} frames; target <= 1.0)")
    print(f"  baseline faceblit_teacher_s_per_s: {rates['faceblit_teacher']:.3f}  "
          f"ratio teacher/student: {rates['faceblit_teacher'] / rates['toon']:.2f}x")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="an exported student [default: the shipped one]")
    ap.add_argument("--int8", type=Path, default=None, help="its int8 export [default: made here]")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    from portraitfx._tuning import tune_process
    from portraitfx.effects.toon.effect import default_model_path

    tune_process()
    model = args.model or default_model_path()
    int8 = args.int8
    if int8 is None:  # quantise the fp32 model here, calibrated on the test photos' faces
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        import portraitfx as pfx
        from portraitfx.face.align import alignment_matrix

        crops = []
        for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.jpg"):
            image = pfx.load_image(ROOT / "tests" / "data" / name)
            m = alignment_matrix(pfx.analyze(image)[0].five_points, 256, "ffhq", 0.8)
            crops.append(
                cv2.warpAffine(image, m, (256, 256)).astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
            )

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter([{"image": c} for c in crops])

            def get_next(self):
                return next(self.items, None)

        int8 = Path(tempfile.mkdtemp()) / "int8.onnx"
        quantize_static(str(model), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)  # fmt: skip
    bench_network(model, int8)
    bench_video(args.seconds, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
