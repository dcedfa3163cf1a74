"""Hair analysis of one face: a soft hair matte, the hairline on the forehead and a density map.

How the matte is made (all on a crop around the head, analysed at about 384 px and
refined at the photo's own resolution):

1. **Geometry.** MediaPipe's person mask, inside a head-shaped ellipse built from the
   face mesh, minus the face below the brows and the neck below the mouth.
2. **Colour.** Three colour models in Lab (k-means clusters turned into Gaussians) are
   fitted to this photo: hair (where the geometry is confident), skin (the cheeks and
   nose) and the rest (background, neck, clothes). Each pixel's hair probability is
   the hair model's share of the three likelihoods.
3. **Matte.** Geometry times colour, then a fast guided filter: its linear
   coefficients are fitted at the analysis size and applied to the full-resolution
   luminance, so strands and the soft hair edge come out at the photo's resolution.

The **hairline** is found along columns across the forehead: walking up from the
brows, the first point where the matte turns to hair and stays hair. The **density**
map is the matte's local share of the hair's closed region: thin areas, where scalp
shows through, are low.

Example:
    >>> a = analyze_hair(image, face)           # doctest: +SKIP
    >>> a.alpha.shape == (a.box[3] - a.box[1], a.box[2] - a.box[0])
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from portraitfx.errors import HairNotFoundError
from portraitfx.face import topology as T
from portraitfx.face.regions import _up_vector, face_frame, region_mask
from portraitfx.face.types import Face

__all__ = ["ColourModel", "HairAnalysis", "analyze_hair", "edit_region", "head_box", "lab"]

WORK_SIZE = 384
MIN_EYE_DISTANCE = 24.0
MAX_YAW = 50.0
HAIRLINE_COLUMNS = 31


def lab(rgb: np.ndarray) -> np.ndarray:
    """``uint8`` (or float in [0, 1]) RGB as float32 CIE Lab (L in [0, 100])."""
    x = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    return cv2.cvtColor(x, cv2.COLOR_RGB2Lab)


@dataclass
class ColourModel:
    """A small Gaussian mixture fitted with k-means (means, covariances, weights).

    Features are Lab colour plus, for the hair models, a texture value (the local
    standard deviation of lightness: strands are busy, skin is smooth)."""

    means: np.ndarray
    inv_covs: np.ndarray
    log_norms: np.ndarray

    @classmethod
    def fit(cls, samples: np.ndarray, k: int, seed: int = 0) -> ColourModel:
        dims = samples.shape[-1]
        samples = np.asarray(samples, np.float32).reshape(-1, dims)
        k = max(1, min(k, len(samples) // 20))
        if k > 1:
            cv2.setRNGSeed(seed)
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
            _, labels, _ = cv2.kmeans(samples, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
            labels = labels.ravel()
        else:
            labels = np.zeros(len(samples), np.int64)
        means, invs, norms = [], [], []
        for j in range(k):
            part = samples[labels == j]
            if len(part) < 4:
                continue
            mu = part.mean(0)
            cov = np.cov(part.T) + np.diag(
                [4.0, 2.0, 2.0, 1.0][:dims]
            )  # floor: a flat region still has some spread
            _, logdet = np.linalg.slogdet(cov)
            means.append(mu)
            invs.append(np.linalg.inv(cov))
            norms.append(np.log(len(part) / len(samples)) - 0.5 * logdet)
        return cls(np.array(means, np.float32), np.array(invs, np.float32), np.array(norms, np.float32))

    def _distances(self, pixels: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of every pixel to every component, ``(K, N)``.

        With ``inv = W W^T`` (Cholesky), ``d^T inv d = |d W|^2``: one small matrix
        product per component instead of a quadratic form per pixel.
        """
        flat = np.ascontiguousarray(pixels.reshape(-1, pixels.shape[-1]), dtype=np.float32)
        out = np.empty((len(self.means), len(flat)), np.float32)
        for k, (mu, inv) in enumerate(zip(self.means, self.inv_covs, strict=True)):
            w = np.linalg.cholesky(inv.astype(np.float64)).astype(np.float32)
            z = (flat - mu) @ w
            np.einsum("ni,ni->n", z, z, out=out[k])
        return out

    def log_likelihood(self, pixels: np.ndarray) -> np.ndarray:
        """Per-pixel log-likelihood (up to a shared constant) of ``(..., D)`` features."""
        terms = self.log_norms[:, None] - 0.5 * self._distances(pixels)
        return np.logaddexp.reduce(terms, axis=0).reshape(pixels.shape[:-1])

    def mahalanobis(self, pixels: np.ndarray) -> np.ndarray:
        """Distance of each pixel to the nearest component (in standard deviations)."""
        return np.sqrt(self._distances(pixels).min(0)).reshape(pixels.shape[:-1])


