"""`run_batch` and `portraitfx batch` on a local Ray (2 CPUs, started once for the module)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from portraitfx.cli.main import main
from portraitfx.errors import ConfigError, InputError
from portraitfx.io.images import load_image, save_image
from portraitfx.runtime.batch import MANIFEST_NAME, list_inputs, read_manifest, run_batch
from portraitfx.testing import clips

ray = pytest.importorskip("ray")

PENCIL = {"style": "pencil"}
GOOD = {"obama.jpg", "biden.jpg", "astronaut.png"}


def _small(image: np.ndarray, side: int = 256) -> np.ndarray:
    k = side / max(image.shape[:2])
    return cv2.resize(
        image, (round(image.shape[1] * k), round(image.shape[0] * k)), interpolation=cv2.INTER_AREA
    )


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module; run_batch uses it and leaves it running."""
    if ray.is_initialized():  # pragma: no cover - started elsewhere
        yield ray
        return
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, obama, biden, astronaut) -> Path:
    """3 small portraits, a damaged file, a picture with no face, a short video, and files to leave out."""
    d = tmp_path_factory.mktemp("batch-in")
    save_image(d / "obama.jpg", _small(obama))
    save_image(d / "biden.jpg", _small(biden))
    save_image(d / "astronaut.png", _small(astronaut))
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4)
    save_image(d / "texture.png", clips.synthetic_still(160, 200))
    head = np.ascontiguousarray(astronaut[20:280, 90:360])
    clips.make_clip(d / "clip.mp4", clips.moving_crop_frames(head, 6, size=(240, 180)), fps=12)
    (d / "notes.txt").write_text("not a picture")
    save_image(d / ".hidden.jpg", _small(obama, 64))
    return d


@pytest.fixture(scope="module")
def first(ray_local, folder, tmp_path_factory):
    """The first run over the folder, then a second run into the same output folder."""
    out = tmp_path_factory.mktemp("batch-out")
    report = run_batch(folder, out, "stylize", PENCIL, workers=2, progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    again = run_batch(folder, out, "stylize", PENCIL, workers=2, progress=False)
    return out, report, again, mtimes, lines


def _names(items) -> set[str]:
    return {i.input.name for i in items}


# -- run_batch --------------------------------------------------------------------------------


def test_good_files_done_failures_recorded(first, folder):
    out, report, _, _, _ = first
    assert _names(report.done) == GOOD | {"texture.png", "clip.mp4"}
    assert _names(report.failed) == {"bad.jpg"}
    # two workers are asked for; on a busy machine the first one ready can finish these six small
    # files before the second has loaded its models, and a worker that never started is not counted
    assert not report.skipped and 1 <= report.workers <= 2
    (bad,) = report.failed
    assert "bad.jpg" in bad.error and ("damaged" in bad.error or "not an image" in bad.error), bad.error
    assert "\n" not in bad.error
    for name in GOOD:
        item = next(i for i in report.done if i.input.name == name)
        assert item.faces == 1 and item.frames == 1 and (out / name).is_file()
        assert item.worker and ":" in item.worker
    assert not (out / "bad.jpg").exists() and not (out / ".hidden.jpg").exists()
    assert not list(out.glob(".*part*")), "no temporary files left behind"
    # the face changed, the image kept its size
    src, got = load_image(folder / "obama.jpg"), load_image(out / "obama.jpg")
    assert got.shape == src.shape and np.abs(got.astype(int) - src).mean() > 2


def test_faceless_image_copied_with_warning(first, folder):
    out, report, _, _, _ = first
    item = next(i for i in report.done if i.input.name == "texture.png")
    assert item.faces == 0 and "no face" in item.warning
    assert np.array_equal(load_image(out / "texture.png"), load_image(folder / "texture.png"))
    assert report.warnings == [item.warning]


def test_video_is_one_unit(first):
    from portraitfx.io.video import probe_video

    out, report, _, _, _ = first
    item = next(i for i in report.done if i.input.name == "clip.mp4")
    assert item.frames == 6 and item.faces >= 5
    assert probe_video(out / "clip.mp4").frame_count == 6


def test_manifest_rows(first, folder):
    out, _, _, _, lines = first
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 6 and {r["output"] for r in rows} == GOOD | {"texture.png", "clip.mp4", "bad.jpg"}
    latest = read_manifest(out / MANIFEST_NAME)
    assert latest["bad.jpg"]["status"] == "failed" and "bad.jpg" in latest["bad.jpg"]["error"]
    assert latest["obama.jpg"]["status"] == "done" and latest["obama.jpg"]["faces"] == 1
    assert latest["texture.png"]["warning"].startswith("no face")
    assert latest["clip.mp4"]["frames"] == 6
    assert Path(latest["obama.jpg"]["input"]) == (folder / "obama.jpg").resolve()
    assert len({r["settings"] for r in rows}) == 1 and all(r["effect"] == "stylize" for r in rows)


def test_second_run_does_nothing(first):
    out, _, again, mtimes, lines = first
    assert not again.done and not again.failed and again.workers == 0
    assert _names(again.skipped) == GOOD | {"texture.png", "clip.mp4", "bad.jpg"}
    assert _names(again.failed_earlier) == {"bad.jpg"} and not again.ok
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    assert (out / MANIFEST_NAME).read_text().splitlines() == lines
    assert again.seconds < 1.0, "no Ray, no workers"


def test_same_pixels_as_apply_to_file(first, folder, tmp_path):
    """The workers' kept face analysers and single thread change nothing in the output."""
    from portraitfx.effects import create_effect
    from portraitfx.runtime.apply import apply_to_file

    out = first[0]
    effect = create_effect("stylize", **PENCIL)
    try:
        apply_to_file(effect, folder / "biden.jpg", tmp_path / "biden.jpg", require_faces=False)
    finally:
        effect.close()
    assert (tmp_path / "biden.jpg").read_bytes() == (out / "biden.jpg").read_bytes()


def test_resume_after_interruption(first, folder, tmp_path):
    """A lost output and a manifest line cut short by a crash: those two files again, nothing else."""
    out = tmp_path / "out"
    shutil.copytree(first[0], out)
    (out / "obama.jpg").unlink()
    manifest = out / MANIFEST_NAME
    lines = manifest.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])["output"]
    manifest.write_text("".join(lines[:-1]) + lines[-1][:25])  # the last line half written
    report = run_batch(folder, out, "stylize", PENCIL, workers=2, progress=False, retry_failed=False)
    redone = {"obama.jpg", last} - {"bad.jpg"}
    assert {i.output.name for i in report.done + report.failed} == {"obama.jpg", last}
    assert {i.output.name for i in report.done} == redone
    assert (out / "obama.jpg").is_file()
    rows = read_manifest(manifest)
    assert len(rows) == 6 and rows["obama.jpg"]["status"] == "done"


