"""Hindsight experience replay (Andrychowicz et al. 2017) as a replay buffer: whole episodes of
n envs in preallocated float32 rings, goals relabelled and rewards recomputed as a minibatch is
drawn (docs/math.md, section 10).

The observations are flat vectors s (a goal env's Dict flattened by
numddpg.files.dictobs.DictLayout) in which the achieved goal and the desired goal are two
spans of g columns.  A stored step is (s_t, a_t, r_t, s_{t+1}, d_t) with d_t = terminated
(a truncated episode's last step is bootstrapped, as the plain buffer's).  Sampling draws rows
of finished episodes uniformly, relabels each with probability k / (k + 1) (k =
``n_sampled_goal``) with a goal achieved in the same episode (``goal_selection_strategy``
"future", "final" or "episode"; numddpg.kernels.her says which steps each may take), writes
the new goal into s and s', and asks the env for the new rewards in one vectorized call,
``compute_reward(achieved_goal, desired_goal, infos)`` with (m, g) arrays of the m relabelled
rows, as Stable-Baselines3's HerReplayBuffer does (infos are not stored, so each is {}).

The layout of the rings and of the episode bookkeeping is numddpg.kernels.her's; the jitted
kernels store, draw and gather, from the buffer's own SplitMix64 state or the caller's.
``state``/``restore`` save and put back everything as plain arrays and a small JSON record;
``restore`` checks the record, every array and the episode bookkeeping before it changes
anything.

Two options serve Stable-Baselines3's HerReplayBuffer (numddpg.sb3.her), and cost nothing
unless used: ``keep_infos`` keeps each stored step's info dict in memory and hands the drawn
rows' copies to compute_reward (SB3's copy_info_dict; files never hold them), and
``truncate_last_trajectory`` ends every env's running episode where the ring stops, so that
its rows may be drawn (SB3's load_replay_buffer(truncate_last_traj=True)).
"""
import copy

import numpy as np

from ..checks import check_dim, check_int
from ..files.checkpoint import CheckpointError
from ..kernels.her import (STRATEGIES, Episodes, close_episode, draw_transitions,
                           gather_relabelled, store_step)
from ..kernels.replay import BAD_WHAT, STORED, Replay
from ..kernels.update import N_STATS, Batch
from .buffer import NonFiniteTransition, sampler_state, transition_rows
from .hyperparameters import MAX_SAMPLED_GOALS

FLOAT_FIELDS = ("obs", "act", "rew", "obs2", "done")
ROW_FIELDS = FLOAT_FIELDS + ("ep_start", "ep_len")        # one entry per stored row
RECORD_FIELDS = ("ptr", "size", "n_slots", "n_envs", "obs_dim", "act_dim", "achieved",
                 "desired", "goal_selection_strategy", "n_sampled_goal", "dtype", "saved")


