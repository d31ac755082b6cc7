"""Exploration noise: the behaviour-action kernels and the Gaussian / OU processes."""
import numpy as np
import pytest

from numddpg.engine.noise import GaussianNoise, OUNoise, make_noise, noisy_action, uniform_action


def test_noisy_action_is_clipped_mid_plus_half_times_u_plus_n():
    rng = np.random.default_rng(0)
    low, high = np.array([-2.0, 0.0, 1.0]), np.array([2.0, 1.0, 5.0])
    mid, half = ((high + low) / 2).astype(np.float32), ((high - low) / 2).astype(np.float32)
    for _ in range(50):
        u = rng.uniform(-1, 1, 3).astype(np.float32)
        n = rng.normal(0, 0.5, 3)
        out = np.empty(3, np.float32)
        noisy_action(u, mid, half, n, low, high, out)
        want = np.clip(mid.astype(np.float64) + half * (u + n), low, high).astype(np.float32)
        # float32 output of float32/float64 inputs: equal up to one float32 rounding
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
        assert np.all(out >= low) and np.all(out <= high)


def test_uniform_action_covers_the_box_evenly():
    rng = np.random.default_rng(1)
    low, high = np.array([-2.0, 3.0]), np.array([2.0, 4.0])
    out = np.empty(2, np.float32)
    draws = np.empty((20_000, 2))
    r = np.empty(2)
    for i in range(len(draws)):
        rng.random(out=r)
        uniform_action(r, low, high, out)
        draws[i] = out
    assert np.all(draws >= low) and np.all(draws <= high)
    # mean of U(low, high): std of the mean is (high-low)/sqrt(12 n); 5 of them as tolerance
    tol = 5 * (high - low) / np.sqrt(12 * len(draws))
    assert np.all(np.abs(draws.mean(0) - (low + high) / 2) < tol)


def test_gaussian_noise_has_std_sigma():
    noise = GaussianNoise(2, 0.3)
    rng = np.random.default_rng(2)
    out = np.empty(2)
    draws = np.array([noise.sample(rng, out).copy() for _ in range(20_000)])
    # std of a sample std ~ sigma / sqrt(2n) = 0.0015; tolerance 0.01 is > 6 of them
    assert np.all(np.abs(draws.std(0) - 0.3) < 0.01)
    assert np.all(np.abs(draws.mean(0)) < 0.01)
    noise.reset()                                       # stateless: a no-op


def test_ou_follows_its_recurrence_and_resets():
    theta, sigma, dt = 0.15, 0.2, 1e-2
    noise = OUNoise(2, sigma, theta, dt)
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    x = np.zeros(2)
    out = np.empty(2)
    for _ in range(500):
        got = noise.sample(rng, out).copy()
        x = x + theta * (0.0 - x) * dt + sigma * np.sqrt(dt) * twin.standard_normal(2)
        np.testing.assert_allclose(got, x, rtol=1e-12, atol=1e-15)  # same draws, same float64
    assert np.all(noise.x != 0)
    noise.reset()
    np.testing.assert_array_equal(noise.x, 0)


def test_ou_is_correlated_in_time_gaussian_is_not():
    rng = np.random.default_rng(4)
    out = np.empty(1)
    for noise, lo, hi in ((OUNoise(1), 0.9, 1.0), (GaussianNoise(1, 0.2), -0.05, 0.05)):
        xs = np.array([noise.sample(rng, out)[0] for _ in range(20_000)])
        lag1 = np.corrcoef(xs[:-1], xs[1:])[0, 1]
        assert lo < lag1 <= hi, (noise, lag1)


def test_make_noise_and_bad_values():
    assert isinstance(make_noise("gaussian", 2, act_noise=0.1), GaussianNoise)
    ou = make_noise("ou", 2, ou_sigma=0.5, ou_theta=0.2, ou_dt=0.05)
    assert isinstance(ou, OUNoise) and (ou.sigma, ou.theta, ou.dt) == (0.5, 0.2, 0.05)
    with pytest.raises(ValueError, match="noise must be one of"):
        make_noise("pink", 2)
    with pytest.raises(ValueError, match="act_noise"):
        GaussianNoise(2, -0.1)
    with pytest.raises(ValueError, match="ou_sigma"):
        OUNoise(2, sigma=np.nan)
