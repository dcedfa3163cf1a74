"""Export a swap network to ONNX in the swap engine's neural contract, checked against PyTorch.

The file has inputs ``target`` (``B x 3 x S x S`` in [0, 1], dynamic batch) and
``source`` (``B x D``, the L2-normalised identity), outputs ``swapped`` and ``mask``,
and the metadata the engine reads (``portraitfx.template``, ``portraitfx.identity``,
``portraitfx.size``), so ``portraitfx swap --model model.onnx`` runs it. ``fp16``
stores the weights in half precision (computed in fp32). Every export compares ONNX
Runtime's output with PyTorch's on random inputs (largest difference below 1e-3, or
2e-2 for fp16 weights) before the file is written.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from portraitfx.errors import ConfigError, ModelError
from portraitfx.train.swapnet.networks import SwapNet

__all__ = ["export_swapnet"]

TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}


def export_swapnet(
    net: SwapNet,
    output: str | os.PathLike[str],
    *,
    precision: str = "fp32",
    template: str = "arcface",
    identity: str = "dlib128",
    identity_encoder: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Write ``net`` as ONNX (atomic); returns ``{"path", "max_abs_diff", "bytes"}``.

    ``identity_encoder`` (an ``identity: arcface`` run's): exported beside the network as
    ``NAME.identity.onnx`` (input ``image``, the aligned crop in [0, 1]; output the unit
    identity vector), and the network's metadata points the engine to it.
    """
    import onnx
    import onnxruntime as ort

    from portraitfx.effects.swap.neural import META_IDENTITY, META_SIZE, META_TEMPLATE
    from portraitfx.io.paths import atomic_output
    from portraitfx.train.student.export import _weights_to_fp16

    if precision not in TOLERANCE:
        raise ConfigError(f"precision must be fp32 or fp16, got {precision!r}")
    net = net.eval()
    s, d = net.cfg.size, net.cfg.id_dim
    example = (torch.rand(1, 3, s, s), F.normalize(torch.randn(1, d), dim=1))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            example,
            buf,
            input_names=["target", "source"],
            output_names=["swapped", "mask"],
            dynamic_axes={
                "target": {0: "batch"},
                "source": {0: "batch"},
                "swapped": {0: "batch"},
                "mask": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    if identity_encoder is not None:
        id_path = Path(output).with_name(Path(output).stem + ".identity.onnx")
        _export_identity(identity_encoder.eval(), s, id_path)
        identity = f"onnx:{id_path.name}"
    model = onnx.load_from_string(buf.getvalue())
    if precision == "fp16":
        model = _weights_to_fp16(model)
    onnx.helper.set_model_props(model, {META_TEMPLATE: template, META_IDENTITY: identity, META_SIZE: str(s)})
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, s, s, generator=gen)
    source = F.normalize(torch.randn(2, d, generator=gen), dim=1)
    with torch.no_grad():
        want = [t.numpy() for t in net(target, source)]
    got = session.run(None, {"target": target.numpy(), "source": source.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(got, want, strict=True))
    if diff > TOLERANCE[precision]:
        raise ModelError(
            f"the ONNX swap network differs from PyTorch by {diff:.2e} (> {TOLERANCE[precision]:g})"
        )
    with atomic_output(output) as tmp:
        Path(tmp).write_bytes(data)
    return {"path": str(output), "max_abs_diff": diff, "bytes": len(data)}


def _export_identity(encoder: torch.nn.Module, size: int, path: Path) -> None:
    """The identity encoder as ONNX (checked against PyTorch; written atomically)."""
    import onnxruntime as ort

    from portraitfx.io.paths import atomic_output

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder, (torch.rand(1, 3, size, size),), buf, input_names=["image"], output_names=["identity"],
            dynamic_axes={"image": {0: "batch"}, "identity": {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
    data = buf.getvalue()
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = encoder(x).numpy()
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    if float(np.abs(got - want).max()) > 1e-3:
        raise ModelError("the ONNX identity encoder differs from PyTorch")
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
