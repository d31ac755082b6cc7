"""Hindsight experience replay's kernels: whole episodes in the ring, and goals relabelled as a
minibatch is drawn (docs/math.md, section 10).

Layout.  The ring has ``n_slots`` time slots of ``n_envs`` rows: the transition that env e
made at slot p is row ``p * n_envs + e`` of the replay arrays (numddpg.kernels.replay's
obs, act, rew, obs2, done, flat as there).  An episode of env e fills consecutive slots of its
own column, modulo n_slots, so its t-th transition is row ``((start + t) % n_slots) * n_envs
+ e``.  The ``Episodes`` bundle says, for every row, which episode it belongs to:

    ep_len   (N,) int64   its episode's length T; 0 while the episode is still running, and
                          for what is left of an episode the ring has begun to overwrite
    ep_start (N,) int64   the slot of its episode's first transition (where ep_len > 0: it
                          is written when the episode ends, the rest is never read)
    cur_start, cur_len (n_envs,) int64   each env's running episode: first slot, length so far
    n_valid  (1,) int64   the number of rows with ep_len > 0 (those a minibatch may draw)

Only rows of finished episodes (ep_len > 0) are drawn, so a relabelled goal never comes
from an episode's unwritten future, from another episode, or from an overwritten row.

Relabelling.  A drawn row holds step t of an episode of length T: (s_t, a_t, r_t, s_{t+1})
with desired goal g.  With probability ``p_relabel`` = k / (k + 1) its goal becomes the
achieved goal of the next observation s'_{t'} = s_{t'+1} of a step t' of the same episode:

    FUTURE    t' uniform on {t, ..., T-1}: a goal achieved at a later step, s_{t+1} .. s_T
    FINAL     t' = T - 1: the goal achieved at the end, s_T
    EPISODE   t' uniform on {0, ..., T-1}: any goal achieved in the episode, s_1 .. s_T

(SB3 2.x's HerReplayBuffer picks the same goals: ``next_observations["achieved_goal"]`` at
t' in [t, T) for future, T - 1 for final, [0, T) for episode.)  The goal is written into the
desired-goal columns of both s and s'; the new reward is the env's to compute
(numddpg.engine.her calls compute_reward once per minibatch on the raw goals gathered here).

Draws come from the caller's SplitMix64 state (numddpg.kernels.rng), in this order per
minibatch row: rows by rejection until one has ep_len > 0, one uniform for "relabel?", and,
if relabelled under FUTURE or EPISODE, one randint for t'.
"""
from collections import namedtuple

from numba import njit

from . import rng as _rng
from .normalize import normalized
from .replay import STORED, gather_batch, transition_code, write_row

FUTURE, FINAL, EPISODE = 0, 1, 2
STRATEGIES = {"future": FUTURE, "final": FINAL, "episode": EPISODE}

Episodes = namedtuple("Episodes", ["ep_start", "ep_len", "cur_start", "cur_len", "n_valid"])


@njit(cache=True)
def row_of(slot, env, n_envs):
    """The replay row of env ``env``'s transition at time slot ``slot``."""
    return slot * n_envs + env


