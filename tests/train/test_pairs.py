"""Paired data: the same latents through both models, resumable, interpolations, Ray workers."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.train.stylegan import Generator, GeneratorConfig, fuse_generators, save_generator  # noqa: E402
from portraitfx.train.stylegan.pairs import PairJob, generate_pairs, pair_latents  # noqa: E402

CFG = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def _models():
    torch.manual_seed(0)
    face = Generator(CFG).eval()
    style = fuse_generators(face, Generator(CFG), "swap:8")  # shares the face model's mapping
    return face, style


def test_pairs_are_the_same_latents_through_both_models_and_resume(tmp_path):
    from portraitfx.io.images import load_image
    from portraitfx.train.stylegan.networks import to_uint8

    face, style = _models()
    job = PairJob(n=5, seed=3, truncation=0.8, interpolate=1)
    assert job.total == 5 + 4
    assert generate_pairs(face, style, tmp_path, job) == 9
    records = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(9))
    assert [r["kind"] for r in records] == ["sample"] * 5 + ["interpolated"] * 4
    # pair 2 is exactly the rendering of its latents by each model
    ws, _ = pair_latents(face, job, 2)
    with torch.no_grad():
        want_face = to_uint8(face.synthesis(ws, noise_mode="const"))[0]
        want_style = to_uint8(style.synthesis(ws, noise_mode="const"))[0]
    assert np.array_equal(load_image(tmp_path / "face/000002.png"), want_face)
    assert np.array_equal(load_image(tmp_path / "style/000002.png"), want_style)
    assert not np.array_equal(want_face, want_style)
    # an interpolated latent lies between its two neighbours
    wi, rec = pair_latents(face, job, 5)
    w0, _ = pair_latents(face, job, 0)
    w1, _ = pair_latents(face, job, 1)
    assert rec["between"] == [0, 1] and torch.allclose(wi, w0.lerp(w1, rec["t"]), atol=1e-4)
    # resume: nothing to do; a lost pair is redone, and only it
    assert generate_pairs(face, style, tmp_path, job) == 0
    (tmp_path / "style/000004.png").unlink()
    assert generate_pairs(face, style, tmp_path, job) == 1
    w4, _ = pair_latents(face, job, 4)
    with torch.no_grad():
        assert np.array_equal(
            load_image(tmp_path / "style/000004.png"), to_uint8(style.synthesis(w4, noise_mode="const"))[0]
        )
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(9))  # the redone pair keeps one line


def test_inverted_latents_and_cli(tmp_path):
    from portraitfx.cli.main import main
    from portraitfx.models.load import save_safetensors

    face, style = _models()
    f = save_generator(tmp_path / "face.safetensors", face)
    s = save_generator(tmp_path / "style.safetensors", style)
    lat = save_safetensors(tmp_path / "me.safetensors", {"ws": torch.zeros(1, CFG.num_ws, CFG.w_dim)})
    out = tmp_path / "pairs"
    args = [
        "stylegan",
        "pairs",
        "--face",
        str(f),
        "--style",
        str(s),
        "-n",
        "3",
        "--latents",
        str(lat),
        "-o",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "inverted" and records[-1]["source"] == "me.safetensors"
    assert len(list((out / "face").glob("*.png"))) == 4


@pytest.mark.slow
def test_ray_workers_write_the_same_pairs(tmp_path):
    from portraitfx.io.images import load_image

    face, style = _models()
    job = PairJob(n=12, seed=1)
    generate_pairs(face, style, tmp_path / "here", job)
    try:
        assert generate_pairs(face, style, tmp_path / "ray", job, workers=2, chunk=4) == 12
    finally:
        import ray

        ray.shutdown()
    for i in range(12):
        for kind in ("face", "style"):
            a = load_image(tmp_path / "here" / kind / f"{i:06d}.png")
            b = load_image(tmp_path / "ray" / kind / f"{i:06d}.png")
            assert np.abs(a.astype(int) - b).max() <= 1  # threads may round a last bit differently