def test_require_faces_and_retry(ray_local, folder, tmp_path):
    out = tmp_path / "out"
    report = run_batch(
        f"{folder}/*.png", out, "stylize", PENCIL, workers=2, progress=False, require_faces=True
    )
    assert _names(report.done) == {"astronaut.png"}
    (failed,) = report.failed
    assert failed.input.name == "texture.png" and "no face" in failed.error
    assert not (out / "texture.png").exists()
    again = run_batch(f"{folder}/*.png", out, "stylize", PENCIL, progress=False, require_faces=True,
                      retry_failed=True)  # fmt: skip
    assert _names(again.failed) == {"texture.png"} and _names(again.skipped) == {"astronaut.png"}


def test_worker_crash_fails_that_file_only(ray_local):
    """Worker processes that die (alone or mid-chunk): the files they died on fail, every other file
    is done, each recorded once."""
    import os

    from portraitfx.runtime.batch import _Pool

    class Flaky:  # defined here, so Ray ships it by value (this test module is not importable in workers)
        def ready(self):
            return {"worker": str(os.getpid()), "error": None}

        def process_many(self, tasks):
            rows = []
            for task in tasks:
                if task["input"].startswith("crash"):
                    os._exit(1)
                rows.append(
                    {"status": "done", "seconds": 0.001, "faces": 1, "frames": 1, "worker": str(os.getpid())}
                )
            return rows

        def close(self):
            pass

    remote = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(Flaky)
    tasks = [{"input": f"f{i}"} for i in range(40)]
    crashes = {
        "crash1",
        "crash25",
        "crash33",
    }  # first alone, then inside chunks (once results set their size)
    for name in crashes:
        tasks[int(name[5:])] = {"input": name}
    seen: dict[str, dict] = {}

    def emit(task, row):
        assert task["input"] not in seen, "each file is recorded once"
        seen[task["input"]] = row

    pool = _Pool(ray, remote.remote, 2)
    pool.run(tasks, emit)
    assert len(seen) == 40
    for name in crashes:
        assert seen[name]["status"] == "failed" and "worker process died" in seen[name]["error"]
    assert all(row["status"] == "done" for name, row in seen.items() if name not in crashes), {
        k: v for k, v in seen.items() if v["status"] != "done"
    }
    assert pool.started >= 3, "a replacement worker was started"


# -- inputs, without Ray ----------------------------------------------------------------------


