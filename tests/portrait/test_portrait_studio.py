"""The portrait studio around the schedule: styles, reference photos, ranking, outputs, the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from portraitfx.cli.main import main  # noqa: E402
from portraitfx.errors import ConfigError, InputError, ModelNotFoundError, NoFaceError  # noqa: E402
from portraitfx.io.images import load_image, save_image  # noqa: E402
from portraitfx.portrait import studio as studio_mod  # noqa: E402
from portraitfx.portrait.reference import prepare_references  # noqa: E402
from portraitfx.portrait.schedule import Generation  # noqa: E402
from portraitfx.portrait.studio import PortraitStudio, rank_by_identity  # noqa: E402
from portraitfx.portrait.styles import list_styles, load_style  # noqa: E402
from portraitfx.testing.tiny_sd import build_tiny_sd  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd-studio"), size=64)


def test_the_style_library(tmp_path, monkeypatch):
    styles = list_styles()
    assert len(styles) >= 12
    for st in styles.values():
        assert "{subject}" in st.prompt and st.title and st.steps >= 10
        st.schedule()  # every built-in style gives a valid schedule
    assert "a woman" in load_style("business").prompt_for("a woman")
    # drop a file into the user's folder and it is found by name (and can replace a built-in)
    monkeypatch.setenv("PORTRAITFX_HOME", str(tmp_path / "home"))
    user = tmp_path / "home" / "portrait-styles"
    user.mkdir(parents=True)
    (user / "my-style.yaml").write_text("prompt: 'a sketch of {subject}'\nsampler: euler\nsize: [256, 320]\n")
    mine = load_style("my-style")
    assert (mine.width, mine.height, mine.sampler) == (256, 320, "euler")
    with pytest.raises(ModelNotFoundError, match="did you mean"):
        load_style("busines")
    for bad, match in [
        ("prompt: 'no slot'\n", "subject"),
        ("prompt: '{subject}'\ncolour: red\n", "unknown keys"),
        ("prompt: '{subject}'\nsampler: plms\n", "sampler"),
        ("prompt: [1, 2\n", "YAML"),
    ]:
        (tmp_path / "bad.yaml").write_text(bad)
        with pytest.raises(ConfigError, match=match):
            load_style(tmp_path / "bad.yaml")


def test_reference_photos_are_checked(data_dir, obama, biden):
    refs = prepare_references([data_dir / "obama.jpg", data_dir / "obama2.jpg"])
    assert len(refs) == 2 and refs[0].crop.shape == (512, 512, 3) and refs[0].embedding.shape == (128,)
    assert refs[0].face_mask.max() == pytest.approx(1.0, abs=0.01) and refs[0].hair_mask.max() > 0.5
    with pytest.raises(InputError, match="different people"):
        prepare_references([data_dir / "obama.jpg", data_dir / "biden.jpg"])
    with pytest.raises(NoFaceError):
        prepare_references([np.full((200, 200, 3), 128, np.uint8)])
    h = min(obama.shape[0], biden.shape[0])
    two = np.concatenate(
        [cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h)) for im in (obama, biden)], 1
    )
    with pytest.raises(InputError, match="faces"):
        prepare_references([two])


def test_ranking_keeps_the_most_similar(analyzer, obama, obama2, obama3, biden, astronaut):
    from portraitfx.face.identity import FaceEmbedder

    with FaceEmbedder() as emb:
        ref = emb(obama, analyzer.analyze(obama)[0])
        blank = np.full((200, 200, 3), 90, np.uint8)
        sims = rank_by_identity(
            [biden, obama2, blank, astronaut, obama3], ref, analyzer=analyzer, embedder=emb
        )
    assert sims[2] is None
    order = studio_mod._order(sims)
    assert set(order[:2]) == {1, 4} and order[-1] == 2  # the two Obamas first, the faceless last


def test_studio_keeps_the_best_k_and_writes_marked_outputs(
    tmp_path, files, monkeypatch, data_dir, obama2, obama3, biden
):
    """The generator is replaced by real photos (tiny random models draw no faces), so fusion and
    ranking run on real faces: the Obama candidates must be kept for an Obama reference."""
    from portraitfx.portrait import load_pipeline

    photos = [biden, obama2, obama3, biden]

    def fake_generate(pipe, prompt, *, seed, **kw):
        return Generation(image=photos[seed % len(photos)].copy(), seed=seed)

    monkeypatch.setattr("portraitfx.portrait.schedule.generate", fake_generate)
    pipe = load_pipeline(files["base"], ip_adapter=files["ip_adapter"])
    out = tmp_path / "out"
    result = PortraitStudio(pipe).run([data_dir / "obama.jpg"], "business", n=4, k=2, seed=0, out_dir=out)
    assert {c.seed for c in result.kept} == {1, 2}  # the two Obama photos
    assert all(c.fused for c in result.candidates)
    sims = [c.similarity for c in result.candidates]
    assert sims == sorted(sims, reverse=True)
    report = json.loads((out / "report.json").read_text())
    assert [k["seed"] for k in report["kept"]] == [c.seed for c in result.kept]
    assert report["settings"]["fusion"] == 0.35 and report["style"] == "business"
    assert (out / "contact-sheet.png").is_file()
    kept = sorted(out.glob("portrait-*.png"))
    assert len(kept) == 2
    assert main(["verify", str(kept[0])]) == 0  # marked as generated


def test_cli_runs_the_tiny_studio_end_to_end(tmp_path, files, data_dir, capsys):
    models = tmp_path / "models.yaml"
    models.write_text(f"base: {{path: {files['base']}}}\nip_adapter: {{path: {files['ip_adapter']}}}\n")
    out = tmp_path / "out"

    def args(folder):
        return ["portrait", "-r", str(data_dir / "obama.jpg"), "--style", "watercolour", "-n", "2", "-k", "1",
                "-o", str(folder), "--models", str(models), "--steps", "3", "--size", "64x64", "--seed", "5"]  # fmt: skip

    assert main(args(out)) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["seed"] == 5 and len(report["candidates"]) == 2 and len(report["kept"]) == 1
    first = load_image(next(out.glob("portrait-*.png")))
    assert first.shape == (64, 64, 3)
    # same seed, same image
    out2 = tmp_path / "out2"
    assert main(args(out2)) == 0
    again = load_image(next(out2.glob("portrait-*.png")))
    assert np.array_equal(first, again)
    capsys.readouterr()
    # clear one-line errors
    for bad, code in [
        (["portrait", "-o", str(out)], 2),
        (
            [
                "portrait",
                "-r",
                str(data_dir / "obama.jpg"),
                "-o",
                str(out),
                "--models",
                str(models),
                "-n",
                "1",
                "-k",
                "2",
            ],
            2,
        ),
        (["portrait", "-r", str(tmp_path / "nope.jpg"), "-o", str(out), "--models", str(models)], 2),
        (
            ["portrait", "-r", str(data_dir / "obama.jpg"), "-o", str(out), "--base", str(tmp_path / "none")],
            2,
        ),
    ]:
        rc = main(bad)
        err = capsys.readouterr().err.strip()
        assert rc == code and err.startswith("error: ") and len(err.splitlines()) == 1, (bad, err)
    save_image(tmp_path / "blank.png", np.full((128, 128, 3), 100, np.uint8))
    rc = main(
        [
            "portrait",
            "-r",
            str(tmp_path / "blank.png"),
            "-o",
            str(out),
            "--models",
            str(models),
            "--size",
            "64x64",
            "--steps",
            "2",
        ]
    )
    assert rc == 3 and "no face" in capsys.readouterr().err


def _onnx(path, module, size=None):
    import io
    import warnings

    import onnx

    buf = io.BytesIO()
    dyn = {"image": {2: "h", 3: "w"}, "out": {2: "h2", 3: "w2"}} if size is None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(1, 3, size or 32, size or 32), buf, input_names=["image"],
                          output_names=["out"], dynamic_axes=dyn, opset_version=17, dynamo=False)  # fmt: skip
    onnx.save(onnx.load_from_string(buf.getvalue()), str(path))
    return path


class _Warm(torch.nn.Module):
    def forward(self, x):
        return (x * torch.tensor([1.0, 0.9, 0.8]).view(1, 3, 1, 1)).clamp(0, 1)


class _Up2(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


def test_restoration_and_upscaling_of_the_kept_portraits(
    tmp_path, files, monkeypatch, data_dir, obama2, obama3
):
    from portraitfx.portrait import load_pipeline

    photos = [obama2, obama3]
    monkeypatch.setattr(
        "portraitfx.portrait.schedule.generate",
        lambda pipe, prompt, *, seed, **kw: Generation(image=photos[seed % 2].copy(), seed=seed),
    )
    restore = _onnx(tmp_path / "restore.onnx", _Warm(), size=128)
    upscale = _onnx(tmp_path / "up.onnx", _Up2())
    pipe = load_pipeline(files["base"], ip_adapter=files["ip_adapter"])
    studio = PortraitStudio(pipe, restore=restore, upscale=upscale)
    result = studio.run([data_dir / "obama.jpg"], "anime", n=2, k=1, seed=0)  # anime: no fusion
    kept = result.kept[0]
    src = photos[kept.seed % 2]
    assert kept.image.shape == (src.shape[0] * 2, src.shape[1] * 2, 3)
    assert "face restored" in kept.notes and any("upscaled" in n for n in kept.notes)
    # the restoration model warmed the face: less blue there than in the plain upscale
    plain = cv2.resize(src, (src.shape[1] * 2, src.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    changed = np.abs(kept.image.astype(int) - plain.astype(int)).max(-1) > 3
    assert 0.01 < changed.mean() < 0.5
    assert kept.image[..., 2][changed].mean() < plain[..., 2][changed].mean()


def test_studio_with_a_faceid_adapter(tmp_path, files, data_dir):
    from portraitfx.portrait import load_pipeline
    from portraitfx.testing.tiny_sd import make_tiny_faceid

    dlib_sized = make_tiny_faceid(files["base"], tmp_path / "faceid128.safetensors", id_dim=128)
    pipe = load_pipeline(files["base"], ip_adapter=dlib_sized)
    result = PortraitStudio(pipe).run([data_dir / "obama.jpg"], "anime", n=1, k=1, steps=3, size=(64, 64))
    assert result.kept[0].image.shape == (64, 64, 3)
    arcface_sized = make_tiny_faceid(files["base"], tmp_path / "faceid512.safetensors", id_dim=512)
    pipe = load_pipeline(files["base"], ip_adapter=arcface_sized)
    with pytest.raises(ConfigError, match="face-encoder"):
        PortraitStudio(pipe).run([data_dir / "obama.jpg"], "anime", n=1, k=1, steps=3, size=(64, 64))
