"""The learned swapper's ONNX inference on this CPU, default and mobile widths.

    .venv/bin/python bench/bench_swapnet.py

Figures (targets from the learned-swap issue): ms per face at 256 px with ONNX Runtime
(<= 60 ms at the default width), parameters and GFLOPs; the "mobile" width (<= 2
GFLOPs; the seed reached 6 ms on an A10 with TensorRT). Baseline in the same run: the
PyTorch module on the same input.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def _ms(fn, repeats: int = 10) -> float:
    fn()
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best.append((time.perf_counter() - t0) / repeats * 1000)
    return min(best)


def main() -> int:
    import numpy as np
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F

    from portraitfx._tuning import tune_process
    from portraitfx.train.swapnet.export import export_swapnet
    from portraitfx.train.swapnet.networks import SwapNet, SwapNetConfig, count

    tune_process()
    torch.set_num_threads(2)
    for name, cfg in (("default", SwapNetConfig(size=256)), ("mobile", SwapNetConfig.mobile(256))):
        params, gflops = count(cfg)
        net = SwapNet(cfg).eval()
        path = Path(tempfile.mkdtemp()) / f"{name}.onnx"
        export_swapnet(net, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        target = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
        source = np.ones((1, 128), np.float32) / np.sqrt(128)
        feed = {"target": target, "source": source}
        onnx_ms = _ms(lambda s=session, f=feed: s.run(None, f))
        inputs = (torch.from_numpy(target), F.normalize(torch.from_numpy(source), dim=1))
        with torch.no_grad():
            torch_ms = _ms(lambda n=net, x=inputs: n(*x))
        print(f"swapnet_256_{name}_onnx_ms: {onnx_ms:.1f}  ({params / 1e6:.2f} M parameters, {gflops:.2f} GFLOPs; "
              f"target {'<= 60 ms' if name == 'default' else '<= 2 GFLOPs'})")  # fmt: skip
        print(f"  baseline pytorch_ms: {torch_ms:.1f}  ratio: {torch_ms / onnx_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
