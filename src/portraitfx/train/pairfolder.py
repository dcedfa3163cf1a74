"""Paired training data on disk, shared by every teacher (StyleGAN models, FaceBlit, U-GAT-IT).

A pair folder holds ``face/NNNNNN.png`` (the input), ``style/NNNNNN.png`` (the target),
``manifest.jsonl`` (one JSON line per pair, in index order) and ``job.json`` (what made
it). Each pair is a pure function of its index, so a stopped run resumes by skipping
finished pairs (both files present; the style image is written last), raising the
count adds pairs, and chunks of indices can go to Ray workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PairWriter", "is_done", "pair_names", "write_pairs"]

PairWriter = Callable[[list[int]], list[dict[str, Any]]]
"""Writes the pairs of the given indices (skipping finished ones) and returns their manifest records."""


def pair_names(index: int) -> tuple[str, str]:
    """The relative paths of pair ``index``: ``face/NNNNNN.png``, ``style/NNNNNN.png``."""
    name = f"{index:06d}.png"
    return f"face/{name}", f"style/{name}"


def is_done(folder: Path, index: int) -> bool:
    a, b = pair_names(index)
    return (folder / a).is_file() and (folder / b).is_file()


def write_pairs(
    folder: str | os.PathLike[str],
    total: int,
    make_writer: Callable[[], PairWriter],
    *,
    job: dict[str, Any],
    progress: bool = False,
    workers: int = 0,
    chunk: int = 64,
) -> int:
    """Write pairs ``0 .. total - 1`` that are not there yet; returns how many were written.

    ``make_writer`` builds the writer once per process: here, or in each of
    ``workers`` Ray workers (``ray.init`` is called if Ray is not running), so
    models load once per worker. ``job`` is recorded in ``job.json`` the first time.
    """
    from tqdm import tqdm

    out = Path(folder)
    (out / "face").mkdir(parents=True, exist_ok=True)
    (out / "style").mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(total) if not is_done(out, i)]
    written: list[dict[str, Any]] = []
    with tqdm(total=total, initial=total - len(todo), unit="pair", disable=not progress, leave=False) as bar:
        chunks = [todo[k : k + chunk] for k in range(0, len(todo), chunk)]
        if workers > 0 and chunks:
            written = _on_ray(make_writer, chunks, workers, bar)
        elif chunks:
            writer = make_writer()
            for part in chunks:
                written += writer(part)
                bar.update(len(part))
    if written:  # one line per pair, in index order (a redone pair replaces its line)
        manifest = out / "manifest.jsonl"
        records = {}
        if manifest.is_file():
            for line in manifest.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    records[int(record["index"])] = record
        records.update({int(r["index"]): r for r in written})
        tmp = manifest.with_name(manifest.name + ".tmp")
        tmp.write_text("".join(json.dumps(records[i]) + "\n" for i in sorted(records)), encoding="utf-8")
        os.replace(tmp, manifest)
    meta = out / "job.json"
    if not meta.exists():
        meta.write_text(json.dumps(job, indent=2))
    return len(written)


def _on_ray(
    make_writer: Callable[[], PairWriter], chunks: list[list[int]], workers: int, bar: Any
) -> list[dict]:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)

    @ray.remote(num_cpus=1)
    class _Worker:
        def __init__(self, factory: Callable[[], PairWriter]) -> None:
            import torch

            torch.set_num_threads(1)
            self.writer = factory()

        def run(self, indices: list[int]) -> list[dict]:
            return self.writer(indices)

    pool = [_Worker.remote(make_writer) for _ in range(workers)]
    pending = {}
    queue = list(chunks)
    written: list[dict] = []
    for w in pool:
        if queue:
            part = queue.pop(0)
            pending[w.run.remote(part)] = (w, len(part))
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        w, size = pending.pop(done[0])
        written += ray.get(done[0])
        bar.update(size)
        if queue:
            part = queue.pop(0)
            pending[w.run.remote(part)] = (w, len(part))
    for w in pool:
        ray.kill(w)
    return written
