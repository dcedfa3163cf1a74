"""StyleGAN training on several processes (torchrun, Gloo), on a chosen device, in mixed precision."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError  # noqa: E402
from portraitfx.io.images import save_image  # noqa: E402
from portraitfx.models.load import load_safetensors  # noqa: E402
from portraitfx.train.stylegan.augment import augment  # noqa: E402
from portraitfx.train.stylegan.networks import batch_randn, batch_shard, current_shard  # noqa: E402
from portraitfx.train.stylegan.train import Trainer, TrainOptions  # noqa: E402

SMALL = {
    "resolution": 16,
    "z_dim": 16,
    "mapping_layers": 2,
    "channel_base": 256,
    "channel_max": 16,
    "batch": 8,
}


def _faces(n: int = 12) -> np.ndarray:
    """Small crops of the astronaut's face at moving places: ``n x 16 x 16 x 3`` uint8."""
    import cv2
    from skimage import data

    img = data.astronaut()
    out = []
    for i in range(n):
        y, x = 20 + (i * 7) % 40, 140 + (i * 11) % 50
        out.append(cv2.resize(img[y : y + 200, x : x + 200], (16, 16), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2).contiguous()


def test_batch_shard_gives_each_process_its_strided_share_of_every_draw():
    assert current_shard() == (0, 1)
    torch.manual_seed(3)
    whole = torch.randn(6, 2)
    for rank in (0, 1):
        torch.manual_seed(3)
        with batch_shard(rank, 2):
            assert current_shard() == (rank, 2)
            assert torch.equal(batch_randn(3, 2), whole[rank::2])
    assert current_shard() == (0, 1)
    with pytest.raises(ConfigError), batch_shard(2, 2):
        pass

    # augmentations too: the same transform per sample, whatever the split
    x = _tensor(_faces(8))
    full = augment(x, 0.8, torch.Generator().manual_seed(5))
    for rank in (0, 1):
        with batch_shard(rank, 2):
            part = augment(x[rank::2], 0.8, torch.Generator().manual_seed(5))
        torch.testing.assert_close(part, full[rank::2], atol=1e-5, rtol=0)


def test_two_processes_under_torchrun_train_what_one_process_trains(tmp_path):
    """The real CLI under torchrun (2 CPU processes, Gloo) against a single process, 8 steps."""
    data = tmp_path / "faces"
    data.mkdir()
    for i, img in enumerate(_faces()):
        save_image(data / f"{i:02d}.png", img)
    args = [
        "stylegan", "train", str(data), "-r", "16", "--batch", "8", "--channel-base", "256",
        "--channel-max", "16", "--z-dim", "16", "--mapping-layers", "2", "--kimg", "0.064",
        "--snapshot-kimg", "10", "--augment", "0.5", "-q",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "portraitfx", *args, "-o", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("trained to 0.064 kimg") == 1  # process 0 reports, the other is quiet
    one = subprocess.run(
        [sys.executable, "-m", "portraitfx", *args, "-o", str(tmp_path / "one")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]

    a = load_safetensors(tmp_path / "one" / "checkpoint.safetensors")
    b = load_safetensors(tmp_path / "two" / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    start = Trainer(_tensor(_faces()), TrainOptions(**SMALL, augment="0.5"), device="cpu")
    init = {f"G.{k}": v for k, v in start.G.state_dict().items()}
    moved = max(float((a[k] - init[k]).abs().max()) for k in init if "noise_const" not in k)
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert moved > 1e-3, "training did not change the generator"
    assert worst < 1e-4, f"2 processes differ from 1 by {worst} (weights moved by {moved})"
    assert a["rng.cpu"].equal(b["rng.cpu"])  # both consumed the same random numbers
    from safetensors import safe_open

    states = []
    for run in ("one", "two"):
        with safe_open(str(tmp_path / run / "checkpoint.safetensors"), framework="pt") as fh:
            states.append(json.loads(fh.metadata()["state"]))
    assert states[0]["step"] == states[1]["step"] == 8
    assert states[0]["pl_mean"] == pytest.approx(states[1]["pl_mean"], rel=1e-4)
    for key in ("loss_g", "loss_d", "r1", "pl"):
        assert states[0]["history"][-1][key] == pytest.approx(states[1]["history"][-1][key], abs=2e-4)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    with pytest.raises(ConfigError, match="does not split over 3 processes"):
        Trainer(_tensor(_faces(4)), TrainOptions(**SMALL), device="cpu", distributed=True)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_the_main_passes_in_half_floats(precision):
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    data = _tensor(_faces())
    options = TrainOptions(**SMALL, augment="0.3")
    ref = Trainer(data, options, device="cpu")
    mixed = Trainer(data, options, device="cpu", precision=precision)
    seen: list[torch.dtype] = []
    mixed.D.from_rgb.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    before = {k: v.clone() for k, v in mixed.G.state_dict().items()}
    for _ in range(6):
        logs_ref, logs = ref.step(), mixed.step()
    assert half in seen and torch.float32 in seen  # main passes in half, R1 in fp32
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["loss_d"] == pytest.approx(logs_ref["loss_d"], abs=0.1)  # close to fp32, not equal
    after = mixed.G.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert max(float((after[k] - before[k]).abs().max()) for k in before) > 1e-3


def test_devices_are_checked():
    data = _tensor(_faces(4))
    with pytest.raises(ConfigError, match="not a device"):
        Trainer(data, TrainOptions(**SMALL), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            Trainer(data, TrainOptions(**SMALL), device="cuda")
    with pytest.raises(ConfigError, match="precision"):
        Trainer(data, TrainOptions(**SMALL), precision="fp8")
    trainer = Trainer(data, TrainOptions(**SMALL), device="cpu")
    assert trainer.device.type == "cpu" and next(trainer.G.parameters()).device.type == "cpu"
