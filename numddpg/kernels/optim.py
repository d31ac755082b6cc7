"""Adam (with optional weight decay) and polyak averaging, in place on flat parameter vectors
(docs/math.md, "Adam", "Weight decay", "Polyak").

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
 C_POLYAK, C_ONE_MINUS_POLYAK, C_DECAY, C_L2, N_COEFFICIENTS) = range(12)


@njit(cache=True)
def adam_coefficients(dtype_like, t, lr, beta1, beta2, eps, polyak, weight_decay=0.0,
                      decoupled=True):
    """The scalars of one Adam step at step number t (and of its fused polyak update), in the
    C_* slots, in the parameters' dtype, so that the element loops run in float32 for float32
    networks (8 lanes per AVX register instead of 4).

    Weight decay lambda = ``weight_decay``: decoupled (torch.optim.AdamW) scales the parameters
    by C_DECAY = 1 - lr lambda before the step; coupled (torch.optim.Adam's weight_decay) adds
    C_L2 = lambda times the parameters to the gradient.  Without it, C_DECAY = 1 and C_L2 = 0:
    p * 1 is p exactly, and adam_polyak_span runs no L2 term at all.
    """
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
    c[C_DECAY] = 1.0 - lr * weight_decay if decoupled else 1.0
    c[C_L2] = 0.0 if decoupled else weight_decay
    return c


@njit(cache=True, inline="always")
def _adam_delta(m, v, i, g, k):
    """Element i of one Adam step on the gradient g: m[i] and v[i] updated in place, and the
    step returned, step_size m / (sqrt(v) inv_sqrt_bc2 + eps) (the caller subtracts it from
    p[i]); k = (beta1, 1 - beta1, beta2, 1 - beta2, step_size, inv_sqrt_bc2, eps)."""
    b1, c1, b2, c2, step_size, inv_sqrt_bc2, e = k
    mi = b1 * m[i] + c1 * g
    vi = b2 * v[i] + c2 * g * g
    m[i] = mi
    v[i] = vi
    return step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + e)


@njit(cache=True, error_model="numpy")
def adam_polyak_span(params, grad, m, v, c, targ, average, lo, hi):
    """Elements lo..hi-1 of one Adam step with coefficients c = adam_coefficients(...) and no
    weight decay, and, when ``average``, the polyak update of ``targ`` from the new params in
    the same pass:

        m <- beta1 m + (1 - beta1) g             v <- beta2 v + (1 - beta2) g^2
        p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) * (1 / sqrt(1 - beta2^t)) + eps)
        targ <- polyak targ + (1 - polyak) p     (only when average)

    ``grad`` is read only.  The Adam element loop of every update without weight decay:
    adam_step, adam_polyak_step, adam_decay_span and the updates' parameter-split steps
    (numddpg.kernels.update) all run it.  Fusing the polyak update is valid wherever nothing
    reads the network between its Adam step and its polyak update (true in DDPG and TD3: the
    targets are only read by the next update's target).
    """
    k = (c[C_BETA1], c[C_ONE_MINUS_BETA1], c[C_BETA2], c[C_ONE_MINUS_BETA2], c[C_STEP_SIZE],
         c[C_INV_SQRT_BC2], c[C_EPS])
    polyak, one_minus_polyak = c[C_POLYAK], c[C_ONE_MINUS_POLYAK]
    # Loops over slices from 0: with indices lo..hi Numba cannot prove them non-negative and
    # keeps a wrap-around check on every access, which stops LLVM from vectorising (8x slower).
    p, g, m, v, pt = params[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], targ[lo:hi]
    if average:
        for i in range(p.shape[0]):
            p_new = p[i] - _adam_delta(m, v, i, g[i], k)
            p[i] = p_new
            pt[i] = polyak * pt[i] + one_minus_polyak * p_new
    else:
        for i in range(p.shape[0]):
            p[i] -= _adam_delta(m, v, i, g[i], k)


@njit(cache=True, error_model="numpy")
def adam_decay_span(params, grad, m, v, c, targ, average, lo, hi):
    """adam_polyak_span with weight decay lambda, as c's C_DECAY and C_L2 slots say:

        g <- g + lambda p                        (coupled weight decay: C_L2 = lambda)
        p <- decay p - (the Adam step of g)      (decoupled, AdamW: decay = C_DECAY = 1 - lr lambda)

    Coefficients without decay (C_DECAY = 1, C_L2 = 0) run adam_polyak_span itself, which
    neither multiplies by 1 nor adds 0 p (g + 0 p would turn a gradient of -0.0 into +0.0).
    A kernel of its own so that updates without weight decay never compile these loops."""
    decay, l2 = c[C_DECAY], c[C_L2]
    if decay == 1.0 and l2 == 0.0:
        adam_polyak_span(params, grad, m, v, c, targ, average, lo, hi)
        return
    k = (c[C_BETA1], c[C_ONE_MINUS_BETA1], c[C_BETA2], c[C_ONE_MINUS_BETA2], c[C_STEP_SIZE],
         c[C_INV_SQRT_BC2], c[C_EPS])
    polyak, one_minus_polyak = c[C_POLYAK], c[C_ONE_MINUS_POLYAK]
    p, g, m, v, pt = params[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], targ[lo:hi]
    if average:
        for i in range(p.shape[0]):
            p_new = decay * p[i] - _adam_delta(m, v, i, g[i] + l2 * p[i], k)
            p[i] = p_new
            pt[i] = polyak * pt[i] + one_minus_polyak * p_new
    else:
        for i in range(p.shape[0]):
            p[i] = decay * p[i] - _adam_delta(m, v, i, g[i] + l2 * p[i], k)


@njit(cache=True)
def adam_step(params, grad, m, v, t, lr, beta1, beta2, eps, weight_decay=0.0, decoupled=True):
    """One Adam step with torch.optim.Adam's formula; ``t`` is the step number, starting at 1.

    p -= lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - beta1^t), v_hat = v / (1 -
    beta2^t), written as in adam_polyak_span.  params, grad, m, v: (P,); grad is read only.
    (PyTorch divides sqrt(v) by sqrt(1 - beta2^t) where this multiplies by its inverse: equal up
    to rounding.)  weight_decay lambda > 0: with ``decoupled``, torch.optim.AdamW's
    p <- p - lr lambda p before the step; without, torch.optim.Adam's g <- g + lambda p.
    """
    c = adam_coefficients(params, t, lr, beta1, beta2, eps, 0.0, weight_decay, decoupled)
    adam_decay_span(params, grad, m, v, c, params, False, 0, params.shape[0])


@njit(cache=True)
def adam_polyak_step(params, grad, m, v, t, lr, beta1, beta2, eps, targ, polyak,
                     weight_decay=0.0, decoupled=True):
    """adam_step on params, then polyak_update(targ, params, polyak), fused into one pass over
    memory (adam_polyak_span)."""
    c = adam_coefficients(params, t, lr, beta1, beta2, eps, polyak, weight_decay, decoupled)
    adam_decay_span(params, grad, m, v, c, targ, True, 0, params.shape[0])


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
    """Adam state for one flat parameter vector: moments m, v (same layout) and step count t;
    ``weight_decay`` and ``decoupled`` as adam_step's (AdamW: decoupled=True)."""

    def __init__(self, n, lr, dtype, beta1=ADAM_BETA1, beta2=ADAM_BETA2, eps=ADAM_EPS,
                 weight_decay=0.0, decoupled=True):
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a positive finite number, got {lr!r}")
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), beta1, beta2, eps
        self.weight_decay, self.decoupled = float(weight_decay), bool(decoupled)
        self.m = np.zeros(n, dtype)
        self.v = np.zeros(n, dtype)
        self.t = 0

    def step(self, params, grad):
        """Apply one Adam step to ``params`` in place using ``grad``."""
        self.t += 1
        adam_step(params, grad, self.m, self.v, self.t, self.lr, self.beta1, self.beta2, self.eps,
                  self.weight_decay, self.decoupled)