class HerReplayBuffer:
    """Episodes of ``n_envs`` envs in a ring of ``max_size // n_envs`` time slots, sampled
    with hindsight goals (module docstring).

    Parameters
    ----------
    obs_dim, act_dim : int       the flat observation's and the action's lengths
    max_size : int               capacity in transitions (replay_size), at least n_envs
    achieved, desired : (start, stop)   the spans of the achieved and the desired goal in s
        (DictLayout.goal_spans()); of equal width g, not overlapping
    compute_reward : callable    the env's ``compute_reward(achieved_goal, desired_goal, info)``
        (env.unwrapped.compute_reward), vectorized: (m, g) arrays in, (m,) rewards out
    n_envs : int                 envs stepped together (a single env: 1)
    n_sampled_goal : int         k: a drawn transition is relabelled with probability k/(k+1)
    goal_selection_strategy : "future" | "final" | "episode"
    dtype : storage dtype (float32)
    seed : int or None           seeds the buffer's own generator state ``rng_state``

    Attributes
    ----------
    obs, obs2 (N, obs_dim); act (N, act_dim); rew, done (N,)   N = n_slots * n_envs rows;
        the transition env e made at slot p is row p * n_envs + e
    episodes : numddpg.kernels.her.Episodes (ep_start, ep_len (N,); cur_start, cur_len
        (n_envs,); n_valid (1,))
    ptr : the next slot to write.  size : slots written (up to n_slots).
    rng_state : (1,) uint64, what ``draw`` uses unless given another state.
    infos : None, or after ``keep_infos()`` (N,) objects: each row's info dict (None: {}).
    """

    def __init__(self, obs_dim, act_dim, max_size, achieved, desired, compute_reward,
                 n_envs=1, n_sampled_goal=4, goal_selection_strategy="future",
                 dtype=np.float32, seed=None):
        self.obs_dim = check_dim("obs_dim", obs_dim)
        self.act_dim = check_dim("act_dim", act_dim)
        self.n_envs = check_dim("n_envs", n_envs)
        max_size = check_dim("replay_size", max_size)
        if max_size < self.n_envs:
            raise ValueError(f"replay_size {max_size} must hold at least one step of the "
                             f"{self.n_envs} envs")
        self.n_slots = max_size // self.n_envs
        self.achieved, self.desired = _goal_spans(achieved, desired, self.obs_dim)
        if not callable(compute_reward):
            raise ValueError(f"compute_reward must be the env's compute_reward function, got "
                             f"{compute_reward!r}")
        self.compute_reward = compute_reward
        self.n_sampled_goal = check_int("n_sampled_goal", n_sampled_goal, 0, MAX_SAMPLED_GOALS)
        self.p_relabel = self.n_sampled_goal / (self.n_sampled_goal + 1)
        if goal_selection_strategy not in STRATEGIES:
            raise ValueError(f"goal_selection_strategy must be one of {list(STRATEGIES)}, got "
                             f"{goal_selection_strategy!r}")
        self.goal_selection_strategy = goal_selection_strategy
        self.dtype = np.dtype(dtype)
        n = self.n_slots * self.n_envs
        self.obs, self.act, self.rew, self.obs2, self.done = transition_rows(
            n, self.obs_dim, self.act_dim, self.dtype, "a hindsight replay buffer",
            extra_row_bytes=2 * 8)                # ep_start and ep_len, int64
        self.episodes = Episodes(np.zeros(n, np.int64), np.zeros(n, np.int64),
                                 np.zeros(self.n_envs, np.int64),
                                 np.zeros(self.n_envs, np.int64), np.zeros(1, np.int64))
        self.lim = float(np.finfo(self.dtype).max)    # larger values would be stored as inf
        self.ptr = 0
        self.size = 0
        self.rng_state = sampler_state(seed)
        self.infos = None

    def keep_infos(self):
        """From now on keep each stored row's info dict (``store``'s infos) in memory and pass
        copies of the drawn rows' to compute_reward instead of empty dicts (SB3's
        copy_info_dict).  Rows stored before, or put back by ``restore``, have {}: files hold
        arrays and JSON, never Python objects."""
        if self.infos is None:
            self.infos = np.full(self.n_slots * self.n_envs, None, object)

    def __len__(self):
        """Transitions stored (rows written), finished episodes or not."""
        return self.size * self.n_envs

    @property
    def n_sampleable(self):
        """Transitions of finished episodes: those a minibatch may draw."""
        return int(self.episodes.n_valid[0])

    # -- storing ------------------------------------------------------------------------------
    def store(self, obs, act, rew, obs2, terminated, truncated, stored=None, infos=None):
        """Append one step of every env: obs, obs2 (n_envs, obs_dim) flat observations (the
        true next observation, also at an episode's end); act (n_envs, act_dim); rew,
        terminated, truncated (n_envs,).  An env whose episode ends here (terminated or
        truncated) makes it drawable.  stored : (n_envs,) flags, default all 1; 0 for an env
        whose step was no transition (a vector env's reset step after its episode ended:
        gymnasium's NEXT_STEP autoreset), whose row is then left out.  infos : n_envs info
        dicts, kept after ``keep_infos()`` (ignored before).  ValueError for other
        shapes, or a 0 for an env in mid-episode; NonFiniteTransition (and nothing stored)
        for a NaN or infinite value of a stored row."""
        n = self.n_envs
        obs, obs2 = (_rows(x, (n, self.obs_dim), name) for x, name in ((obs, "obs"),
                                                                       (obs2, "obs2")))
        act = _rows(act, (n, self.act_dim), "act")
        rew = _rows(rew, (n,), "rew")
        terminated, truncated, stored = (
            _flags(x, n, name) for x, name in ((terminated, "terminated"),
                                               (truncated, "truncated"),
                                               (np.ones(n) if stored is None else stored,
                                                "stored")))
        running = np.flatnonzero((stored == 0) & (self.episodes.cur_len > 0))
        if running.size:
            raise ValueError(f"env {running[0]}'s step can be left out (stored 0) only right "
                             f"after its episode ended, not in mid-episode")
        code, env = store_step(self._replay(None), self.episodes, self.ptr, obs, act, rew, obs2,
                               terminated, truncated, stored, self.lim)
        if code != STORED:
            raise NonFiniteTransition(f"non-finite {BAD_WHAT[code]} in the transition of env "
                                      f"{env}: obs={obs[env]}, act={act[env]}, rew={rew[env]}, "
                                      f"obs2={obs2[env]}")
        if self.infos is not None:
            for e in range(n):
                info = infos[e] if infos is not None and stored[e] else None
                self.infos[self.ptr * n + e] = info if isinstance(info, dict) else None
        self.ptr = self.ptr + 1 if self.ptr + 1 < self.n_slots else 0
        self.size = min(self.size + 1, self.n_slots)

    # -- sampling -----------------------------------------------------------------------------
    def draw(self, batch_size, rng_state=None):
        """(idx, goal_row), (B,) int64 each: the rows of a minibatch, drawn uniformly with
        replacement among finished episodes' transitions, and for each the row whose next
        observation's achieved goal relabels it (-1: keeps its goal).  Draws from
        ``rng_state`` (default: the buffer's own).  ValueError before any episode has ended."""
        B = check_dim("batch_size", batch_size)
        if self.n_sampleable == 0:
            raise ValueError("cannot sample hindsight transitions before an episode has ended: "
                             "store at least one whole episode first (start updates after "
                             "more steps than an episode's length)")
        state = self.rng_state if rng_state is None else rng_state
        idx, goal_row = np.empty(B, np.int64), np.empty(B, np.int64)
        draw_transitions(state, self.episodes, self.size * self.n_envs, self.n_envs,
                         STRATEGIES[self.goal_selection_strategy], self.p_relabel, idx,
                         goal_row)
        return idx, goal_row

    def gather(self, idx, goal_row, obs_norm=None, out=None):
        """The minibatch of ``draw``'s rows with their new goals and rewards: dict of new
        arrays obs (B, o), act (B, a), rew (B,), obs2 (B, o), done (B,), or, given ``out`` (a
        numddpg update Batch of B rows: an agent's minibatch arrays), those filled and ``out``
        returned.  A relabelled row's reward is compute_reward(achieved goal of s', new goal),
        from one call for the whole minibatch.  obs_norm : an ObsNormalizer whose map s and s'
        get (None: raw)."""
        B, g = idx.shape[0], self.achieved[1] - self.achieved[0]
        batch = out if out is not None else Batch(
            np.empty((B, self.obs_dim), self.dtype), np.empty((B, self.act_dim), self.dtype),
            np.empty(B, self.dtype), np.empty((B, self.obs_dim), self.dtype),
            np.empty(B, self.dtype))
        achieved2, goal = np.empty((B, g), self.dtype), np.empty((B, g), self.dtype)
        gather_relabelled(self._replay(obs_norm), idx, goal_row, self.achieved[0],
                          self.desired[0], batch, achieved2, goal)
        rows = np.flatnonzero(goal_row >= 0)
        if rows.size:
            batch.rew[rows] = self._rewards(achieved2[rows], goal[rows], idx[rows])
        return out if out is not None else dict(zip(FLOAT_FIELDS, batch))

    def sample(self, batch_size, obs_norm=None):
        """``gather(*draw(batch_size), obs_norm)``: a minibatch from the buffer's generator."""
        return self.gather(*self.draw(batch_size), obs_norm)

    def train(self, agent, batch_size, K, obs_norm=None):
        """K updates of ``agent`` on minibatches of ``batch_size`` rows drawn, relabelled and
        normalized by obs_norm here, from the buffer's generator (``draw`` and ``gather``:
        the env's compute_reward is Python, so each minibatch is gathered outside the jitted
        update, DDPGAgent.update_each).  Returns the (K, 4) statistics; before any episode has
        ended there is nothing to draw, and no update is made: (0, 4)."""
        B = check_dim("batch_size", batch_size)
        if self.n_sampleable == 0:
            return np.zeros((0, N_STATS))
        return agent.update_each(lambda batch: self.gather(*self.draw(B), obs_norm, batch), B,
                                 K)

    def _rewards(self, achieved_goal, desired_goal, rows):
        """The env's rewards for m (achieved, desired) goal pairs, checked: (m,) finite; each
        with its row's info dict (``keep_infos``: a copy, as SB3 copies it) or {}."""
        m = achieved_goal.shape[0]
        if self.infos is None:
            infos = [{} for _ in range(m)]
        else:
            infos = [{} if self.infos[r] is None else copy.deepcopy(self.infos[r]) for r in rows]
        rew = self.compute_reward(achieved_goal, desired_goal, infos)
        arr = np.asarray(rew)
        if arr.shape != (m,) or arr.dtype.kind not in "fiub":
            raise ValueError(f"compute_reward returned {type(rew).__name__} of shape "
                             f"{arr.shape} and dtype {arr.dtype} for {m} goal pairs; it must "
                             f"return one real reward per pair, shape ({m},)")
        arr = arr.astype(np.float64)
        if not np.all(np.abs(arr) <= self.lim):
            raise ValueError(f"compute_reward returned a non-finite reward "
                             f"({arr[~(np.abs(arr) <= self.lim)][0]}) for goals it was given")
        return arr

    def _replay(self, obs_norm):
        """The rings as the kernels' Replay bundle, with obs_norm's map (or the identity)."""
        o = self.obs_dim
        norm = ((np.zeros(o), np.ones(o), np.full(1, np.inf)) if obs_norm is None else
                (obs_norm.shift, obs_norm.scale, obs_norm.clip))
        return Replay(self.obs, self.act, self.rew, self.obs2, self.done, *norm)

    def truncate_last_trajectory(self, terminal=False):
        """End every env's running episode at the last slot written, so that its rows may be
        drawn (SB3's truncate_last_trajectory, for a buffer whose run will not continue those
        episodes); ``terminal``: its last row becomes a termination (d = 1; SB3 without
        handle_timeout_termination), else it bootstraps as a time limit's end would.  Returns
        the envs whose episode was ended."""
        ended = [e for e in range(self.n_envs) if self.episodes.cur_len[e] > 0]
        last = (self.ptr - 1) % self.n_slots
        for e in ended:
            if terminal:
                self.done[last * self.n_envs + e] = 1.0
            close_episode(self.episodes, e, self.n_envs, self.n_slots)
        return ended

    # -- state in a file ----------------------------------------------------------------------
    def record(self, saved=True):
        """The JSON part of ``state``: the layout the arrays are in and where the ring is."""
        return {"ptr": self.ptr, "size": self.size, "n_slots": self.n_slots,
                "n_envs": self.n_envs, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "achieved": list(self.achieved), "desired": list(self.desired),
                "goal_selection_strategy": self.goal_selection_strategy,
                "n_sampled_goal": self.n_sampled_goal, "dtype": self.dtype.name,
                "saved": bool(saved)}

    def state(self, include_rows=True):
        """(arrays, record): the written rows with their episode bookkeeping (unless
        include_rows is False), each env's running episode and the generator state."""
        rows = self.size * self.n_envs
        arrays = {}
        if include_rows:
            arrays = {f: getattr(self, f)[:rows] for f in FLOAT_FIELDS}
            arrays.update(ep_start=self.episodes.ep_start[:rows],
                          ep_len=self.episodes.ep_len[:rows],
                          cur_start=self.episodes.cur_start, cur_len=self.episodes.cur_len)
        arrays["rng_state"] = self.rng_state
        return arrays, self.record(include_rows)

    def expected_arrays(self, record):
        """{name: (dtype, shape)} of the arrays a ``state`` with this record holds, after
        checking that the record is of this buffer (CheckpointError)."""
        self._check_record(record)
        return record_arrays(record)

    def restore(self, arrays, record):
        """Put back a ``state`` exactly, after checking everything it holds (CheckpointError,
        and nothing changed): the record's fields, types and bounds and that they describe
        this buffer; each array's dtype and shape; finite numbers and done flags of 0 or 1;
        and the episode bookkeeping (check_episodes).  Without saved rows the buffer restarts
        empty, keeping the generator state."""
        expected = self.expected_arrays(record)
        if not isinstance(arrays, dict) or set(arrays) != set(expected):
            raise CheckpointError(f"the hindsight buffer's state holds arrays "
                                  f"{sorted(map(str, arrays))[:20]} but its record asks for "
                                  f"{sorted(expected)}")
        for name, (dtype, shape) in expected.items():
            a = arrays[name]
            if not isinstance(a, np.ndarray) or a.dtype.name != dtype or a.shape != shape:
                got = (f"{a.dtype.name} {a.shape}" if isinstance(a, np.ndarray)
                       else type(a).__name__)
                raise CheckpointError(f"the hindsight buffer's array {name!r} is {got}, "
                                      f"expected {dtype} {shape}")
        if record["saved"]:
            for name in FLOAT_FIELDS:
                if not np.all(np.isfinite(arrays[name])):
                    raise CheckpointError(f"the hindsight buffer's array {name!r} holds a "
                                          "non-finite number")
            n_valid = check_episodes(arrays, record["ptr"], record["size"], self.n_slots,
                                     self.n_envs)
        rows = self.size * self.n_envs        # rows past size were never written: left alone
        for f in FLOAT_FIELDS:
            getattr(self, f)[:rows] = 0
        self.episodes.ep_start[:rows], self.episodes.ep_len[:rows] = 0, 0
        for a in (self.episodes.cur_start, self.episodes.cur_len, self.episodes.n_valid):
            a[:] = 0
        self.ptr, self.size = 0, 0
        if self.infos is not None:
            self.infos[:] = None
        if record["saved"]:
            rows = record["size"] * self.n_envs
            for f in FLOAT_FIELDS:
                getattr(self, f)[:rows] = arrays[f]
            self.episodes.ep_start[:rows] = arrays["ep_start"]
            self.episodes.ep_len[:rows] = arrays["ep_len"]
            self.episodes.cur_start[:] = arrays["cur_start"]
            self.episodes.cur_len[:] = arrays["cur_len"]
            self.episodes.n_valid[0] = n_valid
            self.ptr, self.size = record["ptr"], record["size"]
        self.rng_state[...] = arrays["rng_state"]

    def _check_record(self, record):
        """CheckpointError unless ``record`` is a record of this buffer (same layout and
        settings) with a ring position in bounds."""
        if not isinstance(record, dict) or set(record) != set(RECORD_FIELDS):
            raise CheckpointError(f"the hindsight buffer's record must have exactly the fields "
                                  f"{list(RECORD_FIELDS)}, got {record!r:.300}")
        if not isinstance(record["saved"], bool):
            raise CheckpointError(f"the hindsight buffer's record field 'saved' must be true or "
                                  f"false, got {record['saved']!r:.100}")
        mine = self.record()
        for f in RECORD_FIELDS[2:-1]:          # what the buffer was built with must match
            if record[f] != mine[f] or type(record[f]) is not type(mine[f]):
                raise CheckpointError(f"the hindsight buffer's record has {f}="
                                      f"{record[f]!r:.100}, but this buffer has {f}={mine[f]!r}: "
                                      "restore into a buffer built with the same settings")
        for f in ("ptr", "size"):
            v = record[f]
            top = self.n_slots - 1 if f == "ptr" else self.n_slots
            if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top):
                raise CheckpointError(f"the hindsight buffer's record field {f!r} must be an "
                                      f"integer from 0 to {top}, got {v!r:.100}")
        if record["size"] < self.n_slots and record["ptr"] != record["size"]:
            raise CheckpointError(f"the hindsight buffer's ring is not full (size "
                                  f"{record['size']} of {self.n_slots} slots) but its next slot "
                                  f"is {record['ptr']}, not {record['size']}")

    def __repr__(self):
        return (f"HerReplayBuffer(obs_dim={self.obs_dim}, act_dim={self.act_dim}, "
                f"n_envs={self.n_envs}, slots={self.size}/{self.n_slots}, "
                f"strategy={self.goal_selection_strategy!r}, k={self.n_sampled_goal}, "
                f"dtype={self.dtype.name})")


