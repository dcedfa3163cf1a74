"""Keep native libraries' start-up chatter out of the CLI's stderr.

MediaPipe (absl, TFLite) writes log lines such as ``INFO: Created TensorFlow Lite
XNNPACK delegate`` straight to file descriptor 2, sometimes from its own threads
after a call has returned. For the CLI, fd 2 is routed through a pipe and a
thread drops those known lines and forwards everything else; Python's own
``sys.stderr`` keeps writing to the real terminal (so progress bars and colour
detection work as before).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator

NOISE = (
    b"INFO: Created TensorFlow Lite",
    b"WARNING: All log messages before absl::InitializeLog",
    b"W0000 ",
    b"I0000 ",
)


def _pump(read_fd: int, out_fd: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line.startswith(NOISE):
                os.write(out_fd, line + b"\n")
    if pending and not pending.startswith(NOISE):
        os.write(out_fd, pending)


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Filter fd 2 inside the block (no-op where fd 2 cannot be redirected)."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_fd, write_fd = os.pipe()
    except (OSError, ValueError, AttributeError):
        yield
        return
    saved_stderr = sys.stderr
    py_err = io.TextIOWrapper(
        os.fdopen(os.dup(real), "wb", buffering=0), encoding=getattr(saved_stderr, "encoding", None) or "utf-8",
        errors="backslashreplace", line_buffering=True, write_through=True,
    )  # fmt: skip
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_pump, args=(read_fd, real), name="portraitfx-stderr", daemon=True)
    thread.start()
    sys.stderr = py_err
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            py_err.flush()
        sys.stderr = saved_stderr
        os.dup2(real, 2)  # closes the pipe's last write end: the pump sees EOF
        thread.join(timeout=2.0)
        os.close(read_fd)
        os.close(real)
        with contextlib.suppress(Exception):
            py_err.close()
