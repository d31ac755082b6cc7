"""n-step returns (docs/math.md section 12): the replay buffer's links, the jitted gather against
sums worked out by hand and against its plain-NumPy twin, the update's per-row discount against
the twin and the one-step target, the gradient check, the loop on vector envs, files and the
SB3 layer.

Tolerances: the gather and the twin add the same float64 terms in the same order (gamma^k as a
running product), so they agree exactly; hand sums are written with powers of gamma = 0.5,
exact in binary.  Update paths: tests/test_agents.py's PATHS (1e-12 absolute, float64).
"""
import io
import sys
import types
import zipfile

import numpy as np
import pytest

import numddpg
from numddpg.engine.agents import DDPGAgent, TD3Agent
from numddpg.engine.buffer import ReplayBuffer, check_links
from numddpg.files.checkpoint import CheckpointError
from numddpg.kernels import reference as ref
from numddpg.kernels.replay import gather_nstep, sample_indices

from helpers import random_batch, small_agent

PATHS = 1e-12
G = 0.5            # gamma of the hand-built trajectories: its powers are exact


def gather(buf, idx):
    """gather_nstep on rows idx of ``buf`` (identity normalization): the minibatch dict."""
    B, o, a = len(idx), buf.obs_dim, buf.act_dim
    out = {"obs": np.empty((B, o)), "act": np.empty((B, a)), "rew": np.empty(B),
           "obs2": np.empty((B, o)), "done": np.empty(B), "discount": np.empty(B)}
    gather_nstep(np.asarray(idx, np.int64), buf.size, buf.n_steps, buf.gamma, buf.obs, buf.act,
                 buf.rew, buf.obs2, buf.done, buf.next_row, np.zeros(o), np.ones(o),
                 np.full(1, np.inf), out["obs"], out["act"], out["rew"], out["obs2"],
                 out["done"], out["discount"])
    return out


def twin(buf, idx):
    return ref.nstep_batch(np.asarray(idx), buf.obs[:buf.size], buf.act[:buf.size],
                           buf.rew[:buf.size], buf.obs2[:buf.size], buf.done[:buf.size],
                           buf.next_row[:buf.size], buf.n_steps, buf.gamma)


def step(buf, k, done=0, truncated=False, env=0):
    """Store transition k of env ``env``: s = [k, env], a = k, r = 2^k (distinct sums), s' =
    [k + 1, env]."""
    buf.store(np.array([k, env]), np.array([k]), 2.0 ** k, np.array([k + 1, env]), done,
              truncated=truncated, env=env)


def assert_rows(out, rew, k_next, done, discount):
    np.testing.assert_array_equal(out["rew"], rew)
    np.testing.assert_array_equal(out["obs2"][:, 0], k_next)
    np.testing.assert_array_equal(out["done"], done)
    np.testing.assert_array_equal(out["discount"], discount)


# --- the sums by hand --------------------------------------------------------------------------

def test_one_env_terminated_truncated_and_the_newest_transition():
    """Episode A: steps 0-3, terminated at 3; B: 4-5, truncated at 5; C: 6-7, still running."""
    buf = ReplayBuffer(2, 1, 16, n_steps=3, gamma=G)
    for k in range(8):
        step(buf, k, done=int(k == 3), truncated=(k == 5))
    np.testing.assert_array_equal(buf.next_row[:8], [1, 2, 3, -1, 5, -1, 7, -1])
    out = gather(buf, range(8))
    r = 2.0 ** np.arange(8)
    assert_rows(out,
                rew=[r[0] + G * r[1] + G**2 * r[2], r[1] + G * r[2] + G**2 * r[3],
                     r[2] + G * r[3], r[3],                   # m = 2, 1: cut at the termination
                     r[4] + G * r[5], r[5],                   # cut at the truncation
                     r[6] + G * r[7], r[7]],                  # cut at the newest transition
                k_next=[3, 4, 4, 4, 6, 6, 8, 8],
                done=[0, 1, 1, 1, 0, 0, 0, 0],
                discount=[G**3, 0, 0, 0, G**2, G, G**2, G])   # terminated: no bootstrap
    np.testing.assert_array_equal(out["obs"][:, 0], np.arange(8))   # s_t, a_t of row t itself
    np.testing.assert_array_equal(out["act"][:, 0], np.arange(8))
    for key, value in twin(buf, range(8)).items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)
    step(buf, 8)                                    # the next transition links the newest one
    assert_rows(gather(buf, [6]), rew=[r[6] + G * r[7] + G**2 * 2.0**8], k_next=[9], done=[0],
                discount=[G**3])


