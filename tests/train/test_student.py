"""The real-time student: network, losses, teacher pairs, the ladder, resume, ONNX export, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError, InputError, ModelError  # noqa: E402
from portraitfx.train.student.network import Student, StudentConfig  # noqa: E402
from portraitfx.train.student.train import (  # noqa: E402
    PatchDiscriminator,
    StudentOptions,
    StudentTrainer,
    _augment,
    blur_edges,
    load_pairs,
    load_student,
    save_student,
)


def test_the_student_starts_as_the_identity_and_scales_with_its_width():
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    net = Student(StudentConfig(width=0.5))
    with torch.no_grad():
        assert torch.equal(net(x), x)  # an untrained student changes nothing
    small, big = (sum(p.numel() for p in Student(StudentConfig(width=w)).parameters()) for w in (0.5, 1.0))
    assert big > 3 * small
    with pytest.raises(ConfigError):
        StudentConfig(width=8)
    assert PatchDiscriminator()(x).shape == (2, 1, 8, 12)


def test_losses_and_augmentation_have_known_answers():
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(blur_edges(flat), flat)  # nothing to blur
    step = torch.full((1, 3, 32, 32), -1.0)
    step[..., 16:] = 1.0
    soft = blur_edges(step)
    assert torch.equal(soft[..., :8], step[..., :8]) and torch.equal(
        soft[..., 24:], step[..., 24:]
    )  # far from the edge
    assert -0.9 < float(soft[0, 0, 10, 15]) < 0.0 < float(soft[0, 0, 10, 16]) < 0.9  # the edge itself is soft
    # input and target get the same geometry; only the input's colours move
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    a, b = _augment(x, x.clone(), torch.Generator().manual_seed(1))
    assert not torch.allclose(b, x)
    for i in range(4):
        ga, gb = a[i].mean(0).flatten(), b[i].mean(0).flatten()
        assert float(torch.corrcoef(torch.stack([ga, gb]))[0, 1]) > 0.97


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, data_dir):
    from portraitfx.train.student.teacher import TeacherJob, teacher_pairs

    out = tmp_path_factory.mktemp("pairs")
    photos = tuple(str(data_dir / n) for n in ("obama.jpg", "biden.jpg", "astronaut.jpg"))
    assert teacher_pairs(TeacherJob("faceblit:pencil", photos, 24, size=64), out) == 24
    return out


def test_teacher_pairs_are_aligned_resumable_and_recorded(pairs, data_dir):
    from portraitfx.train.student.teacher import TeacherJob, teacher_pairs

    records = [json.loads(line) for line in (pairs / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(24))
    assert {r["source"] for r in records} == {"obama.jpg", "biden.jpg", "astronaut.jpg"}
    faces, styles = load_pairs(pairs)
    assert faces.shape == styles.shape == (24, 64, 64, 3)
    # the teacher changed the face, and both images show the same face in the same place
    assert np.abs(faces.astype(int) - styles).mean() > 8
    for f, s in zip(faces[:6], styles[:6], strict=True):
        gf, gs = f.mean(2)[16:48, 16:48], s.mean(2)[16:48, 16:48]
        edges = [np.abs(np.diff(g, axis=1)).mean(0) for g in (gf, gs)]
        assert np.corrcoef(edges[0], edges[1])[0, 1] > 0.2
    photos = tuple(str(data_dir / n) for n in ("obama.jpg", "biden.jpg", "astronaut.jpg"))
    assert teacher_pairs(TeacherJob("faceblit:pencil", photos, 24, size=64), pairs) == 0  # all there
    with pytest.raises(ConfigError, match="bad teacher"):
        teacher_pairs(TeacherJob("gan:x", photos, 2, size=64), pairs)


@pytest.fixture(scope="module")
def trained(pairs, tmp_path_factory):
    faces, styles = load_pairs(pairs)
    run = tmp_path_factory.mktemp("run")
    trainer = StudentTrainer(faces, styles, StudentOptions(steps=40, batch=4, width=0.5, val_fraction=0.2))
    trainer.train(run, log_every=20)
    return trainer, run


def test_the_ladder_learns_the_teacher_and_keeps_a_model_per_stage(trained):
    trainer, run = trained
    faces, styles = trainer.faces[trainer.val_idx], trainer.styles[trainer.val_idx]
    before = np.mean(
        10 * np.log10(255.0**2 / ((faces.astype(float) - styles) ** 2).reshape(len(faces), -1).mean(1))
    )
    after = trainer.validate()["psnr"]
    assert after > before + 2.0, (before, after)  # closer to the teacher than the photo itself is
    assert [h["stage"] for h in trainer.history if h["step"] % 40 == 0] == list(StudentOptions().ladder)
    assert "adversarial" not in trainer.history[0] and "adversarial" in trainer.history[-1]
    for stage in ("pixel", "perceptual", "edge", "augment"):
        assert load_student(run / f"stage-{stage}.safetensors").cfg.width == 0.5
    assert (run / "student.safetensors").is_file()


def test_a_resumed_run_continues_exactly(pairs, tmp_path):
    faces, styles = load_pairs(pairs)
    opts = StudentOptions(steps=6, batch=2, width=0.5, ladder=("pixel", "edge"))
    a = StudentTrainer(faces, styles, opts)
    a.train(tmp_path / "a")
    b = StudentTrainer(faces, styles, StudentOptions(steps=6, batch=2, width=0.5, ladder=("pixel", "edge")))
    for _ in range(8):
        b.step()
    b.save(tmp_path / "half.safetensors")
    c = StudentTrainer(faces, styles, opts, resume=tmp_path / "half.safetensors")
    c.train()
    for (k, va), vc in zip(a.S.state_dict().items(), c.S.state_dict().values(), strict=True):
        assert torch.equal(va, vc), k
    with pytest.raises(ModelError):
        load_student(tmp_path / "half.safetensors").cfg and StudentTrainer(
            faces, styles, opts, resume=tmp_path / "a" / "student.safetensors"
        )


def test_export_fp32_fp16_int8_and_the_checks(trained, pairs, tmp_path):
    import onnxruntime as ort

    from portraitfx.train.student.export import export_student

    _, run = trained
    reports = {}
    for precision in ("fp32", "fp16", "int8"):
        reports[precision] = export_student(
            run / "student.safetensors", tmp_path / f"{precision}.onnx", precision=precision,
            calibration=pairs / "face", size=64,
        )  # fmt: skip
    assert reports["fp32"]["psnr"] > 45 and reports["fp16"]["psnr"] > 40 and reports["int8"]["psnr"] > 26
    assert reports["fp16"]["bytes"] < 0.7 * reports["fp32"]["bytes"]  # weights halved, graph as is
    # the int8 model stays close to the fp32 one on real faces
    faces, _ = load_pairs(pairs)
    x = faces[-4:].astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1
    run_ = lambda p: ort.InferenceSession(str(tmp_path / p)).run(None, {"image": x})[0]  # noqa: E731
    mse = float(np.mean(((run_("int8.onnx") - run_("fp32.onnx")) / 2) ** 2))
    assert 10 * np.log10(1 / mse) > 28
    meta = ort.InferenceSession(str(tmp_path / "fp32.onnx")).get_modelmeta().custom_metadata_map
    assert meta["portraitfx"] == "toon-student" and float(meta["crop_scale"]) == 0.8 and meta["size"] == "64"
    with pytest.raises(ConfigError, match="calibration"):
        export_student(run / "student.safetensors", tmp_path / "x.onnx", precision="int8")
    assert not (tmp_path / "x.onnx").exists()


def test_eval_prints_the_table_per_stage(trained, pairs):
    from portraitfx.train.student.evaluate import evaluate_run, format_table

    _, run = trained
    rows = evaluate_run(run, pairs, limit=8)
    assert [r["model"] for r in rows] == ["teacher", "+pixel", "+perceptual", "+edge", "+augment"]
    assert rows[0]["fid"] == pytest.approx(0.0, abs=1e-6) and all(r["fid"] >= 0 for r in rows)
    assert all(0 <= r["identity"] <= 1 and r["clarity"] > 0 for r in rows)
    table = format_table(rows)
    assert table.count("\n") == 6 and "| +edge |" in table
    with pytest.raises(InputError):
        evaluate_run(pairs, pairs)


def test_save_and_load_student_refuse_other_files(tmp_path):
    net = Student(StudentConfig(width=0.25))
    path = save_student(tmp_path / "s.safetensors", net)
    assert load_student(path).cfg == net.cfg
    (tmp_path / "s.pt").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelError):
        load_student(tmp_path / "s.pt")


def test_the_chain_from_the_cli(tmp_path, data_dir, capsys):
    """style -> pairs -> student -> ONNX -> effect, and the table, all from the command line."""
    import shutil

    from portraitfx.cli.main import main
    from portraitfx.io.images import load_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama.jpg", "biden.jpg"):
        shutil.copy(data_dir / name, photos / name)
    pairs_dir, run, model = tmp_path / "pairs", tmp_path / "run", tmp_path / "toon.onnx"
    assert (
        main(
            [
                "student",
                "pairs",
                "--photos",
                str(photos),
                "-n",
                "10",
                "--size",
                "64",
                "-o",
                str(pairs_dir),
                "-q",
            ]
        )
        == 0
    )
    assert "wrote 10 pairs" in capsys.readouterr().out
    assert (
        main(["student", "train", str(pairs_dir), "-o", str(run), "--steps", "3", "--width", "0.5", "-q"])
        == 0
    )
    assert "trained 12 steps" in capsys.readouterr().out
    assert (
        main(["student", "train", str(pairs_dir), "-o", str(run), "-q"]) == 0
    )  # resumes: nothing left to do
    assert "resuming" in capsys.readouterr().out
    assert (
        main(["export", "student", str(run / "student.safetensors"), "-o", str(model), "--size", "64"]) == 0
    )
    assert "PSNR" in capsys.readouterr().out
    out = tmp_path / "out.png"
    assert main(["toon", str(photos / "biden.jpg"), "-m", str(model), "-o", str(out), "-q"]) == 0
    assert load_image(out).shape == load_image(photos / "biden.jpg").shape
    assert main(["eval", "toon", str(run), "--pairs", str(pairs_dir), "--limit", "4"]) == 0
    assert "| +augment |" in capsys.readouterr().out
