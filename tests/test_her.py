"""numddpg.engine.her and numddpg.kernels.her: hindsight experience replay.

Relabelled rewards are the env's compute_reward on the relabelled goals; each strategy picks,
on hand-built episodes, exactly the goals worked out by hand (also at episode ends and across
the ring's wrap, never from another episode or a running one); the relabelled fraction is
k / (k + 1); a plain twin of the jitted draw and gather, fed the same generator, gives the
same minibatch bit for bit; the episode bookkeeping matches a plain model of the ring; the
state restores exactly, and damaged states are refused before anything changes.
"""
import copy
import json

import numpy as np
import pytest
from gymnasium import spaces

from numddpg.engine.buffer import NonFiniteTransition
from numddpg.files.dictobs import DictLayout
from numddpg.engine.her import HerReplayBuffer, check_episodes
from numddpg.engine.normalizer import ObsNormalizer
from numddpg.files.checkpoint import CheckpointError
from numddpg.kernels import rng
from numddpg.kernels.her import EPISODE, FINAL, FUTURE, STRATEGIES


class PointGoalEnv:
    """A point in the plane that must reach a goal: the action moves it by 0.1 a (a in
    [-1, 1]^2); the achieved goal is its position; reward 0 within ``eps`` of the goal, -1
    farther; an episode is truncated after ``horizon`` steps and terminated when
    ``stop_on_success`` and the goal is reached.  Observation entry: position and the fraction
    of the horizon gone."""

    def __init__(self, seed, horizon=5, stop_on_success=False, eps=0.05):
        box = spaces.Box(-np.inf, np.inf, (2,))
        self.observation_space = spaces.Dict(
            {"observation": spaces.Box(-np.inf, np.inf, (3,)), "achieved_goal": box,
             "desired_goal": box})
        self.rng = np.random.default_rng(seed)
        self.horizon, self.stop_on_success, self.eps = horizon, stop_on_success, eps

    def compute_reward(self, achieved_goal, desired_goal, info):
        return -(np.linalg.norm(achieved_goal - desired_goal, axis=-1) > self.eps).astype(float)

    def _obs(self):
        return {"observation": np.append(self.pos, self.t / self.horizon),
                "achieved_goal": self.pos.copy(), "desired_goal": self.goal.copy()}

    def reset(self):
        self.pos, self.goal, self.t = self.rng.uniform(-1, 1, 2), self.rng.uniform(-1, 1, 2), 0
        # start within reach of the goal now and then, so that some episodes succeed
        if self.rng.uniform() < 0.3:
            self.pos = self.goal + self.rng.uniform(-0.1, 0.1, 2)
        return self._obs()

    def step(self, action):
        self.pos = self.pos + 0.1 * np.clip(action, -1, 1)
        self.t += 1
        rew = float(self.compute_reward(self.pos, self.goal, {}))
        terminated = self.stop_on_success and rew == 0.0
        return self._obs(), rew, terminated, self.t >= self.horizon, {}


def collect(buf, envs, layout, steps, seed=0):
    """``steps`` steps of every env of ``envs`` with random actions, stored in ``buf``."""
    act_rng = np.random.default_rng(seed)
    obs = [env.reset() for env in envs]
    for _ in range(steps):
        act = act_rng.uniform(-1, 1, (len(envs), 2))
        results = [env.step(a) for env, a in zip(envs, act)]
        obs2 = [r[0] for r in results]
        buf.store(np.stack([layout.flatten(o) for o in obs]), act,
                  [r[1] for r in results], np.stack([layout.flatten(o) for o in obs2]),
                  [r[2] for r in results], [r[3] for r in results])
        obs = [env.reset() if r[2] or r[3] else o for env, r, o in zip(envs, results, obs2)]


def point_buffer(n_envs=2, max_size=60, steps=40, seed=0, env=None, **kwargs):
    """A buffer of ``n_envs`` PointGoalEnvs (``env``: their kwargs) after ``steps`` steps."""
    envs = [PointGoalEnv(seed + i, **(env or {})) for i in range(n_envs)]
    layout = DictLayout.from_space(envs[0].observation_space)
    achieved, desired = layout.goal_spans()
    buf = HerReplayBuffer(layout.obs_dim, 2, max_size, achieved, desired,
                          envs[0].compute_reward, n_envs=n_envs, seed=seed, **kwargs)
    collect(buf, envs, layout, steps, seed)
    return buf, envs[0], layout