def record_arrays(record):
    """{name: (dtype, shape)} of the arrays a ``state`` with ``record`` holds, after checking
    the record's fields, types and bounds alone (CheckpointError): what a file reader checks
    before it reads, with no buffer at hand (``restore`` checks later that the record is its
    buffer's)."""
    if not isinstance(record, dict) or set(record) != set(RECORD_FIELDS):
        raise CheckpointError(f"the hindsight buffer's record must have exactly the fields "
                              f"{list(RECORD_FIELDS)}, got {record!r:.300}")
    for f in ("ptr", "size", "n_slots", "n_envs", "obs_dim", "act_dim", "n_sampled_goal"):
        v = record[f]
        if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**40):
            raise CheckpointError(f"the hindsight buffer's record field {f!r} must be an "
                                  f"integer from 0 to 2**40 - 1, got {v!r:.100}")
    if (record["dtype"] not in ("float32", "float64") or not isinstance(record["saved"], bool)
            or record["goal_selection_strategy"] not in STRATEGIES):
        raise CheckpointError(f"the hindsight buffer's record has dtype {record['dtype']!r:.50}, "
                              f"saved {record['saved']!r:.50} and strategy "
                              f"{record['goal_selection_strategy']!r:.50}: expected float32 or "
                              f"float64, true or false, and one of {list(STRATEGIES)}")
    rows, n = record["size"] * record["n_envs"] if record["saved"] else 0, record["n_envs"]
    o, a = record["obs_dim"], record["act_dim"]
    shapes = {"obs": (rows, o), "act": (rows, a), "rew": (rows,), "obs2": (rows, o),
              "done": (rows,), "ep_start": (rows,), "ep_len": (rows,), "cur_start": (n,),
              "cur_len": (n,)}
    out = {f: (record["dtype"] if f in FLOAT_FIELDS else "int64", shape)
           for f, shape in shapes.items() if record["saved"]}
    out["rng_state"] = ("uint64", (1,))
    return out


