"""The ``toon`` effect: the shipped student on real faces, frame mode, video smoothing, the CLI, bad models."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import portraitfx as pfx
from portraitfx.effects.base import EffectState
from portraitfx.errors import ConfigError, ModelError


@pytest.fixture(scope="module")
def effect():
    e = pfx.create_effect("toon")
    yield e
    e.close()


def test_the_shipped_model_stylises_the_face_and_leaves_the_rest(effect, astronaut, astronaut_face):
    from portraitfx.effects.toon.effect import default_model_path

    assert default_model_path().stat().st_size < 5_000_000
    out = effect.apply(astronaut, [astronaut_face])
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    x0, y0, x1, y1 = astronaut_face.bbox.astype(int)
    inside = np.abs(out[y0:y1, x0:x1].astype(int) - astronaut[y0:y1, x0:x1]).mean()
    far = np.abs(out[-60:, -120:].astype(int) - astronaut[-60:, -120:]).mean()  # bottom right: no face there
    assert inside > 10 and far == 0
    # identity survives the stylisation (dlib embeddings of the aligned faces)
    from portraitfx.face.identity import FaceEmbedder, identity_similarity

    emb = FaceEmbedder()
    faces_out = pfx.analyze(out)
    assert faces_out, "the stylised face is no longer found"
    sim = identity_similarity(emb(astronaut, astronaut_face), emb(out, faces_out[0]))
    assert sim > 0.3


def test_no_face_many_faces_and_frame_mode(effect, astronaut, obama):
    assert np.array_equal(effect.apply(astronaut, []), astronaut)
    two = np.concatenate([obama, obama], axis=1)
    faces = pfx.analyze(two)
    assert len(faces) == 2
    out = effect.apply(two, faces)
    w = obama.shape[1]
    left, right = out[:, :w].astype(int), out[:, w:].astype(int)
    assert np.abs(left - obama).mean() > 2 and np.abs(right - obama).mean() > 2
    assert np.abs(left - right).mean() < 3  # the same face gets the same treatment
    frame = pfx.create_effect("toon", mode="frame")
    out = frame.apply(astronaut[:250, :330], [])
    assert out.shape == (250, 330, 3)  # sizes that are not multiples of 8 are padded and cut back
    with pytest.raises(ConfigError):
        pfx.create_effect("toon", mode="everything")


def test_video_smoothing_steadies_still_pixels(astronaut, astronaut_face):
    rng = np.random.default_rng(0)
    frames = [
        np.clip(astronaut.astype(int) + rng.integers(-2, 3, astronaut.shape), 0, 255).astype(np.uint8)
        for _ in range(4)
    ]
    flicker = {}
    for amount in (0.0, 0.8):
        e = pfx.create_effect("toon", smoothing=amount)
        state = EffectState()
        face = dataclasses.replace(astronaut_face, track_id=1)
        outs = []
        for i, f in enumerate(frames):
            state.frame_index = i
            outs.append(e.apply(f, [face], state).astype(int))
        x0, y0, x1, y1 = face.bbox.astype(int)  # where the effect draws (the rest is the input's own noise)
        flicker[amount] = np.mean(
            [np.abs(a - b)[y0:y1, x0:x1].mean() for a, b in itertools.pairwise(outs[1:])]
        )
    assert flicker[0.8] < 0.7 * flicker[0.0], flicker


def test_a_model_that_is_not_a_toon_student_is_refused(tmp_path):
    pytest.importorskip("onnx")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["styled"])],
        "id",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("styled", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(ModelError, match="not a toon student"):
        pfx.create_effect("toon", model=path)
    (tmp_path / "pickle.onnx").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelError):
        pfx.create_effect("toon", model=tmp_path / "pickle.onnx")


def test_cli_toon_image_and_video_with_audio(tmp_path, astronaut, capsys):
    from portraitfx.cli.main import main
    from portraitfx.io.video import probe_video
    from portraitfx.testing import clips

    src = tmp_path / "in.png"
    pfx.save_image(src, astronaut)
    assert main(["toon", str(src), "-o", str(tmp_path / "out.png"), "-q"]) == 0
    assert pfx.load_image(tmp_path / "out.png").shape == astronaut.shape
    frames = [np.roll(astronaut[:384, :384], k * 2, axis=1) for k in range(8)]
    video = clips.make_clip(tmp_path / "in.mp4", frames, fps=24, audio_tone_hz=440)
    assert main(["toon", str(video), "-o", str(tmp_path / "out.mp4"), "-q"]) == 0
    info = probe_video(tmp_path / "out.mp4")
    assert info.has_audio and info.frame_count == 8
    assert main(["toon", str(src), "-o", str(tmp_path / "bad.png"), "-m", str(tmp_path / "nope.onnx")]) != 0
    assert "nope.onnx" in capsys.readouterr().err
