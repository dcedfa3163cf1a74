"""A linear morphable model of the 478-point face mesh, built here by PCA (no third-party 3DMM needed).

Seed 004's shape-aware swap needs to say "the source's face shape with the target's
expression and pose". With meshes of many people, several of each person (any
expressions), the model is:

* every mesh brought to a common frame (similarity Procrustes to the running mean:
  pose and scale removed);
* **shape basis**: PCA of the per-person mean meshes around the overall mean (how
  people differ);
* **expression basis**: PCA of each mesh's difference from its person's mean, with the
  shape directions projected out (how a face moves);
* a fit solves the pose by Procrustes, then shape and expression coefficients by
  ridge least squares; :meth:`MeshBasis.combine` builds the source's shape with the
  target's expression, put in the target's pose: the landmarks that supervise the
  swap network's flow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portraitfx.errors import ConfigError, ModelError

__all__ = ["MeshBasis", "MeshFit", "build_basis", "procrustes"]


def procrustes(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``(s, R, t)`` with ``s * src @ R.T + t ~ dst`` (least squares, ``R`` a proper rotation)."""
    a, b = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, sig, vt = np.linalg.svd(b0.T @ a0)
    d = np.ones(len(sig))
    d[-1] = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag(d) @ vt
    s = float((sig * d).sum() / max((a0**2).sum(), 1e-12))
    return s, r, mb - s * ma @ r.T


@dataclass
class MeshFit:
    """A mesh's coefficients and pose: ``mesh ~ s * (mean + alpha @ S + beta @ E) @ R.T + t``."""

    alpha: np.ndarray
    beta: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray


@dataclass
class MeshBasis:
    """Mean mesh ``(478, 3)``, shape basis ``(Ks, 478 * 3)``, expression basis ``(Ke, 478 * 3)`` (orthonormal rows)."""

    mean: np.ndarray
    shape: np.ndarray
    expression: np.ndarray
    shape_sd: np.ndarray
    expression_sd: np.ndarray

    def fit(self, mesh: np.ndarray, ridge: float = 1e-3) -> MeshFit:
        m = np.asarray(mesh, np.float64)[:, :3]
        if m.shape != self.mean.shape:
            raise ConfigError(f"expected a {self.mean.shape} mesh, got {m.shape}")
        basis = np.concatenate([self.shape, self.expression])
        a = basis @ basis.T + ridge * np.eye(len(basis))  # a touch of ridge keeps the solve stable
        model = self.mean
        for _ in range(4):  # alternate: the pose against the current fit, then the coefficients in that pose
            s, r, t = procrustes(model, m)
            canon = ((m - t) @ r) / s  # into the model's frame
            coef = np.linalg.solve(a, basis @ (canon - self.mean).reshape(-1))
            model = self.mean + (coef @ basis).reshape(-1, 3)
        k = len(self.shape)
        return MeshFit(coef[:k], coef[k:], s, r, t)

    def mesh(self, fit: MeshFit) -> np.ndarray:
        canon = self.mean + (fit.alpha @ self.shape + fit.beta @ self.expression).reshape(-1, 3)
        return fit.scale * canon @ fit.rotation.T + fit.translation

    def combine(self, source: MeshFit, target: MeshFit) -> np.ndarray:
        """The source's shape with the target's expression, in the target's pose (``(478, 3)``, frame units)."""
        return self.mesh(
            MeshFit(source.alpha, target.beta, target.scale, target.rotation, target.translation)
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        from portraitfx.models.load import save_safetensors

        tensors = {k: np.ascontiguousarray(getattr(self, k), np.float32) for k in
                   ("mean", "shape", "expression", "shape_sd", "expression_sd")}  # fmt: skip
        return save_safetensors(path, tensors, {"portraitfx": "mesh-basis"})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MeshBasis:
        from safetensors.numpy import load_file

        from portraitfx.models.load import _wrong_kind, resolve_model, sniff_model_format

        p = resolve_model(path)
        kind = sniff_model_format(p)
        if kind != "safetensors":
            raise _wrong_kind(p, kind, "a safetensors mesh basis")
        t = load_file(str(p))
        try:
            return cls(
                *(
                    t[k].astype(np.float64)
                    for k in ("mean", "shape", "expression", "shape_sd", "expression_sd")
                )
            )
        except KeyError as err:
            raise ModelError(f"'{p}' is not a mesh basis (missing {err})") from None


def build_basis(
    meshes: np.ndarray, identities: list[str] | np.ndarray, *, k_shape: int = 20, k_expression: int = 20
) -> MeshBasis:
    """PCA shape and expression bases from ``(N, 478, 3)`` meshes and who each one is (see the module)."""
    m = np.asarray(meshes, np.float64)[..., :3]
    ids = np.asarray(identities)
    if m.ndim != 3 or len(m) != len(ids) or len(m) < 3:
        raise ConfigError("need at least 3 meshes, each with an identity")
    people = sorted(set(ids.tolist()))
    if len(people) < 2:
        raise ConfigError("need meshes of at least 2 people (shape is what differs between them)")
    # generalised Procrustes: align to the running mean a few times
    ref = m[0] - m[0].mean(0)
    aligned = m.copy()
    for _ in range(4):
        for i in range(len(m)):
            s, r, t = procrustes(m[i], ref)
            aligned[i] = s * m[i] @ r.T + t
        ref = aligned.mean(0)
        ref = ref - ref.mean(0)
        ref = ref / np.sqrt((ref**2).sum(1).mean())
    mean = aligned.mean(0)
    person_mean = {p: aligned[ids == p].mean(0) for p in people}
    shape_data = np.stack([person_mean[p] - mean for p in people]).reshape(len(people), -1)
    _, sv, vt = np.linalg.svd(shape_data, full_matrices=False)
    ks = min(k_shape, len(people) - 1, int((sv > 1e-9 * sv.max()).sum()))
    shape = vt[:ks]
    shape_sd = sv[:ks] / np.sqrt(max(len(people) - 1, 1))
    expr_data = np.stack([aligned[i] - person_mean[ids[i]] for i in range(len(m))]).reshape(len(m), -1)
    expr_data = expr_data - (expr_data @ shape.T) @ shape  # what shape does not explain
    _, sv, vt = np.linalg.svd(expr_data, full_matrices=False)
    keep = int((sv > 1e-6 * max(sv.max(), 1e-12)).sum())
    ke = min(k_expression, keep)
    expression = vt[:ke]
    expression_sd = sv[:ke] / np.sqrt(max(len(m) - 1, 1))
    return MeshBasis(mean, shape, expression, shape_sd, expression_sd)
