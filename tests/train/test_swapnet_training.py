"""Training the swap network: data preparation, steps, resume, 2 processes against 1, the CLI and export."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError  # noqa: E402
from portraitfx.models.load import load_safetensors  # noqa: E402
from portraitfx.train.swapnet.data import load_swap_data, prepare_swap_data, save_swap_data  # noqa: E402
from portraitfx.train.swapnet.train import SwapTrainer, SwapTrainOptions, load_swapnet  # noqa: E402

TINY = {"size": 64, "width": 4, "max_channels": 32, "batch": 4, "id_steps": 4}


@pytest.fixture(scope="module")
def faces(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("people")
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.jpg"):
        person = "obama" if name.startswith("obama") else name.split(".")[0]
        (root / person).mkdir(exist_ok=True)
        shutil.copy(data_dir / name, root / person / name)
    data = prepare_swap_data(root, 64, augment=1)
    path = save_swap_data(data, tmp_path_factory.mktemp("prepared") / "data.safetensors")
    return root, path


def test_prepared_data_has_people_crops_identities_and_meshes(faces):
    _, path = faces
    d = load_swap_data(path)
    assert d.crops.shape == (10, 64, 64, 3) and d.ids.shape == (10, 128)
    assert np.allclose(np.linalg.norm(d.ids, axis=1), 1.0, atol=1e-5)
    assert sorted(set(d.person.tolist())) == [0, 1, 2]  # astronaut, biden, obama
    from portraitfx.face.align import TEMPLATES

    nose = d.meshes[:, 1, :2]  # the nose tip sits where the swap engine's (arcface) framing puts it
    assert np.all(np.linalg.norm(nose - TEMPLATES["arcface"][2] * 64, axis=1) < 6)
    # the identity vectors tell the people apart: same person closer than different people
    same = d.ids[d.person == 2]
    other = d.ids[d.person != 2]
    assert (same @ same.T).min() > (same @ other.T).max() - 0.05


def test_steps_logs_samples_and_an_exact_resume(faces, tmp_path):
    d = load_swap_data(faces[1])
    opts = SwapTrainOptions(**TINY)
    a = SwapTrainer(d, opts)
    history = a.train(6, tmp_path / "a", log_every=3)
    assert [h["step"] for h in history] == [3, 6] and all(np.isfinite(v) for v in history[-1].values())
    assert {"identity", "landmark", "flow", "mask", "contextual"} <= set(history[-1])
    assert (tmp_path / "a" / "log.csv").read_text().count("\n") == 3
    assert (tmp_path / "a" / "samples-0000006.png").is_file()
    b = SwapTrainer(d, opts)
    b.train(3, tmp_path / "b", log_every=3)
    c = SwapTrainer(d, opts, resume=tmp_path / "b" / "checkpoint.safetensors")
    c.train(6)
    for (k, va), vc in zip(a.G.state_dict().items(), c.G.state_dict().values(), strict=True):
        assert torch.equal(va, vc), k
    net = load_swapnet(tmp_path / "a" / "swapnet.safetensors")
    assert net.cfg.size == 64
    with pytest.raises(ConfigError):
        SwapTrainOptions(same_rate=2)


def test_two_processes_under_torchrun_train_what_one_process_trains(faces, tmp_path):
    import yaml

    _, data = faces
    runs = {}
    for name in ("one", "two"):
        config = {
            "data": str(data),
            "output": str(tmp_path / name),
            "steps": 3,
            "log_every": 3,
            "options": TINY,
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for name, launcher in (
        (
            "two",
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "portraitfx",
            ],
        ),
        ("one", [sys.executable, "-m", "portraitfx"]),
    ):
        r = subprocess.run([*launcher, "train", "swapnet", str(tmp_path / f"{name}.yaml"), "-q"],
                           capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count("trained 3 steps") == 1
        runs[name] = load_safetensors(tmp_path / name / "checkpoint.safetensors")
    a, b = runs["one"], runs["two"]
    # the same losses (a different split of samples would change them at the first step) ...
    import json

    from safetensors import safe_open

    logged = []
    for name in ("one", "two"):
        with safe_open(str(tmp_path / name / "checkpoint.safetensors"), framework="pt") as fh:
            logged.append(json.loads(fh.metadata()["state"])["history"][-1])
    for key in ("total", "identity", "flow", "reconstruction", "attribute", "d"):
        assert logged[0][key] == pytest.approx(logged[1][key], rel=1e-3, abs=1e-5), key
    # ... and the same weights, up to rounding: Adam turns a rounding-level difference in a near-zero
    # gradient into a learning-rate-sized step, so compare the whole movement, not single weights
    init = SwapTrainer(load_swap_data(data), SwapTrainOptions(**TINY)).G.state_dict()
    moved = sum(float(((a[f"G.{k}"] - v) ** 2).sum()) for k, v in init.items()) ** 0.5
    apart = sum(float(((a[f"G.{k}"] - b[f"G.{k}"]) ** 2).sum()) for k in init) ** 0.5
    assert moved > 0.01 and apart < 0.02 * moved, (moved, apart)


def test_cli_config_errors_and_export_into_the_swap_command(faces, tmp_path, capsys, data_dir):
    from portraitfx.cli.main import main

    (tmp_path / "bad.yaml").write_text("data: x\noutput: y\nlearning_rate: 3\n")
    assert main(["train", "swapnet", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown keys" in capsys.readouterr().err
    (tmp_path / "nodata.yaml").write_text("output: y\n")
    assert main(["train", "swapnet", str(tmp_path / "nodata.yaml")]) == 2
    d = load_swap_data(faces[1])
    SwapTrainer(d, SwapTrainOptions(**TINY)).train(2, tmp_path / "run", log_every=2)
    model = tmp_path / "swap.onnx"
    assert main(["export", "swapnet", str(tmp_path / "run" / "swapnet.safetensors"), "-o", str(model)]) == 0
    assert "largest difference from PyTorch" in capsys.readouterr().out
    out = tmp_path / "swapped.png"
    code = main(["swap", str(data_dir / "obama.jpg"), "-s", str(data_dir / "biden.jpg"), "--model", str(model),
                 "-o", str(out), "-q"])  # fmt: skip
    assert code == 0 and out.is_file()
    # one table for the model-free swap and the learned one
    assert main(["eval", "swap", "--photos", str(faces[0]), "-m", str(model), "--clip-frames", "3"]) == 0
    table = capsys.readouterr().out
    assert "| model-free | 6 | 1.00 |" in table and "| swap.onnx | 6 |" in table


def test_bf16_steps_and_device_checks(faces):
    d = load_swap_data(faces[1])
    t = SwapTrainer(d, SwapTrainOptions(**TINY), precision="bf16", device="cpu")
    logs = [t.step() for _ in range(2)]
    assert all(np.isfinite(v) for v in logs[-1].values())
    with pytest.raises(ConfigError, match="precision"):
        SwapTrainer(d, SwapTrainOptions(**TINY), precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            SwapTrainer(d, SwapTrainOptions(**TINY), device="cuda")


def test_an_arcface_identity_run_exports_its_encoder_and_swaps(faces, tmp_path, capsys, data_dir):
    """identity: arcface: the network's own identity space, learned from who each face is, shipped beside it."""
    from portraitfx.cli.main import main
    from portraitfx.effects.swap.neural import NeuralSwapper

    d = load_swap_data(faces[1])
    t = SwapTrainer(d, SwapTrainOptions(**{**TINY, "id_steps": 30}, identity="arcface"))
    t.train_identity()
    with torch.no_grad():
        x = torch.from_numpy(d.crops).permute(0, 3, 1, 2).float() / 255
        emb = t.E(x).numpy()
    sims = emb @ emb.T
    same = sims[d.person[:, None] == d.person[None, :]].mean()
    other = sims[d.person[:, None] != d.person[None, :]].mean()
    assert same > other + 0.1  # faces of one person closer than faces of different people
    t.train(2, tmp_path / "run", log_every=2)
    assert (tmp_path / "run" / "identity.safetensors").is_file()
    model = tmp_path / "arc.onnx"
    assert main(["export", "swapnet", str(tmp_path / "run" / "swapnet.safetensors"), "-o", str(model)]) == 0
    assert "identity encoder beside it" in capsys.readouterr().out
    assert (tmp_path / "arc.identity.onnx").is_file()
    swapper = NeuralSwapper(str(model))
    assert swapper.identity_kind == "onnx:arc.identity.onnx"
    out = tmp_path / "swapped.png"
    code = main(["swap", str(data_dir / "obama.jpg"), "-s", str(data_dir / "biden.jpg"), "--model", str(model),
                 "-o", str(out), "-q"])  # fmt: skip
    assert code == 0 and out.is_file()
    with pytest.raises(ConfigError, match="identity"):
        SwapTrainOptions(identity="facenet")


def test_videos_in_the_data_folder_give_frames(tmp_path, data_dir):
    from portraitfx.io.images import load_image
    from portraitfx.testing import clips

    for name, person in (("obama.jpg", "obama"), ("biden.jpg", "biden")):
        (tmp_path / person).mkdir()
        shutil.copy(data_dir / name, tmp_path / person / name)
    head = load_image(data_dir / "obama2.jpg")
    clips.make_clip(
        tmp_path / "obama" / "talk.mp4", clips.moving_crop_frames(head, 9, size=(240, 240)), fps=9
    )
    d = prepare_swap_data(tmp_path, 64, video_step=3, video_frames=2)
    assert len(d) == 4  # two photos and two frames of the video
    assert sum(n.startswith("obama/talk.mp4") for n in d.names) == 2
    assert sorted(d.person.tolist()) == [0, 1, 1, 1]  # biden, then obama (photo and frames)
