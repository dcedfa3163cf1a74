"""Fit the iBUG 68-point view of the MediaPipe mesh to dlib's 68-point predictor.

For each iBUG point, pick the pair of mesh vertices whose midpoint best matches
dlib's prediction (mean error normalised by inter-ocular distance) over real
portraits and their mirror images. Prints the table for face/topology.py.

    .venv/bin/python tools/fit_ibug68.py tests/data/*.jpg
"""

from __future__ import annotations

import sys

import dlib
import face_recognition_models as frm
import mediapipe as mp
import numpy as np
from PIL import Image


def main(paths: list[str]) -> None:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_model_location())
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    n = 468
    ii, jj = np.triu_indices(n)
    errs = np.zeros((len(ii), 68))
    span = np.zeros(len(ii))
    count = 0
    for path in paths:
        base = np.asarray(Image.open(path).convert("RGB"))
        for img in (base, np.ascontiguousarray(base[:, ::-1])):
            h, w = img.shape[:2]
            res = mesh.process(img)
            rects = detector(img, 1)
            if not res.multi_face_landmarks or not rects:
                print("skip", path, file=sys.stderr)
                continue
            rect = max(rects, key=lambda r: r.width() * r.height())
            shape = predictor(img, rect)
            target = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
            m = np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark[:n]])
            iod = np.linalg.norm(target[36:42].mean(0) - target[42:48].mean(0))
            mids = (m[ii] + m[jj]) / 2
            d = np.linalg.norm(mids[:, None, :] - target[None], axis=2) / iod
            errs += d
            span += np.linalg.norm(m[ii] - m[jj], axis=1) / iod
            count += 1
    errs /= count
    span /= count
    # Only pairs of nearby vertices: a midpoint of far-apart vertices overfits and
    # drifts with head pose.
    errs[span > 0.2] = np.inf
    best = errs.argmin(0)
    pairs = [(int(ii[b]), int(jj[b])) for b in best]
    print(f"# images used (with mirrors): {count}; mean error {errs.min(0).mean():.4f} IOD")
    print("per-point:", np.round(errs.min(0), 3).tolist())
    print(tuple(pairs))


if __name__ == "__main__":
    main(sys.argv[1:])