def test_n_steps_one_is_the_one_step_transition():
    buf = ReplayBuffer(2, 1, 8, n_steps=2, gamma=G)
    for k in range(5):
        step(buf, k, done=int(k == 2))
    buf.n_steps = 1                                 # (the kernel's bound: one link never taken)
    assert_rows(gather(buf, range(5)), rew=2.0 ** np.arange(5), k_next=np.arange(1, 6),
                done=[0, 0, 1, 0, 0], discount=[G, G, 0, G, G])


def test_the_ring_wraps_and_never_sums_past_the_write_position():
    """Capacity 5, one episode of 8 steps: rows 3, 4, 0, 1, 2 hold steps 3..7 (ptr = 3, the
    oldest); sums run from the oldest row across the wrap and stop at the newest (row 2)."""
    buf = ReplayBuffer(2, 1, 5, n_steps=3, gamma=G)
    for k in range(8):
        step(buf, k)
    assert (buf.ptr, buf.size) == (3, 5)
    np.testing.assert_array_equal(buf.next_row, [1, 2, -1, 4, 0])
    r = 2.0 ** np.arange(8)
    out = gather(buf, [3, 4, 0, 1, 2])            # steps 3, 4, 5, 6, 7
    assert_rows(out, rew=[r[3] + G * r[4] + G**2 * r[5], r[4] + G * r[5] + G**2 * r[6],
                          r[5] + G * r[6] + G**2 * r[7], r[6] + G * r[7], r[7]],
                k_next=[6, 7, 8, 8, 8], done=0, discount=[G**3, G**3, G**3, G**2, G])
    for key, value in twin(buf, [3, 4, 0, 1, 2]).items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)


def test_vector_env_rows_interleave_and_a_reset_step_is_left_out():
    """Two envs stored as the loop stores them: env 1's episode ends (truncated) at its step 1;
    its next step is a reset (no row), then a new episode starts."""
    buf = ReplayBuffer(2, 1, 16, n_steps=3, gamma=G)
    step(buf, 0, env=0)                            # row 0
    step(buf, 10, env=1)                           # row 1
    step(buf, 1, env=0)                            # row 2
    step(buf, 11, env=1, truncated=True)           # row 3: env 1's episode ends
    step(buf, 2, env=0)                            # row 4 (env 1 resets: no row)
    step(buf, 3, env=0, done=1)                    # row 5: env 0 terminates
    step(buf, 20, env=1)                           # row 6: env 1's new episode
    step(buf, 21, env=1)                           # row 7
    np.testing.assert_array_equal(buf.next_row[:8], [2, 3, 4, -1, 5, -1, 7, -1])
    out = gather(buf, range(8))
    np.testing.assert_array_equal(out["obs"][:, 1], out["obs2"][:, 1])    # never another env
    r = lambda k: 2.0 ** k                                               # noqa: E731
    assert_rows(out, rew=[r(0) + G * r(1) + G**2 * r(2), r(10) + G * r(11),
                          r(1) + G * r(2) + G**2 * r(3), r(11), r(2) + G * r(3), r(3),
                          r(20) + G * r(21), r(21)],
                k_next=[3, 12, 4, 12, 4, 4, 22, 22], done=[0, 0, 1, 0, 1, 1, 0, 0],
                discount=[G**3, G**2, 0, G, 0, 0, G**2, G])


def test_a_ring_smaller_than_a_step_of_the_envs_links_nothing_overwritten():
    buf = ReplayBuffer(2, 1, 2, n_steps=3, gamma=G)
    for k in range(3):                             # 3 envs, 2 rows: env 0's row is overwritten
        step(buf, 0, env=k)
    step(buf, 1, env=0)
    np.testing.assert_array_equal(buf.next_row, [-1, -1])
    buf = ReplayBuffer(2, 1, 3, n_steps=3, gamma=G)
    for k in range(3):
        step(buf, 0, env=k)
    step(buf, 1, env=0)                            # lands on env 0's old row itself: no loop
    np.testing.assert_array_equal(buf.next_row, [-1, -1, -1])


