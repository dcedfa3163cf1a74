"""The `portraitfx` command: real runs in a subprocess-free way (main(argv)) and one real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from portraitfx.cli.main import main
from portraitfx.testing import clips as clipmaker


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_and_help(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("portraitfx ")
    code, out, _ = run(["analyze", "--help"], capsys)
    assert code == 0 and "--overlay" in out and "--json" in out


def test_analyze_image_writes_json_and_overlay(tmp_path, data_dir, capsys):
    src = tmp_path / "astronaut.jpg"
    shutil.copy(data_dir / "astronaut.jpg", src)
    before = src.read_bytes()
    code, out, err = run(
        ["analyze", src, "--json", tmp_path / "f.json", "--overlay", tmp_path / "f.png"], capsys
    )
    assert code == 0, err
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["kind"] == "image" and len(data["faces"]) == 1
    face = data["faces"][0]
    assert len(face["landmarks"]) == 478 and set(face["pose"]) == {"yaw", "pitch", "roll"}
    from portraitfx.io.images import load_image

    overlay = load_image(tmp_path / "f.png")
    assert overlay.shape == (512, 512, 3)
    assert np.abs(overlay.astype(int) - load_image(src).astype(int)).sum() > 0  # something was drawn
    assert src.read_bytes() == before, "the input must never change"
    assert "1 face(s)" in out
    assert not list(tmp_path.glob(".*part*")), "no temporary files left behind"


def test_json_to_stdout(data_dir, capsys):
    code, out, _ = run(
        ["analyze", data_dir / "obama.jpg", "--json", "-", "--no-landmarks", "--embed"], capsys
    )
    assert code == 0
    data = json.loads(out)
    assert "landmarks" not in data["faces"][0] and len(data["faces"][0]["embedding"]) == 128


def test_analyze_video_tracks_and_keeps_audio(tmp_path, astronaut, capsys):
    head = np.ascontiguousarray(astronaut[20:280, 90:360])  # the face in the middle of the moving window
    clip = clipmaker.make_clip(
        tmp_path / "clip.mp4", clipmaker.moving_crop_frames(head, 45, size=(480, 360)), fps=30
    )
    code, _, err = run(
        ["analyze", clip, "--json", tmp_path / "t.json", "--overlay", tmp_path / "t.mp4"], capsys
    )
    assert code == 0, err
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["kind"] == "video" and data["frame_count"] == 45
    with_face = [f for f in data["frames"] if f["faces"]]
    assert len(with_face) >= 43
    assert {f["faces"][0]["track_id"] for f in with_face} == {0}, "one face, one id"
    from portraitfx.io.video import probe_video

    info = probe_video(tmp_path / "t.mp4")
    src = probe_video(clip)
    assert info.frame_count == 45 and info.has_audio
    assert abs(info.duration - src.duration) < 1.5 / 30


@pytest.mark.parametrize(
    ("make", "code", "needle"),
    [
        (lambda p: p / "missing.jpg", 2, "not found"),
        (
            lambda p: (p / "notes.jpg").write_text("hello there, not a picture") and p / "notes.jpg",
            2,
            "text file",
        ),
        (
            lambda p: (
                (p / "trunc.jpg").write_bytes(
                    (Path(__file__).parents[1] / "data/obama.jpg").read_bytes()[:3000]
                )
                and p / "trunc.jpg"
            ),
            2,
            "truncated",
        ),
        (lambda p: p, 2, "folder"),
    ],
)
def test_bad_inputs_one_line_error(tmp_path, capsys, make, code, needle):
    got, _, err = run(["analyze", make(tmp_path)], capsys)
    assert got == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err


def test_no_face_exit_code(tmp_path, capsys):
    from portraitfx.io.images import save_image

    save_image(tmp_path / "wall.png", np.full((200, 300, 3), 180, np.uint8))
    code, _, err = run(["analyze", tmp_path / "wall.png", "--json", tmp_path / "w.json"], capsys)
    assert code == 3 and "no face" in err
    assert json.loads((tmp_path / "w.json").read_text())["faces"] == []


def test_refuses_to_overwrite_input(tmp_path, data_dir, capsys):
    src = tmp_path / "a.jpg"
    shutil.copy(data_dir / "astronaut.jpg", src)
    before = src.read_bytes()
    code, _, err = run(["analyze", src, "--overlay", src], capsys)
    assert code == 5 and "overwrite" in err
    assert src.read_bytes() == before


def test_bad_output_folder_fails_before_work(tmp_path, data_dir, capsys):
    code, _, err = run(
        ["analyze", data_dir / "astronaut.jpg", "--json", tmp_path / "no/such/dir/x.json"], capsys
    )
    assert code == 5 and "does not exist" in err


def test_truncated_video_keeps_what_was_decoded(tmp_path, astronaut, capsys):
    head = np.ascontiguousarray(astronaut[20:280, 90:360])
    clip = clipmaker.make_clip(
        tmp_path / "clip.mp4", clipmaker.moving_crop_frames(head, 60, size=(320, 240)), fps=30
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.6)])
    code, _, err = run(["analyze", cut, "--json", tmp_path / "c.json"], capsys)
    assert code == 2 and "truncated" in err
    data = json.loads((tmp_path / "c.json").read_text())
    assert 0 < data["frame_count"] < 60 and data["truncated"] is True


def test_real_process_exit_code_and_stderr(tmp_path):
    exe = Path(sys.executable).with_name("portraitfx")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "portraitfx.cli.main"]
    proc = subprocess.run([*cmd, "analyze", str(tmp_path / "nope.png")], capture_output=True, text=True,
                          env={**os.environ, "PORTRAITFX_DEBUG": ""}, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: input not found: '{tmp_path / 'nope.png'}'"
