"""The replay buffer: preallocated float32 ring arrays of transitions (s, a, r, s', d).

Row i holds one transition; ``ptr`` is the next row to write and ``size`` the number of filled
rows (it grows to ``max_size``, then the oldest rows are overwritten).  DDPG samples minibatches
uniformly *with replacement* from rows 0..size-1; the training loop does that inside the agent's
jitted burst (``DDPGAgent.update_burst`` reads ``obs, act, rew, obs2, done, size`` directly),
and ``ReplayBuffer.sample`` does the same for users with the same kernels (``sample_indices``,
``gather_batch``, together ``sample_batch``: numddpg.kernels.replay).

With n-step returns (``n_steps`` > 1, docs/math.md section 12) the rows stay one-step
transitions, in the order they were stored (the n envs of a vector env interleaved, a reset
step left out), and one more array links them: ``next_row[i]`` is the row of the same env's
next transition in the same episode, or -1 where the episode ended (terminated or truncated)
or that transition is not stored yet.  A minibatch row then follows at most n - 1 links
(numddpg.kernels.replay.nstep_return), so it never crosses an episode's end, another env's
rows or the write position: a link only ever points to a newer row, and a row's link is reset
when the row is overwritten.
"""
import numpy as np

from ..checks import check_dim, check_int, check_memory, check_unit_interval
from ..files.checkpoint import CheckpointError
from ..kernels import rng as _rng
from ..kernels.replay import (BAD_ACT, BAD_OBS, BAD_OBS2, BAD_REW, BAD_WHAT,  # noqa: F401
                              NO_LINKS, STORED, Replay, gather_batch, gather_nstep,
                              sample_batch, sample_indices, store_kernel)
from .hyperparameters import MAX_N_STEPS


def _vector(x, n, name):
    """x as a 1-D float64 array of length n, or ValueError naming it."""
    arr = np.asarray(x)
    if arr.shape != (n,) or arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real vector of shape ({n},), got {arr.dtype} "
                         f"{arr.shape}")
    return arr.astype(np.float64)


def transition_rows(n, obs_dim, act_dim, dtype, what, extra_row_bytes=0):
    """The zeroed ring arrays obs (n, obs_dim), act (n, act_dim), rew (n,), obs2 (n, obs_dim),
    done (n,) of ``dtype``, after checking that the free memory holds them and
    ``extra_row_bytes`` more per row (TooLarge names ``what``, e.g. "a replay buffer")."""
    o, a = obs_dim, act_dim
    check_memory(n * ((2 * o + a + 2) * np.dtype(dtype).itemsize + extra_row_bytes),
                 f"{what} of {n:,} transitions (replay_size) of obs_dim={o}, act_dim={a}")
    return tuple(np.zeros(shape, dtype) for shape in ((n, o), (n, a), (n,), (n, o), (n,)))


