"""The replay kernels: storing a checked transition in the ring arrays, and sampling a
minibatch uniformly with replacement (indices from the caller's SplitMix64 state) and gathering
it, observations normalized as they are copied (numddpg.kernels.normalize).  The replay buffer
that owns the arrays is numddpg.engine.buffer.
"""
from collections import namedtuple

from numba import njit

from . import rng as _rng
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
def transition_code(obs, act, rew, obs2, lim):
    """STORED if every number of the transition (s, a, r, s') is finite in the storage dtype,
    else the code of the first bad field.

    lim : the largest finite value of the storage dtype (float32: 3.4e38), so that a value
        finite in float64 but infinite once stored (a reward of 1e39) is refused too.
    """
    if not _all_finite(obs2, lim):
        return BAD_OBS2
    if not abs(rew) <= lim:
        return BAD_REW
    if not _all_finite(obs, lim):
        return BAD_OBS
    if not _all_finite(act, lim):
        return BAD_ACT
    return STORED


@njit(cache=True)
def write_row(buf_obs, buf_act, buf_rew, buf_obs2, buf_done, ptr, obs, act, rew, obs2, done):
    """Copy one transition into row ``ptr`` of the ring arrays (casting to their dtype)."""
    for c in range(obs.shape[0]):
        buf_obs[ptr, c] = obs[c]
        buf_obs2[ptr, c] = obs2[c]
    for c in range(act.shape[0]):
        buf_act[ptr, c] = act[c]
    buf_rew[ptr] = rew
    buf_done[ptr] = done


@njit(cache=True)
def store_kernel(buf_obs, buf_act, buf_rew, buf_obs2, buf_done, ptr, obs, act, rew, obs2, done,
                 lim):
    """Write one transition into row ``ptr`` after checking it is finite in the storage dtype.

    buf_* (N, o), (N, a), (N,), (N, o), (N,)   the ring arrays
    obs, obs2 (o,); act (a,); rew, done scalars (the caller has checked these shapes)
    lim : the largest finite value of the storage dtype (transition_code).
    Returns STORED, or the code of the first bad field (and then writes nothing).
    """
    code = transition_code(obs, act, rew, obs2, lim)
    if code == STORED:
        write_row(buf_obs, buf_act, buf_rew, buf_obs2, buf_done, ptr, obs, act, rew, obs2, done)
    return code


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
