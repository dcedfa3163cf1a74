"""MediaPipe access: one place that imports it quietly and builds its solution graphs.

MediaPipe 0.10.21 ships the face detection, face mesh (with attention/iris) and
selfie segmentation TFLite models inside its wheel; its legacy "solutions" graphs
load them from there. Only the vision solutions are imported (``mediapipe.tasks.audio``
needs PortAudio and is never touched).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C-level stderr (TFLite/absl start-up chatter) inside the block.

    fd 2 is process-wide, so nested or concurrent blocks (several threads) share
    one redirection: the first to enter silences it, the last to leave restores it.
    """
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
                _quiet_saved = saved
            except (OSError, ValueError):  # no real fd 2 (e.g. some notebook setups)
                _quiet_saved = None
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                os.dup2(_quiet_saved, 2)
                os.close(_quiet_saved)
                _quiet_saved = None


def solutions() -> Any:
    """Return ``mediapipe.python.solutions`` (imported on first use)."""
    with quiet_native_stderr():
        from mediapipe.python import solutions as mp_solutions
    return mp_solutions


class Graph:
    """A MediaPipe solution graph whose start-up chatter is silenced.

    TFLite and absl log on graph creation and lazily while the first inferences
    set up their delegates (a model may first run several calls in, e.g. the
    landmark model once a face is found), so the first few calls run with native
    stderr silenced.
    """

    QUIET_CALLS = 4

    def __init__(self, factory: Any, **kwargs: Any) -> None:
        with quiet_native_stderr():
            self._graph = factory(**kwargs)
        self._calls = 0

    def process(self, image: Any) -> Any:
        self._calls += 1
        if self._calls <= self.QUIET_CALLS:
            with quiet_native_stderr():
                return self._graph.process(image)
        return self._graph.process(image)

    def reset(self) -> None:
        self._graph.reset()
        self._calls = 0  # a reset graph sets its delegates up again

    def close(self) -> None:
        self._graph.close()


def face_detection(model_selection: int, min_score: float) -> Graph:
    return Graph(
        solutions().face_detection.FaceDetection,
        model_selection=model_selection,
        min_detection_confidence=min_score,
    )


def face_mesh(*, static: bool, max_faces: int, min_score: float = 0.5, min_tracking: float = 0.5) -> Graph:
    return Graph(
        solutions().face_mesh.FaceMesh,
        static_image_mode=static,
        max_num_faces=max_faces,
        refine_landmarks=True,
        min_detection_confidence=min_score,
        min_tracking_confidence=min_tracking,
    )


def selfie_segmentation(model_selection: int) -> Graph:
    return Graph(solutions().selfie_segmentation.SelfieSegmentation, model_selection=model_selection)