# ---------------------------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_reward_is_compute_reward_of_the_minibatchs_goals(strategy):
    # the env's own rewards are compute_reward of the original goal, so after relabelling
    # every row's reward is compute_reward(achieved goal of s', desired goal of s): exact,
    # since both sides compute on the same float32 numbers
    buf, env, layout = point_buffer(goal_selection_strategy=strategy,
                                    env={"stop_on_success": True})
    idx, goal_row = buf.draw(2000)
    batch = buf.gather(idx, goal_row)
    s, s2 = layout.unflatten(batch["obs"]), layout.unflatten(batch["obs2"])
    np.testing.assert_array_equal(s["desired_goal"], s2["desired_goal"])
    np.testing.assert_array_equal(
        batch["rew"], env.compute_reward(s2["achieved_goal"], s["desired_goal"], {}))
    relabelled = goal_row >= 0
    assert 0.7 < relabelled.mean() < 0.9                           # k = 4: 0.8
    assert 0 < (batch["rew"][relabelled] == 0).mean() < 1          # both outcomes occur
    np.testing.assert_array_equal(batch["rew"][~relabelled], buf.rew[idx[~relabelled]])


def test_compute_reward_is_called_once_per_minibatch_with_the_relabelled_rows():
    buf, env, layout = point_buffer()
    calls = []

    def spy(achieved_goal, desired_goal, info):
        calls.append((achieved_goal.shape, desired_goal.shape, len(info)))
        return env.compute_reward(achieved_goal, desired_goal, info)
    buf.compute_reward = spy
    idx, goal_row = buf.draw(256)
    buf.gather(idx, goal_row)
    m = int((goal_row >= 0).sum())
    assert calls == [((m, 2), (m, 2), m)]


@pytest.mark.parametrize("bad, words", [
    (lambda a, d, i: 0.0, r"shape \(\) .*shape \(\d+,\)"),
    (lambda a, d, i: np.zeros((len(a), 1)), r"shape \(\d+, 1\)"),
    (lambda a, d, i: np.full(len(a), np.nan), "non-finite reward"),
    (lambda a, d, i: np.full(len(a), "x"), "dtype <U1"),
])
def test_a_compute_reward_that_returns_no_rewards_is_named(bad, words):
    buf, _, _ = point_buffer()
    buf.compute_reward = bad
    with pytest.raises(ValueError, match="compute_reward returned .*" + words):
        buf.sample(64)


# ---------------------------------------------------------------------------------------------
# Strategies on hand-built episodes
# ---------------------------------------------------------------------------------------------

# n_envs = 1, a ring of 8 slots; obs_dim 5: [achieved goal (2) | desired goal (2) | x (1)]
#   episode A, 3 steps, slots 0-2
#   episode B, 4 steps, slots 3-6, truncated
#   episode C, 3 steps, slots 7, 0, 1: wraps around and overwrites A's first two slots, so A is
#       forgotten (its slot 2 is left, never drawn)
#   episode D, 1 step so far, slot 2: running, never drawn and never a goal
# The achieved goal of s' at step t of episode X is (X + t + 1, -(X + t + 1)) with X = 10, 20,
# 30, 40 for A, B, C, D: the goal a relabelled row gets says which step it came from.
EPISODES = {10: 3, 20: 4, 30: 3, 40: 1}
SLOTS = {20: [3, 4, 5, 6], 30: [7, 0, 1]}          # the slots of the drawable episodes
GOALS = {20: [21, 22, 23, 24], 30: [31, 32, 33]}    # ag(s_1) .. ag(s_T) of each
# Relabelled goals by hand, per (episode, step t): future takes s_{t+1} .. s_T, final s_T,
# episode s_1 .. s_T
BY_HAND = {
    "future": {(20, 0): {21, 22, 23, 24}, (20, 1): {22, 23, 24}, (20, 2): {23, 24},
               (20, 3): {24}, (30, 0): {31, 32, 33}, (30, 1): {32, 33}, (30, 2): {33}},
    "final": {(20, 0): {24}, (20, 1): {24}, (20, 2): {24}, (20, 3): {24},
              (30, 0): {33}, (30, 1): {33}, (30, 2): {33}},
    "episode": {(x, t): set(GOALS[x]) for x in (20, 30) for t in range(len(GOALS[x]))},
}


