"""Tracking on synthetic moving clips made from real portraits: stable ids, smoothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portraitfx.face.track import FaceTracker, assign_tracks


def _head(analyzer, image, side):
    """Square crop around the face, 1.8x the face box, resized to ``side``."""
    x0, y0, x1, y1 = analyzer.analyze(image)[0].bbox
    c, r = ((x0 + x1) / 2, (y0 + y1) / 2), 0.9 * max(x1 - x0, y1 - y0)
    m = np.float32(
        [
            [side / (2 * r), 0, side / 2 - c[0] * side / (2 * r)],
            [0, side / (2 * r), side / 2 - c[1] * side / (2 * r)],
        ]
    )
    return cv2.warpAffine(image, m, (side, side), borderMode=cv2.BORDER_REPLICATE)


def _two_face_clip(analyzer, obama, biden, n=40, size=(640, 360)):
    """Two faces drifting toward each other (and a little up and down)."""
    w, h = size
    a = _head(analyzer, obama, 150)
    b = _head(analyzer, biden, 130)
    frames = []
    for i in range(n):
        t = i / (n - 1)
        canvas = np.full((h, w, 3), 90, np.uint8)
        ax, ay = int(40 + 120 * t), int(80 + 30 * np.sin(6 * t))
        bx, by = int(450 - 110 * t), int(120 - 25 * np.sin(5 * t))
        canvas[ay : ay + 150, ax : ax + 150] = a
        canvas[by : by + 130, bx : bx + 130] = b
        frames.append((canvas, (ax + 75, ay + 75), (bx + 65, by + 65)))
    return frames


def test_ids_stay_with_their_faces(analyzer, obama, biden):
    clip = _two_face_clip(analyzer, obama, biden)
    seen = {}
    with FaceTracker(max_faces=2) as tracker:
        for i, (frame, ca, cb) in enumerate(clip):
            faces = tracker.update(frame, i / 30)
            assert len(faces) == 2, f"frame {i}"
            for f in faces:
                who = "a" if np.linalg.norm(f.center - ca) < np.linalg.norm(f.center - cb) else "b"
                seen.setdefault(f.track_id, set()).add(who)
    assert len(seen) == 2, f"ids changed: {seen}"
    assert all(len(v) == 1 for v in seen.values())


def test_brief_loss_keeps_the_id_long_loss_gets_a_new_one(astronaut):
    frame = np.ascontiguousarray(astronaut)
    blank = np.full_like(frame, 128)
    with FaceTracker(max_faces=1, max_age=5) as tracker:
        first = tracker.update(frame, 0.0)[0].track_id
        assert tracker.update(frame, 1 / 30)[0].track_id == first
        for k in range(3):  # covered for 3 frames
            assert tracker.update(blank, (2 + k) / 30) == []
        assert tracker.update(frame, 5 / 30)[0].track_id == first
        for k in range(8):  # gone for longer than max_age
            assert tracker.update(blank, (6 + k) / 30) == []
        again = tracker.update(frame, 14 / 30)[0].track_id
    assert again != first


def test_small_faces_in_a_wide_frame_are_tracked(astronaut):
    """A 40 px face in a 1280x720 frame: too small for a full-frame mesh, fine for per-face crops."""
    small = cv2.resize(astronaut, (180, 180), interpolation=cv2.INTER_AREA)
    with FaceTracker(max_faces=1) as tracker:
        for i in range(10):
            frame = np.full((720, 1280, 3), 100, np.uint8)
            frame[300 : 300 + 180, 200 + 8 * i : 380 + 8 * i] = small
            faces = tracker.update(frame, i / 30)
            assert len(faces) == 1 and faces[0].track_id == 0
            assert 200 + 8 * i + 40 < faces[0].center[0] < 200 + 8 * i + 120


def test_smoothing_reduces_jitter_on_a_still_face(astronaut):
    rng = np.random.default_rng(3)
    h, w = astronaut.shape[:2]
    frames = []
    for _ in range(30):  # sub-pixel camera shake
        m = np.float32([[1, 0, rng.normal(0, 0.8)], [0, 1, rng.normal(0, 0.8)]])
        frames.append(cv2.warpAffine(astronaut, m, (w, h), borderMode=cv2.BORDER_REFLECT_101))

    def jitter(smooth):
        with FaceTracker(max_faces=1, smooth=smooth) as tr:
            pts = np.stack([tr.update(f, i / 30)[0].landmarks[:, :2] for i, f in enumerate(frames)])
        return np.linalg.norm(np.diff(pts, axis=0), axis=2).mean()

    assert jitter(True) < 0.6 * jitter(False)


def test_assign_tracks_hungarian():
    prev = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    cur = np.array([[21, 1, 31, 11], [100, 100, 110, 110], [1, 1, 11, 11]], np.float32)
    pairs, new = assign_tracks(prev, cur)
    assert sorted(pairs) == [(0, 2), (1, 0)] and new == [1]
    assert assign_tracks(np.zeros((0, 4)), cur) == ([], [0, 1, 2])


def test_bad_max_faces():
    from portraitfx.errors import ConfigError

    with pytest.raises(ConfigError):
        FaceTracker(max_faces=0)
