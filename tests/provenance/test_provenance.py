"""Provenance: the invisible watermark (robustness, quality, false positives), the
metadata round trip, ``portraitfx verify`` and marked videos."""

from __future__ import annotations

import doctest
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portraitfx.cli.main import main
from portraitfx.errors import ConfigError, InputError
from portraitfx.io.images import encode_image, load_image, read_image, save_image
from portraitfx.provenance import (
    MIN_SIDE,
    THRESHOLD,
    WatermarkSkippedWarning,
    detect_watermark,
    detect_watermark_frames,
    effect_code,
    effect_for_code,
    embed_watermark,
    false_positive_bound,
    mark_image,
    provenance_info,
    read_provenance,
    save_marked_image,
    video_metadata,
)
from portraitfx.provenance import metadata as metadata_mod
from portraitfx.provenance import watermark as watermark_mod
from portraitfx.provenance.verify import verify_file
from portraitfx.testing import clips

DATA = Path(__file__).parent.parent / "data"
PHOTOS = sorted(DATA.glob("*.jpg"))
SWAP = effect_code("swap")


# --------------------------------------------------------------------------- helpers


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return load_image(encode_image(image, "JPEG", quality))


def resize(image: np.ndarray, scale: float = 0.75, kernel=Image.Resampling.BICUBIC) -> np.ndarray:
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), kernel))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {p.name: load_image(p) for p in PHOTOS}


@pytest.fixture(scope="module")
def marked(photos) -> dict[str, np.ndarray]:
    return {name: mark_image(img, "swap") for name, img in photos.items()}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- watermark


def test_test_photos_are_there():
    assert len(PHOTOS) >= 5


def test_marked_photos_detected_with_payload_and_high_psnr(photos, marked):
    for name, img in photos.items():
        out = marked[name]
        assert out.shape == img.shape and out.dtype == np.uint8
        quality = psnr(img, out)
        assert quality >= 38.0, (name, quality)
        assert quality >= 39.5, (name, quality)  # the design cap at the default strength
        result = detect_watermark(out)
        assert result.found and result.payload == SWAP, (name, result)
        assert result.score >= 4 * THRESHOLD, (name, result.score)


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(lambda im: jpeg(im, 80), id="jpeg80"),
        pytest.param(lambda im: resize(im, 0.75), id="resize0.75"),
        pytest.param(lambda im: jpeg(resize(im, 0.75), 80), id="resize0.75+jpeg80"),
        pytest.param(
            lambda im: resize(jpeg(im, 80), 0.75, Image.Resampling.LANCZOS), id="jpeg80+lanczos0.75"
        ),
        pytest.param(lambda im: resize(jpeg(im, 80), 0.75, Image.Resampling.BOX), id="jpeg80+box0.75"),
    ],
)
def test_survives_jpeg_and_resize(marked, attack):
    for name, out in marked.items():
        result = detect_watermark(attack(out))
        # measured: 40-77 after 0.75x + JPEG 80 on these photos
        assert result.found and result.score >= 2 * THRESHOLD, (name, result.score)
        assert result.payload == SWAP, (name, result)


def test_jpeg60_is_reported_without_crashing(marked):
    """Quality 60 (+ resize) is beyond the promise; it still works on these photos."""
    for name, out in marked.items():
        for attacked in (jpeg(out, 60), jpeg(resize(out, 0.75), 60)):
            result = detect_watermark(attacked)
            assert isinstance(result.score, float) and np.isfinite(result.score)
            assert result.found, (name, result.score)  # measured 30-76


def test_synthetic_video_frame_720p():
    frame = clips.synthetic_still(720, 1280, seed=3)
    out = mark_image(frame, "swap")
    assert psnr(frame, out) >= 38.0
    assert not detect_watermark(frame).found
    for attacked in (out, jpeg(out, 80), resize(out), jpeg(resize(out), 80)):
        result = detect_watermark(attacked)
        assert result.found and result.payload == SWAP


