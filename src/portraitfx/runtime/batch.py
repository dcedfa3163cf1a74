"""Batch runs on Ray: one effect over many images and videos, resumable, on one machine or a cluster.

:func:`run_batch` lists the inputs (a folder, a glob or one file), skips what an
earlier run finished, and hands the rest to a pool of Ray actors. Each actor is one
worker process that builds the effect once and then calls
:func:`~portraitfx.runtime.apply.apply_to_file` for one file at a time (images
and whole videos are the units), so outputs, provenance marks and error messages
are those of ``portraitfx stylize``/``swap``. Every finished file appends one line
to the manifest ``OUT_DIR/portraitfx-batch.jsonl`` (see :func:`read_manifest`);
a file that fails is recorded there and the run goes on.

Resume: a file is skipped when its latest manifest line says ``done`` (and its
output exists) or ``failed`` (unless ``retry_failed``), for the same input (size
and modification time) and the same settings (effect, options, ``require_faces``,
``max_faces``). Anything else is processed again and its output replaced
(outputs are written atomically, so an existing output is always complete).

Why Ray actors and not Ray Data's ``map_batches``: both were measured on this
2-core machine with the same worker class (``bench/bench_batch.py``), 100
portraits of 320 px, stylize pencil, about 17 ms of work each, so per-item
overhead decides. Ray Data (``ActorPoolStrategy``, ``batch_size=1``, one block per
file) gave its first result after 2.7 s and then ran at 39 files/s with 1 worker
and 38 with 2: its own per-batch bookkeeping was the bottleneck. Driving the
actors here: 60 and 106 files/s (1.76x), workers ready 1.4 s after the call.
Ray Data also fails (or retries) the whole dataset when a worker process dies,
where a batch must record that one file and go on; here the driver knows which
file a dead worker was on, records it, and starts a replacement worker.

Scheduling: every worker has ``IN_FLIGHT`` calls queued (it never waits for the
driver). Videos go one per call; images go in chunks of about ``CALL_SECONDS`` of
work (a Ray call costs a few ms, 15 % of a small image), never more than a
worker's share of what is left. Files go largest first (videos before images),
so the run does not end on one long video. If a worker dies, the files it had in
hand are queued again, each to run alone on an idle worker: only a file that kills
a worker that way (twice in all) is recorded as failed. The manifest gets a chunk's
lines when the chunk returns.

Two things each worker does besides building the effect once:

* **Face analysers are kept.** ``apply_to_file`` opens a fresh
  :class:`~portraitfx.face.analyze.FaceAnalyzer` for every image, which reloads
  MediaPipe's graphs (23 of the 37 ms a 320-px image took). Inside a worker the
  name ``FaceAnalyzer`` that ``apply_to_file`` looks up is pointed, for the length
  of one call, at one analyser per set of options, kept for the worker's life.
  The graphs run in still-image mode (no state between images): outputs are
  byte-identical. This goes once ``apply_to_file`` takes an ``analyzer``.
* **One thread per worker.** A worker owns one CPU (``num_cpus=1``), so numba,
  OpenCV and BLAS get one thread each, and numba runs on its ``omp`` layer (see
  :func:`_limit_threads`: with ``workqueue`` two workers slowed each other by 40-50 %).
  The models are warmed up on the built-in sample portrait before the first file.

Cluster use (``address=``): the inputs and ``out_dir`` must be visible at the same
paths on every node (a shared file system); portraitfx must be installed on every
node. Effect options that name files are read by the driver and sent to the
workers as data: a ``stylize`` style (name or ``.pfxstyle`` file) as the loaded
style pack, ``swap``'s source and reference photos as images. ``swap``'s
``model``/``restore`` ONNX files are not: they must exist on every node.

Example:
    >>> report = run_batch("photos/", "out/", "stylize", {"style": "pencil"}, workers=2)  # doctest: +SKIP
    >>> len(report.done), len(report.failed), f"{report.throughput:.1f} files/s"     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import hashlib
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from portraitfx.errors import ConfigError, InputError, OutputError, PortraitFxError
from portraitfx.runtime.apply import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = [
    "MANIFEST_NAME",
    "BatchItem",
    "BatchReport",
    "list_inputs",
    "portable_options",
    "read_manifest",
    "run_batch",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "portraitfx-batch.jsonl"
"""The manifest's file name inside the output folder: one JSON object per line."""

IN_FLIGHT = 2
"""Calls queued per worker: it starts the next one without waiting for the driver."""

