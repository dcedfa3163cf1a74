"""Model fusion ("layer swapping"): blend two generators of the same shape, resolution by resolution.

A style model fine-tuned from a face model keeps the face model's latent space, so
each synthesis resolution of the two can be mixed: the low resolutions decide the
head's shape, pose and layout, the high ones texture, colour and line. Taking the
low layers from the face model and the high ones from the style model gives a
stylised face that still looks like the person (Pinkney & Adler's "toonify"); a
smooth schedule avoids a visible step. Fusions chain: the result of one is a
generator like any other (seed ``000``'s "model dolls").

Schedules (``t`` is the style model's share at a resolution):

* ``swap:R``: ``t = 0`` up to ``R`` px, ``1`` above;
* ``sigmoid:R[:W]``: ``t`` rises smoothly around ``R`` px, over ``W`` octaves (default 0.5);
* ``linear:T``: ``t = T`` everywhere (plain weight interpolation);
* ``layers:T4,T8,...``: one share per resolution from 4 px up.

The mapping network (and the average ``w``) takes the share of the lowest resolution.
"""

from __future__ import annotations

import copy
import math

import torch

from portraitfx.errors import ConfigError
from portraitfx.train.stylegan.networks import Generator

__all__ = ["fuse_generators", "parse_schedule"]


def parse_schedule(text: str, resolution: int) -> dict[int, float]:
    """``{res: style share}`` for every resolution from 4 to ``resolution``, from a schedule string."""
    resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
    kind, _, rest = str(text).strip().partition(":")
    args = [a for a in rest.split(":") if a] if kind != "layers" else [rest]
    try:
        if kind == "swap" and len(args) == 1:
            cut = int(args[0])
            _check_res(cut, resolution)
            return {r: 0.0 if r <= cut else 1.0 for r in resolutions}
        if kind == "sigmoid" and len(args) in (1, 2):
            centre = int(args[0])
            _check_res(centre, resolution)
            width = float(args[1]) if len(args) == 2 else 0.5
            if width <= 0:
                raise ConfigError("the sigmoid's width must be > 0 octaves")
            mid = math.log2(centre) + 0.5
            return {r: 1.0 / (1.0 + math.exp(-(math.log2(r) - mid) / width)) for r in resolutions}
        if kind == "linear" and len(args) == 1:
            t = float(args[0])
            return {r: _share(t) for r in resolutions}
        if kind == "layers" and args[0]:
            shares = [_share(float(v)) for v in args[0].split(",")]
            if len(shares) != len(resolutions):
                raise ConfigError(
                    f"'layers:' needs {len(resolutions)} shares (4 to {resolution} px), got {len(shares)}"
                )
            return dict(zip(resolutions, shares, strict=True))
    except ValueError:
        pass
    raise ConfigError(
        f"bad fusion schedule {text!r}: use swap:RES, sigmoid:RES[:OCTAVES], linear:SHARE or layers:S4,S8,..."
    )


def _check_res(res: int, top: int) -> None:
    if res < 4 or res > top or res & (res - 1):
        raise ConfigError(f"the schedule's resolution must be a power of two from 4 to {top}, got {res}")


def _share(t: float) -> float:
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"a style share must be within 0..1, got {t}")
    return t


def fuse_generators(face: Generator, style: Generator, schedule: str | dict[int, float]) -> Generator:
    """A new generator: each resolution's weights ``(1 - t) * face + t * style`` (see the module).

    A share of exactly 0 or 1 copies that model's tensors bit for bit.

    Raises:
        ConfigError: the two models differ in shape, or a bad schedule.
    """
    if face.cfg != style.cfg:
        raise ConfigError(f"fusion needs two models of the same shape: {face.cfg} vs {style.cfg}")
    shares = parse_schedule(schedule, face.cfg.resolution) if isinstance(schedule, str) else dict(schedule)
    missing = {2**i for i in range(2, face.cfg.log2 + 1)} - set(shares)
    if missing:
        raise ConfigError(f"the schedule gives no share for {sorted(missing)} px")
    fused = copy.deepcopy(face)
    a, b = face.state_dict(), style.state_dict()
    out = {}
    for name, ta in a.items():
        res = face.resolution_of(name)
        t = float(shares[res if res is not None else 4])
        tb = b[name]
        if t == 0.0 or not torch.is_floating_point(ta):
            out[name] = ta.clone()
        elif t == 1.0:
            out[name] = tb.clone()
        else:
            out[name] = ta * (1.0 - t) + tb * t
    fused.load_state_dict(out, strict=True)
    return fused