def test_video_frames_marked_on_the_luma_plane():
    """Frames on their way to the encoder are marked on Y: the same mark, detected as well."""
    from portraitfx.io.video import I420Image
    from portraitfx.provenance import embed_watermark_i420, mark_video_frame

    frame = clips.synthetic_still(720, 1280, seed=5)
    out = mark_video_frame(frame, "swap")
    assert isinstance(out, I420Image) and out.size == (1280, 720)
    plain = I420Image.from_rgb(frame)
    assert np.array_equal(out.data[720:], plain.data[720:])  # chroma untouched
    change_y = out.y.astype(np.float64) - plain.y
    rgb = mark_image(frame, "swap")
    luma = watermark_mod._luma8
    change_rgb = (luma(rgb).astype(np.float64) - luma(frame)) * 219 / 255
    assert np.corrcoef(change_y.ravel(), change_rgb.ravel())[0, 1] > 0.95
    assert abs(change_y.std() / change_rgb.std() - 1) < 0.1
    seen = out.to_rgb()
    assert psnr(plain.to_rgb(), seen) >= 38.0
    for attacked in (seen, jpeg(resize(seen), 80)):
        result = detect_watermark(attacked)
        assert result.found and result.payload == SWAP
    # from the decoded picture with the changed boxes converted in: the same mark, and
    # outside the boxes the chroma is the decoded picture's own
    changed = frame.copy()
    changed[100:300, 200:500] //= 2
    part = mark_video_frame(changed, "swap", base=plain, changed=[(200, 100, 500, 300)])
    from portraitfx.io.video import _i420_planes

    _, u, v = _i420_planes(part.data, 1280, 720)
    _, u0, v0 = _i420_planes(plain.data, 1280, 720)
    _, u1, v1 = _i420_planes(I420Image.from_rgb(changed).data, 1280, 720)
    inside = np.zeros((360, 640), bool)
    inside[50:150, 100:250] = True
    assert isinstance(part, I420Image)
    assert np.array_equal(u[~inside], u0[~inside]) and np.array_equal(v[~inside], v0[~inside])
    assert np.array_equal(u[inside], u1[inside]) and np.array_equal(v[inside], v1[inside])
    keep = np.ones((720, 1280), bool)
    keep[100:300, 200:500] = False
    marked_here = part.y.astype(np.float64)[keep] - plain.y[keep]
    assert np.corrcoef(marked_here, change_y[keep])[0, 1] > 0.9
    assert detect_watermark(part.to_rgb()).found
    # odd sizes stay RGB (marked); tiny frames are left alone and said so; bad buffers refused
    odd = mark_video_frame(frame[:301, :401], "swap")
    assert isinstance(odd, np.ndarray) and detect_watermark(odd).found
    small = I420Image.from_rgb(frame[:100, :100])
    with pytest.warns(WatermarkSkippedWarning):
        assert embed_watermark_i420(small.data) is False
    for bad in (frame, np.zeros((9, 8), np.float32), np.zeros((9, 7), np.uint8)):
        with pytest.raises(InputError):
            embed_watermark_i420(bad)
    with pytest.raises(ConfigError):
        embed_watermark_i420(plain.data, 99)


def test_every_payload_round_trips(photos):
    img = photos["obama.jpg"]
    for payload in range(16):
        result = detect_watermark(jpeg(resize(embed_watermark(img, payload), 0.75), 80))
        assert result.found and result.payload == payload
    assert detect_watermark(embed_watermark(img, b"\x07")).payload == 7


def test_deterministic(photos):
    img = photos["biden.jpg"]
    a, b = embed_watermark(img, 3), embed_watermark(img, 3)
    assert np.array_equal(a, b)
    assert detect_watermark(a) == detect_watermark(b)
    assert not np.shares_memory(a, img)