CALL_SECONDS = 0.2
"""Images are sent in chunks of about this much work: a Ray call costs a few ms (of a 20-ms image)."""

MAX_CHUNK = 16
"""Most images in one call."""

RESTARTS_PER_WORKER = 2
"""Replacement workers started (per worker asked for) when worker processes die; a death that
pins down the file that caused it costs none (each file can take part in two deaths at most)."""

Status = Literal["done", "failed", "skipped"]


@dataclass
class BatchItem:
    """One input file of a batch run.

    Attributes:
        input: the input file.
        output: its output file.
        status: ``done`` (written in this run), ``failed`` (in this run) or
            ``skipped`` (finished by an earlier run: done, or failed when ``error`` is set).
        error: one line saying why it failed (``failed``, or ``skipped`` after an earlier failure).
        seconds: time its worker spent on it.
        faces: faces processed (summed over frames).
        frames: frames processed (1 for an image).
        warning: what the user should know (e.g. no face: the output is a copy).
        worker: ``host:pid`` of the worker process.
    """

    input: Path
    output: Path
    status: Status
    error: str | None = None
    seconds: float = 0.0
    faces: int = 0
    frames: int = 0
    warning: str | None = None
    worker: str | None = None


@dataclass
class BatchReport:
    """What :func:`run_batch` did.

    Attributes:
        items: every input, in the order it finished (skipped ones first).
        manifest: the manifest file.
        workers: worker processes that started (0 when there was nothing to do).
        seconds: wall time of the whole run (starting Ray included).
        setup_seconds: time until the first worker was ready (Ray, model loading, warm-up).
        work_seconds: time from then until the last file finished.
    """

    items: list[BatchItem] = field(default_factory=list)
    manifest: Path | None = None
    workers: int = 0
    seconds: float = 0.0
    setup_seconds: float = 0.0
    work_seconds: float = 0.0

    @property
    def done(self) -> list[BatchItem]:
        """Files written in this run."""
        return [i for i in self.items if i.status == "done"]

    @property
    def failed(self) -> list[BatchItem]:
        """Files that failed in this run."""
        return [i for i in self.items if i.status == "failed"]

    @property
    def skipped(self) -> list[BatchItem]:
        """Files an earlier run finished (done or failed)."""
        return [i for i in self.items if i.status == "skipped"]

    @property
    def failed_earlier(self) -> list[BatchItem]:
        """Skipped files whose earlier run failed (``retry_failed=True`` tries them again)."""
        return [i for i in self.items if i.status == "skipped" and i.error]

    @property
    def ok(self) -> bool:
        """True when every input has its output (nothing failed, now or earlier)."""
        return not self.failed and not self.failed_earlier

    @property
    def warnings(self) -> list[str]:
        """Warnings of the files done in this run."""
        return [i.warning for i in self.items if i.warning and i.status == "done"]

    @property
    def throughput(self) -> float:
        """Files processed (done or failed) per second of :attr:`work_seconds`."""
        n = len(self.done) + len(self.failed)
        return n / self.work_seconds if n and self.work_seconds > 0 else 0.0


# -- inputs and outputs ---------------------------------------------------------------------