def by_hand_buffer(strategy, n_sampled_goal=1000):
    buf = HerReplayBuffer(5, 1, 8, (0, 2), (2, 4), lambda a, d, i: -np.abs(a - d).sum(1),
                          n_sampled_goal=n_sampled_goal, goal_selection_strategy=strategy, seed=7)
    for x, T in EPISODES.items():
        for t in range(T):
            ag, ag2 = x + t, x + t + 1
            buf.store([[ag, -ag, x + 0.5, x + 0.5, t]], [[0.0]], [-1.0],
                      [[ag2, -ag2, x + 0.5, x + 0.5, t + 1]], [0.0],
                      [x != 40 and t == T - 1])   # every episode but D truncated at its end
    return buf


def test_the_hand_built_ring_holds_what_the_table_says():
    buf = by_hand_buffer("future")
    ep = buf.episodes
    assert list(ep.ep_len) == [3, 3, 0, 4, 4, 4, 4, 3]          # slot 2: A's leftover, then D
    assert [ep.ep_start[s] for s in (0, 1, 3, 4, 5, 6, 7)] == [7, 7, 3, 3, 3, 3, 7]
    assert (ep.cur_start[0], ep.cur_len[0], ep.n_valid[0]) == (2, 1, 7)
    assert buf.n_sampleable == 7 and len(buf) == 8


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_relabels_with_the_goals_worked_out_by_hand(strategy):
    buf = by_hand_buffer(strategy)
    idx, goal_row = buf.draw(4000)
    batch = buf.gather(idx, goal_row)
    episode_of = {s: (x, t) for x, slots in SLOTS.items() for t, s in enumerate(slots)}
    seen = {key: set() for key in BY_HAND[strategy]}
    for i in range(len(idx)):
        x, t = episode_of[int(idx[i])]            # a KeyError: a row of A or D was drawn
        assert batch["obs"][i, 4] == t
        if goal_row[i] < 0:
            assert tuple(batch["obs"][i, 2:4]) == (x + 0.5, x + 0.5)      # kept its goal
            continue
        g = batch["obs"][i, 2]
        assert tuple(batch["obs"][i, 2:4]) == (g, -g) == tuple(batch["obs2"][i, 2:4])
        seen[(x, t)].add(int(g))
    # every goal the table allows occurs, and no other (4000 draws: each of the 7 rows is
    # drawn ~570 times, so a goal of chance 1/4 is missed with probability < 1e-70)
    assert seen == BY_HAND[strategy]


def test_future_goals_are_uniform_over_the_later_steps():
    # row B t=0 may take 21..24, each with chance 1/4; 20,000 draws, ~2,850 relabelled from
    # that row: each count within 5 binomial standard deviations (~23) of 1/4 of them
    buf = by_hand_buffer("future")
    idx, goal_row = buf.draw(20000)
    goals = buf.obs2[goal_row[(idx == 3) & (goal_row >= 0)], 0]
    counts = np.array([(goals == g).sum() for g in (21, 22, 23, 24)])
    n = counts.sum()
    assert np.all(np.abs(counts - n / 4) < 5 * np.sqrt(n * 0.25 * 0.75)), counts


def test_terminated_rows_are_done_and_truncated_rows_bootstrap():
    buf, _, layout = point_buffer(env={"stop_on_success": True, "eps": 0.3}, steps=80)
    ends = buf.episodes.ep_len > 0
    # a terminated episode's last row is done; a truncated one (5 steps) is not
    last = np.zeros_like(ends)
    slot, env = np.arange(len(ends)) // 2, np.arange(len(ends)) % 2
    t = (slot - buf.episodes.ep_start) % buf.n_slots
    last[ends] = t[ends] == buf.episodes.ep_len[ends] - 1
    assert np.all(buf.done[ends & ~last] == 0)
    short = last & (buf.episodes.ep_len < 5)         # ended before the horizon: terminated
    assert short.any() and np.all(buf.done[short] == 1)
    assert np.any(last & (buf.done == 0))            # some reached the horizon: truncated
    assert np.all(buf.rew[short] == 0)               # terminated on success
    batch = buf.gather(np.flatnonzero(short), np.full(short.sum(), -1))
    assert np.all(batch["done"] == 1)


