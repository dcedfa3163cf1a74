"""Streaming ``multipart/form-data`` uploads, with limits enforced while reading.

File parts go straight to files with server-made names under the data folder
(the client's file name is kept for messages only, never used as a path); a part
larger than its limit stops the upload at once with 413, before the rest of the
body is read. Text parts (options) are small and capped in number.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

__all__ = ["FileRule", "FormError", "ParsedForm", "UploadedFile", "read_form"]

HEAD_BYTES = 4096
MAX_FIELDS = 64
MAX_FIELD_BYTES = 16 * 1024
_OVERHEAD = 256 * 1024  # boundaries and part headers, when checking Content-Length


class FormError(Exception):
    """A request body that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FileRule:
    """What one file field may hold: ``max_bytes`` per file, ``max_count`` files."""

    max_bytes: int
    max_count: int = 1


@dataclass
class UploadedFile:
    """One uploaded file, stored under a server-made name.

    Attributes:
        field: the form field it came in.
        path: where it is stored (inside the data folder).
        size: bytes.
        head: its first bytes, for sniffing what it really is.
        filename: the client's file name, cleaned, for messages only.
    """

    field: str
    path: Path
    size: int = 0
    head: bytes = b""
    filename: str | None = None


@dataclass
class ParsedForm:
    """Text fields (one value each) and files by field name."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        """Every stored file."""
        return [f.path for items in self.files.values() for f in items]

    def cleanup(self) -> None:
        """Remove every stored file."""
        remove_files(self.paths())


def remove_files(paths: list[Path]) -> None:
    """Remove files, ignoring those already gone."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _mb(n: int) -> str:
    """A size for messages: ``25 MB``, ``1.5 MB`` or ``50,000 bytes``."""
    if n >= 1024 * 1024:
        return f"{round(n / (1024 * 1024), 1):g} MB"
    return f"{n:,} bytes"


