"""Template cache: analyse a template video once, then apply effects to it without tracking."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from portraitfx.errors import ConfigError, CorruptInputError, InputError
from portraitfx.face.types import Face
from portraitfx.io.video import VideoReader
from portraitfx.runtime.apply import apply_to_file
from portraitfx.runtime.template import (
    TEMPLATE_SUFFIX,
    Template,
    make_tracker,
    prepare_template,
    templates_dir,
    tracker_settings,
)
from portraitfx.testing import clips

FRAMES = 20


def _clip(path: Path, still: np.ndarray, n: int = FRAMES) -> Path:
    frames = clips.moving_crop_frames(still, n, size=(320, 240), center=(0.54, 0.33), crop=0.8)
    return clips.make_clip(path, frames, fps=30)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, obama) -> Path:
    return _clip(tmp_path_factory.mktemp("template") / "clip.mp4", obama)


@pytest.fixture(scope="module")
def tracked(clip) -> list[list[Face]]:
    """What the tracker finds frame by frame, with the video runtime's settings."""
    out = []
    with VideoReader(clip) as reader, make_tracker(tracker_settings()) as tracker:
        for frame in reader:
            out.append(tracker.update(frame.image, frame.time))
    return out


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PORTRAITFX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _frames(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.image for f in reader]


class DrawEffect:
    """Marks every landmark; records the faces it is given."""

    name = "draw"
    uses_template = True
    smooth_landmarks = True

    def __init__(self) -> None:
        self.seen: dict[int, list[Face]] = {}
        self.outputs: dict[int, bytes] = {}

    def apply(self, frame, faces, state=None):
        index = state.frame_index if state else 0
        self.seen[index] = faces
        out = frame.copy()
        h, w = out.shape[:2]
        for face in faces:
            xy = np.rint(face.points2d).astype(int)
            xy = xy[(xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)]
            out[xy[:, 1], xy[:, 0]] = (255, 0, 0)
        self.outputs[index] = hashlib.sha256(out.tobytes()).digest()
        return out

    def close(self) -> None:
        pass


