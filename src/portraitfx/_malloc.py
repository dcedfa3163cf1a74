"""Keep glibc's allocator from handing big frame buffers back to the kernel.

Video effects allocate and free many arrays of a few hundred kilobytes to a few
megabytes per frame. With glibc's defaults each one is a fresh ``mmap`` (or the
heap is trimmed after it is freed), so every frame pays page faults for memory it
just released: measured as a third of the CPU time of a face swap on 720p video.
:func:`tune_allocator` raises the mmap and trim thresholds once per process, so the
memory is reused instead. It does nothing off glibc, or when ``MALLOC_*``
variables were set by the user, and it can be turned off with
``PORTRAITFX_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds for this process (idempotent). Returns True if applied."""
    global _done
    if _done:
        return True
    _done = True
    if not sys.platform.startswith("linux") or os.environ.get("PORTRAITFX_MALLOC_TUNING", "1") == "0":
        return False
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False  # the user tuned it already
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
