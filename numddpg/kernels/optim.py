"""Adam and polyak averaging, in place on flat parameter vectors (docs/math.md, "Adam", "Polyak").

Every array here has the flat layout of numddpg.nn: a network's params, its gradient and its two
Adam moments are four 1-D arrays of the same length P.
"""
import numpy as np
from numba import njit

# error_model="numpy" on the Adam element loop: Python's model checks every division for a zero
# divisor, which stops LLVM from vectorising the loop (3 ns -> ~0.4 ns per parameter here);
# the divisor sqrt(v_hat) + eps is never zero anyway.

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


@njit(cache=True)
def adam_coefficients(dtype_like, t, lr, beta1, beta2, eps, polyak):
    """[beta1, 1 - beta1, beta2, 1 - beta2, lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t), eps,
    polyak, 1 - polyak] in the parameters' dtype, so that the element loops run in float32 for
    float32 networks (8 lanes per AVX register instead of 4)."""
    c = np.empty(9, dtype_like.dtype)
    c[0] = beta1
    c[1] = 1.0 - beta1
    c[2] = beta2
    c[3] = 1.0 - beta2
    c[4] = lr / (1.0 - beta1 ** t)
    c[5] = 1.0 / np.sqrt(1.0 - beta2 ** t)
    c[6] = eps
    c[7] = polyak
    c[8] = 1.0 - polyak
    return c


@njit(cache=True, error_model="numpy")
def adam_polyak_span(params, grad, m, v, c, targ, average, lo, hi):
    """Elements lo..hi-1 of one Adam step with coefficients c = adam_coefficients(...), and,
    when ``average``, the polyak update of ``targ`` from the new params in the same pass:

        m <- beta1 m + (1 - beta1) g             v <- beta2 v + (1 - beta2) g^2
        p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) * (1 / sqrt(1 - beta2^t)) + eps)
        targ <- rho targ + (1 - rho) p           (only when average)

    The one Adam element loop of the package: adam_step, adam_polyak_step and the updates'
    parameter-split steps (numddpg.update) all run it.  Fusing the polyak update is valid
    wherever nothing reads the network between its Adam step and its polyak update (true in
    DDPG and TD3: the targets are only read by the next update's target).
    """
    b1, c1, b2, c2, step_size, inv_sqrt_bc2, e = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    rho, one_minus_rho = c[7], c[8]
    # Loops over slices from 0: with indices lo..hi Numba cannot prove them non-negative and
    # keeps a wrap-around check on every access, which stops LLVM from vectorising (8x slower).
    p, g, m, v, pt = params[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], targ[lo:hi]
    if average:
        for i in range(p.shape[0]):
            gi = g[i]
            mi = b1 * m[i] + c1 * gi
            vi = b2 * v[i] + c2 * gi * gi
            m[i] = mi
            v[i] = vi
            p_new = p[i] - step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + e)
            p[i] = p_new
            pt[i] = rho * pt[i] + one_minus_rho * p_new
    else:
        for i in range(p.shape[0]):
            gi = g[i]
            mi = b1 * m[i] + c1 * gi
            vi = b2 * v[i] + c2 * gi * gi
            m[i] = mi
            v[i] = vi
            p[i] -= step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + e)


@njit(cache=True)
def adam_step(params, grad, m, v, t, lr, beta1, beta2, eps):
    """One Adam step with torch.optim.Adam's formula; ``t`` is the step number, starting at 1.

    p -= lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - beta1^t), v_hat = v / (1 -
    beta2^t), written as in adam_polyak_span.  params, grad, m, v: (P,); grad is read only.
    (PyTorch divides sqrt(v) by sqrt(1 - beta2^t) where this multiplies by its inverse: equal up
    to rounding.)
    """
    c = adam_coefficients(params, t, lr, beta1, beta2, eps, 0.0)
    adam_polyak_span(params, grad, m, v, c, params, False, 0, params.shape[0])


@njit(cache=True)
def adam_polyak_step(params, grad, m, v, t, lr, beta1, beta2, eps, targ, polyak):
    """adam_step on params, then polyak_update(targ, params, polyak), fused into one pass over
    memory (adam_polyak_span)."""
    c = adam_coefficients(params, t, lr, beta1, beta2, eps, polyak)
    adam_polyak_span(params, grad, m, v, c, targ, True, 0, params.shape[0])


@njit(cache=True)
def polyak_update(targ, src, polyak):
    """targ <- polyak * targ + (1 - polyak) * src, in place (polyak weights the *target*)."""
    c = np.empty(2, targ.dtype)
    c[0] = polyak
    c[1] = 1.0 - polyak
    rho, one_minus_rho = c[0], c[1]
    for i in range(targ.shape[0]):
        targ[i] = rho * targ[i] + one_minus_rho * src[i]


class Adam:
    """Adam state for one flat parameter vector: moments m, v (same layout) and step count t."""

    def __init__(self, n, lr, dtype, beta1=ADAM_BETA1, beta2=ADAM_BETA2, eps=ADAM_EPS):
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a positive finite number, got {lr!r}")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), beta1, beta2, eps
        self.m = np.zeros(n, dtype)
        self.v = np.zeros(n, dtype)
        self.t = 0

    def step(self, params, grad):
        """Apply one Adam step to ``params`` in place using ``grad``."""
        self.t += 1
        adam_step(params, grad, self.m, self.v, self.t, self.lr, self.beta1, self.beta2, self.eps)
