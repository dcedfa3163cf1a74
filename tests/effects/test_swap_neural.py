"""Neural swap runtime: tiny ONNX swappers built here, run on a real face through the pipeline."""

from __future__ import annotations

import json
import pickle
import struct

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from portraitfx.effects.swap.neural import NeuralSwapper, swap_face_neural
from portraitfx.errors import ConfigError, InputError, ModelError, UnsafeModelError
from portraitfx.face.align import alignment_matrix
from portraitfx.face.regions import region_mask
from portraitfx.models import registry

DIM = 8
TINT = np.array([0.2, -0.2, 0.1], np.float32)  # what identity e0 adds to the crop, per RGB channel


def _save(graph: onnx.GraphProto, path, meta: dict[str, str] | None = None):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    model.ir_version = 8
    if meta:
        helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def swapper_model(
    path,
    *,
    size: int | str = 64,
    dim: int | str = DIM,
    mask: float | None = None,
    names: tuple[str, str] = ("target", "source"),
    layout: str = "nchw",
    meta: dict[str, str] | None = None,
):
    """``swapped = clip(target + source @ W)`` with ``W[0] = TINT``; optional constant mask."""
    w = np.zeros((DIM, 3), np.float32)
    w[0] = TINT
    tshape = [1, 3, size, size] if layout == "nchw" else [1, size, size, 3]
    nodes = [
        helper.make_node("MatMul", [names[1], "W"], ["tint"]),
        helper.make_node("Reshape", ["tint", "shape4"], ["tint4"]),
        helper.make_node("Add", [names[0], "tint4"], ["raw"]),
        helper.make_node("Clip", ["raw", "lo", "hi"], ["swapped"]),
    ]
    outputs = [helper.make_tensor_value_info("swapped", TensorProto.FLOAT, tshape)]
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(
            np.array([1, 3, 1, 1] if layout == "nchw" else [1, 1, 1, 3], np.int64), "shape4"
        ),
        numpy_helper.from_array(np.array(0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1, np.float32), "hi"),
    ]
    if mask is not None:
        nodes += [
            helper.make_node("ReduceMean", [names[0]], ["mean"], axes=[1], keepdims=1),
            helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
            helper.make_node("Add", ["zeros", "maskval"], ["mask"]),
        ]
        inits += [
            numpy_helper.from_array(np.array(0, np.float32), "zero"),
            numpy_helper.from_array(np.array(mask, np.float32), "maskval"),
        ]
        outputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, size, size]))
    graph = helper.make_graph(
        nodes,
        "swapper",
        [
            helper.make_tensor_value_info(names[0], TensorProto.FLOAT, tshape),
            helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [1, dim]),
        ],
        outputs,
        inits,
    )
    return _save(graph, path, meta)


