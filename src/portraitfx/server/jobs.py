"""Video jobs: stored in SQLite (WAL mode), run one at a time in a child process.

A job is a row of ``jobs.sqlite3`` (id, effect, options, its files inside the
data folder, status ``queued`` → ``running`` → ``done`` | ``failed`` |
``cancelled``, progress, error, timestamps) and a folder ``jobs/<id>/`` holding its
input video, extra uploads (swap ``source`` photos) and, once done, its result.

The runner thread takes queued jobs in order of arrival and runs each with
:func:`portraitfx.runtime.apply.apply_to_file` in a child process
(``python -m portraitfx.server._jobproc``), which reports progress as JSON lines.
Running jobs out of process means a cancel stops the work at once (the child is
killed and its partial output discarded), a crash of the video stack cannot take
the server down, the job's memory is returned when it ends, and video work never
shares numba's one-call-at-a-time thread pool with the image worker. The child
exits by itself when the server dies (its stdin closes).

Restarts: a job found ``running`` when the server starts was interrupted by a stop
or a crash; it is queued again and starts from the beginning (its input is still
on disk), up to ``job_attempts`` starts, after which it is failed with the reason.
A job whose input is gone is failed with that reason. No accepted job is lost:
a job is only acknowledged (202) after its row is committed (``synchronous=FULL``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STATUSES", "Job", "JobRunner", "JobStore"]

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    effect TEXT NOT NULL,
    options TEXT NOT NULL,
    uploads TEXT NOT NULL,
    input TEXT NOT NULL,
    max_faces INTEGER NOT NULL,
    frame_count INTEGER NOT NULL DEFAULT 0,
    has_audio INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    error_type TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    frames INTEGER,
    faces INTEGER,
    result TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
"""


@dataclass
class Job:
    """One row of the job table (paths relative to the data folder)."""

    id: str
    effect: str
    options: dict[str, Any]
    uploads: dict[str, list[str]]
    input: str
    max_faces: int = 8
    frame_count: int = 0
    has_audio: bool = False
    status: str = "queued"
    progress: float = 0.0
    error: str | None = None
    error_type: str | None = None
    attempts: int = 0
    frames: int | None = None
    faces: int | None = None
    result: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    seq: int = 0

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["options"] = json.loads(data["options"])
        data["uploads"] = json.loads(data["uploads"])
        data["has_audio"] = bool(data["has_audio"])
        return cls(**data)


