"""The image worker: a bounded queue in front of the effect thread(s).

Image requests become tasks for a small thread pool (one thread by default:
effects are CPU-heavy and numba's ``workqueue`` layer serves one parallel call per
process). At most ``workers + queue_size`` tasks are in flight; a request beyond
that is refused at once (429). A task keeps its slot until it has really finished,
also when its request timed out (504), so abandoned work never piles up.

Each worker thread keeps its face analysers and a small LRU of effect instances
(keyed by effect name, options and the digests of extra uploads), so models load
once, not per request.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portraitfx.errors import InputError

__all__ = ["ImageResult", "ImageTask", "QueueFull", "WorkQueue", "process_image", "read_upload"]

log = logging.getLogger(__name__)

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


class QueueFull(Exception):
    """The queue is full; ``retry_after`` is a guess of when a slot frees up (seconds)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the server is busy")
        self.retry_after = retry_after


class WorkQueue:
    """A thread pool that refuses work beyond ``workers + queue_size`` tasks in flight."""

    def __init__(self, workers: int, queue_size: int, effect_slots: int = 4) -> None:
        self.workers = workers
        self.effect_slots = effect_slots
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pfx-effect")
        self._lock = threading.Lock()
        self._inflight = 0
        self._running = 0
        self._durations: deque[float] = deque(maxlen=32)
        self.caches: list[WorkerCache] = []
        self._local = threading.local()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(cache, *args)`` for a worker thread.

        Raises:
            QueueFull: ``workers + queue_size`` tasks are in flight already.
        """
        with self._lock:
            if self._inflight >= self.capacity:
                raise QueueFull(self._retry_after())
            self._inflight += 1

        def run() -> Any:
            with self._lock:
                self._running += 1
            started = time.perf_counter()
            try:
                return fn(self._cache(), *args)
            finally:
                with self._lock:
                    self._running -= 1
                    self._durations.append(time.perf_counter() - started)

        try:
            future = self._executor.submit(run)
        except RuntimeError:  # shut down
            self._release(None)
            raise QueueFull(5) from None
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self._inflight -= 1

    def _retry_after(self) -> int:
        typical = sorted(self._durations)[len(self._durations) // 2] if self._durations else 1.0
        return int(min(60, max(1, math.ceil(typical * self._inflight / self.workers))))

    def _cache(self) -> WorkerCache:
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = WorkerCache(self.effect_slots)
            with self._lock:
                self.caches.append(cache)
        return cache

    def stats(self) -> dict[str, int]:
        """``running``, ``waiting`` and ``capacity``."""
        with self._lock:
            return {
                "running": self._running,
                "waiting": self._inflight - self._running,
                "capacity": self.capacity,
            }

    def shutdown(self) -> None:
        """Stop taking work, let queued tasks run, then release models."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        for cache in self.caches:
            cache.close()


class WorkerCache:
    """One worker thread's face analysers and recently used effects."""

    def __init__(self, effect_slots: int) -> None:
        self.effect_slots = effect_slots
        self.effects: OrderedDict[tuple, Any] = OrderedDict()
        self.analyzers: dict[Any, Any] = {}

    def analyzer(self, max_faces: int) -> Any:
        """A face analyser for ``max_faces`` (created once)."""
        from portraitfx.face.analyze import AnalyzeOptions, FaceAnalyzer

        options = AnalyzeOptions(max_faces=max_faces)
        if options not in self.analyzers:
            if len(self.analyzers) >= 4:
                self.analyzers.pop(next(iter(self.analyzers))).close()
            self.analyzers[options] = FaceAnalyzer(options)
        return self.analyzers[options]

    def effect(
        self, name: str, options: dict[str, Any], uploads: dict[str, list[Path]], max_pixels: int
    ) -> Any:
        """The effect ``name`` with ``options`` and the given extra uploads (reused when seen lately)."""
        from portraitfx.effects.base import create_effect

        digests = tuple(
            (k, tuple(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths))
            for k, paths in sorted(uploads.items())
        )
        key = (name, tuple(sorted(options.items())), digests)
        if key in self.effects:
            self.effects.move_to_end(key)
            return self.effects[key]
        kwargs = dict(options)
        for field_name, paths in uploads.items():
            images = [read_upload(p, field_name, max_pixels).rgb for p in paths]
            kwargs[field_name] = images if len(images) > 1 or field_name == "source" else images[0]
        effect = create_effect(name, **kwargs)
        self.effects[key] = effect
        while len(self.effects) > self.effect_slots:
            _, old = self.effects.popitem(last=False)
            _close(old)
        return effect

    def close(self) -> None:
        """Release every model."""
        for effect in self.effects.values():
            _close(effect)
        self.effects.clear()
        for analyzer in self.analyzers.values():
            _close(analyzer)
        self.analyzers.clear()


def _close(obj: Any) -> None:
    close = getattr(obj, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


def read_upload(path: Path, field_name: str, max_pixels: int) -> Any:
    """Decode an uploaded image (never registered as a path); errors name the upload field."""
    from portraitfx.io.images import read_image

    try:
        with open(path, "rb") as fp:
            return read_image(fp, max_pixels=max_pixels)
    except InputError as err:
        message = str(err).replace("the image data", f"the {field_name!r} upload").split("; to allow it")[0]
        raise type(err)(message) from None


@dataclass
class ImageTask:
    """One image request, as the worker sees it.

    Attributes:
        effect: effect name; ``options``: its keyword arguments.
        image: the uploaded picture (inside the data folder).
        uploads: extra uploads by field (``source`` photos for swap).
        format: ``"png"``, ``"jpeg"`` or ``"webp"``.
        max_faces: most faces to change.
        max_pixels: pixel limit of every decoded upload.
        out_dir: where the result file goes.
    """

    effect: str
    options: dict[str, Any]
    image: Path
    uploads: dict[str, list[Path]] = field(default_factory=dict)
    format: str = "png"
    max_faces: int = 8
    max_pixels: int = 40_000_000
    out_dir: Path = Path(".")


@dataclass
class ImageResult:
    """What the worker made: the result file and facts for response headers."""

    path: Path
    media_type: str
    faces: int
    provenance: str | None
    seconds: float
    width: int
    height: int


def process_image(cache: WorkerCache, task: ImageTask) -> ImageResult:
    """Decode, find faces, apply the effect, save (marked for identity-changing effects).

    The same steps as :func:`portraitfx.runtime.apply.apply_to_file` for an image,
    with the worker's cached analyser and effect and the server's pixel limit.
    """
    from portraitfx.face.analyze import require_face
    from portraitfx.io.images import save_image

    started = time.perf_counter()
    loaded = read_upload(task.image, "image", task.max_pixels)
    effect = cache.effect(task.effect, task.options, task.uploads, task.max_pixels)
    faces = require_face(cache.analyzer(task.max_faces).run(loaded.rgb), "the image")
    out = effect.apply(loaded.rgb, faces, None)
    dst = task.out_dir / f"{uuid.uuid4().hex}{_SUFFIX[task.format]}"
    marked = getattr(effect, "provenance_effect", None)
    if marked:
        from portraitfx.provenance import save_marked_image

        save_marked_image(dst, out, marked, icc_profile=loaded.icc_profile)
    else:
        save_image(dst, out, icc_profile=loaded.icc_profile)
    return ImageResult(
        path=dst,
        media_type=MEDIA_TYPES[task.format],
        faces=len(faces),
        provenance=marked or None,
        seconds=time.perf_counter() - started,
        width=int(out.shape[1]),
        height=int(out.shape[0]),
    )