@dataclass
class HairAnalysis:
    """The hair of one face.

    Attributes:
        box: ``(x0, y0, x1, y1)`` the head crop in the image; every full-resolution
            map below covers exactly this box.
        scale: analysis pixels per image pixel.
        alpha: soft hair matte at full resolution (box-sized float32 in [0, 1]).
        alpha_work: the matte at the analysis size.
        geometry_work: where hair may be at all (analysis size).
        support_work: the hair's closed region, holes of thin hair included.
        density_work: 1 where hair is dense, lower where scalp shows (0 outside the support).
        hairline: ``(K, 2)`` image points of the hairline across the forehead (NaN where none).
        hairline_height: ``(K,)`` their heights above the brows in image pixels (NaN where none).
        hair_thickness: ``(K,)`` how far hair reaches above each hairline point, image pixels.
        columns: ``(K,)`` each column's offset across the face, in eye distances.
        landmarks: the face mesh in image pixels.
        up: unit vector from chin to forehead (image coordinates).
        brow_top: the brows' highest point along ``up`` (image coordinates, a dot product).
        eye_distance: inter-ocular distance in image pixels.
        hair_lab: median Lab colour of confident hair.
        skin_lab: median Lab colour of the cheeks.
        hair_model, skin_model: the colour models fitted to this photo.
    """

    box: tuple[int, int, int, int]
    scale: float
    alpha: np.ndarray
    alpha_work: np.ndarray
    geometry_work: np.ndarray
    support_work: np.ndarray
    density_work: np.ndarray
    hairline: np.ndarray
    hairline_height: np.ndarray
    hair_thickness: np.ndarray
    columns: np.ndarray
    landmarks: np.ndarray
    up: np.ndarray
    brow_top: float
    eye_distance: float
    hair_lab: np.ndarray
    skin_lab: np.ndarray
    hair_model: ColourModel = field(repr=False)
    skin_model: ColourModel = field(repr=False)

    @property
    def across(self) -> np.ndarray:
        """Unit vector along the eye line (toward the face's left eye)."""
        return np.array([-self.up[1], self.up[0]], np.float32)

    @property
    def forehead_height(self) -> float:
        """Median height of the hairline above the brows, image pixels (NaN without a hairline)."""
        h = self.hairline_height[np.isfinite(self.hairline_height)]
        return float(np.median(h)) if h.size else float("nan")

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the full-resolution maps."""
        return self.box[3] - self.box[1], self.box[2] - self.box[0]

    def full(self, work: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """A map at the analysis size resized to the box at full resolution."""
        h, w = self.shape
        return cv2.resize(work.astype(np.float32), (w, h), interpolation=interpolation)

    def density(self) -> np.ndarray:
        """The density map at full resolution (box-sized)."""
        return self.full(self.density_work)

    def coverage(self) -> float:
        """Hair area over the area of the face oval (a rough 'how much hair' figure)."""
        h, w = self.alpha_work.shape
        lm = (self.landmarks[:, :2] - np.array(self.box[:2], np.float32)) * self.scale
        face = region_mask((h, w), lm, "face")
        return float(self.alpha_work.sum() / max(face.sum(), 1.0))


def head_box(landmarks: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The crop that holds the head and its hair: an ellipse around the skull, padded, clipped to the image."""
    eye_mid, iod, up, across, face_h = face_frame(landmarks)
    centre = eye_mid + up * face_h * 0.45
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    pts = centre + np.outer(np.cos(t), across) * iod * 2.6 + np.outer(np.sin(t), up) * face_h * 1.9
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    h, w = int(shape[0]), int(shape[1])
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def _geometry(shape: tuple[int, int], lm: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, float]:
    """Where hair may be, soft, at the analysis size; also the brow top along ``up``."""
    h, w = shape
    eye_mid, iod, up, across, face_h = face_frame(lm)
    centre = eye_mid + up * face_h * 0.45
    head = np.zeros((h, w), np.uint8)
    angle = float(np.degrees(np.arctan2(across[1], across[0])))
    axes = (round(iod * 2.3), round(face_h * 1.75))
    cv2.ellipse(head, (round(float(centre[0])), round(float(centre[1]))), axes, angle, 0, 360, 255, -1)
    head_f = cv2.GaussianBlur(head.astype(np.float32) / 255.0, (0, 0), iod * 0.08)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    height = xx * up[0] + yy * up[1]
    side = xx * across[0] + yy * across[1]
    brows = lm[T.RIGHT_EYEBROW + T.LEFT_EYEBROW, :2]
    brow_top = float((brows @ up).max())
    face = region_mask((h, w), lm, "face")
    # the face below the brows is never hair; above them the colour decides (low hairlines, bangs)
    below_brows = np.clip((brow_top + 0.05 * iod - height) / (0.1 * iod), 0.0, 1.0)
    mouth = lm[[T.MOUTH_RIGHT, T.MOUTH_LEFT], :2].mean(0)
    under_mouth = height < float(mouth @ up)
    beside = np.abs(side - float(mouth @ across)) > iod * 1.25
    neck = (under_mouth & ~beside).astype(np.float32)
    geometry = person * head_f * (1.0 - face * below_brows) * (1.0 - neck)
    return np.clip(geometry, 0.0, 1.0), brow_top