def restore_model(path, *, size: int = 128, add: float = 0.1):
    """``image -> clip(image + add)``: a visible stand-in for a face-restoration network."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["image", "c"], ["raw"]),
            helper.make_node("Clip", ["raw", "lo", "hi"], ["restored"]),
        ],
        "restore",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("restored", TensorProto.FLOAT, [1, 3, size, size])],
        [
            numpy_helper.from_array(np.array(add, np.float32), "c"),
            numpy_helper.from_array(np.array(0, np.float32), "lo"),
            numpy_helper.from_array(np.array(1, np.float32), "hi"),
        ],
    )
    return _save(graph, path)


def e0(dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[0] = 3.0  # not unit length: the swapper normalises it
    return v


@pytest.fixture(scope="module")
def face(analyzer, obama):
    return analyzer.analyze(obama)[0]


@pytest.fixture(scope="module")
def core(obama, face):
    """Pixels well inside the face oval: there the paste mask is 1."""
    m = (region_mask(obama.shape, face.landmarks, "face") > 0.99).astype(np.uint8)
    m = cv2.erode(m, np.ones((3, 3), np.uint8), iterations=int(0.25 * face.eye_distance))
    assert m.sum() > 2000
    return m.astype(bool)


@pytest.fixture(scope="module")
def far(obama, face):
    """Pixels farther than one face size from the face box."""
    x0, y0, x1, y1 = face.bbox
    pad = face.size
    yy, xx = np.mgrid[: obama.shape[0], : obama.shape[1]]
    m = (xx < x0 - pad) | (xx > x1 + pad) | (yy < y0 - pad) | (yy > y1 + pad)
    assert m.sum() > 10000
    return m


# --------------------------------------------------------------------------- the pipeline


def test_swap_follows_the_model_inside_the_face_and_leaves_the_rest(tmp_path, obama, face, core, far):
    swapper = NeuralSwapper(swapper_model(tmp_path / "s.onnx"))
    assert (swapper.size, swapper.identity_dim, swapper.template, swapper.identity_kind) == (
        64,
        DIM,
        "arcface",
        "dlib128",
    )
    assert not swapper.has_mask and swapper.restore_size is None
    out = swap_face_neural(obama, face, swapper, e0())
    assert out.shape == obama.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, obama)
    expected = np.clip(obama.astype(np.float32) + TINT * 255, 0, 255)
    err = np.abs(out.astype(np.float32) - expected)[core]
    # the crop is resampled twice (down to 64 px and back), so edges blur; the bulk follows the model
    assert np.median(err, axis=0).max() < 6, np.median(err, axis=0)
    shift = (out.astype(np.float32) - obama)[core].mean(0)
    assert shift[0] > 35 and shift[1] < -35 and shift[2] > 10, shift
    assert np.array_equal(out[far], obama[far])


def test_call_returns_the_model_output(tmp_path):
    swapper = NeuralSwapper(swapper_model(tmp_path / "s.onnx", mask=0.25))
    crop = np.full((64, 64, 3), 100, np.uint8)
    swapped, mask = swapper(crop, e0()[None])  # (1, D) is accepted too
    assert swapped.shape == (64, 64, 3) and swapped.dtype == np.uint8
    assert np.array_equal(swapped[0, 0], np.round(np.clip(100 / 255 + TINT, 0, 1) * 255).astype(np.uint8))
    assert mask is not None and mask.dtype == np.float32 and mask.shape == (64, 64)
    assert np.allclose(mask, 0.25)
    with pytest.raises(InputError, match="64x64"):
        swapper(np.zeros((32, 32, 3), np.uint8), e0())
    with pytest.raises(InputError, match="zero"):
        swapper(crop, np.zeros(DIM, np.float32))


def test_model_mask_is_honoured(tmp_path, obama, face, far):
    none = NeuralSwapper(swapper_model(tmp_path / "zero.onnx", mask=0.0))
    assert none.has_mask
    assert np.array_equal(swap_face_neural(obama, face, none, e0()), obama)
    # a full mask pastes the whole crop, beyond the face oval (the hair above the forehead)
    full = NeuralSwapper(swapper_model(tmp_path / "one.onnx", mask=1.0))
    oval = NeuralSwapper(swapper_model(tmp_path / "oval.onnx"))
    out_full, out_oval = (swap_face_neural(obama, face, s, e0()) for s in (full, oval))
    inv = cv2.invertAffineTransform(alignment_matrix(face.five_points, 64, "arcface"))
    x, y = (inv @ np.array([32.0, 4.0, 1.0])).round().astype(int)  # top middle of the crop: hair
    assert region_mask(obama.shape, face.landmarks, "face")[y, x] == 0
    assert int(out_full[y, x, 0]) - int(obama[y, x, 0]) > 30
    assert np.array_equal(out_oval[y, x], obama[y, x])
    assert np.array_equal(out_full[far], obama[far])


def test_restoration_runs_when_the_face_is_larger_than_the_model(tmp_path, obama, face, core, far):
    plain = NeuralSwapper(swapper_model(tmp_path / "s.onnx"))
    restored = NeuralSwapper(tmp_path / "s.onnx", restore=restore_model(tmp_path / "r.onnx"))
    assert restored.restore_size == 128 and restored.session is plain.session
    zero = np.zeros(DIM, np.float32)
    zero[1] = 1.0  # no tint: the swapper returns the crop itself
    a = swap_face_neural(obama, face, plain, zero).astype(np.float32)
    b = swap_face_neural(obama, face, restored, zero).astype(np.float32)
    gain = np.median((b - a)[core], axis=0)
    assert np.all(np.abs(gain - 0.1 * 255) < 4), gain
    assert np.array_equal(b[far], obama[far])
    # the model's mask follows the crop to the restoration size
    masked = NeuralSwapper(swapper_model(tmp_path / "m.onnx", mask=0.0), restore=tmp_path / "r.onnx")
    assert np.array_equal(swap_face_neural(obama, face, masked, zero), obama)
    assert restored.restore(np.zeros((40, 40, 3), np.uint8)).shape == (128, 128, 3)
    with pytest.raises(ConfigError, match="restoration"):
        plain.restore(np.zeros((40, 40, 3), np.uint8))


def test_no_restoration_for_a_small_face(tmp_path, obama, face):
    k = 0.2
    small = cv2.resize(obama, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    small_face = face.copy(landmarks=face.landmarks * k, bbox=face.bbox * k)
    m = alignment_matrix(small_face.five_points, 64, "arcface")
    assert np.sqrt(abs(np.linalg.det(m[:, :2]))) > 1  # the face is smaller than the crop
    plain = NeuralSwapper(swapper_model(tmp_path / "s.onnx"))
    restored = NeuralSwapper(tmp_path / "s.onnx", restore=restore_model(tmp_path / "r.onnx"))
    a = swap_face_neural(small, small_face, plain, e0())
    b = swap_face_neural(small, small_face, restored, e0())
    assert np.array_equal(a, b) and not np.array_equal(a, small)


def test_scratch_damps_jitter(tmp_path, obama, face):
    swapper = NeuralSwapper(swapper_model(tmp_path / "s.onnx"))
    scratch: dict = {}
    first = swap_face_neural(obama, face, swapper, e0(), scratch=scratch)
    assert np.array_equal(first, swap_face_neural(obama, face, swapper, e0()))
    jittered = face.copy(landmarks=face.landmarks + np.array([0.5, 0.0, 0.0], np.float32))
    swap_face_neural(obama, jittered, swapper, e0(), scratch=scratch)
    moved = scratch["neural_points5"][:, 0] - face.five_points[:, 0]
    assert np.all((moved > 0.05) & (moved < 0.4)), moved
    with pytest.raises(ConfigError, match="feather"):
        swap_face_neural(obama, face, swapper, e0(), feather=-1)


# --------------------------------------------------------------------------- loading and the contract


def test_sessions_are_shared_and_providers_shown(tmp_path):
    path = swapper_model(tmp_path / "s.onnx")
    a, b = NeuralSwapper(path), NeuralSwapper(str(path))
    assert a.session is b.session
    assert "CPUExecutionProvider" in a.providers
    cpu = NeuralSwapper(path, providers=["cpu"])
    assert cpu.providers == ["CPUExecutionProvider"]
    assert NeuralSwapper(path, providers=["cpu"]).session is cpu.session
    assert "size=64" in repr(a)
    with pytest.raises(ConfigError, match="provider"):
        NeuralSwapper(path, providers=["warp-drive"])


def test_registry_names_resolve(tmp_path, monkeypatch):
    swapper_model(tmp_path / "tiny_swap.onnx")
    card = registry.ModelCard(
        name="test/tiny_swap",
        filename="tiny_swap.onnx",
        sha256=None,
        licence="MIT",
        source="built by the test",
        format="onnx",
    )
    monkeypatch.setitem(registry._cards, card.name, card)
    monkeypatch.setenv(registry.MODEL_PATH_ENV, str(tmp_path))
    assert NeuralSwapper("test/tiny_swap").path == str(tmp_path / "tiny_swap.onnx")


def test_metadata_declares_size_and_template(tmp_path):
    dynamic = swapper_model(
        tmp_path / "d.onnx",
        size="S",
        meta={"portraitfx.size": "96", "portraitfx.template": "ffhq", "portraitfx.identity": "arcface512"},
    )
    s = NeuralSwapper(dynamic)
    assert (s.size, s.template, s.identity_kind) == (96, "ffhq", "arcface512")
    assert s(np.zeros((96, 96, 3), np.uint8), e0())[0].shape == (96, 96, 3)
    assert NeuralSwapper(swapper_model(tmp_path / "d2.onnx", size="S")).size == 128
    with pytest.raises(ModelError, match="template"):
        NeuralSwapper(swapper_model(tmp_path / "t.onnx", meta={"portraitfx.template": "dlib"}))
    with pytest.raises(ModelError, match="contradicts"):
        NeuralSwapper(swapper_model(tmp_path / "c.onnx", meta={"portraitfx.size": "128"}))


def test_wrong_identity_dimension(tmp_path, obama, face):
    swapper = NeuralSwapper(swapper_model(tmp_path / "s.onnx"))
    with pytest.raises(ModelError, match="8-d identity"):
        swapper(np.zeros((64, 64, 3), np.uint8), np.ones(128, np.float32))
    with pytest.raises(ModelError, match="8-d identity"):
        swap_face_neural(obama, face, swapper, np.ones(512, np.float32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": ("image", "identity")}, "expected inputs named 'target'"),
        ({"names": ("target", "embedding")}, "expected inputs named 'target'"),
        ({"layout": "nhwc"}, "channels-last"),
        ({"dim": "D"}, "fixed identity size"),
    ],
)
def test_models_breaking_the_contract_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ModelError, match=match):
        NeuralSwapper(swapper_model(tmp_path / "bad.onnx", **kwargs))


def test_restoration_model_contract(tmp_path):
    swapper = swapper_model(tmp_path / "s.onnx")
    with pytest.raises(ModelError, match=r"restoration model .*'image'"):
        NeuralSwapper(swapper, restore=swapper)  # a swapper is not a restoration model


def test_pickle_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafeModelError, match="pickle"):
        NeuralSwapper(path)
    with pytest.raises(UnsafeModelError):
        NeuralSwapper(swapper_model(tmp_path / "s.onnx"), restore=path)


def test_safetensors_needs_an_onnx_export(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "swapper.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(ModelError, match="ONNX") as info:
        NeuralSwapper(path)
    assert not isinstance(info.value, UnsafeModelError)
    assert "\n" not in str(info.value) and "safetensors" in str(info.value)


def test_damaged_files_are_model_errors(tmp_path):
    path = tmp_path / "s.onnx"
    swapper_model(path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ModelError):
        NeuralSwapper(path)


# -- through the swap effect ---------------------------------------------------------------


def test_swap_effect_runs_a_neural_model_and_marks_the_result(tmp_path, data_dir, obama, face, core, far):
    """``create_effect("swap", model=...)``: the 128-d identity of the source photo goes in,
    the model's crop comes out, pasted inside the face, with the provenance watermark."""
    import portraitfx.effects as fx
    from portraitfx.provenance import detect_watermark

    w = np.zeros((128, 3), np.float32)
    w[:, 0] = 2.0  # any identity: the red channel goes up where the model paints
    path = tmp_path / "swap128.onnx"
    nodes = [
        helper.make_node("MatMul", ["source", "W"], ["tint"]),
        helper.make_node("Abs", ["tint"], ["mag"]),
        helper.make_node("Reshape", ["mag", "shape4"], ["tint4"]),
        helper.make_node("Add", ["target", "tint4"], ["raw"]),
        helper.make_node("Clip", ["raw", "lo", "hi"], ["swapped"]),
    ]
    graph = helper.make_graph(
        nodes,
        "swap128",
        [
            helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 64, 64]),
            helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 128]),
        ],
        [helper.make_tensor_value_info("swapped", TensorProto.FLOAT, [1, 3, 64, 64])],
        [
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([1, 3, 1, 1], np.int64), "shape4"),
            numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
            numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        ],
    )
    _save(graph, path)
    effect = fx.create_effect("swap", source=data_dir / "biden.jpg", model=str(path))
    try:
        out = effect.apply(obama, [face])
    finally:
        effect.close()
    red_gain = out[core][:, 0].astype(float).mean() - obama[core][:, 0].astype(float).mean()
    green_gain = out[core][:, 1].astype(float).mean() - obama[core][:, 1].astype(float).mean()
    assert red_gain > 20 and abs(green_gain) < 3, (red_gain, green_gain)
    assert np.abs(out[far].astype(int) - obama[far]).mean() < 2.5  # only the watermark out there
    assert detect_watermark(out).found


