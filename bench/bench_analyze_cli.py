"""`portraitfx analyze CLIP.mp4 --json` on a 720p30 clip with one face: seconds of processing per second of video.

    .venv/bin/python bench/bench_analyze_cli.py [--seconds 10]

Start-up (interpreter, imports, model loading) is measured in the same run by
analysing a one-frame clip of the same size, and subtracted. Target: <= 0.3 s per
1 s of video beyond start-up. Baseline: the same clip through MediaPipe's
full-frame face mesh (video mode) with plain PyAV decoding, in-process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _run_cli(clip: Path, out: Path) -> float:
    exe = Path(sys.executable).with_name("portraitfx")
    t0 = time.perf_counter()
    subprocess.run([str(exe), "analyze", str(clip), "--json", str(out), "--quiet"], check=True)
    return time.perf_counter() - t0


def main() -> int:
    from portraitfx.face import _mp
    from portraitfx.io.images import load_image
    from portraitfx.testing import clips as clipmaker

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    n = int(args.seconds * 30)
    head = np.ascontiguousarray(load_image(ROOT / "tests/data/astronaut.jpg")[0:300, 75:375])
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clip = clipmaker.make_clip(
            d / "clip.mp4", clipmaker.iter_moving_crop_frames(head, n, size=(1280, 720)), fps=30
        )
        one = clipmaker.make_clip(
            d / "one.mp4", clipmaker.iter_moving_crop_frames(head, 1, size=(1280, 720)), fps=30
        )
        _run_cli(one, d / "warm.json")  # warm the file cache
        startup = min(_run_cli(one, d / "one.json") for _ in range(2))
        total = _run_cli(clip, d / "clip.json")
        import json

        frames = json.loads((d / "clip.json").read_text())["frames"]
        found = sum(1 for f in frames if f["faces"])

        import av

        graph = _mp.face_mesh(static=False, max_faces=1)
        t0 = time.perf_counter()
        with av.open(str(clip)) as c:
            for frame in c.decode(video=0):
                graph.process(frame.to_ndarray(format="rgb24"))
        base = time.perf_counter() - t0
        graph.close()
    ours = (total - startup) / args.seconds
    print(f"analyze_cli_720p30_startup_s: {startup:.2f}")
    print(f"analyze_cli_720p30_total_s: {total:.2f}  ({len(frames)} frames, face in {found})")
    print(f"analyze_cli_720p30_s_per_s: {ours:.3f}  (beyond start-up; target <= 0.3)")
    print(f"  ratio_to_realtime: {ours:.3f}")
    print(
        f"  baseline_mediapipe_fullframe_s_per_s: {base / args.seconds:.3f}  ratio ours/baseline: {ours / (base / args.seconds):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
