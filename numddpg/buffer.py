"""The replay buffer: preallocated float32 ring arrays of transitions (s, a, r, s', d).

Row i holds one transition; ``ptr`` is the next row to write and ``size`` the number of filled
rows (it grows to ``max_size``, then the oldest rows are overwritten).  DDPG samples minibatches
uniformly *with replacement* from rows 0..size-1; the training loop does that inside the agent's
jitted burst (``DDPGAgent.update_burst`` reads ``obs, act, rew, obs2, done, size`` directly),
and ``ReplayBuffer.sample`` does the same for users with the same kernels (``sample_indices``,
``gather_batch``, together ``sample_batch``), which live here.
"""
from collections import namedtuple

import numpy as np
from numba import njit

from . import rng as _rng
from .checks import check_dim, check_memory
from .normalize import normalized

# Codes returned by store_kernel.
STORED, BAD_OBS2, BAD_REW, BAD_OBS, BAD_ACT = range(5)
BAD_WHAT = {BAD_OBS2: "observation", BAD_REW: "reward", BAD_OBS: "observation (the one "
             "acted on)", BAD_ACT: "action"}   # non-finite, or beyond the storage dtype's range


@njit(cache=True)
def _all_finite(x, lim):
    for i in range(x.shape[0]):
        if not abs(x[i]) <= lim:               # False for NaN, inf and what the storage can't hold
            return False
    return True


@njit(cache=True)
def store_kernel(buf_obs, buf_act, buf_rew, buf_obs2, buf_done, ptr, obs, act, rew, obs2, done,
                 lim):
    """Write one transition into row ``ptr`` after checking it is finite in the storage dtype.

    buf_* (N, o), (N, a), (N,), (N, o), (N,)   the ring arrays
    obs, obs2 (o,); act (a,); rew, done scalars (the caller has checked these shapes)
    lim : the largest finite value of the storage dtype (float32: 3.4e38), so that a value
        finite in float64 but infinite once stored (a reward of 1e39) is refused too.
    Returns STORED, or the code of the first bad field (and then writes nothing).
    """
    if not _all_finite(obs2, lim):
        return BAD_OBS2
    if not abs(rew) <= lim:
        return BAD_REW
    if not _all_finite(obs, lim):
        return BAD_OBS
    if not _all_finite(act, lim):
        return BAD_ACT
    for c in range(obs.shape[0]):
        buf_obs[ptr, c] = obs[c]
        buf_obs2[ptr, c] = obs2[c]
    for c in range(act.shape[0]):
        buf_act[ptr, c] = act[c]
    buf_rew[ptr] = rew
    buf_done[ptr] = done
    return STORED


@njit(cache=True)
def sample_indices(rng_state, size, idx):
    """idx[i] ~ uniform{0, ..., size-1}, with replacement, from the caller's generator state."""
    for i in range(idx.shape[0]):
        idx[i] = _rng.randint(rng_state, size)


@njit(cache=True)
def gather_batch(idx, buf_obs, buf_act, buf_rew, buf_obs2, buf_done, shift, scale, clip,
                 obs, act, rew, obs2, done):
    """Copy replay rows idx (B,) into the preallocated minibatch arrays (casting to their dtype),
    normalizing the observations with shift, scale (o,) and clip (1,) (numddpg.normalize)."""
    for i in range(idx.shape[0]):
        j = idx[i]
        for c in range(obs.shape[1]):
            obs[i, c] = normalized(buf_obs[j, c], shift[c], scale[c], clip[0])
            obs2[i, c] = normalized(buf_obs2[j, c], shift[c], scale[c], clip[0])
        for c in range(act.shape[1]):
            act[i, c] = buf_act[j, c]
        rew[i] = buf_rew[j]
        done[i] = buf_done[j]


# The replay arrays and the observation normalization the minibatches get (numddpg.normalize;
# the identity map when there is none): what the update kernels sample from.
Replay = namedtuple("Replay", ["obs", "act", "rew", "obs2", "done", "shift", "scale", "clip"])


@njit(cache=True)
def sample_batch(replay, size, rng_state, idx, batch):
    """A minibatch of B = idx.shape[0] rows drawn uniformly with replacement from the first
    ``size`` rows of ``replay`` (a Replay) into ``batch`` (a numddpg.update.Batch)."""
    sample_indices(rng_state, size, idx)
    gather_batch(idx, replay.obs, replay.act, replay.rew, replay.obs2, replay.done,
                 replay.shift, replay.scale, replay.clip,
                 batch.obs, batch.act, batch.rew, batch.obs2, batch.done)


def _vector(x, n, name):
    """x as a 1-D float64 array of length n, or ValueError naming it."""
    arr = np.asarray(x)
    if arr.shape != (n,) or arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real vector of shape ({n},), got {arr.dtype} "
                         f"{arr.shape}")
    return arr.astype(np.float64)


class NonFiniteTransition(ValueError):
    """A transition with a NaN or infinite observation, reward or action."""