def check_episodes(arrays, ptr, size, n_slots, n_envs):
    """The number of drawable rows of a saved state's episode bookkeeping, after checking it
    is what ``store`` could have written (CheckpointError otherwise), so that no draw can
    read an unwritten row or cross an episode's end.

    arrays : "ep_start", "ep_len", "done" ((size * n_envs,)), "cur_start", "cur_len"
    (n_envs,), their dtypes and shapes already checked; ptr, size : the ring position.
    Holds: values in range; each env's running episode ends at ptr and its rows are marked
    running (ep_len 0, not done); each finished episode's rows are consecutive
    written slots of its env that agree on (start, length), with a done flag at most on the
    last.
    """
    ep_start, ep_len, done = arrays["ep_start"], arrays["ep_len"], arrays["done"]
    cur_start, cur_len = arrays["cur_start"], arrays["cur_len"]

    def refuse(why):
        raise CheckpointError(f"the hindsight buffer's episode bookkeeping is inconsistent: "
                              f"{why}; the file is damaged or was not written by numddpg")
    bad = np.flatnonzero((done != 0) & (done != 1))
    if bad.size:
        refuse(f"the done flag of row {bad[0]} is {float(done[bad[0]])!r}, not 0 or 1")
    for name, a, top in (("ep_start", ep_start, n_slots - 1), ("ep_len", ep_len, n_slots),
                         ("cur_start", cur_start, n_slots - 1), ("cur_len", cur_len, size)):
        bad = np.flatnonzero((a < 0) | (a > top))
        if bad.size:
            refuse(f"{name}[{bad[0]}] = {int(a[bad[0]])} is outside [0, {top}]")
    rows = size * n_envs
    slot, env = np.arange(rows) // n_envs, np.arange(rows) % n_envs
    for e in range(n_envs):                    # each env's running episode
        if (cur_start[e] + cur_len[e]) % n_slots != ptr:
            refuse(f"env {e}'s running episode (from slot {cur_start[e]}, {cur_len[e]} steps) "
                   f"does not end at the next slot {ptr}")
        run = ((cur_start[e] + np.arange(cur_len[e])) % n_slots) * n_envs + e
        if np.any(ep_len[run] != 0) or np.any(done[run] != 0):
            refuse(f"a row of env {e}'s running episode is marked finished or done")
    fin = np.flatnonzero(ep_len > 0)           # rows of finished episodes
    start, T = ep_start[fin], ep_len[fin]
    t = (slot[fin] - start) % n_slots
    # written in order: ages (slots since ptr, the oldest) grow along an episode
    outside = (t >= T) | ((start - ptr) % n_slots + t != (slot[fin] - ptr) % n_slots)
    if np.any(outside):
        i = fin[np.argmax(outside)]
        refuse(f"row {i} lies outside its episode (slot {slot[i]}, start {ep_start[i]}, "
               f"length {ep_len[i]})")
    for step, where in ((1, t < T - 1), (-1, t > 0)):       # next and previous rows agree
        rows_i = fin[where]
        other = ((slot[rows_i] + step) % n_slots) * n_envs + env[rows_i]
        ok = other < rows
        ok[ok] = (ep_start[other[ok]] == ep_start[rows_i[ok]]) & \
                 (ep_len[other[ok]] == ep_len[rows_i[ok]])
        if not np.all(ok):
            i = rows_i[np.argmin(ok)]
            refuse(f"row {i}'s episode (start {ep_start[i]}, length {ep_len[i]}) is not whole "
                   "in its env's written slots")
    bad = fin[(t < T - 1) & (done[fin] != 0)]
    if bad.size:
        refuse(f"row {bad[0]} is done but is not its episode's last step")
    return int(fin.size)