def test_swap_effect_refuses_a_pickled_model(tmp_path, data_dir):
    import portraitfx.effects as fx

    bad = tmp_path / "swapper.onnx"
    bad.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(UnsafeModelError):
        fx.create_effect("swap", source=data_dir / "biden.jpg", model=str(bad))


def test_cli_swap_with_a_model_and_its_errors(tmp_path, data_dir, capsys):
    from portraitfx.cli.main import main
    from portraitfx.io.images import load_image

    path = swapper_model(tmp_path / "tint.onnx", dim=DIM)
    out = tmp_path / "out.png"
    # the tiny test model takes 8-d identities, the source photo gives dlib's 128-d one
    code = main(
        [
            "swap",
            "-s",
            str(data_dir / "biden.jpg"),
            str(data_dir / "obama.jpg"),
            "-o",
            str(out),
            "--model",
            str(path),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 4 and "error:" in err and "128" in err and "Traceback" not in err
    assert not out.exists()
    bad = tmp_path / "swapper.onnx"
    bad.write_bytes(pickle.dumps({"weights": [1]}))
    code = main(
        [
            "swap",
            "-s",
            str(data_dir / "biden.jpg"),
            str(data_dir / "obama.jpg"),
            "-o",
            str(out),
            "-m",
            str(bad),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 4 and err.count("\n") == 1 and "pickle" in err.lower()
    code = main(
        [
            "swap",
            "-s",
            str(data_dir / "biden.jpg"),
            str(data_dir / "obama.jpg"),
            "-o",
            str(out),
            "--restore",
            str(path),
            "-q",
        ]
    )
    assert code == 2 and "--restore goes with --model" in capsys.readouterr().err
    assert load_image(data_dir / "obama.jpg").shape[2] == 3  # the input is untouched
