"""SB3's action-noise classes (NormalActionNoise, OrnsteinUhlenbeckActionNoise) in half-range
units, and how an SB3 model's ``action_noise`` maps onto numddpg's noise hyperparameters.
"""
import math

import numpy as np

from ..checks import check_non_negative

NOISE_HYPERPARAMETERS = ("noise", "act_noise", "ou_sigma", "ou_theta", "ou_dt")


def _noise_vector(name, value):
    arr = np.asarray(value)
    if arr.ndim > 1 or arr.dtype.kind not in "fiu" or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite real number or 1-D array (one entry per "
                         f"action dimension), got {value!r}")
    return np.array(arr, dtype=np.float64, ndmin=1)


def _noise_params(mean, sigma):
    mu, sig = _noise_vector("mean", mean), _noise_vector("sigma", sigma)
    try:
        mu, sig = (np.array(x) for x in np.broadcast_arrays(mu, sig))
    except ValueError:
        raise ValueError(f"mean {mu.shape} and sigma {sig.shape} must have the same shape (one "
                         "entry per action dimension)") from None
    if np.any(sig < 0):
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    return mu, sig


def _noise_dtype(dtype):
    """The float dtype ``noise()`` returns its samples in (SB3's ``dtype`` argument)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise ValueError(f"dtype must be a float dtype (np.float32, 'float64'), got {dtype!r}")
    return dt


def _uniform(sig):
    """sig's one value if all its entries are equal, else None."""
    return float(sig[0]) if np.all(sig == sig[0]) else None


class ActionNoise:
    """SB3's action-noise interface: ``noise()`` returns one sample (drawn from NumPy's global
    generator, as in SB3), ``reset()`` starts a new episode.  numddpg's loop calls
    ``sample(rng, out)`` instead, which draws from the loop's seeded generator."""

    def reset(self):
        """Called at the start of every episode."""

    def __call__(self):
        raise NotImplementedError

    def native_hyperparameters(self):
        """numddpg's noise hyperparameters equal to this noise, or None if there are none."""
        return None

    @property
    def kind(self):
        """numddpg's noise kind this noise is ("gaussian", "ou"), or None: the vector-env loop
        gives each further env a native process of that kind (else this one serves all)."""
        native = self.native_hyperparameters()
        return None if native is None else native["noise"]


class NormalActionNoise(ActionNoise):
    """n ~ N(mean, sigma^2) i.i.d. per action dimension, in half-range units.

    With mean 0 and one sigma for all dimensions it is numddpg's noise="gaussian",
    act_noise=sigma, draw for draw (and saved as that).
    """

    def __init__(self, mean, sigma, dtype=np.float32):
        self._mu, self._sigma = _noise_params(mean, sigma)
        self._dtype = _noise_dtype(dtype)
        self._zero_mean = not np.any(self._mu)

    def sample(self, rng, out):
        """One draw from ``rng`` into ``out`` (act_dim,) float64; returns it."""
        rng.standard_normal(out=out)
        out *= self._sigma
        if not self._zero_mean:
            out += self._mu
        return out

    def __call__(self):
        return np.random.normal(self._mu, self._sigma).astype(self._dtype)

    def native_hyperparameters(self):
        sigma = _uniform(self._sigma)
        if self._zero_mean and sigma is not None:
            return {"noise": "gaussian", "act_noise": sigma}
        return None

    def __repr__(self):
        return f"NormalActionNoise(mu={self._mu}, sigma={self._sigma})"


class OrnsteinUhlenbeckActionNoise(ActionNoise):
    """x <- x + theta (mean - x) dt + sigma sqrt(dt) N(0, 1), per action dimension, in
    half-range units; x restarts at ``initial_noise`` (default 0) at every episode start.

    With mean 0, one sigma and no initial_noise it is numddpg's noise="ou" (ou_sigma, ou_theta,
    ou_dt), draw for draw (and saved as that, its state x included).
    """

    def __init__(self, mean, sigma, theta=0.15, dt=1e-2, initial_noise=None,
                 dtype=np.float32):
        self._mu, self._sigma = _noise_params(mean, sigma)
        self._theta = check_non_negative("theta", theta)
        self._dt = check_non_negative("dt", dt)
        self._dtype = _noise_dtype(dtype)
        if initial_noise is not None:
            initial_noise = _noise_vector("initial_noise", initial_noise)
            if initial_noise.shape != self._mu.shape:
                raise ValueError(f"initial_noise must have the shape of mean {self._mu.shape}, "
                                 f"got {initial_noise.shape}")
        self.initial_noise = initial_noise
        # x <- (1 - theta dt) x + theta dt mean + sigma sqrt(dt) n, in numddpg.noise.OUNoise's
        # order of operations (so that the two agree bit for bit)
        self._decay = 1.0 - self._theta * self._dt
        self._scale = self._sigma * math.sqrt(self._dt)
        self._drift = self._theta * self._dt * self._mu
        self.x = np.zeros(self._mu.shape, np.float64)
        self.reset()

    @property
    def noise_prev(self):
        """The process's current value (SB3's name for x)."""
        return self.x

    @noise_prev.setter
    def noise_prev(self, value):
        self.x[...] = value

    def reset(self):
        self.x[...] = 0.0 if self.initial_noise is None else self.initial_noise

    def _advance(self, n):
        n *= self._scale
        self.x *= self._decay
        if np.any(self._drift):
            self.x += self._drift
        self.x += n

    def sample(self, rng, out):
        """Advance x one step with a draw from ``rng``; write x into ``out`` and return it."""
        rng.standard_normal(out=out)
        self._advance(out)
        out[:] = self.x
        return out

    def __call__(self):
        self._advance(np.random.normal(size=self.x.shape))
        return self.x.astype(self._dtype)

    def native_hyperparameters(self):
        sigma = _uniform(self._sigma)
        if np.any(self._mu) or sigma is None or (self.initial_noise is not None
                                                 and np.any(self.initial_noise)):
            return None
        return {"noise": "ou", "ou_sigma": sigma, "ou_theta": self._theta, "ou_dt": self._dt}

    def __repr__(self):
        return f"OrnsteinUhlenbeckActionNoise(mu={self._mu}, sigma={self._sigma})"


