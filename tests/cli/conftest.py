"""CLI tests never touch the user's home: every test runs with one shared temporary $PORTRAITFX_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home for the CLI tests (built-in styles are built once and reused)."""
    return tmp_path_factory.mktemp("pfx-cli-home")


@pytest.fixture(autouse=True)
def _cli_home(cli_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PORTRAITFX_HOME", str(cli_home))
    return cli_home
