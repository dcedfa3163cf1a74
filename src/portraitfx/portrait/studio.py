"""The portrait studio: reference photos + a style -> several portraits that look like the person.

Per run (the seed's post-processing):

1. the reference photos are prepared (:mod:`~portraitfx.portrait.reference`);
2. the style's sampler and LoRAs are set on the pipeline;
3. ``n`` candidates are generated with the seed's schedule, seeds ``seed .. seed + n - 1``
   (the face in each one-step preview found with MediaPipe and masked);
4. **face fusion**: the swap engine puts the reference identity on each candidate, blended
   in at the style's ``fusion`` strength (0: none);
5. the candidates are **ranked** by identity similarity (dlib descriptors, the project's
   metric) to the references' mean, and the top ``k`` are kept;
6. optionally, the kept ones get a face-restoration and a super-resolution ONNX pass
   (:mod:`~portraitfx.portrait.post`);
7. the kept portraits are written with provenance (metadata and invisible watermark),
   with a contact sheet of every candidate and a JSON report.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portraitfx.errors import ConfigError

__all__ = ["Candidate", "PortraitStudio", "StudioResult", "face_mask_fn", "rank_by_identity"]


@dataclass
class Candidate:
    """One generated portrait."""

    index: int
    seed: int
    image: np.ndarray
    similarity: float | None = None
    fused: bool = False
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


@dataclass
class StudioResult:
    """What a studio run made: every candidate (best first), the kept ones, the report."""

    candidates: list[Candidate]
    kept: list[Candidate]
    report: dict[str, Any]
    sheet: Path | None = None


def face_mask_fn(analyzer: Any) -> Callable[[np.ndarray], np.ndarray | None]:
    """A mask function for the schedule: the largest face's face-and-forehead region, feathered (None: no face)."""
    from portraitfx.face.regions import region_mask

    def find(image: np.ndarray) -> np.ndarray | None:
        faces = analyzer.analyze(image)
        if not faces:
            return None
        return region_mask(image.shape, faces[0].landmarks, "face_forehead", feather=0.15, forehead=0.5)

    return find


def rank_by_identity(
    images: list[np.ndarray], reference: np.ndarray, *, analyzer: Any, embedder: Any
) -> list[float | None]:
    """Each image's identity similarity (0..1, :func:`~portraitfx.face.identity.identity_similarity`) to
    ``reference``'s descriptor; None where no face is found."""
    from portraitfx.face.identity import identity_similarity

    out: list[float | None] = []
    for img in images:
        faces = analyzer.analyze(img)
        out.append(None if not faces else identity_similarity(reference, embedder(img, faces[0])))
    return out


def _order(sims: list[float | None]) -> list[int]:
    """Indices best first; images without a face last (in their order)."""
    return sorted(range(len(sims)), key=lambda i: (sims[i] is None, -(sims[i] or 0.0), i))


