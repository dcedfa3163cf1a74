"""Model-free face swap speed on a 1280x720 30 fps clip with one face, end to end, with a per-stage split.

    .venv/bin/python bench/bench_swap.py [--seconds 5]

Targets (swap issue): <= 1.0 s of processing per 1 s of video (decode -> encode);
<= 0.5 with the template cache (``portraitfx swap prepare``).
Baseline in the same run: the same clip decoded and re-encoded with no effect.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    os.environ.setdefault("PORTRAITFX_HOME", tempfile.mkdtemp(prefix="pfx-bench-"))

    from portraitfx._tuning import tune_process
    from portraitfx.effects import EffectState, create_effect
    from portraitfx.face.track import FaceTracker
    from portraitfx.io.images import load_image
    from portraitfx.io.video import VideoReader, process_video
    from portraitfx.runtime.apply import apply_to_file
    from portraitfx.testing import clips

    tune_process()  # as process_video does: the stage split below runs outside it
    img = load_image(ROOT / "tests/data/biden.jpg")
    n = int(args.seconds * 30)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        wide = cv2.copyMakeBorder(
            load_image(ROOT / "tests/data/obama.jpg"), 0, 0, 150, 150, cv2.BORDER_REFLECT_101
        )
        frames = clips.iter_moving_crop_frames(wide, n, size=(1280, 720), center=(0.52, 0.3), crop=0.8)
        clip = clips.make_clip(d / "clip.mp4", frames, fps=30)
        effect = create_effect("swap", source=img)
        # stage split, in-process
        decoded = [f for f in VideoReader(clip)]
        t0 = time.perf_counter()
        _ = [f for f in VideoReader(clip)]
        decode = (time.perf_counter() - t0) / n
        state, track_t, swap_t = EffectState(), 0.0, 0.0
        with FaceTracker(4, smooth=effect.smooth_landmarks) as tracker:  # as the runtime does
            for f in decoded:
                t0 = time.perf_counter()
                faces = tracker.update(f.image, f.time)
                t1 = time.perf_counter()
                effect.apply(f.image, faces, state)
                t2 = time.perf_counter()
                track_t += t1 - t0
                swap_t += t2 - t1
        t0 = time.perf_counter()
        base = process_video(clip, d / "copy.mp4", lambda f: f.image, progress=False)
        copy_s = time.perf_counter() - t0
        report = apply_to_file(effect, clip, d / "out.mp4", template=None)
        # with the template cache: faces, occluders and motion prepared once
        from portraitfx.runtime.template import prepare_template

        t0 = time.perf_counter()
        tpl = prepare_template(clip, d / "clip.pfxtemplate", effect=effect.template_preparer())
        prepare_s = time.perf_counter() - t0
        cached = apply_to_file(effect, clip, d / "cached.mp4", template=tpl)
    rate = report.seconds / report.media_seconds
    print(
        f"swap_video_720p30_s_per_s: {rate:.3f}  ({report.frames} frames, {report.faces} faces; target <= 1.0)"
    )
    print(f"  ms_per_frame: {report.seconds / report.frames * 1000:.1f}  ratio_to_realtime: {rate:.3f}")
    print(f"  stages_ms_per_frame: decode {decode * 1000:.1f}, analysis (tracking) {track_t / n * 1000:.1f}, "
          f"swap + paste {swap_t / n * 1000:.1f}, decode+encode alone {copy_s / base.frames * 1000:.1f}")  # fmt: skip
    print(f"  baseline_copy_s_per_s: {copy_s / base.seconds_of_video:.3f}")
    print(
        f"swap_video_720p30_template_s_per_s: {cached.seconds / cached.media_seconds:.3f}  (target <= 0.5; "
        f"prepared once in {prepare_s:.1f} s; same clip analysed live: {rate:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
