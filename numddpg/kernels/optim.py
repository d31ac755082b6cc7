"""Adam and polyak averaging, in place on flat parameter vectors (docs/math.md, "Adam", "Polyak").

Every array here has the flat layout of numddpg.kernels.nn: a network's params, its gradient
and its two Adam moments are four 1-D arrays of the same length P.
"""
import numpy as np
from numba import njit

# error_model="numpy" on the Adam element loop: Python's model checks every division for a zero
# divisor, which stops LLVM from vectorising the loop (3 ns -> ~0.4 ns per parameter here);
# the divisor sqrt(v_hat) + eps is never zero anyway.

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8

# The slots of adam_coefficients' vector, by name (docs/math.md's notation table): Numba reads
# these module constants as literals, so c[C_POLYAK] compiles to what c[7] did.
(C_BETA1, C_ONE_MINUS_BETA1, C_BETA2, C_ONE_MINUS_BETA2, C_STEP_SIZE, C_INV_SQRT_BC2, C_EPS,
 C_POLYAK, C_ONE_MINUS_POLYAK, N_COEFFICIENTS) = range(10)


@njit(cache=True)
def adam_coefficients(dtype_like, t, lr, beta1, beta2, eps, polyak):
    """The scalars of one Adam step at step number t (and of its fused polyak update), in the
    C_* slots, in the parameters' dtype, so that the element loops run in float32 for float32
    networks (8 lanes per AVX register instead of 4)."""
    c = np.empty(N_COEFFICIENTS, dtype_like.dtype)
    c[C_BETA1] = beta1
    c[C_ONE_MINUS_BETA1] = 1.0 - beta1
    c[C_BETA2] = beta2
    c[C_ONE_MINUS_BETA2] = 1.0 - beta2
    c[C_STEP_SIZE] = lr / (1.0 - beta1 ** t)
    c[C_INV_SQRT_BC2] = 1.0 / np.sqrt(1.0 - beta2 ** t)
    c[C_EPS] = eps
    c[C_POLYAK] = polyak
    c[C_ONE_MINUS_POLYAK] = 1.0 - polyak
    return c


@njit(cache=True, error_model="numpy")
def adam_polyak_span(params, grad, m, v, c, targ, average, lo, hi):
    """Elements lo..hi-1 of one Adam step with coefficients c = adam_coefficients(...), and,
    when ``average``, the polyak update of ``targ`` from the new params in the same pass:

        m <- beta1 m + (1 - beta1) g             v <- beta2 v + (1 - beta2) g^2
        p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) * (1 / sqrt(1 - beta2^t)) + eps)
        targ <- polyak targ + (1 - polyak) p     (only when average)

    The one Adam element loop of the package: adam_step, adam_polyak_step and the updates'
    parameter-split steps (numddpg.kernels.update) all run it.  Fusing the polyak update is valid
    wherever nothing reads the network between its Adam step and its polyak update (true in
    DDPG and TD3: the targets are only read by the next update's target).
    """
    b1, c1, b2, c2 = c[C_BETA1], c[C_ONE_MINUS_BETA1], c[C_BETA2], c[C_ONE_MINUS_BETA2]
    step_size, inv_sqrt_bc2, e = c[C_STEP_SIZE], c[C_INV_SQRT_BC2], c[C_EPS]
    polyak, one_minus_polyak = c[C_POLYAK], c[C_ONE_MINUS_POLYAK]
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
            pt[i] = polyak * pt[i] + one_minus_polyak * p_new
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
    # both weights rounded to targ's dtype once, as adam_coefficients rounds them (a float32
    # target is averaged in float32); new names, since Numba keeps one type per variable
    w = np.empty(2, targ.dtype)
    w[0] = polyak
    w[1] = 1.0 - polyak
    polyak_w, one_minus_polyak_w = w[0], w[1]
    for i in range(targ.shape[0]):
        targ[i] = polyak_w * targ[i] + one_minus_polyak_w * src[i]


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
