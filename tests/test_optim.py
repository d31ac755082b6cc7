"""numddpg.kernels.optim: Adam (torch.optim.Adam's formula) and polyak averaging, against their closed
forms and the plain-NumPy twin numddpg.kernels.reference.adam / reference.polyak.

Tolerances: the kernel and the twin evaluate the same formulas with the bias corrections
grouped differently (lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t) are folded into constants).
The bias correction 1 - beta2^t cancels: numba's integer power and Python's may differ in the
last bit of beta2^t, which becomes a relative difference of up to ~eps / (1 - beta2^t)
(2.2e-13 for beta2 = 0.999, 2.2e-12 for 0.9999) in the step.  Each bound below says so.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numddpg.kernels import reference as ref
from numddpg.kernels.optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, Adam, adam_step, polyak_update

EPS64 = np.finfo(np.float64).eps   # 2.2e-16


def spread_gradient(rng, n):
    """Gradients spanning 1e-12 .. 1e2 in magnitude, both signs, and one exact zero, so that
    both regimes of Adam's first step show up: |g| >> eps (step ~ lr) and |g| <~ eps (step < lr)."""
    g = rng.standard_normal(n) * 10.0 ** rng.uniform(-12, 2, n)
    g[0] = 0.0
    return g


def test_first_adam_step_closed_form(rng):
    """t = 1: m_hat = g and v_hat = g^2, so p1 = p0 - lr * g / (|g| + eps)."""
    lr = 1e-3
    p0 = rng.standard_normal(200)
    g = spread_gradient(rng, 200)
    p, m, v = p0.copy(), np.zeros(200), np.zeros(200)
    adam_step(p, g, m, v, 1, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS)
    expected = p0 - lr * g / (np.abs(g) + ADAM_EPS)
    # Both sides are p0 - delta with deltas equal to a few ulps of lr; the final subtraction
    # rounds to the ulp of p (|p| < 5): 8 ulps of the largest |p| bounds the difference.
    np.testing.assert_allclose(p, expected, rtol=0, atol=8 * np.spacing(np.abs(p0).max()))
    np.testing.assert_allclose(m, (1 - ADAM_BETA1) * g, rtol=4 * EPS64)    # one rounding
    np.testing.assert_allclose(v, (1 - ADAM_BETA2) * g * g, rtol=4 * EPS64)
    assert p[0] == p0[0]                                     # g = 0 does not move p
    # The first step moves every coordinate by at most lr (|g| / (|g| + eps) < 1), and by
    # lr (to 1e-6) wherever |g| > 1e-2, i.e. |g| / eps > 1e6.
    step = np.abs(p - p0)
    assert np.all(step <= lr * (1 + 1e-12))
    big = np.abs(g) > 1e-2
    assert big.sum() > 10
    np.testing.assert_allclose(step[big], lr, rtol=1e-6)


def test_several_adam_steps_match_reference(rng):
    n, lr, T = 300, 3e-3, 12
    p, m, v = rng.standard_normal(n), np.zeros(n), np.zeros(n)
    pr, mr, vr = p.copy(), m.copy(), v.copy()
    opt = Adam(n, lr, np.float64)
    po = p.copy()
    for t in range(1, T + 1):
        g = spread_gradient(rng, n)
        adam_step(p, g, m, v, t, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS)
        pr, mr, vr = ref.adam(pr, g, mr, vr, t, lr)
        opt.step(po, g)
        assert opt.t == t
    # m and v: identical formulas (up to one reassociation), 1e-14 relative.
    np.testing.assert_allclose(m, mr, rtol=1e-14)
    np.testing.assert_allclose(v, vr, rtol=1e-14)
    # params: a step (|step| <~ 3 lr here) may differ by ~eps / (1 - beta2) = 2.2e-13 relative
    # (module docstring), i.e. ~2e-15 per step; 12 steps plus ulps of |p| < 5 stay below 1e-13.
    # A formula error (bias correction, eps placement) moves p by O(lr) = 3e-3.
    np.testing.assert_allclose(p, pr, rtol=0, atol=1e-13)
    # The Adam class runs the same kernel: bit for bit.
    np.testing.assert_array_equal(po, p)
    np.testing.assert_array_equal(opt.m, m)
    np.testing.assert_array_equal(opt.v, v)