def _features(lab_img: np.ndarray, iod: float) -> np.ndarray:
    """Lab plus texture: the local standard deviation of lightness over about 4 % of the eye distance."""
    k = max(int(round(0.04 * iod)) * 2 + 1, 3)
    lum = lab_img[..., 0]
    mean = cv2.blur(lum, (k, k))
    var = cv2.blur(lum * lum, (k, k)) - mean * mean
    texture = 0.5 * np.sqrt(np.maximum(var, 0.0))  # half weight: colour leads, texture breaks ties
    return np.concatenate([lab_img, texture[..., None]], -1).astype(np.float32)


def _sample(mask: np.ndarray, lab_img: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    pts = lab_img[mask]
    if len(pts) > limit:
        pts = pts[rng.choice(len(pts), limit, replace=False)]
    return pts


def _guided_coefficients(
    guide: np.ndarray, p: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's per-pixel linear coefficients ``(a, b)`` (``q = a * I + b``), box-averaged."""
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(p)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * p) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a), box(b)


def _hairline(
    alpha: np.ndarray, lm: np.ndarray, up: np.ndarray, brow_top: float, iod: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column across the forehead: base point at the brow line, hairline height (NaN if
    none), thickness of the hair above the hairline, offset across the face."""
    across = np.array([-up[1], up[0]], np.float32)
    r, l_ = T.eye_centers(lm)
    eye_mid = (r + l_) / 2
    base_mid = eye_mid + up * (brow_top - float(eye_mid @ up))
    offsets = np.linspace(-0.95, 0.95, HAIRLINE_COLUMNS).astype(np.float32)
    steps = np.arange(0.0, 2.6 * iod, 0.5, dtype=np.float32)
    bases = base_mid[None] + offsets[:, None] * iod * across[None]
    pts = bases[:, None, :] + steps[None, :, None] * up[None, None, :]
    prof = cv2.remap(
        alpha.astype(np.float32),
        np.ascontiguousarray(pts[..., 0]),
        np.ascontiguousarray(pts[..., 1]),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    heights = np.full(len(offsets), np.nan, np.float32)
    thickness = np.zeros(len(offsets), np.float32)
    run = max(int(0.08 * iod / 0.5), 2)  # hair must last this long to count (not a stray strand)
    top = int(1.7 * iod / 0.5)  # a hairline higher than this is no hairline
    hair = prof >= 0.5
    for i in range(len(offsets)):
        # runs of hair along the column; the hairline is where the longest run (the hair
        # mass itself, not a dark patch of forehead below it) begins
        row = np.concatenate([[False], hair[i], [False]])
        edges = np.flatnonzero(np.diff(row.astype(np.int8)))
        starts, ends = edges[::2], edges[1::2]
        keep = (ends - starts >= run) & (starts < top)
        if not keep.any():
            continue
        starts, ends = starts[keep], ends[keep]
        k = int(np.argmax(ends - starts))
        heights[i] = steps[starts[k]]
        thickness[i] = (ends[k] - starts[k]) * 0.5
    return bases, heights, thickness, offsets


def analyze_hair(
    image: np.ndarray,
    face: Face,
    *,
    person: np.ndarray | None = None,
    segmenter: object | None = None,
    work_size: int = WORK_SIZE,
) -> HairAnalysis:
    """Analyse the hair of ``face`` in ``image`` (``H x W x 3`` uint8 RGB).

    Args:
        person: the person mask of the whole image (``H x W`` float in [0, 1]), if
            already known; else it is computed on the head crop with ``segmenter``
            (a :class:`~portraitfx.face.segment.PersonSegmenter`; a new one when None).
        work_size: longer side of the analysis crop, pixels.

    Raises:
        HairNotFoundError: the face is too small or in profile, no hair is found
            (a bald head, or a hat or scarf covering it), or no hairline is visible.
    """
    lm = np.asarray(face.landmarks, np.float32)
    iod_img = float(np.linalg.norm(np.subtract(*T.eye_centers(lm))))
    if iod_img < MIN_EYE_DISTANCE:
        raise HairNotFoundError(
            f"the face is too small to edit its hair (eyes {iod_img:.0f} px apart; "
            f"at least {MIN_EYE_DISTANCE:.0f} px needed)"
        )
    if abs(face.pose.yaw) > MAX_YAW:
        raise HairNotFoundError(
            f"the face is in profile (turned {abs(face.pose.yaw):.0f} degrees); "
            f"hair edits need a face within {MAX_YAW:.0f} degrees of frontal"
        )
    box = head_box(lm, image.shape)
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    scale = min(1.0, work_size / max(x1 - x0, y1 - y0))
    ww, wh = max(round((x1 - x0) * scale), 1), max(round((y1 - y0) * scale), 1)
    work = cv2.resize(crop, (ww, wh), interpolation=cv2.INTER_AREA) if scale < 1 else crop.copy()
    lm_w = (lm[:, :2] - np.array([x0, y0], np.float32)) * scale
    if person is None:
        from portraitfx.face.segment import PersonSegmenter

        seg = segmenter if segmenter is not None else PersonSegmenter()
        try:
            person_w = seg(work)  # type: ignore[operator]
        finally:
            if segmenter is None:
                seg.close()  # type: ignore[attr-defined]
    else:
        person_w = cv2.resize(person[y0:y1, x0:x1].astype(np.float32), (ww, wh), interpolation=cv2.INTER_AREA)
    geometry, brow_top_w = _geometry((wh, ww), lm_w, person_w)
    iod = iod_img * scale
    up = _up_vector(lm_w)
    lab_w = lab(work)
    feats = _features(lab_w, iod)
    rng = np.random.default_rng(0)
    # colour models of this photo: skin (cheeks and nose, then the matching forehead
    # band just above the brows), hair (confident geometry off the face), the rest
    skin = region_mask((wh, ww), lm_w, "skin", forehead=0.0)
    yy, xx = np.mgrid[0:wh, 0:ww].astype(np.float32)
    height = xx * up[0] + yy * up[1]
    skin_seed = (cv2.erode(skin, np.ones((3, 3), np.uint8)) > 0.9) & (height < brow_top_w - 0.1 * iod)
    if skin_seed.sum() < 50:
        raise HairNotFoundError("the face is too small or too hidden to tell its skin from its hair")
    skin_model = ColourModel.fit(_sample(skin_seed, feats, 4000, rng), 2)
    oval = region_mask((wh, ww), lm_w, "face") > 0.5
    band = oval & (height > brow_top_w + 0.05 * iod) & (height < brow_top_w + 0.25 * iod)
    band &= skin_model.mahalanobis(feats) < 3.0
    if band.sum() >= 20:
        skin_seed = skin_seed | band
        skin_model = ColourModel.fit(_sample(skin_seed, feats, 4000, rng), 3)
    off_face = region_mask((wh, ww), lm_w, "face_forehead", forehead=0.3) < 0.5
    hair_seed = (geometry > 0.7) & off_face
    if hair_seed.sum() < 50:
        raise HairNotFoundError("no hair found around the face (is the head bald or covered?)")
    # a "hair" region that is mostly skin-coloured is a bald head or a skin-coloured cover
    # (colour alone: the texture at a skin patch's edge must not make it look like hair)
    skin_colour = ColourModel.fit(_sample(skin_seed, lab_w, 4000, rng), 3)
    seed_skin_distance = skin_colour.mahalanobis(lab_w[hair_seed])
    skin_like = float((seed_skin_distance < 1.5).mean())
    if skin_like > 0.5:
        raise HairNotFoundError(
            f"no hair found: {skin_like:.0%} of the head above the face looks like skin (a bald head?)"
        )
    hair_seed[hair_seed] = seed_skin_distance >= 2.5  # ears and forehead that slipped in
    rest_seed = (person_w < 0.2) | ((geometry < 0.05) & (person_w > 0.5) & ~(skin > 0))
    hair_model = ColourModel.fit(_sample(hair_seed, feats, 6000, rng), 4)
    ll_hair = hair_model.log_likelihood(feats)
    ll_skin = skin_model.log_likelihood(feats)
    others = [ll_skin]
    if rest_seed.sum() >= 50:
        rest_model = ColourModel.fit(_sample(rest_seed, feats, 6000, rng), 4)
        others.append(rest_model.log_likelihood(feats))
    ll_other = np.logaddexp.reduce(np.stack(others), axis=0)
    p_colour = 1.0 / (1.0 + np.exp(np.clip(ll_other - ll_hair, -30, 30)))
    alpha_w = geometry * p_colour
    # ears: beside the face between mouth and brows, anything skin-coloured is not hair
    mouth_h = float(lm_w[[T.MOUTH_RIGHT, T.MOUTH_LEFT], :2].mean(0) @ up)
    ears = (~oval) & (height > mouth_h) & (height < brow_top_w)
    ears &= cv2.dilate(oval.astype(np.uint8), np.ones((max(int(0.5 * iod), 3),) * 2, np.uint8)) > 0
    alpha_w[ears & (skin_colour.mahalanobis(lab_w) < 3.5)] = 0.0
    alpha_w = cv2.GaussianBlur(alpha_w.astype(np.float32), (0, 0), max(0.6, iod * 0.01))
    # keep the hair attached to the head: drop parts that reach no confident hair
    n, labels = cv2.connectedComponents((alpha_w > 0.5).astype(np.uint8), connectivity=8)
    if n > 1:
        attached = np.unique(labels[hair_seed & (alpha_w > 0.5)])
        stray = (labels > 0) & ~np.isin(labels, attached)
        alpha_w[cv2.dilate(stray.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] *= 0.0
    alpha_w = np.clip(alpha_w, 0.0, 1.0).astype(np.float32)
    coverage_face = region_mask((wh, ww), lm_w, "face")
    if alpha_w.sum() < 0.12 * coverage_face.sum():
        raise HairNotFoundError("no hair found around the face (is the head bald or covered by a hat?)")
    # closed hair region and density (thin areas: the matte's local share of the region)
    k = max(int(0.3 * iod) | 1, 3)
    support = cv2.morphologyEx(
        (alpha_w > 0.5).astype(np.uint8),
        cv2.MORPH_CLOSE,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)),
    ).astype(np.float32)
    support *= (geometry > 0.3).astype(np.float32)
    sigma = max(iod * 0.025, 0.8)
    num = cv2.GaussianBlur(alpha_w * support, (0, 0), sigma)
    den = cv2.GaussianBlur(support, (0, 0), sigma)
    density = np.where(support > 0, np.clip(num / np.maximum(den, 1e-3), 0.0, 1.0), 0.0).astype(np.float32)
    # full-resolution matte: fast guided filter on the luminance
    gray_w = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    a, b = _guided_coefficients(gray_w, alpha_w, radius=max(int(round(iod * 0.04)), 1), eps=2e-3)
    h, w = y1 - y0, x1 - x0
    if scale < 1:
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32) * (1.0 / 255.0)
        a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        gray = gray_w
    alpha = np.clip(a * gray + b, 0.0, 1.0)
    # the filter only refines the hair's edge: nothing far from the matte, nothing where hair cannot be
    k = max(int(0.06 * iod) | 1, 3)
    near = cv2.dilate((alpha_w > 0.25).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    near = cv2.GaussianBlur(near.astype(np.float32), (0, 0), max(k / 4, 0.5)) * np.minimum(
        geometry * 4.0, 1.0
    )
    alpha *= cv2.resize(near, (w, h), interpolation=cv2.INTER_LINEAR) if scale < 1 else near
    alpha[alpha < 1.0 / 512] = 0.0  # below what an 8-bit blend can show
    bases_w, heights_w, thickness_w, offsets = _hairline(alpha_w, lm_w, up, brow_top_w, iod)
    if np.isfinite(heights_w).sum() < 0.3 * len(heights_w):
        raise HairNotFoundError("no hairline found above the forehead (is the hair covered by a hat?)")
    bases = bases_w / scale + np.array([x0, y0], np.float32)
    heights = heights_w / scale
    hairline = bases + np.nan_to_num(heights)[:, None] * up[None]
    hairline[~np.isfinite(heights)] = np.nan
    hair_conf = alpha_w > 0.8
    return HairAnalysis(
        box=box,
        scale=scale,
        alpha=alpha.astype(np.float32),
        alpha_work=alpha_w,
        geometry_work=geometry.astype(np.float32),
        support_work=support,
        density_work=density,
        hairline=hairline.astype(np.float32),
        hairline_height=heights.astype(np.float32),
        hair_thickness=(thickness_w / scale).astype(np.float32),
        columns=offsets,
        landmarks=lm,
        up=up,
        brow_top=brow_top_w / scale + float(np.array([x0, y0], np.float32) @ up),
        eye_distance=iod_img,
        hair_lab=np.median(lab_w[hair_conf], 0) if hair_conf.any() else np.median(lab_w[hair_seed], 0),
        skin_lab=np.median(lab_w[skin_seed], 0),
        hair_model=hair_model,
        skin_model=skin_model,
    )


def edit_region(a: HairAnalysis, shape: tuple[int, ...]) -> np.ndarray:
    """``H x W`` bool: where any hair edit of this face may change pixels -- where hair may
    be, the forehead above the brows, and a margin of a tenth of the eye distance."""
    h, w = a.alpha_work.shape
    lm_w = (a.landmarks[:, :2] - np.array(a.box[:2], np.float32)) * a.scale
    forehead = region_mask((h, w), lm_w, "forehead", forehead=0.8) > 0
    allowed = (a.geometry_work > 0.02) | forehead
    k = max(int(0.1 * a.eye_distance * a.scale) * 2 + 1, 3)
    allowed = cv2.dilate(allowed.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    x0, y0, x1, y1 = a.box
    out = np.zeros(shape[:2], bool)
    out[y0:y1, x0:x1] = cv2.resize(allowed, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST) > 0
    return out