def test_list_inputs_glob_keeps_subfolders_and_refuses_clashes(tmp_path):
    src = tmp_path / "shoot"
    for rel in ("a/x.jpg", "a/x.png", "b/x.jpg", "b/.y.jpg", "top.webp", "a/readme.md"):
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    out = src / "out"  # inside the globbed tree: its files are never inputs
    (out / "a").mkdir(parents=True)
    (out / "a" / "x.png").write_bytes(b"")
    pairs, refused = list_inputs(f"{src}/**/*", out, suffix=".png")
    got = {i.relative_to(src).as_posix(): o.relative_to(out).as_posix() for i, o in pairs}
    assert got == {"a/x.jpg": "a/x.png", "b/x.jpg": "b/x.png", "top.webp": "top.png"}
    assert [(r.input.relative_to(src).as_posix(), r.status) for r in refused] == [("a/x.png", "failed")]
    assert "rename one" in refused[0].error
    folder_pairs, _ = list_inputs(src / "a", tmp_path / "o2")
    assert {i.name for i, _ in folder_pairs} == {"x.jpg", "x.png"}


def test_bad_effect_options_fail_before_anything_is_written(folder, tmp_path):
    from portraitfx.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="nosuch"):
        run_batch(folder, tmp_path / "out", "stylize", {"style": "nosuch"}, progress=False)
    with pytest.raises(ConfigError, match="strength"):
        run_batch(folder, tmp_path / "out", "stylize", {"style": "pencil", "strength": 3.0}, progress=False)
    with pytest.raises(ModelNotFoundError, match="did you mean 'stylize'"):
        run_batch(folder, tmp_path / "out", "stylise", {}, progress=False)
    assert not (tmp_path / "out").exists()


def test_list_inputs_errors(tmp_path):
    with pytest.raises(InputError):
        list_inputs(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(InputError, match="no images or videos"):
        list_inputs(f"{tmp_path}/*.jpg", tmp_path / "out")
    with pytest.raises(ConfigError, match="suffix"):
        list_inputs(tmp_path, tmp_path / "out", suffix=".gif")
    with pytest.raises(Exception, match="must differ"):
        (tmp_path / "a.jpg").write_bytes(b"")
        list_inputs(tmp_path, tmp_path)


# -- the command ------------------------------------------------------------------------------


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_exit_codes_and_summary(ray_local, folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(["batch", folder / "obama.jpg", out, "--effect", "stylize", "-s", "pencil",
                             "-O", "strength=0.5", "--workers", "2"], capsys)  # fmt: skip
    assert code == 0, err
    assert "done" in stdout and "files/s" in stdout and (out / "obama.jpg").is_file()
    code, stdout, err = run(["batch", folder / "obama.jpg", out, "-e", "stylize", "-s", "pencil",
                             "-O", "strength=0.5"], capsys)  # fmt: skip
    assert code == 0 and "nothing to do" in stdout
    # the whole folder: bad.jpg fails, exit 1, listed with its message; -q keeps stdout empty
    code, stdout, err = run(["batch", folder, out, "-e", "stylize", "-s", "pencil", "-w", "2", "-q"], capsys)
    assert code == 1 and stdout == ""
    assert "failed: bad.jpg:" in err and "Traceback" not in err
    code, stdout, err = run(["batch", folder, out, "-e", "stylize", "-s", "pencil"], capsys)
    assert code == 1 and "bad.jpg" in stdout and "--retry-failed" in stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-e", "stylise"], "did you mean stylize"),
        (["-e", "stylize", "-O", "strength"], "key=value"),
        (["-e", "stylize", "-O", "strenght=0.5"], "did you mean strength"),
        (["-e", "stylize", "-O", "strength=lots"], "takes a number"),
        (["-e", "stylize", "-O", "region=hair"], "must be one of face, head, frame"),
        (["-e", "stylize", "--source", "me.jpg"], "--source is not an option of stylize"),
        (["-e", "swap"], "swap needs --source"),
        (["-e", "stylize", "--workers", "0"], ""),
    ],
)
def test_cli_usage_errors(argv, message, folder, tmp_path, capsys):
    code, stdout, err = run(["batch", folder, tmp_path / "out", *argv], capsys)
    assert code == 2, (stdout, err)
    assert message in err
    assert not (tmp_path / "out").exists()


def test_option_types():
    from portraitfx.cli.batch import parse_options

    got = parse_options(
        "swap", ["target_face=0", "shape=0.5", "occlusion=no", "forehead=none", "select=largest"]
    )
    assert got == {"target_face": 0, "shape": 0.5, "occlusion": False, "forehead": None, "select": "largest"}
    assert parse_options("stylize", ["guide_step=16", "temporal=true"]) == {
        "guide_step": 16,
        "temporal": True,
    }


def test_unreachable_cluster_fails_fast():
    import socket

    from portraitfx.runtime.batch import _check_reachable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="could not reach the Ray cluster"):
        _check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="could not reach"):
        _check_reachable(f"ray://127.0.0.1:{port}")
    _check_reachable("auto")  # left to Ray
