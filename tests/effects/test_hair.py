"""Hair analysis and the model-free hair edits, on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portraitfx.effects.hair import (
    add_bangs,
    adjust_hairline,
    analyze_hair,
    edit_region,
    fill_sparse,
    parse_colour,
    recolor,
    rgb_to_lab,
)
from portraitfx.effects.hair.analysis import lab
from portraitfx.errors import ConfigError, HairNotFoundError
from portraitfx.face.identity import SAME_PERSON_DISTANCE, FaceEmbedder, identity_distance

PEOPLE = ("astronaut", "obama", "biden")


@pytest.fixture(scope="module")
def faces(analyzer, astronaut, obama, biden):
    images = {"astronaut": astronaut, "obama": obama, "biden": biden}
    return {name: (img, analyzer.analyze(img)[0]) for name, img in images.items()}


@pytest.fixture(scope="module")
def hair(faces):
    return {name: analyze_hair(img, face) for name, (img, face) in faces.items()}


@pytest.fixture(scope="module")
def embedder():
    with FaceEmbedder() as e:
        yield e


def _central(a) -> np.ndarray:
    return np.abs(a.columns) <= 0.5


# --------------------------------------------------------------------------- analysis


@pytest.mark.parametrize("name", PEOPLE)
def test_analysis_finds_hair_above_the_forehead(hair, faces, name):
    a = hair[name]
    img, face = faces[name]
    x0, y0, x1, y1 = a.box
    assert a.alpha.shape == (y1 - y0, x1 - x0)
    assert a.alpha.min() >= 0.0 and a.alpha.max() <= 1.0
    # the hairline is found across the middle of the forehead, between the brows and the top of the head
    central = a.hairline_height[_central(a)]
    assert np.isfinite(central).all()
    assert 0.15 * a.eye_distance < np.median(central) < 1.3 * a.eye_distance
    # the matte is hair: above the hairline it is high, on the cheeks it is zero
    lm = face.landmarks
    cheek = lm[[50, 280], :2].astype(int)
    for x, y in cheek:
        assert a.alpha[y - y0, x - x0] < 0.05
    top = a.hairline[_central(a)] + a.up * 0.12 * a.eye_distance
    vals = [a.alpha[int(round(p[1])) - y0, int(round(p[0])) - x0] for p in top]
    assert np.median(vals) > 0.6
    # the matte never strays outside the edit region
    region = edit_region(a, img.shape)[y0:y1, x0:x1]
    assert a.alpha[~region].max() == 0.0


def test_matte_edge_is_soft_at_full_resolution(analyzer, astronaut):
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    face = analyzer.analyze(big)[0]
    a = analyze_hair(big, face)
    assert a.scale < 0.7  # analysed small ...
    assert a.alpha.shape == (a.box[3] - a.box[1], a.box[2] - a.box[0])  # ... refined at full size
    frac = float(((a.alpha > 0.05) & (a.alpha < 0.95)).mean())
    assert 0.005 < frac < 0.25  # a soft edge, not a hard cut and not a blur everywhere


def test_density_is_low_where_scalp_shows(analyzer, astronaut):
    img, spots = _thinned(analyzer, astronaut)
    a = analyze_hair(img, analyzer.analyze(img)[0])
    x0, y0 = a.box[:2]
    dens = a.density()
    inside = dens[spots[y0 : a.box[3], x0 : a.box[2]]]
    dense = a.alpha > 0.9
    assert inside.mean() < dens[dense].mean() - 0.2


# --------------------------------------------------------------------------- exactness


EDITS = {
    "recolor": lambda img, a: recolor(img, a, rgb_to_lab(parse_colour("rose"))),
    "hairline_down": lambda img, a: adjust_hairline(img, a, 0.3),
    "hairline_up": lambda img, a: adjust_hairline(img, a, -0.25),
    "fill": lambda img, a: fill_sparse(img, a, threshold=0.95),
    "bangs": lambda img, a: add_bangs(img, a),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("name", ("obama", "biden"))
def test_edits_change_nothing_outside_their_region(faces, hair, edit, name):
    img, _ = faces[name]
    before = img.copy()
    out = EDITS[edit](img, hair[name])
    assert np.array_equal(img, before)  # the input is never modified
    assert out.image.shape == img.shape and out.image.dtype == np.uint8
    assert np.array_equal(out.image[~out.region], img[~out.region])  # exactly
    assert out.region.any() and (out.image != img).any()
    allowed = edit_region(hair[name], img.shape)
    assert not (out.region & ~allowed).any()


# --------------------------------------------------------------------------- recolour


def _hue_deg(ab: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(ab[..., 1].mean(), ab[..., 0].mean())))


def _local_std(lum: np.ndarray) -> np.ndarray:
    mean = cv2.blur(lum, (3, 3))
    return np.sqrt(np.maximum(cv2.blur(lum * lum, (3, 3)) - mean * mean, 0.0))


@pytest.mark.parametrize("colour", ("#c02060", "blue", "copper"))
@pytest.mark.parametrize("name", PEOPLE)
def test_recolour_reaches_the_hue_and_keeps_the_texture(faces, hair, embedder, colour, name):
    img, face = faces[name]
    a = hair[name]
    target = rgb_to_lab(parse_colour(colour))
    out = recolor(img, a, target).image
    x0, y0, x1, y1 = a.box
    sure = a.alpha > 0.9
    before, after = lab(img[y0:y1, x0:x1]), lab(out[y0:y1, x0:x1])
    diff = (_hue_deg(after[sure][:, 1:]) - _hue_deg(target[None, 1:]) + 180) % 360 - 180
    assert abs(diff) < 15, f"hair hue {diff:.1f} degrees off the target"
    ratio = _local_std(after[..., 0])[sure].mean() / _local_std(before[..., 0])[sure].mean()
    assert 0.8 < ratio < 1.25, f"luminance texture changed by {ratio:.2f}x"
    d = identity_distance(embedder(img, face), embedder(out, face))
    assert d < SAME_PERSON_DISTANCE / 2


def test_recolour_strength_zero_changes_nothing(faces, hair):
    img, _ = faces["obama"]
    out = recolor(img, hair["obama"], rgb_to_lab(parse_colour("blonde")), strength=0.0)
    assert np.array_equal(out.image, img)


def test_colour_names_and_codes():
    assert parse_colour("#c02060") == (0xC0, 0x20, 0x60)
    assert parse_colour("c26") == (0xCC, 0x22, 0x66)
    assert parse_colour("Dark Brown") == parse_colour("dark-brown")
    with pytest.raises(ConfigError, match="hex code"):
        parse_colour("sunset")


# --------------------------------------------------------------------------- hairline


@pytest.mark.parametrize("amount", (0.3, -0.25))
@pytest.mark.parametrize("name", ("obama", "biden"))
def test_hairline_moves_by_the_requested_amount(analyzer, faces, hair, embedder, name, amount):
    img, face = faces[name]
    a = hair[name]
    out = adjust_hairline(img, a, amount).image
    after = analyze_hair(out, analyzer.analyze(out)[0])
    c = _central(a)
    forehead = float(np.median(a.hairline_height[c]))
    moved = float(np.median(a.hairline_height[c] - after.hairline_height[c]))
    want = amount * forehead
    assert abs(moved - want) <= 0.15 * abs(want), f"moved {moved:.1f} px, asked {want:.1f} px"
    d = identity_distance(embedder(img, face), embedder(out, face))
    assert d < SAME_PERSON_DISTANCE


def test_hairline_amount_is_checked(faces, hair):
    with pytest.raises(ConfigError, match="amount"):
        adjust_hairline(faces["obama"][0], hair["obama"], 0.9)


# --------------------------------------------------------------------------- sparse fill


def _thinned(analyzer, image: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The photo with skin-coloured spots in its hair (scalp showing through), and where they are."""
    face = analyzer.analyze(image)[0]
    a = analyze_hair(image, face)
    rng = np.random.default_rng(seed)
    x0, y0 = a.box[:2]
    ys, xs = np.nonzero(a.alpha > 0.97)
    out = image.copy()
    spots = np.zeros(image.shape[:2], np.uint8)
    skin = cv2.cvtColor(a.skin_lab.reshape(1, 1, 3).astype(np.float32), cv2.COLOR_Lab2RGB).reshape(3) * 255
    radius = max(int(0.07 * a.eye_distance), 2)
    picks = rng.choice(len(ys), 24, replace=False)
    for i in picks:
        cy, cx = ys[i] + y0, xs[i] + x0
        cv2.circle(spots, (int(cx), int(cy)), radius, 1, -1)
    hairy = np.zeros(image.shape[:2], bool)
    hairy[a.box[1] : a.box[3], a.box[0] : a.box[2]] = a.alpha > 0.9
    spots_b = spots.astype(bool) & hairy
    noise = rng.normal(0, 1.5, image.shape).astype(np.float32)
    out[spots_b] = np.clip(skin + noise[spots_b], 0, 255).astype(np.uint8)
    return out, spots_b


