"""Build the canonical 3-D face used for head pose (src/portraitfx/assets/canonical_face.npy).

The mean of MediaPipe meshes of real portraits and their mirror images, aligned by
generalised Procrustes (rotation, scale, translation) and made exactly
left/right symmetric. Mirroring cancels yaw and roll; zero pitch is the average
head pitch of the portraits. Units: inter-ocular distance = 1, origin at the
centroid, x to the image right, y down, z away from the camera.

    .venv/bin/python tools/build_canonical_face.py tests/data/*.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

import mediapipe as mp
import numpy as np
from PIL import Image

from portraitfx.face.pose import umeyama

OUT = Path(__file__).resolve().parents[1] / "src/portraitfx/assets/canonical_face.npy"


def main(paths: list[str]) -> None:
    fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    meshes = []
    for path in paths:
        base = np.asarray(Image.open(path).convert("RGB"))
        for img in (base, np.ascontiguousarray(base[:, ::-1])):
            h, w = img.shape[:2]
            res = fm.process(img)
            if not res.multi_face_landmarks:
                continue
            m = np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark])
            m -= m.mean(0)
            m /= np.linalg.norm(m[468] - m[473])
            meshes.append(m)
    mean = meshes[0].copy()
    for _ in range(10):
        aligned = []
        for m in meshes:
            s, r, t = umeyama(m, mean)
            aligned.append((s * (r @ m.T)).T + t)
        mean = np.mean(aligned, 0)
        mean -= mean.mean(0)
        mean /= np.linalg.norm(mean[468] - mean[473])
    # Symmetry: level the eye line, find each vertex's mirror partner, average.
    v = mean[473] - mean[468]
    ang = np.arctan2(v[1], v[0])
    rz = np.array([[np.cos(-ang), -np.sin(-ang), 0], [np.sin(-ang), np.cos(-ang), 0], [0, 0, 1]])
    mean = mean @ rz.T
    v = mean[473] - mean[468]
    ang = np.arctan2(v[2], v[0])
    ry = np.array([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]])
    mean = mean @ ry.T
    mean[:, 0] -= mean[[468, 473], 0].mean()
    flipped = mean * np.array([-1, 1, 1])
    partner = np.linalg.norm(mean[:, None] - flipped[None], axis=2).argmin(1)
    sym = (mean + flipped[partner]) / 2
    sym -= sym.mean(0)
    sym /= np.linalg.norm(sym[468] - sym[473])
    np.save(OUT, sym.astype(np.float32))
    print(
        f"{len(meshes)} meshes; symmetric partners found for {len(set(partner.tolist()))} vertices -> {OUT}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
