"""Adam and polyak averaging, in place on flat parameter vectors (docs/math.md, "Adam", "Polyak").

Every array here has the flat layout of numddpg.nn: a network's params, its gradient and its two
Adam moments are four 1-D arrays of the same length P.
"""
import numpy as np
from numba import njit

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


@njit(cache=True)
def adam_step(params, grad, m, v, t, lr, beta1, beta2, eps):
    """One Adam step with torch.optim.Adam's arithmetic; ``t`` is the step number, starting at 1.

        m <- beta1 m + (1 - beta1) g             v <- beta2 v + (1 - beta2) g^2
        p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    which is p -= lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - beta1^t),
    v_hat = v / (1 - beta2^t).  params, grad, m, v: (P,); grad is read only.
    """
    step_size = lr / (1.0 - beta1 ** t)
    inv_sqrt_bc2 = 1.0 / np.sqrt(1.0 - beta2 ** t)
    for i in range(params.shape[0]):
        g = grad[i]
        m[i] = beta1 * m[i] + (1.0 - beta1) * g
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g
        params[i] -= step_size * m[i] / (np.sqrt(v[i]) * inv_sqrt_bc2 + eps)


@njit(cache=True)
def polyak_update(targ, src, polyak):
    """targ <- polyak * targ + (1 - polyak) * src, in place (polyak weights the *target*)."""
    c = 1.0 - polyak
    for i in range(targ.shape[0]):
        targ[i] = polyak * targ[i] + c * src[i]


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
