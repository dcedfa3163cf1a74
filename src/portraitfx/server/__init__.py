"""The portraitfx HTTP API: ``create_app(ServerSettings(...))`` builds the FastAPI app.

``portraitfx serve`` runs it with uvicorn; see ``docs/api.md`` for the endpoints,
limits, authentication and how video jobs survive restarts. The app needs the
``web`` extra (FastAPI, uvicorn, python-multipart); it is imported on first use, so
the job processes (:mod:`portraitfx.server._jobproc`) do not load FastAPI.

Example:
    >>> from portraitfx.server import ServerSettings, create_app     # doctest: +SKIP
    >>> app = create_app(ServerSettings(token="a-long-secret"))       # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portraitfx.server.settings import ServerSettings

if TYPE_CHECKING:  # pragma: no cover
    from portraitfx.server.app import create_app

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from portraitfx.server.app import create_app

        return create_app
    raise AttributeError(f"module 'portraitfx.server' has no attribute {name!r}")
