"""Exploration noise for DDPG's behaviour policy, in units of the action half-range.

The behaviour action is  a = clip(mid + half * (u + n), low, high)  where u = tanh(actor(s)) is
the deterministic actor's output in [-1, 1]^a and n is the noise below (``noisy_action``):

    none       n_t = 0                         the actor's own action (SB3's action_noise=None)
    gaussian   n_t ~ N(0, sigma^2)             i.i.d.; sigma = act_noise (0.1: std 0.1 x half)
    ou         n_t = x_t,  x_t = x_{t-1} + theta (0 - x_{t-1}) dt + sigma sqrt(dt) N(0, 1)
               (Ornstein-Uhlenbeck, Lillicrap et al. 2015: theta 0.15, sigma 0.2, dt 1e-2;
               x is reset to 0 at every episode start)

Every draw comes from the numpy Generator the caller passes, and the only other state is OU's
``x``: together they make the noise stream exactly reproducible and resumable.
"""
import math

import numpy as np
from numba import njit

NOISE_TYPES = ("gaussian", "ou", "none")


@njit(cache=True)
def noisy_action(u, mid, half, n, low, high, out):
    """out = clip(mid + half * (u + n), low, high); u, mid, half, n, low, high, out all (a,)."""
    for j in range(out.shape[0]):
        v = mid[j] + half[j] * (u[j] + n[j])
        out[j] = min(max(v, low[j]), high[j])


@njit(cache=True)
def uniform_action(r, low, high, out):
    """out = low + (high - low) * r: a uniform action from uniforms r in [0, 1), all (a,)."""
    for j in range(out.shape[0]):
        out[j] = low[j] + (high[j] - low[j]) * r[j]


@njit(cache=True)
def scale_in_place(x, s):
    """x *= s for a short vector: numpy's ufunc with a Python float costs ~2.7 us a call here,
    the jitted loop ~0.3 us (one env step of Pendulum is ~20 us)."""
    for j in range(x.shape[0]):
        x[j] *= s


@njit(cache=True)
def ou_advance(x, draw, decay, scale, out):
    """x <- decay x + scale draw, then out = x (OUNoise.sample), element by element."""
    for j in range(x.shape[0]):
        x[j] = x[j] * decay + draw[j] * scale
        out[j] = x[j]


class NoNoise:
    """n = 0: exploration by the actor's own actions only (draws nothing from the generator)."""

    kind = "none"

    def __init__(self, act_dim):
        self.act_dim = int(act_dim)

    def reset(self):
        """Nothing to forget between episodes."""

    def sample(self, rng, out):
        out[:] = 0.0
        return out

    def __repr__(self):
        return "NoNoise()"


class GaussianNoise:
    """i.i.d. N(0, sigma^2) per action dimension (sigma in half-range units)."""

    kind = "gaussian"

    def __init__(self, act_dim, sigma):
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"act_noise must be a finite number >= 0, got {sigma!r}")
        self.act_dim = int(act_dim)
        self.sigma = float(sigma)

    def reset(self):
        """Nothing to forget between episodes."""

    def sample(self, rng, out):
        """Write one draw into ``out`` (act_dim,) float64 and return it."""
        rng.standard_normal(out=out)
        scale_in_place(out, self.sigma)
        return out

    def __repr__(self):
        return f"GaussianNoise(sigma={self.sigma})"


class OUNoise:
    """Ornstein-Uhlenbeck process x_t (mean 0), one per action dimension, reset each episode.

    x_t = x_{t-1} - theta x_{t-1} dt + sigma sqrt(dt) N(0, 1); stationary std is
    sigma / sqrt(2 theta) for small dt (0.37 half-ranges with the defaults), with correlation
    time 1 / (theta dt) ~ 667 steps, so within an episode the noise behaves like a slowly
    drifting offset.
    """

    kind = "ou"

    def __init__(self, act_dim, sigma=0.2, theta=0.15, dt=1e-2):
        for name, v in (("ou_sigma", sigma), ("ou_theta", theta), ("ou_dt", dt)):
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        self.act_dim = int(act_dim)
        self.sigma, self.theta, self.dt = float(sigma), float(theta), float(dt)
        self._decay = 1.0 - self.theta * self.dt     # x <- (1 - theta dt) x + ...
        self._scale = self.sigma * math.sqrt(self.dt)
        self.x = np.zeros(self.act_dim, np.float64)

    def reset(self):
        """x <- 0 (the process restarts at its mean at every episode start)."""
        self.x[:] = 0.0

    def sample(self, rng, out):
        """Advance x one step, write it into ``out`` (act_dim,) float64 and return it."""
        rng.standard_normal(out=out)
        ou_advance(self.x, out, self._decay, self._scale, out)
        return out

    def __repr__(self):
        return f"OUNoise(sigma={self.sigma}, theta={self.theta}, dt={self.dt})"


def make_noise(kind, act_dim, act_noise=0.1, ou_sigma=0.2, ou_theta=0.15, ou_dt=1e-2):
    """GaussianNoise(act_noise) for kind "gaussian", OUNoise(ou_sigma, ou_theta, ou_dt) for "ou",
    NoNoise for "none"."""
    if kind == "none":
        return NoNoise(act_dim)
    if kind == "gaussian":
        return GaussianNoise(act_dim, act_noise)
    if kind == "ou":
        return OUNoise(act_dim, ou_sigma, ou_theta, ou_dt)
    raise ValueError(f"noise must be one of {NOISE_TYPES}, got {kind!r}")
