"""``portraitfx train swapnet CONFIG.yaml`` and ``portraitfx export swapnet``: the learned face swapper."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="train",
    help="Train networks from a config file (one process or many under torchrun).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

CONFIG_KEYS = {"data", "output", "steps", "augment", "log_every", "options", "device", "precision"}


def _read_config(path: Path) -> dict[str, Any]:
    from portraitfx._yaml import read_yaml_mapping
    from portraitfx.errors import ConfigError

    config = read_yaml_mapping(path, "config", "data:, output:, steps:, options: ...")
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ConfigError(
            f"unknown keys in '{path}': {', '.join(sorted(unknown))} (known: {', '.join(sorted(CONFIG_KEYS))})"
        )
    for key in ("data", "output"):
        if key not in config:
            raise ConfigError(f"'{path}' needs '{key}:'")
    base = path.parent
    config["data"] = (
        (base / str(config["data"])).resolve()
        if not Path(str(config["data"])).is_absolute()
        else Path(config["data"])
    )
    config["output"] = (
        (base / str(config["output"])).resolve()
        if not Path(str(config["output"])).is_absolute()
        else Path(config["output"])
    )
    return config


@app.command("swapnet")
def swapnet(
    config_file: Path = typer.Argument(
        ..., help="YAML: data (folder or prepared .safetensors), output, steps, augment, options."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Train the learned face swapper; run again to resume. Under torchrun, one process per GPU.

    Config example:

      data: faces/            # sub-folders per person (or name_*.jpg)
      output: runs/swap
      steps: 200000
      augment: 2              # augmented copies per photo when preparing
      options: {size: 256, batch: 8, same_rate: 0.3}
      device: cuda            # default: this process's GPU if any
      precision: bf16

    Examples:

      portraitfx train swapnet swap.yaml

      torchrun --standalone --nproc_per_node=8 -m portraitfx train swapnet swap.yaml
    """
    from portraitfx.train.distributed import init_distributed
    from portraitfx.train.swapnet.data import load_swap_data, prepare_swap_data, save_swap_data
    from portraitfx.train.swapnet.train import SwapTrainer, SwapTrainOptions, options_from_run

    rank, world = init_distributed()
    config = _read_config(config_file)
    out: Path = config["output"]
    checkpoint = out / "checkpoint.safetensors"
    options = (
        options_from_run(checkpoint)
        if checkpoint.is_file()
        else SwapTrainOptions.from_dict(config.get("options") or {})
    )
    data_path: Path = config["data"]
    if data_path.is_file():
        prepared = data_path
    else:  # prepared once (by process 0) next to the run, then read by every process
        prepared = out / f"data-{options.size}.safetensors"
        if rank == 0 and not prepared.is_file():
            out.mkdir(parents=True, exist_ok=True)
            typer.echo(f"preparing {data_path} ...")
            save_swap_data(prepare_swap_data(data_path, options.size, augment=int(config.get("augment", 0)),
                                             progress=not quiet and sys.stderr.isatty()), prepared)  # fmt: skip
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    data = load_swap_data(prepared)
    trainer = SwapTrainer(data, options, resume=checkpoint if checkpoint.is_file() else None,
                          device=config.get("device"), precision=str(config.get("precision", "fp32")))  # fmt: skip
    if rank == 0 and checkpoint.is_file():
        typer.echo(f"resuming {checkpoint} at step {trainer.step_count}")
    history = trainer.train(int(config.get("steps", 10000)), out, log_every=int(config.get("log_every", 100)),
                            progress=not quiet and sys.stderr.isatty())  # fmt: skip
    if rank == 0:
        last = history[-1] if history else {}
        typer.echo(
            f"trained {trainer.step_count} steps on {len(data)} faces (identity {last.get('identity', float('nan')):.3f}, "
            f"reconstruction {last.get('reconstruction', float('nan')):.4f}); {out / 'swapnet.safetensors'}"
        )
    return 0