def _goal_spans(achieved, desired, obs_dim):
    """((a0, a1), (d0, d1)) as int pairs after checking they are spans of s of one width g
    that do not overlap."""
    spans = []
    for name, span in (("achieved", achieved), ("desired", desired)):
        ok = isinstance(span, (tuple, list)) and len(span) == 2
        if ok:
            lo, hi = (check_int(f"{name}[{i}]", v, 0, obs_dim) for i, v in enumerate(span))
            ok = lo < hi
        if not ok:
            raise ValueError(f"{name} must be the (start, stop) of the {name} goal in the flat "
                             f"observation of {obs_dim} numbers (DictLayout.goal_spans()), got "
                             f"{span!r}")
        spans.append((lo, hi))
    (a0, a1), (d0, d1) = spans
    if a1 - a0 != d1 - d0 or (a0 < d1 and d0 < a1):
        raise ValueError(f"the achieved goal's span {spans[0]} and the desired goal's "
                         f"{spans[1]} must have the same width and not overlap")
    return spans[0], spans[1]


def _rows(x, shape, name):
    """x as a float64 array of ``shape``, or ValueError naming it."""
    arr = np.asarray(x)
    if arr.shape != shape or arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be real numbers of shape {shape} (one row per env), got "
                         f"{arr.dtype} {arr.shape}")
    return arr.astype(np.float64)


def _flags(x, n, name):
    """x as (n,) float64 flags of 0.0/1.0 (booleans or 0/1 numbers), or ValueError."""
    arr = np.asarray(x)
    if arr.shape != (n,) or arr.dtype.kind not in "biuf" or not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must be {n} flags (booleans or 0/1), got {arr!r:.200}")
    return arr.astype(np.float64)
