"""``portraitfx portrait``: AI portraits of a person in a style, from one or a few photos."""

from __future__ import annotations

from pathlib import Path

import typer


def portrait(
    references: list[Path] = typer.Option(
        [], "--reference", "-r", help="A photo of the person (repeat for more photos of the same person)."
    ),
    style: str = typer.Option(
        "business", "--style", "-s", help="A style name (see --list-styles) or a style .yaml."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="Folder for the portraits, contact sheet and report."
    ),
    n: int = typer.Option(8, "-n", min=1, help="Candidates to generate."),
    k: int = typer.Option(2, "-k", min=1, help="Best candidates to keep (by identity similarity)."),
    seed: int = typer.Option(0, help="Seed of the first candidate (candidate i uses seed + i)."),
    subject: str = typer.Option(
        "a person", help="Who the prompt's {subject} is, e.g. 'a woman', 'an old man'."
    ),
    models: Path = typer.Option(None, "--models", help="models.yaml mapping names to files (with sha256)."),
    base: str = typer.Option(
        None,
        "--base",
        help="Stable Diffusion model: a diffusers folder, a .safetensors file or a models.yaml name.",
    ),
    ip_adapter: str = typer.Option(
        None, "--ip-adapter", help="IP-Adapter weights (.safetensors) or a models.yaml name."
    ),
    image_encoder: str = typer.Option(
        None, "--image-encoder", help="CLIP image encoder folder, if the model has none."
    ),
    face_encoder: str = typer.Option(
        None,
        "--face-encoder",
        help="Face-recognition ONNX (ArcFace-style) for FaceID adapters; default: dlib.",
    ),
    fusion: float = typer.Option(None, min=0.0, max=1.0, help="Face fusion strength (default: the style's)."),
    steps: int = typer.Option(None, min=1, help="Denoising steps (default: the style's)."),
    size: str = typer.Option(None, "--size", help="WIDTHxHEIGHT (default: the style's), e.g. 512x640."),
    controlnet: str = typer.Option(
        None, "--controlnet", help="A ControlNet (diffusers folder) for pose or layout."
    ),
    control: Path = typer.Option(
        None, "--control", help="The pose/layout picture for --controlnet (OpenPose, edges ...)."
    ),
    control_scale: float = typer.Option(1.0, "--control-scale", min=0.0, help="ControlNet strength."),
    restore: str = typer.Option(
        None, "--restore", help="Face-restoration ONNX model for the kept portraits."
    ),
    upscale: str = typer.Option(
        None, "--upscale", help="Super-resolution ONNX model for the kept portraits."
    ),
    styles_dir: Path = typer.Option(None, "--styles-dir", help="Another folder of style .yaml files."),
    list_styles: bool = typer.Option(False, "--list-styles", help="List the styles and exit."),
    no_provenance: bool = typer.Option(
        False, "--no-provenance", help="Do not mark the outputs as generated (only for your own private use)."
    ),
    device: str = typer.Option("cpu", help="cpu, cuda, mps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Portraits of a person in a style: Stable Diffusion with the face identity injected, best k of n kept.

    Models come from local files only (see docs/portrait.md): a Stable Diffusion 1.5-class
    model and IP-Adapter weights, named in a models.yaml or given as paths. Use it only
    with the person's consent; the outputs are marked as generated.

    Examples:

      portraitfx portrait -r me.jpg --style business -n 8 -k 2 -o out/ --models models.yaml

      portraitfx portrait -r me.jpg -r me2.jpg -s watercolour -o out/ --base sd15/ --ip-adapter ip-adapter_sd15.safetensors

      portraitfx portrait --list-styles
    """
    import sys

    from rich.console import Console

    from portraitfx.errors import ConfigError

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    if list_styles:
        from portraitfx.portrait.styles import list_styles as all_styles

        for name, st in all_styles(styles_dir).items():
            typer.echo(f"{name:16s} {st.title}  ({st.sampler}, {st.steps} steps, {st.width}x{st.height})")
        return 0
    if not references:
        raise ConfigError("give a photo of the person with -r PHOTO")
    if output is None:
        raise ConfigError("give an output folder with -o DIR")
    if k > n:
        raise ConfigError(f"-k ({k}) cannot be more than -n ({n})")
    from portraitfx.io.paths import check_input_path
    from portraitfx.portrait.models import load_models_yaml, load_pipeline, resolve
    from portraitfx.portrait.studio import PortraitStudio
    from portraitfx.portrait.styles import load_style

    for r in references:
        check_input_path(r)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"'{output}' is a file; give a folder for the portraits")
    st = load_style(style, styles_dir)
    wh = None
    if size is not None:
        try:
            w_, h_ = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--size must be WIDTHxHEIGHT, e.g. 512x640; got {size!r}") from None
        wh = (w_, h_)
    entries = load_models_yaml(models) if models is not None else None
    base_name = base or st.base or ("base" if entries and "base" in entries else None)
    ip_name = ip_adapter or ("ip_adapter" if entries and "ip_adapter" in entries else None)
    if base_name is None:
        raise ConfigError(
            "no Stable Diffusion model: give --base (or a models.yaml with an entry named 'base')"
        )
    if ip_name is None:
        raise ConfigError(
            "no identity adapter: give --ip-adapter (or a models.yaml with an entry named 'ip_adapter')"
        )
    console.print(f"loading {base_name} ...")
    if (control is None) != (controlnet is None):
        raise ConfigError("--controlnet and --control go together (a ControlNet and its pose/layout picture)")
    control_pic = None
    if control is not None:
        from portraitfx.io.images import load_image

        check_input_path(control)
        control_pic = load_image(control)
    pipe = load_pipeline(
        base_name,
        ip_adapter=ip_name,
        image_encoder=image_encoder,
        controlnet=controlnet,
        models=entries,
        device=device,
    )
    show = not quiet and sys.stderr.isatty()

    def tick(done: int, total: int, cand) -> None:  # type: ignore[no-untyped-def]
        if not quiet:
            console.print(f"  candidate {done}/{total} (seed {cand.seed}){' fused' if cand.fused else ''}")

    studio = PortraitStudio(
        pipe,
        models=entries,
        restore=None if restore is None else resolve(restore, entries),
        upscale=None if upscale is None else resolve(upscale, entries),
        face_encoder=None if face_encoder is None else resolve(face_encoder, entries),
    )
    result = studio.run(
        [str(r) for r in references], st, n=n, k=k, seed=seed, subject=subject, out_dir=output,
        fusion=fusion, steps=steps, size=wh, provenance=not no_provenance, control=control_pic, control_scale=control_scale, progress=tick if show or not quiet else None,
    )  # fmt: skip
    for c in result.kept:
        sim = "no face" if c.similarity is None else f"identity {c.similarity:.3f}"
        console.print(f"  kept {c.path} (seed {c.seed}, {sim})")
    console.print(
        f"{output}: {len(result.kept)} of {n} kept in {result.report['seconds']:.1f} s; report.json, contact-sheet.png"
    )
    return 0
