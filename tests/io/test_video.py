"""Tests of portraitfx.io.video: probing, reading, writing and processing clips.

Every clip is built in ``tmp_path`` with :mod:`portraitfx.testing.clips` (PyAV), small (160×120,
at most 60 frames) except one cheap 720p check.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from portraitfx.errors import (
    ConfigError,
    CorruptInputError,
    InputNotFoundError,
    NoVideoStreamError,
    OutputError,
    TruncatedVideoError,
    UnsupportedFormatError,
    VideoError,
)
from portraitfx.io import video
from portraitfx.io.video import VideoReader, VideoWriter, probe_video, process_video
from portraitfx.testing import clips as clipmaker

W, H, FPS = 160, 120, 30


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """45 frames (1.5 s at 30 fps) of synthetic head motion, 160×120."""
    still = clipmaker.synthetic_still(240, 320, seed=1)
    return clipmaker.moving_crop_frames(still, 45, size=(W, H), seed=1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def read_all(path: Path) -> list[video.VideoFrame]:
    with VideoReader(path) as reader:
        return list(reader)


def audio_summary(path: Path) -> tuple[str, float, float, list[bytes]]:
    """(codec, decoded duration s, start time s, first 5 packets' bytes) of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.codec.canonical_name
        samples, start = 0, None
        for frame in container.decode(stream):
            if start is None and frame.pts is not None:
                start = float(frame.pts * frame.time_base)
            samples += frame.samples
        rate = stream.rate
    with av.open(str(path)) as container:
        packets = [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size][:5]
    return codec, samples / rate, start or 0.0, packets


def dominant_hz(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1, f.samples)[0] for f in container.decode(stream)]
        rate = stream.rate
    signal = np.concatenate(chunks).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return float(np.fft.rfftfreq(signal.size, 1.0 / rate)[np.argmax(spectrum)])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


# --------------------------------------------------------------------------- round trips


def test_roundtrip_keeps_count_size_fps_and_pixels(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames, fps=FPS)
    dst = tmp_path / "out.mp4"
    result = process_video(src, dst, lambda f: f.image, progress=False)

    assert result.frames == len(frames) and result.output == dst and not result.truncated
    assert result.seconds_of_video == pytest.approx(len(frames) / FPS)
    info = probe_video(dst)
    assert (info.width, info.height, info.frame_count) == (W, H, len(frames))
    assert info.fps == pytest.approx(FPS)
    assert info.codec == "h264" and not info.variable_frame_rate
    decoded_src = read_all(src)
    out = read_all(dst)
    assert len(out) == len(frames)
    # Against the original arrays (two lossy generations) and against the decoded source
    # (what this station adds: RGB -> YUV 4:2:0 -> H.264 -> RGB once more).
    worst = min(psnr(o.image, f) for o, f in zip(out, frames, strict=True))
    assert worst > 30.0, f"round trip PSNR vs original {worst:.1f} dB"
    worst_station = min(psnr(o.image, s.image) for o, s in zip(out, decoded_src, strict=True))
    assert worst_station > 33.0, f"round trip PSNR vs decoded source {worst_station:.1f} dB"


def test_process_video_applies_fn_and_allows_new_size(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames[:20], fps=FPS)
    dst = tmp_path / "out.mkv"
    seen: list[int] = []

    def invert_and_crop(frame: video.VideoFrame) -> np.ndarray:
        seen.append(frame.index)
        return 255 - frame.image[:100, :140]

    process_video(src, dst, invert_and_crop, progress=False)
    assert seen == list(range(20))
    out = read_all(dst)
    assert out[0].image.shape == (100, 140, 3)
    assert psnr(out[5].image, 255 - frames[5][:100, :140]) > 28.0