class _ForeignNoise:
    """The loop's noise protocol (sample(rng, out), reset()) around a noise numddpg's
    hyperparameters cannot express (a mean, one sigma per dimension, any SB3-style object with
    ``__call__`` and ``reset``).  It has no ``x``, so checkpoints record noise="none"."""

    def __init__(self, noise, act_dim):
        self.noise, self.act_dim = noise, act_dim

    def sample(self, rng, out):
        if hasattr(self.noise, "sample"):
            return self.noise.sample(rng, out)
        v = np.asarray(self.noise(), dtype=np.float64)
        if v.shape != out.shape or not np.all(np.isfinite(v)):
            raise ValueError(f"action_noise {self.noise!r} returned {v!r}; it must return "
                             f"{out.shape[0]} finite numbers (one per action dimension)")
        out[:] = v
        return out

    def reset(self):
        self.noise.reset()


SB3_NOISE_MODULE = "stable_baselines3.common.noise"


def own_noise(action_noise):
    """``action_noise``, or numddpg.sb3's equal of SB3's own NormalActionNoise /
    OrnsteinUhlenbeckActionNoise (the RL Zoo makes these): the same mean, sigma (theta, dt,
    initial_noise and state), drawn from the loop's seeded generator and saved in the model's
    file.  Subclasses and other objects are returned as they are (they train as given)."""
    cls = type(action_noise)
    if cls.__module__ != SB3_NOISE_MODULE:
        return action_noise
    if cls.__name__ == "NormalActionNoise":
        return NormalActionNoise(action_noise._mu, action_noise._sigma, action_noise._dtype)
    if cls.__name__ == "OrnsteinUhlenbeckActionNoise":
        noise = OrnsteinUhlenbeckActionNoise(
            action_noise._mu, action_noise._sigma, theta=action_noise._theta,
            dt=action_noise._dt, initial_noise=action_noise.initial_noise,
            dtype=action_noise._dtype)
        noise.noise_prev = action_noise.noise_prev
        return noise
    return action_noise


def noise_hyperparameters(action_noise):
    """numddpg's noise hyperparameters equal to ``action_noise`` ({"noise": "none"} for None),
    or None when they cannot express it."""
    if action_noise is None:
        return {"noise": "none"}
    if not (callable(action_noise) and callable(getattr(action_noise, "reset", None))):
        raise TypeError(f"action_noise must be None or an action noise (NormalActionNoise, "
                        f"OrnsteinUhlenbeckActionNoise, or an object with __call__() and "
                        f"reset()), got {action_noise!r} ({type(action_noise).__name__})")
    if isinstance(action_noise, ActionNoise):
        return action_noise.native_hyperparameters()
    return None


def native_noise(action_noise, act_dim, hyperparameters):
    """The loop's noise_process for ``action_noise`` on a native model whose hyperparameters
    are ``hyperparameters``: the object itself when they describe it (a checkpoint then saves
    and restores it as the native process), else a _ForeignNoise around it; None for None."""
    if action_noise is None:
        return None
    shape = getattr(action_noise, "_mu", np.zeros(act_dim)).shape
    if shape != (act_dim,):
        raise ValueError(f"action_noise {action_noise!r} has {shape[0]} dimension(s), the action "
                         f"space {act_dim}: give mean and sigma one entry per action dimension")
    native = noise_hyperparameters(action_noise)
    if native is not None and native == {k: hyperparameters[k] for k in native}:
        return action_noise                     # the same draws as the native process
    return _ForeignNoise(action_noise, act_dim)


