"""The child process that runs one video job (started by :class:`~portraitfx.server.jobs.JobRunner`).

Protocol: the job arrives as one JSON line on stdin (effect, options, file paths
chosen by the server); events leave as JSON lines on the original stdout
(``progress``, then ``done`` or ``error``). Everything else the libraries print goes
to stderr (the job's log file). When stdin closes — the server stopped or died —
the process exits at once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO


def _watch_parent() -> None:
    """Exit as soon as the server closes our stdin (or dies)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(75)


class _Watched:
    """An effect that reports progress each time a frame reaches it; everything else passes through."""

    def __init__(self, effect: Any, frame_count: int, emit: Any) -> None:
        self._effect = effect
        self._frame_count = max(int(frame_count), 1)
        self._emit = emit
        self._last = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._effect, name)

    def _tick(self, state: Any) -> None:
        now = time.monotonic()
        if state is not None and now - self._last >= 0.5:
            self._last = now
            self._emit(
                {"event": "progress", "progress": min((state.frame_index + 1) / self._frame_count, 0.99)}
            )

    def apply(self, frame: Any, faces: Any, state: Any = None) -> Any:
        self._tick(state)
        return self._effect.apply(frame, faces, state)


class _WatchedMark(_Watched):
    """:class:`_Watched` for effects that can leave the watermark to the runtime's last stage."""

    def apply(self, frame: Any, faces: Any, state: Any = None, mark: bool = True) -> Any:
        self._tick(state)
        return self._effect.apply(frame, faces, state, mark=mark)


def _run(spec: dict[str, Any], emit: Any) -> dict[str, Any]:
    import inspect

    from portraitfx.face.analyze import AnalyzeOptions
    from portraitfx.runtime.apply import apply_to_file
    from portraitfx.server.work import WorkerCache

    cache = WorkerCache(effect_slots=1)
    uploads = {k: [Path(p) for p in v] for k, v in spec["uploads"].items()}
    effect = cache.effect(spec["effect"], spec["options"], uploads, int(spec["max_pixels"]))
    try:
        wrapper = _WatchedMark if "mark" in inspect.signature(effect.apply).parameters else _Watched
        watched = wrapper(effect, int(spec.get("frame_count") or 0), emit)
        report = apply_to_file(
            watched,  # type: ignore[arg-type]
            spec["input"],
            spec["output"],
            options=AnalyzeOptions(max_faces=int(spec["max_faces"])),
            progress=False,
        )
    finally:
        cache.close()
    return {
        "event": "done",
        "frames": report.frames,
        "faces": report.faces,
        "seconds": report.seconds,
        "media_seconds": report.media_seconds,
        "warnings": report.warnings,
    }


def main() -> int:
    """Run the job read from stdin; report on the original stdout."""
    # events go to a private copy of stdout; fd 1 itself now leads to stderr (the log)
    events: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        with lock:
            events.write(json.dumps(event) + "\n")
            events.flush()

    line = sys.stdin.readline()
    threading.Thread(target=_watch_parent, name="parent-watch", daemon=True).start()
    try:
        spec = json.loads(line)
    except ValueError:
        emit({"event": "error", "type": "ConfigError", "message": "no job description received"})
        return 2
    from portraitfx._tuning import tune_process
    from portraitfx.errors import PortraitFxError

    tune_process()
    emit({"event": "progress", "progress": 0.0})
    try:
        emit(_run(spec, emit))
    except PortraitFxError as err:
        message = " ".join(str(err).split()) or type(err).__name__
        emit({"event": "error", "type": type(err).__name__, "message": _no_paths(message, spec)})
        return 1
    except Exception as err:
        import traceback

        traceback.print_exc()
        emit({"event": "error", "type": "internal", "message": f"internal error ({type(err).__name__})"})
        return 1
    return 0


def _no_paths(message: str, spec: dict[str, Any]) -> str:
    """The message with the server's file paths replaced by what the client knows them as."""
    message = message.replace(spec["input"], "the video").replace(spec["output"], "the result")
    for field, paths in spec.get("uploads", {}).items():
        for p in paths:
            message = message.replace(p, f"the {field!r} upload")
    return message.replace("'the video'", "the video").replace("'the result'", "the result")


if __name__ == "__main__":
    sys.exit(main())
