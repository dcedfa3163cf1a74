"""Shared fixtures: real portraits from tests/data and cached analysers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Keep caches (built styles, ...) out of the user's home: one temporary home per run."""
    import os
    import tempfile

    os.environ["PORTRAITFX_HOME"] = tempfile.mkdtemp(prefix="pfx-test-home-")


def _load(name: str) -> np.ndarray:
    from portraitfx.io.images import load_image

    img = load_image(DATA / name)
    img.setflags(write=False)
    return img


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return _load("astronaut.jpg")


@pytest.fixture(scope="session")
def obama() -> np.ndarray:
    return _load("obama.jpg")


@pytest.fixture(scope="session")
def obama2() -> np.ndarray:
    return _load("obama2.jpg")


@pytest.fixture(scope="session")
def obama3() -> np.ndarray:
    return _load("obama3.jpg")


@pytest.fixture(scope="session")
def biden() -> np.ndarray:
    return _load("biden.jpg")


@pytest.fixture(scope="session")
def analyzer():
    from portraitfx.face.analyze import FaceAnalyzer

    with FaceAnalyzer() as a:
        yield a


@pytest.fixture(scope="session")
def astronaut_face(analyzer, astronaut):
    faces = analyzer.analyze(astronaut)
    assert len(faces) == 1
    return faces[0]
