"""The observation normalization's kernels: merging a batch into the running mean and variance
(Chan et al.'s parallel update) and the map clip((s - shift) * scale).  The running state that
owns the arrays is numddpg.engine.normalizer; the math is in its docstring.  Also the reward
map clip(r / sqrt(var + eps)) of SB3's VecNormalize, applied to the stored rewards before a
training round (numddpg.sb3.vecnormalize).
"""
import numpy as np
from numba import njit

EPS = 1e-8                     # SB3's VecNormalize epsilon: the default of ``obs_norm_eps``
START_COUNT = 1e-4


@njit(cache=True)
def merge_stats(mean, var, count, x, shift, scale, eps):
    """Merge the rows of x (n, o) into the running mean/var/count (count (1,)), in place, and
    refresh shift = mean, scale = 1 / sqrt(var + eps)."""
    n = x.shape[0]
    total = count[0] + n
    for c in range(x.shape[1]):
        m = 0.0
        for i in range(n):
            m += x[i, c]
        m /= n
        v = 0.0
        for i in range(n):
            v += (x[i, c] - m) ** 2
        v /= n
        delta = m - mean[c]
        m2 = var[c] * count[0] + v * n + delta * delta * count[0] * n / total
        mean[c] += delta * n / total
        var[c] = m2 / total
        shift[c] = mean[c]
        scale[c] = 1.0 / np.sqrt(var[c] + eps)
    count[0] = total


@njit(cache=True)
def normalized(x, shift, scale, clip):
    """clip((x - shift) * scale, -clip, clip) for one number; the identity map (0, 1, inf)
    returns x unchanged, bit for bit."""
    return min(max((x - shift) * scale, -clip), clip)


@njit(cache=True)
def normalize_into(x, shift, scale, clip, out):
    """out = clip((x - shift) * scale, -clip[0], clip[0]); x, shift, scale, out (o,)."""
    for c in range(out.shape[0]):
        out[c] = normalized(x[c], shift[c], scale[c], clip[0])


@njit(cache=True)
def scaled_rewards_into(rew, size, denominator, clip, out):
    """out[i] = clip(rew[i] / denominator, -clip, clip) for i < size: rewards normalized by
    the running return's standard deviation (SB3's VecNormalize: denominator = sqrt(var +
    eps)), in float64, stored in out's dtype.  rew, out (N,); rows from size on untouched."""
    for i in range(size):
        out[i] = min(max(rew[i] / denominator, -clip), clip)
