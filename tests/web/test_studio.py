"""The web studio: its callbacks without a browser, then the page in headless Chromium.

The browser test starts the studio on a free loopback port (token auth on), drives
Debian's Chromium through Playwright with every non-loopback request blocked and
recorded, applies a built-in style to the sample and checks the result's pixels;
its screenshot goes to ``out/web-studio.png`` (and, with ``PORTRAITFX_UPDATE_DOCS_IMAGES=1``,
to ``docs/images/web-studio.png``).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

gr = pytest.importorskip("gradio")

pytestmark = [  # Gradio's own deprecation noise (numpy, pandas), not ours
    pytest.mark.filterwarnings("ignore:.*np.bool8.*:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated.*"),
]

from portraitfx.assets import sample_path  # noqa: E402
from portraitfx.errors import ConfigError  # noqa: E402
from portraitfx.io.images import load_image, save_image  # noqa: E402
from portraitfx.web.studio import (  # noqa: E402
    ApplyOutputs,
    Studio,
    StudioSettings,
    TokenGate,
    check_host,
    launch,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Studio:
    s = Studio(StudioSettings(work_dir=tmp_path_factory.mktemp("studio")))
    yield s
    s.close()


def _apply(studio: Studio, path: str, effect: str = "stylize", **kw) -> ApplyOutputs:
    args = {
        "style": "ink",
        "region": "face",
        "strength": 1.0,
        "sources": None,
        "target_face": -1,
        "shape": 0.8,
        "skin": 0.85,
        "consent": False,
    } | kw
    return studio.apply(path, effect, *args.values())


def _in_session(studio: Studio, src: Path, name: str | None = None) -> str:
    """Put a file where uploads go for a session outside the browser."""
    dst = studio.session_dir() / (name or src.name)
    shutil.copyfile(src, dst)
    return str(dst)


def _error_text(err: gr.Error) -> str:
    return str(getattr(err, "message", err))


# -- callbacks ---------------------------------------------------------------------------------


def test_stylize_the_sample(studio: Studio) -> None:
    path = studio.use_sample()
    out = _apply(studio, path, style="ink")
    result = Path(out.download)
    assert result.is_file() and result.parent == studio.session_dir()
    before, after = load_image(sample_path()), load_image(result)
    assert after.shape == before.shape
    changed = np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 30
    assert changed.mean() > 0.004, "the face is stylized"
    assert "1 face(s)" in out.status
    assert out.provenance == "", "stylize does not change who a face shows: no provenance line"
    slider = out.slider
    assert isinstance(slider, gr.ImageSlider)
    assert 20 < slider.slider_position < 80
    assert out.video_box.visible is False and out.photo_box.visible is True


def test_swap_shows_provenance(studio: Studio) -> None:
    from portraitfx.provenance import read_provenance

    target = studio.use_sample()
    source = _in_session(studio, DATA / "obama.jpg")
    with pytest.raises(gr.Error) as refused:
        _apply(studio, target, "swap", sources=[source], consent=False)
    assert "consent" in _error_text(refused.value)

    out = _apply(studio, target, "swap", sources=[source], target_face=0, consent=True)
    record = read_provenance(out.download)
    assert record["effect"] == "swap" and record["watermark"] is True
    assert "Marked as AI-edited" in out.provenance
    assert "watermark found" in out.provenance and "face swap" in out.provenance


def test_bad_uploads_give_one_line_errors(studio: Studio, tmp_path: Path) -> None:
    fake = studio.session_dir() / "holiday.jpg"
    fake.write_text("this is not a picture\n" * 20)
    with pytest.raises(gr.Error) as bad:
        _apply(studio, str(fake))
    message = _error_text(bad.value)
    assert "\n" not in message and "Traceback" not in message
    assert "holiday.jpg" in message and str(studio.root) not in message, message

    with pytest.raises(gr.Error) as missing:
        _apply(studio, None)
    assert "upload a photo or a video" in _error_text(missing.value)

    outside = tmp_path / "elsewhere.jpg"
    shutil.copyfile(sample_path(), outside)
    with pytest.raises(gr.Error) as foreign:  # never a path the browser made up
        _apply(studio, str(outside))
    assert "not uploaded through the studio" in _error_text(foreign.value)

    with pytest.raises(gr.Error) as style_path:  # styles come from the list, never a path
        _apply(studio, studio.use_sample(), style=str(tmp_path / "x.pfxstyle"))
    assert "pick a style" in _error_text(style_path.value)


def test_style_builder(studio: Studio) -> None:
    from portraitfx.effects.stylize import list_styles
    from portraitfx.effects.stylize.builtin import render_builtin
    from portraitfx.effects.stylize.pack import styles_dir

    art = studio.session_dir() / "my-oil-painting.png"
    save_image(art, render_builtin("oil"))
    try:
        out = studio.build_style(str(art), "web-oil", True)
        assert Path(out.style_file).name == "web-oil.pfxstyle" and Path(out.style_file).is_file()
        assert out.preview.ndim == 3 and "installed" in out.status
        assert "web-oil" in list_styles()
        assert "web-oil" in [name for _, name in studio.gallery()]
        assert out.style.value == "web-oil", "the new style is picked on the Apply tab"
    finally:
        (styles_dir() / "web-oil.pfxstyle").unlink(missing_ok=True)

    flat = studio.session_dir() / "blank.png"
    save_image(flat, np.full((300, 300, 3), 128, np.uint8))
    with pytest.raises(gr.Error) as no_face:
        studio.build_style(str(flat), "", False)
    message = _error_text(no_face.value)
    assert "no face" in message and "\n" not in message and "blank.png" in message


# -- security ----------------------------------------------------------------------------------


def test_only_loopback_without_auth() -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        check_host(host, None, None)
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(ConfigError, match="refusing to listen"):
            check_host(host, None, None)
        check_host(host, ("me", "secret"), None)
        check_host(host, None, "a-long-token")
    with pytest.raises(ConfigError, match="not both"):
        check_host("127.0.0.1", ("me", "secret"), "a-long-token")
    with pytest.raises(ConfigError, match="at least 8"):
        check_host("0.0.0.0", None, "short")


def test_token_gate() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    app = Starlette(
        routes=[Route("/", lambda request: PlainTextResponse("studio"))],
        middleware=[Middleware(TokenGate, token="sesame-123456", cookie="pfx")],
    )
    client = TestClient(app, follow_redirects=False)
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong-token").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer sesame-123456"}).text == "studio"
    opened = client.get("/?token=sesame-123456&x=1")
    assert opened.status_code == 303 and opened.headers["location"] == "/?x=1"
    assert "sesame" not in opened.headers["set-cookie"]  # the cookie is derived, not the token
    assert client.get("/").text == "studio"  # the client kept the cookie


def test_cli_refuses_public_address_without_auth(capsys: pytest.CaptureFixture[str]) -> None:
    from portraitfx.cli.main import main

    assert main(["web", "--host", "0.0.0.0", "--no-browser"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to listen on 0.0.0.0") and "\n" not in err
    assert main(["web", "--password", "nocolon", "--no-browser"]) == 2


# -- the page in a browser ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium (/usr/bin/chromium) is not installed")
def test_browser_applies_a_style_offline() -> None:
    import httpx
    from PIL import Image

    playwright = pytest.importorskip("playwright.sync_api")

    port, token = _free_port(), "browser-test-token"
    demo = launch("127.0.0.1", port, token=token, block=False, quiet=True)
    external: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}/"
        assert httpx.get(base).status_code == 401, "no page without the token"
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})

                def only_loopback(route) -> None:
                    url = route.request.url
                    if url.startswith(("data:", "blob:")) or urlparse(url).hostname in (
                        "127.0.0.1",
                        "localhost",
                    ):
                        route.continue_()
                    else:  # no network: anything else would hang or fail
                        external.append(url)
                        route.abort()

                page.route("**/*", only_loopback)
                page.goto(f"{base}?token={token}")
                page.wait_for_selector("#pfx-sample", timeout=30_000)
                assert "token=" not in page.url, "the token is swapped for a cookie"

                page.click("#pfx-sample")
                page.wait_for_selector("#pfx-input-photo img", timeout=30_000)
                page.locator("#pfx-styles button.thumbnail-item").filter(has_text="ink").click()
                page.wait_for_function(
                    "document.querySelector('#pfx-style input[value=\"ink\"]').checked", timeout=10_000
                )
                page.click("#pfx-apply")
                page.wait_for_function(
                    "document.querySelectorAll('#pfx-result img').length >= 2", timeout=60_000
                )
                page.wait_for_selector("#pfx-download a", timeout=10_000)
                after_url = page.locator("#pfx-result img").nth(1).get_attribute("src")
                download_url = page.locator("#pfx-download a").first.get_attribute("href")
                assert after_url and download_url
                after = np.asarray(Image.open(io.BytesIO(page.request.get(after_url).body())).convert("RGB"))
                served = np.asarray(
                    Image.open(io.BytesIO(page.request.get(download_url).body())).convert("RGB")
                )
                before = load_image(sample_path())
                assert after.shape == before.shape
                changed = np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 30
                assert changed.mean() > 0.004, "the result differs from the input"
                assert np.array_equal(after, served), "the download is the picture shown"
                assert "1 face(s)" in page.inner_text("#pfx-status")

                page.wait_for_timeout(300)  # let the slider's images settle for the screenshot
                shot = ROOT / "out" / "web-studio.png"
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("PORTRAITFX_UPDATE_DOCS_IMAGES"):  # refresh the docs' copy on request
                    shutil.copyfile(shot, ROOT / "docs" / "images" / "web-studio.png")
            finally:
                browser.close()
    finally:
        demo.close()
        demo.studio.close()
    assert external == [], f"the page tried to reach the internet: {external}"


def test_studio_mounted_in_the_api_server(tmp_path: Path) -> None:
    """``portraitfx serve --studio``: one server, one port, one token for the API and the studio."""
    from fastapi.testclient import TestClient

    from portraitfx.server import ServerSettings, create_app
    from portraitfx.web.studio import mount_studio

    token = "sesame-123456"
    app = create_app(ServerSettings(data_dir=tmp_path / "srv", token=token, run_jobs=False))
    demo = mount_studio(app, "/studio", token=token, settings=StudioSettings(work_dir=tmp_path / "web"))
    try:
        with TestClient(app, follow_redirects=False) as client:
            assert client.get("/studio/").status_code == 401
            assert client.get("/v1/effects").status_code == 401
            opened = client.get(f"/studio/?token={token}")
            assert opened.status_code == 303 and opened.headers["location"] == "/studio/"
            page = client.get("/studio/")
            assert page.status_code == 200 and "portraitfx studio" in page.text
            config = client.get("/studio/config")
            assert config.status_code == 200 and "Apply" in config.text
            effects = client.get("/v1/effects", headers={"X-API-Token": token})
            assert effects.status_code == 200 and "stylize" in effects.text
            assert client.get("/healthz").status_code == 200
    finally:
        demo.studio.close()  # type: ignore[attr-defined]


def test_hair_effect_from_the_studio(studio: Studio, data_dir: Path) -> None:
    """The hair effect through the Apply button's callback, with its own options."""
    assert "hair" in studio.effect_names()
    path = _in_session(studio, data_dir / "obama.jpg")
    out = _apply(studio, path, "hair", hair_edit="recolor", hair_color="#3050c0", hair_amount=1.0)
    before, after = load_image(data_dir / "obama.jpg"), load_image(Path(out.download))
    diff = after.astype(int) - before.astype(int)
    assert (diff[..., 2] - diff[..., 0] > 30).mean() > 0.01  # the hair (a few % of the photo) went blue
    bangs = _apply(studio, path, "hair", hair_edit="bangs", hair_color="", hair_amount=0.5)
    assert Path(bangs.download).is_file() and "1 face(s)" in bangs.status
    with pytest.raises(gr.Error, match="hair colour"):
        _apply(studio, path, "hair", hair_edit="recolor", hair_color="sunset", hair_amount=0.5)
