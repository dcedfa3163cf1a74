"""Fixtures shared by the StyleGAN tests."""

from __future__ import annotations

import sys
import types

import pytest

RAN = "portraitfx-test-pickle-code-ran"


@pytest.fixture
def persistent_class(tmp_path, monkeypatch):
    """A class whose pickles look like NVIDIA's persistent objects, with code in them that must never run.

    ``Persistent(class_name, state)`` pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``
    with ``meta["module_src"]`` a script that would create ``Persistent.marker`` if anything ran it.
    """
    module = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # what the real package would do: exec the source
        raise AssertionError("never called when the pickle is written")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)

    class Persistent:
        marker = tmp_path / RAN

        def __init__(self, class_name, state):
            self.meta = {
                "type": "class",
                "version": 6,
                "module_src": f"import os\nos.system('touch {tmp_path / RAN}')\n",
                "class_name": class_name,
                "state": state,
            }

        def __reduce__(self):
            return (_reconstruct_persistent_obj, (self.meta,))

    return Persistent


@pytest.fixture(scope="module")
def generator32():
    """A small random 32 px StyleGAN2 generator with some noise strength (inversion and encoder tests)."""
    torch = pytest.importorskip("torch")
    from portraitfx.train.stylegan import Generator, GeneratorConfig

    cfg = GeneratorConfig(
        resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32
    )
    torch.manual_seed(0)
    g = Generator(cfg).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.05)
    return g