@given(n=st.integers(1, 64), lr=st.floats(1e-5, 1e-1), T=st.integers(1, 20),
       beta1=st.sampled_from([0.0, 0.5, 0.9]), beta2=st.sampled_from([0.9, 0.999, 0.9999]),
       seed=st.integers(0, 2**32 - 1))
def test_adam_property_matches_reference(n, lr, T, beta1, beta2, seed):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n)
    m, v = np.zeros(n), np.zeros(n)
    pr, mr, vr = p.copy(), m.copy(), v.copy()
    for t in range(1, T + 1):
        g = spread_gradient(rng, n)
        g_copy = g.copy()
        adam_step(p, g, m, v, t, lr, beta1, beta2, ADAM_EPS)
        np.testing.assert_array_equal(g, g_copy)            # grad is read only
        pr, mr, vr = ref.adam(pr, g, mr, vr, t, lr, beta1, beta2, ADAM_EPS)
    np.testing.assert_allclose(m, mr, rtol=1e-13)          # same recurrences, T <= 20 roundings
    np.testing.assert_allclose(v, vr, rtol=1e-13)
    # |step| <~ 10 lr; the step may differ by ~eps / (1 - beta2) <= 2.2e-12 relative (module
    # docstring), so 20 steps differ by < 20 * 10 * 2.2e-12 lr ~ 5e-10 lr; plus 2 ulps of
    # |p| <~ 5 per step.  A formula error moves p by O(lr).
    np.testing.assert_allclose(p, pr, rtol=0, atol=1e-9 * lr + 40 * EPS64 * 5)


def test_adam_float32(rng):
    n = 100
    p = rng.standard_normal(n).astype(np.float32)
    opt = Adam(n, 1e-2, np.float32)
    pr, mr, vr = p.astype(np.float64), np.zeros(n), np.zeros(n)
    for t in range(1, 6):
        g = rng.standard_normal(n).astype(np.float32)
        opt.step(p, g)
        pr, mr, vr = ref.adam(pr, g.astype(np.float64), mr, vr, t, 1e-2)
    assert p.dtype == opt.m.dtype == opt.v.dtype == np.float32
    # float32 rounding of |p| ~ 1 (6e-8) and of each step (~1e-2 * 1e-7) over 5 steps: 1e-6.
    np.testing.assert_allclose(p, pr, rtol=0, atol=1e-6)


@pytest.mark.parametrize("lr", [0.0, -1e-3, np.nan, np.inf])
def test_adam_rejects_bad_learning_rates(lr):
    msg = f"learning rate must be a positive finite number, got {lr}"
    with pytest.raises(ValueError, match=msg):
        Adam(10, lr, np.float64)


# --- polyak -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rho", [0.0, 0.5, 0.995, 1.0])
def test_polyak_formula(rho, rng):
    targ0, src = rng.standard_normal(50), rng.standard_normal(50)
    targ = targ0.copy()
    src_copy = src.copy()
    polyak_update(targ, src, rho)
    np.testing.assert_array_equal(src, src_copy)             # src is read only
    # Same two products and one sum as the formula: equal to the last bit or two; atol covers
    # values near 0 where rho * targ and (1 - rho) * src cancel.
    np.testing.assert_allclose(targ, rho * targ0 + (1 - rho) * src, rtol=4 * EPS64,
                               atol=4 * EPS64)
    if rho == 1.0:
        np.testing.assert_array_equal(targ, targ0)           # rho weights the *target*
    if rho == 0.0:
        np.testing.assert_array_equal(targ, src)


@given(n=st.integers(1, 64), rho=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       steps=st.integers(1, 5))
def test_polyak_property(n, rho, seed, steps):
    rng = np.random.default_rng(seed)
    targ, src = rng.standard_normal(n), rng.standard_normal(n)
    expected = targ.copy()
    for _ in range(steps):
        before = targ.copy()
        polyak_update(targ, src, rho)
        expected = ref.polyak(expected, src, rho)
        # A convex combination: each element lies between the old target and the source
        # (to 2 ulps of the larger magnitude).
        lo, hi = np.minimum(before, src), np.maximum(before, src)
        slack = 2 * EPS64 * np.maximum(np.abs(before), np.abs(src))
        assert np.all(targ >= lo - slack) and np.all(targ <= hi + slack)
    # Same formula as the twin: a few ulps per step, steps <= 5.
    np.testing.assert_allclose(targ, expected, rtol=1e-14, atol=1e-15)