@njit(cache=True)
def forget_episode(episodes, row, n_envs, n_slots):
    """Row ``row`` is about to be overwritten: its episode's rows from it to the episode's end
    are no longer drawn (ep_len = 0).  Its earlier rows were forgotten when the ring reached
    them, since an episode fills its slots in order."""
    T = episodes.ep_len[row]
    if T == 0:
        return
    start, env = episodes.ep_start[row], row % n_envs
    t = (row // n_envs - start) % n_slots
    for j in range(t, T):
        episodes.ep_len[row_of((start + j) % n_slots, env, n_envs)] = 0
    episodes.n_valid[0] -= T - t


@njit(cache=True)
def close_episode(episodes, env, n_envs, n_slots):
    """Env ``env``'s running episode has ended: each of its rows gets its start and length
    T, so that it may be drawn, and the env's next episode starts at the next slot."""
    start, T = episodes.cur_start[env], episodes.cur_len[env]
    for t in range(T):
        row = row_of((start + t) % n_slots, env, n_envs)
        episodes.ep_start[row] = start
        episodes.ep_len[row] = T
    episodes.n_valid[0] += T
    episodes.cur_start[env] = (start + T) % n_slots
    episodes.cur_len[env] = 0


@njit(cache=True)
def store_step(replay, episodes, slot, obs, act, rew, obs2, terminated, truncated, stored, lim):
    """Write one step of n_envs envs into time slot ``slot`` of the ring.

    replay : a numddpg.kernels.replay.Replay (its obs, act, rew, obs2, done arrays, N rows)
    episodes : an Episodes bundle (module docstring); N = n_slots * n_envs
    obs, obs2 (n_envs, o); act (n_envs, a); rew, terminated, truncated, stored (n_envs,) float64
    lim : the storage dtype's largest finite value (replay.transition_code)
    The done flag stored is ``terminated`` alone: a truncated episode's last transition is
    bootstrapped, a terminated one's is not.  An env whose episode ends (terminated or
    truncated) closes it.  An episode longer than the ring loses its first step to make room
    (it then holds its last n_slots steps).  An env whose ``stored`` is 0 made no transition
    this step (a vector env's reset step, right after its episode ended): its row of the slot
    is left out of every episode and its next episode starts at the next slot.
    Returns (STORED, 0), or (the replay code of the first bad field, its env) and then
    writes nothing: every env's transition is checked before any row is touched.
    """
    n_envs = obs.shape[0]
    n_slots = episodes.ep_len.shape[0] // n_envs
    for e in range(n_envs):
        if stored[e] == 0.0:
            continue
        code = transition_code(obs[e], act[e], rew[e], obs2[e], lim)
        if code != STORED:
            return code, e
    for e in range(n_envs):
        row = row_of(slot, e, n_envs)
        forget_episode(episodes, row, n_envs, n_slots)
        episodes.ep_len[row] = 0                  # running (or left out): not drawn
        if stored[e] == 0.0:                      # (its running episode is empty)
            episodes.cur_start[e] = (slot + 1) % n_slots
            continue
        if episodes.cur_len[e] == n_slots:        # the running episode overwrites its first step
            episodes.cur_start[e] = (episodes.cur_start[e] + 1) % n_slots
            episodes.cur_len[e] -= 1
        write_row(replay.obs, replay.act, replay.rew, replay.obs2, replay.done, row,
                  obs[e], act[e], rew[e], obs2[e], terminated[e])
        episodes.cur_len[e] += 1
        if terminated[e] != 0.0 or truncated[e] != 0.0:
            close_episode(episodes, e, n_envs, n_slots)
    return STORED, 0


@njit(cache=True)
def goal_step(rng_state, episodes, row, n_envs, strategy):
    """The row t' of the same episode whose next observation's achieved goal relabels row
    ``row`` (step t of an episode of length T): FUTURE t' ~ U{t..T-1}, FINAL T-1, EPISODE
    t' ~ U{0..T-1} (module docstring)."""
    n_slots = episodes.ep_len.shape[0] // n_envs
    start, T, env = episodes.ep_start[row], episodes.ep_len[row], row % n_envs
    if strategy == FUTURE:
        t = (row // n_envs - start) % n_slots
        tg = t + _rng.randint(rng_state, T - t)
    elif strategy == FINAL:
        tg = T - 1
    else:
        tg = _rng.randint(rng_state, T)
    return row_of((start + tg) % n_slots, env, n_envs)


@njit(cache=True)
def draw_transitions(rng_state, episodes, n_rows, n_envs, strategy, p_relabel, idx, goal_row):
    """idx (B,): rows drawn uniformly with replacement among the first ``n_rows`` rows that
    belong to finished episodes (ep_len > 0; the caller makes sure there is one: n_valid > 0);
    goal_row (B,): for a row relabelled (probability p_relabel) the row whose s' gives the new
    goal (goal_step), -1 for a row that keeps its goal."""
    for i in range(idx.shape[0]):
        j = _rng.randint(rng_state, n_rows)
        while episodes.ep_len[j] == 0:            # rejection: uniform over the drawable rows
            j = _rng.randint(rng_state, n_rows)
        idx[i] = j
        goal_row[i] = -1
        if _rng.uniform(rng_state) < p_relabel:
            goal_row[i] = goal_step(rng_state, episodes, j, n_envs, strategy)


@njit(cache=True)
def gather_relabelled(replay, idx, goal_row, achieved, desired, batch, achieved2, goal):
    """The minibatch of rows idx with their goals relabelled.

    replay : a Replay (rows and the observation normalization); batch : a numddpg update Batch
    achieved, desired : the first column of the achieved and desired goal in s (g columns
        each, g = goal.shape[1]; numddpg.files.dictobs.DictLayout.goal_spans)
    achieved2, goal (B, g), out : the raw achieved goal of each row's s' and its (new or kept)
        desired goal, what the env's compute_reward reads
    Rows are copied and normalized by replay.gather_batch; then a relabelled row's desired
    goal in s and s' becomes the achieved goal of s' at goal_row, normalized with the desired
    goal's columns of the map.  Rewards are left as stored: the caller recomputes them.
    """
    gather_batch(idx, replay.obs, replay.act, replay.rew, replay.obs2, replay.done,
                 replay.shift, replay.scale, replay.clip,
                 batch.obs, batch.act, batch.rew, batch.obs2, batch.done)
    for i in range(idx.shape[0]):
        j, k = idx[i], goal_row[i]
        for c in range(goal.shape[1]):
            achieved2[i, c] = replay.obs2[j, achieved + c]
            if k < 0:
                goal[i, c] = replay.obs[j, desired + c]
                continue
            g = replay.obs2[k, achieved + c]
            goal[i, c] = g
            d = desired + c
            batch.obs[i, d] = normalized(g, replay.shift[d], replay.scale[d], replay.clip[0])
            batch.obs2[i, d] = batch.obs[i, d]