class JobStore:
    """The job table: every change is one committed transaction (WAL, ``synchronous=FULL``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a file system without shared memory
            log.warning("job database %s is in %s mode, not WAL", path, mode)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add(self, job: Job) -> Job:
        """Store a new job (queued); return it with its sequence number."""
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            job.seq = int(seq)
            db.execute(
                "INSERT INTO jobs (id, seq, effect, options, uploads, input, max_faces, frame_count, has_audio, "
                "status, progress, attempts, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job.id, job.seq, job.effect, json.dumps(job.options), json.dumps(job.uploads), job.input,
                 job.max_faces, job.frame_count, int(job.has_audio), "queued", 0.0, 0, job.created_at,
                 job.created_at),
            )  # fmt: skip
        return job

    def get(self, job_id: str) -> Job | None:
        """The job ``job_id``, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job._from_row(row) if row else None

    def recent(self, limit: int = 50) -> list[Job]:
        """The latest jobs, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [Job._from_row(r) for r in rows]

    def count(self, *statuses: str) -> int:
        """How many jobs have one of ``statuses``."""
        marks = ",".join("?" * len(statuses))
        with self._lock:
            return int(
                self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", statuses).fetchone()[
                    0
                ]
            )

    def claim_next(self) -> Job | None:
        """Mark the oldest queued job running (one more attempt) and return it."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, progress = 0, "
                "updated_at = ? WHERE id = ?",
                (now, now, row["id"]),
            )
        return self.get(row["id"])

    def set_progress(self, job_id: str, progress: float) -> None:
        """Record the progress (0..1) of a running job."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND status = 'running'",
                (min(max(progress, 0.0), 1.0), time.time(), job_id),
            )

    def finish(self, job_id: str, status: str, **values: Any) -> bool:
        """End a running job with ``status`` (and ``error``, ``frames``, ...); ``False`` if it was
        no longer running (e.g. cancelled meanwhile)."""
        now = time.time()
        values = {"status": status, "finished_at": now, "updated_at": now, **values}
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE jobs SET {sets} WHERE id = ? AND status = 'running'", (*values.values(), job_id)
            )
            return cur.rowcount == 1

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue without counting the attempt (a clean stop)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), progress = 0, updated_at = ? "
                "WHERE id = ? AND status = 'running'",
                (time.time(), job_id),
            )

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job; return the status it had (``None``: unknown id)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["status"] in ("queued", "running"):
                db.execute(
                    "UPDATE jobs SET status = 'cancelled', error = 'cancelled by the client', finished_at = ?, "
                    "updated_at = ? WHERE id = ?",
                    (now, now, job_id),
                )
            return str(row["status"])

    def delete(self, job_id: str) -> None:
        """Remove a job's row."""
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def finished_before(self, when: float) -> list[Job]:
        """Finished jobs older than ``when`` (epoch seconds)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE status IN ('done', 'failed', 'cancelled') AND finished_at < ?",
                (when,),
            ).fetchall()
        return [Job._from_row(r) for r in rows]

    def recover(self, root: Path, max_attempts: int) -> list[str]:
        """After a start: re-queue interrupted jobs or fail them with a reason; return what was done."""
        notes: list[str] = []
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY seq"
            ).fetchall()
            for row in rows:
                job = Job._from_row(row)
                missing = [
                    p
                    for p in [job.input, *itertools.chain.from_iterable(job.uploads.values())]
                    if not (root / p).is_file()
                ]
                reason = None
                if missing:
                    reason = "its input files are gone from the server (the data folder was changed)"
                elif job.status == "running" and job.attempts >= max_attempts:
                    reason = (
                        f"the server stopped while running this job {job.attempts} time(s); "
                        "it was given up (it may crash the server)"
                    )
                if reason:
                    db.execute(
                        "UPDATE jobs SET status = 'failed', error = ?, error_type = 'interrupted', finished_at = ?, "
                        "updated_at = ? WHERE id = ?",
                        (reason, now, now, job.id),
                    )
                    notes.append(f"job {job.id} failed: {reason}")
                elif job.status == "running":
                    db.execute(
                        "UPDATE jobs SET status = 'queued', progress = 0, updated_at = ? WHERE id = ?",
                        (now, job.id),
                    )
                    notes.append(f"job {job.id} was interrupted; queued again (attempt {job.attempts + 1})")
        return notes


def job_dir(root: Path, job_id: str) -> Path:
    """The folder of a job's files."""
    return root / "jobs" / job_id


def remove_inputs(root: Path, job: Job) -> None:
    """Delete a job's input video and extra uploads (kept: its result)."""
    for rel in [job.input, *itertools.chain.from_iterable(job.uploads.values())]:
        with contextlib.suppress(OSError):
            (root / rel).unlink()


def remove_job_files(root: Path, job_id: str) -> None:
    """Delete everything a job has on disk."""
    shutil.rmtree(job_dir(root, job_id), ignore_errors=True)


