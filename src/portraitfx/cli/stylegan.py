"""``portraitfx stylegan``: make, sample and fuse StyleGAN2 generators (needs the ``train`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="stylegan",
    help="StyleGAN2 generators: create one, sample a contact sheet, fuse a face model with a style model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _torch() -> Any:
    from portraitfx.errors import ConfigError

    try:
        import torch
    except ImportError:  # pragma: no cover - the train extra is missing
        raise ConfigError("StyleGAN commands need PyTorch: pip install 'portraitfx[train]'") from None
    return torch


@app.command("init")
def init(
    output: Path = typer.Option(..., "--output", "-o", help="The new generator (.safetensors)."),
    resolution: int = typer.Option(64, "--resolution", "-r", help="Output side: a power of two, 8-1024."),
    channel_base: int = typer.Option(32768, "--channel-base", help="Widths: min(base / res, max)."),
    channel_max: int = typer.Option(512, "--channel-max", help="Widest layer."),
    z_dim: int = typer.Option(512, "--z-dim", help="Latent size (z and w)."),
    mapping_layers: int = typer.Option(8, "--mapping-layers", help="Depth of the mapping network."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights."),
) -> int:
    """Create a randomly initialised generator (the start of a training run, or a test model).

    Example:

      portraitfx stylegan init -r 64 --channel-base 1024 --channel-max 64 --z-dim 64 -o tiny.safetensors
    """
    torch = _torch()
    from portraitfx.train.stylegan import Generator, GeneratorConfig, save_generator

    cfg = GeneratorConfig(
        resolution=resolution,
        z_dim=z_dim,
        w_dim=z_dim,
        mapping_layers=mapping_layers,
        channel_base=channel_base,
        channel_max=channel_max,
    )
    torch.manual_seed(seed)
    generator = Generator(cfg)
    path = save_generator(output, generator, extra={"made_by": "portraitfx stylegan init", "seed": seed})
    params = sum(p.numel() for p in generator.parameters())
    typer.echo(
        f"wrote {path}: {resolution}x{resolution}, {params / 1e6:.2f} M parameters, {cfg.num_ws} styles"
    )
    return 0


@app.command("sample")
def sample(
    model: Path = typer.Argument(..., help="A generator (.safetensors)."),
    output: Path = typer.Option(..., "--output", "-o", help="Contact sheet to write (PNG or JPEG)."),
    n: int = typer.Option(16, "-n", min=1, max=1024, help="How many images."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latents."),
    truncation: float = typer.Option(
        1.0, "--truncation", "-t", min=0.0, max=1.0, help="Pull toward the average face (0..1)."
    ),
) -> int:
    """Render ``n`` images from seeded latents into one contact sheet.

    Example:

      portraitfx stylegan sample face.safetensors -n 16 -t 0.7 -o samples.png
    """
    _torch()
    from portraitfx.io.images import save_image
    from portraitfx.train.stylegan import load_generator
    from portraitfx.train.stylegan.networks import grid

    generator = load_generator(model)
    images = generator.sample(n, seed=seed, truncation=truncation)
    path = save_image(output, grid(images), inputs=[model])
    typer.echo(
        f"wrote {path}: {n} samples at {generator.cfg.resolution}px (seed {seed}, truncation {truncation})"
    )
    return 0


@app.command("fuse")
def fuse(
    face: Path = typer.Argument(..., help="The face (base) generator: low resolutions, shape and layout."),
    style: Path = typer.Argument(
        ..., help="The style generator fine-tuned from it: high resolutions, texture."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The fused generator (.safetensors)."),
    schedule: str = typer.Option(
        "sigmoid:16",
        "--schedule",
        "-s",
        help="Style share per resolution: swap:RES, sigmoid:RES[:OCTAVES], linear:SHARE or layers:S4,S8,...",
    ),
    preview: Path | None = typer.Option(
        None, "--preview", help="Also write a sheet: rows face / style / fused for the same latents."
    ),
    n: int = typer.Option(6, "-n", min=1, max=64, help="Latents on the preview."),
    seed: int = typer.Option(0, "--seed", help="Seed of the preview's latents."),
) -> int:
    """Blend two generators of the same shape resolution by resolution (layer swapping).

    The result is a generator like any other: fuse it again to chain styles.

    Example:

      portraitfx stylegan fuse face.safetensors toon.safetensors -s swap:32 -o fused.safetensors --preview fused.png
    """
    _torch()
    import numpy as np

    from portraitfx.io.images import save_image
    from portraitfx.train.stylegan import fuse_generators, load_generator, parse_schedule, save_generator
    from portraitfx.train.stylegan.networks import grid

    g_face, g_style = load_generator(face), load_generator(style)
    shares = parse_schedule(schedule, g_face.cfg.resolution)
    fused = fuse_generators(g_face, g_style, shares)
    path = save_generator(
        output,
        fused,
        extra={
            "made_by": "portraitfx stylegan fuse",
            "face": face.name,
            "style": style.name,
            "schedule": schedule,
        },
    )
    typer.echo(f"wrote {path}: style share " + ", ".join(f"{r}px {t:.2f}" for r, t in shares.items()))
    if preview is not None:
        rows = [g.sample(n, seed=seed) for g in (g_face, g_style, fused)]
        sheet = save_image(preview, grid(np.concatenate(rows), columns=n), inputs=[face, style])
        typer.echo(f"wrote {sheet}: rows face, style, fused")
    return 0


@app.command("train")
def train(
    data: Path = typer.Argument(
        ..., help="Folder of training images (centre-cropped square, resized) or a .npy from 'prepare-data'."
    ),
    run: Path = typer.Option(..., "--output", "-o", help="Run folder: checkpoint, generator, samples, log."),
    kimg: float = typer.Option(
        10.0, "--kimg", min=0.001, help="Train until this many thousand images were shown."
    ),
    resolution: int = typer.Option(64, "--resolution", "-r", help="Image side: a power of two, 8-1024."),
    batch: int = typer.Option(8, "--batch", min=2, help="Images per step."),
    channel_base: int = typer.Option(2048, "--channel-base", help="Widths: min(base / res, max)."),
    channel_max: int = typer.Option(128, "--channel-max", help="Widest layer."),
    z_dim: int = typer.Option(64, "--z-dim", help="Latent size (z and w)."),
    mapping_layers: int = typer.Option(4, "--mapping-layers", help="Depth of the mapping network."),
    augment: str = typer.Option("ada", "--augment", help="'ada' (adaptive), 'off', or a fixed probability."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Start from a generator (transfer learning) or a run's checkpoint."
    ),
    freeze_g: int = typer.Option(
        0, "--freeze-g", min=0, help="Generator resolutions (from 4 px up) kept fixed."
    ),
    freeze_d: int = typer.Option(
        0, "--freeze-d", min=0, help="Discriminator resolutions (from the input) kept fixed."
    ),
    snapshot_kimg: float = typer.Option(
        1.0, "--snapshot-kimg", min=0.001, help="Checkpoint and samples every N kimg."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the run."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1, ... (default: this process's GPU if any, else the CPU)."
    ),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, or bf16 / fp16 mixed precision for the main passes."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Train a StyleGAN2-ADA generator on a folder of images (resumable; one or many processes).

    Running it again on the same run folder continues from its checkpoint. Under
    torchrun the batch is split over the processes (one per GPU); process 0 writes
    the run folder.

    Examples:

      portraitfx stylegan train faces/ -o runs/face -r 64 --kimg 200

      portraitfx stylegan train toons/ -o runs/toon --resume runs/face/generator.safetensors --freeze-d 2 --kimg 20

      torchrun --standalone --nproc_per_node=8 -m portraitfx stylegan train ffhq/ -o runs/ffhq -r 1024 --batch 32 --channel-base 32768 --channel-max 512 --z-dim 512 --mapping-layers 8 --precision bf16 --kimg 25000
    """
    _torch()
    from portraitfx.train.stylegan.train import Trainer, TrainOptions, init_distributed, open_training_data

    rank, _world = init_distributed()

    checkpoint = run / "checkpoint.safetensors"
    if resume is None and checkpoint.is_file():
        from portraitfx.train.stylegan.train import read_run_options

        options = read_run_options(checkpoint)
        resume = checkpoint
        if rank == 0:
            typer.echo(f"resuming {checkpoint}")
    else:
        options = TrainOptions(
            resolution=resolution,
            z_dim=z_dim,
            mapping_layers=mapping_layers,
            channel_base=channel_base,
            channel_max=channel_max,
            batch=batch,
            augment=augment,
            freeze_g=freeze_g,
            freeze_d=freeze_d,
            seed=seed,
        )
    images = open_training_data(data, options.resolution)
    trainer = Trainer(images, options, resume=resume, device=device, precision=precision)
    state = trainer.train(kimg, run, snapshot_kimg=snapshot_kimg, progress=not quiet)
    if rank != 0:
        return 0
    last = state.history[-1] if state.history else {}
    typer.echo(
        f"trained to {state.images / 1000:.3f} kimg in {state.seconds:.0f} s "
        f"(loss G {last.get('loss_g', float('nan')):.3f}, D {last.get('loss_d', float('nan')):.3f}, "
        f"augment p {state.p:.3f}); {run / 'generator.safetensors'}"
    )
    return 0


