"""Path rules shared by every reader and writer.

* Inputs are never overwritten: readers call :func:`register_input`, writers call
  :func:`check_output_path`, which refuses any path that was read as an input in
  this process (compared by resolved path and, when both exist, by inode).
* Outputs are written atomically: :func:`atomic_output` yields a temporary path in
  the destination folder (same suffix, so format detection by extension works)
  and renames it over the destination only when the block succeeds.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_output(d / "out.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "out.txt").read_text()
    'hello'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from portraitfx.errors import InputNotFoundError, OutputError

__all__ = ["atomic_output", "check_input_path", "check_output_path", "register_input"]

_lock = threading.Lock()
_inputs: dict[str, tuple[int, int] | None] = {}


def _key(path: Path) -> str:
    return str(Path(os.path.abspath(path)).resolve())


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def check_input_path(path: str | os.PathLike[str], what: str = "input") -> Path:
    """Return ``path`` as a :class:`Path` if it is an existing, readable file.

    Raises:
        InputNotFoundError: the path is missing, a folder, or unreadable.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputNotFoundError(f"{what} not found: '{p}'")
    if p.is_dir():
        raise InputNotFoundError(f"{what} '{p}' is a folder, expected a file")
    if not os.access(p, os.R_OK):
        raise InputNotFoundError(f"{what} '{p}' is not readable (check its permissions)")
    return p


def register_input(path: str | os.PathLike[str]) -> None:
    """Remember that ``path`` was read, so no writer in this process replaces it."""
    p = Path(path)
    with _lock:
        _inputs[_key(p)] = _inode(p)


def check_output_path(
    path: str | os.PathLike[str], *, inputs: tuple[str | os.PathLike[str], ...] = ()
) -> Path:
    """Validate an output path and return it.

    Args:
        path: where the output goes; its folder must exist.
        inputs: extra input paths to protect besides those registered by readers.

    Raises:
        OutputError: the folder is missing, the path is a folder, or it is an input.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputError(f"output '{p}' is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder '{parent}' does not exist")
    key, node = _key(p), _inode(p)
    with _lock:
        protected = dict(_inputs)
    for extra in inputs:
        protected[_key(Path(extra))] = _inode(Path(extra))
    for k, n in protected.items():
        # the same path, or another name of the same live file (a hard link); the inode of an
        # input deleted since is reused by the file system and means nothing
        same_file = node is not None and n is not None and n == node and _inode(Path(k)) == n
        if k == key or same_file:
            raise OutputError(f"refusing to overwrite input file '{p}'; choose another output path")
    return p


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], *, inputs: tuple[str | os.PathLike[str], ...] = ()
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    dst = check_output_path(path, inputs=inputs)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=f".part{dst.suffix}", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OutputError(f"nothing was written to '{dst}'")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