def test_end_episodes_and_restore_drop_the_episodes_in_progress():
    buf = ReplayBuffer(2, 1, 8, n_steps=3, gamma=G)
    step(buf, 0)
    buf.end_episodes()
    step(buf, 1)
    assert buf.next_row[0] == -1
    arrays, record = buf.state()
    other = ReplayBuffer(2, 1, 8, n_steps=3, gamma=G)
    other.restore(arrays, record)
    step(other, 2)
    np.testing.assert_array_equal(other.next_row[:3], [-1, -1, -1])


# --- the jitted gather against its twin ----------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_gather_equals_the_twin_on_random_trajectories(seed):
    """Envs 1-4 in random order, random terminations and truncations, a ring wrapped several
    times, n 2-6: the kernel and reference.nstep_batch agree exactly."""
    rng = np.random.default_rng(seed)
    n_envs = int(rng.integers(1, 5))
    buf = ReplayBuffer(3, 2, int(rng.integers(5, 40)), n_steps=int(rng.integers(2, 7)),
                       gamma=float(rng.uniform(0.5, 1.0)))
    for _ in range(200):
        env = int(rng.integers(n_envs))
        buf.store(rng.standard_normal(3), rng.standard_normal(2), rng.standard_normal(),
                  rng.standard_normal(3), int(rng.uniform() < 0.1),
                  truncated=bool(rng.uniform() < 0.1), env=env)
    check_links(buf.next_row[:buf.size], buf.ptr, buf.size, buf.max_size)
    idx = rng.integers(0, buf.size, 64)
    out, want = gather(buf, idx), twin(buf, idx)
    for key in out:
        np.testing.assert_array_equal(out[key], want[key], err_msg=key)
    assert np.all((0 <= out["discount"]) & (out["discount"] <= buf.gamma))


def test_sample_returns_the_discount_and_the_sampler_stops_at_bad_links():
    buf = ReplayBuffer(2, 1, 8, n_steps=3, gamma=G, seed=0)
    for k in range(4):
        step(buf, k)
    batch = buf.sample(32)
    assert batch["discount"].dtype == np.float64 and batch["discount"].shape == (32,)
    assert set(batch["discount"]) <= {G, G**2, G**3}
    one_step = ReplayBuffer(2, 1, 8, seed=0)
    step(one_step, 0)
    assert "discount" not in one_step.sample(4)
    buf.next_row[0] = 7                                      # past the 4 filled rows
    assert gather(buf, [0])["rew"][0] == 1.0


def test_check_links_refuses_a_link_backward_or_outside():
    check_links(np.array([1, 2, -1]), 3, 3, 8)               # not full: rows in index order
    check_links(np.array([-1, 2, 0]), 1, 3, 3)               # full, ptr 1: order 1, 2, 0
    for links, ptr, size, cap in (([0, -1, -1], 3, 3, 8), ([2, -1, 1], 3, 3, 8),
                                  ([3, -1, -1], 3, 3, 8), ([-1, -1, 1], 1, 3, 3),
                                  ([-2, -1, -1], 3, 3, 8)):
        with pytest.raises(CheckpointError, match="next_row at row"):
            check_links(np.array(links), ptr, size, cap)


# --- the update: per-row discount ----------------------------------------------------------------

@pytest.mark.parametrize("cls", [DDPGAgent, TD3Agent])
def test_the_discount_of_a_one_step_batch_changes_no_bit(cls, rng):
    """discount = gamma (1 - d) in float64 is the one-step target's own product."""
    a, b = small_agent(cls, seed=1), small_agent(cls, seed=1)
    for _ in range(3):
        batch = random_batch(rng, a, 6)
        a.update(*batch)
        b.update(*batch, discount=b.gamma * (1.0 - batch[4]))
    for name, value in a.state_dict().items():
        assert np.array_equal(value, b.state_dict()[name]), name


@pytest.mark.parametrize("cls, kw", [(DDPGAgent, {}), (TD3Agent, {}),
                                     (DDPGAgent, {"n_critics": 3})])
