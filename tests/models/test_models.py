"""Tests of portraitfx.models: the registry, sha256 verification and safe loading."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from portraitfx.errors import (
    ChecksumError,
    ConfigError,
    ModelError,
    ModelNotFoundError,
    OutputError,
    UnsafeModelError,
)
from portraitfx.models import (
    BUILTIN_CARDS,
    ModelCard,
    file_sha256,
    get_card,
    list_models,
    load_safetensors,
    load_state_dict,
    model_dirs,
    open_onnx_session,
    register_model,
    registry,
    release_sessions,
    resolve_model,
    save_safetensors,
    sniff_model_format,
)

# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """A private registry copy, $PORTRAITFX_HOME in tmp_path and no extra model path."""
    monkeypatch.setattr(registry, "_cards", dict(registry._cards))
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("PORTRAITFX_HOME", str(home))
    monkeypatch.delenv("PORTRAITFX_MODEL_PATH", raising=False)
    return home / "models"


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _trained_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    net = TinyNet()
    net.train()
    net(torch.randn(4, 3, 8, 8))  # move the BatchNorm running stats away from their defaults
    return net.eval()


class Evil:
    """Unpickling this runs code that creates ``marker`` (a stand-in for any attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",))


# A minimal protobuf writer, enough to build ONNX models without the `onnx` package.
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_field(1, _field(1, d)) for d in shape)
    tensor_type = _field(1, 1) + _field(2, dims)  # elem_type FLOAT, shape
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _tensor(name: str, arr: np.ndarray) -> bytes:
    dims = b"".join(_field(1, d) for d in arr.shape)
    return dims + _field(2, 1) + _field(8, name) + _field(9, arr.astype("<f4").tobytes())


def _onnx_linear(w: np.ndarray, b: np.ndarray, op: str = "MatMul") -> bytes:
    """ONNX ModelProto computing ``y = x @ w + b`` for x of shape (2, w.shape[0])."""
    node1 = _field(1, "x") + _field(1, "w") + _field(2, "xw") + _field(4, op)
    node2 = _field(1, "xw") + _field(1, "b") + _field(2, "y") + _field(4, "Add")
    graph = (
        _field(1, node1)
        + _field(1, node2)
        + _field(2, "tiny")
        + _field(5, _tensor("w", w))
        + _field(5, _tensor("b", b))
        + _field(11, _value_info("x", (2, w.shape[0])))
        + _field(12, _value_info("y", (2, w.shape[1])))
    )
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 8) + _field(2, "portraitfx-test") + _field(7, graph) + _field(8, opset)


# --------------------------------------------------------------------------- registry


def test_builtin_cards_are_registered():
    names = list_models()
    assert names == sorted(names)
    expected = {
        "mediapipe/face_detection_short_range",
        "mediapipe/face_detection_full_range_sparse",
        "mediapipe/face_landmark",
        "mediapipe/face_landmark_with_attention",
        "mediapipe/selfie_segmentation",
        "mediapipe/selfie_segmentation_landscape",
        "dlib/face_recognition_resnet_v1",
        "dlib/shape_predictor_5",
        "dlib/shape_predictor_68",
    }
    assert expected <= set(names)
    assert list_models("dlib/shape_*") == ["dlib/shape_predictor_5", "dlib/shape_predictor_68"]
    assert list_models("nothing*") == []
    assert all(isinstance(c, ModelCard) and c.sha256 for c in BUILTIN_CARDS)
    assert "commercial" in get_card("dlib/shape_predictor_68").licence.lower()
    assert get_card("mediapipe/face_landmark").licence.startswith("Apache-2.0")
    assert get_card("dlib/shape_predictor_5").licence.startswith("CC0")


@pytest.mark.parametrize("name", list_models())
def test_every_registered_card_resolves_and_verifies(name):
    card = get_card(name)
    path = resolve_model(name)  # verify=True: sha256 checked
    assert path.is_file()
    assert path.as_posix().endswith(f"{card.package}/{card.package_path}")
    assert file_sha256(path) == card.sha256
    assert sniff_model_format(path) == card.format


def test_resolving_does_not_import_the_shipping_package():
    code = (
        "import sys; from portraitfx.models import resolve_model; "
        "resolve_model('mediapipe/selfie_segmentation'); resolve_model('dlib/shape_predictor_5'); "
        "print(sorted(m for m in ('mediapipe', 'face_recognition_models', 'torch', 'onnxruntime') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'dlib/shape_predictor_5'"):
        resolve_model("dlib/shape_predictor5")
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'mediapipe/face_detection_short'"):
        get_card("mediapipe/face_detection_short")
    with pytest.raises(ModelNotFoundError, match="Known:"):
        resolve_model("zzz")