def test_reader_frames_have_index_time_and_writable_rgb(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mkv", frames[:12], fps=24)
    with VideoReader(src) as reader:
        got = list(reader)
        assert reader.frames_read == 12 and not reader.truncated
        with pytest.raises(RuntimeError):
            iter(reader)
    assert [f.index for f in got] == list(range(12))
    assert [f.time for f in got] == pytest.approx([i / 24 for i in range(12)], abs=1e-3)
    image = got[3].image
    assert image.dtype == np.uint8 and image.shape == (H, W, 3) and image.flags.writeable
    # RGB order, not BGR: the red channel of the source stays the red channel.
    assert np.abs(image[..., 0].astype(int) - frames[3][..., 0]).mean() < 4


def test_reader_can_stop_early(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames, fps=FPS)
    with VideoReader(src) as reader:
        for frame in reader:
            if frame.index == 3:
                break
        assert reader.frames_read == 4 and not reader.truncated
    assert reader.info.frame_count == len(frames)  # info still works after close (own handle)


def test_reader_start_end_step(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames, fps=FPS, gop=10)
    with VideoReader(src, start=0.5, end=1.0, step=2) as reader:
        got = list(reader)
    assert [f.index for f in got] == list(range(15, 30, 2))
    assert got[0].time == pytest.approx(0.5, abs=1e-3)
    assert psnr(got[1].image, frames[17]) > 30.0
    with pytest.raises(ConfigError):
        VideoReader(src, step=0)


def test_720p_roundtrip(tmp_path: Path) -> None:
    still = clipmaker.synthetic_still(900, 1600, seed=2)
    hd = clipmaker.moving_crop_frames(still, 6, size=(1280, 720))
    src = clipmaker.make_clip(tmp_path / "hd.mp4", hd, fps=FPS, audio_tone_hz=None)
    dst = tmp_path / "hd_out.mp4"
    process_video(src, dst, lambda f: f.image, progress=False)
    info = probe_video(dst)
    assert (info.width, info.height, info.frame_count, info.has_audio) == (1280, 720, 6, False)
    assert psnr(read_all(dst)[3].image, hd[3]) > 30.0


# --------------------------------------------------------------------------- audio


def test_aac_audio_is_copied_in_sync(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames, fps=FPS, audio_tone_hz=440)
    dst = tmp_path / "out.mp4"
    process_video(src, dst, lambda f: f.image, progress=False)
    s_codec, s_dur, s_start, s_packets = audio_summary(src)
    o_codec, o_dur, o_start, o_packets = audio_summary(dst)
    assert s_codec == o_codec == "aac"
    assert o_packets == s_packets, "AAC into MP4 must be remuxed, not re-encoded"
    assert abs(o_dur - s_dur) <= 1 / FPS
    assert abs(o_start - s_start) <= 1 / FPS
    assert probe_video(dst).audio_sample_rate == 48000


@pytest.mark.parametrize(
    ("src_name", "audio_codec", "dst_name", "expected"),
    [
        ("src.mov", "pcm_s16le", "out.mp4", "aac"),
        ("src.mkv", "libmp3lame", "out.mp4", "aac"),
        ("src.mp4", "aac", "out.webm", "opus"),
    ],
)
def test_audio_reencoded_when_container_needs_it(
    tmp_path: Path, frames: list[np.ndarray], src_name: str, audio_codec: str, dst_name: str, expected: str
) -> None:
    src = clipmaker.make_clip(
        tmp_path / src_name, frames, fps=FPS, audio_tone_hz=660, audio_codec=audio_codec
    )
    dst = tmp_path / dst_name
    process_video(src, dst, lambda f: f.image, progress=False)
    s_codec, s_dur, _, _ = audio_summary(src)
    o_codec, o_dur, o_start, _ = audio_summary(dst)
    assert s_codec != o_codec == expected
    assert abs(o_dur - s_dur) <= 1 / FPS, (s_dur, o_dur)
    assert abs(o_start) <= 1 / FPS
    assert dominant_hz(dst) == pytest.approx(660, abs=5)


def test_writer_interleaves_audio_as_it_goes(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames, fps=FPS, audio_seconds=3.0)
    with VideoWriter(tmp_path / "out.mp4", fps=FPS, audio_from=src) as writer:
        assert writer.audio_mode == "copy"
        for i, image in enumerate(frames[:15]):
            writer.write(image, time=i / FPS)
        # After 0.5 s of video, about 0.5 s of audio has been muxed, not none and not all.
        assert 0.4 <= writer.audio_position <= 0.6
    # Without shortest=True the whole (longer) audio track is kept.
    assert audio_summary(tmp_path / "out.mp4")[1] == pytest.approx(3.0, abs=1 / FPS)
    with VideoWriter(tmp_path / "short.mp4", fps=FPS, audio_from=src, shortest=True) as writer:
        for image in frames[:15]:
            writer.write(image)
    assert audio_summary(tmp_path / "short.mp4")[1] == pytest.approx(0.5, abs=1 / FPS)


def test_keep_audio_false_drops_audio_and_progress_bar_shows(
    tmp_path: Path, frames: list[np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames[:10], fps=FPS)
    process_video(src, tmp_path / "out.mp4", lambda f: f.image, keep_audio=False)  # progress on
    assert not probe_video(tmp_path / "out.mp4").has_audio
    assert "/10" in capsys.readouterr().err  # tqdm knows the total from the header


# --------------------------------------------------------------------------- timestamps, rotation, counts


def test_vfr_timestamps_survive_round_trip(tmp_path: Path, frames: list[np.ndarray]) -> None:
    rng = np.random.default_rng(7)
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.015, 0.070, size=len(frames) - 1))])
    src = clipmaker.make_clip(tmp_path / "vfr.mp4", frames, fps=FPS, vfr_times=times.tolist())
    info = probe_video(src)
    assert info.variable_frame_rate
    src_times = [f.time for f in read_all(src)]
    assert src_times == pytest.approx(times.tolist(), abs=float(info.time_base))

    dst = tmp_path / "out.mp4"
    process_video(src, dst, lambda f: f.image, progress=False)
    out_info = probe_video(dst)
    assert out_info.variable_frame_rate and out_info.frame_count == len(frames)
    out_times = [f.time for f in read_all(dst)]
    tick = float(info.time_base)
    assert np.max(np.abs(np.subtract(out_times, src_times))) <= tick + 1e-9