def test_fill_brings_thin_spots_back_to_hair(analyzer, astronaut):
    img, spots = _thinned(analyzer, astronaut)
    a = analyze_hair(img, analyzer.analyze(img)[0])
    out = fill_sparse(img, a)
    hair_lab = lab(astronaut)[spots]
    before = np.linalg.norm(lab(img)[spots] - hair_lab, axis=-1).mean()
    after = np.linalg.norm(lab(out.image)[spots] - hair_lab, axis=-1).mean()
    assert after < 0.5 * before, f"thin spots {before:.1f} -> {after:.1f} from the hair colour"
    assert np.array_equal(out.image[~out.region], img[~out.region])


# --------------------------------------------------------------------------- bangs


@pytest.mark.parametrize("name", ("obama", "biden"))
def test_bangs_cover_the_forehead(analyzer, faces, hair, embedder, name):
    img, face = faces[name]
    a = hair[name]
    out = add_bangs(img, a, amount=0.75).image
    after = analyze_hair(out, analyzer.analyze(out)[0])
    c = _central(a)
    before_h = float(np.median(a.hairline_height[c]))
    after_h = float(np.median(after.hairline_height[c]))
    assert after_h < 0.6 * before_h  # the hair now starts well down the forehead
    assert identity_distance(embedder(img, face), embedder(out, face)) < SAME_PERSON_DISTANCE