class ReplayBuffer:
    """Ring buffer of ``max_size`` transitions in preallocated arrays.

    Parameters
    ----------
    obs_dim, act_dim : int
    max_size : int — capacity (the ``replay_size`` hyperparameter).
    dtype : storage dtype, float32 by default (as the reference implementation).
    seed : int or None — seeds ``sample``'s own generator state (the training loop does not
        use it: the agent samples with its own ``rng_state``).

    Attributes
    ----------
    obs, obs2 (max_size, obs_dim); act (max_size, act_dim); rew, done (max_size,)
    ptr : next row to write.   size : number of filled rows.   max_size : capacity.
    rng_state : (1,) uint64, the state of ``sample``'s generator (numddpg.rng).
    """

    def __init__(self, obs_dim, act_dim, max_size, dtype=np.float32, seed=None):
        self.obs_dim = check_dim("obs_dim", obs_dim)
        self.act_dim = check_dim("act_dim", act_dim)
        self.max_size = check_dim("replay_size", max_size)
        self.dtype = np.dtype(dtype)
        n, o, a = self.max_size, self.obs_dim, self.act_dim
        check_memory(n * (2 * o + a + 2) * self.dtype.itemsize,
                     f"a replay buffer of {n:,} transitions (replay_size) of obs_dim={o}, "
                     f"act_dim={a}")
        self.obs = np.zeros((n, o), self.dtype)
        self.act = np.zeros((n, a), self.dtype)
        self.rew = np.zeros(n, self.dtype)
        self.obs2 = np.zeros((n, o), self.dtype)
        self.done = np.zeros(n, self.dtype)
        self.lim = float(np.finfo(self.dtype).max)    # larger values would be stored as inf
        self.ptr = 0
        self.size = 0
        self.rng_state = _rng.new_state(
            np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])

    def __len__(self):
        return self.size

    def store(self, obs, act, rew, obs2, done):
        """Append (s, a, r, s', d), overwriting the oldest row once full.

        obs, obs2 : (obs_dim,) arrays; act : (act_dim,) array; rew : float; done : 0/1.
        Raises ValueError for other shapes, NonFiniteTransition (and stores nothing) if any
        value is NaN or infinite (in the storage dtype).
        """
        obs, obs2 = (_vector(x, self.obs_dim, name) for x, name in ((obs, "obs"), (obs2, "obs2")))
        act = _vector(act, self.act_dim, "act")
        code = store_kernel(self.obs, self.act, self.rew, self.obs2, self.done, self.ptr,
                            obs, act, float(rew), obs2, float(done), self.lim)
        if code != STORED:
            raise NonFiniteTransition(
                f"non-finite {BAD_WHAT[code]} in transition obs={obs}, act={act}, rew={rew}, "
                f"obs2={obs2}")
        self.ptr = self.ptr + 1 if self.ptr + 1 < self.max_size else 0
        if self.size < self.max_size:
            self.size += 1

    def store_fast(self, obs, act, rew, obs2, done):
        """``store`` for the training loop: returns the store_kernel code instead of raising,
        and expects obs/obs2/act as 1-D float arrays of the right lengths (the loop checks what
        the env returns, numddpg.envs.check_obs) and rew/done as floats (no conversions)."""
        code = store_kernel(self.obs, self.act, self.rew, self.obs2, self.done, self.ptr,
                            obs, act, rew, obs2, done, self.lim)
        if code == STORED:
            self.ptr = self.ptr + 1 if self.ptr + 1 < self.max_size else 0
            if self.size < self.max_size:
                self.size += 1
        return code

    def sample(self, batch_size):
        """A minibatch of ``batch_size`` rows drawn uniformly with replacement from the filled
        part: dict of new arrays obs (B, o), act (B, a), rew (B,), obs2 (B, o), done (B,)."""
        B = check_dim("batch_size", batch_size)
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer; store transitions first")
        idx = np.empty(B, np.int64)
        sample_indices(self.rng_state, self.size, idx)
        out = {"obs": np.empty((B, self.obs_dim), self.dtype),
               "act": np.empty((B, self.act_dim), self.dtype),
               "rew": np.empty(B, self.dtype),
               "obs2": np.empty((B, self.obs_dim), self.dtype),
               "done": np.empty(B, self.dtype)}
        o = self.obs_dim
        gather_batch(idx, self.obs, self.act, self.rew, self.obs2, self.done, np.zeros(o),
                     np.ones(o), np.full(1, np.inf), out["obs"], out["act"], out["rew"],
                     out["obs2"], out["done"])
        return out

    # -- state in a checkpoint (numddpg.algorithms saves and restores it) -----------------------
    FIELDS = ("obs", "act", "rew", "obs2", "done")

    def state(self, include_rows=True):
        """(arrays, record) of the buffer's state: the filled rows (unless include_rows is
        False) and the sampler state; the record holds ptr, size, max_size, dtype, saved."""
        arrays = {f: getattr(self, f)[:self.size] for f in self.FIELDS} if include_rows else {}
        arrays["rng_state"] = self.rng_state
        record = {"ptr": self.ptr, "size": self.size, "max_size": self.max_size,
                  "dtype": self.dtype.name, "saved": bool(include_rows)}
        return arrays, record

    def row_shapes(self, n):
        """{field: shape} of n rows."""
        o, a = self.obs_dim, self.act_dim
        return {"obs": (n, o), "act": (n, a), "rew": (n,), "obs2": (n, o), "done": (n,)}

    def restore(self, arrays, record):
        """Put back a ``state``: rows and sampler state (arrays already checked against
        ``row_shapes``); without saved rows the buffer restarts empty."""
        for f in self.FIELDS:
            getattr(self, f)[...] = 0
        if record["saved"]:
            for f in self.FIELDS:
                getattr(self, f)[:record["size"]] = arrays[f]
            self.ptr, self.size = record["ptr"], record["size"]
        else:
            self.ptr, self.size = 0, 0
        self.rng_state[...] = arrays["rng_state"]

    def __repr__(self):
        return (f"ReplayBuffer(obs_dim={self.obs_dim}, act_dim={self.act_dim}, "
                f"size={self.size}/{self.max_size}, dtype={self.dtype.name})")