def _glob_base(pattern: str) -> Path:
    """The folder a glob pattern starts from (its parts before the first wildcard)."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def list_inputs(
    inputs: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, suffix: str | None = None
) -> tuple[list[tuple[Path, Path]], list[BatchItem]]:
    """The ``(input, output)`` pairs of a batch, and the inputs refused for a clashing output name.

    ``inputs`` is a folder (the images and videos directly inside), a glob
    (``photos/**/*.jpg``: ``**`` reaches into subfolders; outputs keep the paths below
    the pattern's fixed part) or one file. Hidden files (a name starting with ``.``),
    files inside ``out_dir`` and files of other kinds are left out. ``suffix``
    (e.g. ``".png"``) replaces the extension of image outputs.

    Raises:
        InputError: nothing to process, or a folder/file that does not exist.
        OutputError: ``out_dir`` is the input folder, or a file.
    """
    text = os.fspath(inputs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output '{out}' is a file; give a folder")
    media = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    if suffix is not None:
        from portraitfx.io.images import SAVE_EXTENSIONS

        suffix = suffix if suffix.startswith(".") else f".{suffix}"
        if suffix.lower() not in SAVE_EXTENSIONS:
            raise ConfigError(f"suffix must be one of {', '.join(SAVE_EXTENSIONS)}, got '{suffix}'")
    path = Path(text).expanduser()
    if path.is_dir():
        if out.resolve() == path.resolve():
            raise OutputError(
                "the output folder must differ from the input folder (inputs are never overwritten)"
            )
        base, found = path, sorted(p for p in path.iterdir() if p.is_file())
    elif glob.has_magic(text):
        base = _glob_base(os.path.expanduser(text))
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        found = [p for p in found if p.is_file()]
    elif path.is_file():
        base, found = path.parent, [path]
    else:
        raise InputError(f"'{text}' is not a folder, a file or a glob that matches anything")
    out_abs = out.resolve()
    pairs: list[tuple[Path, Path]] = []
    refused: list[BatchItem] = []
    targets: dict[Path, Path] = {}
    for item in found:
        rel = item.relative_to(base) if item.is_relative_to(base) else Path(item.name)
        if item.suffix.lower() not in media or any(p.startswith(".") for p in rel.parts):
            continue
        if item.resolve().is_relative_to(out_abs):
            continue  # an output of this batch (the glob reaches into the output folder)
        target = out / rel
        if suffix and item.suffix.lower() in IMAGE_SUFFIXES:
            target = target.with_suffix(suffix)
        if target in targets:
            message = f"its output '{target.name}' is also {targets[target].name}'s; rename one"
            refused.append(BatchItem(item, target, "failed", error=message))
            continue
        targets[target] = item
        pairs.append((item, target))
    if not pairs and not refused:
        raise InputError(f"no images or videos in '{text}'")
    return pairs, refused


# -- manifest ------------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The latest manifest line for each output (keyed by its path relative to the output folder).

    The manifest is JSON Lines, one object per finished file::

        {"input": "/abs/in/a.jpg", "output": "a.jpg", "status": "done", "error": null,
         "warning": null, "seconds": 0.021, "faces": 1, "frames": 1, "effect": "stylize",
         "settings": "3f2a...", "input_size": 48211, "input_mtime_ns": 1700000000000000000,
         "worker": "host:1234", "finished": "2026-01-01T12:00:00Z"}

    Lines that do not parse (a line cut short by a crash) are ignored.
    """
    p = Path(path)
    rows: dict[str, dict[str, Any]] = {}
    if not p.is_file():
        return rows
    with open(p, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict) and isinstance(row.get("output"), str):
                    rows[row["output"]] = row
    return rows


class _Manifest:
    """Appends one line per finished file: a single ``write`` in append mode, then ``fsync``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self.fd).st_size
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":  # a line cut short: end it, so the next one parses
                    os.write(self.fd, b"\n")

    def append(self, row: Mapping[str, Any]) -> None:
        os.write(self.fd, (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fingerprint(value: Any) -> Any:
    """A JSON-able stand-in for an option value (arrays by content, objects by type and name)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _fingerprint(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fingerprint(v) for v in value]
    if hasattr(value, "tobytes") and hasattr(value, "shape"):
        return f"array{tuple(value.shape)}:{hashlib.sha256(value.tobytes()).hexdigest()[:16]}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, "name": getattr(value, "name", None)}
    return repr(value)


def _settings_key(effect: str, options: Mapping[str, Any], require_faces: bool, max_faces: int) -> str:
    text = json.dumps(
        {"effect": effect, "options": _fingerprint(dict(options)), "require_faces": require_faces,
         "max_faces": max_faces},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _input_stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


# -- options the workers can use anywhere ----------------------------------------------------


def portable_options(effect: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the files they name read here, so workers on other machines need no access.

    ``stylize``: ``style`` (a name or a ``.pfxstyle`` file) becomes the loaded style
    pack (a built-in style is built here on first use, once for all workers).
    ``swap``: ``source`` and ``reference`` photos become images. Other values are kept.
    """
    out = dict(options)
    if effect == "stylize" and "style" in out:
        from portraitfx.effects.stylize.pack import load_style

        out["style"] = load_style(out["style"])
    elif effect == "swap":
        from portraitfx.io.images import load_image

        def load(value: Any) -> Any:
            return load_image(value) if isinstance(value, (str, os.PathLike)) else value

        if isinstance(out.get("source"), (list, tuple)):
            out["source"] = [load(v) for v in out["source"]]
        elif out.get("source") is not None:
            out["source"] = load(out["source"])
        if out.get("reference") is not None:
            out["reference"] = load(out["reference"])
    return out


def _check_effect(effect: str, options: Mapping[str, Any]) -> None:
    """Build the effect once here, so a bad name or option fails before any worker starts."""
    from portraitfx.effects import create_effect

    made = create_effect(effect, **options)
    close = getattr(made, "close", None)
    if callable(close):
        close()


# -- the worker ------------------------------------------------------------------------------


def _limit_threads(threads: int) -> None:
    """``threads`` threads for numba, OpenCV and BLAS in this process.

    With one thread, numba's ``omp`` layer (if it loads) replaces ``workqueue``:
    workqueue hands every parallel loop to a pool thread even then, which cost a
    320-px image 32 ms of CPU for 18 ms of work and, with every core busy, slowed
    two workers to 26-28 ms per image; with omp the loop runs on the calling thread
    (two workers: 17.6-17.9 ms each, as alone). OpenMP's spinning workers, the
    reason for workqueue (see :mod:`portraitfx._numba`), do not exist with one thread.
    """
    import cv2

    import portraitfx._numba  # noqa: F401  (picks numba's threading layer before numba starts it)

    with contextlib.suppress(Exception):
        import numba
        from numba.np.ufunc import parallel

        if threads == 1 and not parallel._is_initialized:
            with contextlib.suppress(ImportError):
                from numba.np.ufunc import omppool  # noqa: F401  (loadable: GNU OpenMP is there)

                numba.config.THREADING_LAYER = "omp"
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    cv2.setNumThreads(threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


class _BatchWorker:
    """One worker process: builds the effect once, then processes files with :meth:`process`.

    Usable as a Ray actor (``ready``, ``process_many``, ``close``) and as a Ray Data
    ``map_batches`` callable (``__call__``; the benchmark compares the two).
    Errors never escape: setup errors are returned by :meth:`ready`, file errors
    become ``failed`` rows.
    """

    def __init__(
        self, effect: str, options: Any, *, require_faces: bool = False, max_faces: int = 8, threads: int = 1
    ) -> None:
        started = time.perf_counter()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.error: str | None = None
        self.effect: Any = None
        self.require_faces = require_faces
        self._analyzers: dict[str, Any] = {}
        try:
            if type(options).__name__ == "ObjectRef":  # passed by reference (Ray Data's constructor args)
                import ray

                options = ray.get(options)
            from portraitfx._tuning import tune_process
            from portraitfx.effects import create_effect
            from portraitfx.face.analyze import AnalyzeOptions

            tune_process()
            _limit_threads(threads)
            self.analyze_options = AnalyzeOptions(max_faces=max_faces)
            self.effect = create_effect(effect, **options)
            self._warm_up()
        except Exception as err:  # reported by ready(): the driver names it
            self.error = _one_line(str(err)) or type(err).__name__
            if not isinstance(err, PortraitFxError):
                self.error = f"{type(err).__name__}: {self.error}"
                log.error("worker setup failed:\n%s", traceback.format_exc())
        self.setup_seconds = time.perf_counter() - started

    # -- face analysers, kept for the worker's life --------------------------------------
    def _analyzer(self, options: Any = None, **overrides: Any) -> contextlib.AbstractContextManager[Any]:
        """Stands in for ``FaceAnalyzer(...)`` in ``apply_to_file``: the kept analyser, not closed after use."""
        from portraitfx.face.analyze import FaceAnalyzer

        key = repr((options, sorted(overrides.items())))
        analyzer = self._analyzers.get(key)
        if analyzer is None:
            analyzer = self._analyzers[key] = FaceAnalyzer(options, **overrides)
        return contextlib.nullcontext(analyzer)

    def _close_analyzers(self) -> None:
        for analyzer in self._analyzers.values():
            with contextlib.suppress(Exception):
                analyzer.close()
        self._analyzers.clear()

    @contextlib.contextmanager
    def _kept_analyzers(self) -> Iterator[None]:
        import portraitfx.runtime.apply as apply_module

        original = getattr(apply_module, "FaceAnalyzer", None)
        if original is None:  # apply_to_file changed: nothing to stand in for
            yield
            return
        apply_module.FaceAnalyzer = self._analyzer  # type: ignore[assignment]
        try:
            yield
        except PortraitFxError:  # a bad file or no face: the analysers are fine
            raise
        except BaseException:
            self._close_analyzers()  # never reuse an analyser that was mid-run when something broke
            raise
        finally:
            apply_module.FaceAnalyzer = original  # type: ignore[assignment]

    def _warm_up(self) -> None:
        """Load the models and compile the kernels on the built-in sample, before the first file."""
        try:
            from portraitfx.assets import sample_path
            from portraitfx.io.images import load_image

            image = load_image(sample_path())
            with self._analyzer(self.analyze_options) as analyzer:
                faces = analyzer.analyze(image)
            self.effect.apply(image, faces[:1])
        except Exception:  # a warm-up is an optimisation; the first file will say what is wrong
            log.debug("worker warm-up failed", exc_info=True)

    # -- the actor's methods -------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """``{"worker", "setup_seconds", "error"}``: ``error`` is set when the effect could not be built."""
        return {"worker": self.name, "setup_seconds": self.setup_seconds, "error": self.error}

    def process(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """Apply the effect to ``task["input"]``, writing ``task["output"]``; return the result row."""
        from portraitfx.runtime.apply import apply_to_file

        row: dict[str, Any] = {"status": "failed", "error": None, "warning": None, "faces": 0, "frames": 0,
                               "worker": self.name}  # fmt: skip
        started = time.perf_counter()
        try:
            if self.effect is None:
                raise ConfigError(self.error or "the effect could not be built")
            dst = Path(task["output"])
            dst.parent.mkdir(parents=True, exist_ok=True)
            with self._kept_analyzers():
                report = apply_to_file(
                    self.effect, task["input"], dst, options=self.analyze_options, progress=False,
                    require_faces=self.require_faces,
                )  # fmt: skip
            warning = _one_line("; ".join(report.warnings))
            row.update(status="done", faces=report.faces, frames=report.frames, warning=warning or None)
        except PortraitFxError as err:
            row["error"] = _one_line(str(err)) or type(err).__name__
        except Exception as err:  # a bug or a library's own error: recorded like the others, the run goes on
            log.error("%s failed:\n%s", task["input"], traceback.format_exc())
            row["error"] = _one_line(f"{type(err).__name__}: {err}")
        row["seconds"] = time.perf_counter() - started
        return row

    def process_many(self, tasks: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`process` for each task, in order (one Ray call for several small files)."""
        return [self.process(task) for task in tasks]

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        """Ray Data form: columns ``input`` and ``output`` in, the result rows' columns out."""
        rows = [
            {"input": str(i), "output": str(o), **self.process({"input": str(i), "output": str(o)})}
            for i, o in zip(batch["input"], batch["output"], strict=True)
        ]
        return {key: [r[key] for r in rows] for key in rows[0]} if rows else {}

    def close(self) -> None:
        """Release the effect's and the analysers' resources."""
        self._close_analyzers()
        close = getattr(self.effect, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


# -- Ray -------------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("batch runs need Ray: pip install 'portraitfx[scale]'") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) nobody answers: Ray itself retries for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray will judge itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"could not reach the Ray cluster at '{address}': {err.strerror or err}") from None


@contextlib.contextmanager
def _ray_session(workers: int | None, address: str | None) -> Iterator[Any]:
    """Ray, started locally (``num_cpus=workers``) or joined at ``address``; shut down only if we started it."""
    ray = _import_ray()
    if ray.is_initialized():
        if address:
            log.warning("Ray is already initialised in this process; using it, not %s", address)
        yield ray
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, **quiet)
        else:  # "local": a new instance even if `ray start` left one running on this machine
            ray.init(
                address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, **quiet
            )
    except ConnectionError as err:
        raise ConfigError(f"could not reach the Ray cluster at '{address}': {_one_line(str(err))}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _failed(why: str) -> dict[str, Any]:
    """A result row for a file that failed outside its worker's own error handling."""
    return {"status": "failed", "error": why, "faces": 0, "frames": 0, "seconds": 0.0}


class _Pool:
    """Feeds tasks to a pool of worker actors in chunks; replaces workers that die.

    Videos go one per call. Images go in chunks of about ``CALL_SECONDS`` of work
    (from the mean time of the images done so far; one at a time until then) and
    never more than a worker's share of what is left, so the run ends evenly. A
    task carries ``"alone": True`` (a suspect) after a worker died with it in hand:
    it then goes by itself to an idle worker, so the file a worker dies on is known
    for sure, and only that file is recorded as failed.
    """

    def __init__(self, ray: Any, make_worker: Callable[[], Any], workers: int) -> None:
        self.ray = ray
        self.make_worker = make_worker
        self.workers = workers
        self.restarts_left = workers * RESTARTS_PER_WORKER
        self.starting: dict[Any, Any] = {}  # ready() ref -> actor
        self.running: dict[Any, tuple[Any, list[dict[str, Any]]]] = {}  # process_many() ref -> (actor, chunk)
        self.queues: dict[Any, deque[Any]] = {}  # live actor -> its refs, oldest (running) first
        self.first_ready: float | None = None
        self.started = 0
        self.last_error: str | None = None
        self._image_seconds = 0.0
        self._images = 0

    def _start(self) -> None:
        actor = self.make_worker()
        self.starting[actor.ready.remote()] = actor

    def _chunk(self, queue: deque[dict[str, Any]]) -> list[dict[str, Any]]:
        first = queue.popleft()
        if first.get("video") or first.get("alone") or not self._images:
            return [first]
        per_image = self._image_seconds / self._images
        size = min(MAX_CHUNK, max(1, int(CALL_SECONDS / max(per_image, 1e-3))))
        size = min(size, max(1, len(queue) // (2 * max(len(self.queues), 1))))  # an even end
        chunk = [first]
        while queue and len(chunk) < size and not (queue[0].get("video") or queue[0].get("alone")):
            chunk.append(queue.popleft())
        return chunk

    def _feed(self, actor: Any, queue: deque[dict[str, Any]]) -> None:
        refs = self.queues[actor]
        while len(refs) < IN_FLIGHT and queue:
            suspect = bool(queue[0].get("alone"))
            if suspect and refs:
                return  # a suspect goes to an idle worker only, and nothing goes behind it
            chunk = self._chunk(queue)
            ref = actor.process_many.remote(chunk)
            self.running[ref] = (actor, chunk)
            refs.append(ref)
            if suspect:
                return

    def _lost(self, actor: Any, queue: deque[dict[str, Any]], emit: Callable[..., None], why: str) -> None:
        """A worker died. A file it ran in isolation (``alone``: nothing queued before or behind it)
        failed. Otherwise the driver cannot be sure which call killed it (a reply can die with its
        worker), so the files of its calls that did not answer are queued again as suspects, to go
        alone; the answers that did arrive are recorded as usual."""
        ray = self.ray
        refs = list(self.queues.pop(actor, deque()))
        with contextlib.suppress(Exception):  # a dead worker's calls all resolve (to errors) at once
            ray.wait(refs, num_returns=len(refs), timeout=10)
        again: list[dict[str, Any]] = []
        for ref in refs:
            _, chunk = self.running.pop(ref)
            try:
                rows = ray.get(ref, timeout=0)
            except Exception:
                if len(chunk) == 1 and chunk[0].get("alone"):
                    emit(chunk[0], _failed(why))
                    self.restarts_left += 1  # it found the file that killed it: this death costs no restart
                else:
                    again += [{**task, "alone": True} for task in chunk]
                continue
            self._record(chunk, rows, emit)
        queue.extendleft(reversed(again))
        with contextlib.suppress(Exception):
            ray.kill(actor)
        if self.restarts_left > 0 and queue:
            self.restarts_left -= 1
            self._start()
        for live in self.queues:  # an idle worker takes the files back at once
            self._feed(live, queue)

    def _record(
        self, chunk: list[dict[str, Any]], rows: list[dict[str, Any]], emit: Callable[..., None]
    ) -> None:
        for task, row in zip(chunk, rows, strict=True):
            if not task.get("video"):
                self._image_seconds += float(row.get("seconds") or 0.0)
                self._images += 1
            emit(task, row)

    def run(
        self, tasks: list[dict[str, Any]], emit: Callable[[dict[str, Any], dict[str, Any]], None]
    ) -> None:
        """Process ``tasks``; call ``emit(task, row)`` for each as it finishes."""
        ray = self.ray
        queue = deque(tasks)
        for _ in range(self.workers):
            self._start()
        try:
            while queue or self.running:
                if not self.starting and not self.queues:
                    if not self.started:
                        raise PortraitFxError(f"no worker could start: {self.last_error or 'unknown error'}")
                    why = f"no worker left: {self.last_error or 'worker processes kept dying (see the Ray logs)'}"
                    for task in queue:
                        emit(task, _failed(why))
                    return
                ready, _ = ray.wait([*self.starting, *self.running], num_returns=1)
                ref = ready[0]
                if ref in self.starting:
                    self._on_ready(ref, queue)
                    continue
                actor, chunk = self.running[ref]
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # the call failed, the worker lives
                    rows = [_failed(_one_line(str(err).splitlines()[-1]))] * len(chunk)
                except ray.exceptions.RayError as err:  # the worker process died (crash, out of memory)
                    log.info("a worker died: %s", _one_line(str(err))[:300])
                    self._lost(actor, queue, emit, "the worker process died on this file (a crash or out "
                               "of memory; see the Ray logs)")  # fmt: skip
                    continue
                self.running.pop(ref)
                self.queues[actor].remove(ref)
                self._feed(actor, queue)  # first: the worker gets its next chunk while we record
                self._record(chunk, rows, emit)
        finally:
            self._shutdown()

    def _on_ready(self, ref: Any, queue: deque[dict[str, Any]]) -> None:
        actor = self.starting.pop(ref)
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayError as err:
            info = {"error": _one_line(str(err))[:500]}
        if info.get("error"):
            self.last_error = info["error"]
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
            if self.started and self.restarts_left > 0 and queue:
                self.restarts_left -= 1
                self._start()
            return
        self.started += 1
        if self.first_ready is None:
            self.first_ready = time.perf_counter()
        self.queues[actor] = deque()
        self._feed(actor, queue)

    def _shutdown(self) -> None:
        ray = self.ray
        live = list(self.queues)
        with contextlib.suppress(Exception):
            if live and not self.running:  # a normal end: let the workers release their models
                ray.wait([a.close.remote() for a in live], num_returns=len(live), timeout=10)
        for actor in [*live, *self.starting.values()]:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.queues.clear()
        self.starting.clear()
        self.running.clear()


# -- the run ---------------------------------------------------------------------------------


def run_batch(
    inputs: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    effect: str,
    options: Mapping[str, Any] | None = None,
    *,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    suffix: str | None = None,
    require_faces: bool = False,
    max_faces: int = 8,
    retry_failed: bool = False,
    on_item: Callable[[BatchItem], None] | None = None,
) -> BatchReport:
    """Apply ``effect`` to every image and video of ``inputs`` on a pool of Ray workers.

    Args:
        inputs: a folder (the files directly inside), a glob (``"photos/**/*.jpg"``) or one file.
        out_dir: output folder (created if missing); outputs keep the inputs' names
            (and, for a glob, their paths below the pattern's fixed part).
        effect: a registered effect (``stylize``, ``swap``).
        options: the effect's options, as for :func:`~portraitfx.effects.create_effect`
            (``{"style": "pencil"}``, ``{"source": ["me.jpg"]}``, ...).
        workers: worker processes (one CPU each); default: the CPU count (of the
            cluster with ``address``). More than the cluster's CPUs are not started.
        address: join this Ray cluster (``"auto"``, ``"ray://head:10001"``); default:
            start a local Ray for this run (or use the one this process already runs).
        progress: show a progress bar (stderr).
        suffix: extension for image outputs (e.g. ``".png"``); videos keep theirs.
        require_faces: an image (or video) without a face fails with
            :class:`~portraitfx.errors.NoFaceError`; by default it is written unchanged, with a warning.
        max_faces: most faces to process per image or frame.
        retry_failed: process again the files an earlier run recorded as failed.
        on_item: called with each :class:`BatchItem` as it is decided or finished.

    Returns:
        A :class:`BatchReport`; failures are in it (and in the manifest), not raised.

    Raises:
        InputError: no inputs. OutputError: a bad output folder. ConfigError (and the
        effect's own errors): a bad effect name or option, Ray missing or unreachable.
    """
    started = time.perf_counter()
    options = dict(options or {})
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if max_faces < 1:
        raise ConfigError(f"max_faces must be at least 1, got {max_faces}")
    out = Path(out_dir).expanduser()
    pairs, refused = list_inputs(inputs, out, suffix=suffix)
    report = BatchReport(manifest=out / MANIFEST_NAME)
    settings = _settings_key(effect, options, require_faces, max_faces)
    earlier = read_manifest(report.manifest)

    def note(item: BatchItem) -> None:
        report.items.append(item)
        if on_item is not None:
            on_item(item)

    todo: list[dict[str, Any]] = []
    for src, dst in pairs:
        key = dst.relative_to(out).as_posix()
        try:
            size, mtime = _input_stat(src)
        except OSError:  # gone since it was listed: its worker will say so
            size, mtime = -1, -1
        row = earlier.get(key) or {}
        recorded = (row.get("settings"), row.get("input_size"), row.get("input_mtime_ns"))
        same = recorded == (settings, size, mtime)
        if same and row.get("status") == "done" and dst.is_file():
            note(BatchItem(src, dst, "skipped", warning=row.get("warning")))
        elif same and row.get("status") == "failed" and not retry_failed:
            note(BatchItem(src, dst, "skipped", error=row.get("error") or "failed"))
        else:
            kind = 1 if src.suffix.lower() in VIDEO_SUFFIXES else 0
            todo.append({"input": str(src.resolve()), "output": str(dst.resolve()), "key": key,
                         "input_size": size, "input_mtime_ns": mtime, "video": bool(kind),
                         "order": (kind, size)})  # fmt: skip
    todo.sort(key=lambda t: t["order"], reverse=True)  # videos and big files first: no long tail
    for t in todo:
        del t["order"]
    portable: dict[str, Any] = {}
    if todo:  # a bad effect name or option fails here, before anything is written
        _check_effect(effect, options)
        portable = portable_options(effect, options)

    with contextlib.ExitStack() as stack:
        # Ray first: an unreachable cluster fails before anything is written
        ray = stack.enter_context(_ray_session(workers, address)) if todo else None
        out.mkdir(parents=True, exist_ok=True)
        manifest = stack.enter_context(contextlib.closing(_Manifest(report.manifest)))

        def record(task: Mapping[str, Any], row: Mapping[str, Any]) -> BatchItem:
            item = BatchItem(
                Path(task["input"]), out / task["key"], row.get("status", "failed"),
                error=row.get("error"), seconds=float(row.get("seconds") or 0.0),
                faces=int(row.get("faces") or 0), frames=int(row.get("frames") or 0),
                warning=row.get("warning"), worker=row.get("worker"),
            )  # fmt: skip
            manifest.append({
                "input": str(item.input), "output": task["key"], "status": item.status, "error": item.error,
                "warning": item.warning, "seconds": round(item.seconds, 4), "faces": item.faces,
                "frames": item.frames, "effect": effect, "settings": settings,
                "input_size": task["input_size"], "input_mtime_ns": task["input_mtime_ns"],
                "worker": item.worker,
                "finished": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            })  # fmt: skip
            note(item)
            return item

        for item in refused:
            try:
                size, mtime = _input_stat(item.input)
            except OSError:
                size, mtime = -1, -1
            record({"input": str(item.input), "key": item.output.relative_to(out).as_posix(),
                    "input_size": size, "input_mtime_ns": mtime},
                   {"status": "failed", "error": item.error})  # fmt: skip
        if ray is not None:
            _run_todo(ray, todo, effect, portable, record, report, started, workers=workers,
                      progress=progress, require_faces=require_faces, max_faces=max_faces)  # fmt: skip
        else:
            report.setup_seconds = time.perf_counter() - started
    report.seconds = time.perf_counter() - started
    return report


def _run_todo(
    ray: Any,
    todo: list[dict[str, Any]],
    effect: str,
    options: dict[str, Any],
    record: Callable[[Mapping[str, Any], Mapping[str, Any]], BatchItem],
    report: BatchReport,
    started: float,
    *,
    workers: int | None,
    progress: bool,
    require_faces: bool,
    max_faces: int,
) -> None:
    """Run the files of ``todo`` on ``ray`` with the (portable) ``options``; ``started`` is when the
    run began (for ``setup_seconds``)."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    wanted = workers or cpus
    if wanted > cpus:
        log.warning("the Ray cluster has %d CPUs; starting %d workers, not %d", cpus, cpus, wanted)
    count = max(1, min(wanted, cpus, len(todo)))
    options_ref = ray.put(options)
    remote = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_BatchWorker)

    def make_worker() -> Any:
        return remote.remote(effect, options_ref, require_faces=require_faces, max_faces=max_faces)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="file", desc=f"{effect} ({count} workers)", file=sys.stderr)
    failures = 0
    last = time.perf_counter()

    def emit(task: Mapping[str, Any], row: Mapping[str, Any]) -> None:
        nonlocal failures, last
        item = record(task, row)
        last = time.perf_counter()
        if bar is not None:
            failures += item.status == "failed"
            if failures:
                bar.set_postfix(failed=failures, refresh=False)
            bar.update(1)

    pool = _Pool(ray, make_worker, count)
    try:
        pool.run(todo, emit)
    finally:
        if bar is not None:
            bar.close()
        report.workers = pool.started
        first = pool.first_ready or time.perf_counter()
        report.setup_seconds = first - started
        report.work_seconds = max(last - first, 0.0)
