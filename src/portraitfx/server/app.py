"""The portraitfx HTTP API (FastAPI): effects on images, jobs for videos.

Endpoints (all but ``/healthz``, ``/openapi.json`` and ``/docs`` need the token when one is set):

* ``GET /healthz`` — liveness.
* ``GET /v1/effects``, ``GET /v1/effects/{name}`` — effects, their options and uploads.
* ``POST /v1/effects/{name}`` — multipart: ``image`` (+ ``source`` photos for swap),
  options as form fields, ``format`` (png, jpeg, webp), ``max_faces``; the
  result image in the response. Identity-changing effects (swap) mark the result
  (watermark + metadata; header ``X-Portraitfx-Provenance``).
* ``POST /v1/jobs`` — multipart: ``video``, ``effect``, options; 202 with the job.
  ``GET /v1/jobs``, ``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/result`` (MP4, 409
  until done), ``DELETE /v1/jobs/{id}`` (cancel; a finished job is deleted).
* ``GET /openapi.json``, ``GET /docs``.

Example:
    >>> from portraitfx.server import ServerSettings, create_app
    >>> app = create_app(ServerSettings(data_dir="/tmp/pfx-server"))        # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import logging
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from portraitfx._version import __version__
from portraitfx.errors import (
    ConfigError,
    ImageTooLargeError,
    InputError,
    ModelError,
    ModelNotFoundError,
    NoFaceError,
    NoVideoStreamError,
    PortraitFxError,
    UnsupportedFormatError,
)
from portraitfx.server.effects import EffectSpec, describe_effect, parse_options, servable_effects
from portraitfx.server.jobs import Job, JobRunner, JobStore, job_dir, remove_job_files
from portraitfx.server.settings import ServerSettings
from portraitfx.server.uploads import FileRule, FormError, ParsedForm, UploadedFile, read_form, remove_files
from portraitfx.server.work import ImageResult, ImageTask, QueueFull, WorkQueue, process_image

__all__ = ["ServerSettings", "create_app"]

log = logging.getLogger("portraitfx.server")

FORMATS = ("png", "jpeg", "webp")
MAX_FACES = 32
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_VIDEO_SUFFIX = {"MP4": ".mp4", "MOV": ".mov", "MKV": ".mkv", "AVI": ".avi", "MPEG-TS": ".ts", "MPEG": ".mpg",
                 "FLV": ".flv", "ASF": ".wmv", "M4A": ".mp4", "OGG": ".ogv"}  # fmt: skip


# --------------------------------------------------------------------------- response models


class ErrorResponse(BaseModel):
    """Every error: a short code and a one-line message."""

    error: str = Field(description="machine-readable code, e.g. 'upload_too_large', 'no_face'")
    detail: str = Field(description="what went wrong, in one line")


class Health(BaseModel):
    status: str = Field(description="'ok'")
    version: str


class OptionInfo(BaseModel):
    name: str
    type: str = Field(description="boolean, integer, number or string")
    default: bool | int | float | str | None = None
    nullable: bool = Field(False, description="'none' sets it to null")
    choices: list[str | int] | None = None
    description: str = ""


class UploadInfo(BaseModel):
    name: str
    required: bool
    max_count: int
    description: str


class EffectInfo(BaseModel):
    name: str
    description: str
    identity_changing: bool = Field(description="results are marked as generated (watermark + metadata)")
    options: list[OptionInfo]
    uploads: list[UploadInfo] = Field(description="image uploads besides the 'image' or 'video' field")


class EffectList(BaseModel):
    effects: list[EffectInfo]


class JobInfo(BaseModel):
    id: str
    effect: str
    options: dict[str, Any]
    status: str = Field(description="queued, running, done, failed or cancelled")
    progress: float = Field(description="0..1 (approximate while running)")
    error: str | None = None
    error_type: str | None = None
    attempts: int = Field(description="how many times the job was started (it restarts after a server crash)")
    frames: int | None = None
    faces: int | None = None
    has_audio: bool
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result_url: str | None = Field(None, description="where to download the result once done")


class JobList(BaseModel):
    jobs: list[JobInfo]


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered with ``status`` and ``{"error": code, "detail": message}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _code(err: BaseException) -> str:
    name = type(err).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def status_for(err: PortraitFxError) -> int:
    """The HTTP status of a portraitfx error: the client's fault (4xx) or the server's (5xx)."""
    if isinstance(err, ImageTooLargeError):
        return 413
    if isinstance(err, (UnsupportedFormatError, NoVideoStreamError)):
        return 415
    if isinstance(err, InputError):
        return 400
    if isinstance(err, (ConfigError, NoFaceError, ModelNotFoundError)):
        return 422
    if isinstance(err, ModelError):
        return 500
    return 500


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": _one_line(message)}, status_code=status, headers=headers)


_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 404, 408, 409, 413, 415, 422, 429, 500, 503, 504)
}


# --------------------------------------------------------------------------- the server state


class ApiServer:
    """What the app holds: settings, data folder, worker queue, job store and runner."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.root = settings.root
        self.tmp = self.root / "tmp"
        self.work: WorkQueue | None = None
        self.store: JobStore | None = None
        self.runner: JobRunner | None = None
        self._lock_fd: int | None = None
        self.started = False

    def start(self) -> None:
        """Create folders, take the data folder's lock, recover jobs, start the workers."""
        self._lock_fd = lock_data_dir(self.root)
        shutil.rmtree(self.tmp, ignore_errors=True)  # nothing can be in flight before we start
        self.tmp.mkdir(parents=True, exist_ok=True)
        (self.root / "jobs").mkdir(exist_ok=True)
        self.store = JobStore(self.root / "jobs.sqlite3")
        for note in self.store.recover(self.root, self.settings.job_attempts):
            log.warning(note)
        self.work = WorkQueue(self.settings.workers, self.settings.queue_size, self.settings.cache_effects)
        self.runner = JobRunner(self.store, self.root, self.settings)
        if self.settings.run_jobs:
            self.runner.start()
        self.started = True

    def stop(self) -> None:
        """Stop the runner (a running job is queued again), finish image work, close everything."""
        self.started = False
        if self.runner is not None and self.settings.run_jobs:
            self.runner.stop()
        if self.work is not None:
            self.work.shutdown()
        if self.store is not None:
            self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def lock_data_dir(root: Path) -> int:
    """Create ``root`` and take its lock (one server per data folder); return the lock's fd.

    Raises:
        ConfigError: another running server holds it.
    """
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(f"the data folder '{root}' is in use by another running server") from None
    return fd


