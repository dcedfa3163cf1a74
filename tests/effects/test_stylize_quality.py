"""The stylize effect on real faces: identity and geometry kept, style really transferred, no flicker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import portraitfx.effects as fx
from _metrics import flow_compensated_diff
from portraitfx.effects import EffectState
from portraitfx.effects.stylize import build_style, load_style, save_style
from portraitfx.errors import InputError, ModelError, ModelNotFoundError, NoFaceError
from portraitfx.face.align import align_face, transform_points
from portraitfx.face.identity import FaceEmbedder, identity_distance
from portraitfx.face.regions import region_mask
from portraitfx.testing import clips

STYLES = ("pencil", "watercolour", "ink")


@pytest.fixture(scope="module")
def effects():
    out = {name: fx.create_effect("stylize", style=name) for name in STYLES}
    yield out
    for e in out.values():
        e.close()


@pytest.fixture(scope="module")
def embedder():
    with FaceEmbedder() as e:
        yield e


@pytest.fixture(scope="module")
def obama_face(analyzer, obama):
    return analyzer.analyze(obama)[0]


def test_registry():
    assert "stylize" in fx.list_effects()
    with pytest.raises(ModelNotFoundError, match="did you mean 'stylize'"):
        fx.create_effect("stylise")


@pytest.mark.parametrize("style", STYLES)
def test_identity_and_geometry_are_kept(effects, analyzer, embedder, obama, biden, obama_face, style):
    out = effects[style].apply(obama, [obama_face])
    assert out.shape == obama.shape and out.dtype == np.uint8
    faces = analyzer.analyze(out)
    assert faces, "the stylized face is still a face"
    face = faces[0]
    # the mesh found on the output stays where the input's was
    err = np.linalg.norm(face.landmarks[:468, :2] - obama_face.landmarks[:468, :2], axis=1).mean()
    assert err / obama_face.eye_distance < 0.03, (
        f"mesh moved {err / obama_face.eye_distance:.2%} of the eye distance"
    )
    # identity: closer to the input than two different people of the test set are to each other
    d_self = identity_distance(embedder(out, face), embedder(obama, obama_face))
    d_other = identity_distance(embedder(obama, obama_face), embedder(biden, analyzer.analyze(biden)[0]))
    assert d_self < d_other, (d_self, d_other)


def _face_stats(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (Lab mean and std) and fine texture inside the face.

    Texture: the histogram of fine detail (gray minus a 1.5 px blur), i.e. strokes,
    grain and flat areas, independent of the face's large-scale structure.
    """
    mask = region_mask(image.shape, landmarks, "face") > 0.5
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)[mask]
    colour = np.concatenate([lab.mean(0), lab.std(0)])
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = (gray - cv2.GaussianBlur(gray, (0, 0), 1.5))[mask]
    hist, _ = np.histogram(np.clip(detail, -40, 40), bins=20, range=(-40, 40))
    return colour, hist / max(hist.sum(), 1)


def _transfer_stats(effect, image, face):
    """(colour to exemplar, colour to input, texture to exemplar, texture to input) of a stylized face."""
    level = effect.style.level_for(face.eye_distance, 1.5)  # the still-image setting
    out = effect.apply(image, [face])
    # the exemplar brought to the face's place and scale in the frame, so all three
    # are compared at the same resolution, inside the same face outline
    matrix = align_face(image, face, size=level.size).matrix
    h, w = image.shape[:2]
    ex = cv2.warpAffine(level.exemplar, matrix, (w, h), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)
    c_out, t_out = _face_stats(out, face.landmarks)
    c_in, t_in = _face_stats(image, face.landmarks)
    c_ex, t_ex = _face_stats(ex, face.landmarks)
    return (
        float(np.linalg.norm(c_out - c_ex)),
        float(np.linalg.norm(c_out - c_in)),
        _chi(t_out, t_ex),
        _chi(t_out, t_in),
    )


def _chi(a: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * np.sum((a - b) ** 2 / (a + b + 1e-9)))


