"""FaceBlit building blocks: MLS guides, the lookup table, synthesis, voting, packs."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from portraitfx.effects.stylize.guides import (
    app_quantiles,
    appearance_guide,
    match_appearance,
    mls_deform,
    mls_positional_guide,
)
from portraitfx.effects.stylize.styleblit import SynthesisParams, build_lookup_table, synthesize, vote
from portraitfx.errors import ConfigError


def test_mls_interpolates_control_points_and_keeps_similarities():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (30, 2))
    dst = src * 1.7 + rng.normal(0, 4, src.shape)
    assert np.allclose(mls_deform(src, src, dst), dst, atol=1e-2)
    # a global similarity is reproduced exactly everywhere
    ang = 0.4
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    sim = src @ rot.T * 1.3 + [5, -7]
    pts = rng.uniform(0, 200, (50, 2))
    for mode, scale in (("similarity", 1.3), ("rigid", 1.0)):
        want = pts @ rot.T * 1.3 + [5, -7] if mode == "similarity" else None
        got = mls_deform(pts, src, sim if mode == "similarity" else src @ rot.T + [5, -7], mode=mode)
        ref = want if want is not None else pts @ rot.T + [5, -7]
        assert np.allclose(got, ref, atol=1e-3), (mode, scale)
    with pytest.raises(ConfigError):
        mls_deform(pts, src, dst[:5])


def test_positional_guide_matches_pointwise_mls():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (20, 2))
    dst = src + rng.normal(0, 3, src.shape)
    guide = mls_positional_guide(src, dst, (97, 61), step=8)
    ys, xs = np.mgrid[0:61:8, 0:97:8]
    ref = mls_deform(np.stack([xs.ravel(), ys.ravel()], 1), src, dst).reshape(*ys.shape, 2)
    assert guide.shape == (61, 97, 2) and guide.dtype == np.float32
    assert np.allclose(guide[0:61:8, 0:97:8], ref, atol=1e-3)


def test_lookup_table_is_exact_against_brute_force():
    rng = np.random.default_rng(2)
    app = rng.random((40, 56)).astype(np.float32)
    table = build_lookup_table(app, cell=4, levels=8, w_app=20.0)
    ys, xs = np.mgrid[0:40, 0:56]
    for cy in range(table.table.shape[0]):
        for cx in range(0, table.table.shape[1], 3):
            for lv in (0, 3, 7):
                c = (min(cx * 4 + 2, 55), min(cy * 4 + 2, 39))
                cost = (xs - c[0]) ** 2 + (ys - c[1]) ** 2 + 400 * (app - (lv + 0.5) / 8) ** 2
                bx, by = table.table[cy, cx, lv]
                assert cost[by, bx] == pytest.approx(cost.min(), abs=1e-6)


def _toy_problem():
    rng = np.random.default_rng(3)
    style = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    style_app = appearance_guide(style, 4.0)
    ys, xs = np.mgrid[0:80, 0:80].astype(np.float32)
    pos = np.stack([xs * 1.1 + 3, ys * 1.1 + 2], -1).astype(np.float32)  # target -> exemplar
    app = style_app[
        np.clip((pos[..., 1] + 0.5).astype(int), 0, 95), np.clip((pos[..., 0] + 0.5).astype(int), 0, 95)
    ]
    return style, style_app, pos, app


def test_synthesis_copies_the_exemplar_where_guides_agree():
    style, style_app, pos, app = _toy_problem()
    table = build_lookup_table(style_app, cell=4, levels=16)
    coords = synthesize(pos, app, style_app, table)
    err = np.linalg.norm(coords - pos, axis=2)
    assert np.median(err) < 2.0  # guides agree: positions stay close to the guide
    out = vote(coords, pos, style, radius=0)
    assert out.shape == (80, 80, 3) and out.dtype == np.uint8


def test_synthesis_does_not_depend_on_thread_count():
    style, style_app, pos, app = _toy_problem()
    table = build_lookup_table(style_app, cell=4, levels=16)
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = synthesize(pos, app, style_app, table), vote(synthesize(pos, app, style_app, table), pos, style)
        numba.set_num_threads(max(n, 2))
        many = (
            synthesize(pos, app, style_app, table),
            vote(synthesize(pos, app, style_app, table), pos, style),
        )
    finally:
        numba.set_num_threads(n)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


def test_mask_and_temporal_reuse():
    _, style_app, pos, app = _toy_problem()
    table = build_lookup_table(style_app, cell=4, levels=16)
    mask = np.zeros((80, 80), np.uint8)
    mask[20:60, 20:60] = 1
    first = synthesize(pos, app, style_app, table, mask=mask, params=SynthesisParams(seed=1))
    assert (first[mask == 0] == -1).all() and (first[mask == 1] >= 0).all()
    # a different seed alone changes chunks, but last frame's result is kept where it still fits
    again = synthesize(pos, app, style_app, table, mask=mask, prev=first, params=SynthesisParams(seed=2))
    fresh = synthesize(pos, app, style_app, table, mask=mask, params=SynthesisParams(seed=2))
    kept = np.all(again == first, axis=2)[mask == 1].mean()
    changed_without_reuse = 1 - np.all(fresh == first, axis=2)[mask == 1].mean()
    assert kept > 0.9 and changed_without_reuse > 0.3, (kept, changed_without_reuse)


def test_histogram_matching_maps_distributions():
    rng = np.random.default_rng(4)
    a = rng.beta(2, 5, (64, 64)).astype(np.float32)
    b = rng.beta(5, 2, (64, 64)).astype(np.float32)
    matched = match_appearance(a, app_quantiles(a), app_quantiles(b))
    assert abs(float(np.median(matched)) - float(np.median(b))) < 0.02
    assert np.all(np.diff(matched.ravel()[np.argsort(a.ravel())]) >= -1e-6)  # order kept