def clean_name(raw: str) -> str:
    """A client's file name made safe to quote in a message (never to open)."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in base if c.isprintable())[:80]
    return text or "upload"


class _Collector:
    """Callbacks of :class:`MultipartParser` that store parts as they stream in."""

    def __init__(self, rules: dict[str, FileRule], tmp_dir: Path, charset: str) -> None:
        self.rules = rules
        self.tmp_dir = tmp_dir
        self.charset = charset
        self.form = ParsedForm()
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str = ""
        self._file: UploadedFile | None = None
        self._fd: int | None = None
        self._text = bytearray()
        self._fields = 0

    # -- parser callbacks ---------------------------------------------------------------
    def on_part_begin(self) -> None:
        self._disposition = b""
        self._name = ""
        self._file = None
        self._text = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > 8192:
            raise FormError(400, "bad_multipart", "a multipart part header is too long")

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if not raw_name:
            raise FormError(
                400, "bad_multipart", "a multipart part has no field name (Content-Disposition name=...)"
            )
        name = raw_name.decode(self.charset, "replace")
        self._name = name
        rule = self.rules.get(name)
        if rule is None:
            if b"filename" in options:
                expected = ", ".join(repr(n) for n in self.rules) or "none"
                raise FormError(
                    422,
                    "unexpected_file",
                    f"unexpected file in field {name!r}; this endpoint takes files in: {expected}",
                )
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise FormError(400, "too_many_fields", f"too many form fields (the limit is {MAX_FIELDS})")
            return
        items = self.form.files.setdefault(name, [])
        if len(items) >= rule.max_count:
            many = "one file" if rule.max_count == 1 else f"at most {rule.max_count} files"
            raise FormError(422, "too_many_files", f"field {name!r} takes {many}")
        raw_filename = options.get(b"filename")
        filename = clean_name(raw_filename.decode(self.charset, "replace")) if raw_filename else None
        path = self.tmp_dir / f"{uuid.uuid4().hex}.upload"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = UploadedFile(field=name, path=path, filename=filename)
        items.append(self._file)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is None:
            if len(self._text) + len(chunk) > MAX_FIELD_BYTES:
                raise FormError(
                    413,
                    "field_too_large",
                    f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes",
                )
            self._text.extend(chunk)
            return
        item = self._file
        rule = self.rules[item.field]
        if item.size + len(chunk) > rule.max_bytes:
            raise FormError(
                413,
                "upload_too_large",
                f"the {item.field!r} upload is larger than the limit of {_mb(rule.max_bytes)}",
            )
        if len(item.head) < HEAD_BYTES:
            item.head += chunk[: HEAD_BYTES - len(item.head)]
        assert self._fd is not None
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        item.size += len(chunk)

    def on_part_end(self) -> None:
        if self._file is not None:
            self.close_file()
            self._file = None
            return
        if self._name in self.form.fields:
            raise FormError(422, "duplicate_field", f"form field {self._name!r} is given twice")
        try:
            self.form.fields[self._name] = self._text.decode(self.charset)
        except UnicodeDecodeError:
            raise FormError(
                400, "bad_field", f"form field {self._name!r} is not valid {self.charset} text"
            ) from None

    def on_end(self) -> None:
        self.ended = True

    def close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def read_form(
    headers: dict[str, str] | object,
    stream: AsyncIterator[bytes],
    rules: dict[str, FileRule],
    tmp_dir: Path,
    *,
    timeout: float,
) -> ParsedForm:
    """Read a ``multipart/form-data`` body into text fields and stored files.

    Args:
        headers: the request headers (a mapping with ``get``).
        stream: the body, chunk by chunk.
        rules: the file fields this endpoint takes and their limits; any other
            field is a text field (at most 64, each up to 16 kB).
        tmp_dir: where files are stored (server-made names).
        timeout: seconds the whole body may take (408 after).

    Raises:
        FormError: with the HTTP status to answer (400, 408, 413, 415, 422); files
            stored so far are removed.
    """
    get = headers.get  # type: ignore[attr-defined]
    ctype, params = parse_options_header(get("content-type") or "")
    if ctype != b"multipart/form-data":
        shown = ctype.decode("latin-1") or "none"
        raise FormError(
            415,
            "unsupported_media_type",
            f"send the request as multipart/form-data (got content type {shown!r})",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError(400, "bad_multipart", "the multipart/form-data content type has no boundary")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        "".encode(charset)
    except LookupError:
        charset = "utf-8"
    limit = sum(r.max_bytes * r.max_count for r in rules.values()) + MAX_FIELDS * MAX_FIELD_BYTES + _OVERHEAD
    length = get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise FormError(400, "bad_request", f"bad Content-Length {length!r}") from None
        if declared > limit:
            allowed = ", ".join(
                f"{name!r} up to {_mb(r.max_bytes)}" + (f" (x{r.max_count})" if r.max_count > 1 else "")
                for name, r in rules.items()
            )
            raise FormError(
                413,
                "upload_too_large",
                f"the request body is {_mb(declared)}, over the limit of {_mb(limit)} (files: {allowed})",
            )
        if declared == 0:
            raise FormError(400, "empty_body", "the request body is empty")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    collector = _Collector(rules, tmp_dir, charset)
    callbacks = {
        "on_part_begin": collector.on_part_begin,
        "on_part_data": collector.on_part_data,
        "on_part_end": collector.on_part_end,
        "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value,
        "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished,
        "on_end": collector.on_end,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    total = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in stream:
                total += len(chunk)
                if total > limit:
                    raise FormError(
                        413, "upload_too_large", f"the request body is larger than the limit of {_mb(limit)}"
                    )
                if chunk:
                    parser.write(chunk)
        parser.finalize()
        if not collector.ended:
            raise FormError(
                400,
                "truncated_body",
                "the request body ended before the multipart data did (a cut-off upload?)",
            )
    except BaseException as err:
        # whatever stopped the upload, nothing it wrote stays on disk
        collector.close_file()
        collector.form.cleanup()
        if isinstance(err, TimeoutError):
            raise FormError(408, "upload_timeout", f"the upload took longer than {timeout:g} s") from None
        if isinstance(err, ClientDisconnect):
            raise FormError(400, "disconnected", "the client disconnected during the upload") from None
        if isinstance(err, MultipartParseError):
            raise FormError(400, "bad_multipart", f"the multipart body is malformed ({err})") from None
        raise
    return collector.form