def test_fused_update_with_a_discount_equals_the_twin(cls, kw, rng):
    fused, stepwise = small_agent(cls, seed=3, **kw), small_agent(cls, seed=3, **kw)
    for B in (5, 3, 8):
        batch = random_batch(rng, fused, B)
        discount = fused.gamma ** rng.integers(1, 4, B) * (1 - batch[4])
        info_f = fused.update(*batch, discount=discount)
        info_s = stepwise.update_stepwise(*batch, discount=discount)
        for k in ("loss_q", "q_mean"):
            assert info_f[k] == pytest.approx(info_s[k], rel=PATHS)
        for name, value in fused.state_dict().items():
            np.testing.assert_allclose(value, stepwise.state_dict()[name], rtol=0, atol=PATHS,
                                       err_msg=name)
    # and the discount matters: gamma^3 instead of gamma moves the critic
    c = small_agent(cls, seed=3)
    d = small_agent(cls, seed=3)
    batch = random_batch(rng, c, 5)
    c.update(*batch)
    d.update(*batch, discount=c.gamma ** 3 * (1 - batch[4]))
    assert not np.array_equal(c.critic.params, d.critic.params)


def test_a_bad_discount_is_refused(rng):
    agent = small_agent(DDPGAgent)
    batch = random_batch(rng, agent, 4)
    for bad, match in ((np.ones(3), r"shape \(4,\)"), (np.full(4, 1.5), r"discount\[0\]"),
                       (np.array([0.5, np.nan, 0.5, 0.5]), r"discount\[1\]")):
        with pytest.raises(ValueError, match=match):
            agent.update(*batch, discount=bad)


@pytest.mark.parametrize("cls", [DDPGAgent, TD3Agent])
def test_update_burst_samples_n_step_minibatches_as_the_twin_gathers_them(cls):
    """update_burst on an n-step buffer = single updates on the twin's gathers of the same
    indices (drawn from a copy of the agent's generator, as the kernel draws them)."""
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(3, 2, 40, n_steps=3, gamma=0.9)
    for t in range(60):
        buf.store(rng.standard_normal(3), rng.uniform(-0.5, 1.0, 2), rng.standard_normal(),
                  rng.standard_normal(3), int(t % 17 == 16), truncated=(t % 11 == 10),
                  env=t % 2)
    burst, single = small_agent(cls, seed=6, gamma=0.9), small_agent(cls, seed=6, gamma=0.9)
    burst.update_burst(buf, 8, 3)
    idx = np.empty(8, np.int64)
    for _ in range(3):
        sample_indices(single.rng_state, buf.size, idx)
        b = twin(buf, idx)
        single.update(b["obs"], b["act"], b["rew"], b["obs2"], b["done"],
                      discount=b["discount"])
    for name, value in burst.state_dict().items():
        np.testing.assert_allclose(value, single.state_dict()[name], rtol=0, atol=PATHS,
                                   err_msg=name)


# --- the loop, files, hyperparameters ------------------------------------------------------------

def test_the_loop_links_each_vector_env_episode_and_nothing_else():
    from gymnasium.vector import AutoresetMode
    from test_vector import CountEnv, TINY, vector
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        m = numddpg.DDPG(vector(mode, term_at=4), test_env=CountEnv(), update_after=10**9,
                         start_steps=0, log=False, n_steps=3, **TINY).learn(60,
                                                                            progress_bar=False)
        b = m.buffer
        n = b.size
        obs, obs2, done, nxt = b.obs[:n], b.obs2[:n], b.done[:n], b.next_row[:n]
        linked = nxt >= 0
        np.testing.assert_array_equal(obs[nxt[linked]], obs2[linked])   # same env and episode
        assert np.all(nxt[linked] > np.flatnonzero(linked))             # forward in time
        ended = (done == 1) | (obs2[:, 0] == 7)                         # terminated, truncated
        assert not linked[ended].any()
        # the transitions of the episodes still running are linked but each one's newest
        episode = obs[:, 1]
        unlinked = np.flatnonzero(~linked & ~ended)
        assert all(row == np.flatnonzero(episode == episode[row]).max() for row in unlinked)
        assert len(unlinked) <= 3