class PortraitStudio:
    """Generate portraits of a person in a style (see the module).

    Args:
        pipe: a Stable Diffusion pipeline with an identity adapter (:func:`~portraitfx.portrait.models.load_pipeline`).
        models: ``models.yaml`` entries, for the styles' LoRA names.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        models: dict[str, Any] | None = None,
        restore: str | os.PathLike[str] | None = None,
        upscale: str | os.PathLike[str] | None = None,
        face_encoder: str | os.PathLike[str] | None = None,
    ) -> None:
        from portraitfx.portrait.post import FaceRestorer, Upscaler

        self.pipe = pipe
        self.models = models
        self.restorer = FaceRestorer(restore) if restore is not None else None
        self.upscaler = Upscaler(upscale) if upscale is not None else None
        if face_encoder is not None:
            from portraitfx.portrait.reference import FaceEncoder

            self.face_encoder: Any = FaceEncoder(face_encoder)
        else:
            self.face_encoder = None

    def run(
        self,
        references: list[str | os.PathLike[str] | np.ndarray],
        style: Any,
        *,
        n: int = 8,
        k: int = 2,
        seed: int = 0,
        subject: str = "a person",
        out_dir: str | os.PathLike[str] | None = None,
        fusion: float | None = None,
        steps: int | None = None,
        size: tuple[int, int] | None = None,
        provenance: bool = True,
        progress: Callable[[int, int, Candidate], None] | None = None,
        control: np.ndarray | None = None,
        control_scale: float = 1.0,
    ) -> StudioResult:
        """Run the studio; writes the kept portraits, a contact sheet and ``report.json`` to ``out_dir`` if given."""
        from portraitfx.face.analyze import FaceAnalyzer
        from portraitfx.face.identity import FaceEmbedder
        from portraitfx.portrait.models import load_loras, unload_loras
        from portraitfx.portrait.reference import mean_embedding, prepare_references
        from portraitfx.portrait.schedule import generate
        from portraitfx.portrait.styles import Style, load_style, make_scheduler

        if n < 1 or not 1 <= k <= n:
            raise ConfigError(f"need n >= 1 candidates and 1 <= k <= n kept, got n={n}, k={k}")
        st: Style = style if isinstance(style, Style) else load_style(style)
        strength = st.fusion if fusion is None else float(fusion)
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"fusion must be within [0, 1], got {strength}")
        width, height = size if size is not None else (st.width, st.height)
        schedule = st.schedule(steps=steps, width=width, height=height)
        started = time.perf_counter()
        with FaceAnalyzer(max_faces=4, min_face_size=16) as analyzer, FaceEmbedder() as embedder:
            refs = prepare_references(references, analyzer=analyzer, embedder=embedder)
            target = mean_embedding(refs)
            from portraitfx.portrait.models import adapter_kind

            kind, id_dim = adapter_kind(self.pipe)
            identity: Any = refs[0].crop
            if kind == "faceid":  # the adapter takes a face-recognition vector
                if self.face_encoder is not None:
                    vecs = np.stack([self.face_encoder(r.image, r.face) for r in refs]).mean(0)
                    identity = (vecs / max(float(np.linalg.norm(vecs)), 1e-12)).astype(np.float32)
                else:
                    identity = target
                if identity.shape != (id_dim,):
                    raise ConfigError(
                        f"the FaceID adapter takes {id_dim}-d face vectors; the dlib descriptor has "
                        f"{identity.shape[0]}: give the face encoder it was trained with (--face-encoder)"
                    )
            self.pipe.scheduler = make_scheduler(self.pipe, st.sampler)
            names = load_loras(self.pipe, list(st.loras), self.models) if st.loras else []
            swapper = None
            if strength > 0:
                from portraitfx.effects import create_effect

                swapper = create_effect(
                    "swap", source=[r.image for r in refs], select="largest", provenance=False
                )
            candidates: list[Candidate] = []
            try:
                mask_fn = face_mask_fn(analyzer)
                for i in range(n):
                    g = generate(
                        self.pipe, st.prompt_for(subject), reference=identity, negative=st.negative,
                        schedule=schedule, seed=seed + i, mask_fn=mask_fn, control=control, control_scale=control_scale,
                    )  # fmt: skip
                    cand = Candidate(index=i, seed=seed + i, image=g.image, notes=list(g.notes))
                    if swapper is not None:
                        faces = analyzer.analyze(cand.image)
                        if faces:
                            swapped = swapper.apply(cand.image, faces[:1], mark=False)  # type: ignore[call-arg]
                            mixed = cand.image.astype(np.float32) + strength * (
                                swapped.astype(np.float32) - cand.image.astype(np.float32)
                            )
                            cand.image = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
                            cand.fused = True
                        else:
                            cand.notes.append("no face to fuse")
                    candidates.append(cand)
                    if progress is not None:
                        progress(i + 1, n, cand)
                sims = rank_by_identity(
                    [c.image for c in candidates], target, analyzer=analyzer, embedder=embedder
                )
                # the optional finishing passes, on the kept ones only
                for c in [candidates[i] for i in _order(sims)[:k]]:
                    if self.restorer is not None:
                        c.image, done = self.restorer(c.image, analyzer)
                        c.notes.append("face restored" if done else "no face to restore")
                    if self.upscaler is not None:
                        c.image = self.upscaler(c.image)
                        c.notes.append(f"upscaled to {c.image.shape[1]}x{c.image.shape[0]}")
            finally:
                if swapper is not None:
                    swapper.close()
                if names:
                    unload_loras(self.pipe)
        for c, s in zip(candidates, sims, strict=True):
            c.similarity = None if s is None else round(float(s), 4)
        ordered = [candidates[i] for i in _order([c.similarity for c in candidates])]
        kept = ordered[:k]
        report = {
            "style": st.name,
            "style_file": st.source,
            "prompt": st.prompt_for(subject),
            "negative": st.negative,
            "references": [r.path for r in refs],
            "seed": seed,
            "n": n,
            "k": k,
            "settings": {
                "sampler": st.sampler, "steps": schedule.steps, "guidance": schedule.guidance,
                "inject_at": schedule.inject_at, "blend_at": schedule.blend_at, "ip_scale": schedule.ip_scale,
                "width": schedule.width, "height": schedule.height, "fusion": strength,
                "loras": [list(x) for x in st.loras],
                "control_scale": control_scale if control is not None else None,
                "restore": None if self.restorer is None else str(self.restorer._restorer.path),
                "upscale": None if self.upscaler is None else str(self.upscaler.path),
            },
            "candidates": [
                {"index": c.index, "seed": c.seed, "similarity": c.similarity, "fused": c.fused, "notes": c.notes}
                for c in ordered
            ],
            "kept": [],
            "seconds": 0.0,
        }  # fmt: skip
        result = StudioResult(candidates=ordered, kept=kept, report=report)
        if out_dir is not None:
            self._write(result, Path(out_dir), provenance)
        report["seconds"] = round(time.perf_counter() - started, 2)
        if out_dir is not None:
            _write_json(Path(out_dir) / "report.json", report)
        return result

    def _write(self, result: StudioResult, out: Path, provenance: bool) -> None:
        from portraitfx.io.images import save_image
        from portraitfx.provenance import save_marked_image

        out.mkdir(parents=True, exist_ok=True)
        for rank, c in enumerate(result.kept):
            c.path = save_marked_image(
                out / f"portrait-{rank + 1:02d}-seed{c.seed}.png", c.image, "portrait", provenance=provenance
            )
            result.report["kept"].append({"file": c.path.name, "seed": c.seed, "similarity": c.similarity})
        result.sheet = save_image(out / "contact-sheet.png", contact_sheet(result))


def contact_sheet(result: StudioResult, cell: int = 256) -> np.ndarray:
    """Every candidate, best first, with its seed and identity similarity; kept ones framed in green."""
    import cv2

    tiles = []
    kept = {id(c) for c in result.kept}
    for c in result.candidates:
        h, w = c.image.shape[:2]
        s = cell / max(h, w)
        img = cv2.resize(c.image, (max(int(w * s), 1), max(int(h * s), 1)), interpolation=cv2.INTER_AREA)
        tile = np.full((cell + 22, cell, 3), 255, np.uint8)
        tile[22 : 22 + img.shape[0], : img.shape[1]] = img
        sim = "no face" if c.similarity is None else f"{c.similarity:.3f}"
        cv2.putText(
            tile,
            f"seed {c.seed}  id {sim}",
            (4, 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (20, 20, 20),
            1,
            cv2.LINE_AA,
        )
        if id(c) in kept:
            cv2.rectangle(tile, (0, 0), (cell - 1, cell + 21), (40, 170, 40), 4)
        tiles.append(tile)
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * cols - len(tiles))
    return np.concatenate([np.concatenate(tiles[r * cols : (r + 1) * cols], 1) for r in range(rows)], 0)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