@app.command("prepare-data")
def prepare_data_command(
    folder: Path = typer.Argument(..., help="Folder of images (aligned face crops)."),
    output: Path = typer.Option(..., "--output", "-o", help="The prepared data (.npy)."),
    resolution: int = typer.Option(..., "--resolution", "-r", help="Image side of the run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Crop and resize a folder of images once into one .npy that training reads in place.

    For data sets larger than memory (FFHQ at 1024 px: 70,000 images, 206 GiB as
    uint8): 'train' memory-maps the file and reads only each batch's images.

    Example:

      portraitfx stylegan prepare-data ffhq/ -r 1024 -o ffhq1024.npy
    """
    _torch()
    import numpy as np

    from portraitfx.train.stylegan.train import prepare_data

    path = prepare_data(folder, resolution, output, progress=not quiet)
    arr = np.load(path, mmap_mode="r")
    typer.echo(
        f"wrote {path}: {arr.shape[0]} images at {resolution} px ({path.stat().st_size / 2**20:.1f} MiB)"
    )
    return 0


@app.command("invert")
def invert(
    image: Path = typer.Argument(
        ..., help="The photo to invert (an aligned face crop, centre-cropped square)."
    ),
    model: Path = typer.Option(..., "--model", "-m", help="The generator (.safetensors)."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Side-by-side sheet: the target and its reconstruction."
    ),
    latents: Path | None = typer.Option(
        None, "--latents", help="Also save the latents and noise (.safetensors)."
    ),
    space: str = typer.Option(
        "w+", "--space", help="'w' (one latent, more editable) or 'w+' (one per layer)."
    ),
    steps: int = typer.Option(
        500, "--steps", min=0, help="Optimisation steps (0 with --encoder: its latents as they are)."
    ),
    encoder: Path | None = typer.Option(
        None, "--encoder", "-e", help="Start from this encoder's latents (see 'train-encoder')."
    ),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="VGG16 feature weights (safetensors) for the perceptual loss [default: built-in].",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Find the latents with which the generator draws IMAGE (projection, optionally from an encoder).

    Examples:

      portraitfx stylegan invert face.png -m face.safetensors -o inverted.png --latents face-w.safetensors

      portraitfx stylegan invert face.png -m face.safetensors -e encoder.safetensors --steps 100 -o inverted.png
    """
    _torch()
    import time

    import numpy as np

    from portraitfx.io.images import save_image
    from portraitfx.train.invert import VGGFeatures, project, psnr
    from portraitfx.train.invert.project import load_target
    from portraitfx.train.stylegan import load_generator
    from portraitfx.train.stylegan.networks import to_uint8

    generator = load_generator(model)
    target = load_target(str(image), generator.cfg.resolution)
    feats = VGGFeatures.from_file(features) if features is not None else None
    t0 = time.perf_counter()
    init = None
    if encoder is not None:
        from portraitfx.train.invert.encoder import encode, load_encoder

        init = encode(load_encoder(encoder, generator)[0], target)
    result = project(
        generator,
        target,
        space=space,  # type: ignore[arg-type]
        steps=steps,
        features=feats,
        init=init,
        progress=not quiet,
    )
    seconds = time.perf_counter() - t0
    sheet = np.concatenate([to_uint8(target)[0], to_uint8(result.image)[0]], axis=1)
    save_image(output, sheet, inputs=[image, model])
    if latents is not None:
        from portraitfx.models.load import save_safetensors

        tensors = {"ws": result.ws, **{f"noise.{k}": v for k, v in result.noise.items()}}
        save_safetensors(
            latents, tensors, {"portraitfx": "stylegan2-latents", "space": space}, inputs=[image, model]
        )
    start = "from the encoder, " if encoder is not None else ""
    typer.echo(
        f"wrote {output}: PSNR {psnr(result.image, target):.1f} dB {start}after {steps} steps "
        f"in {seconds:.1f} s ({space})"
    )
    return 0


@app.command("train-encoder")
def train_encoder(
    model: Path = typer.Argument(..., help="The generator to invert (.safetensors)."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="The encoder (.safetensors); run again to continue training it."
    ),
    steps: int = typer.Option(5000, "--steps", min=1, help="Train until this many steps in total."),
    data: Path | None = typer.Option(
        None, "--data", help="Folder of real photos (aligned face crops) mixed into each batch."
    ),
    real_fraction: float = typer.Option(
        0.5, "--real-fraction", min=0.0, max=1.0, help="Share of each batch from --data."
    ),
    batch: int = typer.Option(8, "--batch", min=1, help="Images per step."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate."),
    delta_weight: float = typer.Option(
        2e-3, "--delta-weight", min=0.0, help="Keeps the latents near W (e4e's offset regulariser)."
    ),
    progressive: int = typer.Option(
        200,
        "--progressive-every",
        min=0,
        help="Steps between switching on each layer's offset (0: all at once).",
    ),
    channel_base: int = typer.Option(2048, "--channel-base", help="Encoder widths: min(base / res, max)."),
    channel_max: int = typer.Option(128, "--channel-max", help="Widest encoder layer."),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="VGG16 feature weights (safetensors) for the perceptual loss [default: built-in].",
    ),
    preview: Path | None = typer.Option(
        None, "--preview", help="Also write a sheet: images (top) and their reconstructions (bottom)."
    ),
    snapshot_every: int = typer.Option(500, "--snapshot-every", min=1, help="Save every N steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of the run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Train an encoder that inverts MODEL's images in one pass (e4e-style W+ with offsets kept small).

    It learns from images the generator draws (whose latents it knows) and, with
    --data, from real photos. Use it with 'invert --encoder' (alone or to start a
    projection) and 'pairs --encoder --photos'.

    Example:

      portraitfx stylegan train-encoder face.safetensors --data crops/ --steps 20000 -o encoder.safetensors --preview enc.png
    """
    _torch()
    import numpy as np
    import torch

    from portraitfx.io.images import save_image
    from portraitfx.train.invert import VGGFeatures, psnr
    from portraitfx.train.invert.encoder import EncoderOptions, EncoderTrainer, encode
    from portraitfx.train.stylegan import load_generator
    from portraitfx.train.stylegan.networks import grid, to_uint8
    from portraitfx.train.stylegan.train import load_image_folder

    generator = load_generator(model)
    reals = load_image_folder(data, generator.cfg.resolution) if data is not None else None
    feats = VGGFeatures.from_file(features) if features is not None else None
    options = EncoderOptions(
        batch=batch,
        lr=lr,
        delta_weight=delta_weight,
        progressive_every=progressive,
        real_fraction=real_fraction,
        channel_base=channel_base,
        channel_max=channel_max,
        seed=seed,
    )
    resume = output if output.is_file() else None
    trainer = EncoderTrainer(generator, options, reals=reals, features=feats, resume=resume)
    if resume is not None:
        typer.echo(f"resuming {output} at step {trainer.step_count}")
    history = trainer.train(steps, output, snapshot_every=snapshot_every, progress=not quiet)
    trainer.save(output)
    # held-out check: images drawn from latents the training never saw
    with torch.no_grad():
        z = torch.randn(8, generator.cfg.z_dim, generator=torch.Generator().manual_seed(10_000 + seed))
        images = generator.synthesis(generator.mapping(z), noise_mode="const")
        if reals is not None:
            images = torch.cat([images[:4], reals[:4]])
        recon = generator.synthesis(encode(trainer.E, images), noise_mode="const")
    score = float(np.mean([psnr(recon[i : i + 1], images[i : i + 1]) for i in range(len(images))]))
    last = history[-1] if history else {}
    typer.echo(
        f"wrote {output}: step {trainer.step_count}, held-out PSNR {score:.1f} dB "
        f"(pixel loss {last.get('pixel', float('nan')):.4f}, offsets {last.get('delta', float('nan')):.3f})"
    )
    if preview is not None:
        sheet = grid(np.concatenate([to_uint8(images), to_uint8(recon)]), columns=len(images))
        typer.echo(
            f"wrote {save_image(preview, sheet, inputs=[model])}: images (top), reconstructions (bottom)"
        )
    return 0


@app.command("pairs")
def pairs(
    face: Path = typer.Option(..., "--face", help="The face generator."),
    style: Path = typer.Option(
        ..., "--style", help="The style (or fused) generator sharing its latent space."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: face/, style/, manifest.jsonl."),
    n: int = typer.Option(1000, "-n", min=0, help="Sampled pairs."),
    truncation: float = typer.Option(
        0.7, "--truncation", "-t", min=0.0, max=1.0, help="Pull toward the average face."
    ),
    interpolate: int = typer.Option(
        0, "--interpolate", min=0, help="Extra pairs between each two consecutive latents."
    ),
    latents: list[Path] = typer.Option(
        [], "--latents", help="Latents of inverted photos (from 'invert'); repeatable."
    ),
    photos: Path | None = typer.Option(
        None, "--photos", help="Folder of photos to invert with --encoder and render as pairs too."
    ),
    encoder: Path | None = typer.Option(
        None, "--encoder", "-e", help="The encoder for --photos (see 'train-encoder')."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled latents."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Spread the work over this many Ray workers (0: here)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Render the same latents through a face and a style generator: aligned training pairs.

    Each pair depends only on its index: run it again to resume, or raise -n to add more.
    With --photos and --encoder, each photo is inverted once (its latents kept in
    OUTPUT/latents/) and rendered after the sampled pairs.

    Examples:

      portraitfx stylegan pairs --face face.safetensors --style fused.safetensors -n 10000 --interpolate 1 -o pairs/

      portraitfx stylegan pairs --face face.safetensors --style fused.safetensors -n 0 --photos crops/ -e encoder.safetensors -o pairs/
    """
    _torch()
    from portraitfx.errors import ConfigError
    from portraitfx.train.stylegan import load_generator
    from portraitfx.train.stylegan.pairs import PairJob, encode_photos, generate_pairs

    if (photos is None) != (encoder is None):
        raise ConfigError("--photos and --encoder go together (the encoder inverts the photos)")
    g_face, g_style = load_generator(face), load_generator(style)
    if photos is not None and encoder is not None:
        latents = [*latents, *encode_photos(g_face, encoder, photos, output / "latents")]
    job = PairJob(
        n=n, seed=seed, truncation=truncation, interpolate=interpolate, latents=tuple(str(p) for p in latents)
    )
    written = generate_pairs(g_face, g_style, output, job, progress=not quiet, workers=workers)
    typer.echo(f"wrote {written} pairs ({job.total - written} were already there) to {output}")
    return 0


@app.command("fid")
def fid_command(
    model: Path = typer.Option(..., "--model", "-m", help="The generator (.safetensors)."),
    data: Path = typer.Option(
        ..., "--data", help="Folder of real images (aligned face crops) to compare with."
    ),
    n: int = typer.Option(500, "-n", min=2, help="Generated images (and at most this many real ones)."),
    features: str = typer.Option(
        "identity",
        "--features",
        help="'identity' (dlib face descriptors, offline) or an ONNX network file (e.g. Inception-v3).",
    ),
    truncation: float = typer.Option(
        1.0, "--truncation", "-t", min=0.0, max=1.0, help="Truncation of the samples."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the samples."),
) -> int:
    """Fréchet distance between a generator's samples and a folder of real images (lower is better).

    Also prints the samples' and the data's clarity (sum of Laplacian magnitudes per pixel).

    Example:

      portraitfx stylegan fid -m runs/face/generator.safetensors --data faces/ -n 1000
    """
    _torch()
    import numpy as np

    from portraitfx.metrics import IdentityFeatures, OnnxFeatures, clarity, fid
    from portraitfx.train.stylegan import load_generator
    from portraitfx.train.stylegan.train import load_image_folder

    generator = load_generator(model)
    real_t = load_image_folder(data, generator.cfg.resolution, limit=n)
    real = ((real_t.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    fake = generator.sample(n, seed=seed, truncation=truncation)
    extractor = IdentityFeatures() if features == "identity" else OnnxFeatures(features)
    value = fid(real, fake, extractor)
    sharp_fake = float(np.mean([clarity(im) for im in fake]))
    sharp_real = float(np.mean([clarity(im) for im in real]))
    typer.echo(
        f"FID ({features}): {value:.4f}  ({len(fake)} samples vs {len(real)} images; "
        f"clarity {sharp_fake:.2f} vs {sharp_real:.2f})"
    )
    return 0