def test_cfr_source_is_not_flagged_vfr(tmp_path: Path, frames: list[np.ndarray]) -> None:
    # Matroska stores milliseconds: 33/34 ms steps are rounding, not a variable rate.
    src = clipmaker.make_clip(tmp_path / "cfr.mkv", frames, fps=FPS)
    assert not probe_video(src).variable_frame_rate
    dst = tmp_path / "out.mp4"
    process_video(src, dst, lambda f: f.image, progress=False)
    assert [f.time for f in read_all(dst)] == pytest.approx([i / FPS for i in range(len(frames))], abs=1e-4)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clip_is_read_upright(tmp_path: Path, frames: list[np.ndarray], rotation: int) -> None:
    stored = frames[:10]
    src = clipmaker.make_clip(tmp_path / "phone.mp4", stored, fps=FPS, rotation=rotation)
    info = probe_video(src)
    assert info.rotation == rotation
    expect_shape = (W, H) if rotation in (90, 270) else (H, W)  # (height, width)
    assert (info.height, info.width) == expect_shape
    got = read_all(src)
    k = -rotation // 90  # np.rot90 turns counter-clockwise; the flag means clockwise
    for frame, original in zip(got, stored, strict=True):
        assert frame.image.shape == (*expect_shape, 3)
        upright = np.rot90(original, k)
        wrong = np.rot90(original, k + 2)
        assert psnr(frame.image, upright) > 30.0
        assert psnr(frame.image, wrong) < psnr(frame.image, upright) - 10.0
    # Processing writes upright pixels and no rotation flag.
    dst = tmp_path / "out.mp4"
    process_video(src, dst, lambda f: f.image, progress=False)
    out_info = probe_video(dst)
    assert out_info.rotation == 0 and (out_info.height, out_info.width) == expect_shape
    assert psnr(read_all(dst)[4].image, np.rot90(stored[4], k)) > 28.0


def test_frame_count_from_header_and_from_packets(tmp_path: Path, frames: list[np.ndarray]) -> None:
    mp4 = clipmaker.make_clip(tmp_path / "a.mp4", frames, fps=FPS)
    mkv = clipmaker.make_clip(tmp_path / "a.mkv", frames, fps=FPS)
    webm = clipmaker.make_clip(tmp_path / "a.webm", frames[:20], fps=FPS, codec="libvpx-vp9")
    with av.open(str(mp4)) as c:
        assert c.streams.video[0].frames == len(frames)  # header knows
    for path in (mkv, webm):
        with av.open(str(path)) as c:
            assert c.streams.video[0].frames == 0  # header does not: packets are counted
    assert probe_video(mp4).frame_count == len(frames)
    assert probe_video(mkv).frame_count == len(frames)
    info = probe_video(webm)
    assert (info.frame_count, info.codec, info.audio_codec) == (20, "vp9", "opus")
    assert info.duration == pytest.approx(20 / FPS, abs=0.05)


