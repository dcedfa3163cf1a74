"""``portraitfx serve``: the HTTP API (effects on images, jobs for videos) with uvicorn."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import typer


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on. Anything but loopback needs --token."
    ),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="PORTRAITFX_API_TOKEN",
        help="Require this token (Authorization: Bearer T or X-API-Token: T) on every endpoint but /healthz. "
        "Prefer the environment variable PORTRAITFX_API_TOKEN: arguments are visible to other users.",
        show_default=False,
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Folder for uploads, jobs and the job database [default: $PORTRAITFX_HOME/server].",
    ),
    queue: int = typer.Option(8, "--queue", min=0, help="Image requests that may wait; more get 429."),
    timeout: float = typer.Option(
        120.0, "--timeout", min=1.0, help="Seconds an image request may take (504 after)."
    ),
    max_image_mb: float = typer.Option(25.0, "--max-image-mb", min=0.1, help="Largest image upload, MB."),
    max_video_mb: float = typer.Option(500.0, "--max-video-mb", min=0.1, help="Largest video upload, MB."),
    allow_no_token: bool = typer.Option(
        False,
        "--allow-no-token",
        help="Listen on a non-loopback address without a token (anyone who reaches the port can use the server).",
    ),
    log_level: str = typer.Option(
        "info", "--log-level", help="uvicorn log level (debug, info, warning, error)."
    ),
    studio: bool = typer.Option(
        False, "--studio", help="Also serve the web studio at /studio (same port, same token)."
    ),
) -> int:
    """Serve the HTTP API: POST /v1/effects/NAME for images, /v1/jobs for videos (docs at /docs).

    Video jobs are stored in a SQLite database in the data folder: a restart (or a
    crash) of the server loses no accepted job; interrupted jobs start again.

    Examples:

      portraitfx serve

      PORTRAITFX_API_TOKEN=$(openssl rand -hex 16) portraitfx serve --host 0.0.0.0 --port 8000

      curl -F image=@portrait.jpg -F style=pencil http://127.0.0.1:8000/v1/effects/stylize -o out.png

      portraitfx serve --studio      # and the web studio at http://127.0.0.1:8000/studio/
    """
    from portraitfx.errors import ConfigError

    if not _is_loopback(host) and not token:
        if not allow_no_token:
            raise ConfigError(
                f"refusing to listen on {host} without a token: anyone who can reach the port could use the "
                "server; set PORTRAITFX_API_TOKEN (or --token), or pass --allow-no-token"
            )
        print(
            f"WARNING: listening on {host} WITHOUT A TOKEN: anyone who can reach port {port} can use this server",
            file=sys.stderr,
        )
    try:
        import uvicorn

        from portraitfx.server import ServerSettings, create_app
    except ImportError as err:  # pragma: no cover - the web extra is missing
        raise ConfigError(
            f"the server needs the 'web' extra (pip install 'portraitfx[web]'): {err}"
        ) from None

    mb = 1024 * 1024
    settings = ServerSettings(
        data_dir=data,
        token=token or None,
        queue_size=queue,
        request_timeout=timeout,
        max_image_bytes=int(max_image_mb * mb),
        max_video_bytes=int(max_video_mb * mb),
    )
    app = create_app(settings)
    mounted = None
    if studio:
        from portraitfx.web.studio import mount_studio

        mounted = mount_studio(app, "/studio", token=token or None)
    from portraitfx.server.app import lock_data_dir

    os.close(lock_data_dir(settings.root))  # fail now, in one line, if another server uses the folder
    shown = f"[{host}]" if ":" in host else host
    print(
        f"portraitfx API on http://{shown}:{port} (docs: /docs; data: {settings.root}"
        f"{'; token required' if token else ''}"
        f"{'; studio: /studio/' + ('?token=...' if token else '') if studio else ''}); Ctrl+C stops it",
        file=sys.stderr,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        limit_concurrency=max(64, 4 * (queue + 1)),
        timeout_keep_alive=5,
        server_header=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        if mounted is not None:
            mounted.studio.close()  # type: ignore[attr-defined]
    return 0 if server.started else 1