# ---------------------------------------------------------------------------------------------
# The relabelled fraction
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 4, 8])
def test_the_relabelled_fraction_is_k_over_k_plus_1(k):
    # 40,000 Bernoulli(p) draws: the fraction is within 5 standard deviations
    # (5 sqrt(p (1-p) / n) <= 0.0125) of p = k / (k + 1); a correct sampler fails with
    # probability < 1e-6 on a random seed, and the seed is fixed
    buf, _, _ = point_buffer(n_sampled_goal=k)
    _, goal_row = buf.draw(40000)
    p = k / (k + 1)
    frac = (goal_row >= 0).mean()
    assert abs(frac - p) <= 5 * np.sqrt(p * (1 - p) / 40000), (k, frac)
    if k == 0:
        assert frac == 0


def test_rows_are_drawn_uniformly_among_finished_episodes():
    # 2 envs, 33 steps in a ring of 40 slots: 6 episodes of 5 steps each have ended (60 rows),
    # 3 steps of each env still run; 30,000 draws give each row ~500 (binomial sd ~22):
    # each count within 5 sd of that (a correct sampler fails with probability < 1e-4)
    buf, _, _ = point_buffer(max_size=80, steps=33)
    idx, _ = buf.draw(30000)
    drawable = np.flatnonzero(buf.episodes.ep_len > 0)
    assert set(idx) == set(drawable) and len(drawable) == 60
    counts = np.bincount(idx, minlength=len(buf))[drawable]
    expect = 30000 / len(drawable)
    assert np.all(np.abs(counts - expect) < 5 * np.sqrt(expect)), counts


# ---------------------------------------------------------------------------------------------
# The plain twin of the jitted draw and gather
# ---------------------------------------------------------------------------------------------

