"""``portraitfx toon``, ``student ...``, ``ugatit ...``, and the ``export`` and ``eval`` groups.

The real-time stylization chain of seed 000: a teacher makes pairs, a small student
network learns them, it is exported to ONNX, and the ``toon`` effect runs it. The
``export`` and ``eval`` groups also hold the learned swapper's commands
(``export swapnet``, ``eval swap``), so each group is defined once.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from portraitfx.cli._run import check_paths, print_report, run_effect_command

_settings = {
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
student_app = typer.Typer(
    name="student", help="Make pairs and train real-time student networks.", **_settings
)
export_app = typer.Typer(name="export", help="Export trained networks to ONNX.", **_settings)
eval_app = typer.Typer(name="eval", help="Evaluate trained networks.", **_settings)


class Mode(str, Enum):
    crop = "crop"
    frame = "frame"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


def toon(
    source: Path = typer.Argument(..., help="Image, video (audio is kept) or folder of them."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output file (same kind as the input) or, for a folder, output folder."
    ),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="A student exported to ONNX [default: the shipped toon-pencil.onnx]."
    ),
    mode: Mode = typer.Option(Mode.crop, help="Stylise each face (crop) or the whole frame."),
    strength: float = typer.Option(1.0, min=0.0, max=1.0, help="Blend of the result over the original."),
    smoothing: float = typer.Option(
        0.5, min=0.0, max=0.9, help="Video: keep this much of the last frame's strokes."
    ),
    max_faces: int = typer.Option(8, "--max-faces", min=1, help="Most faces per image or frame."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Stylise faces (or whole frames) with a real-time student network, on a CPU.

    Examples:

      portraitfx toon portrait.jpg -o portrait_toon.png

      portraitfx toon clip.mp4 -o clip_toon.mp4

      portraitfx toon photos/ -m my-style.onnx --mode frame -o photos_toon/
    """
    return run_effect_command(
        "toon",
        {"model": model, "mode": mode.value, "strength": strength, "smoothing": smoothing},
        source,
        output,
        max_faces=max_faces,
        quiet=quiet,
        verb="stylised",
    )