def test_register_rules(isolated):
    card = ModelCard(name="test/a", filename="a.onnx", sha256=None, licence="MIT", source="x", format="onnx")
    assert register_model(card) is card
    register_model(card)  # the same card again is fine
    other = ModelCard(name="test/a", filename="b.onnx", sha256=None, licence="MIT", source="x", format="onnx")
    with pytest.raises(ConfigError, match="already registered"):
        register_model(other)
    register_model(other, replace=True)
    assert get_card("test/a").filename == "b.onnx"
    with pytest.raises(ConfigError, match="format"):
        ModelCard(name="t/b", filename="b.bin", sha256=None, licence="", source="", format="pickle")
    with pytest.raises(ConfigError, match="sha256"):
        ModelCard(name="t/b", filename="b.onnx", sha256="abc", licence="", source="", format="onnx")
    with pytest.raises(ConfigError, match="package_path"):
        ModelCard(
            name="t/b", filename="b.onnx", sha256=None, licence="", source="", format="onnx", package="x"
        )


def test_model_dirs_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTRAITFX_HOME", str(tmp_path / "h"))
    monkeypatch.setenv(
        "PORTRAITFX_MODEL_PATH", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")])
    )
    assert model_dirs() == [tmp_path / "h" / "models", tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv("PORTRAITFX_HOME")
    monkeypatch.delenv("PORTRAITFX_MODEL_PATH")
    assert model_dirs() == [Path.home() / ".cache" / "portraitfx" / "models"]


def test_missing_file_says_where_to_put_it(isolated, tmp_path, monkeypatch):
    payload = b"weights v1" * 100
    import hashlib

    digest = hashlib.sha256(payload).hexdigest()
    register_model(
        ModelCard(
            name="test/weights",
            filename="weights.onnx",
            sha256=digest,
            licence="MIT",
            source="https://example.org/weights.onnx",
            format="onnx",
        )
    )
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model("test/weights")
    msg = str(exc.value)
    assert str(isolated) in msg and digest in msg and "https://example.org/weights.onnx" in msg
    assert "PORTRAITFX_MODEL_PATH" in msg and "\n" not in msg

    # found in an extra folder of $PORTRAITFX_MODEL_PATH
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "weights.onnx").write_bytes(payload)
    monkeypatch.setenv("PORTRAITFX_MODEL_PATH", str(extra))
    assert resolve_model("test/weights") == extra / "weights.onnx"

    # $PORTRAITFX_HOME/models comes first; a damaged copy there fails the checksum
    (isolated / "weights.onnx").write_bytes(b"weights v2" * 100)
    with pytest.raises(ChecksumError) as exc:
        resolve_model("test/weights")
    msg = str(exc.value)
    assert f"expected {digest}" in msg and f"got {hashlib.sha256(b'weights v2' * 100).hexdigest()}" in msg
    assert resolve_model("test/weights", verify=False) == isolated / "weights.onnx"


def test_package_card_missing_package(isolated):
    register_model(
        ModelCard(
            name="test/in_package",
            filename="nothing.tflite",
            sha256=None,
            licence="MIT",
            source="package:portraitfx_no_such_dist",
            format="tflite",
            package="portraitfx_no_such_dist",
            package_path="models/nothing.tflite",
        )
    )
    with pytest.raises(ModelNotFoundError, match="pip install portraitfx_no_such_dist"):
        resolve_model("test/in_package")


def test_checksum_is_computed_once_per_file_version(tmp_path, monkeypatch):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"a" * 1000)
    calls = []
    real = registry.hashlib.sha256

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(registry.hashlib, "sha256", counting)
    first = file_sha256(path)
    assert file_sha256(path) == first and file_sha256(str(path)) == first
    assert len(calls) == 1
    path.write_bytes(b"b" * 1001)  # new size and mtime: hashed again
    assert file_sha256(path) != first
    assert len(calls) == 2


