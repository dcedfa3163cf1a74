"""Effects as the HTTP API shows them: options from the effects' own option dataclasses.

Every registered effect is described by an :class:`EffectSpec`: its options (one
form field each, typed and checked here, then checked again by the effect) and the
image uploads it needs (``source`` photos for ``swap``). Options come from the
fields of the effect's options dataclass (``StylizeOptions``, ``SwapOptions``, ...)
and the simple keyword arguments of its constructor; fields of other types (nested
settings, model files, paths) are not offered over HTTP, and neither is switching
provenance marks off.

Example:
    >>> spec = describe_effect("stylize")
    >>> "strength" in [o.name for o in spec.options]
    True
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from portraitfx.errors import ConfigError, ModelNotFoundError

__all__ = [
    "RESERVED_FIELDS",
    "EffectSpec",
    "OptionSpec",
    "UploadSpec",
    "describe_effect",
    "parse_options",
    "servable_effects",
]

#: Form fields of the image and job endpoints that are not effect options.
RESERVED_FIELDS = ("format", "max_faces", "effect")

_NEVER = frozenset({"provenance"})  # outputs of identity-changing effects are always marked
_HIDDEN: dict[str, frozenset[str]] = {
    # model files and ONNX providers are server-side choices, not the client's
    "swap": frozenset({"model", "restore", "providers"}),
    "toon": frozenset({"model", "providers", "threads"}),
    "hair": frozenset({"model", "reference"}),
}
# effects that need a model file only the server's operator can name (no default model)
_UNSERVED = frozenset({"ugatit"})


@dataclass(frozen=True)
class UploadSpec:
    """An image upload an effect needs besides the picture or video it changes."""

    name: str
    required: bool
    max_count: int
    description: str


@dataclass(frozen=True)
class OptionSpec:
    """One option (form field) of an effect.

    Attributes:
        name: form field name (the option's name).
        type: ``"boolean"``, ``"integer"``, ``"number"`` or ``"string"``.
        default: the default value (JSON-compatible) or ``None``.
        nullable: ``"none"`` (or an empty value) gives ``None``.
        choices: allowed values, for enumerations.
        description: one or two lines from the effect's docstring.
    """

    name: str
    type: str
    default: Any
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    description: str = ""
    choices_fn: Callable[[], list[str]] | None = dataclasses.field(default=None, compare=False, repr=False)

    def allowed(self) -> tuple[Any, ...] | None:
        """The allowed values now (dynamic for styles: installed ones count)."""
        if self.choices_fn is not None:
            return tuple(self.choices_fn())
        return self.choices

    def parse(self, raw: str) -> Any:
        """Convert a form value; raise :class:`ConfigError` naming the option."""
        text = raw.strip()
        if self.nullable and text.lower() in ("", "none", "null"):
            return None
        value: Any
        if self.type == "boolean":
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                value = True
            elif low in ("false", "0", "no", "off"):
                value = False
            else:
                raise ConfigError(f"option {self.name!r} must be true or false, got {raw!r}")
        elif self.type == "integer":
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"option {self.name!r} must be an integer, got {raw!r}") from None
        elif self.type == "number":
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"option {self.name!r} must be a number, got {raw!r}") from None
            if not math.isfinite(value):
                raise ConfigError(f"option {self.name!r} must be a finite number, got {raw!r}")
        else:
            value = text
        allowed = self.allowed()
        if allowed is not None and value not in allowed:
            raise ConfigError(
                f"option {self.name!r} must be one of {', '.join(map(str, allowed))}; got {raw!r}"
            )
        return value


@dataclass(frozen=True)
class EffectSpec:
    """What an effect takes over HTTP.

    Attributes:
        name: the registered name.
        description: first line of its docstring.
        options: its options (form fields).
        uploads: extra image uploads (e.g. ``source`` for ``swap``).
        identity_changing: outputs are marked as generated (watermark + metadata).
    """

    name: str
    description: str
    options: tuple[OptionSpec, ...]
    uploads: tuple[UploadSpec, ...]
    identity_changing: bool

    def option(self, name: str) -> OptionSpec | None:
        """The option called ``name``, if any."""
        return next((o for o in self.options if o.name == name), None)


def _styles() -> list[str]:
    from portraitfx.effects.stylize.pack import list_styles

    return list_styles()


_EXTRA_OPTIONS: dict[tuple[str, str], OptionSpec] = {
    ("stylize", "style"): OptionSpec(
        "style",
        "string",
        "pencil",
        description="A built-in style (pencil, watercolour, oil, ink) or the name of a style installed on the server.",
        choices_fn=_styles,
    ),
}
_UPLOADS: dict[tuple[str, str], UploadSpec] = {
    ("swap", "source"): UploadSpec(
        "source", True, 4, "Photo(s) of the source person (1 to 4). Only with that person's consent."
    ),
    ("swap", "reference"): UploadSpec(
        "reference",
        False,
        1,
        "A photo of the person whose face to replace (only faces of this person are swapped).",
    ),
}


def _doc_items(doc: str | None, section: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style docstring section (``Attributes``, ``Args``)."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    inside, current, indent = False, None, None
    for line in lines:
        if line.strip() == f"{section}:":
            inside, current, indent = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent or (width == indent and line.rstrip().endswith(":") and " " not in line.strip()):
            break
        match = re.match(r"\s*([A-Za-z_][\w, ]*?)(\s*\([^)]*\))?:\s*(.*)", line) if width == indent else None
        if match:
            names = [n.strip() for n in match.group(1).split(",")]
            current = names
            for n in names:
                out[n] = match.group(3).strip()
        elif current:
            for n in current:
                out[n] = f"{out[n]} {line.strip()}".strip()
    return {k: _plain(v) for k, v in out.items()}


def _plain(text: str) -> str:
    """Docstring markup (````x````, ``:mod:`x```) as plain text."""
    text = re.sub(r":\w+:`~?\.?([^`]*)`", r"\1", text)
    return re.sub(r"``([^`]*)``", r"\1", text)


def _simple(tp: Any) -> tuple[str, bool, tuple[Any, ...] | None] | None:
    """``(type, nullable, choices)`` of an annotation the API can take as a form value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(args) == len(typing.get_args(tp)):
            return None
        inner = _simple(args[0])
        return None if inner is None else (inner[0], True, inner[2])
    if origin is Literal:
        values = typing.get_args(tp)
        if all(isinstance(v, str) for v in values):
            return "string", False, values
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "integer", False, values
        return None
    return {bool: ("boolean", False, None), int: ("integer", False, None), float: ("number", False, None),
            str: ("string", False, None)}.get(tp)  # fmt: skip


def _default(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) or value is None else None


def _options_class(factory: Any) -> type | None:
    init = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(init)
    except Exception:
        return None
    tp = hints.get("options")
    for candidate in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
            return candidate
    return None


def describe_effect(name: str) -> EffectSpec:
    """The :class:`EffectSpec` of the effect registered as ``name``.

    Raises:
        ModelNotFoundError: no such effect (the message suggests close names).
    """
    from portraitfx.effects.base import _REGISTRY, list_effects

    known = list_effects()
    if name not in known:
        raise ModelNotFoundError.for_name(name, known, what="effect")
    factory = _REGISTRY[name]
    doc = inspect.getdoc(factory) or ""
    description = _plain(doc.split("\n\n", 1)[0].replace("\n", " ").strip())
    hidden = _NEVER | _HIDDEN.get(name, frozenset())
    options: list[OptionSpec] = []
    uploads: list[UploadSpec] = []
    # constructor keywords first (``style``), then the options dataclass
    init = factory.__init__ if inspect.isclass(factory) else factory
    try:
        params = list(inspect.signature(init).parameters.values())
        hints = typing.get_type_hints(init)
    except (TypeError, ValueError, NameError):
        params, hints = [], {}
    arg_docs = _doc_items(doc, "Args")
    for p in params:
        if p.name in ("self", "options") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in hidden:
            continue
        key = (name, p.name)
        if key in _EXTRA_OPTIONS:
            options.append(_EXTRA_OPTIONS[key])
        elif key in _UPLOADS:
            uploads.append(_UPLOADS[key])
        elif (simple := _simple(hints.get(p.name))) is not None:
            kind, nullable, choices = simple
            default = None if p.default is p.empty else _default(p.default)
            options.append(OptionSpec(p.name, kind, default, nullable, choices, arg_docs.get(p.name, "")))
    cls = _options_class(factory)
    if cls is not None:
        field_docs = _doc_items(inspect.getdoc(cls), "Attributes")
        field_hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = (name, f.name)
            if f.name in hidden or any(o.name == f.name for o in options):
                continue
            if key in _UPLOADS:
                uploads.append(_UPLOADS[key])
                continue
            simple = _simple(field_hints.get(f.name))
            if simple is None:
                continue
            kind, nullable, choices = simple
            default = f.default if f.default is not dataclasses.MISSING else None
            options.append(
                OptionSpec(f.name, kind, _default(default), nullable, choices, field_docs.get(f.name, ""))
            )
    identity = isinstance(getattr(factory, "provenance_effect", None), (property, str))
    return EffectSpec(name, description, tuple(options), tuple(uploads), identity)


def servable_effects() -> list[str]:
    """Names of the registered effects the API offers (all but those that need a server-side model file)."""
    from portraitfx.effects.base import list_effects

    return [name for name in list_effects() if name not in _UNSERVED]


def parse_options(spec: EffectSpec, fields: dict[str, str]) -> dict[str, Any]:
    """Turn form fields into the effect's keyword arguments (reserved fields skipped).

    Raises:
        ConfigError: an unknown option (the message lists the valid ones) or a bad value.
    """
    out: dict[str, Any] = {}
    uploads = {u.name for u in spec.uploads}
    for key, raw in fields.items():
        if key in RESERVED_FIELDS:
            continue
        option = spec.option(key)
        if option is None:
            if key in uploads:
                raise ConfigError(f"{key!r} must be sent as a file upload")
            valid = ", ".join(o.name for o in spec.options) or "none"
            raise ConfigError(f"unknown option {key!r} for effect {spec.name!r}; valid options: {valid}")
        out[key] = option.parse(raw)
    return out