class JobRunner:
    """The thread that runs queued jobs, one at a time, each in a child process."""

    def __init__(self, store: JobStore, root: Path, settings: Any) -> None:
        self.store = store
        self.root = root
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._current: str | None = None
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0

    def start(self) -> None:
        """Start the runner thread."""
        self._thread = threading.Thread(target=self._loop, name="pfx-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Tell the runner a job was queued."""
        self._wake.set()

    def stop(self) -> None:
        """Stop: a running job is killed and queued again (it restarts with the server)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            _kill(proc)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def cancel(self, job_id: str) -> str | None:
        """Cancel a job: queued ones never start, a running one is stopped now.

        Returns the status it had, or ``None`` for an unknown id.
        """
        before = self.store.cancel(job_id)
        if before == "running":
            with self._lock:
                proc = self._proc if self._current == job_id else None
            if proc is not None:
                _kill(proc)
        if before in ("queued", "running"):
            job = self.store.get(job_id)
            if job is not None and before == "queued":
                remove_job_files(self.root, job_id)
        return before

    # -- the loop -----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
                job = self.store.claim_next()
            except sqlite3.Error as err:  # pragma: no cover - a broken database: keep trying
                log.error("job database error: %s", err)
                job = None
            if job is None:
                self._wake.wait(timeout=2.0)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception as err:
                log.exception("job %s: runner error", job.id)
                self.store.finish(
                    job.id, "failed", error=f"internal error: {type(err).__name__}", error_type="internal"
                )
                remove_inputs(self.root, job)

    def sweep(self, force: bool = False) -> None:
        """Remove expired finished jobs and stale temporary files (at most once a minute)."""
        now = time.time()
        if not force and now - self._last_sweep < 60:
            return
        self._last_sweep = now
        for job in self.store.finished_before(now - self.settings.job_retention):
            remove_job_files(self.root, job.id)
            self.store.delete(job.id)
        stale = now - max(3600.0, 2 * self.settings.upload_timeout, 2 * self.settings.request_timeout)
        tmp = self.root / "tmp"
        if tmp.is_dir():
            for entry in tmp.iterdir():
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < stale:
                        entry.unlink()

    def _run(self, job: Job) -> None:
        folder = job_dir(self.root, job.id)
        for leftover in folder.glob(".result*"):  # a partial result of an interrupted attempt
            with contextlib.suppress(OSError):
                leftover.unlink()
        result = folder / "result.mp4"
        spec = {
            "effect": job.effect,
            "options": job.options,
            "uploads": {k: [str(self.root / p) for p in v] for k, v in job.uploads.items()},
            "input": str(self.root / job.input),
            "output": str(result),
            "max_faces": job.max_faces,
            "max_pixels": self.settings.max_image_pixels,
            "frame_count": job.frame_count,
        }
        log_path = folder / "job.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "portraitfx.server._jobproc"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                cwd=str(folder),
                env=env,
            )
        with self._lock:
            self._proc, self._current = proc, job.id
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _kill(proc)

        timer = threading.Timer(self.settings.job_timeout, expire)
        timer.daemon = True
        timer.start()
        outcome: dict[str, Any] | None = None
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write((json.dumps(spec) + "\n").encode())
                proc.stdin.flush()
            except OSError:
                pass
            # the status may have changed before the child started (cancel, stop)
            if self._stop.is_set() or (self.store.get(job.id) or job).status != "running":
                _kill(proc)
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                kind = event.get("event")
                if kind == "progress":
                    self.store.set_progress(job.id, float(event.get("progress", 0.0)))
                elif kind in ("done", "error"):
                    outcome = event
            proc.wait()
        finally:
            timer.cancel()
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            _kill(proc)
            with self._lock:
                self._proc, self._current = None, None
        self._finish(job, proc.returncode, outcome, result, timed_out=expired.is_set() and outcome is None)

    def _finish(
        self, job: Job, code: int | None, outcome: dict[str, Any] | None, result: Path, *, timed_out: bool
    ) -> None:
        current = self.store.get(job.id)
        if current is None or current.status == "cancelled":
            remove_job_files(self.root, job.id)
            return
        if self._stop.is_set() and outcome is None:
            self.store.requeue(job.id)  # a clean stop: the job runs again after the restart
            return
        if outcome is not None and outcome.get("event") == "done" and result.is_file():
            self.store.finish(
                job.id,
                "done",
                progress=1.0,
                frames=int(outcome.get("frames", 0)),
                faces=int(outcome.get("faces", 0)),
                result=str(result.relative_to(self.root)),
            )
        elif outcome is not None and outcome.get("event") == "error":
            self.store.finish(
                job.id, "failed", error=str(outcome.get("message")), error_type=str(outcome.get("type"))
            )
        elif timed_out:
            self.store.finish(
                job.id,
                "failed",
                error=f"the job took longer than the limit of {self.settings.job_timeout:g} s",
                error_type="timeout",
            )
        else:
            log.error(
                "job %s: the job process ended with code %s (see %s)",
                job.id,
                code,
                job_dir(self.root, job.id),
            )
            self.store.finish(
                job.id,
                "failed",
                error=f"the job process stopped unexpectedly (exit code {code})",
                error_type="crashed",
            )
        remove_inputs(self.root, job)
        if (self.store.get(job.id) or job).status != "done":
            with contextlib.suppress(OSError):
                result.unlink()


def _kill(proc: subprocess.Popen) -> None:
    """Stop a child process now (it holds no state worth a graceful stop)."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
