"""Settings of the HTTP API server (:func:`portraitfx.server.create_app`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from portraitfx.errors import ConfigError

__all__ = ["MB", "ServerSettings"]

MB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """What the server accepts and how much work it takes on.

    Attributes:
        data_dir: where uploads, job files and the job database live (default
            ``$PORTRAITFX_HOME/server``). Nothing a client sends is ever used as a
            path: uploads get server-made names inside this folder.
        max_image_bytes: largest image upload (each file), bytes (413 above).
        max_video_bytes: largest video upload, bytes (413 above).
        max_image_pixels: largest image, pixels, checked from the header before
            decoding (413 above; decompression bombs stop here).
        max_video_pixels: largest video frame, pixels (413 above).
        max_video_seconds: longest video, seconds (413 above).
        queue_size: image requests that may wait for a worker; when full, new ones
            get 429 with ``Retry-After``.
        workers: image requests processed at once (worker threads). Effects are
            CPU-heavy and numba's ``workqueue`` layer serves one parallel call per
            process, so more than 1 needs ``NUMBA_THREADING_LAYER=omp`` or ``tbb``.
        request_timeout: seconds an image request may take, queueing included
            (504 after that; work already started finishes in the background
            and keeps its queue slot until then, so nothing piles up).
        upload_timeout: seconds a client may take to send a request body (408 after).
        token: when set, every endpoint except ``/healthz`` needs it, as
            ``Authorization: Bearer <token>`` or ``X-API-Token: <token>`` (401 without).
        max_queued_jobs: video jobs that may wait; 429 beyond that.
        job_timeout: seconds a video job may run before it is stopped and failed.
        job_attempts: how many times a job is started before it is given up (a job
            the server was stopped or crashed in is started again from the start).
        job_retention: seconds finished jobs (and their result files) are kept.
        run_jobs: run video jobs; ``False`` only stores them (tests, or a front end
            whose jobs another server instance on the same folder runs).
        cache_effects: effect instances kept for reuse, keyed by (name, options).
    """

    data_dir: Path | None = None
    max_image_bytes: int = 25 * MB
    max_video_bytes: int = 500 * MB
    max_image_pixels: int = 40_000_000
    max_video_pixels: int = 3840 * 2160
    max_video_seconds: float = 600.0
    queue_size: int = 8
    workers: int = 1
    request_timeout: float = 120.0
    upload_timeout: float = 600.0
    token: str | None = None
    max_queued_jobs: int = 32
    job_timeout: float = 3600.0
    job_attempts: int = 2
    job_retention: float = 24 * 3600.0
    run_jobs: bool = True
    cache_effects: int = 4

    def __post_init__(self) -> None:
        positive_ints = ("max_image_bytes", "max_video_bytes", "max_image_pixels", "max_video_pixels",
                         "workers", "max_queued_jobs", "job_attempts", "cache_effects")  # fmt: skip
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.queue_size, bool) or not isinstance(self.queue_size, int) or self.queue_size < 0:
            raise ConfigError(f"queue_size must be 0 or more, got {self.queue_size!r}")
        for name in (
            "max_video_seconds",
            "request_timeout",
            "upload_timeout",
            "job_timeout",
            "job_retention",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.token is not None and (not isinstance(self.token, str) or len(self.token.strip()) < 8):
            raise ConfigError("the API token must be a string of at least 8 characters")

    @property
    def root(self) -> Path:
        """The data folder, resolved (``$PORTRAITFX_HOME/server`` by default)."""
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser().resolve()
        from portraitfx._home import home_dir

        return (home_dir() / "server").resolve()
