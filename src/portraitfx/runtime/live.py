"""Live mode: an effect on a camera (or a video played in real time), with bounded latency.

A capture thread reads the source as fast as it delivers and keeps only the newest
frame; the processing loop always takes the newest one, so when the effect is
slower than the source, frames are dropped instead of queued and the picture on
screen is never more than one processing time behind. Each shown frame gets a
small overlay (effect, fps). Sinks: a window (needs a display), a recording (a
video file with the frames' capture times) and a virtual webcam (``pyvirtualcam``,
where the platform has one).

Keys in the window: ``n`` / space next effect or style, ``q`` / Esc quit.

Example:
    >>> from portraitfx.effects import create_effect
    >>> session = LiveSession(FileSource("clip.mp4"), [("pencil", create_effect("stylize", style="pencil"))],
    ...                       [RecordSink("live.mp4")])                      # doctest: +SKIP
    >>> session.run(seconds=5)                                                # doctest: +SKIP
    LiveStats(frames_in=150, frames_shown=131, frames_dropped=19, ...)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from portraitfx.effects.base import Effect, EffectState
from portraitfx.errors import ConfigError, InputError

__all__ = [
    "CameraSource",
    "FileSource",
    "LiveSession",
    "LiveStats",
    "RecordSink",
    "VirtualCameraSink",
    "WindowSink",
    "has_display",
]


# ------------------------------------------------------------------------------ sources


class _LatestFrame:
    """A one-slot buffer: a new frame replaces the one not yet taken (counted as dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[np.ndarray, float] | None = None
        self.delivered = 0
        self.dropped = 0
        self.ended = False
        self.error: BaseException | None = None

    def put(self, image: np.ndarray, t: float) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = (image, t)
            self.delivered += 1
            self._cond.notify_all()

    def end(self, error: BaseException | None = None) -> None:
        with self._cond:
            self.ended, self.error = True, error
            self._cond.notify_all()

    def take(self, timeout: float = 5.0) -> tuple[np.ndarray, float] | None:
        """The newest frame (waits for one); None when the source has ended."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self.ended, timeout):
                raise InputError(f"the live source gave no frame for {timeout:.0f} s")
            if self._item is None:
                if self.error is not None:
                    raise self.error
                return None
            item, self._item = self._item, None
            return item


class _ThreadedSource:
    """Base: reads frames in a thread into a :class:`_LatestFrame`."""

    name = "source"
    fps: float = 30.0

    def __init__(self) -> None:
        self.buffer = _LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"portraitfx-live-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._read()
            self.buffer.end()
        except BaseException as err:  # handed to the processing loop
            self.buffer.end(err)

    def _read(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class FileSource(_ThreadedSource):
    """A video file played in real time (its own frame times), optionally looped."""

    def __init__(self, path: str | os.PathLike[str], *, loop: bool = False, realtime: bool = True) -> None:
        from portraitfx.io.video import probe_video

        super().__init__()
        self.path = Path(path)
        info = probe_video(self.path)
        self.fps = float(info.fps) or 30.0
        self.size = (info.width, info.height)
        self.loop, self.realtime = loop, realtime
        self.name = self.path.name

    def _read(self) -> None:
        from portraitfx.io.video import VideoReader

        start = time.perf_counter()
        offset = 0.0
        while not self._stop.is_set():
            last = 0.0
            with VideoReader(self.path) as reader:
                for frame in reader:
                    if self._stop.is_set():
                        return
                    due = start + offset + frame.time
                    if self.realtime:
                        delay = due - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    self.buffer.put(frame.image, time.perf_counter())
                    last = frame.time
            if not self.loop:
                return
            offset += last + 1.0 / self.fps


class CameraSource(_ThreadedSource):
    """A camera through OpenCV (``index`` as ``cv2.VideoCapture`` takes it)."""

    def __init__(self, index: int = 0, *, width: int | None = None, height: int | None = None) -> None:
        super().__init__()
        self.name = f"camera {index}"
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            raise InputError(f"cannot open camera {index} (is one connected, and may this user use it?)")
        if width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 30.0)
        self.size = (
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                ok, bgr = self._cap.read()
                if not ok:
                    raise InputError(f"{self.name} stopped delivering frames")
                self.buffer.put(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.perf_counter())
        finally:
            self._cap.release()


# -------------------------------------------------------------------------------- sinks


class Sink(Protocol):
    def show(self, image: np.ndarray, t: float) -> int:
        """Show or store one RGB frame (captured at ``t``); return a key code or -1."""

    def close(self) -> None: ...


def has_display() -> bool:
    """Whether a window can be opened (an X11/Wayland display, or not Linux)."""
    if os.name != "posix" or os.uname().sysname != "Linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink:
    """An OpenCV window; keys come back from :meth:`show`."""

    def __init__(self, title: str = "portraitfx live") -> None:
        if not has_display():
            raise ConfigError("no display to open a window on: use --record FILE or --virtual-camera")
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray, t: float) -> int:
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return int(cv2.waitKey(1))

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class RecordSink:
    """A video file of what was shown, each frame at its capture time (variable rate)."""

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0) -> None:
        from portraitfx.io.paths import check_output_path

        self.path = check_output_path(path)
        self.fps = fps
        self._writer: Any = None
        self._t0: float | None = None

    def show(self, image: np.ndarray, t: float) -> int:
        from portraitfx.io.video import VideoWriter

        if self._writer is None:
            self._writer = VideoWriter(self.path, fps=self.fps)
            self._writer.__enter__()
            self._t0 = t
        self._writer.write(image, time=t - (self._t0 or t))
        return -1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.__exit__(None, None, None)
            self._writer = None


class VirtualCameraSink:
    """A virtual webcam (``pyvirtualcam``: v4l2loopback on Linux, OBS on Windows/macOS)."""

    def __init__(self, size: tuple[int, int], fps: float = 30.0) -> None:
        try:
            import pyvirtualcam
        except ImportError as err:
            raise ConfigError(
                "--virtual-camera needs the 'pyvirtualcam' package and a virtual camera device "
                "(v4l2loopback on Linux, OBS on Windows/macOS): pip install pyvirtualcam"
            ) from err
        try:
            self._cam = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps)
        except Exception as err:  # the package raises plain RuntimeErrors
            raise ConfigError(f"no virtual camera device: {' '.join(str(err).split())}") from err

    def show(self, image: np.ndarray, t: float) -> int:
        self._cam.send(np.ascontiguousarray(image))
        return -1

    def close(self) -> None:
        self._cam.close()


# ------------------------------------------------------------------------------ session


@dataclass
class LiveStats:
    """What a live session did.

    Attributes:
        frames_in: frames the source delivered.
        frames_shown: frames processed and shown.
        frames_dropped: frames replaced by a newer one before they could be processed.
        seconds: wall time.
        fps: frames shown per second.
        latency_ms: median and 95th-percentile time from capture to shown, in milliseconds
            (the first frame, which also starts the face tracker, is left out).
        effects_used: labels of the effects shown, in order of switching.
    """

    frames_in: int = 0
    frames_shown: int = 0
    frames_dropped: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 0.0)
    effects_used: list[str] = field(default_factory=list)


NEXT_KEYS = {ord("n"), ord(" ")}
QUIT_KEYS = {ord("q"), 27}


class LiveSession:
    """Run effects on a live source and send the frames to sinks.

    Args:
        source: a :class:`FileSource` or :class:`CameraSource` (not started yet).
        effects: ``(label, effect)`` pairs; ``n``/space in the window switches to the next.
        sinks: where frames go (window, recording, virtual camera).
        max_faces: faces tracked per frame.
        overlay: draw the effect's label and the fps in the corner.
    """

    def __init__(
        self,
        source: _ThreadedSource,
        effects: Sequence[tuple[str, Effect]],
        sinks: Sequence[Any],
        *,
        max_faces: int = 2,
        overlay: bool = True,
    ) -> None:
        if not effects:
            raise ConfigError("live mode needs at least one effect")
        if not sinks:
            raise ConfigError(
                "live mode needs somewhere to show frames: a window, --record or --virtual-camera"
            )
        self.source, self.effects, self.sinks = source, list(effects), list(sinks)
        self.max_faces, self.overlay = max_faces, overlay
        self.current = 0
        self._preparers: dict[int, Any] = {}

    def _preparer(self, effect: Effect) -> Any:
        make = getattr(effect, "template_preparer", None)
        if not callable(make):
            return None
        if self._preparers.get(id(effect)) is None:
            self._preparers[id(effect)] = make()
        return self._preparers[id(effect)]

    def next_effect(self) -> None:
        """Switch to the next effect (its per-video state starts afresh)."""
        self.current = (self.current + 1) % len(self.effects)
        self._state = EffectState()
        self._preparers.clear()

    def run(self, *, seconds: float | None = None, max_frames: int | None = None) -> LiveStats:
        """Process until the source ends, a quit key, ``seconds`` or ``max_frames``."""
        from portraitfx._tuning import tune_process
        from portraitfx.face.track import FaceTracker

        tune_process()
        stats = LiveStats()
        latencies: list[float] = []
        self._state = EffectState()
        smooth = all(bool(getattr(e, "smooth_landmarks", True)) for _, e in self.effects)
        fps_window: list[float] = []
        started = time.perf_counter()
        self.source.start()
        try:
            with FaceTracker(self.max_faces, smooth=smooth) as tracker:
                stats.effects_used.append(self.effects[self.current][0])
                while True:
                    if seconds is not None and time.perf_counter() - started >= seconds:
                        break
                    if max_frames is not None and stats.frames_shown >= max_frames:
                        break
                    item = self.source.buffer.take()
                    if item is None:
                        break
                    image, captured = item
                    label, effect = self.effects[self.current]
                    faces = tracker.update(image, captured - started)
                    self._state.frame_index = stats.frames_shown
                    preparer = self._preparer(effect)
                    for face in faces if preparer is not None else []:
                        # what a video runtime computes in its analysis stage (motion, occluders)
                        self._state.for_face(face)["template"] = preparer.prepare_face(image, face)
                    holds = bool(getattr(effect, "holds_faces", False)) and bool(self._state.tracks)
                    out = effect.apply(image, faces, self._state) if faces or holds else image
                    now = time.perf_counter()
                    fps_window = [t for t in fps_window if now - t < 1.0] + [now]
                    if self.overlay:
                        out = _draw_overlay(out, label, len(fps_window), len(faces))
                    key = -1
                    for sink in self.sinks:
                        k = sink.show(out, captured)
                        key = k if k != -1 else key
                    latencies.append((time.perf_counter() - captured) * 1000)
                    stats.frames_shown += 1
                    if key & 0xFF in QUIT_KEYS and key != -1:
                        break
                    if key & 0xFF in NEXT_KEYS and key != -1:
                        self.next_effect()
                        stats.effects_used.append(self.effects[self.current][0])
        finally:
            self.source.stop()
            for sink in self.sinks:
                sink.close()
        stats.seconds = time.perf_counter() - started
        stats.frames_in = self.source.buffer.delivered
        stats.frames_dropped = self.source.buffer.dropped
        stats.fps = stats.frames_shown / max(stats.seconds, 1e-9)
        steady = latencies[1:] or latencies
        if steady:
            stats.latency_ms = (float(np.median(steady)), float(np.percentile(steady, 95)))
        return stats


def _draw_overlay(image: np.ndarray, label: str, fps: int, faces: int) -> np.ndarray:
    out = image.copy()
    text = f"{label}  {fps} fps  {faces} face{'s' if faces != 1 else ''}"
    scale = max(0.4, min(out.shape[:2]) / 900)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 12, h + base + 10), (0, 0, 0), -1)
    cv2.putText(out, text, (6, h + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
