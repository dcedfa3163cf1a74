"""Fixtures of the HTTP API tests: apps on temporary data folders, test media, a test effect."""

from __future__ import annotations

import contextlib
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from portraitfx.testing import clips as clipmaker


class SlowInvert:
    """Test effect: waits ``delay`` seconds, then inverts the whole picture (cheap, obvious)."""

    name = "test-slow"

    def __init__(self, delay: float = 0.0, options: object = None) -> None:
        self.delay = delay

    def apply(self, frame: np.ndarray, faces: list, state: object = None) -> np.ndarray:
        time.sleep(self.delay)
        return 255 - frame

    def close(self) -> None:
        pass


@pytest.fixture
def slow_effect(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``test-slow`` for one test (removed afterwards)."""
    from portraitfx.effects import base

    base.list_effects()  # the built-ins first, so they do not register over our patch
    monkeypatch.setitem(base._REGISTRY, "test-slow", SlowInvert)
    return "test-slow"


@pytest.fixture
def make_client(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager]:
    """``with make_client(queue_size=1, ...) as client``: a started app on its own data folder."""
    from fastapi.testclient import TestClient

    from portraitfx.server import ServerSettings, create_app

    @contextlib.contextmanager
    def make(data_dir: Path | None = None, **settings: object) -> Iterator[TestClient]:
        app = create_app(ServerSettings(data_dir=data_dir or tmp_path / "srv", **settings))
        with TestClient(app) as client:
            client.data_dir = Path(app.state.pfx.root)  # type: ignore[attr-defined]
            yield client

    return make


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One app with default settings for the tests that need nothing special."""
    from fastapi.testclient import TestClient

    from portraitfx.server import ServerSettings, create_app

    app = create_app(ServerSettings(data_dir=tmp_path_factory.mktemp("srv"), run_jobs=False))
    with TestClient(app) as c:
        c.data_dir = Path(app.state.pfx.root)  # type: ignore[attr-defined]
        yield c


@pytest.fixture(scope="session")
def obama_jpg(data_dir: Path) -> bytes:
    return (data_dir / "obama.jpg").read_bytes()


@pytest.fixture(scope="session")
def biden_jpg(data_dir: Path) -> bytes:
    return (data_dir / "biden.jpg").read_bytes()


@pytest.fixture(scope="session")
def small_face_png(obama: np.ndarray) -> bytes:
    """A 160x128 portrait (a face the analyser finds in a few ms)."""
    from portraitfx.io.images import encode_image

    small = cv2.resize(obama, (128, 160), interpolation=cv2.INTER_AREA)
    return encode_image(small, "PNG")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


@pytest.fixture(scope="session")
def bomb_png() -> bytes:
    """A few dozen bytes of PNG that declare 30000 x 30000 pixels."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def talking_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """15 frames of a moving head, 480x360, with audio."""
    head = np.ascontiguousarray(astronaut[20:280, 90:360])
    path = tmp_path_factory.mktemp("clips") / "talk.mp4"
    return clipmaker.make_clip(path, clipmaker.moving_crop_frames(head, 15, size=(480, 360)), fps=15)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """90 frames (3 s): long enough to be caught running."""
    head = np.ascontiguousarray(astronaut[20:280, 90:360])
    path = tmp_path_factory.mktemp("clips") / "long.mp4"
    frames = clipmaker.iter_moving_crop_frames(head, 90, size=(480, 360))
    return clipmaker.make_clip(path, frames, fps=30)