class PrepEffect(DrawEffect):
    """Has per-face template arrays of varying shapes; checks the ones it is given are its own."""

    name = "prep"
    template_version = "t1"

    def __init__(self) -> None:
        super().__init__()
        self.prepared = 0
        self.checked: dict[int, bool] = {}
        self.got: dict[int, dict] = {}

    def prepare_face(self, frame, face):
        self.prepared += 1
        x0, y0, x1, y1 = np.rint(face.bbox).astype(int)
        h = max(1, min(y1, frame.shape[0]) - max(y0, 0))
        w = max(1, min(x1, frame.shape[1]) - max(x0, 0))
        out = {
            "mask": np.full((h // 8 + 1, w // 8 + 1), face.track_id or 0, np.uint8),
            "centre": face.center.astype(np.float32),
            "mean": frame.reshape(-1, 3).mean(0).astype(np.float32),
        }
        if int(face.bbox[0] * 7) % 2:  # a key some faces do not have
            out["odd"] = np.arange(3, dtype=np.int16)
        return out

    def apply(self, frame, faces, state=None):
        for face in faces:
            got = state.for_face(face).get("template")
            want = self.prepare_face(frame, face)
            self.got[state.frame_index] = got
            self.checked[state.frame_index] = (
                got is not None
                and set(got) == set(want)
                and all(np.array_equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
            )
        return super().apply(frame, faces, state)


def test_prepare_round_trips_the_trackers_faces(clip, tracked, tmp_path):
    out = prepare_template(clip, tmp_path / "clip.pfxtemplate")
    tpl = Template.load(out)
    assert (tpl.frames, tpl.width, tpl.height, round(tpl.fps)) == (FRAMES, 320, 240, 30)
    assert tpl.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert tpl.video_size == clip.stat().st_size and tpl.tracker == tracker_settings()
    assert tpl.effect is None and tpl.extra_keys == []
    assert sum(len(f) for f in tracked) >= FRAMES - 2, "the test clip must show its face"
    assert tpl.face_count == sum(len(f) for f in tracked)
    for i, live in enumerate(tracked):
        stored = tpl.faces(i)
        assert len(stored) == len(live)
        for a, b in zip(stored, live, strict=True):
            assert a.landmarks.dtype == np.float32 and a.landmarks.shape == (478, 3)
            assert np.array_equal(a.landmarks, b.landmarks)
            assert np.array_equal(a.bbox, b.bbox) and a.bbox.dtype == b.bbox.dtype
            assert (a.score, a.pose, a.track_id, a.embedding) == (b.score, b.pose, b.track_id, b.embedding)
        assert tpl.extras(i, 0) == {} if stored else True
    first = tpl.faces(3)[0]
    first.landmarks[:] = 0  # callers get copies
    assert np.array_equal(tpl.faces(3)[0].landmarks, tracked[3][0].landmarks)
    with pytest.raises(InputError, match="outside template"):
        tpl.faces(FRAMES)
    assert out.read_bytes()[8:9] == b"{", "a safetensors file (JSON header), not a pickle"


def test_find_by_content(clip, home, tmp_path):
    assert Template.find(clip) is None
    path = prepare_template(clip)
    assert path.parent == templates_dir() == home / "templates"
    assert path.name == hashlib.sha256(clip.read_bytes()).hexdigest() + TEMPLATE_SUFFIX
    copy = tmp_path / "renamed copy.mp4"
    shutil.copy(clip, copy)
    found = Template.find(copy)
    assert found is not None and found.path == path and found.frames == FRAMES
    edited = tmp_path / "edited.mp4"
    edited.write_bytes(clip.read_bytes() + b"\0")
    assert Template.find(edited) is None


def test_damaged_template_is_ignored_when_found_and_an_error_when_given(clip, home, tmp_path, caplog):
    path = prepare_template(clip)
    good = path.read_bytes()
    # cut off: the safetensors header no longer covers the file
    path.write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="portraitfx.runtime.template"):
        assert Template.find(clip) is None
    assert "ignored the template cache" in caplog.text
    with pytest.raises(CorruptInputError, match="not a valid portraitfx template") as err:
        Template.load(path)
    assert "\n" not in str(err.value) and "prepare it again" in str(err.value)
    # auto: the video is tracked as if there were no cache, and the report says why
    report = apply_to_file(DrawEffect(), clip, tmp_path / "auto.mp4")
    assert report.template is None and report.frames == FRAMES and report.faces > 0
    assert any("ignored the template cache" in w for w in report.warnings)
    # explicit: a clear error and no output
    with pytest.raises(CorruptInputError):
        apply_to_file(DrawEffect(), clip, tmp_path / "explicit.mp4", template=path)
    assert not (tmp_path / "explicit.mp4").exists()
    # other files that are not templates
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "weights.pfxtemplate"))
    with pytest.raises(CorruptInputError, match="not a portraitfx template"):
        Template.load(tmp_path / "weights.pfxtemplate")
    (tmp_path / "junk.pfxtemplate").write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptInputError):
        Template.load(tmp_path / "junk.pfxtemplate")


def test_apply_with_template_skips_tracking_and_matches_the_live_path(clip, home, tmp_path, monkeypatch):
    live_effect = DrawEffect()
    live = apply_to_file(live_effect, clip, tmp_path / "live.mp4", template=None)
    assert live.template is None
    path = prepare_template(clip)

    import portraitfx.face.track as track

    def no_tracker(*args, **kwargs):
        raise AssertionError("a template run must not track faces")

    monkeypatch.setattr(track, "FaceTracker", no_tracker)
    cached_effect = DrawEffect()
    cached = apply_to_file(cached_effect, clip, tmp_path / "cached.mp4")  # "auto" finds it
    assert cached.template == path and not cached.warnings
    assert (cached.frames, cached.faces) == (live.frames, live.faces)
    assert live_effect.seen.keys() == cached_effect.seen.keys()
    for i, faces in live_effect.seen.items():
        for a, b in zip(faces, cached_effect.seen[i], strict=True):
            assert np.array_equal(a.landmarks, b.landmarks) and a.track_id == b.track_id
    assert live_effect.outputs == cached_effect.outputs, "the same frames go to the encoder"
    # (x264 output is not always bit-identical between runs of one process: compare loosely)
    for a, b in zip(_frames(tmp_path / "live.mp4"), _frames(tmp_path / "cached.mp4"), strict=True):
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 35
    # an effect that does not ask for templates is not given the cache in "auto" mode
    with pytest.raises(AssertionError, match="must not track"):
        apply_to_file(type("Plain", (DrawEffect,), {"uses_template": False})(), clip, tmp_path / "p.mp4")


