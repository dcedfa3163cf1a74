"""The style library: one YAML file per style.

A style says what to ask for and how::

    title: Business headshot
    prompt: "professional corporate headshot of {subject}, navy suit, ..."   # {subject} is required
    negative: "cartoon, blurry, ..."
    loras: [{file: corporate.safetensors, weight: 0.8}]    # models.yaml names or paths; optional
    sampler: dpm++        # ddim, euler, euler_a, dpm++, unipc
    steps: 30
    guidance: 6.5
    size: [512, 640]      # width, height
    inject_at: 0.2        # the schedule's switch points (see portraitfx.portrait.schedule)
    blend_at: 0.4         # null: a plain identity-adapter run
    ip_scale: 0.7
    fusion: 0.35          # face fusion strength after generation (0: none)

Built-in styles ship in the package; drop more files into ``$PORTRAITFX_HOME/portrait-styles``
(or give a YAML path) and they are found by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portraitfx.errors import ConfigError, InputNotFoundError, ModelNotFoundError

__all__ = [
    "SAMPLERS",
    "Style",
    "builtin_styles_dir",
    "list_styles",
    "load_style",
    "make_scheduler",
    "user_styles_dir",
]

SAMPLERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}
_KEYS = {
    "title", "prompt", "negative", "loras", "sampler", "steps", "guidance", "size",
    "inject_at", "blend_at", "ip_scale", "fusion", "base",
}  # fmt: skip


@dataclass(frozen=True)
class Style:
    """A portrait style (see the module for the fields)."""

    name: str
    prompt: str
    title: str = ""
    negative: str = ""
    loras: tuple[tuple[str, float], ...] = ()
    sampler: str = "dpm++"
    steps: int = 30
    guidance: float = 7.0
    width: int = 512
    height: int = 640
    inject_at: float = 0.2
    blend_at: float | None = 0.4
    ip_scale: float = 0.7
    fusion: float = 0.3
    base: str | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if "{subject}" not in self.prompt:
            raise ConfigError(f"style {self.name!r}: the prompt needs a {{subject}} slot")
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"style {self.name!r}: sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}"
            )
        if not 0.0 <= self.fusion <= 1.0:
            raise ConfigError(f"style {self.name!r}: fusion must be within [0, 1], got {self.fusion}")

    def prompt_for(self, subject: str = "a person") -> str:
        return self.prompt.replace("{subject}", subject)

    def schedule(self, **overrides: Any) -> Any:
        from portraitfx.portrait.schedule import Schedule

        values = {
            "steps": self.steps, "guidance": self.guidance, "inject_at": self.inject_at, "blend_at": self.blend_at,
            "ip_scale": self.ip_scale, "height": self.height, "width": self.width,
        }  # fmt: skip
        values.update({k: v for k, v in overrides.items() if v is not None})
        return Schedule(**values)


def builtin_styles_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / "portrait-styles"


def user_styles_dir() -> Path:
    from portraitfx._home import home_dir

    return home_dir() / "portrait-styles"


def _parse(path: Path) -> Style:
    from portraitfx._yaml import read_yaml_mapping

    data = read_yaml_mapping(path, "style", "prompt:, negative:, ...")
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigError(
            f"style '{path}': unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KEYS))})"
        )
    if "prompt" not in data:
        raise ConfigError(f"style '{path}' needs a prompt")
    loras = []
    for item in data.get("loras") or []:
        if not isinstance(item, dict) or "file" not in item:
            raise ConfigError(f"style '{path}': each lora needs a file (and a weight)")
        loras.append((str(item["file"]), float(item.get("weight", 1.0))))
    size = data.get("size", [512, 640])
    if not (isinstance(size, list | tuple) and len(size) == 2):
        raise ConfigError(f"style '{path}': size must be [width, height]")
    try:
        return Style(
            name=path.stem, prompt=str(data["prompt"]), title=str(data.get("title", path.stem)),
            negative=str(data.get("negative", "")), loras=tuple(loras), sampler=str(data.get("sampler", "dpm++")),
            steps=int(data.get("steps", 30)), guidance=float(data.get("guidance", 7.0)),
            width=int(size[0]), height=int(size[1]), inject_at=float(data.get("inject_at", 0.2)),
            blend_at=None if data.get("blend_at", 0.4) is None else float(data.get("blend_at", 0.4)),
            ip_scale=float(data.get("ip_scale", 0.7)), fusion=float(data.get("fusion", 0.3)),
            base=data.get("base"), source=str(path),
        )  # fmt: skip
    except (TypeError, ValueError) as err:
        raise ConfigError(f"style '{path}': {err}") from None


def _dirs(extra: str | os.PathLike[str] | None) -> list[Path]:
    dirs = [builtin_styles_dir(), user_styles_dir()]
    if extra is not None:
        dirs.append(Path(extra))
    return dirs


def list_styles(extra_dir: str | os.PathLike[str] | None = None) -> dict[str, Style]:
    """Every style found (later folders override earlier ones of the same name)."""
    out: dict[str, Style] = {}
    for d in _dirs(extra_dir):
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                out[p.stem] = _parse(p)
    return out


def load_style(
    name_or_path: str | os.PathLike[str], extra_dir: str | os.PathLike[str] | None = None
) -> Style:
    """A style by name (built-in, the user's folder, ``extra_dir``) or a YAML file."""
    p = Path(name_or_path)
    if p.suffix.lower() in (".yaml", ".yml"):
        if not p.is_file():
            raise InputNotFoundError(f"style file '{p}' does not exist")
        return _parse(p)
    styles = list_styles(extra_dir)
    if str(name_or_path) not in styles:
        raise ModelNotFoundError.for_name(str(name_or_path), styles, what="portrait style")
    return styles[str(name_or_path)]


def make_scheduler(pipe: Any, sampler: str) -> Any:
    """The diffusers scheduler named by ``sampler``, from the pipeline's own scheduler config."""
    import diffusers

    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    cls = getattr(diffusers, SAMPLERS[sampler])
    return cls.from_config(pipe.scheduler.config)
