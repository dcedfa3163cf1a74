"""The swap network's losses (seed 004), each a plain function with a known answer (see the tests).

* :func:`identity_loss`: ``1 - cos`` between the output's and the source's identity vectors;
* :func:`reconstruction_loss`: L1 to the target for samples whose source is the
  target's own person (then the right answer is the target itself), zero for others;
* :func:`landmark_loss`: L1 between predicted and wanted landmarks (the morphable
  model's source-shape-with-target-expression landmarks);
* :func:`flow_landmark_loss`: the flow, read at the wanted landmarks, must point back
  to the target's own landmarks (a backward warp brings the target's face there);
* :func:`attribute_loss`: the attribute encoder's features of the output against the
  target's, at every scale (pose, expression, lighting kept);
* :func:`contextual_loss`: the contextual loss (Mechrez et al. 2018) between feature
  sets, for skin tone: every output feature should have a close match in the target's;
* :func:`tv_loss`: total variation of the flow (smoothness);
* :func:`hinge_d` / :func:`hinge_g`: multi-scale hinge adversarial losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "attribute_loss",
    "contextual_loss",
    "flow_landmark_loss",
    "hinge_d",
    "hinge_g",
    "identity_loss",
    "landmark_loss",
    "reconstruction_loss",
    "tv_loss",
]


def identity_loss(output_id: torch.Tensor, source_id: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(output_id, source_id, dim=1)).mean()


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Per-sample L1, counted for the samples flagged ``same`` (bool ``(N,)``), averaged over all samples.

    (An average over every sample, not over the flagged ones: the same in one process
    as split over several.)
    """
    per_sample = (output - target).abs().flatten(1).mean(1)
    return (per_sample * same.to(per_sample.dtype)).mean()


def landmark_loss(predicted: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    return (predicted - wanted).abs().mean()


def flow_landmark_loss(flow: torch.Tensor, wanted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``flow`` ``(N, 2, S, S)`` in pixels; ``wanted``, ``target`` ``(N, K, 2)`` landmark pixels.

    A backward warp reads the target at ``q + flow(q)``; for the target's landmark ``p``
    to appear at the wanted place ``q``, ``flow(q)`` must be ``p - q``.
    """
    s = flow.shape[-1]
    grid = ((wanted + 0.5) / s * 2 - 1)[:, :, None, :]  # (N, K, 1, 2)
    at_q = F.grid_sample(flow, grid, mode="bilinear", padding_mode="border", align_corners=False)[..., 0]
    return (at_q.transpose(1, 2) - (target - wanted)).abs().mean()


def attribute_loss(
    output_feats: Sequence[torch.Tensor], target_feats: Sequence[torch.Tensor]
) -> torch.Tensor:
    terms = [(a - b).square().mean() for a, b in zip(output_feats, target_feats, strict=True)]
    return torch.stack(terms).mean() / 2


def contextual_loss(
    x: torch.Tensor, y: torch.Tensor, bandwidth: float = 0.5, eps: float = 1e-5
) -> torch.Tensor:
    """Contextual loss between feature maps ``(N, C, H, W)`` (compared as sets of C-vectors)."""
    mu = y.mean(dim=(2, 3), keepdim=True)  # per sample (the same however a batch is split)
    xf = F.normalize((x - mu).flatten(2), dim=1)  # (N, C, P)
    yf = F.normalize((y - mu).flatten(2), dim=1)
    dist = 1 - torch.bmm(xf.transpose(1, 2), yf)  # cosine distances (N, Px, Py)
    rel = dist / (dist.min(dim=2, keepdim=True).values + eps)
    w = torch.exp((1 - rel) / bandwidth)
    cx = w / w.sum(dim=2, keepdim=True)
    score = cx.max(dim=1).values.mean(dim=1)  # for each y feature, its best match among x's
    return -torch.log(score + eps).mean()


def tv_loss(flow: torch.Tensor) -> torch.Tensor:
    return (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (
        flow[..., :, 1:] - flow[..., :, :-1]
    ).abs().mean()


def hinge_d(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True)),
               start=real[0].new_zeros([]))  # fmt: skip


def hinge_g(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((-f.mean() for f in fake), start=fake[0].new_zeros([]))
