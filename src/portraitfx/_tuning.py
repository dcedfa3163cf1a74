"""Process-wide settings for long video jobs: the allocator and BLAS threads.

Called once by :func:`portraitfx.io.video.process_video` (and the CLI). Two things
measured on a 2-core machine, on a 720p face swap:

* **Allocator.** Video effects allocate and free many arrays of a few hundred
  kilobytes to a few megabytes per frame. With glibc's defaults each one is a
  fresh ``mmap`` (or the heap is trimmed after it is freed), so every frame pays
  page faults for memory it just released (15 % of the swap's time). The mmap and
  trim thresholds are raised so the memory is reused instead. Nothing happens off
  glibc or when ``MALLOC_*`` variables were set by the user.
* **BLAS threads.** NumPy's OpenBLAS starts a worker per core for every small
  matrix product and lets them spin in ``sched_yield`` afterwards; next to the
  pipeline's own threads that cost a third of the CPU (3.7 s of system time in a
  5 s run). portraitfx's matrices are tiny, so BLAS gets one thread (unless
  ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` say otherwise).

* **OpenCV threads.** While a video runs as a pipeline (its stages already keep both
  cores busy), OpenCV's own worker pool only adds hand-over costs: the watermark
  took twice the CPU time with it. :func:`opencv_single_threaded` turns it off for
  the length of the run.

``PORTRAITFX_TUNING=0`` turns all of them off.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_done = False
_cv_lock = threading.Lock()
_cv_users = 0
_cv_threads = -1


def tune_process() -> None:
    """Apply both settings once per process (idempotent)."""
    global _done
    if _done:
        return
    _done = True
    if os.environ.get("PORTRAITFX_TUNING", "1") == "0":
        return
    tune_allocator()
    limit_blas_threads()


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds for this process. Returns True if applied."""
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, 64 << 20) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 256 << 20) == 1
    ok &= mallopt(_M_TOP_PAD, 16 << 20) == 1
    return bool(ok)


def limit_blas_threads() -> bool:
    """One BLAS thread for the rest of the process. Returns True if a limit was set."""
    if any(os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return False
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency, but stay usable without it
        return False
    threadpool_limits(limits=1, user_api="blas")
    return True


@contextlib.contextmanager
def opencv_single_threaded() -> Iterator[None]:
    """OpenCV on one thread (its pool off) while the block runs; nested and concurrent uses
    share it, and the last one out restores the previous setting."""
    global _cv_users, _cv_threads
    if os.environ.get("PORTRAITFX_TUNING", "1") == "0":
        yield
        return
    import cv2

    with _cv_lock:
        if _cv_users == 0:
            _cv_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _cv_users += 1
    try:
        yield
    finally:
        with _cv_lock:
            _cv_users -= 1
            if _cv_users == 0:
                cv2.setNumThreads(_cv_threads)
