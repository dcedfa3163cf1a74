"""``portraitfx web``: the web studio in your browser (Gradio, on this computer)."""

from __future__ import annotations

import typer


def _parse_password(text: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` as a pair (the password may contain ``:``)."""
    from portraitfx.errors import ConfigError

    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError("give the password as USER:PASS (both non-empty)")
    return user, password


def web(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. Anything but 127.0.0.1/localhost needs --password or --token.",
    ),
    port: int = typer.Option(7860, "--port", "-p", min=1, max=65535, help="TCP port to listen on."),
    password: str | None = typer.Option(
        None,
        "--password",
        envvar="PORTRAITFX_WEB_PASSWORD",
        help="Ask for this login, given as USER:PASS.",
        show_default=False,
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="PORTRAITFX_WEB_TOKEN",
        help="Require this secret (8+ characters): open the printed address ending in ?token=...",
        show_default=False,
    ),
    max_faces: int = typer.Option(
        8, "--max-faces", min=1, help="Most faces an effect looks at per image or frame."
    ),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open the page in a browser."),
) -> int:
    """Open the web studio: apply effects to a photo or a video, see before/after, build styles.

    It runs on this computer: it listens on 127.0.0.1 unless told otherwise, never
    makes a public share link, and fetches nothing from the internet. Effects run
    one at a time. Face-swap results carry provenance marks (see docs/web.md and
    docs/responsible-use.md). Stop it with Ctrl+C.

    Examples:

      portraitfx web

      portraitfx web --port 8080 --no-browser

      portraitfx web --host 0.0.0.0 --password me:a-long-secret

      PORTRAITFX_WEB_TOKEN=$(openssl rand -hex 16) portraitfx web --host 0.0.0.0
    """
    from portraitfx.errors import ConfigError

    auth = _parse_password(password)
    try:
        from portraitfx.web.studio import StudioSettings, check_host, launch
    except ImportError as err:
        if (err.name or "").split(".")[0] not in ("gradio", "fastapi", "uvicorn", "starlette"):
            raise
        raise ConfigError(
            f"the web studio needs the 'web' extra ({err.name} is missing): pip install 'portraitfx[web]'"
        ) from None
    check_host(host, auth, token)
    launch(
        host,
        port,
        auth,
        token=token,
        settings=StudioSettings(max_faces=max_faces),
        open_browser=not no_browser,
        block=True,
    )
    return 0