def _check_settings(settings: ServerSettings) -> None:
    if settings.workers > 1:
        from numba import config

        import portraitfx._numba  # noqa: F401  (sets the threading layer)

        if str(config.THREADING_LAYER).lower() == "workqueue":
            raise ConfigError(
                "workers > 1 needs NUMBA_THREADING_LAYER=omp or tbb: numba's workqueue layer serves one "
                "parallel call per process at a time"
            )


# --------------------------------------------------------------------------- helpers


def _server(request: Request) -> ApiServer:
    server: ApiServer = request.app.state.pfx
    if not server.started:
        raise ApiError(503, "not_started", "the server is starting or stopping; try again")
    return server


def _auth_dependency(settings: ServerSettings) -> Callable[[Request], None]:
    token = settings.token.encode() if settings.token else None

    def check(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("x-api-token")
        if given is None:
            scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        if given is None or not hmac.compare_digest(given.encode(), token):
            raise ApiError(
                401,
                "unauthorized",
                "a valid API token is required (Authorization: Bearer <token> or X-API-Token: <token>)",
                {"WWW-Authenticate": "Bearer"},
            )

    return check


def _spec(name: str) -> EffectSpec:
    try:
        return describe_effect(name)
    except ModelNotFoundError as err:
        raise ApiError(404, "unknown_effect", str(err)) from None


def _effect_info(spec: EffectSpec) -> EffectInfo:
    return EffectInfo(
        name=spec.name,
        description=spec.description,
        identity_changing=spec.identity_changing,
        options=[
            OptionInfo(
                name=o.name,
                type=o.type,
                default=o.default,
                nullable=o.nullable,
                choices=list(c) if (c := o.allowed()) is not None else None,
                description=o.description,
            )
            for o in spec.options
        ],
        uploads=[
            UploadInfo(name=u.name, required=u.required, max_count=u.max_count, description=u.description)
            for u in spec.uploads
        ],
    )


def _check_image_upload(item: UploadedFile) -> None:
    from portraitfx.io.images import READABLE_FORMATS, sniff

    if item.size == 0:
        raise ApiError(400, "empty_upload", f"the {item.field!r} upload is empty (0 bytes)")
    found = sniff(item.head)
    if found.kind != "image":
        hint = "; send videos to POST /v1/jobs" if found.kind == "video" else ""
        raise ApiError(
            415, "not_an_image", f"the {item.field!r} upload is {found.description}, not an image{hint}"
        )
    if found.format not in READABLE_FORMATS:
        raise ApiError(
            415,
            "unsupported_image",
            f"the {item.field!r} upload is {found.description}, which the server cannot read; send PNG or JPEG",
        )


def _int_field(form: ParsedForm, name: str, default: int, low: int, high: int) -> int:
    raw = form.fields.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "config", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(422, "config", f"{name} must be within {low}..{high}, got {value}")
    return value


def _uploads_of(spec: EffectSpec, form: ParsedForm, main_field: str) -> dict[str, list[Path]]:
    """The effect's extra uploads (checked as images); unknown file fields are refused."""
    wanted = {u.name: u for u in spec.uploads}
    for name in form.files:
        if name != main_field and name not in wanted:
            raise ApiError(422, "unexpected_file", f"effect {spec.name!r} takes no {name!r} upload")
    out: dict[str, list[Path]] = {}
    for upload in spec.uploads:
        items = form.files.get(upload.name, [])
        if upload.required and not items:
            raise ApiError(
                422,
                "missing_upload",
                f"effect {spec.name!r} needs a {upload.name!r} upload: {upload.description}",
            )
        for item in items:
            _check_image_upload(item)
        if items:
            out[upload.name] = [i.path for i in items]
    return out


def _prefix(request: Request) -> str:
    """Where the app is mounted (``""`` when it is the whole server)."""
    return str(request.scope.get("root_path") or "").rstrip("/")


def _iso(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _job_info(job: Job, prefix: str = "") -> JobInfo:
    return JobInfo(
        id=job.id,
        effect=job.effect,
        options=job.options,
        status=job.status,
        progress=round(job.progress, 4),
        error=job.error,
        error_type=job.error_type,
        attempts=job.attempts,
        frames=job.frames,
        faces=job.faces,
        has_audio=job.has_audio,
        created_at=_iso(job.created_at),  # type: ignore[arg-type]
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        result_url=f"{prefix}/v1/jobs/{job.id}/result" if job.status == "done" else None,
    )


def _form_schema(spec: EffectSpec | None, main: str, main_doc: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of an effect endpoint (multipart form)."""
    binary = {"type": "string", "format": "binary"}
    props: dict[str, Any] = {main: {**binary, "description": main_doc}, **extra}
    required = [main, *[k for k, v in extra.items() if v.pop("x-required", False)]]
    if spec is not None:
        for u in spec.uploads:
            schema = (
                {**binary}
                if u.max_count == 1
                else {"type": "array", "items": binary, "maxItems": u.max_count}
            )
            props[u.name] = {**schema, "description": u.description}
            if u.required:
                required.append(u.name)
        for o in spec.options:
            schema: dict[str, Any] = {"type": o.type, "description": o.description}
            if o.default is not None:
                schema["default"] = o.default
            if (choices := o.allowed()) is not None:
                schema["enum"] = list(choices)
            if o.nullable:
                schema = {"anyOf": [schema, {"type": "null"}], "description": o.description}
            props[o.name] = schema
    body: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if spec is None:
        body["additionalProperties"] = {
            "type": "string",
            "description": "effect options (see GET /v1/effects)",
        }
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}


def _image_extra() -> dict[str, Any]:
    return {
        "format": {"type": "string", "enum": list(FORMATS), "default": "png", "description": "result format"},
        "max_faces": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_FACES,
            "default": 8,
            "description": "most faces to change",
        },
    }


# --------------------------------------------------------------------------- endpoints


async def _apply_effect(request: Request, name: str) -> Response:
    server = _server(request)
    settings = server.settings
    spec = _spec(name)
    rules = {"image": FileRule(settings.max_image_bytes)}
    rules.update({u.name: FileRule(settings.max_image_bytes, u.max_count) for u in spec.uploads})
    form = await read_form(
        request.headers, request.stream(), rules, server.tmp, timeout=settings.upload_timeout
    )
    future: Future | None = None
    try:
        images = form.files.get("image")
        if not images:
            raise ApiError(422, "missing_upload", "send the picture as a file in the form field 'image'")
        _check_image_upload(images[0])
        uploads = _uploads_of(spec, form, "image")
        fmt = (form.fields.get("format") or "png").strip().lower()
        fmt = {"jpg": "jpeg"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise ApiError(422, "config", f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        task = ImageTask(
            effect=name,
            options=parse_options(spec, form.fields),
            image=images[0].path,
            uploads=uploads,
            format=fmt,
            max_faces=_int_field(form, "max_faces", 8, 1, MAX_FACES),
            max_pixels=settings.max_image_pixels,
            out_dir=server.tmp,
        )
        assert server.work is not None
        try:
            future = server.work.submit(process_image, task)
        except QueueFull as full:
            raise ApiError(
                429,
                "busy",
                f"the server is busy ({server.work.capacity} requests in progress); retry in {full.retry_after} s",
                {"Retry-After": str(full.retry_after)},
            ) from None
        try:
            result: ImageResult = await asyncio.wait_for(
                asyncio.wrap_future(future), settings.request_timeout
            )
        except TimeoutError:
            future.add_done_callback(_drop_result)
            raise ApiError(
                504, "timeout", f"the effect did not finish within {settings.request_timeout:g} s"
            ) from None
    finally:
        if future is None:
            form.cleanup()
        else:  # the worker may still read the uploads: remove them once it is done with them
            paths = form.paths()
            future.add_done_callback(lambda _f: remove_files(paths))
    headers = {
        "X-Portraitfx-Faces": str(result.faces),
        "X-Portraitfx-Provenance": result.provenance or "none",
        "X-Portraitfx-Seconds": f"{result.seconds:.3f}",
        "Cache-Control": "no-store",
    }
    return FileResponse(
        result.path,
        media_type=result.media_type,
        headers=headers,
        filename=f"{name}{result.path.suffix}",
        content_disposition_type="inline",
        background=BackgroundTask(remove_files, [result.path]),
    )


def _drop_result(future: Future) -> None:
    """Remove the file of an image result nobody waits for any more."""
    if not future.cancelled() and future.exception() is None:
        remove_files([future.result().path])


async def _submit_job(request: Request) -> JSONResponse:
    server = _server(request)
    settings = server.settings
    assert server.store is not None and server.runner is not None
    queued = server.store.count("queued")
    if queued >= settings.max_queued_jobs:
        raise ApiError(429, "busy", f"{queued} jobs are waiting already; retry later", {"Retry-After": "30"})
    rules = {"video": FileRule(settings.max_video_bytes)}
    for name in servable_effects():  # the effect is a form field: accept every effect's uploads, check later
        for u in describe_effect(name).uploads:
            rules.setdefault(u.name, FileRule(settings.max_image_bytes, u.max_count))
    form = await read_form(
        request.headers, request.stream(), rules, server.tmp, timeout=settings.upload_timeout
    )
    try:
        effect = (form.fields.get("effect") or "").strip()
        if not effect:
            raise ApiError(
                422,
                "missing_field",
                f"name the effect in the form field 'effect' ({', '.join(servable_effects())})",
            )
        spec = _spec(effect)
        videos = form.files.get("video")
        if not videos:
            raise ApiError(422, "missing_upload", "send the video as a file in the form field 'video'")
        video = videos[0]
        uploads = _uploads_of(spec, form, "video")
        options = parse_options(spec, form.fields)
        max_faces = _int_field(form, "max_faces", 8, 1, MAX_FACES)
        suffix, info = await asyncio.to_thread(_check_video, video, settings)
        job_id = uuid.uuid4().hex
        folder = job_dir(server.root, job_id)
        folder.mkdir(parents=True)
        rel_uploads: dict[str, list[str]] = {}
        try:
            os.replace(video.path, folder / f"input{suffix}")
            for field_name, paths in uploads.items():
                for i, p in enumerate(paths):
                    target = folder / f"{field_name}-{i}.upload"
                    os.replace(p, target)
                    rel_uploads.setdefault(field_name, []).append(str(target.relative_to(server.root)))
            job = Job(
                id=job_id,
                effect=effect,
                options=options,
                uploads=rel_uploads,
                input=str((folder / f"input{suffix}").relative_to(server.root)),
                max_faces=max_faces,
                frame_count=int(info.frame_count or 0),
                has_audio=bool(info.has_audio),
            )
            server.store.add(job)
        except BaseException:
            remove_job_files(server.root, job_id)
            raise
    finally:
        form.cleanup()
    server.runner.wake()
    stored = server.store.get(job_id) or job
    return JSONResponse(
        _job_info(stored, _prefix(request)).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"{_prefix(request)}/v1/jobs/{job_id}"},
    )


def _check_video(video: UploadedFile, settings: ServerSettings) -> tuple[str, Any]:
    """Sniff and probe an uploaded video; return its suffix and :class:`VideoInfo`."""
    from portraitfx.io.images import sniff
    from portraitfx.io.video import probe_video

    if video.size == 0:
        raise ApiError(400, "empty_upload", "the 'video' upload is empty (0 bytes)")
    found = sniff(video.head)
    if found.kind not in ("video", "audio") or found.format not in _VIDEO_SUFFIX:
        hint = "; send pictures to POST /v1/effects/{name}" if found.kind == "image" else ""
        raise ApiError(415, "not_a_video", f"the 'video' upload is {found.description}, not a video{hint}")
    suffix = _VIDEO_SUFFIX[found.format]
    probe_path = video.path.with_suffix(suffix)
    os.replace(video.path, probe_path)
    video.path = probe_path
    try:
        info = probe_video(probe_path)
    except PortraitFxError as err:
        message = (
            _one_line(str(err))
            .replace(f"'{probe_path}'", "the 'video' upload")
            .replace(str(probe_path), "the 'video' upload")
        )
        raise ApiError(status_for(err), _code(err), message) from None
    if info.width * info.height > settings.max_video_pixels:
        raise ApiError(
            413, "video_too_large",
            f"the video is {info.width}x{info.height}, over the limit of {settings.max_video_pixels:,} pixels per frame",
        )  # fmt: skip
    if info.duration > settings.max_video_seconds:
        raise ApiError(
            413, "video_too_long",
            f"the video lasts {info.duration:.0f} s, over the limit of {settings.max_video_seconds:g} s",
        )  # fmt: skip
    return suffix, info


# --------------------------------------------------------------------------- the app


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the API app; its lifespan starts and stops the workers and the job runner.

    Raises:
        ConfigError: settings that cannot work (e.g. ``workers > 1`` with numba's workqueue layer).
    """
    settings = settings or ServerSettings()
    _check_settings(settings)
    server = ApiServer(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(server.start)
        try:
            yield
        finally:
            await asyncio.to_thread(server.stop)

    app = FastAPI(
        title="portraitfx",
        version=__version__,
        description=(
            "AI portrait effects over HTTP: effects on images (the result in the response) and jobs for "
            "videos. Face swap results are marked as generated (invisible watermark + metadata); swap only "
            "with the consent of the people shown."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.pfx = server
    auth = Depends(_auth_dependency(settings))

    # -- errors -------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, err.code, err.message, err.headers)

    @app.exception_handler(FormError)
    async def _form_error(_request: Request, err: FormError) -> JSONResponse:
        headers = {"Connection": "close"} if err.status in (408, 413) else None
        return _error(err.status, err.code, err.message, headers)

    @app.exception_handler(PortraitFxError)
    async def _pfx_error(_request: Request, err: PortraitFxError) -> JSONResponse:
        status = status_for(err)
        if status >= 500:
            log.error("server-side error: %s", err)
            return _error(
                status, _code(err), f"the server could not do this ({type(err).__name__}); see its log"
            )
        return _error(status, _code(err), str(err))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return _error(422, "validation", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return _error(err.status_code, code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, err: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=err)
        return _error(500, "internal", f"internal server error ({type(err).__name__})")

    # -- open endpoints -----------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["server"])
    async def healthz() -> Health:
        """Liveness: answers as long as the server runs (no token needed)."""
        return Health(status="ok", version=__version__)

    # The spec and its Swagger UI page are open even with a token (they hold nothing
    # secret, and a browser could not send the token to fetch them); with a token the
    # spec declares it, so the page's "Authorize" button sends it with every call.
    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        spec = app.openapi()
        if prefix := _prefix(request):  # mounted inside another app
            spec = {**spec, "servers": [{"url": prefix}]}
        if settings.token:
            components = dict(spec.get("components", {}))
            components["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <token>",
                },
                "apiToken": {"type": "apiKey", "in": "header", "name": "X-API-Token"},
            }
            spec = {**spec, "components": components, "security": [{"bearer": []}, {"apiToken": []}]}
        return JSONResponse(spec)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{_prefix(request)}/openapi.json", title="portraitfx API")

    # -- effects ------------------------------------------------------------------------
    router = APIRouter(prefix="/v1", dependencies=[auth], responses=_ERRORS)

    @router.get("/effects", response_model=EffectList, tags=["effects"])
    async def list_effects() -> EffectList:
        """Every effect with its options (form fields) and extra uploads."""
        specs = await asyncio.to_thread(lambda: [describe_effect(n) for n in servable_effects()])
        return EffectList(effects=[_effect_info(s) for s in specs])

    @router.get("/effects/{name}", response_model=EffectInfo, tags=["effects"])
    async def get_effect(name: str) -> EffectInfo:
        """One effect's options and uploads."""
        return _effect_info(await asyncio.to_thread(_spec, name))

    image_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "the result image; header X-Portraitfx-Provenance names the effect it is marked "
            "with ('none' for effects that do not change identity), X-Portraitfx-Faces the faces changed",
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/png", "image/jpeg", "image/webp")
            },
        }
    }
    image_doc = "the picture (JPEG, PNG, WebP, TIFF, BMP, GIF, ...); its type is sniffed from its bytes"
    for effect_name in servable_effects():
        spec = describe_effect(effect_name)

        def route(name: str, spec: EffectSpec) -> Callable[[Request], Any]:
            async def apply(request: Request) -> Response:
                return await _apply_effect(request, name)

            apply.__doc__ = f"Apply {name} to a picture: {spec.description}"
            return apply

        router.add_api_route(
            f"/effects/{effect_name}",
            route(effect_name, spec),
            methods=["POST"],
            response_class=Response,
            responses=image_responses,
            tags=["effects"],
            operation_id=f"apply_{effect_name}",
            summary=f"Apply {effect_name} to a picture",
            openapi_extra=_form_schema(spec, "image", image_doc, _image_extra()),
        )

    @router.post(
        "/effects/{name}",
        response_class=Response,
        responses=image_responses,
        tags=["effects"],
        summary="Apply any effect to a picture",
        openapi_extra=_form_schema(None, "image", image_doc, _image_extra()),
    )
    async def apply_effect(request: Request, name: str) -> Response:
        """Apply the effect ``name`` (options as form fields; see ``GET /v1/effects``)."""
        return await _apply_effect(request, name)

    # -- jobs ---------------------------------------------------------------------------
    job_extra = {
        "effect": {
            "type": "string",
            "enum": servable_effects(),
            "description": "the effect",
            "x-required": True,
        },
        "max_faces": _image_extra()["max_faces"],
        "source": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "maxItems": 4,
            "description": "swap: photo(s) of the source person (only with their consent)",
        },
    }

    @router.post(
        "/jobs",
        status_code=202,
        response_model=JobInfo,
        tags=["jobs"],
        openapi_extra=_form_schema(
            None,
            "video",
            "the video (MP4, MOV, MKV, WebM, AVI, ...); the result is an MP4 with its audio",
            job_extra,
        ),
    )
    async def submit_job(request: Request) -> JSONResponse:
        """Queue a video job: the effect and its options as form fields. Answers 202 with the job."""
        return await _submit_job(request)

    @router.get("/jobs", response_model=JobList, tags=["jobs"])
    async def list_jobs(request: Request, limit: int = 50) -> JobList:
        """The latest jobs, newest first."""
        server = _server(request)
        assert server.store is not None
        jobs = server.store.recent(max(1, min(limit, 500)))
        return JobList(jobs=[_job_info(j, _prefix(request)) for j in jobs])

    def _job(request: Request, job_id: str) -> tuple[ApiServer, Job]:
        server = _server(request)
        assert server.store is not None
        job = server.store.get(job_id) if _JOB_ID.match(job_id) else None
        if job is None:
            raise ApiError(404, "unknown_job", f"no job {job_id!r}")
        return server, job

    @router.get("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
    async def get_job(request: Request, job_id: str) -> JobInfo:
        """A job's status and progress."""
        return _job_info(_job(request, job_id)[1], _prefix(request))

    @router.get(
        "/jobs/{job_id}/result",
        response_class=FileResponse,
        tags=["jobs"],
        responses={200: {"description": "the result video", "content": {"video/mp4": {}}}},
    )
    async def get_result(request: Request, job_id: str) -> FileResponse:
        """Download a finished job's video (409 until it is done)."""
        server, job = _job(request, job_id)
        if job.status != "done" or not job.result:
            why = f": {job.error}" if job.error else ""
            progress = f" ({job.progress:.0%})" if job.status == "running" else ""
            raise ApiError(409, "not_done", f"job {job_id} is {job.status}{progress}{why}")
        path = server.root / job.result
        if not path.is_file():
            raise ApiError(409, "gone", f"the result of job {job_id} is no longer on the server")
        return FileResponse(path, media_type="video/mp4", filename=f"{job.effect}-{job_id}.mp4")

    @router.delete("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
    async def delete_job(request: Request, job_id: str) -> JobInfo:
        """Cancel a queued or running job (a running one stops now, its output is discarded);
        a finished job is deleted with its files (the answer is its last state)."""
        server, job = _job(request, job_id)
        assert server.store is not None and server.runner is not None
        if job.status in ("queued", "running"):
            await asyncio.to_thread(server.runner.cancel, job_id)
            return _job_info(server.store.get(job_id) or job, _prefix(request))
        await asyncio.to_thread(remove_job_files, server.root, job_id)
        server.store.delete(job_id)
        return _job_info(job, _prefix(request))

    app.include_router(router)
    return app