def test_probe_is_remembered_until_the_file_changes(tmp_path: Path, frames: list[np.ndarray]) -> None:
    """A runtime probes a clip and then opens its reader: the second probe is free, and a
    clip written again under the same name is probed afresh."""
    clip = clipmaker.make_clip(tmp_path / "a.mp4", frames, fps=FPS)
    first = probe_video(clip)
    with VideoReader(clip) as reader:
        assert probe_video(clip) is first and reader.info is first
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    assert probe_video(link).path == link and probe_video(link).frame_count == first.frame_count
    clipmaker.make_clip(tmp_path / "b.mp4", frames[:10], fps=FPS).replace(clip)
    again = probe_video(clip)
    assert again is not first and again.frame_count == 10


# --------------------------------------------------------------------------- bad inputs


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    audio = clipmaker.make_audio_only(tmp_path / "voice.m4a", seconds=0.5)
    for call in (lambda: probe_video(audio), lambda: VideoReader(audio)):
        with pytest.raises(NoVideoStreamError) as err:
            call()
        assert str(err.value) == "'voice.m4a' has no video stream"
    with pytest.raises(NoVideoStreamError):
        process_video(audio, tmp_path / "out.mp4", lambda f: f.image, progress=False)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    "content",
    [np.random.default_rng(0).bytes(4096), b"this is a text file, not a video\n" * 40, b""],
    ids=["random", "text", "empty"],
)
def test_not_a_video_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    for call in (lambda: probe_video(path), lambda: VideoReader(path)):
        with pytest.raises((UnsupportedFormatError, VideoError)) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and "fake.mp4" in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    for call in (
        lambda: probe_video(missing),
        lambda: VideoReader(missing),
        lambda: process_video(missing, tmp_path / "out.mp4", lambda f: f.image, progress=False),
    ):
        with pytest.raises(InputNotFoundError, match=r"nope\.mp4"):
            call()


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_truncated_mp4_keeps_decoded_frames_then_raises(tmp_path: Path) -> None:
    still = clipmaker.synthetic_still(240, 320, seed=4)
    src_frames = clipmaker.moving_crop_frames(still, 60, size=(W, H), seed=4)
    src = clipmaker.make_clip(tmp_path / "src.mp4", src_frames, fps=FPS)  # index first, like a download
    cut = cut_in_half(src)
    dst = tmp_path / "out.mp4"
    with pytest.raises(TruncatedVideoError) as err:
        process_video(cut, dst, lambda f: f.image, progress=False)
    n = err.value.frames_decoded
    assert 0 < n < 60
    assert err.value.output == str(dst) and dst.exists() and not leftovers(tmp_path)
    message = str(err.value)
    assert f"{n} frames" in message and str(dst) in message and "\n" not in message
    out = read_all(dst)
    assert len(out) == n == probe_video(dst).frame_count
    assert psnr(out[-1].image, src_frames[n - 1]) > 28.0  # the frames before the damage, in order

    with VideoReader(cut) as reader:
        assert len(list(reader)) == n
        assert reader.truncated and reader.frames_read == n and reader.truncation_reason

    result = process_video(
        cut, tmp_path / "again.mp4", lambda f: f.image, progress=False, raise_on_truncated=False
    )
    assert result.truncated and result.frames == n


