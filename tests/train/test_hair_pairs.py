"""Hair pairs by iterative reconstruction on a tiny StyleGAN: the three terms, the pair folder, interpolation."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from portraitfx.cli.main import main  # noqa: E402
from portraitfx.errors import ConfigError  # noqa: E402
from portraitfx.io.images import load_image  # noqa: E402
from portraitfx.train.hairnet.pairs import (  # noqa: E402
    HairPairJob,
    interpolate_pairs,
    template_edit,
    write_hair_pairs,
)
from portraitfx.train.hairnet.reconstruct import (  # noqa: E402
    ReconstructOptions,
    latent_penalty,
    reconstruct,
    w_statistics,
)
from portraitfx.train.stylegan import save_generator  # noqa: E402
from portraitfx.train.stylegan.networks import to_uint8  # noqa: E402


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def scene(generator32):
    g = generator32
    with torch.no_grad():
        ws = g.mapping(torch.randn(1, 32, generator=torch.Generator().manual_seed(3)))
        original = g.synthesis(ws, noise_mode="const")
    before = to_uint8(original)[0]
    crude, mask = template_edit(before, "bangs", amount=0.8)
    return g, ws, original, crude, mask


def _low_res_error(image: torch.Tensor, crude: np.ndarray, mask: np.ndarray, scale: int) -> float:
    m = F.avg_pool2d(torch.from_numpy(mask)[None, None], scale)
    d = F.avg_pool2d(image.clamp(-1, 1), scale) - F.avg_pool2d(_tensor(crude), scale)
    return float((d.square() * m).sum() / m.sum())


def test_each_term_falls_and_the_edit_is_matched(scene):
    g, ws, original, crude, mask = scene
    # start away from the answer (the original's latents, each layer nudged differently),
    # so every term has something to do
    start = ws + 0.3 * ws.std() * torch.randn(ws.shape, generator=torch.Generator().manual_seed(1))
    # (this random generator draws far outside [-1, 1], so its image terms are ~50x a trained
    # generator's; the latent term gets a matching weight)
    opts = ReconstructOptions(steps=150, edit_scale=2, latent_weight=2.0)
    rec = reconstruct(g, original, _tensor(crude), torch.from_numpy(mask)[None, None], start, opts)
    for name, curve in rec.losses.items():
        first, last = np.mean(curve[:5]), np.mean(curve[-5:])
        assert last < 0.85 * first, f"{name}: {first:.4f} -> {last:.4f}"
    # at low resolution the result is closer to the crude edit than the original is
    assert _low_res_error(rec.image, crude, mask, 2) < 0.5 * _low_res_error(original, crude, mask, 2)
    # outside the edit it stays close to the original
    outside = torch.from_numpy(1.0 - mask)[None, None] > 0.5
    near = float((rec.image - original).abs().mean(1, keepdim=True)[outside].mean())
    far = float((rec.image - original).abs().mean(1, keepdim=True)[~outside].mean())
    assert near < far


def test_latent_penalty_measures_leaving_the_distribution(generator32):
    w_avg, w_std = w_statistics(generator32, samples=500)
    with torch.no_grad():
        w = generator32.mapping(torch.randn(4, 32, generator=torch.Generator().manual_seed(0)))
    plain = float(latent_penalty(w, w_avg, w_std))  # samples: no spread between layers, rarely far
    spread = (
        w
        + 0.5 * w_std * torch.randn(w.shape, generator=torch.Generator().manual_seed(1)) / w.shape[-1] ** 0.5
    )
    far = w_avg + 5 * (w - w_avg)
    assert float(latent_penalty(spread, w_avg, w_std)) > plain + 0.1
    assert float(latent_penalty(far, w_avg, w_std)) > plain + 5.0


def test_bad_shapes_are_refused(scene):
    g, ws, original, crude, mask = scene
    with pytest.raises(ConfigError, match="mask must be"):
        reconstruct(g, original, _tensor(crude), torch.zeros(1, 1, 16, 16), ws)
    with pytest.raises(ConfigError, match="edit_scale"):
        reconstruct(
            g,
            original,
            _tensor(crude),
            torch.from_numpy(mask)[None, None],
            ws,
            ReconstructOptions(edit_scale=3),
        )
    with pytest.raises(ConfigError, match="unknown hair edit"):
        HairPairJob(edit="mohawk")


@pytest.mark.parametrize("edit", ["bangs", "hairline", "recolor", "fill"])
def test_template_edits_paint_only_their_mask(scene, edit):
    before = to_uint8(scene[2])[0]
    crude, mask = template_edit(
        before, edit, amount=0.5 if edit != "hairline" else -0.3, colour=np.array([200, 30, 90])
    )
    assert mask.any() and mask.max() <= 1.0
    assert np.array_equal(crude[mask == 0], before[mask == 0])
    assert (crude[mask == 1] != before[mask == 1]).any()


def test_pair_folder_resumes_and_interpolates(tmp_path, generator32):
    gpath = save_generator(tmp_path / "g.safetensors", generator32)
    job = HairPairJob(
        edit="bangs", count=2, crude="template", options=ReconstructOptions(steps=20, edit_scale=2)
    )
    out = tmp_path / "pairs"
    assert write_hair_pairs(gpath, out, job) == 2
    for sub in ("face", "style", "mask"):
        assert sorted(p.name for p in (out / sub).glob("*.png")) == ["000000.png", "000001.png"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["edit"] for r in records] == ["bangs", "bangs"] and records[0]["crude"] == "template"
    # before and after agree where the mask is empty
    a, b = load_image(out / "face" / "000000.png"), load_image(out / "style" / "000000.png")
    m = load_image(out / "mask" / "000000.png")[..., 0]
    assert np.array_equal(a[m == 0], b[m == 0]) and not np.array_equal(a[m > 128], b[m > 128])
    # resuming does nothing; raising the count adds only the new pair
    assert write_hair_pairs(gpath, out, job) == 0
    bigger = HairPairJob(
        edit="bangs", count=3, crude="template", options=ReconstructOptions(steps=20, edit_scale=2)
    )
    stamp = (out / "style" / "000000.png").stat().st_mtime_ns
    assert write_hair_pairs(gpath, out, bigger) == 1
    assert (out / "style" / "000000.png").stat().st_mtime_ns == stamp
    # interpolation: renders of interpolated latents, masks in between
    more = tmp_path / "more"
    assert interpolate_pairs(out, gpath, more, 4, seed=1) == 4
    lines = [json.loads(line) for line in (more / "manifest.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in lines} <= {"within", "between"} and len(lines) == 4
    with np.load(more / "latents" / "000000.npz") as z:
        ws = torch.from_numpy(z["before"])
    with torch.no_grad():
        expect = to_uint8(generator32.synthesis(ws, noise_mode="const"))[0]
    assert np.array_equal(load_image(more / "face" / "000000.png"), expect)


def test_cli_pairs_and_interpolate(tmp_path, generator32, capsys):
    gpath = save_generator(tmp_path / "g.safetensors", generator32)
    out = tmp_path / "p"
    code = main(["hair", "pairs", str(gpath), "-o", str(out), "-e", "hairline", "-n", "2", "--steps", "5",
                 "--crude", "auto", "--edit-scale", "2", "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    # a tiny generator draws no detectable face: auto falls back to the template
    assert all(
        json.loads(x)["crude"] == "template" for x in (out / "manifest.jsonl").read_text().splitlines()
    )
    code = main(
        ["hair", "interpolate", str(out), "-g", str(gpath), "-o", str(tmp_path / "q"), "-n", "2", "-q"]
    )
    assert code == 0
    code = main(["hair", "pairs", str(tmp_path / "missing.safetensors"), "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert code != 0 and err.strip().startswith("error: ") and len(err.strip().splitlines()) == 1
