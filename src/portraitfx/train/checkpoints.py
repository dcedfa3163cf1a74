"""Pieces every trainer's safetensors checkpoints share: the header, and optimiser state as tensors."""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["load_optimiser", "optimiser_tensors", "read_metadata"]


def read_metadata(path: str | os.PathLike[str], what: str) -> dict[str, str]:
    """The header of a safetensors file; anything else (a pickle above all) is refused as not ``what``."""
    from safetensors import safe_open

    from portraitfx.models.load import _wrong_kind, resolve_model, sniff_model_format

    p = resolve_model(path)
    kind = sniff_model_format(p)
    if kind != "safetensors":
        raise _wrong_kind(p, kind, what)
    with safe_open(str(p), framework="pt") as fh:
        return fh.metadata() or {}


def optimiser_tensors(name: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam's state as ``{name.INDEX.step|exp_avg|exp_avg_sq: tensor}`` (on the CPU)."""
    out: dict[str, torch.Tensor] = {}
    for idx, st in opt.state_dict()["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            value: Any = st[key]
            value = value if torch.is_tensor(value) else torch.tensor(value)
            out[f"{name}.{idx}.{key}"] = value.detach().cpu()
    return out


def load_optimiser(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Put back what :func:`optimiser_tensors` saved (parameters without saved state start fresh)."""
    sd = opt.state_dict()
    sd["state"] = {
        idx: {k: tensors[f"{name}.{idx}.{k}"].clone() for k in ("step", "exp_avg", "exp_avg_sq")}
        for group in sd["param_groups"]
        for idx in group["params"]
        if f"{name}.{idx}.exp_avg" in tensors
    }
    opt.load_state_dict(sd)


def save_network(
    path: str | os.PathLike[str],
    net: torch.nn.Module,
    *,
    kind: str,
    prefix: str,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Any:
    """A network's weights (``prefix.*``) with its kind and shape in the header, atomically."""
    import json

    from portraitfx.models.load import save_safetensors

    tensors = {f"{prefix}.{k}": v.detach() for k, v in net.state_dict().items()}
    meta = {"portraitfx": kind, "config": json.dumps(config), "extra": json.dumps(extra or {})}
    return save_safetensors(path, tensors, meta)


def load_network(
    path: str | os.PathLike[str],
    build: Any,
    *,
    kinds: dict[str, str],
    what: str,
) -> torch.nn.Module:
    """Rebuild a network saved by :func:`save_network` (or kept in a run's checkpoint).

    ``build``: the config dict -> an untrained network; ``kinds``: header kind -> the
    prefix its weights have in such a file.
    """
    import json

    from portraitfx.errors import ModelError
    from portraitfx.models.load import load_safetensors

    meta = read_metadata(path, f"a safetensors {what}")
    prefix = kinds.get(meta.get("portraitfx", ""))
    if prefix is None:
        raise ModelError(f"'{path}' is not a portraitfx {what}")
    net = build(json.loads(meta["config"]))
    tensors = load_safetensors(path)
    try:
        net.load_state_dict(
            {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        )
    except RuntimeError as err:
        raise ModelError(f"'{path}' does not fit its own {what} config: {str(err).splitlines()[0]}") from err
    return net.eval()


def save_run(
    path: str | os.PathLike[str],
    *,
    kind: str,
    nets: dict[str, torch.nn.Module],
    optimisers: dict[str, torch.optim.Optimizer],
    rng: torch.Generator,
    state: dict[str, Any],
    meta: dict[str, str] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> Any:
    """A training run's checkpoint: every network (``NAME.*``), optimiser, the run's random state, ``state`` as JSON."""
    import json

    from portraitfx.models.load import save_safetensors

    out: dict[str, torch.Tensor] = dict(tensors or {})
    for name, net in nets.items():
        out.update({f"{name}.{k}": v.detach().cpu() for k, v in net.state_dict().items()})
    for name, opt in optimisers.items():
        out.update(optimiser_tensors(name, opt))
    out["rng"] = rng.get_state()
    return save_safetensors(path, out, {"portraitfx": kind, "state": json.dumps(state), **(meta or {})})


def load_run(
    path: str | os.PathLike[str],
    *,
    kind: str,
    what: str,
    nets: dict[str, torch.nn.Module],
    optimisers: dict[str, torch.optim.Optimizer],
    rng: torch.Generator,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Put back what :func:`save_run` wrote; returns the ``state`` and all the tensors."""
    import json

    from portraitfx.errors import ModelError
    from portraitfx.models.load import load_safetensors

    meta = read_metadata(path, f"a safetensors {what}")
    if meta.get("portraitfx") != kind:
        raise ModelError(f"'{path}' is not a {what}")
    tensors = load_safetensors(path)
    for name, net in nets.items():
        prefix = name + "."
        net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, opt in optimisers.items():
        load_optimiser(name, opt, tensors)
    rng.set_state(tensors["rng"])
    return json.loads(meta["state"]), tensors