def test_truncated_mkv_is_detected_from_its_duration(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mkv", frames, fps=FPS)
    with VideoReader(src) as reader:
        list(reader)
        assert not reader.truncated
    with VideoReader(cut_in_half(src)) as reader:
        got = list(reader)
        assert reader.truncated and 0 < len(got) < len(frames)


def test_cut_mp4_without_index_is_corrupt_input(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames, fps=FPS, faststart=False)
    with pytest.raises(CorruptInputError, match=r"cut_src\.mp4"):
        VideoReader(cut_in_half(src))


# --------------------------------------------------------------------------- writer safety


def test_writer_refuses_to_overwrite_an_input(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames[:10], fps=FPS)
    before = src.read_bytes()
    with VideoReader(src):
        pass
    with pytest.raises(OutputError, match="overwrite"):
        VideoWriter(src)
    with pytest.raises(OutputError):
        process_video(src, src, lambda f: f.image, progress=False)
    assert src.read_bytes() == before and not leftovers(tmp_path)


def test_exception_inside_writer_leaves_no_file(tmp_path: Path, frames: list[np.ndarray]) -> None:
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(dst, fps=FPS) as writer:
        for image in frames[:5]:
            writer.write(image)
        raise RuntimeError("boom")
    assert dst.read_bytes() == b"previous result"
    assert not leftovers(tmp_path)

    writer = VideoWriter(tmp_path / "aborted.mp4")
    writer.write(frames[0])
    writer.abort()
    assert not (tmp_path / "aborted.mp4").exists() and not leftovers(tmp_path)


def test_failing_effect_leaves_no_output(tmp_path: Path, frames: list[np.ndarray]) -> None:
    src = clipmaker.make_clip(tmp_path / "src.mp4", frames, fps=FPS)

    def effect(frame: video.VideoFrame) -> np.ndarray:
        if frame.index == 20:
            raise ValueError("effect failed")
        return frame.image

    with pytest.raises(ValueError, match="effect failed"):
        process_video(src, tmp_path / "out.mp4", effect, progress=False)
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


def test_writer_validates_frames(tmp_path: Path, frames: list[np.ndarray]) -> None:
    with VideoWriter(tmp_path / "out.mp4", fps=FPS) as writer:
        with pytest.raises(ConfigError, match="uint8"):
            writer.write(frames[0].astype(np.float32))
        with pytest.raises(ConfigError, match="H×W×3"):
            writer.write(frames[0][..., 0])
        writer.write(frames[0])
        with pytest.raises(ConfigError, match="expected 160×120"):
            writer.write(frames[0][:60])
        writer.write(frames[1])
    assert probe_video(tmp_path / "out.mp4").frame_count == 2
    with pytest.raises(OutputError, match="no frames"), VideoWriter(tmp_path / "empty.mp4"):
        pass
    assert not (tmp_path / "empty.mp4").exists() and not leftovers(tmp_path)


def test_odd_frame_sizes_are_padded_to_even(tmp_path: Path) -> None:
    still = clipmaker.synthetic_still(240, 320, seed=5)
    odd = clipmaker.moving_crop_frames(still, 8, size=(161, 121))
    dst = tmp_path / "odd.mp4"
    with VideoWriter(dst, fps=FPS) as writer:
        for image in odd:
            writer.write(image)
    assert writer.size == (162, 122)
    got = read_all(dst)
    assert got[0].image.shape == (122, 162, 3)
    assert psnr(got[4].image[:121, :161], odd[4]) > 30.0
    # An odd-sized source (4:4:4, as some tools write) goes through process_video too.
    src = clipmaker.make_clip(tmp_path / "odd_src.mkv", odd, fps=FPS)
    process_video(src, tmp_path / "odd_out.mp4", lambda f: f.image, progress=False)
    assert psnr(read_all(tmp_path / "odd_out.mp4")[2].image[:121, :161], odd[2]) > 28.0


def test_writer_keeps_given_times_and_constant_rate(tmp_path: Path, frames: list[np.ndarray]) -> None:
    times = [0.0, 0.05, 0.07, 0.2, 0.21, 0.4]
    with VideoWriter(tmp_path / "vfr.mp4", fps=FPS) as writer:
        for t, image in zip(times, frames, strict=False):
            writer.write(image, time=t + 2.0)  # origin: the first frame's time
    assert [f.time for f in read_all(tmp_path / "vfr.mp4")] == pytest.approx(times, abs=1e-4)
    with VideoWriter(tmp_path / "cfr.mp4", fps=Fraction(30000, 1001)) as writer:
        for image in frames[:10]:
            writer.write(image)
    info = probe_video(tmp_path / "cfr.mp4")
    assert info.fps == pytest.approx(30000 / 1001) and not info.variable_frame_rate


# --------------------------------------------------------------------------- codecs


def test_codec_choice_and_fallback(
    tmp_path: Path, frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as err:
        VideoWriter(tmp_path / "x.mp4", codec="bogus264")
    message = str(err.value)
    assert "bogus264" in message and "libx264" in message and "\n" not in message
    assert not leftovers(tmp_path)

    assert "libx264" in video.available_video_codecs()
    with VideoWriter(tmp_path / "auto.mp4") as writer:
        assert writer.codec == "libx264"
        writer.write(frames[0])
    assert probe_video(tmp_path / "auto.mp4").codec == "h264"

    with VideoWriter(tmp_path / "auto.webm") as writer:
        assert writer.codec == "libvpx-vp9"
        writer.write(frames[0])
    assert probe_video(tmp_path / "auto.webm").codec == "vp9"

    # Without any H.264 encoder, codec=None falls back to MPEG-4 part 2.
    real = video._encoder_works
    monkeypatch.setattr(video, "_encoder_works", lambda name: name not in {"libx264", "h264"} and real(name))
    with VideoWriter(tmp_path / "fallback.mp4", fps=FPS) as writer:
        assert writer.codec == "mpeg4"
        for image in frames[:5]:
            writer.write(image)
    info = probe_video(tmp_path / "fallback.mp4")
    assert (info.codec, info.frame_count) == ("mpeg4", 5)
    assert psnr(read_all(tmp_path / "fallback.mp4")[2].image, frames[2]) > 28.0


def test_codec_that_container_cannot_hold_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="webm"):
        VideoWriter(tmp_path / "x.webm", codec="libx264")
    assert not leftovers(tmp_path) and not (tmp_path / "x.webm").exists()


def test_import_is_light() -> None:
    code = "import sys, portraitfx.io.video; print('av' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- pipelined stages -------------------------------------------------------------------------


def test_run_stages_keeps_order_and_runs_each_stage_in_its_own_thread():
    import threading

    from portraitfx.io.video import run_stages

    seen: dict[str, set[str]] = {"a": set(), "b": set(), "c": set()}

    def stage(name, fn):
        def run(x):
            seen[name].add(threading.current_thread().name)
            return fn(x)

        return run

    out = list(
        run_stages(
            iter(range(50)), [stage("a", lambda x: x * 2), stage("b", lambda x: x + 1), stage("c", str)]
        )
    )
    assert out == [str(2 * i + 1) for i in range(50)]
    assert all(len(v) == 1 for v in seen.values())
    assert len(seen["a"] | seen["b"] | seen["c"]) == 3  # three different threads


def test_run_stages_raises_a_failing_stage_error_and_stops_the_source():
    from portraitfx.io.video import run_stages

    closed = []

    def source():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    def boom(x):
        if x == 7:
            raise ValueError("stage failed on 7")
        return x

    with pytest.raises(ValueError, match="on 7"):
        list(run_stages(source(), [lambda x: x, boom, lambda x: x]))
    assert closed == [True]


def test_process_video_with_stages_matches_one_function(tmp_path, frames):
    moving_clip = clipmaker.make_clip(tmp_path / "in.mp4", frames, fps=30)

    def whole(frame):
        return 255 - frame.image

    a = process_video(moving_clip, tmp_path / "one.mp4", whole, progress=False)
    b = process_video(
        moving_clip, tmp_path / "staged.mp4", [lambda f: f.image, lambda im: 255 - im], progress=False
    )
    assert a.frames == b.frames
    one = [f.image for f in read_all(tmp_path / "one.mp4")]
    staged = [f.image for f in read_all(tmp_path / "staged.mp4")]
    assert len(one) == len(staged)
    # x264 is not always bit-identical from run to run (frame threads): compare by PSNR
    assert min(psnr(x, y) for x, y in zip(one, staged, strict=True)) > 35


# --------------------------------------------------------------------------- frames in the encoder's format


def test_i420_frames_encode_like_rgb(tmp_path, frames):
    """A frame handed over as I420 (converted in another thread) gives the very same video."""
    from portraitfx.io.video import I420Image

    with VideoWriter(tmp_path / "rgb.mp4", fps=12) as w:
        for f in frames[:6]:
            w.write(f)
    with VideoWriter(tmp_path / "yuv.mp4", fps=12) as w:
        for f in frames[:6]:
            w.write(I420Image.from_rgb(f))
    a, b = read_all(tmp_path / "rgb.mp4"), read_all(tmp_path / "yuv.mp4")
    assert len(a) == len(b) == 6
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.image, y.image)
    # mixed in one file, and through RGB for another pixel format
    with VideoWriter(tmp_path / "mixed.mp4", fps=12, pix_fmt="yuv444p") as w:
        w.write(frames[0])
        w.write(I420Image.from_rgb(frames[1]))
    c = read_all(tmp_path / "mixed.mp4")
    assert len(c) == 2 and psnr(c[1].image, frames[1]) > 30


