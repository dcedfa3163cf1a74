"""``portraitfx hair recolor|hairline|fill|bangs|analyze``: hair edits on photos, videos and folders."""

from __future__ import annotations

from pathlib import Path

import typer

from portraitfx.cli._run import run_effect_command

app = typer.Typer(
    name="hair",
    help="Hair edits: recolour, move the hairline, fill thin areas, add bangs (everything else untouched).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_SOURCE = typer.Argument(..., help="Image, video (audio is kept) or folder of them.")
_OUTPUT = typer.Option(..., "--output", "-o", help="Output file (same kind as the input) or output folder.")
_MODEL = typer.Option(
    None,
    "--model",
    "-m",
    help="A trained hair model (.onnx from 'export hairnet') instead of the model-free edit.",
)
_MAX_FACES = typer.Option(8, "--max-faces", min=1, help="Most faces to edit per image or frame.")
_QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing but errors.")


def _run(source: Path, output: Path, max_faces: int, quiet: bool, **options: object) -> int:
    options = {k: v for k, v in options.items() if v is not None}
    return run_effect_command(
        "hair", options, source, output, max_faces=max_faces, quiet=quiet, verb="edited"
    )


@app.command("recolor")
def recolor(
    source: Path = _SOURCE,
    output: Path = _OUTPUT,
    color: str = typer.Option(
        None,
        "--color",
        "-c",
        help="Hex code ('#c02060') or a name: auburn, blonde, platinum, rose, ... (default auburn).",
    ),
    reference: Path = typer.Option(
        None, "--reference", "-r", help="Take the hair colour from this photo instead."
    ),
    strength: float = typer.Option(
        1.0, min=0.0, max=1.0, help="How fully the new colour replaces the old (0..1)."
    ),
    model: Path = _MODEL,
    max_faces: int = _MAX_FACES,
    quiet: bool = _QUIET,
) -> int:
    """Dye the hair: new colour, the hair's own highlights and strand texture kept.

    Examples:

      portraitfx hair recolor me.jpg --color auburn -o me_auburn.jpg

      portraitfx hair recolor me.jpg --color '#c02060' -o me_rose.png

      portraitfx hair recolor me.jpg --reference star.jpg -o me_like_star.jpg
    """
    if reference is not None:
        from portraitfx.io.paths import check_input_path

        check_input_path(reference)
    return _run(
        source,
        output,
        max_faces,
        quiet,
        edit="recolor",
        color=color,
        reference=str(reference) if reference else None,
        amount=strength,
        model=str(model) if model else None,
    )


@app.command("hairline")
def hairline(
    source: Path = _SOURCE,
    output: Path = _OUTPUT,
    amount: float = typer.Option(
        0.3,
        min=-0.6,
        max=0.6,
        help="Share of the forehead's height to move the hairline down (negative: up).",
    ),
    model: Path = _MODEL,
    max_faces: int = _MAX_FACES,
    quiet: bool = _QUIET,
) -> int:
    """Lower (or raise) the hairline with a smooth warp of the forehead and the person's own hair.

    Examples:

      portraitfx hair hairline me.jpg -o me_lower.jpg --amount 0.25

      portraitfx hair hairline me.jpg -o me_higher.jpg --amount -0.2
    """
    return _run(
        source, output, max_faces, quiet, edit="hairline", amount=amount, model=str(model) if model else None
    )


@app.command("fill")
def fill(
    source: Path = _SOURCE,
    output: Path = _OUTPUT,
    amount: float = typer.Option(1.0, min=0.0, max=1.0, help="How fully thin areas are filled (0..1)."),
    model: Path = _MODEL,
    max_faces: int = _MAX_FACES,
    quiet: bool = _QUIET,
) -> int:
    """Fill thin areas where the scalp shows through, from the surrounding hair.

    Example:

      portraitfx hair fill me.jpg -o me_fuller.jpg
    """
    return _run(
        source, output, max_faces, quiet, edit="fill", amount=amount, model=str(model) if model else None
    )


@app.command("bangs")
def bangs(
    source: Path = _SOURCE,
    output: Path = _OUTPUT,
    amount: float = typer.Option(
        0.75, min=0.2, max=1.0, help="How far down the forehead the bangs reach (1: the brows)."
    ),
    model: Path = _MODEL,
    max_faces: int = _MAX_FACES,
    quiet: bool = _QUIET,
) -> int:
    """Add bangs made of the person's own hair.

    Example:

      portraitfx hair bangs me.jpg -o me_bangs.jpg --amount 0.8
    """
    return _run(
        source, output, max_faces, quiet, edit="bangs", amount=amount, model=str(model) if model else None
    )


@app.command("analyze")
def analyze(
    source: Path = typer.Argument(..., help="A photo."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Picture to write: photo with the matte and hairline, density map."
    ),
    quiet: bool = _QUIET,
) -> int:
    """Show what the hair edits see: the hair matte, the hairline and where hair is thin.

    Example:

      portraitfx hair analyze me.jpg -o me_hair.png
    """
    from rich.console import Console

    from portraitfx.effects.hair.analysis import analyze_hair
    from portraitfx.effects.hair.preview import analysis_picture
    from portraitfx.face.analyze import FaceAnalyzer, require_face
    from portraitfx.io.images import read_image, save_image
    from portraitfx.io.paths import check_input_path, check_output_path

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    check_input_path(source)
    check_output_path(output, inputs=(source,))
    image = read_image(source).rgb
    with FaceAnalyzer(max_faces=1) as analyzer:
        face = require_face(analyzer.run(image), f"'{source}'")[0]
    a = analyze_hair(image, face)
    save_image(output, analysis_picture(image, a), inputs=(source,))
    thin = float((a.density_work[a.support_work > 0] < 0.6).mean()) if (a.support_work > 0).any() else 0.0
    console.print(
        f"{source}: hairline {a.forehead_height / a.eye_distance:.2f} eye distances above the brows, "
        f"hair coverage {a.coverage():.2f} of the face, thin {thin:.0%} of the hair area"
    )
    console.print(f"  wrote {output}")
    return 0


@app.command("pairs")
def pairs(
    generator: Path = typer.Argument(
        ..., help="A StyleGAN face generator (.safetensors from 'stylegan train' or 'convert')."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Pair folder to write (or resume)."),
    edit: str = typer.Option("bangs", "--edit", "-e", help="bangs, hairline, recolor or fill."),
    count: int = typer.Option(100, "--count", "-n", min=0, help="How many pairs."),
    crude: str = typer.Option(
        "auto",
        help="Crude edits: classical (the model-free edit), template (colour blocks), auto (classical, else template).",
    ),
    amount: float = typer.Option(
        None, help="The edit's amount (as the hair commands take it; varied +-25 % per pair)."
    ),
    color: str = typer.Option("platinum", "--color", "-c", help="Recolour target."),
    photos: list[Path] = typer.Option(
        [],
        "--photos",
        help="Inverted photos (.npz with 'ws' from 'stylegan invert') to use instead of samples.",
    ),
    steps: int = typer.Option(300, min=1, help="Reconstruction steps per pair."),
    edit_scale: int = typer.Option(
        4, min=1, help="The crude edit is matched after downsampling by this factor."
    ),
    latent_weight: float = typer.Option(0.1, min=0.0, help="Weight of the stay-in-distribution term."),
    seed: int = typer.Option(0, help="Base seed (pair i uses seed + i)."),
    truncation: float = typer.Option(0.7, min=0.0, max=1.0, help="Truncation of sampled latents."),
    workers: int = typer.Option(0, min=0, help="Ray workers (0: this process)."),
    quiet: bool = _QUIET,
) -> int:
    """Make hair-edit training pairs by iterative reconstruction through a StyleGAN generator.

    Each pair: the generator's render, a crude edit of it, and latents optimised to match
    the original outside the edit and the crude edit (at low resolution) inside it.
    Resumable: run it again to finish or to add pairs.

    Example:

      portraitfx hair pairs ffhq256.safetensors -e bangs -n 2000 -o pairs/bangs --workers 8
    """
    import sys

    from rich.console import Console

    from portraitfx.train.hairnet.pairs import HairPairJob, write_hair_pairs
    from portraitfx.train.hairnet.reconstruct import ReconstructOptions

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    from portraitfx.io.paths import check_input_path

    check_input_path(generator)
    for p in photos:
        check_input_path(p)
    job = HairPairJob(
        edit=edit,
        count=count,
        seed=seed,
        truncation=truncation,
        crude=crude,
        amount=amount,
        colour=color,
        photos=tuple(str(p) for p in photos),
        options=ReconstructOptions(steps=steps, edit_scale=edit_scale, latent_weight=latent_weight),
    )
    written = write_hair_pairs(
        generator, output, job, progress=not quiet and sys.stderr.isatty(), workers=workers
    )
    console.print(f"{output}: {written} pair(s) written, {count - written} already there")
    return 0


@app.command("interpolate")
def interpolate(
    folder: Path = typer.Argument(..., help="A pair folder from 'hair pairs' (with latents/)."),
    generator: Path = typer.Option(..., "--generator", "-g", help="The generator the pairs were made with."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the new pairs."),
    count: int = typer.Option(100, "--count", "-n", min=0, help="How many new pairs."),
    within: float = typer.Option(
        0.5, min=0.0, max=1.0, help="Share of part-way edits (the rest mix two pairs)."
    ),
    seed: int = typer.Option(0),
    quiet: bool = _QUIET,
) -> int:
    """More pairs from the latents of existing ones: part-way edits and mixes of two people.

    Example:

      portraitfx hair interpolate pairs/bangs -g ffhq256.safetensors -n 4000 -o pairs/bangs-more
    """
    import sys

    from rich.console import Console

    from portraitfx.train.hairnet.pairs import interpolate_pairs

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    written = interpolate_pairs(
        folder, generator, output, count, seed=seed, within=within, progress=not quiet and sys.stderr.isatty()
    )
    console.print(f"{output}: {written} interpolated pair(s) written")
    return 0


def train_hairnet(
    config_file: Path = typer.Argument(..., help="YAML: data (a hair pair folder), output, steps, options."),
    export: Path = typer.Option(None, "--export", help="Also export the trained model to this .onnx file."),
    quiet: bool = _QUIET,
) -> int:
    """Train a hair model (GLEAN-like with a StyleGAN prior, or the pix2pixHD baseline); run again to resume.

    Config example:

      data: pairs/bangs        # from 'portraitfx hair pairs' (and 'hair interpolate')
      output: runs/bangs
      steps: 20000
      options: {arch: glean, size: 256, edit: bangs, prior: ffhq256.safetensors, batch: 8}

    Example:

      portraitfx train hairnet bangs.yaml --export bangs.onnx
    """
    import sys
    from dataclasses import replace

    from portraitfx.cli.train import _read_config
    from portraitfx.train.hairnet.trainer import (
        HairNetTrainer,
        HairTrainOptions,
        export_hairnet,
        load_hair_pairs,
    )

    config = _read_config(config_file)
    out: Path = config["output"]
    checkpoint = out / "checkpoint.safetensors"
    if checkpoint.is_file():
        import json

        from portraitfx.train.checkpoints import read_metadata

        options = HairTrainOptions.from_dict(
            json.loads(read_metadata(checkpoint, "hair model checkpoint")["options"])
        )
    else:
        options = HairTrainOptions.from_dict(dict(config.get("options") or {}))
    if "steps" in config:
        options = replace(options, steps=int(config["steps"]))
    if options.prior and not Path(options.prior).is_absolute():
        options = replace(options, prior=str((config_file.parent / options.prior).resolve()))
    before, after, masks = load_hair_pairs(config["data"], options.size, options.edit or None)
    trainer = HairNetTrainer(
        before, after, masks, options, resume=checkpoint if checkpoint.is_file() else None
    )
    if checkpoint.is_file() and not quiet:
        typer.echo(f"resuming {checkpoint} at step {trainer.step_count}")
    history = trainer.train(
        out, log_every=int(config.get("log_every", 100)), progress=not quiet and sys.stderr.isatty()
    )
    last = history[-1] if history else trainer.validate()
    if not quiet:
        typer.echo(
            f"trained {trainer.step_count} steps on {len(before)} pairs: held-out PSNR {last['psnr']:.2f} dB "
            f"(unedited input {last['identity_psnr']:.2f} dB), in the edit region {last['psnr_edit']:.2f} dB "
            f"(input {last['identity_psnr_edit']:.2f} dB); {out / 'hairnet.safetensors'}"
        )
    if export is not None:
        info = export_hairnet(out / "hairnet.safetensors", export)
        if not quiet:
            typer.echo(
                f"exported {export} ({info['bytes'] / 1e6:.1f} MB, max difference {info['max_abs_error']:.1e})"
            )
    return 0


def export_hairnet_cmd(
    checkpoint: Path = typer.Argument(..., help="hairnet.safetensors (or a run's checkpoint.safetensors)."),
    output: Path = typer.Option(..., "--output", "-o", help="The .onnx file to write."),
    quiet: bool = _QUIET,
) -> int:
    """Export a trained hair model to ONNX (checked against PyTorch) for 'portraitfx hair ... --model'.

    Example:

      portraitfx export hairnet runs/bangs/hairnet.safetensors -o bangs.onnx
    """
    from portraitfx.io.paths import check_input_path
    from portraitfx.train.hairnet.trainer import export_hairnet

    check_input_path(checkpoint)
    info = export_hairnet(checkpoint, output)
    if not quiet:
        typer.echo(
            f"wrote {output}: {info['arch']} hair model for {info['edit'] or 'any edit'} at {info['size']} px "
            f"({info['bytes'] / 1e6:.1f} MB, max difference to PyTorch {info['max_abs_error']:.1e})"
        )
    return 0