# --------------------------------------------------------------------------- refusals


def test_bald_head_is_refused(analyzer, obama):
    face = analyzer.analyze(obama)[0]
    a = analyze_hair(obama, face)
    bald = obama.copy()
    x0, y0, x1, y1 = a.box
    hairy = cv2.dilate((a.alpha > 0.05).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    skin = cv2.cvtColor(a.skin_lab.reshape(1, 1, 3).astype(np.float32), cv2.COLOR_Lab2RGB).reshape(3) * 255
    rng = np.random.default_rng(0)
    part = bald[y0:y1, x0:x1]
    part[hairy] = np.clip(skin + rng.normal(0, 3, (int(hairy.sum()), 3)), 0, 255).astype(np.uint8)
    with pytest.raises(HairNotFoundError, match=r"bald|no hair"):
        analyze_hair(bald, analyzer.analyze(bald)[0])


def test_small_and_profile_faces_are_refused(analyzer, astronaut, astronaut_face):
    small = cv2.resize(astronaut, (80, 80), interpolation=cv2.INTER_AREA)
    face = astronaut_face.copy(landmarks=astronaut_face.landmarks * np.float32([80 / 512, 80 / 512, 1]))
    with pytest.raises(HairNotFoundError, match="too small"):
        analyze_hair(small, face)
    from portraitfx.face.types import Pose

    turned = astronaut_face.copy(pose=Pose(yaw=70.0, pitch=0.0, roll=0.0))
    with pytest.raises(HairNotFoundError, match="profile"):
        analyze_hair(astronaut, turned)