def sampler_state(seed):
    """A buffer's own generator state (numddpg.kernels.rng) from ``seed`` (an int, or None
    for fresh entropy), by way of NumPy's SeedSequence."""
    return _rng.new_state(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])


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
    n_steps : int — 1 (one-step transitions), or the n of n-step returns (module docstring).
    gamma : the discount n-step returns are summed with (n_steps > 1; SB3's NStepReplayBuffer
        takes it too).

    Attributes
    ----------
    obs, obs2 (max_size, obs_dim); act (max_size, act_dim); rew, done (max_size,)
    next_row (max_size,) int64 with n_steps > 1 (module docstring), else empty
    ptr : next row to write.   size : number of filled rows.   max_size : capacity.
    rng_state : (1,) uint64, the state of ``sample``'s generator (numddpg.rng).
    """

    def __init__(self, obs_dim, act_dim, max_size, dtype=np.float32, seed=None, n_steps=1,
                 gamma=0.99):
        self.obs_dim = check_dim("obs_dim", obs_dim)
        self.act_dim = check_dim("act_dim", act_dim)
        self.max_size = check_dim("replay_size", max_size)
        self.n_steps = check_int("n_steps", n_steps, 1, MAX_N_STEPS)
        self.gamma = check_unit_interval("gamma", gamma)
        self.dtype = np.dtype(dtype)
        linked = self.n_steps > 1
        self.obs, self.act, self.rew, self.obs2, self.done = transition_rows(
            self.max_size, self.obs_dim, self.act_dim, self.dtype, "a replay buffer",
            extra_row_bytes=8 if linked else 0)
        # (zeros, untouched until written: each store writes its row's link first)
        self.next_row = np.zeros(self.max_size, np.int64) if linked else NO_LINKS
        self._open = {}          # env -> (row, store number) of its newest transition while
        self._stores = 0         # its episode goes on (n_steps > 1); transitions stored
        self.lim = float(np.finfo(self.dtype).max)    # larger values would be stored as inf
        self.ptr = 0
        self.size = 0
        self.rng_state = sampler_state(seed)

    def __len__(self):
        return self.size

    def store(self, obs, act, rew, obs2, done, truncated=False, env=0):
        """Append (s, a, r, s', d), overwriting the oldest row once full.

        obs, obs2 : (obs_dim,) arrays; act : (act_dim,) array; rew : float; done : 0/1 (the
        episode terminated).  truncated : the episode ended here without terminating (a time
        limit: s' is bootstrapped).  env : which env of several made the transition.  The last
        two matter only to n-step returns (the episode of env ``env`` goes on unless done or
        truncated).  Raises ValueError for other shapes, NonFiniteTransition (and stores
        nothing) if any value is NaN or infinite (in the storage dtype).
        """
        obs, obs2 = (_vector(x, self.obs_dim, name) for x, name in ((obs, "obs"), (obs2, "obs2")))
        act = _vector(act, self.act_dim, "act")
        code = self.store_fast(obs, act, float(rew), obs2, float(done), env,
                               bool(done) or bool(truncated))
        if code != STORED:
            raise NonFiniteTransition(
                f"non-finite {BAD_WHAT[code]} in transition obs={obs}, act={act}, rew={rew}, "
                f"obs2={obs2}")

    def store_fast(self, obs, act, rew, obs2, done, env=0, ended=True):
        """``store`` for the training loop: returns the store_kernel code instead of raising,
        and expects obs/obs2/act as 1-D float arrays of the right lengths (the loop checks what
        the env returns, numddpg.envs.check_obs) and rew/done as floats (no conversions).
        env, ended : the env that made the transition and whether its episode ended here
        (terminated or truncated): n-step returns' links (``link``)."""
        code = store_kernel(self.obs, self.act, self.rew, self.obs2, self.done, self.ptr,
                            obs, act, rew, obs2, done, self.lim)
        if code == STORED:
            if self.n_steps > 1:
                self.link(self.ptr, env, ended)
            self.ptr = self.ptr + 1 if self.ptr + 1 < self.max_size else 0
            if self.size < self.max_size:
                self.size += 1
        return code

    def link(self, row, env, ended):
        """Row ``row`` now holds env ``env``'s newest transition: link its previous one, if its
        episode went on and its row has not been overwritten since (fewer than max_size stores
        ago), to ``row``; this row has no next transition yet, and never will if ``ended``."""
        self.next_row[row] = -1
        previous = self._open.pop(env, None)
        if previous is not None and self._stores - previous[1] < self.max_size:
            self.next_row[previous[0]] = row
        if not ended:
            self._open[env] = (row, self._stores)
        self._stores += 1

    def end_episodes(self):
        """Every env's episode in progress is dropped (a new env, a loaded model): no later
        transition is linked to one stored before."""
        self._open.clear()

    def sample(self, batch_size):
        """A minibatch of ``batch_size`` rows drawn uniformly with replacement from the filled
        part: dict of new arrays obs (B, o), act (B, a), rew (B,), obs2 (B, o), done (B,); with
        n_steps > 1 rows of n-step returns (numddpg.kernels.replay.gather_nstep), and
        discount (B,) float64, each row's gamma^m (1 - d)."""
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
        identity = (np.zeros(o), np.ones(o), np.full(1, np.inf))
        if self.n_steps == 1:
            gather_batch(idx, self.obs, self.act, self.rew, self.obs2, self.done, *identity,
                         out["obs"], out["act"], out["rew"], out["obs2"], out["done"])
            return out
        out["discount"] = np.empty(B, np.float64)
        gather_nstep(idx, self.size, self.n_steps, self.gamma, self.obs, self.act, self.rew,
                     self.obs2, self.done, self.next_row, *identity, out["obs"], out["act"],
                     out["rew"], out["obs2"], out["done"], out["discount"])
        return out

    # -- state in a checkpoint (numddpg.algorithms saves and restores it) -----------------------
    def train(self, agent, batch_size, K, obs_norm=None):
        """K updates of ``agent`` on minibatches sampled from this buffer inside its jitted
        burst (``DDPGAgent.update_burst``, from the agent's generator), their observations
        normalized by obs_norm; the (K, 4) statistics.  (The training loop calls this on
        whichever buffer it has: numddpg.engine.her's gathers its minibatches in Python.)"""
        return agent.update_burst(self, batch_size, K, obs_norm)

    FIELDS = ("obs", "act", "rew", "obs2", "done")
    LINKS = "next_row"           # saved beside FIELDS when n_steps > 1

    def state(self, include_rows=True):
        """(arrays, record) of the buffer's state: the filled rows (unless include_rows is
        False; with n_steps > 1 their links too) and the sampler state; the record holds ptr,
        size, max_size, dtype, saved."""
        arrays = {f: getattr(self, f)[:self.size] for f in self.FIELDS} if include_rows else {}
        if include_rows and self.n_steps > 1:
            arrays[self.LINKS] = self.next_row[:self.size]
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
        ``row_shapes``; next_row, when the state has links, by ``check_links``); without saved
        rows the buffer restarts empty.  The episodes in progress are dropped (a loaded model
        starts new ones).  An n-step buffer restored from a state without links (saved with
        n_steps 1) has none: each of those rows is an episode's last, a one-step return."""
        links = arrays.get(self.LINKS) if record["saved"] else None
        if record["saved"]:                  # checked before anything is overwritten
            bad = np.flatnonzero((arrays["done"] != 0) & (arrays["done"] != 1))
            if bad.size:
                raise CheckpointError(f"the replay buffer's done flag at row {bad[0]} is "
                                      f"{float(arrays['done'][bad[0]])!r}, not 0 or 1: the "
                                      "file is damaged or was not written by numddpg")
            if links is not None:
                check_links(links, record["ptr"], record["size"], self.max_size)
        for f in self.FIELDS:        # rows past size were never written: still zero, and left
            getattr(self, f)[:self.size] = 0       # untouched (so the OS gives them no memory)
        if record["saved"]:
            for f in self.FIELDS:
                getattr(self, f)[:record["size"]] = arrays[f]
            self.ptr, self.size = record["ptr"], record["size"]
        else:
            self.ptr, self.size = 0, 0
        if self.n_steps > 1:
            self.next_row[:self.size] = -1 if links is None else links
        self.end_episodes()
        self.rng_state[...] = arrays["rng_state"]

    def __repr__(self):
        nstep = f", n_steps={self.n_steps}" if self.n_steps > 1 else ""
        return (f"ReplayBuffer(obs_dim={self.obs_dim}, act_dim={self.act_dim}, "
                f"size={self.size}/{self.max_size}, dtype={self.dtype.name}{nstep})")


def check_links(next_row, ptr, size, max_size):
    """CheckpointError unless ``next_row`` (size,) int64 holds, for each row, -1 or a newer
    row: one written after it (ring order from the oldest row, ``ptr`` once the buffer is
    full), so that n-step sums only ever go forward in time and never past the newest row."""
    oldest = ptr if size == max_size else 0
    rows = np.arange(size)
    age = (rows - oldest) % size if size else rows        # 0 for the oldest row
    linked = next_row != -1
    ok = ~linked | ((next_row >= 0) & (next_row < size))
    ok[ok & linked] = age[next_row[ok & linked]] > age[ok & linked]
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise CheckpointError(f"the replay buffer's next_row at row {bad[0]} is "
                              f"{int(next_row[bad[0]])}: a link must be -1 or a row written "
                              "after it; the file is damaged or was not written by numddpg")