def test_style_is_really_transferred(effects, obama, obama_face):
    """Colour is closer to the exemplar's than to the photo's for every style; fine texture
    (strokes, grain, flat areas) too for the textured styles and over all styles together.

    Watercolour's flat washes and the photo's skin are both nearly free of fine
    detail, so on its own that texture distance is too small to rank (known gap:
    chunk seams add a little detail there).
    """
    stats = {style: _transfer_stats(effects[style], obama, obama_face) for style in STYLES}
    for style, (c_ex, c_in, _, _) in stats.items():
        assert c_ex < 0.7 * c_in, f"{style}: colour closer to the exemplar"
    for style in ("pencil", "ink"):
        assert stats[style][2] < stats[style][3], (style, stats[style])
    assert sum(v[2] for v in stats.values()) < sum(v[3] for v in stats.values()), stats


@pytest.mark.parametrize("style", ["pencil", "watercolour", "ink", "oil"])
def test_texture_is_the_exemplars_where_it_is_made(obama, obama_face, style):
    """Per style, in the canonical crop the face is synthesised in (the style's own
    resolution): the fine-detail histogram of the stylized face is closer to the
    exemplar's than to the input's, by a wide margin. (At the photo's resolution a
    60 px eye distance hides the grain of the softer styles; see the test above.)"""
    effect = fx.create_effect("stylize", style=style)
    crop, mask, matrix = effect.stylize_face(obama, obama_face, None)
    level = effect.style.level_for(obama_face.eye_distance, 1.5)
    assert level.exemplar.shape == crop.shape
    aligned = cv2.warpAffine(obama, matrix, (crop.shape[1], crop.shape[0]), flags=cv2.INTER_LINEAR)
    lm = transform_points(obama_face.landmarks, matrix)
    core = (region_mask(crop.shape, lm, "face") > 0.5) & (mask > 0.99)
    assert core.sum() > 5000

    def texture(image):
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail = (gray - cv2.GaussianBlur(gray, (0, 0), 1.5))[core]
        hist, _ = np.histogram(np.clip(detail, -40, 40), bins=20, range=(-40, 40))
        return hist / hist.sum()

    to_exemplar = _chi(texture(crop), texture(level.exemplar))
    to_input = _chi(texture(crop), texture(aligned))
    assert to_exemplar < 0.5 * to_input, (to_exemplar, to_input)


def test_video_does_not_flicker(effects, analyzer, astronaut):
    from portraitfx.face.track import FaceTracker

    head = np.ascontiguousarray(astronaut[20:300, 80:360])
    frames = list(clips.iter_moving_crop_frames(head, 24, size=(320, 240), pan=0.05, zoom=0.05, roll_deg=3))
    effect = effects["watercolour"]
    state = EffectState()
    outs = []
    with FaceTracker(1, smooth=effect.smooth_landmarks) as tracker:  # as the video runtime does
        for i, f in enumerate(frames):
            faces = tracker.update(f, i / 30)
            assert faces
            outs.append(effect.apply(f, faces, state))
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    # backward flow (frame i -> i-1) measured on the input drives the compensation for both clips
    flows = [
        cv2.calcOpticalFlowFarneback(grays[i], grays[i - 1], None, 0.5, 3, 21, 3, 5, 1.1, 0)
        for i in range(1, len(grays))
    ]
    mask = region_mask(frames[0].shape, analyzer.analyze(frames[0])[0].landmarks, "face") > 0.5
    ours = flow_compensated_diff(outs, mask, flows)
    base = flow_compensated_diff(frames, mask, flows)
    # the same clip without temporal coherence (no reuse, no persistence)
    plain = fx.create_effect("stylize", style="watercolour", temporal=False)
    with FaceTracker(1) as tracker:
        no_coherence = [plain.apply(f, tracker.update(f, i / 30), None) for i, f in enumerate(frames)]
    worse = flow_compensated_diff(no_coherence, mask, flows)
    assert ours < 0.85 * worse, f"temporal coherence must reduce flicker: {ours:.2f} vs {worse:.2f}"
    assert ours <= 1.5 * base, f"flicker {ours:.2f} vs input {base:.2f}"