def test_save_load_at_an_episode_boundary_continues_identically(tmp_path):
    hp = dict(hidden_sizes=(8,), steps_per_epoch=400, start_steps=100, update_after=100,
              update_every=50, batch_size=16, num_test_episodes=0, seed=3, chunks=1,
              n_steps=3)
    a = numddpg.TD3("Pendulum-v1", log=False, **hp)
    a.learn(400, progress_bar=False)                  # 2 Pendulum episodes: a boundary
    b = numddpg.TD3.load(a.save(tmp_path / "m.npz"))
    assert b.n_steps == 3 and b.buffer.n_steps == 3 and b.buffer.gamma == a.gamma
    np.testing.assert_array_equal(b.buffer.next_row[:400], a.buffer.next_row[:400])
    assert (a.buffer.next_row[:400] == -1).sum() == 2  # each episode's last step
    a.learn(200, progress_bar=False)
    b.learn(200, progress_bar=False)
    for name, value in a.agent.state_dict().items():
        assert np.array_equal(value, b.agent.state_dict()[name]), name


def test_a_damaged_link_in_a_file_is_refused(tmp_path):
    m = numddpg.DDPG("Pendulum-v1", log=False, hidden_sizes=(8,), start_steps=10,
                     update_after=10**9, num_test_episodes=0, n_steps=2, seed=0)
    m.learn(20, progress_bar=False)
    path = m.save(tmp_path / "m.npz")
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "buffer.next_row.npy":
                arr = np.load(io.BytesIO(data))
                arr[5] = 2                                        # a link back in time
                out = io.BytesIO()
                np.save(out, arr)
                data = out.getvalue()
            dst.writestr(item, data)
    with pytest.raises(CheckpointError, match="next_row at row 5"):
        numddpg.DDPG.load(bad)


def test_load_replay_buffer_across_n_steps(tmp_path):
    """A one-step buffer loaded into an n-step model has no links (each row a one-step
    return); an n-step buffer loaded into a one-step model keeps its rows, not its links."""
    hp = dict(hidden_sizes=(8,), start_steps=10, update_after=10**9, num_test_episodes=0,
              seed=0, replay_size=500)
    one = numddpg.DDPG("Pendulum-v1", log=False, **hp)
    three = numddpg.DDPG("Pendulum-v1", log=False, n_steps=3, **hp)
    one.learn(30, progress_bar=False)
    three.learn(30, progress_bar=False)
    three.load_replay_buffer(one.save_replay_buffer(tmp_path / "one.npz"))
    np.testing.assert_array_equal(three.buffer.rew[:30], one.buffer.rew[:30])
    assert (three.buffer.next_row[:30] == -1).all()
    three.learn(5, progress_bar=False)                  # new transitions link again
    np.testing.assert_array_equal(three.buffer.next_row[30:34], [31, 32, 33, 34])
    one.load_replay_buffer(three.save_replay_buffer(tmp_path / "three.npz"))
    assert one.buffer.size == 35 and one.buffer.next_row.size == 0


def test_sb3_vec_normalize_rewards_are_summed_normalized():
    """numddpg.sb3's NormalizedRewards (SB3's VecNormalize: rewards normalized as sampled) in
    front of an n-step buffer: the burst sums r_hat = r / sqrt(var_R + eps), as SB3's
    NStepReplayBuffer normalizes each reward of the sum, and links as the buffer does."""
    from types import SimpleNamespace
    from numddpg.sb3.vecnormalize import NormalizedRewards
    rng = np.random.default_rng(1)
    buf = ReplayBuffer(3, 2, 40, n_steps=3, gamma=0.9)
    vn = SimpleNamespace(ret_rms=SimpleNamespace(var=np.array(3.0)), epsilon=1e-8,
                         clip_reward=10.0)
    wrapped = NormalizedRewards(buf, vn)
    for t in range(30):
        assert wrapped.store_fast(rng.standard_normal(3), rng.standard_normal(2),
                                  float(rng.standard_normal()), rng.standard_normal(3),
                                  float(t % 13 == 12), t % 2, bool(t % 13 >= 11)) == 0
    assert (buf.next_row[:30] >= 0).sum() > 20
    burst, single = small_agent(DDPGAgent, seed=6, gamma=0.9), small_agent(DDPGAgent, seed=6,
                                                                            gamma=0.9)
    wrapped.train(burst, 8, 2)
    idx = np.empty(8, np.int64)
    for _ in range(2):
        sample_indices(single.rng_state, buf.size, idx)
        b = ref.nstep_batch(idx, buf.obs[:30], buf.act[:30], wrapped.rew[:30], buf.obs2[:30],
                            buf.done[:30], buf.next_row[:30], 3, 0.9)
        single.update(b["obs"], b["act"], b["rew"], b["obs2"], b["done"], discount=b["discount"])
    np.testing.assert_allclose(wrapped.rew[:30], buf.rew[:30] / np.sqrt(3.0 + 1e-8), rtol=1e-6)
    for name, value in burst.state_dict().items():
        np.testing.assert_allclose(value, single.state_dict()[name], rtol=0, atol=PATHS,
                                   err_msg=name)


