"""`portraitfx stylize` and `portraitfx style build|list|show`, run through main(argv)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from portraitfx.cli.main import main
from portraitfx.io.images import load_image, save_image
from portraitfx.testing import clips as clipmaker

BUILTINS = ("pencil", "watercolour", "oil", "ink")


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory, obama, biden) -> Path:
    """Obama and Biden side by side, faces of similar size."""
    h = min(obama.shape[0], biden.shape[0])
    parts = [cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h), interpolation=cv2.INTER_AREA)
             for im in (obama, biden)]  # fmt: skip
    return save_image(tmp_path_factory.mktemp("two") / "two.jpg", np.concatenate(parts, axis=1))


@pytest.fixture(scope="module")
def gray_png(tmp_path_factory) -> Path:
    return save_image(tmp_path_factory.mktemp("gray") / "gray.png", np.full((180, 240, 3), 128, np.uint8))


@pytest.fixture(scope="module")
def obama_style(tmp_path_factory, data_dir, cli_home) -> Path:
    """`style build` on obama.jpg (-o and --install); shared by the tests that use a built style."""
    path = tmp_path_factory.mktemp("styles") / "obama-sketch.pfxstyle"
    with pytest.MonkeyPatch.context() as mp:  # runs before the per-test home fixture
        mp.setenv("PORTRAITFX_HOME", str(cli_home))
        code = main(["style", "build", str(data_dir / "obama.jpg"), "-o", str(path), "--install", "-q"])
    assert code == 0
    return path


# -- stylize --------------------------------------------------------------------------------


def test_stylize_image(tmp_path, data_dir, obama, analyzer, capsys):
    out = tmp_path / "obama_pencil.png"
    code, stdout, err = run(["stylize", data_dir / "obama.jpg", "-s", "pencil", "-o", out], capsys)
    assert code == 0, err
    assert "1 face(s)" in stdout and str(out) in stdout
    got = load_image(out).astype(np.int16)
    assert got.shape == obama.shape
    x0, y0, x1, y1 = (int(v) for v in analyzer.analyze(obama)[0].bbox)
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
    assert np.abs(got[inner] - obama[inner]).mean() > 8, "the face must change"
    assert np.abs(got[-80:] - obama[-80:]).mean() < 1, "the rest of the picture stays as it was (PNG)"
    assert not list(tmp_path.glob(".*part*")), "no temporary files left behind"


def test_stylize_video_keeps_frames_and_audio(tmp_path, astronaut, capsys):
    from portraitfx.io.video import probe_video

    head = np.ascontiguousarray(astronaut[20:280, 90:360])
    clip = clipmaker.make_clip(
        tmp_path / "clip.mp4", clipmaker.moving_crop_frames(head, 20, size=(320, 240)), fps=20
    )
    out = tmp_path / "clip_ink.mp4"
    code, stdout, err = run(["stylize", clip, "-s", "ink", "-o", out, "--strength", "0.8"], capsys)
    assert code == 0, err
    assert "20 frames" in stdout and "per second of video" in stdout
    src, got = probe_video(clip), probe_video(out)
    assert got.frame_count == src.frame_count == 20
    assert got.has_audio and (got.width, got.height) == (320, 240)
    assert abs(got.duration - src.duration) < 1.5 / 20


def test_stylize_folder_skips_text_resumes_and_reports_failures(tmp_path, data_dir, gray_png, capsys):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(data_dir / "obama.jpg", src / "a.jpg")
    shutil.copy(data_dir / "biden.jpg", src / "b.jpg")
    (src / "notes.txt").write_text("not a picture")
    code, stdout, err = run(["stylize", src, "-s", "oil", "-o", dst], capsys)
    assert code == 0, err
    assert sorted(p.name for p in dst.iterdir()) == ["a.jpg", "b.jpg"]
    assert "2 file(s) written" in stdout
    stamps = {p.name: p.stat().st_mtime_ns for p in dst.iterdir()}

    shutil.copy(gray_png, src / "wall.png")  # no face: fails, the others are already done
    code, stdout, err = run(["stylize", src, "-s", "oil", "-o", dst], capsys)
    assert code == 1
    assert "0 file(s) written, 2 skipped" in stdout and "1 failed" in stdout
    failures = err.strip().splitlines()
    assert len(failures) == 1 and failures[0].startswith("failed: wall.png: no face"), err
    assert {p.name: p.stat().st_mtime_ns for p in dst.iterdir()} == stamps, "existing outputs are not redone"


def test_stylize_image_without_face_exits_3(tmp_path, gray_png, capsys):
    code, _, err = run(["stylize", gray_png, "-s", "pencil", "-o", tmp_path / "g.png"], capsys)
    assert code == 3 and "no face" in one_line_error(err)
    assert not (tmp_path / "g.png").exists()


def test_unknown_style_suggests_close_names(tmp_path, data_dir, capsys):
    code, _, err = run(["stylize", data_dir / "obama.jpg", "-s", "pencl", "-o", tmp_path / "o.png"], capsys)
    assert code == 4 and "did you mean 'pencil'" in one_line_error(err)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (lambda d, t: [d / "obama.jpg", "-o", t / "o.mp4"], 2, "give an image output"),
        (lambda d, t: [d, "-o", (t / "f.txt").write_text("x") and t / "f.txt"], 5, "must be one too"),
        (lambda d, t: [d, "-o", d], 5, "must differ"),
        (lambda d, t: [d / "obama.jpg", "-o", t / "no/dir/o.png"], 5, "does not exist"),
        (lambda d, t: [d / "nope.jpg", "-o", t / "o.png"], 2, "not found"),
    ],
)
def test_stylize_bad_paths_fail_before_work(tmp_path, data_dir, capsys, args, code, needle):
    got, _, err = run(["stylize", *args(data_dir, tmp_path), "-s", "pencil"], capsys)
    assert got == code and needle in one_line_error(err)


# -- style build ----------------------------------------------------------------------------


def test_style_build_then_stylize_with_it(tmp_path, data_dir, obama_style, cli_home, capsys):
    from portraitfx.effects.stylize.pack import load_style

    pack = load_style(obama_style)
    assert pack.name == "obama-sketch" and pack.exemplar.shape == (512, 512, 3)
    assert pack.meta["source_eye_distance"] > 40
    assert (cli_home / "styles" / "obama-sketch.pfxstyle").is_file(), "--install copies it into the home"
    code, stdout, err = run(
        ["stylize", data_dir / "biden.jpg", "-s", obama_style, "-o", tmp_path / "b.png"], capsys
    )
    assert code == 0, err
    assert load_image(tmp_path / "b.png").shape == load_image(data_dir / "biden.jpg").shape
    code, stdout, _ = run(["style", "list"], capsys)  # installed styles are listed and usable by name
    assert code == 0 and any(
        line.startswith("obama-sketch") and "installed" in line for line in stdout.splitlines()
    )
    code, stdout, err = run(["style", "show", "obama-sketch"], capsys)
    assert code == 0 and "'obama.jpg'" in stdout, err


def test_style_build_prints_facts(tmp_path, data_dir, capsys):
    out = tmp_path / "o.pfxstyle"
    code, stdout, err = run(["style", "build", data_dir / "obama.jpg", "-o", out, "--size", "256"], capsys)
    assert code == 0, err
    assert "px between the eyes" in stdout and f"wrote {out}" in stdout and "built from" in stdout


def test_style_build_from_analyze_json(tmp_path, data_dir, capsys):
    doc = tmp_path / "faces.json"
    assert run(["analyze", data_dir / "obama.jpg", "--json", doc, "-q"], capsys)[0] == 0
    points = tmp_path / "points.json"
    points.write_text(json.dumps([p[:2] for p in json.loads(doc.read_text())["faces"][0]["landmarks"]]))
    for i, lm in enumerate((doc, points)):
        out = tmp_path / f"s{i}.pfxstyle"
        code, _, err = run(
            ["style", "build", data_dir / "obama.jpg", "--landmarks", lm, "-o", out, "-q"], capsys
        )
        assert code == 0 and out.is_file(), err
    # landmarks of another picture are refused
    code, _, err = run(["style", "build", data_dir / "biden.jpg", "--landmarks", doc, "-o", tmp_path / "x.pfxstyle"],
                       capsys)  # fmt: skip
    assert code == 2 and "was measured on a 512x640 image" in one_line_error(err)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[[1, 2", "not readable JSON"),
        ('{"faces": []}', "lists no faces"),
        ("[[1, 2], [3, 4]]", "expected 478 points"),
        (json.dumps([[5000.0, 5000.0]] * 478), "outside"),
    ],
)
def test_style_build_bad_landmarks(tmp_path, data_dir, capsys, content, needle):
    lm = tmp_path / "lm.json"
    lm.write_text(content)
    code, _, err = run(["style", "build", data_dir / "obama.jpg", "--landmarks", lm, "-o", tmp_path / "s.pfxstyle"],
                       capsys)  # fmt: skip
    assert code == 2 and needle in one_line_error(err)


def test_style_build_without_face_exits_3(tmp_path, gray_png, capsys):
    code, _, err = run(["style", "build", gray_png, "-o", tmp_path / "g.pfxstyle"], capsys)
    assert code == 3 and "no face" in one_line_error(err)
    assert not (tmp_path / "g.pfxstyle").exists()


def test_style_build_with_two_faces_is_refused(tmp_path, two_faces, capsys):
    code, _, err = run(["style", "build", two_faces, "-o", tmp_path / "t.pfxstyle"], capsys)
    assert code == 2 and "2 faces" in one_line_error(err)
    assert not (tmp_path / "t.pfxstyle").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ([], "-o NAME.pfxstyle, --install"),
        (["-o", "{t}/s.png"], "end in .pfxstyle"),
        (["--install", "--name", "pencil"], "built-in style"),
        (["--install", "--name", "../evil"], "cannot install"),
        (["-o", "{t}/s.pfxstyle", "--size", "64"], "128..2048"),
    ],
)
def test_style_build_bad_options(tmp_path, data_dir, capsys, extra, needle):
    argv = ["style", "build", data_dir / "obama.jpg", *(a.format(t=tmp_path) for a in extra)]
    code, _, err = run(argv, capsys)
    assert code == 2 and needle in one_line_error(err)


# -- style list / show ----------------------------------------------------------------------


def test_style_list_shows_builtins(capsys):
    code, stdout, _ = run(["style", "list"], capsys)
    assert code == 0
    lines = stdout.splitlines()
    for name in BUILTINS:
        assert any(line.startswith(name) and "built-in" in line for line in lines), stdout
    code, stdout, _ = run(["style", "list", "-q"], capsys)
    assert stdout.splitlines()[:4] == list(BUILTINS)


def test_style_show_writes_preview(tmp_path, capsys):
    out = tmp_path / "pencil.png"
    code, stdout, err = run(["style", "show", "pencil", "-o", out], capsys)
    assert code == 0, err
    assert "512x512" in stdout and "px apart" in stdout and "built-in" in stdout
    preview = load_image(out)
    assert preview.shape[0] == 512 and preview.shape[1] > 1024
    left, right = preview[:, :512].astype(int), preview[:, -512:].astype(int)
    assert np.abs(left - right).mean() > 1, "the right half has the mesh drawn"


def test_style_show_unknown(capsys):
    code, _, err = run(["style", "show", "watercolor"], capsys)
    assert code == 4 and "did you mean 'watercolour'" in one_line_error(err)


# -- demo -----------------------------------------------------------------------------------


def test_demo_writes_the_stylize_results(tmp_path, capsys):
    from portraitfx.io.video import probe_video

    code, _, err = run(["demo", "--out", tmp_path, "--quiet"], capsys)
    assert code == 0, err
    sheet, pairs = load_image(tmp_path / "stylize.png"), load_image(tmp_path / "stylize_styles.png")
    assert sheet.shape == (320, 5 * 320, 3) and pairs.shape == (512, 1024, 3)
    clip, styled = probe_video(tmp_path / "sample_clip.mp4"), probe_video(tmp_path / "stylize.mp4")
    assert styled.frame_count == clip.frame_count and styled.has_audio
    assert load_image(tmp_path / "toon.png").shape == (320, 3 * 320, 3)  # photo, teacher, student
    toon = probe_video(tmp_path / "toon.mp4")
    assert toon.frame_count == clip.frame_count and toon.has_audio