def test_several_faces_are_stylized(effects, analyzer, obama, biden):
    h = 360
    a = cv2.resize(obama, (int(obama.shape[1] * h / obama.shape[0]), h))
    b = cv2.resize(biden, (int(biden.shape[1] * h / biden.shape[0]), h))
    canvas = np.ascontiguousarray(np.concatenate([a, b], 1))
    faces = analyzer.analyze(canvas)
    assert len(faces) == 2
    out = effects["ink"].apply(canvas, faces)
    for f in faces:
        x0, y0, x1, y1 = f.bbox.astype(int)
        assert np.abs(out[y0:y1, x0:x1].astype(int) - canvas[y0:y1, x0:x1].astype(int)).mean() > 8
    assert np.array_equal(out[:5, :5], canvas[:5, :5])  # background untouched


def test_regions_head_and_frame_cover_more(analyzer, obama, obama_face):
    changed = {}
    for region in ("face", "head", "frame"):
        e = fx.create_effect("stylize", style="watercolour", region=region)
        out = e.apply(obama, [obama_face])
        changed[region] = float((np.abs(out.astype(int) - obama.astype(int)).sum(2) > 12).mean())
        # nothing is left unsynthesised (black) where the original was not dark
        new_black = (out.max(2) < 8) & (obama.max(2) >= 40)
        assert new_black.mean() < 0.001, (region, new_black.mean())
        e.close()
    assert changed["face"] < changed["head"] < changed["frame"], changed


def test_bad_style_images_get_clear_errors(obama, biden, astronaut, obama_face):
    with pytest.raises(NoFaceError, match="no face"):
        build_style(np.full((300, 300, 3), 128, np.uint8), source="gray.png")
    pair = np.ascontiguousarray(
        np.concatenate([cv2.resize(obama, (400, 500)), cv2.resize(biden, (400, 500))], 1)
    )
    with pytest.raises(InputError, match="faces; a style needs one"):
        build_style(pair, source="pair.png")
    with pytest.raises(InputError, match="too small"):
        build_style(cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA), source="small.png")
    from portraitfx.face.pose import canonical_face, rotation_matrix

    turned = canonical_face() @ rotation_matrix(55, 0, 0).T * 100 + np.array([250, 250, 0])
    with pytest.raises(InputError, match="turned away"):
        build_style(obama, landmarks=turned, source="profile.png")


def test_pack_round_trip_and_errors(tmp_path, obama):
    pack = build_style(obama, name="obama-test", size=512)
    path = save_style(pack, tmp_path / "o.pfxstyle")
    again = load_style(path)
    assert again.name == "obama-test" and len(again.levels) == len(pack.levels) == 2
    for a, b in zip(again.levels, pack.levels, strict=True):
        assert np.array_equal(a.exemplar, b.exemplar) and np.array_equal(a.table.table, b.table.table)
    bad = tmp_path / "bad.pfxstyle"
    bad.write_bytes(b"\x80\x04not a style at all")
    with pytest.raises(ModelError, match="not a readable style"):
        load_style(bad)
    with pytest.raises(ModelNotFoundError, match="did you mean 'pencil'"):
        load_style("pencl")


def test_small_style_sizes_build(obama):
    pack = build_style(obama, size=200)
    assert len(pack.levels) == 1 and pack.size == 200


def test_faceless_video_keeps_an_existing_output(tmp_path):
    from portraitfx.runtime.apply import apply_to_file

    clip = clips.make_clip(tmp_path / "wall.mp4", [np.full((96, 128, 3), 90, np.uint8)] * 6, fps=30)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    with pytest.raises(NoFaceError):
        apply_to_file(fx.create_effect("stylize", style="pencil"), clip, out)
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "wall.mp4"]


def test_options_are_validated():
    from portraitfx.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        fx.create_effect("stylize", style="pencil", colour=1)
    with pytest.raises(ConfigError, match="guide_step"):
        fx.create_effect("stylize", style="pencil", guide_step=0)
    with pytest.raises(ConfigError, match="persistence"):
        fx.create_effect("stylize", style="pencil", persistence=2.0)