def test_n_steps_is_a_checked_hyperparameter_with_a_flag(capsys):
    with pytest.raises(ValueError, match="n_steps"):
        numddpg.DDPG("Pendulum-v1", log=False, n_steps=0)
    with pytest.raises(ValueError, match="her"):
        numddpg.DDPG("Pendulum-v1", log=False, n_steps=3, her="future")
    assert numddpg.DDPG("Pendulum-v1", log=False, hidden_sizes=(8,)).buffer.n_steps == 1
    from numddpg.tools.cli import main
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--n-steps" in capsys.readouterr().out


def test_sb3_n_steps_and_the_buffer_view_takes_sb3_classes_when_loaded(monkeypatch):
    from abc import ABC
    from numddpg.sb3 import TD3
    fake = types.ModuleType("stable_baselines3.common.buffers")

    class ReplayBuffer(ABC):
        pass

    class NStepReplayBuffer(ReplayBuffer):
        pass

    fake.ReplayBuffer, fake.NStepReplayBuffer = ReplayBuffer, NStepReplayBuffer
    model = TD3("MlpPolicy", "Pendulum-v1", n_steps=3, gamma=0.95, buffer_size=1000,
                learning_starts=50, policy_kwargs=dict(net_arch=[8]))
    view = model.replay_buffer
    assert (view.n_steps, view.gamma) == (3, 0.95) and model.native.n_steps == 3
    assert not isinstance(view, NStepReplayBuffer)       # SB3 not imported: nothing claimed
    monkeypatch.setitem(sys.modules, "stable_baselines3.common.buffers", fake)
    view = model.replay_buffer
    assert isinstance(view, NStepReplayBuffer) and isinstance(view, ReplayBuffer)
    one_step = TD3("MlpPolicy", "Pendulum-v1", buffer_size=1000, policy_kwargs=dict(net_arch=[8]))
    assert not isinstance(one_step.replay_buffer, NStepReplayBuffer)
    with pytest.raises(ValueError, match="n_steps, gamma"):
        one_step.replay_buffer = model.replay_buffer
    model.learn(120)
    assert model.num_timesteps >= 120


def test_sb3_add_links_each_env_and_load_with_another_n_steps(tmp_path):
    """The SB3 view's add: an episode goes on until done or TimeLimit.truncated, per env; load
    with another n_steps rebuilds the model around the file's rows."""
    from numddpg.sb3 import DDPG
    model = DDPG("MlpPolicy", "Pendulum-v1", n_steps=3, buffer_size=100,
                 policy_kwargs=dict(net_arch=[8]))
    view = model.replay_buffer
    obs = np.zeros((2, 3))
    for k, (done, trunc) in enumerate([((0, 0), (0, 0)), ((0, 0), (0, 1)), ((1, 0), (0, 0)),
                                       ((0, 0), (0, 0))]):
        view.add(obs + k, obs + k + 1, np.zeros((2, 1)), np.ones(2), np.array(done),
                 [{"TimeLimit.truncated": bool(t)} for t in trunc])
    # rows: step k of env e is row 2 k + e; env 1 truncated at step 1, env 0 done at step 2
    np.testing.assert_array_equal(model.native.buffer.next_row[:8], [2, 3, 4, -1, -1, 7, -1, -1])
    np.testing.assert_array_equal(model.native.buffer.done[:8], [0, 0, 0, 0, 1, 0, 0, 0])
    path = tmp_path / "m.npz"
    model.save(path)
    one = DDPG.load(path, n_steps=1)
    assert one.native.n_steps == one.native.buffer.n_steps == 1 and one.native.buffer.size == 8
    five = DDPG.load(path, n_steps=5)
    assert five.native.buffer.n_steps == 5
    np.testing.assert_array_equal(five.native.buffer.next_row[:8], [2, 3, 4, -1, -1, 7, -1, -1])
    assert DDPG.load(path).native.n_steps == 3