def test_explicit_paths(tmp_path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x")
    assert resolve_model(f) == f
    assert resolve_model(str(f)) == f
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        resolve_model(tmp_path / "missing.onnx")
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        resolve_model("./missing/model.safetensors")
    with pytest.raises(ModelNotFoundError, match="folder"):
        resolve_model(tmp_path)


# --------------------------------------------------------------------------- sniffing


def test_sniff_model_formats(tmp_path):
    st = tmp_path / "a.bin"
    save_safetensors(st, {"w": torch.zeros(2)})
    assert sniff_model_format(st) == "safetensors"
    zipped = tmp_path / "b.safetensors"  # extensions are ignored
    torch.save({"w": torch.zeros(2)}, zipped)
    assert sniff_model_format(zipped) == "torch"
    for protocol in (0, 2, 4, 5):
        p = tmp_path / f"p{protocol}.onnx"
        p.write_bytes(pickle.dumps({"w": [1, 2]}, protocol=protocol))
        assert sniff_model_format(p) == "pickle", protocol
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    assert sniff_model_format(legacy) == "pickle"
    onnx_file = tmp_path / "m.dat"
    onnx_file.write_bytes(_onnx_linear(np.ones((3, 2), np.float32), np.zeros(2, np.float32)))
    assert sniff_model_format(onnx_file) == "onnx"
    plain_zip = tmp_path / "z.pt"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("readme.txt", "hi")
    assert sniff_model_format(plain_zip) == "unknown"
    for name, content in (
        ("t.onnx", b"hello world, not a model\n"),
        ("e.onnx", b""),
        ("r.onnx", os.urandom(512)),
    ):
        (tmp_path / name).write_bytes(content)
        assert sniff_model_format(tmp_path / name) == "unknown", name
    assert sniff_model_format(resolve_model("mediapipe/face_detection_short_range")) == "tflite"
    assert sniff_model_format(resolve_model("dlib/face_recognition_resnet_v1")) == "dlib"


# --------------------------------------------------------------------------- safetensors and checkpoints


def test_safetensors_round_trip_of_a_module(tmp_path):
    net = _trained_net(0)
    path = save_safetensors(tmp_path / "tiny.safetensors", net.state_dict(), metadata={"arch": "TinyNet"})
    assert path == tmp_path / "tiny.safetensors"
    loaded = load_safetensors(path)
    assert set(loaded) == set(net.state_dict())
    for key, value in net.state_dict().items():
        assert torch.equal(loaded[key], value), key
    fresh = TinyNet().eval()
    fresh.load_state_dict(load_state_dict(path))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == {"arch": "TinyNet"}
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]  # no temp files left


def test_save_safetensors_handles_shared_and_strided_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"a": base, "tied": base, "t": base.t(), "np": np.ones(3, np.float32)}
    path = save_safetensors(tmp_path / "s.safetensors", tensors)
    out = load_safetensors(path)
    assert torch.equal(out["tied"], base) and torch.equal(out["t"], base.t())
    assert torch.equal(out["np"], torch.ones(3))
    with pytest.raises(ConfigError, match="metadata"):
        save_safetensors(tmp_path / "m.safetensors", {"a": base}, metadata={"n": 1})
    with pytest.raises(ConfigError, match="not a tensor"):
        save_safetensors(tmp_path / "m.safetensors", {"a": [1, 2]})
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        save_safetensors(path, {"a": base}, inputs=(path,))


def test_weights_only_torch_checkpoint_loads(tmp_path):
    net = _trained_net(1)
    ckpt = tmp_path / "net.pth"
    torch.save(net.state_dict(), ckpt)
    assert sniff_model_format(ckpt) == "torch"
    state = load_state_dict(ckpt)
    for key, value in net.state_dict().items():
        assert torch.equal(state[key], value), key
    wrapped = tmp_path / "wrapped.ckpt"
    torch.save({"state_dict": net.state_dict(), "epoch": 7, "lr": 0.1}, wrapped)
    assert set(load_state_dict(wrapped)) == set(net.state_dict())
    not_tensors = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(ModelError, match="rather than a state dict"):
        load_state_dict(not_tensors)


def test_malicious_pickles_are_refused_without_running(tmp_path):
    # Control: the payload really does run when unpickled normally.
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(Evil(control)))
    assert control.exists()

    marker = tmp_path / "pwned-marker"
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Evil(marker)))
    as_pth = tmp_path / "evil_raw.pth"
    as_pth.write_bytes(pickle.dumps({"w": Evil(marker)}, protocol=2))
    zipped = tmp_path / "evil.pt"
    torch.save(Evil(marker), zipped)
    nested = tmp_path / "nested.pt"
    torch.save({"w": torch.zeros(1), "hook": Evil(marker)}, nested)
    legacy = tmp_path / "legacy.pth"
    torch.save({"hook": Evil(marker)}, legacy, _use_new_zipfile_serialization=False)

    for path in (raw, as_pth, zipped, nested, legacy):
        with pytest.raises(UnsafeModelError) as exc:
            load_state_dict(path)
        msg = str(exc.value)
        assert "Only safetensors and ONNX" in msg and "safetensors.torch.save_file" in msg, path
        assert "weights_only=False" not in msg
        if path in (zipped, nested):
            assert "GLOBAL builtins.exec" in msg or "GLOBAL exec" in msg
            assert exc.value.__cause__ is None  # torch's advice to disable safety is not chained
        assert not marker.exists(), path
    for loader in (load_safetensors, open_onnx_session):
        with pytest.raises(UnsafeModelError):
            loader(raw)
    assert not marker.exists()


