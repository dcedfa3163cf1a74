"""The learned-hair-model runner: an ONNX file with the hairnet contract, run on a full-resolution photo."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.effects import create_effect  # noqa: E402
from portraitfx.effects.hair import analyze_hair, edit_region  # noqa: E402
from portraitfx.effects.hair.model import HairModel  # noqa: E402
from portraitfx.errors import ConfigError, ModelError, UnsafeModelError  # noqa: E402

SIZE = 64


class _Darken(torch.nn.Module):
    """Darkens a band across the top of the crop (where hair is in the FFHQ framing); mask = the band."""

    def forward(self, x):
        rows = torch.arange(x.shape[2], dtype=x.dtype)[None, None, :, None] / x.shape[2]
        mask = ((rows > 0.05) & (rows < 0.3)).to(x.dtype).expand(x.shape[0], 1, x.shape[2], x.shape[3])
        return x * (1 - mask) + (x - 0.6).clamp(-1, 1) * mask, mask


def _export(path, meta: dict | None, names=("edited", "mask")) -> None:
    import onnx

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_Darken(), torch.zeros(1, 3, SIZE, SIZE), buf, input_names=["image"],
                          output_names=list(names), opset_version=17, dynamo=False)  # fmt: skip
    model = onnx.load_from_string(buf.getvalue())
    if meta is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "portraitfx", json.dumps(meta)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hairmodel") / "bangs.onnx"
    _export(path, {"kind": "hairnet", "size": SIZE, "edit": "bangs"})
    return path


def test_model_edits_only_inside_the_edit_region(model_file, analyzer, obama):
    face = analyzer.analyze(obama)[0]
    a = analyze_hair(obama, face)
    model = HairModel(model_file)
    assert model.size == SIZE and model.edit == "bangs"
    out = model.apply(obama, a)
    assert out.image.shape == obama.shape
    assert np.array_equal(out.image[~out.region], obama[~out.region])
    assert not (out.region & ~edit_region(a, obama.shape)).any()
    changed = out.image[out.region].astype(int).sum() - obama[out.region].astype(int).sum()
    assert out.region.sum() > 500 and changed < 0  # the top of the head got darker
    # the region is above the eyes (the band of the crop the model changed)
    ys = np.nonzero(out.region)[0]
    assert ys.max() < face.landmarks[468, 1]


def test_effect_runs_the_model_and_checks_its_edit(model_file, analyzer, obama):
    face = analyzer.analyze(obama)[0]
    fx = create_effect("hair", edit="bangs", model=str(model_file))
    try:
        out = fx.apply(obama, [face])
    finally:
        fx.close()
    assert (out != obama).any()
    with pytest.raises(ConfigError, match="trained for bangs"):
        create_effect("hair", edit="hairline", model=str(model_file))


def test_wrong_files_are_refused(tmp_path):
    plain = tmp_path / "plain.onnx"
    _export(plain, None)
    with pytest.raises(ModelError, match="not a hair model"):
        HairModel(plain)
    renamed = tmp_path / "renamed.onnx"
    _export(renamed, {"kind": "hairnet", "size": SIZE}, names=("out", "alpha"))
    with pytest.raises(ModelError, match="expected input"):  # no 'mask' output
        HairModel(renamed)
    pickled = tmp_path / "model.onnx"
    import pickle

    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(UnsafeModelError):
        HairModel(pickled)
