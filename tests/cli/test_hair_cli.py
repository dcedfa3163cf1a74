"""`portraitfx hair recolor|hairline|fill|bangs|analyze`, run through main(argv)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portraitfx.cli.main import main
from portraitfx.effects.hair import analyze_hair
from portraitfx.io.images import load_image, save_image
from portraitfx.io.video import VideoReader, probe_video
from portraitfx.testing import clips as clipmaker


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("recolor", "--color", "auburn"),
        ("recolor", "-c", "#3050c0", "--strength", "0.8"),
        ("hairline", "--amount", "0.25"),
        ("hairline", "--amount", "-0.2"),
        ("fill",),
        ("bangs", "--amount", "0.6"),
    ],
    ids=lambda a: "-".join(a).replace("#", ""),
)
def test_each_edit_writes_a_changed_photo(tmp_path, data_dir, capsys, obama, args):
    out = tmp_path / "out.png"
    src = data_dir / "obama.jpg"
    code, _, err = run(["hair", args[0], src, "-o", out, *args[1:], "-q"], capsys)
    assert code == 0, err
    result = load_image(out)
    assert result.shape == obama.shape
    changed = np.abs(result.astype(int) - obama.astype(int)).max(-1) > 0
    assert 0 < changed.mean() < 0.25  # the hair (and forehead) only


def test_recolour_from_a_reference_photo(tmp_path, data_dir, capsys, analyzer, astronaut):
    out = tmp_path / "obama_like_astronaut.png"
    code, _, err = run(
        ["hair", "recolor", data_dir / "obama.jpg", "-r", data_dir / "astronaut.jpg", "-o", out], capsys
    )
    assert code == 0, err
    ref = analyze_hair(astronaut, analyzer.analyze(astronaut)[0]).hair_lab
    img = load_image(out)
    got = analyze_hair(img, analyzer.analyze(img)[0])
    # the hue of the dyed hair is the reference's (its chroma direction in Lab)
    ang = lambda lab: np.degrees(np.arctan2(lab[2], lab[1]))  # noqa: E731
    assert abs((ang(got.hair_lab) - ang(ref) + 180) % 360 - 180) < 20


def test_analyze_writes_a_picture(tmp_path, data_dir, capsys):
    out = tmp_path / "hair.png"
    code, stdout, err = run(["hair", "analyze", data_dir / "biden.jpg", "-o", out], capsys)
    assert code == 0, err
    assert "hairline" in stdout and out.is_file()
    assert load_image(out).shape[1] > 2 * load_image(out).shape[0]  # three panels side by side


def test_bad_colour_and_amount_are_one_line_errors(tmp_path, data_dir, capsys):
    src = data_dir / "obama.jpg"
    code, _, err = run(["hair", "recolor", src, "-c", "sunset", "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and "hex code" in one_line_error(err)
    code, _, err = run(["hair", "recolor", src, "-c", "red", "-r", src, "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and "not both" in one_line_error(err)
    code, _, err = run(["hair", "hairline", src, "--amount", "3", "-o", tmp_path / "x.png"], capsys)
    assert code == 2
    assert not (tmp_path / "x.png").exists()


def test_no_face_and_no_hair_are_clear(tmp_path, capsys, analyzer, obama):
    blank = save_image(tmp_path / "blank.png", np.full((200, 200, 3), 120, np.uint8))
    code, _, err = run(["hair", "bangs", blank, "-o", tmp_path / "x.png"], capsys)
    assert code == 3 and "no face" in one_line_error(err)
    # a shaved head: the hair painted over with skin
    a = analyze_hair(obama, analyzer.analyze(obama)[0])
    bald = obama.copy()
    x0, y0, x1, y1 = a.box
    hairy = cv2.dilate((a.alpha > 0.05).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    skin = cv2.cvtColor(a.skin_lab.reshape(1, 1, 3).astype(np.float32), cv2.COLOR_Lab2RGB).reshape(3) * 255
    bald[y0:y1, x0:x1][hairy] = skin.astype(np.uint8)
    src = save_image(tmp_path / "bald.png", bald)
    code, _, err = run(["hair", "recolor", src, "-c", "red", "-o", tmp_path / "x.png"], capsys)
    assert code == 3 and "hair" in one_line_error(err)
    assert not (tmp_path / "x.png").exists()


def test_video_keeps_audio_and_changes_only_the_hair(tmp_path, capsys, obama):
    frames = clipmaker.moving_crop_frames(obama, 12, size=(256, 320), center=(0.54, 0.3), crop=0.85)
    src = clipmaker.make_clip(tmp_path / "in.mp4", frames, fps=24)
    out = tmp_path / "out.mp4"
    code, _, err = run(["hair", "recolor", src, "-c", "blue", "-o", out], capsys)
    assert code == 0, err
    info = probe_video(out)
    assert info.has_audio and info.frame_count == 12
    with VideoReader(src) as a, VideoReader(out) as b:
        for fa, fb in zip(a, b, strict=True):
            diff = fb.image.astype(np.float32) - fa.image.astype(np.float32)
            blue = diff[..., 2] - diff[..., 0]  # hair turned blue: blue up, red down
            assert (blue > 30).mean() > 0.02
            assert np.abs(diff).max(-1).__gt__(30).mean() < 0.3
