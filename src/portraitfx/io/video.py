"""Video input and output: probe, read, write and process clips with PyAV (FFmpeg).

Images at this module's boundary are ``numpy.ndarray`` H×W×3 ``uint8`` **RGB**,
upright (the container's rotation flag is applied on read).

* :func:`probe_video` returns a :class:`VideoInfo` (size, rate, frame count,
  rotation, audio, ...).
* :class:`VideoReader` yields :class:`VideoFrame` objects (index, time, pts, image),
  keeping variable frame rate timestamps, and stops cleanly on a damaged or
  truncated file (``reader.truncated``).
* :class:`VideoWriter` encodes frames (H.264 by default) into a temporary file
  that replaces the destination only on success, optionally carrying over the
  audio of another file (copied as is when the container allows it).
* :func:`process_video` ties them together: decode, apply a function to every
  frame, encode with the source's timestamps and audio.

Example:
    >>> from portraitfx.io.video import process_video
    >>> def invert(frame):
    ...     return 255 - frame.image
    >>> result = process_video("in.mp4", "out.mp4", invert, progress=False)  # doctest: +SKIP
    >>> result.frames, round(result.seconds_of_video, 2)  # doctest: +SKIP
    (150, 5.0)

Colour: frames are decoded with the matrix the stream is tagged with (BT.601
when untagged) and encoded as BT.601 limited range, tagged as such, so round
trips do not shift colours.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import queue
import threading
import time as _time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from portraitfx.errors import (
    ConfigError,
    CorruptInputError,
    NoVideoStreamError,
    OutputError,
    TruncatedVideoError,
    UnsupportedFormatError,
    VideoError,
)
from portraitfx.io.paths import atomic_output, check_input_path, register_input

if TYPE_CHECKING:  # PyAV is imported lazily: importing this module stays cheap.
    import av
    import av.container
    import av.stream

__all__ = [
    "FAST_X264_PARAMS",
    "I420Image",
    "VideoFrame",
    "VideoInfo",
    "VideoProcessResult",
    "VideoReader",
    "VideoWriter",
    "available_video_codecs",
    "is_i420_buffer",
    "prefetch_frames",
    "probe_video",
    "process_video",
]

PathLike = str | os.PathLike[str]

#: Encoders tried in order when ``codec=None``, by output suffix.
_AUTO_CODECS: dict[str, tuple[str, ...]] = {
    ".webm": ("libvpx-vp9", "libvpx"),
}
_DEFAULT_AUTO_CODECS = ("libx264", "libopenh264", "h264", "mpeg4")
#: Encoders listed in error messages when a requested codec is unavailable.
_KNOWN_VIDEO_ENCODERS = (
    "libx264",
    "libopenh264",
    "h264",
    "libx265",
    "libvpx-vp9",
    "libvpx",
    "libsvtav1",
    "libaom-av1",
    "mpeg4",
    "mjpeg",
)
#: Audio codecs copied without re-encoding, by output suffix (None: whatever FFmpeg accepts).
_AUDIO_COPY_OK: dict[str, frozenset[str] | None] = {
    ".mp4": frozenset({"aac", "alac", "ac3", "eac3"}),
    ".m4v": frozenset({"aac", "alac", "ac3", "eac3"}),
    ".mov": frozenset({"aac", "alac", "ac3", "eac3", "mp3", "pcm_s16le", "pcm_s24le", "pcm_f32le"}),
    ".webm": frozenset({"opus", "vorbis"}),
    ".mkv": None,
}
#: Audio packets ending up to this long before the writer's time origin are kept (AAC priming).
_AUDIO_LEAD_TOLERANCE = 0.1
#: Container signatures: a file with one of these cannot be "not a video", only damaged.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MOV"),
    (4, b"mdat", "MOV"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (0, b"OggS", "Ogg"),
    (0, b"FLV", "FLV"),
)

# What the writer encodes and tags: BT.601 matrix (limited range unless a yuvj* format),
# BT.709 primaries and transfer (as sRGB pictures have).
_AVCOL_SPC_SMPTE170M = 6
_AVCOL_SPC_UNSPECIFIED = 2
_AVCOL_SPC_BT470BG = 5
_AVCOL_RANGE_UNSPECIFIED = 0
_AVCOL_PRI_BT709 = 1
_AVCOL_TRC_BT709 = 1
_AVCOL_RANGE_MPEG = 1
_AVCOL_RANGE_JPEG = 2


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a clip.

    Attributes:
        path: the file.
        width: display width in pixels (after rotation).
        height: display height in pixels (after rotation).
        fps: average frame rate (frames per second).
        time_base: unit of the video stream's timestamps, in seconds.
        frame_count: number of video frames, from the header, or counted from the
            packets (without decoding) when the header does not say.
        duration: video duration in seconds.
        rotation: clockwise rotation (0, 90, 180 or 270) a player applies to the
            stored picture; frames read by :class:`VideoReader` already have it applied.
        codec: video codec name (e.g. ``"h264"``).
        variable_frame_rate: whether frame intervals vary (phone videos often do);
            judged from the timestamps of the first 120 frames.
        has_audio: whether there is an audio stream.
        audio_codec: codec of the first audio stream, or ``None``.
        audio_sample_rate: its sample rate in Hz, or ``None``.
    """

    path: Path
    width: int
    height: int
    fps: float
    time_base: Fraction
    frame_count: int
    duration: float
    rotation: int
    codec: str
    variable_frame_rate: bool
    has_audio: bool
    audio_codec: str | None
    audio_sample_rate: int | None


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based position of the frame in the stream.
        time: presentation time in seconds (``pts * time_base``; variable rates kept).
        pts: presentation timestamp in the stream's time base (``None`` if unknown).
        image: H×W×3 ``uint8`` RGB picture, upright (rotation applied), writable.
        i420: the decoded picture ``image`` was converted from, when the reader was asked
            for it (``keep_i420=True``) and it is already in the encoder's format
            (8-bit 4:2:0, BT.601 limited range, upright, even size); else ``None``.
            A stage that changes only part of ``image`` can hand the encoder this
            picture with just that part converted (:meth:`I420Image.updated`).
    """

    index: int
    time: float
    pts: int | None
    image: np.ndarray
    i420: I420Image | None = None


def is_i420_buffer(data: object) -> bool:
    """Whether ``data`` can hold an I420 picture: a C-contiguous ``(H*3/2) x W`` uint8 array, W even."""
    return (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[0] % 3 == 0
        and data.shape[1] % 2 == 0
        and data.flags.c_contiguous
    )


@dataclass(frozen=True)
class I420Image:
    """A frame already in the encoder's pixel format: planar YUV 4:2:0, BT.601 limited range.

    :class:`VideoWriter` takes it as well as RGB and skips the colour conversion; a
    pipeline stage that needs the luminance anyway (the provenance watermark) can
    convert in its own thread and work on the Y plane. Make one with :meth:`from_rgb`.

    Attributes:
        data: ``(H * 3/2) x W`` uint8, C-contiguous: the Y plane, then U, then V.
    """

    data: np.ndarray

    def __post_init__(self) -> None:
        d = self.data
        if not is_i420_buffer(d):
            got = f"{d.dtype} array of shape {d.shape}" if isinstance(d, np.ndarray) else type(d).__name__
            raise ConfigError(f"an I420 frame is a contiguous (H*3/2)×W uint8 array (W even), got {got}")

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the picture."""
        return self.data.shape[1], self.data.shape[0] * 2 // 3

    @property
    def y(self) -> np.ndarray:
        """The luma plane, ``H x W`` (a view: writing to it changes the frame)."""
        return self.data[: self.size[1]]

    @classmethod
    def from_rgb(cls, image: np.ndarray) -> I420Image:
        """Convert an H×W×3 uint8 RGB picture (even H and W; see :func:`_rgb_to_i420`)."""
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
            or image.shape[0] % 2
            or image.shape[1] % 2
        ):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ConfigError(f"I420Image.from_rgb takes an even-sized H×W×3 uint8 RGB array, got {got}")
        return cls(_rgb_to_i420(np.ascontiguousarray(image)))

    def to_rgb(self) -> np.ndarray:
        """Back to H×W×3 uint8 RGB (chroma upsampled by repetition)."""
        import cv2

        return cv2.cvtColor(self.data, cv2.COLOR_YUV2RGB_I420)

    def updated(self, image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> I420Image:
        """A copy with the ``(x0, y0, x1, y1)`` boxes of RGB ``image`` (same size) converted in.

        For a picture that differs from this one only inside ``boxes`` (an effect that
        changed a face): the rest keeps its decoded values exactly, and only the boxes
        (widened to even coordinates, for the chroma) are converted, not the whole frame.
        """
        width, height = self.size
        if not isinstance(image, np.ndarray) or image.shape != (height, width, 3) or image.dtype != np.uint8:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ConfigError(f"I420Image.updated takes a {width}×{height} uint8 RGB picture, got {got}")
        data = self.data.copy()
        y, u, v = _i420_planes(data, width, height)
        for box in boxes:
            x0, y0 = max(int(box[0]), 0) & ~1, max(int(box[1]), 0) & ~1
            x1, y1 = min((int(box[2]) + 1) & ~1, width), min((int(box[3]) + 1) & ~1, height)
            if x1 <= x0 or y1 <= y0:
                continue
            part = _rgb_to_i420(np.ascontiguousarray(image[y0:y1, x0:x1]))
            py, pu, pv = _i420_planes(part, x1 - x0, y1 - y0)
            y[y0:y1, x0:x1] = py
            u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = pu
            v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = pv
        return I420Image(data)


@dataclass(frozen=True)
class VideoProcessResult:
    """Summary of a :func:`process_video` run.

    Attributes:
        frames: frames written.
        seconds_of_video: duration of video written, in seconds.
        elapsed: wall-clock seconds spent.
        output: path of the finished file.
        truncated: the input ended early (only returned with ``raise_on_truncated=False``).
    """

    frames: int
    seconds_of_video: float
    elapsed: float
    output: Path
    truncated: bool = False

    @property
    def speed(self) -> float:
        """Seconds of video processed per wall-clock second (>1 is faster than real time)."""
        return self.seconds_of_video / self.elapsed if self.elapsed > 0 else math.inf


# --------------------------------------------------------------------------- opening inputs


def _sniff(path: Path) -> str | None:
    """Name the container family if ``path`` starts like a known video file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _one_line(err: BaseException) -> str:
    """FFmpeg's message without errno noise or the repeated file name."""
    text = str(getattr(err, "strerror", None) or err)
    return " ".join(text.split())


def _open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading, mapping FFmpeg failures to portraitfx errors."""
    import av

    try:
        return av.open(str(path), "r", metadata_errors="replace")  # garbled tags must not raise
    except av.error.FFmpegError as err:
        family = _sniff(path)
        if family is not None:
            raise CorruptInputError(
                f"'{path}' is a damaged or incomplete {family} file (e.g. a partial download "
                f"or a recording that was cut off) and cannot be read: {_one_line(err).lower()}"
            ) from None
        raise UnsupportedFormatError(
            f"'{path}' is not a video file FFmpeg can read ({_one_line(err).lower()})"
        ) from None
    except OSError as err:
        raise UnsupportedFormatError(f"cannot open '{path}': {_one_line(err)}") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    import av

    cover_art = av.stream.Disposition.attached_pic  # e.g. an album cover in an .m4a is no video
    streams = [s for s in container.streams.video if not (s.disposition & cover_art)]
    if not streams:
        raise NoVideoStreamError(f"'{path.name}' has no video stream")
    stream = streams[0]
    if stream.codec_context is None:
        raise VideoError(f"cannot decode '{path.name}': no decoder for its video codec in this FFmpeg build")
    return stream


def _codec_name(stream: av.stream.Stream) -> str:
    ctx = stream.codec_context
    if ctx is None:
        return "unknown"
    codec = ctx.codec
    return getattr(codec, "canonical_name", None) or codec.name


def _rotation_from_matrix_degrees(ccw: float) -> int:
    """Convert FFmpeg's counter-clockwise display rotation to clockwise 0/90/180/270."""
    return int(round(-ccw / 90.0)) * 90 % 360


def _stream_rotation_tag(stream: av.stream.Stream) -> int | None:
    tag = stream.metadata.get("rotate")
    if tag is None:
        return None
    try:
        return int(round(float(tag) / 90.0)) * 90 % 360
    except ValueError:
        return None


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def _is_variable(pts: list[int], stream: av.video.stream.VideoStream) -> bool:
    """Decide VFR from presentation timestamps.

    Deviations from the median frame interval up to one tick, 1.1 ms (millisecond
    time bases round 33.3 ms to 33/34 ms) or 5 % of the interval are rounding, not VFR.
    """
    if len(pts) >= 3:
        deltas = np.diff(np.asarray(sorted(set(pts)), dtype=np.int64))
        if deltas.size >= 2 and stream.time_base:
            tick = float(stream.time_base)
            seconds = deltas * tick
            nominal = float(np.median(seconds))
            tolerance = max(1.5 * tick, 0.0011, 0.05 * nominal)
            return bool(np.any(np.abs(seconds - nominal) > tolerance))
    avg, base = stream.average_rate, stream.base_rate
    if avg and base:
        return abs(float(avg) - float(base)) > 0.01 * float(base)
    return False


def _probe_container(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> VideoInfo:
    """Build a :class:`VideoInfo`; demuxes a little (and decodes one frame) from ``container``."""
    import av

    time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    header_frames = int(stream.frames or 0)
    rotation = _stream_rotation_tag(stream)
    pts_sample: list[int] = []
    packets = 0
    decode_first = rotation is None
    with contextlib.suppress(av.error.FFmpegError):
        for packet in container.demux(stream):
            if packet.size == 0:  # end-of-stream marker: flushes the decoder
                if decode_first:
                    for frame in packet.decode():
                        rotation = _rotation_from_matrix_degrees(frame.rotation)
                        break
                continue
            packets += 1
            if packet.pts is not None and len(pts_sample) < 120:
                pts_sample.append(packet.pts)
            if decode_first:
                with contextlib.suppress(av.error.FFmpegError):
                    for frame in packet.decode():
                        rotation = _rotation_from_matrix_degrees(frame.rotation)
                        decode_first = False
                        break
            if header_frames and not decode_first and len(pts_sample) >= 120:
                break
    rotation = rotation or 0
    frame_count = header_frames or packets
    rate = _frame_rate(stream)
    if stream.duration:
        duration = float(stream.duration * time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    elif rate:
        duration = float(frame_count / rate)
    else:
        duration = 0.0
    if rate is None:
        rate = Fraction(frame_count / duration).limit_denominator(1001) if duration > 0 else Fraction(30)
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    audio = container.streams.audio[0] if container.streams.audio else None
    return VideoInfo(
        path=path,
        width=int(width),
        height=int(height),
        fps=float(rate),
        time_base=time_base,
        frame_count=int(frame_count),
        duration=duration,
        rotation=int(rotation),
        codec=_codec_name(stream),
        variable_frame_rate=_is_variable(pts_sample, stream),
        has_audio=audio is not None,
        audio_codec=_codec_name(audio) if audio is not None else None,
        audio_sample_rate=int(getattr(audio, "rate", None) or 0) or None,  # no codec context: no rate
    )


def probe_video(path: PathLike) -> VideoInfo:
    """Describe a video file without decoding it (one frame is decoded for its rotation).

    Args:
        path: video file.

    Returns:
        The clip's :class:`VideoInfo`.

    Raises:
        InputNotFoundError: ``path`` does not exist.
        UnsupportedFormatError: the file is not a media file.
        CorruptInputError: it looks like a video container but cannot be opened.
        NoVideoStreamError: there is no video stream (e.g. an ``.m4a``).

    Example:
        >>> info = probe_video("clip.mp4")  # doctest: +SKIP
        >>> info.width, info.height, info.fps, info.frame_count  # doctest: +SKIP
        (1280, 720, 30.0, 150)
    """
    p = check_input_path(path, "video")
    try:
        st = os.stat(p)
        key: tuple[int, ...] | None = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    with _probe_lock:
        info = _probe_cache.get(key) if key is not None else None
    if info is not None:  # (a runtime probes a clip, then its reader does: once is enough)
        return info if info.path == p else replace(info, path=p)
    container = _open_input(p)
    try:
        stream = _video_stream(container, p)
        info = _probe_container(container, stream, p)
    finally:
        container.close()
    if key is not None:
        with _probe_lock:
            _probe_cache[key] = info
            while len(_probe_cache) > _PROBE_CACHE_SIZE:
                _probe_cache.pop(next(iter(_probe_cache)))
    return info


#: Probed clips by (device, inode, size, modification time): a file that changes is probed again.
_probe_cache: dict[tuple[int, ...], VideoInfo] = {}
_probe_lock = threading.Lock()
_PROBE_CACHE_SIZE = 32


# --------------------------------------------------------------------------- reading


#: Colour spaces that swscale (and so ``VideoFrame.image``) decodes as BT.601: unspecified,
#: BT.470BG and SMPTE 170M; ranges: unspecified (limited) and limited.
_BT601_SPACES = frozenset({_AVCOL_SPC_UNSPECIFIED, _AVCOL_SPC_BT470BG, _AVCOL_SPC_SMPTE170M})
_LIMITED_RANGES = frozenset({_AVCOL_RANGE_UNSPECIFIED, _AVCOL_RANGE_MPEG})


def _is_encoder_format(frame: av.VideoFrame) -> bool:
    """Whether a decoded frame is what :class:`VideoWriter` encodes (8-bit 4:2:0, BT.601
    limited range, even size): its planes can then be encoded as they are."""
    return (
        frame.format.name == "yuv420p"
        and frame.width % 2 == 0
        and frame.height % 2 == 0
        and int(frame.colorspace) in _BT601_SPACES
        and int(frame.color_range) in _LIMITED_RANGES
    )


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate ``image`` clockwise by ``rotation`` degrees (a multiple of 90)."""
    if rotation == 0:
        return image
    import cv2

    code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}[rotation]
    return cv2.rotate(image, code)


class VideoReader:
    """Decode a video file frame by frame.

    Iterating yields :class:`VideoFrame` objects with upright H×W×3 uint8 RGB
    images and their timestamps (variable frame rates are kept). Decoding is
    multi-threaded. A damaged or truncated file does not raise while reading:
    iteration stops at the damage and :attr:`truncated` becomes ``True``, with
    :attr:`frames_read` frames delivered and :attr:`truncation_reason` saying why.

    A reader can be iterated once; use it as a context manager (or call
    :meth:`close`) to release the file.

    Args:
        path: video file.
        start: first time to deliver, in seconds (seeks to the keyframe before it
            and decodes forward). After a seek, ``VideoFrame.index`` is computed
            from the time and the average rate (exact for constant-rate video).
        end: stop before this time, in seconds.
        step: deliver every ``step``-th frame (others are still decoded).
        threads: decoder threads; 0 lets FFmpeg choose.
        keep_i420: also deliver the decoded picture when it is in the encoder's own
            format (:attr:`VideoFrame.i420`).

    Raises:
        InputNotFoundError: ``path`` does not exist.
        UnsupportedFormatError: the file is not a media file.
        CorruptInputError: it looks like a video container but cannot be opened.
        NoVideoStreamError: there is no video stream.
        VideoError: the video codec cannot be decoded.
        ConfigError: bad ``start``/``end``/``step``.

    Example:
        >>> with VideoReader("clip.mp4") as reader:  # doctest: +SKIP
        ...     for frame in reader:
        ...         print(frame.index, round(frame.time, 3), frame.image.shape)
        0 0.0 (720, 1280, 3)
        1 0.033 (720, 1280, 3)
    """

    def __init__(
        self,
        path: PathLike,
        *,
        start: float | None = None,
        end: float | None = None,
        step: int = 1,
        threads: int = 0,
        keep_i420: bool = False,
    ) -> None:
        if step < 1:
            raise ConfigError(f"step must be >= 1, got {step}")
        if start is not None and start < 0:
            raise ConfigError(f"start must be >= 0 seconds, got {start}")
        if start is not None and end is not None and end <= start:
            raise ConfigError(f"end ({end}) must be after start ({start})")
        self.path = check_input_path(path, "video")
        self._container = _open_input(self.path)
        try:
            self._stream = _video_stream(self._container, self.path)
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = max(0, int(threads))
        except BaseException:
            self._container.close()
            raise
        register_input(self.path)
        self._start, self._end, self._step = start, end, step
        self._keep_i420 = bool(keep_i420)
        self._info: VideoInfo | None = None
        self._iterated = False
        self._generator: Iterator[VideoFrame] | None = None
        self._closed = False
        #: The file ended early or was damaged; frames up to the damage were delivered.
        self.truncated = False
        #: Frames delivered so far.
        self.frames_read = 0
        #: Why :attr:`truncated` was set, or ``None``.
        self.truncation_reason: str | None = None

    def set_threads(self, threads: int) -> None:
        """Change the number of decoder threads (0: FFmpeg chooses); only before iterating."""
        if self._iterated:
            raise RuntimeError("decoder threads can only be set before the reader is iterated")
        self._stream.codec_context.thread_count = max(0, int(threads))

    # -- context management
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file (idempotent)."""
        if not self._closed:
            self._closed = True
            if self._generator is not None:
                with contextlib.suppress(Exception):  # stops the demuxer before the file goes
                    self._generator.close()  # type: ignore[attr-defined]
            self._container.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    @property
    def start_time(self) -> float:
        """When the file's earliest stream starts, in seconds (usually 0; ~1.4 for MPEG-TS)."""
        start = self._container.start_time
        return start / 1_000_000 if start else 0.0

    @property
    def info(self) -> VideoInfo:
        """The clip's :class:`VideoInfo` (probed on first use, from a separate handle)."""
        if self._info is None:
            self._info = probe_video(self.path)
        return self._info

    # -- iteration
    def __iter__(self) -> Iterator[VideoFrame]:
        if self._iterated:
            raise RuntimeError("a VideoReader can be iterated only once; open a new one")
        if self._closed:
            raise RuntimeError("this VideoReader is closed")
        self._iterated = True
        self._generator = self._frames()
        return self._generator

    def _mark_truncated(self, reason: str) -> None:
        self.truncated = True
        self.truncation_reason = reason

    def _frames(self) -> Iterator[VideoFrame]:
        import av
        from av.video.reformatter import VideoReformatter

        container, stream = self._container, self._stream
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        rate = _frame_rate(stream) or Fraction(30)
        start_pts = stream.start_time or 0
        header_frames = int(stream.frames or 0)
        seeked = False
        if self._start:
            container.seek(int(self._start / time_base) + start_pts, stream=stream, backward=True)
            seeked = True
        # Demux the audio too (cheaply discarded) so a cut-off file is recognised by its end time.
        others = [s for s in container.streams.audio]
        decoded = 0  # frames out of the decoder (before start/step filtering)
        delivered = 0
        last_time = -math.inf
        packet_end = -math.inf  # latest end time of any demuxed packet, seconds
        frame_period = float(1 / rate)
        stream_rotation = _stream_rotation_tag(stream)

        kept = 0  # frames inside [start, end), before step filtering
        reformatter = VideoReformatter()

        def convert(frame: av.VideoFrame) -> VideoFrame | None:
            nonlocal decoded, delivered, kept, last_time
            index = decoded
            decoded += 1
            if frame.pts is not None:
                t = float(frame.pts * time_base)
            else:
                t = last_time + frame_period if last_time > -math.inf else 0.0
            last_time = t
            if self._start is not None and t < self._start - 0.5 * float(time_base):
                return None
            if self._end is not None and t >= self._end:
                return None
            kept += 1
            if (kept - 1) % self._step:
                return None
            if seeked:
                index = round((t - float(start_pts * time_base)) * float(rate))
            rotation = stream_rotation
            if rotation is None:
                rotation = _rotation_from_matrix_degrees(frame.rotation)
            # (one reformatter for the whole clip: a frame's own would set up its
            # colour conversion afresh for every frame, ~40 % of what converting costs)
            image = _upright(reformatter.reformat(frame, format="rgb24").to_ndarray(), rotation)
            if not image.flags.writeable:
                image = image.copy()
            i420 = None
            if self._keep_i420 and rotation % 360 == 0 and _is_encoder_format(frame):
                i420 = I420Image(np.ascontiguousarray(frame.to_ndarray(format="yuv420p")))
            delivered += 1
            self.frames_read = delivered
            return VideoFrame(index=index, time=t, pts=frame.pts, image=image, i420=i420)

        packets = container.demux(stream, *others)
        try:
            ended_by_user = False
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as err:
                    self._mark_truncated(f"reading stopped at {max(last_time, 0):.2f} s: {_one_line(err)}")
                    break
                if packet.pts is not None and packet.size:
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    packet_end = max(packet_end, end)
                if packet.stream is not stream:
                    continue
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as err:
                    self._mark_truncated(f"decoding stopped at {max(last_time, 0):.2f} s: {_one_line(err)}")
                    break
                for frame in frames:
                    item = convert(frame)
                    if item is not None:
                        yield item
                    elif self._end is not None and last_time >= self._end:
                        ended_by_user = True
                if ended_by_user:
                    break
            if self.truncated:  # drain what the (threaded) decoder still holds
                with contextlib.suppress(av.error.FFmpegError):
                    for frame in stream.decode(None):
                        item = convert(frame)
                        if item is not None:
                            yield item
                return
            if ended_by_user or seeked or self._end is not None:
                return
            missing = header_frames - decoded
            if header_frames and missing > max(2, 0.01 * header_frames):
                self._mark_truncated(f"only {decoded} of {header_frames} frames could be decoded")
            elif not header_frames and container.duration and packet_end > -math.inf:
                expected = container.duration / 1_000_000 + float((container.start_time or 0) / 1_000_000)
                if packet_end < expected - max(0.5, 3 * frame_period):
                    self._mark_truncated(
                        f"the data ends at {packet_end:.2f} s but the file says {expected:.2f} s"
                    )
        finally:
            packets.close()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- codecs


#: Software encoders: present means usable. Anything else (``h264_vaapi``, ``h264_v4l2m2m``,
#: ``h264_nvenc``...) is opened once on a tiny picture to see whether its hardware is there.
_SOFTWARE_ENCODERS = frozenset(
    {"libx264", "libopenh264", "libx265", "libvpx", "libvpx-vp9", "libsvtav1", "libaom-av1", "mpeg4", "mjpeg"}
)


@functools.lru_cache(maxsize=64)
def _encoder_works(name: str) -> bool:
    """True if the video encoder ``name`` exists in this FFmpeg build and opens."""
    import av

    try:
        codec = av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        return False
    if codec.type != "video":
        return False
    if codec.name in _SOFTWARE_ENCODERS:
        return True
    try:
        ctx = av.codec.CodecContext.create(codec)
        ctx.width, ctx.height = 64, 64
        formats = [f.name for f in (codec.video_formats or ())]
        ctx.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
        ctx.time_base = Fraction(1, 25)
        ctx.framerate = Fraction(25)
        ctx.open()
    except Exception:
        return False
    return True


def _encoder_name(name: str) -> str:
    """The encoder FFmpeg actually uses for ``name`` (``"h264"`` may mean ``"libx264"``)."""
    import av

    return av.codec.Codec(name, "w").name


def available_video_codecs() -> list[str]:
    """Video encoders from a list of common ones that work in this FFmpeg build.

    Example:
        >>> "libx264" in available_video_codecs()  # doctest: +SKIP
        True
    """
    found: dict[str, str] = {}  # actual encoder -> first name that reaches it
    for name in _KNOWN_VIDEO_ENCODERS:
        if _encoder_works(name):
            found.setdefault(_encoder_name(name), name)
    return list(found.values())


def _resolve_codec(codec: str | None, suffix: str) -> str:
    if codec is not None:
        if _encoder_works(codec):
            return _encoder_name(codec)
        raise ConfigError(
            f"video codec {codec!r} is not available in this FFmpeg build; "
            f"available: {', '.join(available_video_codecs()) or 'none'}"
        )
    candidates = _AUTO_CODECS.get(suffix, _DEFAULT_AUTO_CODECS)
    for name in candidates:
        if _encoder_works(name):
            return _encoder_name(name)
    raise ConfigError(
        f"no video encoder for '{suffix or 'this file type'}' in this FFmpeg build "
        f"(tried {', '.join(candidates)}); available: {', '.join(available_video_codecs()) or 'none'}"
    )


#: Added to x264's ``veryfast`` preset: cheaper sub-pixel refinement and motion search, a
#: fixed B-frame pattern instead of the adaptive decision, a 5-frame rate-control
#: look-ahead (veryfast: 10) and no 8x8 inter partitions (``superfast``'s set). On 720p30
#: with 2 cores this cuts encoding time by about half, for about 0.5 dB PSNR at CRF 18
#: (file sizes vary with content, from -20 % to +20 %), and brings the decode+encode
#: round trip under 0.3 s per second of video. The partitions alone: -15 % encoder CPU,
#: -0.03 to -0.09 dB and 2 % smaller files on face clips.
FAST_X264_PARAMS = "subme=1:me=dia:b-adapt=0:rc-lookahead=5:partitions=i8x8,i4x4"


def _encoder_options(
    codec: str, crf: float, preset: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Private encoder options that map ``crf``/``preset`` onto ``codec``, then ``extra``."""
    options = _base_encoder_options(codec, crf, preset)
    if codec == "libx264" and preset == "veryfast":
        options["x264-params"] = FAST_X264_PARAMS
    options.update({str(k): str(v) for k, v in (extra or {}).items()})
    return {k: v for k, v in options.items() if v != ""}


def _base_encoder_options(codec: str, crf: float, preset: str) -> dict[str, str]:
    if codec in {"libx264", "libx265"}:
        return {"crf": f"{crf:g}", "preset": preset}
    if codec == "libvpx-vp9":
        # VP9's CRF scale is coarser than x264's: x264 18 ~ VP9 31.
        fast = preset in {"ultrafast", "superfast", "veryfast", "faster", "fast"}
        return {
            "crf": str(min(63, round(crf + 13))),
            "b": "0",
            "deadline": "realtime" if fast else "good",
            "cpu-used": "8" if fast else "2",
            "row-mt": "1",
        }
    if codec in {"libsvtav1", "libaom-av1"}:
        return {"crf": str(min(63, round(crf + 12)))}
    if codec in {"mpeg4", "mpeg2video", "mjpeg"}:
        # Fixed quantiser from crf: 18 -> 2 (very good), 28 -> 5.
        q = max(1, min(31, round((crf - 12) / 3)))
        return {"flags": "+qscale", "global_quality": str(q * 118)}
    return {}


#: Encoders that cannot take fine time bases (MPEG-4 part 2: denominator at most 65535).
_MAX_TIME_BASE_DEN = {"mpeg4": 65535, "h263": 65535, "h263p": 65535, "msmpeg4v3": 65535}


def _fit_time_base(time_base: Fraction, fps: Fraction, codec: str) -> Fraction:
    """Coarsen ``time_base`` if ``codec`` cannot use it, keeping a whole number of ticks per frame."""
    limit = _MAX_TIME_BASE_DEN.get(codec)
    if limit is None or time_base.denominator <= limit:
        return time_base
    period = 1 / fps
    k = max(1, limit * period.numerator // period.denominator)
    while k > 1 and (period / k).denominator > limit:
        k -= 1
    return period / k


def _even_padding(pix_fmt: str) -> tuple[int, int]:
    """(multiple for width, multiple for height) a pixel format needs."""
    if pix_fmt.startswith(("yuv420", "yuvj420", "nv12", "nv21", "yuva420")):
        return 2, 2
    if pix_fmt.startswith(("yuv422", "yuvj422", "yuyv422", "uyvy422")):
        return 2, 1
    return 1, 1


# --------------------------------------------------------------------------- audio carried over


class _AudioCarrier:
    """Moves the audio of ``source`` into an output container, interleaved with the video.

    The codec is copied (remuxed) when the output container takes it; otherwise it
    is decoded and re-encoded to AAC (Opus for WebM). Timestamps are shifted by
    the writer's time origin so audio and video stay in sync.
    """

    def __init__(self, output: av.container.OutputContainer, source: Path, suffix: str) -> None:
        import av

        self.output = output
        self.source = source
        self.input = _open_input(source)
        self.in_stream = self.input.streams.audio[0]
        self.codec = _codec_name(self.in_stream)
        allowed = _AUDIO_COPY_OK.get(suffix, frozenset({"aac"}))
        self.copy = allowed is None or self.codec in allowed
        self.out_stream: av.stream.Stream | None = None
        if self.copy:
            try:
                self.out_stream = output.add_stream_from_template(self.in_stream)
            except (ValueError, av.error.FFmpegError):
                self.copy = False
        if not self.copy:
            if self.in_stream.codec_context is None:
                raise VideoError(f"cannot decode the audio of '{source.name}' ({self.codec})")
            encoder = "libopus" if suffix == ".webm" else "aac"
            rate = int(self.in_stream.rate or 48000)
            if encoder == "libopus":
                rate = 48000
            out = output.add_stream(encoder, rate=rate)
            channels = self.in_stream.codec_context.layout.nb_channels
            out.layout = "mono" if channels == 1 else "stereo"
            out.bit_rate = 96_000 * min(2, max(1, channels))
            self.out_stream = out
        self.in_time_base = Fraction(self.in_stream.time_base)
        self.origin: float = 0.0
        self._packets = self._demux()
        self._pending: av.Packet | None = None
        self._done = False
        #: End (output timeline, seconds) of the audio handed to the muxer so far.
        self.position = 0.0

    @property
    def mode(self) -> str:
        """``"copy"`` or ``"encode"``."""
        return "copy" if self.copy else "encode"

    def _demux(self) -> Iterator[av.Packet]:
        import av

        try:
            for packet in self.input.demux(self.in_stream):
                if packet.size == 0 and packet.pts is None:
                    continue  # flush marker
                yield packet
        except av.error.FFmpegError:
            return  # damaged / cut-off audio: keep what was read

    def _seconds(self, ticks: int) -> float:
        """``float(ticks * in_time_base)``, without building a fraction for every packet."""
        tb = self.in_time_base
        return ticks * tb.numerator / tb.denominator

    def _time(self, packet: av.Packet) -> float:
        pts = packet.pts if packet.pts is not None else packet.dts
        return self._seconds(pts or 0) - self.origin

    def pump(self, until: float | None) -> None:
        """Mux audio whose (output-timeline) start time is ≤ ``until`` (all if ``None``)."""
        if self._done:
            return
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                if until is None:
                    self._finish()
                return
            start = self._time(packet)
            if until is not None and start > until:
                self._pending = packet
                return
            self._emit(packet, start)

    def _emit(self, packet: av.Packet, start: float) -> None:
        import av

        end = start + self._seconds(packet.duration or 0)
        if end < -_AUDIO_LEAD_TOLERANCE:
            return  # entirely before the first video frame
        assert self.out_stream is not None
        shift = _round_ratio(self.origin, self.in_time_base)
        self.position = max(self.position, end)
        if self.copy:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.out_stream
            self.output.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            return
        for frame in frames:
            if frame.pts is not None:
                frame.pts -= shift
            self.output.mux(self.out_stream.encode(frame))

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        import av

        if not self.copy and self.out_stream is not None:
            with contextlib.suppress(av.error.FFmpegError):
                for frame in self.in_stream.decode(None):
                    if frame.pts is not None:
                        frame.pts -= round(Fraction(self.origin) / self.in_time_base)
                    self.output.mux(self.out_stream.encode(frame))
            self.output.mux(self.out_stream.encode(None))

    def close(self) -> None:
        self.input.close()


# --------------------------------------------------------------------------- writing


def _default_time_base(fps: Fraction) -> Fraction:
    """A time base with a whole number of ticks per frame and sub-millisecond ticks if possible.

    1/90000 (the MPEG clock) when it divides the frame period (24, 25, 30, 50, 60 fps...),
    else 1/numerator (30000/1001 fps -> 1/30000, 1001 ticks per frame), else 1/fps.
    """
    fine = Fraction(1, 90000)
    if (1 / fps / fine).denominator == 1:
        return fine
    if 1000 <= fps.numerator <= 1_000_000:
        return Fraction(1, fps.numerator)
    return 1 / fps


def _round_ratio(seconds: float, time_base: Fraction) -> int:
    """``round(Fraction(seconds) / time_base)`` (ties to even) in integer arithmetic: the
    same tick, without building fractions for every frame."""
    p, q = float(seconds).as_integer_ratio()
    n, d = p * time_base.denominator, q * time_base.numerator
    whole, rest = divmod(n, d)
    twice = 2 * rest
    if twice > d or (twice == d and whole % 2):
        whole += 1
    return whole


def _as_fraction(value: float | Fraction) -> Fraction:
    if isinstance(value, Fraction):
        return value
    return Fraction(value).limit_denominator(1001)


_LIMITED_CHROMA = 224 / 255


def _rgb_to_i420(image: np.ndarray) -> np.ndarray:
    """Convert H×W×3 RGB (even H, W) to an I420 buffer, BT.601 limited range.

    Returns:
        (H*3/2)×W uint8: the Y plane, then U and V at half resolution.

    Same result as swscale (±1) in about a third of the time at 720p. ``cv2``'s
    own RGB->I420 takes each chroma sample from one pixel (aliasing on coloured
    edges), so chroma is computed here from the 2×2 box average instead.
    """
    import cv2

    h, w = image.shape[:2]
    buf = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)  # exact Y; its chroma is replaced below
    half = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # 2×2 box average
    ycc = cv2.cvtColor(half, cv2.COLOR_RGB2YCrCb)  # full-range BT.601 ...
    ycc = cv2.convertScaleAbs(
        ycc, alpha=_LIMITED_CHROMA, beta=128.0 * (1.0 - _LIMITED_CHROMA)
    )  # ... to limited
    _, cr, cb = cv2.split(ycc)
    _, u, v = _i420_planes(buf, w, h)
    u[:] = cb
    v[:] = cr
    return buf


def _i420_planes(data: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (``H x W``), U and V (``H/2 x W/2``) planes of an I420 buffer."""
    flat = data.reshape(-1)
    n, q = width * height, (width // 2) * (height // 2)
    half = (height // 2, width // 2)
    return data[:height], flat[n : n + q].reshape(half), flat[n + q :].reshape(half)


def _i420_frame(data: np.ndarray, width: int, height: int) -> av.VideoFrame:
    """A PyAV frame (BT.601, limited range) holding the I420 buffer ``data``.

    The planes are copied with NumPy, which lets other threads run meanwhile;
    ``VideoFrame.from_ndarray`` holds the GIL for the whole copy (and takes five
    times as long), stalling every other stage of a pipeline for ~0.3 ms a frame at 720p.
    """
    import av

    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, src in zip(frame.planes, _i420_planes(data, width, height), strict=True):
        rows, cols = src.shape
        view = np.frombuffer(plane, np.uint8, count=rows * plane.line_size).reshape(rows, plane.line_size)
        np.copyto(view[:, :cols], src)
    frame.colorspace = _AVCOL_SPC_SMPTE170M
    frame.color_range = _AVCOL_RANGE_MPEG
    return frame


class VideoWriter:
    """Encode frames into a video file, atomically.

    Frames go to a temporary file next to ``path`` that replaces ``path`` only
    when :meth:`close` succeeds; :meth:`abort` (or an exception inside the
    ``with`` block) removes it and leaves any existing ``path`` untouched. Input
    files are never overwritten.

    Frames are written at a constant ``fps`` unless :meth:`write` gets their
    ``time``: then those timestamps are kept (variable frame rate), relative to the
    first frame's time (or ``time_origin``). With ``audio_from``, that file's audio is interleaved
    with the video on the same timeline (times given to :meth:`write` are read as
    times of ``audio_from``), copied without re-encoding when the container
    takes the codec (e.g. AAC into MP4), otherwise re-encoded to AAC (Opus for
    WebM). The whole audio track is kept unless ``shortest=True``.

    Args:
        path: output file; the suffix picks the container (``.mp4``, ``.mov``,
            ``.mkv``, ``.webm``).
        fps: frame rate (nominal rate when times are given).
        size: ``(width, height)``; taken from the first frame when ``None``. Odd
            sizes are padded (edge pixels repeated) to even for 4:2:0 formats.
        codec: video encoder; ``None`` picks the first working one of libx264,
            libopenh264, h264, mpeg4 (libvpx-vp9, libvpx for ``.webm``).
        crf: quality, x264 scale (lower is better; 18 is visually lossless). Mapped
            for other encoders.
        preset: x264/x265 speed preset (``ultrafast`` ... ``veryslow``). With libx264,
            ``veryfast`` also gets ``x264-params`` :data:`FAST_X264_PARAMS` (about a
            third faster, up to ~20 % bigger files at equal quality).
        encoder_options: extra FFmpeg encoder options, applied last, e.g.
            ``{"tune": "film"}``; ``{"x264-params": ""}`` gives the plain preset.
        pix_fmt: encoder pixel format.
        audio_from: file whose audio track to carry over (ignored if it has none).
        threads: encoder threads; 0 lets the encoder choose.
        time_base: timestamp unit; default 1/90000 when it divides the frame
            period, else 1/30000 for 30000/1001 fps and the like, else 1/fps.
            :func:`process_video` passes the source's for variable-rate video.
        time_origin: the ``time`` that becomes 0 in the output; default the first
            frame's time. Audio from ``audio_from`` is shifted by the same amount
            (audio ending more than 0.1 s before the origin is dropped).
        shortest: stop the audio at the end of the video.

    Raises:
        ConfigError: unknown/unavailable codec or one the container cannot hold,
            bad ``fps``/``size``/``pix_fmt``.
        OutputError: the folder is missing or ``path`` is an input file.

    Example:
        >>> import numpy as np
        >>> with VideoWriter("out.mp4", fps=25) as writer:  # doctest: +SKIP
        ...     for i in range(50):
        ...         writer.write(np.full((120, 160, 3), i * 5, np.uint8))
    """

    def __init__(
        self,
        path: PathLike,
        *,
        fps: float | Fraction = 30,
        size: tuple[int, int] | None = None,
        codec: str | None = None,
        crf: float = 18,
        preset: str = "veryfast",
        encoder_options: Mapping[str, str] | None = None,
        pix_fmt: str = "yuv420p",
        audio_from: PathLike | None = None,
        threads: int = 0,
        time_base: Fraction | None = None,
        time_origin: float | None = None,
        shortest: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        import av

        self._closed = True  # until fully set up, so __del__/abort are no-ops
        self.path = Path(path).expanduser()
        self.fps = _as_fraction(fps)
        if self.fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ConfigError(f"size must be (width, height) with positive values, got {size}")
        suffix = self.path.suffix.lower()
        self.codec = _resolve_codec(codec, suffix)
        formats = [f.name for f in (av.codec.Codec(self.codec, "w").video_formats or ())]
        if formats and pix_fmt not in formats:
            raise ConfigError(
                f"codec {self.codec!r} cannot encode pix_fmt {pix_fmt!r}; it takes {', '.join(formats)}"
            )
        self.pix_fmt = pix_fmt
        if time_base is None:
            time_base = _default_time_base(self.fps)
        self.time_base = _fit_time_base(Fraction(time_base), self.fps, self.codec)
        self._period = round(1 / self.fps / self.time_base)  # ticks per frame at the nominal rate
        self.shortest = shortest
        source: Path | None = None
        if audio_from is not None:
            source = check_input_path(audio_from, "audio source")
            register_input(source)
        self._atomic = atomic_output(self.path, inputs=(source,) if source is not None else ())
        self._tmp: Path = self._atomic.__enter__()
        self._closed = False
        self._container: av.container.OutputContainer | None = None
        self._audio: _AudioCarrier | None = None
        try:
            options = {"movflags": "+faststart"} if suffix in {".mp4", ".m4v", ".mov"} else {}
            self._container = av.open(str(self._tmp), "w", options=options)
            if metadata:  # container tags (e.g. provenance), written with the header
                self._container.metadata.update({str(k): str(v) for k, v in metadata.items()})
            try:
                self._stream = self._container.add_stream(self.codec, rate=self.fps)
            except ValueError as err:
                raise ConfigError(
                    f"cannot write {self.codec!r} video into '{self.path.name}': {err}"
                ) from None
            ctx = self._stream.codec_context
            ctx.time_base = self.time_base
            ctx.pix_fmt = pix_fmt
            ctx.thread_count = max(0, int(threads))
            self._stream.options = _encoder_options(self.codec, crf, preset, encoder_options)
            if source is not None:
                probe = _open_input(source)
                try:
                    has_audio = bool(probe.streams.audio)
                finally:
                    probe.close()
                if has_audio:
                    self._audio = _AudioCarrier(self._container, source, suffix)
        except BaseException as err:
            self._abort(err)
            raise
        self._yuv = pix_fmt.startswith(("yuv", "nv"))
        self._full_range = pix_fmt.startswith("yuvj")
        self.size: tuple[int, int] | None = None  # encoded (width, height), even-padded
        self._requested_size = (int(size[0]), int(size[1])) if size is not None else None
        self._input_size: tuple[int, int] | None = None
        self.frames_written = 0
        self._origin: float | None = float(time_origin) if time_origin is not None else None
        if self._audio is not None and self._origin is not None:
            self._audio.origin = self._origin
        self._last_pts: int | None = None
        self._end_time = 0.0

    # -- properties
    @property
    def audio_mode(self) -> str | None:
        """``"copy"``, ``"encode"`` or ``None`` (no audio)."""
        return self._audio.mode if self._audio is not None else None

    @property
    def duration(self) -> float:
        """Seconds of video written so far (last frame's time plus one frame)."""
        return self._end_time

    @property
    def audio_position(self) -> float:
        """Seconds of audio muxed so far; follows the video as frames are written."""
        return self._audio.position if self._audio is not None else 0.0

    # -- context management
    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not getattr(self, "_closed", True):
                self._abort(None)

    # -- writing
    def _setup(self, width: int, height: int) -> None:
        mw, mh = _even_padding(self.pix_fmt)
        self._input_size = (width, height)
        self.size = (width + (-width % mw), height + (-height % mh))
        ctx = self._stream.codec_context
        ctx.width, ctx.height = self.size
        if self._yuv:  # tag what we encode: BT.601 matrix, sRGB (BT.709) primaries and transfer
            ctx.colorspace = _AVCOL_SPC_SMPTE170M
            ctx.color_range = _AVCOL_RANGE_JPEG if self._full_range else _AVCOL_RANGE_MPEG
            ctx.color_primaries = _AVCOL_PRI_BT709
            ctx.color_trc = _AVCOL_TRC_BT709

    def _to_av_frame(self, image: np.ndarray | I420Image) -> av.VideoFrame:
        import av
        import cv2

        assert self.size is not None and self._input_size is not None
        width, height = self.size
        if isinstance(image, I420Image):
            if self.pix_fmt == "yuv420p" and image.size == (width, height):
                return _i420_frame(image.data, width, height)
            image = image.to_rgb()  # another pixel format: through RGB, as any frame
        pad_w, pad_h = width - image.shape[1], height - image.shape[0]
        if pad_w or pad_h:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        if self.pix_fmt == "yuv420p":
            return _i420_frame(_rgb_to_i420(image), width, height)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self._yuv:
            return frame.reformat(
                format=self.pix_fmt,
                dst_colorspace="itu601",
                dst_color_range="JPEG" if self._full_range else "MPEG",
            )
        return frame.reformat(format=self.pix_fmt)

    def write(self, image: np.ndarray | I420Image, time: float | None = None) -> None:
        """Encode one frame.

        Args:
            image: H×W×3 uint8 RGB, or an :class:`I420Image` (encoded as it is when
                the writer's pixel format is ``yuv420p``); every frame must have the
                first frame's size (or ``size``).
            time: presentation time in seconds (on the ``audio_from`` timeline).
                ``None`` places the frame one nominal period after the previous one.
                Times must increase; a time not after the previous frame's is
                nudged forward by one tick.

        Raises:
            ConfigError: wrong array type/shape or size.
            OutputError: the writer is closed.
        """
        if self._closed:
            raise OutputError(f"cannot write to '{self.path}': the writer is closed")
        if isinstance(image, I420Image):
            width, height = image.size
        elif (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            got = (
                f"{image.dtype} array of shape {image.shape}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise ConfigError(f"video frames must be H×W×3 uint8 RGB arrays, got {got}")
        else:
            height, width = image.shape[:2]
        if self._input_size is None:
            if self._requested_size is not None and self._requested_size != (width, height):
                raise ConfigError(
                    f"frame 0 is {width}×{height} but the writer was opened with size "
                    f"{self._requested_size[0]}×{self._requested_size[1]}"
                )
            self._setup(width, height)
        elif (width, height) != self._input_size:
            raise ConfigError(
                f"frame {self.frames_written} is {width}×{height}, expected "
                f"{self._input_size[0]}×{self._input_size[1]} like the first frame"
            )
        if time is not None and self._origin is None:
            self._origin = float(time)
            if self._audio is not None:
                self._audio.origin = self._origin
        if self._origin is None:
            self._origin = 0.0
        if time is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._period
        else:
            pts = _round_ratio(float(time) - self._origin, self.time_base)
            if self._last_pts is not None and pts <= self._last_pts:
                pts = self._last_pts + 1
        self._last_pts = pts
        frame = self._to_av_frame(image)
        frame.pts = pts
        frame.time_base = self.time_base
        assert self._container is not None
        try:
            self._container.mux(self._stream.encode(frame))
        except Exception as err:
            raise OutputError(
                f"encoding frame {self.frames_written} to '{self.path}' failed: {_one_line(err)}"
            ) from err
        self.frames_written += 1
        tb = self.time_base
        t_out = pts * tb.numerator / tb.denominator  # (exact integers, one rounding: float(pts * tb))
        self._end_time = t_out + self.fps.denominator / self.fps.numerator
        if self._audio is not None:
            self._audio.pump(t_out)

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it into place.

        Returns:
            The destination path.

        Raises:
            OutputError: no frame was written, or finishing the file failed (the
                temporary file is removed either way).
        """
        if self._closed:
            return self.path
        if self.frames_written == 0:
            err = OutputError(f"no frames were written to '{self.path}'")
            self._abort(err)
            raise err
        assert self._container is not None
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.pump(self._end_time if self.shortest else None)
                if self.shortest:
                    self._audio._finish()
            self._container.close()
            self._container = None
            if self._audio is not None:
                self._audio.close()
            self._closed = True
            self._atomic.__exit__(None, None, None)
        except Exception as err:
            if not self._closed:
                self._abort(err)
            if isinstance(err, OutputError):
                raise
            raise OutputError(f"could not finish '{self.path}': {_one_line(err)}") from err
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left as it was."""
        self._abort(None)

    def _abort(self, err: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if self._container is not None:
                self._container.close()
        self._container = None
        with contextlib.suppress(Exception):
            if self._audio is not None:
                self._audio.close()
        reason = err if err is not None else OutputError(f"writing '{self.path}' was aborted")
        with contextlib.suppress(BaseException):
            self._atomic.__exit__(type(reason), reason, reason.__traceback__)
        with contextlib.suppress(OSError):
            self._tmp.unlink()


# --------------------------------------------------------------------------- processing


_DONE = object()


def prefetch_frames(reader: VideoReader, depth: int = 8) -> Iterator[VideoFrame]:
    """Iterate ``reader`` in a background thread, ``depth`` frames ahead.

    PyAV releases the GIL while decoding, so decoding overlaps with the caller's
    work (the effect and the encoder).
    """
    if depth <= 0:
        yield from reader
        return
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        frames = iter(reader)
        item: object = _DONE
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item = _DONE
        except BaseException as err:  # handed to the consumer
            item = err
        finally:
            frames.close()  # type: ignore[attr-defined]  # release the demuxer in this thread
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="portraitfx-video-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def run_stages(items: Iterator[Any], stages: Sequence[Callable[[Any], Any]], depth: int = 3) -> Iterator[Any]:
    """``stages[-1](...stages[1](stages[0](item)))`` for every item, in order, as a pipeline.

    Every stage but the last runs in its own thread, joined to the next by a queue
    ``depth`` items deep, so the stages of consecutive items overlap (on a machine
    with several cores, and as far as the stages release the GIL: OpenCV, NumPy,
    PyAV, MediaPipe and ONNX Runtime do). Each stage still sees the items one at a
    time and in order, so stateful stages (a tracker, temporal smoothing) give the
    same results as a plain loop. An exception in any stage stops the pipeline and
    is raised here.
    """
    stages = list(stages)
    if len(stages) == 1:
        try:
            for item in items:
                yield stages[0](item)
        finally:
            if hasattr(items, "close"):
                items.close()  # now, not when an exception's traceback lets go of it
        return
    stop = threading.Event()
    queues: list[queue.Queue[object]] = [queue.Queue(maxsize=depth) for _ in stages[:-1]]

    def put(q: queue.Queue[object], item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def drain(q: queue.Queue[object]) -> Iterator[Any]:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def work(i: int) -> None:
        try:
            for item in items if i == 0 else drain(queues[i - 1]):
                if stop.is_set() or not put(queues[i], stages[i](item)):
                    return
            put(queues[i], _DONE)
        except BaseException as err:  # handed down to the caller
            put(queues[i], _Failure(err))
        finally:
            if i == 0 and hasattr(items, "close"):
                items.close()  # e.g. stop a decoding thread, from the thread that iterated

    threads = [
        threading.Thread(target=work, args=(i,), name=f"portraitfx-stage-{i}", daemon=True)
        for i in range(len(stages) - 1)
    ]
    for t in threads:
        t.start()
    try:
        for item in drain(queues[-1]):
            yield stages[-1](item)
    finally:
        stop.set()
        for q in queues:  # unblock producers waiting on a full queue
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
        for t in threads:
            t.join()


@dataclass
class _Failure:
    error: BaseException


def process_video(
    src: PathLike,
    dst: PathLike,
    fn: Callable[[VideoFrame], np.ndarray] | Sequence[Callable[[Any], Any]],
    *,
    progress: bool = True,
    codec: str | None = None,
    crf: float = 18,
    preset: str = "veryfast",
    keep_audio: bool = True,
    encoder_options: Mapping[str, str] | None = None,
    threads: int = 0,
    prefetch: int = 8,
    raise_on_truncated: bool = True,
    metadata: Mapping[str, str] | None = None,
    keep_i420: bool = False,
) -> VideoProcessResult:
    """Apply ``fn`` to every frame of ``src`` and write the result to ``dst``.

    Frames keep the source's timestamps (variable frame rates survive) and the
    source's audio is carried over (copied when possible). Decoding runs in a
    background thread, ahead of ``fn`` and the encoder. ``dst`` is written
    atomically: if ``fn`` raises, nothing is left behind.

    Args:
        src: input video.
        dst: output video (must not be ``src``); its suffix picks the container.
        fn: maps a :class:`VideoFrame` to an H×W×3 uint8 RGB image; all outputs
            must have the same size (it may differ from the input's). Or a list of
            functions, the first taking the frame and each the previous one's
            result: they run as a pipeline (see :func:`run_stages`), each stage in
            its own thread, so consecutive frames' stages overlap on several cores.
        progress: show a tqdm progress bar.
        codec: video encoder (see :class:`VideoWriter`).
        crf: quality, x264 scale (lower is better).
        preset: x264 speed preset (see :class:`VideoWriter`).
        keep_audio: carry the source's audio over.
        encoder_options: extra encoder options (see :class:`VideoWriter`).
        threads: encoder threads (0: automatic).
        prefetch: frames decoded ahead in the background (0: decode inline).
        raise_on_truncated: raise :class:`TruncatedVideoError` for a cut-off
            input (after finishing ``dst``); if ``False``, return with
            ``truncated=True`` instead.
        metadata: container tags to write (e.g. provenance from
            :func:`portraitfx.provenance.video_metadata`).
        keep_i420: frames carry their decoded picture too (see :attr:`VideoFrame.i420`),
            for stages that hand the encoder an :class:`I420Image`.

    Returns:
        A :class:`VideoProcessResult`.

    Raises:
        TruncatedVideoError: the input ended early; ``dst`` holds the frames decoded
            before the damage (``err.output``, ``err.frames_decoded``).
        InputNotFoundError, UnsupportedFormatError, CorruptInputError,
        NoVideoStreamError, VideoError: the input cannot be read.
        ConfigError, OutputError: bad options or output path.

    Example:
        >>> import cv2
        >>> def blur(frame):
        ...     return cv2.GaussianBlur(frame.image, (9, 9), 0)
        >>> process_video("in.mp4", "blurred.mp4", blur, progress=False)  # doctest: +SKIP
        VideoProcessResult(frames=150, seconds_of_video=5.0, ...)
    """
    from portraitfx._tuning import tune_process

    tune_process()
    steps = [fn] if callable(fn) else list(fn)
    if not steps:
        raise ConfigError("process_video needs at least one function to apply")
    # every stage's output travels with its frame (the writer needs the frame's time)
    stages: list[Callable[[Any], Any]] = [lambda frame: (frame, steps[0](frame))]
    stages += [lambda pair, f=f: (pair[0], f(pair[1])) for f in steps[1:]]
    started = _time.perf_counter()
    with VideoReader(src, keep_i420=keep_i420) as reader:
        info = reader.info
        if len(stages) > 1 and prefetch > 0 and info.width * info.height <= 1920 * 1088:
            # the stages keep both cores busy and the decoder runs ahead in its own thread:
            # one decoder thread is fast enough up to 1080p and spares FFmpeg's frame threads
            # (about 15 % of the decoding CPU time at 720p)
            reader.set_threads(1)
        # Constant rate: the writer's exact default time base (times are snapped to the
        # frame grid below). Variable rate: the source's own time base keeps every tick.
        tb: Fraction | None = None
        if info.variable_frame_rate:
            tb = info.time_base
            if tb.denominator > 1_000_000 or tb > Fraction(1, 10):
                tb = Fraction(1, 90000)
        from tqdm import tqdm

        fps = Fraction(info.fps).limit_denominator(1001)
        writer = VideoWriter(
            dst,
            fps=fps,
            codec=codec,
            crf=crf,
            preset=preset,
            encoder_options=encoder_options,
            audio_from=reader.path if keep_audio and info.has_audio else None,
            threads=threads,
            time_base=tb,
            # Like ffmpeg: the file's start (not the first video frame) becomes 0, so
            # audio that starts before the video is kept and stays in sync.
            time_origin=max(0.0, reader.start_time),
            metadata=metadata,
        )
        snap = not info.variable_frame_rate
        try:
            with (
                contextlib.ExitStack() as stack,
                writer,
                tqdm(
                    total=info.frame_count or None,
                    unit="frame",
                    desc=reader.path.name,
                    disable=not progress,
                    leave=False,
                    dynamic_ncols=True,
                ) as bar,
            ):
                if len(stages) > 1:  # the stages keep the cores busy: OpenCV's pool would only get in the way
                    from portraitfx._tuning import opencv_single_threaded

                    stack.enter_context(opencv_single_threaded())
                frames = prefetch_frames(reader, prefetch)
                pipeline = run_stages(frames, stages)
                # both closed before the reader is: a decoding thread must never outlive it
                stack.callback(frames.close)
                stack.callback(pipeline.close)
                # (float arithmetic with the same results as with the fractions)
                rate_f, tolerance = float(fps), 0.25 / float(fps)
                for frame, image in pipeline:
                    t = frame.time
                    if snap:  # constant rate: drop timestamp rounding jitter, keep gaps
                        slot = round(t * rate_f)
                        on_grid = slot * fps.denominator / fps.numerator  # float(slot / fps)
                        if abs(t - on_grid) < tolerance:
                            t = on_grid
                    writer.write(image, time=t)
                    bar.update(1)
                if writer.frames_written == 0:
                    raise VideoError(f"no frame could be decoded from '{reader.path}'")
        except VideoError as err:
            if reader.truncated and writer.frames_written == 0:
                raise TruncatedVideoError(
                    f"'{reader.path}' is damaged or truncated ({reader.truncation_reason}); "
                    f"no frame could be decoded, nothing was written",
                    frames_decoded=0,
                    output=None,
                ) from err
            raise
        truncated, reason = reader.truncated, reader.truncation_reason
    result = VideoProcessResult(
        frames=writer.frames_written,
        seconds_of_video=writer.duration,
        elapsed=_time.perf_counter() - started,
        output=writer.path,
        truncated=truncated,
    )
    if truncated and raise_on_truncated:
        raise TruncatedVideoError(
            f"'{reader.path}' is damaged or truncated ({reason}); wrote the {result.frames} frames "
            f"decoded before the damage ({result.seconds_of_video:.2f} s) to '{result.output}'",
            frames_decoded=result.frames,
            output=str(result.output),
        )
    return result
