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


# --- weight decay -----------------------------------------------------------------------------

@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_weight_decay_matches_reference(decoupled, rng):
    """Decoupled (torch.optim.AdamW: p <- p - lr lambda p, then the step) and coupled
    (torch.optim.Adam's weight_decay: g <- g + lambda p) against the twin, in float64."""
    n, lr, wd, T = 300, 3e-3, 0.5, 12
    p, m, v = rng.standard_normal(n), np.zeros(n), np.zeros(n)
    pr, mr, vr = p.copy(), m.copy(), v.copy()
    plain = p.copy()
    mp, vp = m.copy(), v.copy()
    opt, po = Adam(n, lr, np.float64, weight_decay=wd, decoupled=decoupled), p.copy()
    for t in range(1, T + 1):
        g = spread_gradient(rng, n)
        g_copy = g.copy()
        adam_step(p, g, m, v, t, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, wd, decoupled)
        np.testing.assert_array_equal(g, g_copy)            # grad is read only
        pr, mr, vr = ref.adam(pr, g, mr, vr, t, lr, weight_decay=wd, decoupled=decoupled)
        adam_step(plain, g, mp, vp, t, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS)
        opt.step(po, g)
    # As test_several_adam_steps_match_reference: the same formulas up to grouping (the decay
    # factor 1 - lr lambda is one rounding more), 1e-13 over 12 steps; the coupled term enters
    # m and v, which then agree to 1e-13 relative.
    np.testing.assert_allclose(m, mr, rtol=1e-13)
    np.testing.assert_allclose(v, vr, rtol=1e-13)
    np.testing.assert_allclose(p, pr, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(po, p)                     # the class runs the same kernel
    # The decay is not a no-op: with lambda = 0.5, 12 steps move p by ~lr lambda |p| each
    # (decoupled) or change the moments (coupled), far beyond 1e-13.
    assert np.abs(p - plain).max() > 1e-4


def test_adam_decoupled_decay_closed_form(rng):
    """A zero gradient leaves m = v = 0, so AdamW's step is the decay alone: p (1 - lr lambda)
    per step (the Adam term is 0 / (0 + eps) = 0); coupled decay instead steps against p."""
    n, lr, wd = 50, 1e-2, 0.1
    p0 = rng.standard_normal(n)
    p, m, v = p0.copy(), np.zeros(n), np.zeros(n)
    for t in range(1, 4):
        adam_step(p, np.zeros(n), m, v, t, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, wd, True)
    np.testing.assert_allclose(p, p0 * (1 - lr * wd) ** 3, rtol=4 * EPS64)   # 3 roundings
    assert not m.any() and not v.any()
    # coupled: the first step is Adam's first step on g = lambda p0, lr g / (|g| + eps), toward
    # 0 (test_first_adam_step_closed_form's bound: 8 ulps of the largest |p|)
    p, m, v = p0.copy(), np.zeros(n), np.zeros(n)
    adam_step(p, np.zeros(n), m, v, 1, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, wd, False)
    g = wd * p0
    np.testing.assert_allclose(p, p0 - lr * g / (np.abs(g) + ADAM_EPS), rtol=0,
                               atol=8 * np.spacing(np.abs(p0).max()))


def test_adam_without_weight_decay_keeps_every_bit(rng):
    """weight_decay = 0 (either kind) is the plain step bit for bit, signed zeros included:
    the kernel runs the loops without a decay factor or an L2 term (float32, as training).
    A first moment of -0.0 (a negative m underflowed by beta1 m) and a gradient of -0.0 stay
    -0.0, where g + 0 p would make the gradient +0.0 and m +0.0."""
    n = 64
    p0 = np.abs(rng.standard_normal(n)).astype(np.float32) + 0.5
    g = rng.standard_normal(n).astype(np.float32)
    g[:8] = -0.0
    m0 = np.zeros(n, np.float32)
    m0[:8] = -0.0
    b1, c1 = np.float32(ADAM_BETA1), np.float32(1 - ADAM_BETA1)
    naive = b1 * m0[:8] + c1 * (g[:8] + np.float32(0) * p0[:8])     # what g + 0 p would do
    assert np.signbit(b1 * m0[:8] + c1 * g[:8]).all() and not np.signbit(naive).any()
    runs = []
    for kw in ({}, {"weight_decay": 0.0, "decoupled": True},
               {"weight_decay": 0.0, "decoupled": False}):
        p, m, v = p0.copy(), m0.copy(), np.zeros(n, np.float32)
        adam_step(p, g, m, v, 1, 1e-3, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, *kw.values())
        runs.append((p, m, v))
    assert np.signbit(runs[0][1][:8]).all()
    for p, m, v in runs[1:]:
        for ours, plain in zip((p, m, v), runs[0]):
            assert ours.tobytes() == plain.tobytes()


@pytest.mark.parametrize("wd", [-0.1, np.nan, np.inf])
def test_adam_rejects_bad_weight_decay(wd):
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        Adam(10, 1e-3, np.float64, weight_decay=wd)
