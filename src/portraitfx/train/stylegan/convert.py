"""Convert official StyleGAN2, StyleGAN2-ADA and StyleGAN3 network pickles to portraitfx's safetensors format.

Pickles can run arbitrary code when loaded, and the official ones even carry the
source code of their network classes. portraitfx never loads a pickle anywhere else;
this converter is the one, explicit exception (``portraitfx convert stylegan PKL
--trust-pickle``), and even here it does not run what the file contains:

* a restricted unpickler allows only the globals such a file needs to rebuild tensors
  and plain containers; anything else (``os.system``, ``builtins.eval``, ...) stops
  the conversion with :class:`~portraitfx.errors.UnsafeModelError`;
* the networks' persistent objects are kept as plain dictionaries of their state:
  their embedded source code is never compiled or executed;
* storages are read with ``torch.load(weights_only=True)``.

Only the generator used for sampling (``G_ema``) of an unconditional StyleGAN2,
StyleGAN2-ADA or StyleGAN3 (``T`` and ``R`` configs) network is converted; conditional
networks are refused with a clear message. A StyleGAN3 network's shape is read from
its recorded constructor arguments and checked, layer by layer, against the rates,
sizes, filters and padding portraitfx works out from them. Still: convert only files from a source you trust, ideally in a
throwaway container.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portraitfx.errors import ConfigError, ModelError, UnsafeModelError
from portraitfx.train.stylegan.networks import Generator, GeneratorConfig

__all__ = ["convert_official_pickle", "read_official_pickle"]


class _Persistent(dict):
    """A network object from an official pickle, kept as data: its class name and state."""


def _reconstruct_persistent_obj(meta: dict) -> _Persistent:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafeModelError("the pickle holds a persistent object of an unexpected kind")
    obj = _Persistent(meta.get("state") or {})
    obj["__class_name__"] = str(meta.get("class_name"))
    return obj  # meta["module_src"] (the embedded source code) is dropped, never run


def _load_storage(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


class _EasyDict(dict):
    pass


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): __import__("_codecs").encode,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    # numbers and small arrays a StyleGAN3 network keeps as attributes (sizes, rates)
    ("numpy.core.multiarray", "scalar"): np.core.multiarray.scalar,  # type: ignore[attr-defined]
    ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,  # type: ignore[attr-defined]
    ("numpy._core.multiarray", "scalar"): np.core.multiarray.scalar,  # type: ignore[attr-defined]
    ("numpy._core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,  # type: ignore[attr-defined]
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeModelError(
                f"the pickle asks for '{module}.{name}', which a StyleGAN network file does not need; refusing it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeModelError("the pickle uses persistent ids (a torch.save file?); refusing it")


def read_official_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The pickle's top level with networks as plain state dictionaries (nothing executed)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"'{p}' does not exist")
    with open(p, "rb") as fh:
        try:
            data = _RestrictedUnpickler(fh).load()
        except UnsafeModelError:
            raise
        except Exception as err:
            raise ModelError(
                f"'{p}' is not a readable StyleGAN pickle: {' '.join(str(err).split())[:200]}"
            ) from err
    if not isinstance(data, dict):
        raise ModelError(f"'{p}' does not hold a dictionary of networks")
    return data


def _flatten(obj: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (obj.get(group) or {}).items():
            if value is not None:
                out[prefix + name] = value.detach() if torch.is_tensor(value) else torch.as_tensor(value)
    for name, child in (obj.get("_modules") or {}).items():
        if isinstance(child, dict):
            out.update(_flatten(child, f"{prefix}{name}."))
    return out


_RULES = [
    (re.compile(r"^mapping\.fc(\d+)\.(weight|bias)$"), r"mapping.layers.\1.\2"),
    (re.compile(r"^mapping\.w_avg$"), r"mapping.w_avg"),
    (re.compile(r"^synthesis\.b(\d+)\.const$"), r"synthesis.blocks.b\1.const"),
    (
        re.compile(r"^synthesis\.b(\d+)\.(conv[01])\.affine\.(weight|bias)$"),
        r"synthesis.blocks.b\1.\2.conv.affine.\3",
    ),
    (re.compile(r"^synthesis\.b(\d+)\.(conv[01])\.weight$"), r"synthesis.blocks.b\1.\2.conv.weight"),
    (
        re.compile(r"^synthesis\.b(\d+)\.(conv[01])\.(noise_strength|noise_const|bias)$"),
        r"synthesis.blocks.b\1.\2.\3",
    ),
    (
        re.compile(r"^synthesis\.b(\d+)\.torgb\.affine\.(weight|bias)$"),
        r"synthesis.blocks.b\1.torgb.conv.affine.\2",
    ),
    (re.compile(r"^synthesis\.b(\d+)\.torgb\.weight$"), r"synthesis.blocks.b\1.torgb.conv.weight"),
    (re.compile(r"^synthesis\.b(\d+)\.torgb\.bias$"), r"synthesis.blocks.b\1.torgb.bias"),
]
_IGNORED = re.compile(r"(^|\.)resample_filter$")


def _config_from(tensors: dict[str, torch.Tensor], net: dict) -> GeneratorConfig:
    if int(net.get("c_dim", 0) or 0) > 0 or any(k.startswith("mapping.embed") for k in tensors):
        raise ModelError("conditional networks (c_dim > 0) are not supported")
    fcs = sorted(int(m.group(1)) for k in tensors if (m := re.match(r"^mapping\.fc(\d+)\.weight$", k)))
    if not fcs or "synthesis.b4.const" not in tensors:
        raise ModelError("no StyleGAN2 generator found (mapping.fc0 / synthesis.b4.const are missing)")
    z_dim = int(tensors["mapping.fc0.weight"].shape[1])
    w_dim = int(tensors[f"mapping.fc{fcs[-1]}.weight"].shape[0])
    resolutions = sorted({int(m.group(1)) for k in tensors if (m := re.match(r"^synthesis\.b(\d+)\.", k))})
    channels = {r: int(tensors[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions}
    channel_max = max(channels.values())
    below = [c * r for r, c in channels.items() if c < channel_max]
    channel_base = max(below) if below else channel_max * max(resolutions)
    fc0 = ((net.get("_modules") or {}).get("mapping") or {}).get("_modules", {}).get("fc0", {})
    lr_mul = float(fc0.get("bias_gain", 0.01)) if isinstance(fc0, dict) else 0.01
    cfg = GeneratorConfig(
        resolution=max(resolutions),
        z_dim=z_dim,
        w_dim=w_dim,
        mapping_layers=len(fcs),
        channel_base=channel_base,
        channel_max=channel_max,
        mapping_lr_mul=lr_mul,
        img_channels=int(tensors[f"synthesis.b{max(resolutions)}.torgb.bias"].shape[0]),
    )
    wrong = {r: (c, cfg.channels(r)) for r, c in channels.items() if cfg.channels(r) != c}
    if wrong:
        raise ModelError(f"channel widths that no channel_base / channel_max reproduce: {wrong}")
    return cfg


def convert_official_pickle(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    trust: bool = False,
    network: str = "G_ema",
) -> Path:
    """Convert ``network`` of an official pickle into a generator file (see the module).

    Raises:
        ConfigError: ``trust`` is not ``True`` (the explicit consent to read a pickle).
        UnsafeModelError: the pickle asks for something a network file does not need.
        ModelError: not a StyleGAN2 generator, or an unsupported one.
    """
    if trust is not True:
        raise ConfigError(
            f"refusing to read '{path}': pickle files can run arbitrary code when loaded. Convert only files "
            "from a source you trust (ideally in a throwaway container) and say so with --trust-pickle"
        )
    data = read_official_pickle(path)
    net = data.get(network)
    if not isinstance(net, dict):
        raise ModelError(
            f"'{path}' has no '{network}' network (it has: {', '.join(map(str, data)) or 'nothing'})"
        )
    tensors = _flatten(net)
    if "synthesis.input.weight" in tensors:
        generator3 = _convert_stylegan3(net, tensors)
        from portraitfx.train.stylegan.checkpoint import save_generator

        return save_generator(
            output,
            generator3,
            extra={"made_by": "portraitfx convert stylegan", "source": Path(path).name, "network": network},
        )
    cfg = _config_from(tensors, net)
    state: dict[str, torch.Tensor] = {}
    unknown = []
    for name, value in tensors.items():
        if _IGNORED.search(name):
            continue
        for pattern, repl in _RULES:
            if pattern.match(name):
                state[pattern.sub(repl, name)] = value.float()
                break
        else:
            unknown.append(name)
    if unknown:
        raise ModelError(f"unexpected tensors in '{network}': {', '.join(unknown[:5])}")
    generator = Generator(cfg)
    own = generator.state_dict()
    for name, value in list(state.items()):
        if name in own and value.shape != own[name].shape and value.numel() == own[name].numel():
            state[name] = value.reshape(own[name].shape)  # e.g. noise maps: [R, R] -> [1, 1, R, R]
    missing = set(own) - set(state)
    if missing:
        raise ModelError(f"'{network}' lacks tensors portraitfx needs: {', '.join(sorted(missing)[:5])}")
    generator.load_state_dict(state, strict=True)
    from portraitfx.train.stylegan.checkpoint import save_generator

    return save_generator(
        output,
        generator,
        extra={"made_by": "portraitfx convert stylegan", "source": Path(path).name, "network": network},
    )


def _convert_stylegan3(net: dict, tensors: dict[str, torch.Tensor]) -> Any:
    """A StyleGAN3 ``G_ema`` as a :class:`~portraitfx.train.stylegan.networks3.Generator3`."""
    from portraitfx.train.stylegan.networks3 import Generator3, Generator3Config

    if int(net.get("c_dim", 0) or 0) > 0 or any(k.startswith("mapping.embed") for k in tensors):
        raise ModelError("conditional networks (c_dim > 0) are not supported")
    kwargs = dict(net.get("_init_kwargs") or {})
    synthesis = (net.get("_modules") or {}).get("synthesis") or {}
    layers = synthesis.get("_modules") or {}
    names = list(synthesis.get("layer_names") or [])
    if not names or not kwargs:
        raise ModelError("the StyleGAN3 network lacks its recorded constructor arguments or layer list")
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    clamp = layers[names[0]].get("conv_clamp", 256)
    try:
        cfg = Generator3Config(
            resolution=int(kwargs["img_resolution"]),
            z_dim=int(kwargs["z_dim"]),
            w_dim=int(kwargs["w_dim"]),
            mapping_layers=int(mapping.get("num_layers", 2)),
            mapping_lr_mul=float(mapping.get("lr_multiplier", 0.01)),
            img_channels=int(kwargs.get("img_channels", 3)),
            channel_base=int(kwargs.get("channel_base", 32768)),
            channel_max=int(kwargs.get("channel_max", 512)),
            num_layers=int(synthesis.get("num_layers", kwargs.get("num_layers", 14))),
            num_critical=int(synthesis.get("num_critical", kwargs.get("num_critical", 2))),
            first_cutoff=float(kwargs.get("first_cutoff", 2.0)),
            first_stopband=float(kwargs.get("first_stopband", 2**2.1)),
            last_stopband_rel=float(kwargs.get("last_stopband_rel", 2**0.3)),
            margin_size=int(synthesis.get("margin_size", kwargs.get("margin_size", 10))),
            output_scale=float(synthesis.get("output_scale", kwargs.get("output_scale", 0.25))),
            conv_kernel=int(kwargs.get("conv_kernel", 3)),
            filter_size=int(kwargs.get("filter_size", 6)),
            lrelu_upsampling=int(kwargs.get("lrelu_upsampling", 2)),
            radial_filters=bool(kwargs.get("use_radial_filters", False)),
            conv_clamp=None if clamp is None else float(clamp),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise ModelError(f"cannot read the StyleGAN3 network's shape: {err}") from None
    specs = cfg.layers()
    if [s.name for s in specs] != names:
        raise ModelError(f"StyleGAN3 layers {names[:3]}... differ from those its settings give")
    for spec in specs:
        got = layers[spec.name]
        recorded = {
            "up_factor": spec.up,
            "down_factor": spec.down,
            "up_taps": spec.up_taps,
            "down_taps": spec.down_taps,
            "padding": list(spec.padding),
            "in_sampling_rate": spec.in_rate,
            "out_sampling_rate": spec.out_rate,
        }
        for key, want in recorded.items():
            value = got.get(key)
            value = [int(v) for v in value] if isinstance(value, list | tuple) else value
            if key in got and value != want:
                raise ModelError(
                    f"StyleGAN3 layer {spec.name}: {key} is {value}, portraitfx works out {want}"
                )
    state: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if m := re.match(r"^mapping\.fc(\d+)\.(weight|bias)$", name):
            state[f"mapping.layers.{m.group(1)}.{m.group(2)}"] = value.float()
        elif name == "mapping.w_avg" or name.startswith("synthesis.input."):
            state[name] = value.float()
        elif m := re.match(r"^synthesis\.(L\d+_\d+_\d+)\.(.+)$", name):
            state[f"synthesis.layers.{m.group(1)}.{m.group(2)}"] = value.float()
        else:
            raise ModelError(f"unexpected tensor in the StyleGAN3 network: {name}")
    generator = Generator3(cfg)
    own = generator.state_dict()
    missing, extra = set(own) - set(state), set(state) - set(own)
    if missing or extra:
        raise ModelError(
            f"the StyleGAN3 network does not match its settings: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(extra)[:3]}"
        )
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        raise ModelError(f"StyleGAN3 tensors of unexpected shape: {wrong[:3]}")
    generator.load_state_dict(state, strict=True)
    return generator.eval()
