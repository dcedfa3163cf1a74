"""``portraitfx convert``: bring models from other formats into portraitfx's safe ones (explicit steps)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(
    name="convert",
    help="Convert models from other formats (the only place a pickle is ever read, and only when you say so).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("stylegan")
def stylegan(
    pickle_file: Path = typer.Argument(
        ..., help="An official StyleGAN2, StyleGAN2-ADA or StyleGAN3 network pickle (.pkl)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The generator to write (.safetensors)."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Required: you trust this file (pickles can run code when loaded)."
    ),
    network: str = typer.Option(
        "G_ema", "--network", help="Which network of the pickle (G_ema: the one to sample with)."
    ),
) -> int:
    """Convert an official StyleGAN2(-ADA) or StyleGAN3 pickle's generator to safetensors.

    Pickles can run arbitrary code when loaded. This step reads one with a restricted
    unpickler (tensors and plain containers only; the embedded network source code is
    never run) and only with --trust-pickle; everything else in portraitfx loads
    safetensors only.

    Example:

      portraitfx convert stylegan ffhq.pkl -o ffhq.safetensors --trust-pickle
    """
    from portraitfx.train.stylegan.checkpoint import read_config
    from portraitfx.train.stylegan.convert import convert_official_pickle

    if trust_pickle:
        print(
            f"warning: reading the pickle '{pickle_file}' (restricted: tensors and containers only); "
            "convert only files from a source you trust",
            file=sys.stderr,
        )
    path = convert_official_pickle(pickle_file, output, trust=trust_pickle, network=network)
    cfg, _ = read_config(path)
    typer.echo(
        f"wrote {path}: {cfg.resolution}px generator, z {cfg.z_dim}, widths {cfg.channel_base}/{cfg.channel_max}"
    )
    return 0