def test_i420_image_checks_and_round_trip(frames):
    from portraitfx.io.video import I420Image

    img = I420Image.from_rgb(frames[0])
    h, w = frames[0].shape[:2]
    assert img.size == (w, h) and img.data.shape == (h * 3 // 2, w) and img.y.shape == (h, w)
    assert psnr(img.to_rgb(), frames[0]) > 30
    with pytest.raises(ConfigError, match="even-sized"):
        I420Image.from_rgb(frames[0][:-1])
    with pytest.raises(ConfigError, match="I420 frame"):
        I420Image(np.zeros((10, 8), np.float32))
    with pytest.raises(ConfigError, match="I420 frame"):
        I420Image(np.zeros((9, 7), np.uint8))
    with pytest.raises(ConfigError, match="I420 frame"):
        I420Image(np.zeros((10, 8), np.uint8))  # rows not a multiple of 3


def test_updated_i420_converts_only_the_boxes(frames):
    """A picture changed inside a few boxes: only they are converted (widened to even
    coordinates for the chroma), everything else keeps the decoded values exactly."""
    from portraitfx.io.video import I420Image, _i420_planes

    base = I420Image.from_rgb(frames[0])
    w, h = base.size
    changed = frames[0].copy()
    changed[11:40, 21:51] = (250, 10, 10)
    out = base.updated(changed, [(21, 11, 51, 40), (0, 0, 0, 5)])  # (an empty box is skipped)
    full = I420Image.from_rgb(changed)
    y, u, v = _i420_planes(out.data, w, h)
    fy, fu, fv = _i420_planes(full.data, w, h)
    by, bu, bv = _i420_planes(base.data, w, h)
    assert np.array_equal(y[10:40, 20:52], fy[10:40, 20:52])  # the box, widened to even coordinates
    assert np.array_equal(u[5:20, 10:26], fu[5:20, 10:26]) and np.array_equal(v[5:20, 10:26], fv[5:20, 10:26])
    outside = np.ones((h, w), bool)
    outside[10:40, 20:52] = False
    assert np.array_equal(y[outside], by[outside])
    assert np.array_equal(u[outside[::2, ::2]], bu[outside[::2, ::2]])
    assert np.array_equal(v[outside[::2, ::2]], bv[outside[::2, ::2]])
    assert base.data is not out.data and np.array_equal(base.data, I420Image.from_rgb(frames[0]).data)
    with pytest.raises(ConfigError, match="updated takes"):
        base.updated(changed[:-2], [(0, 0, 4, 4)])


def test_reader_keeps_the_decoded_picture_when_asked(tmp_path, frames):
    """keep_i420: the frame's own planes come along (the same picture as the RGB image);
    a stream in another format (4:4:4 here) or an unasked reader gives None."""
    clipmaker.make_clip(tmp_path / "a.mp4", frames[:3], fps=FPS)
    with VideoReader(tmp_path / "a.mp4", keep_i420=True) as reader:
        got = list(reader)
    assert all(f.i420 is not None for f in got)
    assert psnr(got[0].i420.to_rgb(), got[0].image) > 40
    assert all(f.i420 is None for f in read_all(tmp_path / "a.mp4"))
    with VideoWriter(tmp_path / "b.mp4", fps=12, pix_fmt="yuv444p") as w:
        for f in frames[:2]:
            w.write(f)
    with VideoReader(tmp_path / "b.mp4", keep_i420=True) as reader:
        assert all(f.i420 is None for f in reader)
