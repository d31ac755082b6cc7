"""Observation normalization by running statistics (the role of SB3's VecNormalize for obs).

    s_hat = clip((s - mean) / sqrt(var + eps), -clip, clip)      elementwise, (obs_dim,)

``mean`` and ``var`` are the running mean and (population) variance of every observation the
training env returned, merged batch by batch with Chan et al.'s parallel update; they start at
mean 0, var 1 and count 1e-4, eps is 1e-8 and clip 10, as Stable-Baselines3's RunningMeanStd
and VecNormalize (docs/reference.md).  eps (the ``obs_norm_eps`` hyperparameter) bounds the
scale: sqrt(var + eps) >= sqrt(eps), so an entry that never varies is not magnified by more
than 1 / sqrt(eps) when it does (the HER papers' floor of 0.01 on the std is eps = 1e-4;
docs/math.md section 10).  The replay buffer keeps the raw observations and the
minibatch is normalized with the *current* statistics as it is gathered (numddpg.kernels.replay), as
SB3's off-policy algorithms do; the policy normalizes what it acts on with the same statistics.
Test episodes and evaluation use them frozen.  The state (mean, var, count) goes into
checkpoints, and ``shift``/``scale`` into policy files.
"""
import numpy as np

from ..kernels.normalize import (EPS, START_COUNT, merge_stats, normalize_into,  # noqa: F401
                                 normalized)


class ObsNormalizer:
    """Running statistics of observations and the affine map they define (module docstring).

    Attributes: ``mean``, ``var`` (o,), ``count`` (1,) float64; ``shift`` (= mean) and
    ``scale`` (= 1 / sqrt(var + eps)), (o,), and ``clip`` (1,): what the kernels read; ``eps``.
    """

    def __init__(self, obs_dim, clip=10.0, eps=EPS):
        self.eps = float(eps)
        self.mean = np.zeros(obs_dim)
        self.var = np.ones(obs_dim)
        self.count = np.full(1, START_COUNT)
        self.shift = np.zeros(obs_dim)
        self.scale = np.full(obs_dim, 1.0 / np.sqrt(1.0 + self.eps))
        self.clip = np.full(1, float(clip))

    @classmethod
    def identity(cls, obs_dim):
        """shift 0, scale 1, clip inf: the map that changes no number (bit for bit)."""
        norm = cls(obs_dim, np.inf)
        norm.scale[:] = 1.0
        return norm

    @classmethod
    def from_map(cls, shift, scale, clip, eps=EPS):
        """The normalizer whose map is (shift, scale, clip), e.g. from a policy file."""
        norm = cls(len(shift), clip, eps)
        norm.restore({"mean": np.asarray(shift, np.float64),
                      "var": 1.0 / np.asarray(scale, np.float64) ** 2 - norm.eps,
                      "count": np.ones(1)})
        norm.shift[:], norm.scale[:] = shift, scale
        return norm

    def update(self, x):
        """Merge one observation (o,) or a batch (n, o) into the statistics."""
        x = np.asarray(x, np.float64)
        merge_stats(self.mean, self.var, self.count, x.reshape(-1, self.mean.shape[0]),
                    self.shift, self.scale, self.eps)

    def __call__(self, x):
        """The normalized observation(s), as new float64 arrays."""
        x = np.asarray(x, np.float64)
        return np.clip((x - self.shift) * self.scale, -self.clip[0], self.clip[0])

    def state(self):
        """{"mean", "var", "count"}: what a checkpoint saves."""
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def restore(self, state):
        """Put back a ``state`` (checked by the caller: shapes, var >= 0, count > 0)."""
        self.mean[:], self.var[:], self.count[:] = state["mean"], state["var"], state["count"]
        self.shift[:] = self.mean
        self.scale[:] = 1.0 / np.sqrt(self.var + self.eps)
