"""Build small test clips with PyAV, entirely offline.

Import it as ``from portraitfx.testing import clips``.
It writes real media files (H.264/MPEG-4/VP9 video, AAC/MP3/PCM/Opus audio) so that
readers, writers and effects are exercised on the same kind of data users have,
without shipping binary fixtures.

* :func:`make_clip` encodes frames (H×W×3 uint8 RGB) to a file, with an optional
  sine tone as audio, an optional rotation flag and optional irregular (VFR)
  frame times.
* :func:`make_audio_only` writes an audio file with no video stream.
* :func:`moving_crop_frames` / :func:`iter_moving_crop_frames` turn one still image
  (e.g. a portrait) into a clip with smooth synthetic "head motion": a slow pan,
  zoom and small roll of a crop window.
* :func:`synthetic_still` draws a deterministic textured test picture.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> still = synthetic_still(240, 320)
    >>> frames = moving_crop_frames(still, 12, size=(160, 120))
    >>> path = make_clip(pathlib.Path(tempfile.mkdtemp()) / "clip.mp4", frames, fps=24)
    >>> path.suffix
    '.mp4'
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

__all__ = [
    "default_audio_codec",
    "iter_moving_crop_frames",
    "make_audio_only",
    "make_clip",
    "moving_crop_frames",
    "synthetic_still",
    "tone",
]

#: Time base used for clips with irregular frame times (fine enough for any test).
VFR_TIME_BASE = Fraction(1, 90000)


def default_audio_codec(path: str | os.PathLike[str]) -> str:
    """Return the audio codec :func:`make_clip` uses for a file name by default.

    ``.webm``/``.opus``/``.ogg`` get Opus, ``.wav`` gets 16-bit PCM, ``.mp3`` gets MP3,
    everything else (``.mp4``, ``.mov``, ``.mkv``, ``.m4a``, ...) gets AAC.
    """
    suffix = Path(path).suffix.lower()
    if suffix in {".webm", ".opus", ".ogg"}:
        return "libopus"
    if suffix == ".wav":
        return "pcm_s16le"
    if suffix == ".mp3":
        return "libmp3lame"
    return "aac"


def tone(seconds: float, hz: float = 440.0, rate: int = 48000, amplitude: float = 0.3) -> np.ndarray:
    """Return a mono sine tone as float32 samples in [-1, 1], shape ``(round(seconds*rate),)``."""
    n = max(0, round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    return (amplitude * np.sin(2.0 * math.pi * hz * t)).astype(np.float32)


def _container_options(path: Path, faststart: bool) -> dict[str, str]:
    if faststart and path.suffix.lower() in {".mp4", ".m4v", ".mov", ".m4a"}:
        return {"movflags": "+faststart"}
    return {}


def _add_audio_stream(
    container: av.container.OutputContainer, codec: str, rate: int, channels: int
) -> av.audio.stream.AudioStream:
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono" if channels == 1 else "stereo"
    return stream


class _ToneEncoder:
    """Encode a sine tone chunk by chunk, so audio can be interleaved with video."""

    chunk = 1024

    def __init__(self, stream: av.audio.stream.AudioStream, hz: float, rate: int, channels: int) -> None:
        self.stream, self.hz, self.rate, self.channels = stream, hz, rate, channels
        self.layout = "mono" if channels == 1 else "stereo"
        self.samples_done = 0

    def encode_until(self, seconds: float) -> Iterator[av.Packet]:
        """Yield packets covering the tone up to ``seconds`` (in whole chunks, the last one cut)."""
        end = round(seconds * self.rate)
        while self.samples_done < end:
            n = min(self.chunk, end - self.samples_done)
            t = (self.samples_done + np.arange(n, dtype=np.float64)) / self.rate
            block = (0.3 * np.sin(2.0 * math.pi * self.hz * t)).astype(np.float32)
            planar = np.ascontiguousarray(np.repeat(block[None, :], self.channels, axis=0))
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts = self.samples_done
            frame.time_base = Fraction(1, self.rate)
            self.samples_done += n
            yield from self.stream.encode(frame)

    def flush(self) -> Iterator[av.Packet]:
        yield from self.stream.encode(None)


def make_clip(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: float | Fraction = 30,
    codec: str = "libx264",
    audio_tone_hz: float | None = 440,
    audio_rate: int = 48000,
    rotation: int | None = None,
    vfr_times: Sequence[float] | None = None,
    *,
    audio_codec: str | None = None,
    audio_channels: int = 1,
    audio_seconds: float | None = None,
    pix_fmt: str | None = None,
    crf: int = 16,
    gop: int | None = None,
    faststart: bool = True,
) -> Path:
    """Encode ``frames`` into a video file at ``path`` and return the path.

    The video is written at constant ``fps`` unless ``vfr_times`` gives one
    timestamp per frame. Audio (a sine tone) is interleaved with the video.

    Args:
        path: output file; its suffix picks the container (``.mp4``, ``.mov``,
            ``.mkv``, ``.webm``, ...).
        frames: H×W×3 uint8 RGB images, all the same size. A generator is fine;
            frames are encoded as they come.
        fps: frame rate (also the nominal rate of a VFR clip).
        codec: video encoder name (``libx264``, ``mpeg4``, ``libvpx-vp9``, ...).
        audio_tone_hz: frequency of the sine tone; ``None`` writes no audio.
        audio_rate: audio sample rate in Hz.
        rotation: display rotation in degrees **clockwise**, as in the legacy
            ``rotate`` tag of phone videos (90 means a player turns the stored
            picture 90° clockwise to show it upright). The stored frames are
            ``frames`` as given; only the display matrix is written.
        vfr_times: optional frame times in seconds (strictly increasing, one per
            frame); the clip then keeps these timestamps (time base 1/90000 in
            MP4/MOV; Matroska/WebM round them to milliseconds).
        audio_codec: audio encoder; default from :func:`default_audio_codec`
            (AAC for mp4/mov/mkv, Opus for webm). ``"pcm_s16le"`` works in .mov/.mkv.
        audio_channels: 1 (mono) or 2 (stereo).
        audio_seconds: length of the tone; default the video's duration.
        pix_fmt: encoder pixel format; default ``yuv420p`` for even sizes and
            ``yuv444p`` for odd ones (yuv420p needs even sizes).
        crf: x264/VP9 quality (lower is better); tests want near-lossless sources.
        gop: keyframe interval in frames; default the encoder's.
        faststart: put the MP4/MOV index first, so a file cut short is still
            readable up to the cut (as for a partial download).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: no frames, frames of different sizes, or bad ``vfr_times``.

    Example:
        >>> import tempfile, pathlib
        >>> imgs = [np.full((120, 160, 3), i * 20, np.uint8) for i in range(10)]
        >>> p = make_clip(pathlib.Path(tempfile.mkdtemp()) / "gray.mkv", imgs, fps=25)
    """
    path = Path(path)
    fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("make_clip needs at least one frame") from None
    first = _check_frame(first, None)
    height, width = first.shape[:2]
    if pix_fmt is None:
        pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    times = list(vfr_times) if vfr_times is not None else None
    if times is not None and any(b <= a for a, b in itertools.pairwise(times)):
        raise ValueError("vfr_times must be strictly increasing")

    out = av.open(str(path), "w", options=_container_options(path, faststart))
    try:
        vstream = out.add_stream(codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, pix_fmt
        time_base = 1 / fps
        if times is not None:  # MPEG-4 part 2 takes time bases up to 1/65535 only
            time_base = Fraction(1, 60000) if codec == "mpeg4" else VFR_TIME_BASE
        vstream.codec_context.time_base = time_base
        if gop is not None:
            vstream.codec_context.gop_size = gop
        options = {}
        if codec in {"libx264", "libx265"}:
            options = {"crf": str(crf), "preset": "veryfast"}
        elif codec.startswith("libvpx"):
            options = {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        elif codec in {"mpeg4", "mpeg2video", "mjpeg"}:
            options = {"flags": "+qscale", "global_quality": str(2 * 118)}  # fixed quantiser 2
        vstream.options = options
        if rotation:
            if rotation % 90:
                raise ValueError("rotation must be a multiple of 90 degrees")
            vstream.set_display_rotation(-float(rotation))  # PyAV takes counter-clockwise degrees

        audio = None
        if audio_tone_hz is not None:
            acodec = audio_codec or default_audio_codec(path)
            astream = _add_audio_stream(out, acodec, audio_rate, audio_channels)
            audio = _ToneEncoder(astream, audio_tone_hz, audio_rate, audio_channels)

        def numbered() -> Iterator[tuple[int, np.ndarray]]:
            yield 0, first
            for i, img in enumerate(it, start=1):
                yield i, _check_frame(img, (height, width))

        end_time = 0.0
        for i, img in numbered():
            if times is not None:
                if i >= len(times):
                    raise ValueError(f"vfr_times has {len(times)} entries but more frames were given")
                t = float(times[i])
            else:
                t = float(i / fps)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = round(Fraction(t) / time_base)
            frame.time_base = time_base
            for packet in vstream.encode(frame):
                out.mux(packet)
            end_time = t + float(1 / fps)
            if audio is not None:  # keep audio interleaved with video, as real files are
                for packet in audio.encode_until(min(t, audio_seconds) if audio_seconds is not None else t):
                    out.mux(packet)
        if times is not None and len(times) != i + 1:
            raise ValueError(f"vfr_times has {len(times)} entries but {i + 1} frames were given")
        for packet in vstream.encode(None):
            out.mux(packet)
        if audio is not None:
            for packet in audio.encode_until(audio_seconds if audio_seconds is not None else end_time):
                out.mux(packet)
            for packet in audio.flush():
                out.mux(packet)
    except BaseException:
        out.close()
        path.unlink(missing_ok=True)
        raise
    out.close()
    return path


def make_audio_only(
    path: str | os.PathLike[str],
    seconds: float = 1.0,
    hz: float = 440.0,
    rate: int = 48000,
    codec: str | None = None,
    channels: int = 1,
) -> Path:
    """Write an audio-only file (a sine tone) and return its path.

    Args:
        path: output file, e.g. ``voice.m4a``, ``tone.wav``, ``tone.mp3``.
        seconds: duration.
        hz: tone frequency.
        rate: sample rate.
        codec: audio encoder; default from :func:`default_audio_codec`.
        channels: 1 or 2.
    """
    path = Path(path)
    out = av.open(str(path), "w")
    try:
        stream = _add_audio_stream(out, codec or default_audio_codec(path), rate, channels)
        encoder = _ToneEncoder(stream, hz, rate, channels)
        for packet in encoder.encode_until(seconds):
            out.mux(packet)
        for packet in encoder.flush():
            out.mux(packet)
    finally:
        out.close()
    return path


def _check_frame(img: np.ndarray, shape: tuple[int, int] | None) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"frames must be H×W×3 uint8 RGB, got {img.dtype} {img.shape}")
    if shape is not None and img.shape[:2] != shape:
        raise ValueError(f"all frames must be {shape[1]}×{shape[0]}, got {img.shape[1]}×{img.shape[0]}")
    return np.ascontiguousarray(img)


def synthetic_still(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """Draw a deterministic textured RGB picture, H×W×3 uint8.

    Smooth colour gradients plus circles, rectangles and fine (luma) noise, so
    motion, compression and rotation errors are all visible in pixel comparisons.
    Like a camera picture, luma is sharp and chroma soft, so 4:2:0 video can hold
    it at high PSNR.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 128 + 100 * np.sin(xx / max(width, 1) * 3.0 * math.pi)
    img[..., 1] = 128 + 100 * np.cos(yy / max(height, 1) * 2.0 * math.pi)
    img[..., 2] = 255.0 * (xx + yy) / max(width + height, 1)
    out = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(12):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(max(2, min(height, width) // 20), max(3, min(height, width) // 5)))
        cv2.circle(out, center, radius, color, thickness=-1, lineType=cv2.LINE_AA)
    for _ in range(6):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(4, max(5, width // 4))), y0 + int(rng.integers(4, max(5, height // 4)))
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness=max(1, min(height, width) // 100))
    # Like camera pictures: sharp luma, soft chroma (so 4:2:0 video keeps the colours).
    ycc = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)
    sigma = max(1.0, min(height, width) / 80)
    ycc[..., 1:] = cv2.GaussianBlur(ycc[..., 1:], (0, 0), sigma)
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    noise = rng.integers(-4, 5, size=out.shape[:2], dtype=np.int16)[..., None]
    return np.clip(out.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def iter_moving_crop_frames(
    still: np.ndarray,
    n: int,
    size: tuple[int, int] = (160, 120),
    *,
    pan: float = 0.06,
    zoom: float = 0.08,
    roll_deg: float = 4.0,
    cycles: float = 1.0,
    seed: int = 0,
    center: tuple[float, float] = (0.5, 0.5),
    crop: float = 1.0,
) -> Iterator[np.ndarray]:
    """Yield ``n`` frames that move a crop window smoothly over ``still``.

    This imitates a talking head filmed by a hand-held camera: the crop pans
    (left/right and up/down), zooms in and out and rolls a few degrees, following
    smooth sinusoids with seed-dependent phases. The window is centred on
    ``center`` and shows the largest crop of ``size``'s aspect ratio that fits
    the still, times ``crop``, slightly zoomed in so the moving window stays
    inside the picture (borders are reflected if it does not).

    Args:
        still: H×W×3 uint8 RGB picture (e.g. a portrait).
        n: number of frames.
        size: output ``(width, height)`` in pixels.
        pan: largest shift, as a fraction of the crop size.
        zoom: largest relative zoom change (0.08 → ±8 %).
        roll_deg: largest in-plane rotation, degrees.
        cycles: how many back-and-forth motions over the ``n`` frames.
        seed: picks the motion phases, for different but repeatable clips.
        center: (x, y) the window follows, as fractions of the still's width and
            height (e.g. a face centre); default the middle.
        crop: part of the fitting crop to show; 0.5 zooms in twice (e.g. onto a face).

    Yields:
        H×W×3 uint8 RGB frames with ``(W, H) == size``.

    Example:
        >>> frames = list(iter_moving_crop_frames(synthetic_still(120, 160), 3, size=(64, 48)))
        >>> frames[0].shape
        (48, 64, 3)
    """
    still = np.asarray(still)
    if still.dtype != np.uint8 or still.ndim != 3 or still.shape[2] != 3:
        raise ValueError(f"still must be H×W×3 uint8 RGB, got {still.dtype} {still.shape}")
    out_w, out_h = int(size[0]), int(size[1])
    src_h, src_w = still.shape[:2]
    # Base scale: output pixels per source pixel for the centred crop, zoomed in a
    # little (by the motion margin) so the window stays inside the still.
    if not 0.0 < crop <= 1.0:
        raise ValueError(f"crop must be in (0, 1], got {crop}")
    margin = 1.0 + 2.0 * pan + zoom + math.radians(roll_deg)
    base = max(out_w / src_w, out_h / src_h) * margin / crop
    phases = np.random.default_rng(seed).uniform(0, 2 * math.pi, size=4)
    cx, cy = center[0] * src_w, center[1] * src_h
    for i in range(n):
        u = 2.0 * math.pi * cycles * (i / max(n - 1, 1))
        dx = pan * (out_w / base) * math.sin(u + phases[0])
        dy = pan * (out_h / base) * math.sin(0.7 * u + phases[1])
        scale = base * (1.0 + zoom * math.sin(1.3 * u + phases[2]))
        angle = roll_deg * math.sin(0.9 * u + phases[3])
        # Map the source point (cx+dx, cy+dy) to the output centre, rotate by angle, scale.
        m = cv2.getRotationMatrix2D((cx + dx, cy + dy), angle, scale)
        m[0, 2] += out_w / 2.0 - (cx + dx)
        m[1, 2] += out_h / 2.0 - (cy + dy)
        yield cv2.warpAffine(
            still, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )


def moving_crop_frames(
    still: np.ndarray,
    n: int,
    size: tuple[int, int] = (160, 120),
    **motion: Any,
) -> list[np.ndarray]:
    """Return :func:`iter_moving_crop_frames` as a list (fine for short, small clips).

    Keyword arguments (``pan``, ``zoom``, ``roll_deg``, ``cycles``, ``seed``,
    ``center``, ``crop``) are passed through. For long or large clips prefer the iterator: 150 frames of
    720p are ~400 MB as a list.
    """
    return list(iter_moving_crop_frames(still, n, size, **motion))
