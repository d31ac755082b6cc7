"""The replay kernels: storing a checked transition in the ring arrays, and sampling a
minibatch uniformly with replacement (indices from the caller's SplitMix64 state) and gathering
it, observations normalized as they are copied (numddpg.kernels.normalize); with n-step
returns the gather also sums each row's next rewards along its episode (``nstep_return``,
docs/math.md section 12).  The replay buffer that owns the arrays is numddpg.engine.buffer.
"""
from collections import namedtuple

import numpy as np
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


@njit(cache=True)
def nstep_return(j, n, gamma, rew, next_row, size):
    """(G, gamma^m, last) of the n-step return from row j (docs/math.md section 12):

        G = sum_{k < m} gamma^k r_{t+k},   gamma^m,   last = the row of step t+m-1

    following ``next_row`` (N,) int64 (the row of the same env's next transition in the same
    episode, -1 where the episode ended or its next transition is not stored yet) for at most
    n - 1 links, so m <= n; rew (N,).  A link outside rows 0..size-1 ends the sum too (the
    buffer never writes one: this keeps a damaged array from reading past the filled rows).
    Sums in float64, in the order k = 0, 1, ..."""
    G = 0.0
    gamma_k = 1.0
    last = j
    for _ in range(n):
        G += gamma_k * rew[j]
        gamma_k *= gamma
        last = j
        j = next_row[j]
        if j < 0 or j >= size:
            break
    return G, gamma_k, last


@njit(cache=True)
def gather_nstep(idx, size, n, gamma, buf_obs, buf_act, buf_rew, buf_obs2, buf_done, next_row,
                 shift, scale, clip, obs, act, rew, obs2, done, discount):
    """gather_batch with n-step returns: row i of the minibatch is (s_t, a_t, G, s_{t+m},
    d_{t+m-1}) for t = idx[i], with discount[i] = gamma^m (1 - d_{t+m-1}) (B,) float64, the
    bootstrap's weight in the target (nstep_return gives G, gamma^m and the last row)."""
    for i in range(idx.shape[0]):
        j = idx[i]
        G, gamma_m, last = nstep_return(j, n, gamma, buf_rew, next_row, size)
        for c in range(obs.shape[1]):
            obs[i, c] = normalized(buf_obs[j, c], shift[c], scale[c], clip[0])
            obs2[i, c] = normalized(buf_obs2[last, c], shift[c], scale[c], clip[0])
        for c in range(act.shape[1]):
            act[i, c] = buf_act[j, c]
        rew[i] = G
        done[i] = buf_done[last]
        discount[i] = gamma_m * (1.0 - buf_done[last])


# A one-step replay's next_row: no links (n_steps = 1 never follows one).
NO_LINKS = np.zeros(0, np.int64)

# The replay arrays and the observation normalization the minibatches get (numddpg.normalize;
# the identity map when there is none): what the update kernels sample from.  With n-step
# returns (n_steps > 1) the rows' links next_row (N,) int64 and the discount gamma they are
# summed with (nstep_return); a one-step replay has NO_LINKS, n_steps 1 (gamma unused).
Replay = namedtuple("Replay", ["obs", "act", "rew", "obs2", "done", "shift", "scale", "clip",
                               "next_row", "n_steps", "gamma"], defaults=(NO_LINKS, 1, 1.0))


@njit(cache=True)
def sample_batch(replay, size, rng_state, idx, batch):
    """A minibatch of B = idx.shape[0] rows drawn uniformly with replacement from the first
    ``size`` rows of ``replay`` (a Replay) into ``batch`` (a numddpg.update.Batch)."""
    sample_indices(rng_state, size, idx)
    gather_batch(idx, replay.obs, replay.act, replay.rew, replay.obs2, replay.done,
                 replay.shift, replay.scale, replay.clip,
                 batch.obs, batch.act, batch.rew, batch.obs2, batch.done)


@njit(cache=True)
def sample_nstep(replay, size, rng_state, idx, batch):
    """sample_batch for a replay of n-step returns (replay.n_steps > 1): gather_nstep, which
    writes the batch's discount (B,) too."""
    sample_indices(rng_state, size, idx)
    gather_nstep(idx, size, replay.n_steps, replay.gamma, replay.obs, replay.act, replay.rew,
                 replay.obs2, replay.done, replay.next_row, replay.shift, replay.scale,
                 replay.clip, batch.obs, batch.act, batch.rew, batch.obs2, batch.done,
                 batch.discount)