def test_effect_arrays_reach_the_effect_state(clip, tmp_path):
    prep = PrepEffect()
    path = prepare_template(clip, tmp_path / "prep.pfxtemplate", effect=prep)
    tpl = Template.load(path)
    assert prep.prepared == tpl.face_count > 0
    assert (tpl.effect, tpl.effect_version) == ("prep", "t1")
    assert set(tpl.extra_keys) >= {"mask", "centre", "mean"}
    assert {tpl.meta["extras"][k] for k in ("mask", "centre")} == {"uint8", "float32"}
    user = PrepEffect()
    report = apply_to_file(user, clip, tmp_path / "out.mp4", template=path)
    assert report.template == path and not report.warnings
    assert user.checked and all(user.checked.values()), "each face gets its own frame's arrays"
    shapes = {user.got[i]["mask"].shape for i in user.got}
    assert len(shapes) > 1, "arrays of varying shapes"
    with_odd = {i for i, got in user.got.items() if "odd" in got}
    assert with_odd and len(with_odd) < len(user.got), "a key missing on a face is not carried over"
    # another version of the effect: faces are still used, its arrays are not
    other = type("PrepV2", (PrepEffect,), {"template_version": "t2"})()
    report = apply_to_file(other, clip, tmp_path / "v2.mp4", template=path)
    assert report.template == path and any("faces only" in w for w in report.warnings)
    assert not any(other.checked.values())


def test_template_of_another_video_or_settings(clip, obama, home, tmp_path):
    short = _clip(tmp_path / "short.mp4", obama, n=12)
    path = prepare_template(clip, tmp_path / "clip.pfxtemplate")
    with pytest.raises(InputError, match="does not match"):
        apply_to_file(DrawEffect(), short, tmp_path / "o.mp4", template=path)
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(ConfigError, match="for videos"):
        apply_to_file(DrawEffect(), Path(__file__).parents[1] / "data" / "obama.jpg", tmp_path / "o.png",
                      template=path)  # fmt: skip
    # a cache made with other tracker settings is not used automatically
    from portraitfx.face.analyze import AnalyzeOptions

    prepare_template(clip, options=AnalyzeOptions(max_faces=1))
    report = apply_to_file(DrawEffect(), clip, tmp_path / "a.mp4")
    assert report.template is None and any("max_faces 1" in w for w in report.warnings)
    report = apply_to_file(DrawEffect(), clip, tmp_path / "b.mp4", options=AnalyzeOptions(max_faces=1))
    assert report.template is not None and not report.warnings


# --------------------------------------------------------------------------- CLI


def _run(argv, capsys):
    from portraitfx.cli.main import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prepare_then_swap_uses_the_cache(clip, home, tmp_path, data_dir, capsys, monkeypatch):
    from portraitfx.effects.swap import SwapEffect

    monkeypatch.setattr(SwapEffect, "uses_template", True, raising=False)
    code, out, err = _run(["swap", "prepare", clip], capsys)
    assert code == 0, err
    assert f"{FRAMES} frames" in out and TEMPLATE_SUFFIX in out and len(out.strip().splitlines()) == 1
    assert len(list((home / "templates").glob(f"*{TEMPLATE_SUFFIX}"))) == 1
    code, out, err = _run(["swap", "-s", data_dir / "biden.jpg", clip, "-o", tmp_path / "out.mp4"], capsys)
    assert code == 0, err
    assert "faces from template" in out and (tmp_path / "out.mp4").is_file()
    code, out, err = _run(["swap", "prepare", clip, "-o", tmp_path / "c.pfxtemplate", "-q"], capsys)
    assert code == 0 and out == "" and (tmp_path / "c.pfxtemplate").is_file()


def test_cli_errors_are_one_line(clip, tmp_path, data_dir, home, capsys):
    for argv, code in [
        (["swap", "prepare", tmp_path / "missing.mp4"], 2),
        (["swap", "prepare", data_dir / "obama.jpg"], 2),
        (["swap", "prepare", clip, "-o", tmp_path / "x.mp4"], 2),
        (["swap", "-s", data_dir / "biden.jpg", data_dir / "obama.jpg", "-o", tmp_path / "o.png",
          "--template", tmp_path / "t.pfxtemplate", "--no-template"], 2),
        (["swap", "-s", data_dir / "biden.jpg", data_dir / "obama.jpg", "-o", tmp_path / "o.png",
          "--template", tmp_path / "t.pfxtemplate"], 2),
    ]:  # fmt: skip
        got, out, err = _run(argv, capsys)
        assert got == code, (argv, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    code, out, _ = _run(["swap", "prepare", "--help"], capsys)
    assert code == 0 and "swap prepare" in out and "--max-faces" in out
    code, out, _ = _run(["swap", "--help"], capsys)
    assert code == 0 and "--template" in out and "swap prepare" in out