def draw_twin(state, buf, B):
    """numddpg.kernels.her.draw_transitions in plain Python, with the same generator calls."""
    ep_start, ep_len = buf.episodes.ep_start, buf.episodes.ep_len
    n, n_slots, n_rows = buf.n_envs, buf.n_slots, buf.size * buf.n_envs
    strategy = STRATEGIES[buf.goal_selection_strategy]
    idx, goal_row = np.empty(B, np.int64), np.full(B, -1, np.int64)
    for i in range(B):
        j = rng.randint(state, n_rows)
        while ep_len[j] == 0:
            j = rng.randint(state, n_rows)
        idx[i] = j
        if rng.uniform(state) < buf.p_relabel:
            start, T, env = ep_start[j], ep_len[j], j % n
            t = (j // n - start) % n_slots
            tg = (t + rng.randint(state, T - t) if strategy == FUTURE else
                  T - 1 if strategy == FINAL else rng.randint(state, T))
            goal_row[i] = ((start + tg) % n_slots) * n + env
    return idx, goal_row


def gather_twin(buf, idx, goal_row, norm):
    """numddpg.kernels.her.gather_relabelled and the rewards, in NumPy."""
    (a0, a1), (d0, d1) = buf.achieved, buf.desired

    def normalize(x, cols):               # float64 arithmetic, then stored as float32
        return np.clip((x.astype(np.float64) - norm.shift[cols]) * norm.scale[cols],
                       -norm.clip[0], norm.clip[0]).astype(buf.dtype)
    every = slice(None)
    out = {"obs": normalize(buf.obs[idx], every), "act": buf.act[idx], "rew": buf.rew[idx],
           "obs2": normalize(buf.obs2[idx], every), "done": buf.done[idx]}
    rel = goal_row >= 0
    goals = buf.obs2[goal_row[rel], a0:a1]
    out["obs"][rel, d0:d1] = out["obs2"][rel, d0:d1] = normalize(goals, slice(d0, d1))
    out["rew"][rel] = buf.compute_reward(buf.obs2[idx[rel], a0:a1], goals, None)
    return out


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_the_jitted_draw_and_gather_equal_their_plain_twin_bit_for_bit(strategy):
    # 2 envs, a ring of 23 slots that has wrapped; a non-trivial normalization whose clip bites
    buf, _, layout = point_buffer(max_size=46, steps=61, goal_selection_strategy=strategy)
    norm = ObsNormalizer(layout.obs_dim, clip=1.5)
    norm.update(np.random.default_rng(3).normal(0.2, 0.5, (50, layout.obs_dim)))
    state = buf.rng_state.copy()
    idx, goal_row = buf.draw(500)
    batch = buf.gather(idx, goal_row, norm)
    t_idx, t_goal_row = draw_twin(state, buf, 500)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_array_equal(goal_row, t_goal_row)
    assert state[0] == buf.rng_state[0]              # the same number of draws
    twin = gather_twin(buf, idx, goal_row, norm)
    for name in batch:
        assert batch[name].dtype == twin[name].dtype == np.float32
        np.testing.assert_array_equal(batch[name], twin[name], err_msg=name)
    assert np.any(np.abs(batch["obs"]) == 1.5)        # the clip was exercised


def test_draw_from_the_callers_generator_leaves_the_buffers_alone():
    buf, _, _ = point_buffer()
    own, mine = buf.rng_state.copy(), rng.new_state(99)
    a = buf.draw(64, rng_state=mine)
    assert buf.rng_state[0] == own[0] and mine[0] != rng.new_state(99)[0]
    b = buf.draw(64, rng_state=rng.new_state(99))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# The episode bookkeeping against a plain model of the ring
# ---------------------------------------------------------------------------------------------

def ring_model(ends, n_slots):
    """Expected (ep_start, ep_len) of every row after env e's episodes ended at the steps where
    ends[:, e] (steps, n) is True, in plain Python: an episode keeps its slots until the ring
    writes over one of them, then it is gone; a running episode longer than the ring loses
    its first step to make room."""
    steps, n = ends.shape
    ep_start, ep_len = np.zeros(n_slots * n, np.int64), np.zeros(n_slots * n, np.int64)
    for e in range(n):
        finished, running = [], []                  # lists of slots, in step order
        for step in range(steps):
            slot = step % n_slots
            finished = [ep for ep in finished if slot not in ep]
            if slot in running:
                running.remove(slot)
            running.append(slot)
            if ends[step, e]:
                finished, running = finished + [running], []
        for ep in finished:
            for slot in ep:
                ep_start[slot * n + e], ep_len[slot * n + e] = ep[0], len(ep)
    return ep_start, ep_len


@pytest.mark.parametrize("seed", range(6))
def test_the_bookkeeping_matches_a_plain_model_of_the_ring(seed):
    r = np.random.default_rng(seed)
    n, n_slots, steps = 3, int(r.integers(4, 12)), 60
    ends = r.uniform(size=(steps, n)) < 0.2          # some episodes run longer than the ring
    ends[-1, 0] = True                                # and env 0's last one is drawable
    buf = HerReplayBuffer(4, 1, n_slots * n, (0, 1), (1, 2), lambda a, d, i: a[:, 0],
                          n_envs=n, seed=seed)
    for step in range(steps):
        buf.store(np.zeros((n, 4)), np.zeros((n, 1)), np.zeros(n), np.zeros((n, 4)),
                  np.zeros(n), ends[step])
    ep_start, ep_len = ring_model(ends, n_slots)
    np.testing.assert_array_equal(buf.episodes.ep_len, ep_len)
    drawable = ep_len > 0
    np.testing.assert_array_equal(buf.episodes.ep_start[drawable], ep_start[drawable])
    assert buf.n_sampleable == drawable.sum() > 0
    arrays, record = buf.state()
    assert check_episodes(arrays, record["ptr"], record["size"], n_slots, n) == drawable.sum()


# ---------------------------------------------------------------------------------------------
# State: exact round trip, hostile states refused before anything changes
# ---------------------------------------------------------------------------------------------

def saved(buf, include_rows=True):
    """A ``state`` as a file gives it back: copied arrays and the record through JSON."""
    arrays, record = buf.state(include_rows)
    return {k: v.copy() for k, v in arrays.items()}, json.loads(json.dumps(record))


def twin_buffer(buf, seed=123):
    """An empty buffer built with ``buf``'s settings and another seed."""
    return HerReplayBuffer(buf.obs_dim, buf.act_dim, buf.n_slots * buf.n_envs, buf.achieved,
                           buf.desired, buf.compute_reward, n_envs=buf.n_envs,
                           n_sampled_goal=buf.n_sampled_goal,
                           goal_selection_strategy=buf.goal_selection_strategy, seed=seed)


def contents(buf):
    return ([getattr(buf, f).copy() for f in ("obs", "act", "rew", "obs2", "done")]
            + [a.copy() for a in buf.episodes] + [buf.rng_state.copy(), buf.ptr, buf.size])


def assert_same(a, b):
    for x, y in zip(contents(a), contents(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("steps", [3, 40, 61])          # no episode ended, not full, wrapped
def test_a_restored_buffer_is_the_same_buffer(steps):
    buf, env, layout = point_buffer(max_size=46, steps=steps)
    other = twin_buffer(buf)
    collect(other, [PointGoalEnv(9)], layout, 0)
    other.restore(*saved(buf))
    assert_same(buf, other)
    # both go on identically: more steps, then minibatches
    envs_a, envs_b = ([PointGoalEnv(5 + i) for i in range(2)] for _ in range(2))
    collect(buf, envs_a, layout, 9, seed=4)
    collect(other, envs_b, layout, 9, seed=4)
    assert_same(buf, other)
    a, b = buf.sample(128), other.sample(128)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_a_state_without_rows_restarts_empty_with_the_generator():
    buf, _, _ = point_buffer()
    other, _, _ = point_buffer(seed=5)
    other.restore(*saved(buf, include_rows=False))
    assert (other.size, other.ptr, len(other), other.n_sampleable) == (0, 0, 0, 0)
    assert not other.obs.any() and not other.episodes.ep_len.any()
    assert other.rng_state[0] == buf.rng_state[0]


def set_array(name, index, value):
    def change(arrays, record):
        arrays[name][index] = value
    return change


def set_record(name, value):
    def change(arrays, record):
        record[name] = value
    return change


def del_array(name):
    def change(arrays, record):
        del arrays[name]
    return change


def retype(name, dtype):
    def change(arrays, record):
        arrays[name] = arrays[name].astype(dtype)
    return change


def forge_episode_across_the_oldest_slot(arrays, record):
    # env 0's running episode emptied, and slots ptr-2 .. ptr+2 made one 5-step episode: its
    # rows agree with each other, but it runs from the newest slots into the oldest, which
    # store cannot write (an episode fills its slots in order)
    # (the episodes it cuts into are left as forgotten rows, so that only the order is wrong)
    ptr, n = record["ptr"], 2
    arrays["cur_start"][0], arrays["cur_len"][0] = ptr, 0
    for slot in range(ptr - 6, ptr + 7):
        arrays["ep_len"][slot * n] = 0
    for slot in range(ptr - 2, ptr + 3):
        arrays["ep_start"][slot * n], arrays["ep_len"][slot * n] = ptr - 2, 5
        arrays["done"][slot * n] = 0


def split_episode(arrays, record):
    row = np.flatnonzero(arrays["ep_len"] == 5)[7]      # a row of a finished episode
    arrays["ep_start"][row] = (arrays["ep_start"][row] + 1) % 23


HOSTILE = {
    "record not a dict": (lambda a, r: r.clear(), "exactly the fields"),
    "record field missing": (lambda a, r: r.pop("ptr"), "exactly the fields"),
    "record field extra": (set_record("pickle", "os.system"), "exactly the fields"),
    "saved not a bool": (set_record("saved", 1), "'saved' must be true or false"),
    "other n_envs": (set_record("n_envs", 3), "n_envs=3, but this buffer has n_envs=2"),
    "other strategy": (set_record("goal_selection_strategy", "final"), "goal_selection_strat"),
    "other k": (set_record("n_sampled_goal", 2), "n_sampled_goal=2"),
    "other dtype": (set_record("dtype", "float64"), "dtype='float64'"),
    "other spans": (set_record("achieved", [1, 3]), r"achieved=\[1, 3\]"),
    "n_slots as float": (set_record("n_slots", 23.0), "n_slots=23.0"),
    "ptr out of range": (set_record("ptr", 23), "'ptr' must be an integer from 0 to 22"),
    "ptr negative": (set_record("ptr", -1), "'ptr' must be an integer"),
    "ptr a bool": (set_record("ptr", True), "'ptr' must be an integer"),
    "size too large": (set_record("size", 10**12), "'size' must be an integer from 0 to 23"),
    "ptr off a partial ring": (lambda a, r: r.update(size=10, ptr=3), "not full"),
    "array missing": (del_array("ep_len"), "asks for"),
    "array extra": (lambda a, r: a.update(code=np.zeros(1)), "asks for"),
    "float64 rows": (retype("obs", np.float64), r"'obs' is float64 \(46, 7\), expected float32"),
    "int32 episodes": (retype("ep_len", np.int32), "'ep_len' is int32"),
    "rows short": (lambda a, r: a.update(act=a["act"][:-1]), r"'act' is float32 \(45, 2\)"),
    "object array": (lambda a, r: a.update(rew=list(a["rew"])), "'rew' is list"),
    "nan obs": (set_array("obs2", (4, 1), np.nan), "'obs2' holds a non-finite number"),
    "done one half": (set_array("done", 5, 0.5), "done flag of row 5 is 0.5"),
    "ep_len beyond ring": (set_array("ep_len", 0, 24), r"ep_len\[0\] = 24 is outside"),
    "ep_start negative": (set_array("ep_start", 0, -1), r"ep_start\[0\] = -1 is outside"),
    "cur_len beyond size": (set_array("cur_len", 1, 24), r"cur_len\[1\] = 24"),
    "running end off ptr": (set_array("cur_start", 0, 0), "does not end at the next slot"),
    "row beyond its episode": (set_array("ep_len", 1, 1), "outside its episode|not whole"),
    "episode not whole": (split_episode, "outside its episode|not whole"),
    "done mid-episode": (lambda a, r: a["done"].__setitem__(
        np.flatnonzero(a["ep_len"] > 0)[0], 1.0), "not its episode's last step"),
    "running row finished": (lambda a, r: a["ep_len"].__setitem__(
        ((a["cur_start"][0] + np.arange(a["cur_len"][0])) % 23 * 2)[:1], 2),
        "running episode is marked finished"),
    "episode across the oldest slot": (forge_episode_across_the_oldest_slot,
                                       "outside its episode"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_damaged_state_is_refused_and_changes_nothing(name):
    change, words = HOSTILE[name]
    buf, _, _ = point_buffer(max_size=46, steps=61)         # 23 slots, wrapped: ptr 15
    assert (buf.ptr, buf.size) == (15, 23) and buf.episodes.cur_len[0] > 0
    arrays, record = saved(buf)
    change(arrays, record)
    target, _, _ = point_buffer(max_size=46, steps=30, seed=9)
    before = contents(target)
    with pytest.raises(CheckpointError, match=words):
        target.restore(arrays, record)
    for x, y in zip(before, contents(target), strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_expected_arrays_are_what_a_state_holds():
    buf, _, _ = point_buffer(max_size=46, steps=61)
    arrays, record = buf.state()
    assert {k: (v.dtype.name, v.shape) for k, v in arrays.items()} == \
        buf.expected_arrays(record)


# ---------------------------------------------------------------------------------------------
# Arguments and transitions refused
# ---------------------------------------------------------------------------------------------

def test_a_non_finite_transition_is_refused_and_nothing_is_stored():
    buf, _, layout = point_buffer(steps=7)
    before = contents(buf)
    obs = np.zeros((2, layout.obs_dim))
    bad = obs.copy()
    bad[1, 0] = np.inf
    with pytest.raises(NonFiniteTransition, match="non-finite observation in the transition "
                                                  "of env 1"):
        buf.store(obs, np.zeros((2, 2)), np.zeros(2), bad, [0, 0], [1, 1])
    with pytest.raises(NonFiniteTransition, match="non-finite reward .* env 0"):
        buf.store(obs, np.zeros((2, 2)), [1e39, 0], obs, [0, 0], [1, 1])
    for x, y in zip(before, contents(buf), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("args, words", [
    (dict(obs=np.zeros(7)), r"obs must be real numbers of shape \(2, 7\)"),
    (dict(act=np.zeros((2, 3))), r"act must be .*\(2, 2\)"),
    (dict(rew=0.0), r"rew must be .*\(2,\)"),
    (dict(terminated=[0, 2]), "terminated must be 2 flags"),
    (dict(truncated=["yes", "no"]), "truncated must be 2 flags"),
])
def test_store_names_a_misshapen_argument(args, words):
    buf, _, layout = point_buffer(steps=0)
    step = dict(obs=np.zeros((2, layout.obs_dim)), act=np.zeros((2, 2)), rew=np.zeros(2),
                obs2=np.zeros((2, layout.obs_dim)), terminated=[0, 0], truncated=[0, 0])
    with pytest.raises(ValueError, match=words):
        buf.store(**{**step, **args})


def test_no_minibatch_before_an_episode_has_ended():
    buf, _, _ = point_buffer(steps=4)                       # horizon 5
    with pytest.raises(ValueError, match="before an episode has ended"):
        buf.sample(8)


@pytest.mark.parametrize("kwargs, words", [
    (dict(achieved=(0, 3)), "same width"),
    (dict(desired=(1, 3)), "not overlap"),
    (dict(achieved=(2, 2)), r"achieved must be the \(start, stop\)"),
    (dict(desired=(5, 8)), r"desired\[1\] must be an integer from 0 to 7"),
    (dict(achieved=None), "achieved must be"),
    (dict(compute_reward=None), "compute_reward must be"),
    (dict(n_sampled_goal=-1), "n_sampled_goal must be an integer from 0 to 1000"),
    (dict(n_sampled_goal=2.5), "n_sampled_goal"),
    (dict(goal_selection_strategy="random"), "goal_selection_strategy must be one of"),
    (dict(n_envs=3, max_size=2), "at least one step of the 3 envs"),
])
def test_the_constructor_names_a_bad_argument(kwargs, words):
    args = dict(obs_dim=7, act_dim=2, max_size=10, achieved=(0, 2), desired=(2, 4),
                compute_reward=PointGoalEnv(0).compute_reward)
    with pytest.raises(ValueError, match=words):
        HerReplayBuffer(**{**args, **kwargs})


# ---------------------------------------------------------------------------------------------
# SB3's options: truncating the last trajectory, keeping info dicts
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("terminal", [False, True])
def test_truncating_the_last_trajectory_makes_the_running_episodes_drawable(terminal):
    buf, _, _ = point_buffer(max_size=46, steps=7, env=dict(horizon=5))   # 2 steps running
    running, valid = buf.episodes.cur_len.copy(), buf.n_sampleable
    done = buf.done.copy()
    assert list(running) == [2, 2]
    assert buf.truncate_last_trajectory(terminal) == [0, 1]
    assert not buf.episodes.cur_len.any() and buf.n_sampleable == valid + 4
    last = (buf.ptr - 1) * 2 + np.arange(2)
    assert np.all(buf.done[last] == float(terminal))
    done[last] = buf.done[last]
    np.testing.assert_array_equal(buf.done, done)          # nothing else changed
    arrays, record = buf.state()
    assert check_episodes(arrays, record["ptr"], record["size"], buf.n_slots, 2) == valid + 4
    idx, _ = buf.draw(2000)
    assert set(last) <= set(idx)                           # their rows are drawn now
    assert buf.truncate_last_trajectory() == []


def test_kept_infos_reach_compute_reward_as_copies_and_files_hold_none():
    buf, env, layout = point_buffer(steps=0)
    buf.keep_infos()
    seen = []

    def spy(achieved_goal, desired_goal, infos):
        seen.extend(infos)
        for info in infos:
            info["touched"] = True                        # a copy: the stored dict stays
        return env.compute_reward(achieved_goal, desired_goal, infos)

    buf.compute_reward = spy
    envs = [PointGoalEnv(i) for i in range(2)]
    obs = [e.reset() for e in envs]
    for t in range(10):
        res = [e.step(np.zeros(2)) for e in envs]
        buf.store(np.stack([layout.flatten(o) for o in obs]), np.zeros((2, 2)),
                  [r[1] for r in res], np.stack([layout.flatten(r[0]) for r in res]),
                  [r[2] for r in res], [r[3] for r in res], infos=[{"t": t, "env": e}
                                                                   for e in range(2)])
        obs = [e.reset() if r[3] else r[0] for e, r in zip(envs, res)]
    buf.sample(64)
    assert seen and all(set(i) == {"t", "env", "touched"} for i in seen)
    assert all("touched" not in i for i in buf.infos[:20])
    other = twin_buffer(buf)
    other.keep_infos()
    other.restore(*saved(buf))
    assert all(i is None for i in other.infos)             # ({} for compute_reward)
