"""Live mode on a video played in real time: bounded latency by dropping frames, sinks, keys, CLI."""

from __future__ import annotations

import time

import numpy as np
import pytest

from portraitfx.io.video import VideoReader, probe_video
from portraitfx.runtime.live import FileSource, LiveSession, RecordSink
from portraitfx.testing import clips


@pytest.fixture(scope="module")
def clip(tmp_path_factory, obama):
    d = tmp_path_factory.mktemp("live")
    frames = clips.iter_moving_crop_frames(
        obama, 60, size=(320, 240), center=(0.5, 0.38), pan=0.03, zoom=0.03, roll_deg=2
    )
    return clips.make_clip(d / "clip.mp4", frames, fps=30)


class _Slow:
    """An effect that takes 80 ms a frame (slower than the 33 ms between frames)."""

    name = "slow"

    def __init__(self, tint: int = 0) -> None:
        self.tint = tint

    def apply(self, frame, faces, state=None):
        time.sleep(0.08)
        return np.clip(frame.astype(int) + self.tint, 0, 255).astype(np.uint8)

    def close(self) -> None:
        pass


class _Keys:
    """A sink that presses keys on given frames and keeps what it was shown."""

    def __init__(self, keys: dict[int, int]) -> None:
        self.keys, self.frames = keys, []

    def show(self, image, t):
        self.frames.append(image)
        return self.keys.get(len(self.frames), -1)

    def close(self) -> None:
        pass


def test_a_slow_effect_drops_frames_instead_of_falling_behind(clip, tmp_path):
    out = tmp_path / "live.mp4"
    stats = LiveSession(FileSource(clip), [("slow", _Slow())], [RecordSink(out)]).run()
    assert stats.frames_in == 60
    assert 10 <= stats.frames_shown <= 30 and stats.frames_dropped >= 25
    assert stats.frames_shown + stats.frames_dropped == stats.frames_in
    # the picture shown is never more than about one processing time behind the camera
    assert stats.latency_ms[1] < 250, stats.latency_ms
    assert probe_video(out).frame_count == stats.frames_shown


def test_keys_switch_effects_and_quit(clip):
    sink = _Keys({3: ord("n"), 6: ord("q")})
    stats = LiveSession(FileSource(clip), [("a", _Slow(0)), ("b", _Slow(60))], [sink]).run()
    assert stats.frames_shown == 6
    assert stats.effects_used == ["a", "b"]
    # frames 4-6 come from the second effect (brighter), the overlay is drawn in the corner
    assert sink.frames[4][100:, :].mean() > sink.frames[1][100:, :].mean() + 30
    assert not np.array_equal(sink.frames[0][:12, :60], sink.frames[0][:12, :60] * 0)


def test_stylize_live_changes_the_face_and_records(clip, tmp_path):
    from portraitfx.effects import create_effect

    out = tmp_path / "pencil.mp4"
    effect = create_effect("stylize", style="pencil")
    stats = LiveSession(FileSource(clip), [("pencil", effect)], [RecordSink(out)], overlay=False).run(
        seconds=1.5
    )
    assert stats.frames_shown >= 10
    recorded = [f.image for f in VideoReader(out)]
    originals = [f.image for f in VideoReader(clip)]
    centre = (slice(70, 170), slice(110, 210))
    # stylized: far from every input frame (frames were dropped, so which one it was is unknown)
    last = recorded[-1][centre].astype(int)
    assert min(np.abs(last - o[centre]).mean() for o in originals) > 10


def test_cli_live(clip, tmp_path, capsys):
    from portraitfx.cli.main import main

    out = tmp_path / "cli.mp4"
    code = main(
        ["live", "--input", str(clip), "-s", "pencil", "--no-window", "--record", str(out), "--seconds", "1"]
    )
    assert code == 0, capsys.readouterr().err
    assert out.is_file() and "frames shown" in capsys.readouterr().out
    assert main(["live", "--input", str(clip), "--no-window"]) == 2
    assert "nothing would show the frames" in capsys.readouterr().err
    assert main(["live", "--camera", "0", "--input", str(clip), "--no-window", "--record", str(out)]) == 2
    assert main(["live", "--input", str(clip), "--effect", "swap", "--no-window", "--record", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--source" in err and "Traceback" not in err


def test_live_swap_is_watermarked(clip, tmp_path, data_dir):
    from portraitfx.effects import create_effect
    from portraitfx.provenance.watermark import detect_watermark_frames

    out = tmp_path / "swap.mp4"
    effect = create_effect("swap", source=data_dir / "biden.jpg")
    stats = LiveSession(FileSource(clip), [("swap", effect)], [RecordSink(out)], overlay=False).run(
        seconds=1.5
    )
    effect.close()
    assert stats.frames_shown >= 8
    assert detect_watermark_frames(f.image for f in VideoReader(out)).found


def test_virtual_camera_sink(clip, monkeypatch):
    """The machine has no virtual camera device: without pyvirtualcam the error is one
    clear line; with a stand-in module (the package's documented Camera API) the
    processed frames reach it at the source's size and rate."""
    import sys
    import types

    from portraitfx.errors import ConfigError
    from portraitfx.runtime.live import VirtualCameraSink

    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # not installed
    with pytest.raises(ConfigError, match="needs the 'pyvirtualcam' package"):
        VirtualCameraSink((320, 240))

    sent, opened = [], {}

    class Camera:
        def __init__(self, width, height, fps, **kw):
            if width % 2:
                raise RuntimeError("odd width\nnot supported")
            opened.update(width=width, height=height, fps=fps)

        def send(self, frame):
            assert frame.flags["C_CONTIGUOUS"] and frame.dtype == np.uint8
            sent.append(frame.copy())

        def close(self):
            opened["closed"] = True

    monkeypatch.setitem(sys.modules, "pyvirtualcam", types.SimpleNamespace(Camera=Camera))
    with pytest.raises(ConfigError, match="no virtual camera device: odd width not supported"):
        VirtualCameraSink((321, 240))
    sink = VirtualCameraSink((320, 240), fps=30)
    stats = LiveSession(FileSource(clip, realtime=False), [("tint", _Slow(tint=40))], [sink]).run()
    assert opened == {"width": 320, "height": 240, "fps": 30, "closed": True}
    assert len(sent) == stats.frames_shown > 0
    assert sent[0].shape == (240, 320, 3)
    first = next(iter(VideoReader(clip))).image
    assert sent[0].astype(int).mean() > first.astype(int).mean() + 20, "the effect's frames were sent"