def test_wrong_kinds_and_damaged_files(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(_onnx_linear(np.ones((3, 2), np.float32), np.zeros(2, np.float32)))
    with pytest.raises(ModelError, match="is an ONNX model, not a safetensors file or a PyTorch checkpoint"):
        load_state_dict(onnx_file)
    with pytest.raises(ModelError, match="TensorFlow Lite"):
        load_safetensors("mediapipe/selfie_segmentation")
    st = tmp_path / "w.safetensors"
    save_safetensors(st, {"w": torch.zeros(100)})
    with pytest.raises(ModelError, match="is a safetensors file, not an ONNX model"):
        open_onnx_session(st)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(st.read_bytes()[:-50])
    with pytest.raises(ModelError, match="cannot load safetensors"):
        load_safetensors(cut)
    ckpt = tmp_path / "c.pt"
    torch.save({"w": torch.zeros(1000)}, ckpt)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(ckpt.read_bytes()[: len(ckpt.read_bytes()) // 2])
    with pytest.raises(ModelError):
        load_state_dict(broken)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_safetensors(empty)


def test_load_by_registry_name_verifies_checksum(isolated):
    path = save_safetensors(isolated / "tiny.safetensors", {"w": torch.arange(4.0)})
    register_model(
        ModelCard(
            name="test/tiny",
            filename="tiny.safetensors",
            sha256=file_sha256(path),
            licence="MIT",
            source="https://example.org/tiny.safetensors",
            format="safetensors",
        )
    )
    assert torch.equal(load_state_dict("test/tiny")["w"], torch.arange(4.0))
    save_safetensors(isolated / "tiny.safetensors", {"w": torch.arange(5.0)})  # replaced by another file
    with pytest.raises(ChecksumError, match="expected"):
        load_safetensors("test/tiny")


# --------------------------------------------------------------------------- ONNX


def test_torch_exported_onnx_matches_torch(tmp_path):
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")
    net = _trained_net(2)
    x = torch.randn(3, 3, 8, 8)
    path = tmp_path / "tiny.onnx"
    with pytest.warns(DeprecationWarning):  # the TorchScript exporter warns; dynamo needs onnxscript
        torch.onnx.export(
            net,
            (x,),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )
    assert sniff_model_format(path) == "onnx"
    session = open_onnx_session(path, threads=1)
    (y,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = net(x).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_hand_built_onnx_runs_and_sessions_are_cached(tmp_path, caplog):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    path = tmp_path / "linear.onnx"
    path.write_bytes(_onnx_linear(w, b))
    release_sessions()
    session = open_onnx_session(path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-5, atol=1e-6)
    assert open_onnx_session(path) is session
    assert open_onnx_session(str(path), providers="cpu") is session
    with caplog.at_level("WARNING"):
        fallback = open_onnx_session(path, providers=["cuda", "cpu"])
    assert fallback.get_providers()[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" not in fallback.get_providers():
        assert "not available" in caplog.text
    assert release_sessions() >= 1
    assert open_onnx_session(path) is not session
    with pytest.raises(ConfigError, match="unknown onnxruntime provider"):
        open_onnx_session(path, providers=["warp-drive"])
    with pytest.raises(ConfigError, match="threads"):
        open_onnx_session(path, threads=0)


def test_corrupt_onnx_gives_model_error(tmp_path):
    good = _onnx_linear(np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match=r"'.*cut\.onnx' is not an ONNX model"):
        open_onnx_session(cut)
    bad_op = tmp_path / "bad_op.onnx"
    bad_op.write_bytes(_onnx_linear(np.ones((3, 2), np.float32), np.zeros(2, np.float32), op="NoSuchOp"))
    assert sniff_model_format(bad_op) == "onnx"
    with pytest.raises(ModelError, match=r"cannot load ONNX model '.*bad_op\.onnx'"):
        open_onnx_session(bad_op)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x08" + bytes(io.BytesIO(os.urandom(64)).read()))
    with pytest.raises(ModelError):
        open_onnx_session(junk)
