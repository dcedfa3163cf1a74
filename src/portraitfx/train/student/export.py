"""Export a trained student to ONNX (fp32, fp16 weights, or int8), verified against PyTorch.

* ``fp32``: the network as is, any image size (dynamic height and width, multiples of 8).
* ``fp16``: every weight stored in half precision and cast back to fp32 where it is
  used: half the file, the same arithmetic as fp32 on any runtime.
* ``int8``: static quantization with ONNX Runtime (QDQ, per-channel int8 weights,
  uint8 activations) calibrated on real face crops (``calibration``: a folder of
  images, e.g. a pair folder's ``face/``); faster on CPUs with int8 dot products.

The model's metadata says what it is (``portraitfx: toon-student``), how faces are cut
for it (``crop_scale``, ``size``) and its width, so the ``toon`` effect can check
and use any exported student. Every export runs the ONNX model on test images and
compares it with the PyTorch model (PSNR); a failed check removes nothing but
raises, so a broken file is never left in place.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portraitfx.errors import ConfigError, ModelError

__all__ = ["ONNX_KIND", "export_student"]

ONNX_KIND = "toon-student"
MIN_PSNR = {"fp32": 45.0, "fp16": 40.0, "int8": 26.0}


def _to_onnx_bytes(net: torch.nn.Module, size: int) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(net, size, buf)
    return buf.getvalue()


def _export(net: torch.nn.Module, size: int, buf: io.BytesIO) -> None:
    torch.onnx.export(
        net,
        torch.zeros(1, 3, size, size),
        buf,
        input_names=["image"],
        output_names=["styled"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "styled": {0: "batch", 2: "height", 3: "width"},
        },
        opset_version=17,
        dynamo=False,
    )


def _weights_to_fp16(model: Any) -> Any:
    """Half-precision initializers, each cast back to fp32 by a Cast node (the graph computes in fp32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
        keep.append(half)
        casts.append(
            helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast")
        )
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    return model


def _calibration_images(
    source: str | os.PathLike[str] | np.ndarray, size: int, limit: int = 64
) -> np.ndarray:
    if isinstance(source, np.ndarray):
        images = source[:limit]
    else:
        import cv2

        from portraitfx.io.images import load_image
        from portraitfx.train.stylegan.train import image_files

        names = image_files(source, limit)
        if not names:
            raise ConfigError(f"no calibration images in '{source}'")
        images = np.stack(
            [cv2.resize(load_image(p), (size, size), interpolation=cv2.INTER_AREA) for p in names]
        )
    return images.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0


def _quantize_int8(fp32: bytes, calibration: np.ndarray) -> bytes:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"image": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
        return dst.read_bytes()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean(((a - b) / 2) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def export_student(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    precision: str = "fp32",
    calibration: str | os.PathLike[str] | np.ndarray | None = None,
    size: int = 256,
    crop_scale: float | None = None,
) -> dict[str, Any]:
    """Write the student of ``checkpoint`` as ONNX to ``output`` (atomic); returns a report.

    The report: ``psnr`` of the ONNX outputs against PyTorch's on the calibration (or
    test) images, ``ms`` per ``size`` px image with ONNX Runtime, ``bytes``, ``params``.

    Raises:
        ConfigError: unknown precision, or int8 without calibration images.
        ModelError: the exported model disagrees with PyTorch (below the precision's PSNR floor).
    """
    import onnx
    import onnxruntime as ort

    from portraitfx.io.paths import atomic_output
    from portraitfx.train.student.teacher import CROP_SCALE
    from portraitfx.train.student.train import load_student

    if precision not in MIN_PSNR:
        raise ConfigError(f"precision must be one of {', '.join(MIN_PSNR)}, got {precision!r}")
    if precision == "int8" and calibration is None:
        raise ConfigError("int8 export needs calibration images (a folder of face crops)")
    net = load_student(checkpoint)
    fp32 = _to_onnx_bytes(net, size)
    if calibration is not None:
        test = _calibration_images(calibration, size)
    else:
        rng = np.random.default_rng(0)
        test = np.clip(rng.normal(0, 0.5, (4, 3, size, size)), -1, 1).astype(np.float32)
    if precision == "int8":
        data = _quantize_int8(fp32, test)
        model = onnx.load_from_string(data)
    else:
        model = onnx.load_from_string(fp32)
        if precision == "fp16":
            model = _weights_to_fp16(model)
    meta = {
        "portraitfx": ONNX_KIND,
        "precision": precision,
        "config": json.dumps(net.cfg.to_dict()),
        "size": str(size),
        "crop_scale": str(crop_scale if crop_scale is not None else CROP_SCALE),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString()
    # verify against PyTorch before anything is written
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(2, os.cpu_count() or 1))
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = net(torch.from_numpy(test)).numpy()
    got = np.concatenate([session.run(None, {"image": test[i : i + 1]})[0] for i in range(len(test))])
    psnr = _psnr(got, want)
    if psnr < MIN_PSNR[precision]:
        raise ModelError(
            f"the {precision} ONNX model differs from PyTorch: PSNR {psnr:.1f} dB (< {MIN_PSNR[precision]:.0f})"
        )
    one = test[:1]
    session.run(None, {"image": one})
    t0 = time.perf_counter()
    for _ in range(10):
        session.run(None, {"image": one})
    ms = (time.perf_counter() - t0) / 10 * 1000
    with atomic_output(output) as tmp:
        Path(tmp).write_bytes(data)
    return {
        "path": str(output),
        "precision": precision,
        "psnr": round(psnr, 2),
        "ms": round(ms, 2),
        "bytes": len(data),
        "params": sum(p.numel() for p in net.parameters()),
    }