def test_odd_sizes_and_smallest_pictures():
    rng = np.random.default_rng(5)
    base = clips.synthetic_still(400, 600, seed=1)
    for h, w in [(128, 128), (128, 300), (203, 301), (333, 129), (517, 389)]:
        img = np.ascontiguousarray(base[:h, :w])
        img = np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
        out = embed_watermark(img, 2)
        assert detect_watermark(out).found, (h, w)
        assert detect_watermark(resize(out)).found, (h, w)
        assert not detect_watermark(img).found, (h, w)


def test_too_small_is_left_unmarked_and_said_so():
    img = clips.synthetic_still(100, 160)
    with pytest.warns(WatermarkSkippedWarning, match="too small"):
        out = embed_watermark(img)
    assert np.array_equal(out, img) and out is not img
    result = detect_watermark(np.zeros((40, 50, 3), np.uint8))
    assert not result.found and result.reason and "smaller than" in result.reason
    assert min(out.shape[:2]) < MIN_SIDE


def test_gray_and_rgba(photos):
    gray = photos["obama.jpg"][:, :, 1].copy()
    out = embed_watermark(gray)
    assert out.shape == gray.shape and detect_watermark(out).found
    rgba = np.dstack([photos["obama.jpg"], np.full(gray.shape, 77, np.uint8)])
    out = embed_watermark(rgba)
    assert np.all(out[:, :, 3] == 77) and detect_watermark(out).found


