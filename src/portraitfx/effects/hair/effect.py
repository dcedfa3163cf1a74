"""The ``hair`` effect: one hair edit (recolour, hairline, fill, bangs) on every face of a photo or video.

Example:
    >>> from portraitfx.effects import create_effect
    >>> fx = create_effect("hair", edit="recolor", color="auburn")      # doctest: +SKIP
    >>> out = fx.apply(image, faces)                                     # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from portraitfx.effects.base import EffectState, register_effect
from portraitfx.effects.hair.analysis import HairAnalysis, analyze_hair
from portraitfx.effects.hair.edits import HairEdit, add_bangs, adjust_hairline, fill_sparse, recolor
from portraitfx.errors import ConfigError, HairNotFoundError
from portraitfx.face.types import Face

__all__ = ["EDITS", "HairEffect", "HairOptions", "reference_hair_colour"]

EDITS = ("recolor", "hairline", "fill", "bangs")
DEFAULT_AMOUNT = {"recolor": 1.0, "hairline": 0.3, "fill": 1.0, "bangs": 0.75}


@dataclass(frozen=True)
class HairOptions:
    """What to do to the hair.

    Attributes:
        edit: ``"recolor"``, ``"hairline"``, ``"fill"`` or ``"bangs"``.
        color: for ``recolor``: a hex code or a name (see :data:`~portraitfx.effects.hair.colors.HAIR_COLOURS`);
            auburn when neither a colour nor a reference is given.
        reference: for ``recolor``: a photo whose hair colour to take instead.
        amount: the edit's strength; default per edit (recolour strength 1, hairline
            0.3 of the forehead down, fill 1, bangs reaching 0.75 of the way to the brows).
        model: an exported hair model (``.onnx``) to run instead of the model-free edit.
    """

    edit: Literal["recolor", "hairline", "fill", "bangs"] = "recolor"
    color: str | None = None
    reference: str | None = None
    amount: float | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.edit not in EDITS:
            raise ConfigError(f"unknown hair edit {self.edit!r}; choose from {', '.join(EDITS)}")
        if self.color is not None and self.reference is not None:
            raise ConfigError("give a colour or a reference photo for the hair, not both")
        if self.edit != "recolor" and (self.color or self.reference):
            raise ConfigError(f"--color and --reference are for recolour, not {self.edit}")


def reference_hair_colour(path: str | os.PathLike[str]) -> np.ndarray:
    """The Lab colour of the hair of the largest face in a photo."""
    from portraitfx.face.analyze import FaceAnalyzer, require_face
    from portraitfx.io.images import load_image

    image = load_image(path)
    with FaceAnalyzer(max_faces=1) as analyzer:
        faces = require_face(analyzer.run(image), f"reference photo '{path}'")
    try:
        return analyze_hair(image, faces[0]).hair_lab
    except HairNotFoundError as err:
        raise HairNotFoundError(f"reference photo '{path}': {err}") from None


@register_effect("hair")
class HairEffect:
    """Edit the hair of every face (see :class:`HairOptions`).

    Photos: a face whose hair cannot be edited (none found, too small, in profile)
    raises :class:`~portraitfx.errors.HairNotFoundError`. Videos: such faces are left
    as they are in that frame.
    """

    name = "hair"
    smooth_landmarks = True

    def __init__(self, options: HairOptions | None = None, **overrides: Any) -> None:
        from dataclasses import replace

        from portraitfx.effects.hair.colors import parse_colour, rgb_to_lab
        from portraitfx.face.segment import PersonSegmenter

        self.options = replace(options or HairOptions(), **overrides)
        o = self.options
        self.amount = DEFAULT_AMOUNT[o.edit] if o.amount is None else float(o.amount)
        self.target: np.ndarray | None = None
        if o.edit == "recolor" and o.model is None:
            self.target = (
                reference_hair_colour(o.reference)
                if o.reference
                else rgb_to_lab(parse_colour(o.color or "auburn"))
            )
        self.model = None
        if o.model is not None:
            from portraitfx.effects.hair.model import HairModel

            self.model = HairModel(o.model)
            if self.model.edit and self.model.edit != o.edit:
                raise ConfigError(f"'{o.model}' was trained for {self.model.edit}, not {o.edit}")
        self._segmenter = PersonSegmenter()
        self.last: list[HairAnalysis] = []

    def edit_one(self, image: np.ndarray, a: HairAnalysis) -> HairEdit:
        """Apply the edit to one analysed face."""
        if self.model is not None:
            return self.model.apply(image, a)
        edit = self.options.edit
        if edit == "recolor":
            assert self.target is not None
            return recolor(image, a, self.target, strength=self.amount)
        if edit == "hairline":
            return adjust_hairline(image, a, self.amount)
        if edit == "fill":
            return fill_sparse(image, a, amount=self.amount)
        return add_bangs(image, a, amount=self.amount)

    def apply(self, frame: np.ndarray, faces: list[Face], state: EffectState | None = None) -> np.ndarray:
        out = frame
        self.last = []
        for face in faces:
            try:
                a = analyze_hair(out, face, segmenter=self._segmenter)
            except HairNotFoundError:
                if state is None:
                    raise
                continue
            self.last.append(a)
            out = self.edit_one(out, a).image
        return out if out is not frame else frame.copy()

    def close(self) -> None:
        self._segmenter.close()