@student_app.command("pairs")
def pairs(
    photos: Path = typer.Option(
        ..., "--photos", help="Folder of photos with faces (real people, your consent)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Pair folder: face/, style/, manifest.jsonl."),
    teacher: str = typer.Option(
        "faceblit:pencil",
        "--teacher",
        "-t",
        help="faceblit:STYLE (a built-in style or .pfxstyle) or effect:NAME[:k=v,...].",
    ),
    n: int = typer.Option(1000, "-n", min=1, help="Pairs (each photo augmented differently each time)."),
    size: int = typer.Option(256, "--size", min=32, help="Side of the pair images (a multiple of 8)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the augmentations."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Spread the work over this many Ray workers (0: here)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Make (photo, stylised) training pairs with a teacher that needs no pretrained GAN.

    Each pair depends only on its index: run again to resume, or raise -n to add
    more. (StyleGAN teachers: 'portraitfx stylegan pairs' writes the same layout.)

    Example:

      portraitfx student pairs --photos faces/ --teacher faceblit:pencil -n 2000 -o pairs/
    """
    from portraitfx.errors import InputError
    from portraitfx.train.student.teacher import TeacherJob, teacher_pairs
    from portraitfx.train.stylegan.train import image_files

    names = image_files(photos)
    if not names:
        raise InputError(f"'{photos}' holds no photos")
    job = TeacherJob(teacher, tuple(str(p) for p in names), n, size=size, seed=seed)
    written = teacher_pairs(job, output, progress=not quiet and sys.stderr.isatty(), workers=workers)
    typer.echo(f"wrote {written} pairs ({n - written} were already there) to {output}")
    return 0


@student_app.command("train")
def train(
    pairs_dir: Path = typer.Argument(..., help="A pair folder (face/, style/)."),
    run: Path = typer.Option(
        ..., "--output", "-o", help="Run folder: stages, checkpoint, log; run again to resume."
    ),
    steps: int = typer.Option(1000, "--steps", min=1, help="Steps per ladder stage."),
    ladder: str = typer.Option(
        "pixel,perceptual,edge,augment",
        "--ladder",
        help="Stages in order (pixel, perceptual, edge, augment).",
    ),
    width: float = typer.Option(
        0.75, "--width", min=0.125, max=4.0, help="Channel multiplier of the student."
    ),
    batch: int = typer.Option(8, "--batch", min=1, help="Pairs per step."),
    size: int | None = typer.Option(None, "--size", help="Train at this side (default: the pairs')."),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="VGG16 feature weights (safetensors) for the perceptual loss [default: built-in].",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Train a real-time student on pairs, through the loss ladder (a model kept per stage).

    Example:

      portraitfx student train pairs/ -o runs/toon --steps 2000
    """
    from portraitfx.train.invert import VGGFeatures
    from portraitfx.train.student.train import StudentOptions, StudentTrainer, load_pairs, options_from_run

    checkpoint = run / "checkpoint.safetensors"
    if checkpoint.is_file():
        options = options_from_run(checkpoint)
        typer.echo(f"resuming {checkpoint}")
    else:
        options = StudentOptions(
            width=width, ladder=tuple(s.strip() for s in ladder.split(",") if s.strip()), steps=steps, batch=batch,
            seed=seed,
        )  # fmt: skip
    faces, styles = load_pairs(pairs_dir, size)
    feats = VGGFeatures.from_file(features) if features is not None else None
    trainer = StudentTrainer(
        faces, styles, options, features=feats, resume=checkpoint if checkpoint.is_file() else None
    )
    history = trainer.train(run, progress=not quiet and sys.stderr.isatty())
    last = history[-1] if history else {}
    typer.echo(
        f"trained {trainer.step_count} steps; held-out PSNR {last.get('psnr', float('nan')):.1f} dB against the "
        f"teacher; {run / 'student.safetensors'}"
    )
    return 0


@export_app.command("student")
def export_student_command(
    checkpoint: Path = typer.Argument(
        ..., help="A student (student.safetensors, stage-*.safetensors or a run's checkpoint)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The ONNX model to write."),
    precision: Precision = typer.Option(
        Precision.fp32, "--precision", help="fp32, fp16 (weights) or int8 (calibrated)."
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="Folder of face crops for int8 calibration (and the check against PyTorch).",
    ),
    size: int = typer.Option(256, "--size", help="Side of the face crops the model was trained on."),
) -> int:
    """Export a trained student to ONNX for the toon effect, checked against PyTorch.

    Example:

      portraitfx export student runs/toon/student.safetensors -o toon.onnx --precision int8 --calibration pairs/face
    """
    from portraitfx.train.student.export import export_student

    r = export_student(checkpoint, output, precision=precision.value, calibration=calibration, size=size)
    typer.echo(
        f"wrote {r['path']}: {r['precision']}, {r['bytes'] / 1e6:.2f} MB, {r['params'] / 1e3:.0f} k parameters, "
        f"PSNR {r['psnr']:.1f} dB against PyTorch, {r['ms']:.1f} ms per {size} px image"
    )
    return 0


@eval_app.command("toon")
def eval_toon(
    run: Path = typer.Argument(..., help="A student run folder (stage-*.safetensors) or one student file."),
    pairs_dir: Path = typer.Option(
        ..., "--pairs", help="Pairs to evaluate on (held-out ones: the run's last 10 %)."
    ),
    limit: int = typer.Option(64, "--limit", min=2, help="Most pairs to use."),
) -> int:
    """The seed's table: clarity, FID (identity space) and identity similarity per ladder stage.

    Example:

      portraitfx eval toon runs/toon --pairs pairs/
    """
    from portraitfx.train.student.evaluate import evaluate_run, format_table

    rows = evaluate_run(run, pairs_dir, limit=limit)
    typer.echo(format_table(rows))
    return 0


ugatit_app = typer.Typer(name="ugatit", help="Unpaired photo-to-style translation (U-GAT-IT).", **_settings)


class Variant(str, Enum):
    plain = "plain"
    region = "region"
    mask = "mask"


@ugatit_app.command("train")
def ugatit_train(
    photos: Path = typer.Option(..., "--a", help="Domain A: photos with faces."),
    styles: Path = typer.Option(..., "--b", help="Domain B: style images (faces in the style)."),
    run: Path = typer.Option(
        ..., "--output", "-o", help="Run folder (generator.safetensors, checkpoint); run again to resume."
    ),
    variant: Variant = typer.Option(
        Variant.region,
        "--variant",
        help="plain (whole images), region (face crops) or mask (a face mask gates it).",
    ),
    size: int = typer.Option(128, "--size", help="Image side (a power of two)."),
    steps: int = typer.Option(10000, "--steps", min=1, help="Train until this many steps in total."),
    ngf: int = typer.Option(32, "--ngf", min=4, help="Generator width."),
    edge_weight: float = typer.Option(
        1.0, "--edge-weight", min=0.0, help="Edge lifting: soft-edged styles count as fakes."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Train U-GAT-IT from two unpaired folders; its generator makes pairs ('student pairs --teacher ugatit:G').

    Example:

      portraitfx ugatit train --a photos/ --b toons/ -o runs/ugatit --steps 20000
    """
    from portraitfx.train.ugatit.train import UGATITOptions, UGATITTrainer, load_domain, options_from_run

    checkpoint = run / "checkpoint.safetensors"
    if checkpoint.is_file():
        options = options_from_run(checkpoint)
        typer.echo(f"resuming {checkpoint}")
    else:
        options = UGATITOptions(size=size, ngf=ngf, variant=variant.value, edge_weight=edge_weight, seed=seed)
    region = options.variant in ("region", "mask")
    a, masks_a = load_domain(photos, options.size, region=region)
    b, masks_b = load_domain(styles, options.size, region=region)
    trainer = UGATITTrainer(a, b, options, masks_a=masks_a, masks_b=masks_b,
                            resume=checkpoint if checkpoint.is_file() else None)  # fmt: skip
    history = trainer.train(steps, run, progress=not quiet and sys.stderr.isatty())
    last = history[-1] if history else {}
    typer.echo(
        f"trained {trainer.step_count} steps (cycle {last.get('cycle', float('nan')):.3f}, "
        f"identity {last.get('identity', float('nan')):.3f}); {run / 'generator.safetensors'}"
    )
    return 0


@ugatit_app.command("translate")
def ugatit_translate(
    source: Path = typer.Argument(..., help="Image, video or folder."),
    model: Path = typer.Option(..., "--model", "-m", help="A U-GAT-IT generator (generator.safetensors)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file or folder."),
    whole_crop: bool = typer.Option(
        False, "--whole-crop", help="Paste the whole face crop back, not just the face region."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Translate the faces of photos or videos with a trained U-GAT-IT generator.

    Example:

      portraitfx ugatit translate portrait.jpg -m runs/ugatit/generator.safetensors -o portrait_toon.png
    """
    from rich.console import Console

    from portraitfx.effects import create_effect
    from portraitfx.runtime.apply import apply_to_path

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    kind = check_paths(source, output)
    effect = create_effect("ugatit", model=model, region=not whole_crop)
    try:
        report = apply_to_path(effect, source, output, progress=not quiet and sys.stderr.isatty())
    finally:
        effect.close()
    return print_report(console, source, output, kind, report, "translated")


@export_app.command("swapnet")
def export_swapnet_command(
    checkpoint: Path = typer.Argument(..., help="swapnet.safetensors or a run's checkpoint.safetensors."),
    output: Path = typer.Option(..., "--output", "-o", help="The ONNX model to write."),
    fp16: bool = typer.Option(False, "--fp16", help="Store the weights in half precision."),
) -> int:
    """Export a trained swap network to ONNX for 'portraitfx swap --model', checked against PyTorch.

    Example:

      portraitfx export swapnet runs/swap/swapnet.safetensors -o swap.onnx
    """
    from portraitfx.train.swapnet.export import export_swapnet
    from portraitfx.train.swapnet.train import load_identity_encoder, load_swapnet

    beside = checkpoint.parent / "identity.safetensors"  # an 'identity: arcface' run's own encoder
    encoder = load_identity_encoder(beside) if beside.is_file() else None
    r = export_swapnet(
        load_swapnet(checkpoint), output, precision="fp16" if fp16 else "fp32", identity_encoder=encoder
    )
    typer.echo(
        f"wrote {r['path']}: {r['bytes'] / 1e6:.2f} MB, largest difference from PyTorch {r['max_abs_diff']:.1e}"
        + (" (and its identity encoder beside it)" if encoder is not None else "")
    )
    return 0


@eval_app.command("swap")
def eval_swap(
    photos: Path = typer.Option(
        ..., "--photos", help="Photos of several people (sub-folders per person, or name_*.jpg)."
    ),
    model: list[Path] = typer.Option(
        [], "--model", "-m", help="A learned swapper (ONNX) to compare; repeatable."
    ),
    clip_frames: int = typer.Option(
        12, "--clip-frames", min=0, help="Frames of the flicker clip (0: no flicker)."
    ),
) -> int:
    """One table for the model-free swap and learned swappers: identity retrieval, pose, expression, flicker.

    Example:

      portraitfx eval swap --photos people/ -m runs/swap/swap.onnx
    """
    from portraitfx.metrics.swap import evaluate_swap, format_swap_table

    rows = [evaluate_swap(photos, clip_frames=clip_frames)]
    rows += [evaluate_swap(photos, model=m, clip_frames=clip_frames) for m in model]
    typer.echo(format_swap_table(rows))
    return 0