def test_bad_arguments():
    img = np.zeros((200, 200, 3), np.uint8)
    with pytest.raises(InputError):
        embed_watermark(img.astype(np.float32))
    with pytest.raises(InputError):
        detect_watermark("photo.jpg")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        embed_watermark(img, 16)
    with pytest.raises(ConfigError):
        embed_watermark(img, True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        embed_watermark(img, strength=0)
    with pytest.raises(InputError):
        detect_watermark_frames([img, np.zeros((100, 100, 3), np.uint8)])
    assert not detect_watermark_frames([]).found


# --------------------------------------------------------------------------- false positives


def _unmarked_corpus(photos) -> list[tuple[str, np.ndarray]]:
    """Test photos, scikit-image pictures, random crops, re-encodings, noise, flats, patterns."""
    rng = np.random.default_rng(2024)
    base = list(photos.items())
    base.append(("synthetic", clips.synthetic_still(480, 640, seed=7)))
    try:
        import skimage.data as skd

        for name in ("astronaut", "camera", "coffee", "chelsea", "brick", "grass", "gravel", "moon",
                     "page", "text", "coins", "rocket", "immunohistochemistry", "hubble_deep_field",
                     "clock", "cell", "retina", "colorwheel"):  # fmt: skip
            try:
                img = np.asarray(getattr(skd, name)())
            except Exception:  # a data file that is not installed
                continue
            base.append((name, img[:, :, :3] if img.ndim == 3 else img))
    except ImportError:
        pass
    corpus: list[tuple[str, np.ndarray]] = []
    for name, img in base:
        img = np.ascontiguousarray(img)
        rgb = img if img.ndim == 3 else np.dstack([img] * 3)
        corpus += [
            (name, img),
            (f"{name}/q80", jpeg(rgb, 80)),
            (f"{name}/0.75", resize(img)),
            (f"{name}/mirror", np.ascontiguousarray(img[:, ::-1])),
        ]
        h, w = img.shape[:2]
        for i in range(6):
            ch, cw = int(rng.integers(min(h, 64), h + 1)), int(rng.integers(min(w, 64), w + 1))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            corpus.append((f"{name}/crop{i}", np.ascontiguousarray(img[y : y + ch, x : x + cw])))
    for h, w in [(128, 128), (240, 320), (480, 640), (720, 1280)]:
        noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        corpus.append((f"noise{h}", noise))
        corpus.append(
            (f"blurred-noise{h}", np.asarray(Image.fromarray(noise).resize((w // 4, h // 4)).resize((w, h))))
        )
        corpus += [(f"flat{v}-{h}", np.full((h, w, 3), v, np.uint8)) for v in (0, 128, 255)]
        ramp = np.linspace(0, 255, w).astype(np.uint8)
        corpus.append((f"ramp{h}", np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (h, w, 3)))))
        yy, xx = np.mgrid[:h, :w]
        corpus.append((f"checker{h}", (((yy // 8 + xx // 8) % 2) * 255).astype(np.uint8)))
    return corpus


def test_no_false_positives_on_unmarked_pictures(photos):
    corpus = _unmarked_corpus(photos)
    assert len(corpus) >= 200
    scores = {name: detect_watermark(img).score for name, img in corpus}
    worst = max(scores, key=scores.__getitem__)
    # calibrated null: unmarked pictures score ~1-4; the threshold is 7.5 (bound 5e-11)
    assert scores[worst] < 0.7 * THRESHOLD, (worst, scores[worst])
    assert not any(detect_watermark(img).found for _, img in corpus[:20])
    mean = float(np.mean(list(scores.values())))
    assert 0.5 < mean < 3.0, mean


def test_false_positive_bound_is_tiny():
    assert false_positive_bound() < 1e-9
    assert false_positive_bound(THRESHOLD) == false_positive_bound()
    assert false_positive_bound(0.0) == 1.0


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_metadata_round_trip(tmp_path, photos, suffix):
    img = photos["obama.jpg"]
    path = save_marked_image(tmp_path / f"out{suffix}", img, "swap", timestamp="2026-02-03T04:05:06Z")
    assert path.exists() and not list(tmp_path.glob(".*part*"))
    record = read_provenance(path)
    assert record["generator"].startswith("portraitfx ")
    assert record["effect"] == "swap" and record["effect_code"] == SWAP
    assert record["statement"] == "AI-generated / edited face (face swap)"
    assert record["timestamp"] == "2026-02-03T04:05:06Z"
    assert record["digital_source_type"].endswith("/compositeWithTrainedAlgorithmicMedia")
    assert record["watermark"] is True
    expected = {"exif", "xmp"} | ({"png-text"} if suffix == ".png" else set())
    assert set(record["found_in"]) == expected
    with Image.open(path) as im:  # standard tags other tools show
        exif = im.getexif()
        assert exif[0x0131].startswith("portraitfx ") and "AI-generated" in exif[0x010E]
        if suffix == ".png":
            assert im.info["Software"].startswith("portraitfx") and "face swap" in im.info["Description"]
    loaded = read_image(path)
    assert detect_watermark(loaded.rgb).payload == SWAP


def test_save_marked_image_does_not_mark_twice(tmp_path, photos):
    img = photos["obama2.jpg"]
    once = mark_image(img, "swap")
    save_marked_image(tmp_path / "a.png", once, "swap")
    assert np.array_equal(load_image(tmp_path / "a.png"), once)
    save_marked_image(tmp_path / "b.png", img, "swap")  # not marked yet: marked here
    assert np.array_equal(load_image(tmp_path / "b.png"), once)


def test_save_marked_image_keeps_exif_icc_and_alpha(tmp_path, photos):
    src = Image.fromarray(photos["obama3.jpg"])
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src.save(tmp_path / "src.jpg", exif=exif.tobytes(), icc_profile=icc)
    loaded = read_image(tmp_path / "src.jpg")
    out = save_marked_image(tmp_path / "out.jpg", loaded, "portrait")
    with Image.open(out) as im:
        assert im.getexif()[0x010F] == "CameraMaker" and im.info.get("icc_profile") == icc
    assert read_provenance(out)["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    alpha = np.full(photos["obama3.jpg"].shape[:2], 200, np.uint8)
    save_marked_image(tmp_path / "rgba.webp", photos["obama3.jpg"], "swap", alpha=alpha, quality=100)
    back = read_image(tmp_path / "rgba.webp")
    assert back.alpha is not None and int(back.alpha.min()) == 200
    assert read_provenance(tmp_path / "rgba.webp")["effect"] == "swap"


def test_opt_out_must_be_explicit(tmp_path, photos):
    img = photos["biden.jpg"]
    assert mark_image(img, "swap", provenance=False) is img
    save_marked_image(tmp_path / "plain.png", img, "swap", provenance=False)
    assert read_provenance(tmp_path / "plain.png") == {}
    assert not detect_watermark(load_image(tmp_path / "plain.png")).found
    for bad in (None, 0, "no", "false"):
        with pytest.raises(ConfigError, match="provenance"):
            mark_image(img, "swap", provenance=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="provenance"):
            save_marked_image(tmp_path / "x.png", img, "swap", provenance=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\.png, \.jpg or \.webp"):
        save_marked_image(tmp_path / "x.bmp", img, "swap")
    with pytest.raises(ConfigError):
        mark_image(img, "bad name!")
    assert not list(tmp_path.glob("x.*"))


def test_small_picture_gets_metadata_but_no_mark(tmp_path):
    img = clips.synthetic_still(90, 120)
    with pytest.warns(WatermarkSkippedWarning):
        save_marked_image(tmp_path / "s.png", img, "swap")
    record = read_provenance(tmp_path / "s.png")
    assert record["effect"] == "swap" and record["watermark"] is False


def test_unmarked_files_have_no_record(tmp_path, photos):
    for p in PHOTOS:
        assert read_provenance(p) == {}
    save_image(tmp_path / "plain.webp", photos["obama.jpg"])
    assert read_provenance(tmp_path / "plain.webp") == {}


def test_provenance_info_parts():
    info = provenance_info("face_swap", timestamp="2026-01-01T00:00:00Z")
    assert info.effect == "swap" and info.effect_code == 1
    exif = Image.Exif()
    exif.load(info.exif)
    comment = exif.get_ifd(0x8769)[0x9286]
    assert json.loads(comment[8:])["effect"] == "swap"
    assert set(info.pnginfo) >= {"Software", "Description", "Creation Time", "portraitfx"}
    assert metadata_mod._parse_xmp(info.xmp)["effect"] == "swap"
    tags = video_metadata("swap")
    assert tags["comment"].startswith("portraitfx provenance {") and "face swap" in tags["description"]
    other = provenance_info("my-new-effect")
    assert other.effect_code == 15 and effect_for_code(15) == "other"
    assert effect_for_code(1) == "swap" and effect_for_code(None) is None


def test_hostile_xmp_is_ignored():
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">urn:portraitfx:provenance:1#</x:xmpmeta>'
    assert metadata_mod._parse_xmp(bomb) is None
    assert metadata_mod._parse_xmp(b"<x:xmpmeta urn:portraitfx:provenance:1#") is None


# --------------------------------------------------------------------------- CLI


def test_cli_verify_image_exit_codes(tmp_path, photos, capsys):
    marked = save_marked_image(tmp_path / "swapped.jpg", photos["obama.jpg"], "swap", quality=90)
    code, out, err = run(["verify", marked], capsys)
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("portraitfx mark found in")
    assert "effect: swap" in out and "metadata: yes" in out

    # metadata stripped, re-compressed and downscaled: the watermark alone still tells
    laundered = tmp_path / "laundered.jpg"
    Image.fromarray(resize(load_image(marked), 0.75)).save(laundered, quality=80)
    assert read_provenance(laundered) == {}
    code, out, _ = run(["verify", laundered], capsys)
    assert code == 0 and "effect: swap" in out and "metadata: no" in out

    code, out, _ = run(["verify", DATA / "obama.jpg"], capsys)
    assert code == 1 and out.count("\n") == 1 and out.startswith("no portraitfx mark in")

    code, out, _ = run(["verify", marked, "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["found"] and data["watermark"]["payload"] == SWAP
    assert data["metadata"]["effect"] == "swap" and data["kind"] == "image"


def test_cli_verify_metadata_only(tmp_path, photos, capsys):
    info = provenance_info("swap")
    data = metadata_mod.embed_metadata(encode_image(photos["biden.jpg"], "PNG"), "PNG", info)
    (tmp_path / "meta.png").write_bytes(data)
    code, out, _ = run(["verify", tmp_path / "meta.png"], capsys)
    assert code == 0 and "metadata found" in out and "no watermark" in out


def test_cli_verify_bad_files(tmp_path, capsys):
    code, out, err = run(["verify", tmp_path / "missing.jpg"], capsys)
    assert code >= 2 and err.startswith("error:") and err.count("\n") == 1 and not out
    (tmp_path / "notes.jpg").write_text("hello, not a picture\n")
    code, _, err = run(["verify", tmp_path / "notes.jpg"], capsys)
    assert code >= 2 and "text file" in err
    (tmp_path / "cut.png").write_bytes(encode_image(np.zeros((300, 300, 3), np.uint8), "PNG")[:200])
    code, _, err = run(["verify", tmp_path / "cut.png"], capsys)
    assert code >= 2 and err.startswith("error:")


# --------------------------------------------------------------------------- video


def _frames(n: int, seed: int = 0):
    still = clips.synthetic_still(480, 640, seed=seed)
    return clips.moving_crop_frames(still, n, size=(320, 240))


def test_marked_video_is_detected(tmp_path, capsys):
    from portraitfx.io.video import process_video

    src = clips.make_clip(tmp_path / "src.mp4", _frames(24), fps=12)
    process_video(src, tmp_path / "marked.mp4", lambda f: mark_image(f.image, "swap"), progress=False)
    report = verify_file(tmp_path / "marked.mp4")
    assert report.kind == "video" and report.watermark.found and report.effect == "swap"
    assert report.watermark.frames == 8 and report.watermark.score > 3 * THRESHOLD
    one = verify_file(tmp_path / "marked.mp4", frames=1)
    assert one.watermark.found and one.watermark.score < report.watermark.score  # frames add up
    seeking = verify_file(tmp_path / "marked.mp4", frames=2)  # 24 frames > 8 x 2: seeks
    assert seeking.watermark.found and seeking.watermark.frames == 2
    code, out, _ = run(["verify", tmp_path / "marked.mp4"], capsys)
    assert code == 0 and "over 8 frames" in out and "metadata: no" in out
    code, out, _ = run(["verify", src], capsys)
    assert code == 1 and out.startswith("no portraitfx mark")
    clips.make_audio_only(tmp_path / "tone.m4a")
    code, _, err = run(["verify", tmp_path / "tone.m4a"], capsys)
    assert code >= 2 and "no video stream" in err


def test_video_container_tags_are_read(tmp_path, capsys):
    """VideoWriter has no metadata hook yet; write a tagged clip with PyAV directly."""
    import av

    for suffix in (".mp4", ".mkv"):
        path = tmp_path / f"tagged{suffix}"
        with av.open(str(path), "w") as container:
            container.metadata.update(video_metadata("swap"))
            stream = container.add_stream("libx264", rate=12)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            for image in _frames(12, seed=2):
                frame = av.VideoFrame.from_ndarray(mark_image(image, "swap"), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        record = read_provenance(path)
        assert record["effect"] == "swap" and record["found_in"] == ["container-tags"]
        code, out, _ = run(["verify", path], capsys)
        assert code == 0 and "metadata: yes" in out


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize("module", [watermark_mod, metadata_mod])
def test_docstring_examples(module):
    import portraitfx.provenance as pkg

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mod in (module, pkg):
            result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
            assert result.failed == 0


def test_exif_bytes_reject_garbage():
    with pytest.raises(ConfigError):
        provenance_info("swap").exif_bytes(b"not exif at all")
    assert isinstance(io.BytesIO(provenance_info("swap").exif).read(), bytes)
