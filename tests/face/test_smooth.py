"""One-Euro filter: less jitter at rest, little lag in motion, real timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from portraitfx.face.smooth import OneEuroFilter


def _track(filter_, truth, noise, times):
    return np.array([filter_(truth[i] + noise[i], t) for i, t in enumerate(times)])


def test_reduces_jitter_on_a_noisy_trajectory():
    rng = np.random.default_rng(0)
    times = np.arange(300) / 30.0
    truth = np.stack(
        [100 + 20 * np.sin(2 * np.pi * 0.3 * times), 50 + 10 * np.cos(2 * np.pi * 0.2 * times)], 1
    )
    noise = rng.normal(0, 1.5, truth.shape)
    out = _track(OneEuroFilter(min_cutoff=1.0, beta=0.05, scale=1.0), truth, noise, times)
    raw_err = np.sqrt(np.mean(noise[30:] ** 2))
    err = np.sqrt(np.mean((out[30:] - truth[30:]) ** 2))
    assert err < 0.8 * raw_err  # closer to the truth despite the lag of a moving target
    # jitter = frame-to-frame acceleration; the filter should cut it by a lot
    jitter = lambda x: np.abs(np.diff(x, 2, axis=0)).mean()  # noqa: E731
    assert jitter(out) < 0.3 * jitter(truth + noise)
    # a still point: most of the noise goes
    still = _track(OneEuroFilter(min_cutoff=1.0, beta=0.05), np.zeros_like(truth) + 50, noise, times)
    assert np.sqrt(np.mean((still[30:] - 50) ** 2)) < 0.5 * raw_err


def test_speed_adaptation_limits_lag():
    times = np.arange(60) / 30.0
    truth = np.stack([np.where(times < 1.0, 0.0, 200.0 * (times - 1.0)), np.zeros_like(times)], 1)
    slow = _track(OneEuroFilter(min_cutoff=0.5, beta=0.0), truth, np.zeros_like(truth), times)
    adaptive = _track(OneEuroFilter(min_cutoff=0.5, beta=0.5), truth, np.zeros_like(truth), times)
    lag_slow = np.abs(slow[-1, 0] - truth[-1, 0])
    lag_adaptive = np.abs(adaptive[-1, 0] - truth[-1, 0])
    assert lag_adaptive < 0.5 * lag_slow


def test_variable_frame_rate_and_repeated_times():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    f(np.zeros(3), 0.0)
    a = f(np.ones(3), 0.1)  # a long gap lets more of the new value through than a short one
    g = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    g(np.zeros(3), 0.0)
    b = g(np.ones(3), 0.01)
    assert a[0] > b[0]
    assert np.allclose(f(np.full(3, 5.0), 0.1), a)  # same timestamp again: unchanged
    f.reset()
    assert np.allclose(f(np.full(3, 7.0), 0.2), 7.0)


def test_shape_change_resets_and_bad_cutoff():
    f = OneEuroFilter()
    f(np.zeros((478, 3)), 0.0)
    out = f(np.ones((5, 2)), 0.1)
    assert out.shape == (5, 2) and np.allclose(out, 1.0)
    with pytest.raises(ValueError, match="positive"):
        OneEuroFilter(min_cutoff=0)
