"""Face swap on video through the runtime (tracking, three-stage pipeline, audio, provenance),
and what happens when a face turns too far."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import portraitfx.effects as fx
from _metrics import flow_compensated_diff
from portraitfx.effects.swap.classic import mesh_triangles, visible_triangles
from portraitfx.face.pose import estimate_pose
from portraitfx.face.regions import region_mask
from portraitfx.io.video import VideoReader, probe_video
from portraitfx.testing import clips


def _swap_clip(d, astronaut, data_dir, *, provenance: bool):
    from portraitfx.runtime.apply import apply_to_file

    head = np.ascontiguousarray(astronaut[10:330, 60:380])
    frames = list(clips.iter_moving_crop_frames(head, 30, size=(320, 320), pan=0.05, zoom=0.05, roll_deg=3))
    src = clips.make_clip(d / "in.mp4", frames, fps=30, audio_tone_hz=440)
    effect = fx.create_effect("swap", source=data_dir / "obama.jpg", provenance=provenance)
    try:
        report = apply_to_file(effect, src, d / "out.mp4")
    finally:
        effect.close()
    return src, d / "out.mp4", report


@pytest.fixture(scope="module")
def swapped_clip(tmp_path_factory, astronaut, data_dir):
    return _swap_clip(tmp_path_factory.mktemp("swapvideo"), astronaut, data_dir, provenance=True)


@pytest.fixture(scope="module")
def unmarked_clip(tmp_path_factory, astronaut, data_dir):
    """Without the watermark: a fixed pattern in frame coordinates, it reads as change to a
    motion-compensated difference although nothing flickers (it is measured on its own)."""
    return _swap_clip(tmp_path_factory.mktemp("swapvideo-unmarked"), astronaut, data_dir, provenance=False)


def test_video_swap_keeps_audio_frames_and_carries_provenance(swapped_clip):
    from portraitfx.provenance import read_provenance
    from portraitfx.provenance.watermark import detect_watermark_frames

    src, out, report = swapped_clip
    a, b = probe_video(src), probe_video(out)
    assert b.has_audio and a.has_audio
    assert b.frame_count == a.frame_count == report.frames == 30
    assert report.faces == 30
    assert read_provenance(out)["effect"] == "swap"
    assert detect_watermark_frames(f.image for f in VideoReader(out)).found


def test_video_swap_does_not_flicker(unmarked_clip, analyzer):
    src, out, _ = unmarked_clip
    inputs = [f.image for f in VideoReader(src)]
    outputs = [f.image for f in VideoReader(out)]
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in inputs]
    flows = [
        cv2.calcOpticalFlowFarneback(grays[i], grays[i - 1], None, 0.5, 3, 21, 3, 5, 1.1, 0)
        for i in range(1, len(grays))
    ]
    mask = region_mask(inputs[0].shape, analyzer.analyze(inputs[0])[0].landmarks, "face") > 0.5
    ours = flow_compensated_diff(outputs, mask, flows)
    base = flow_compensated_diff(inputs, mask, flows)
    changed = np.mean([np.abs(o.astype(int) - i)[mask].mean() for o, i in zip(outputs, inputs, strict=True)])
    assert changed > 8, "the face was swapped"
    assert ours <= 1.5 * base, f"flicker {ours:.2f} vs input {base:.2f}"


def _turned(face, yaw_deg: float):
    """The face's mesh turned about the vertical axis through its centre (uses the mesh's depth)."""
    lm = face.landmarks.astype(np.float64).copy()
    c = lm[:468].mean(0)
    a = np.radians(yaw_deg)
    x, z = lm[:, 0] - c[0], lm[:, 2] - c[2]
    lm[:, 0] = c[0] + np.cos(a) * x + np.sin(a) * z
    lm[:, 2] = c[2] - np.sin(a) * x + np.cos(a) * z
    lm = lm.astype(np.float32)
    return face.copy(landmarks=lm, pose=estimate_pose(lm))


def test_a_face_turned_too_far_is_left_as_it_is(obama, analyzer, data_dir):
    """Only triangles facing the camera are used (fewer as the head turns); past 60 degrees
    of yaw the face is kept rather than smeared."""
    face = analyzer.analyze(obama)[0]
    effect = fx.create_effect("swap", source=data_dir / "biden.jpg", provenance=False)
    tri = mesh_triangles()
    turned = {yaw: _turned(face, yaw) for yaw in (0, 35, 75)}
    assert abs(turned[75].pose.yaw) > 60 > abs(turned[35].pose.yaw)
    share = {yaw: visible_triangles(f.landmarks).mean() for yaw, f in turned.items()}
    assert share[0] > share[35] > share[75], share
    far = effect.apply(obama, [turned[75]])
    assert np.array_equal(far, obama)
    some = effect.apply(obama, [turned[35]])
    assert np.abs(some.astype(int) - obama).mean() > 0.5
    assert len(tri) > 800


def test_a_face_lost_for_a_frame_or_two_does_not_pop(obama, analyzer, data_dir):
    from portraitfx.effects import EffectState

    face = analyzer.analyze(obama)[0].copy(track_id=0)
    effect = fx.create_effect("swap", source=data_dir / "biden.jpg", provenance=False)
    state = EffectState()
    swapped = [effect.apply(obama, [face], state) for _ in range(3)]
    assert np.abs(swapped[-1].astype(int) - obama).mean() > 1.0
    held = [effect.apply(obama, [], state) for _ in range(3)]  # the mesh misses three frames
    # the first two stand in with the track's last face; then it is gone
    assert np.abs(held[0].astype(int) - swapped[-1]).mean() < 0.5
    assert np.abs(held[1].astype(int) - swapped[-1]).mean() < 0.5
    assert np.array_equal(held[2], obama)
    back = effect.apply(obama, [face], state)
    assert np.abs(back.astype(int) - swapped[-1]).mean() < 0.5


def test_the_two_halves_overlapping_in_threads_give_what_apply_gives(astronaut, data_dir):
    """The video runtime runs SwapEffect.begin of a frame beside finish of the one before;
    the output must not depend on that (corrections apply a fixed number of frames after
    their measurement), so it equals a plain loop of apply, frame for frame."""
    from portraitfx.effects import EffectState
    from portraitfx.effects.swap.effect import CORRECT_EVERY, CORRECTION_LAG
    from portraitfx.face.track import FaceTracker
    from portraitfx.io.video import run_stages

    n = CORRECT_EVERY + CORRECTION_LAG + 4  # a correction is measured, then applied
    head = np.ascontiguousarray(astronaut[10:330, 60:380])
    frames = list(clips.iter_moving_crop_frames(head, n, size=(256, 256), pan=0.05, zoom=0.05, roll_deg=3))
    effect = fx.create_effect("swap", source=data_dir / "obama.jpg", provenance=False)
    preparer = effect.template_preparer()
    analysed = []
    with FaceTracker(4, smooth=effect.smooth_landmarks) as tracker:
        for i, frame in enumerate(frames):
            faces = tracker.update(frame, i / 30)
            analysed.append((frame, faces, [preparer.prepare_face(frame, f) for f in faces]))

    def with_arrays(state, faces, extras):
        for face, arrays in zip(faces, extras, strict=True):
            state.for_face(face)["template"] = arrays

    plain_state = EffectState()
    plain = []
    for frame, faces, extras in analysed:
        with_arrays(plain_state, faces, extras)
        plain.append(effect.apply(frame, faces, plain_state, mark=False))

    state = EffectState()

    def begin(item):
        frame, faces, extras = item
        with_arrays(state, faces, extras)
        return frame, effect.begin(frame.copy(), faces, state)

    def finish(item):
        # as the video runtime does: drawn into the (copied) decoded frame, which changes
        # only inside the boxes the token reports
        frame, token = item
        out = effect.finish(token, reuse_frame=True)[0]
        assert out is token.frame and token.changed
        outside = np.ones(frame.shape[:2], bool)
        for x0, y0, x1, y1 in token.changed:
            outside[y0:y1, x0:x1] = False
        assert np.array_equal(out[outside], frame[outside])
        return out

    staged = list(run_stages(iter(analysed), [begin, finish], depth=3))
    assert len(staged) == n
    corrections = [sc.get("correction") for sc in plain_state.tracks.values()]
    assert any(c is not None for c in corrections), "a correction was applied within the clip"
    for k, (a, b) in enumerate(zip(plain, staged, strict=True)):
        assert np.array_equal(a, b), f"frame {k} differs"
    assert np.abs(plain[-1].astype(int) - frames[-1]).mean() > 1.0, "the face was swapped"
    effect.close()
