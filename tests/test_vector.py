"""Training on gymnasium 1.x vector envs: n transitions per step, the autoreset step never
stored, truncation bootstrapped from the true final observation, in both autoreset modes."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit

from numddpg.training.algorithms import DDPG, OffPolicyAlgorithm

TINY = dict(hidden_sizes=(8,), num_test_episodes=0, steps_per_epoch=1000, chunks=1, seed=0)


class CountEnv(gym.Env):
    """obs = [k, e]: step k of episode e (env i counts episodes from 100 i); reward k;
    terminates at k == term_at (if given)."""

    def __init__(self, term_at=None, i=0):
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.term_at, self.k, self.e = term_at, 0, 100 * i - 1

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.e = 0, self.e + 1
        return np.array([0, self.e], np.float32), {}

    def step(self, action):
        self.k += 1
        return (np.array([self.k, self.e], np.float32), float(self.k),
                self.term_at is not None and self.k == self.term_at, False, {})


def vector(mode, n=3, term_at=None, limit=7):
    fns = [lambda i=i: TimeLimit(CountEnv(term_at if i == 0 else None, i), limit)
           for i in range(n)]
    return SyncVectorEnv(fns, autoreset_mode=mode)


def stored(m):
    n = m.buffer.size
    return (m.buffer.obs[:n], m.buffer.rew[:n], m.buffer.obs2[:n], m.buffer.done[:n])


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_every_stored_row_is_a_transition_and_truncation_bootstraps(mode):
    m = DDPG(vector(mode, term_at=4), test_env=CountEnv(), update_after=10**9, start_steps=0,
             log=False, **TINY).learn(60, progress_bar=False)
    obs, rew, obs2, done = stored(m)
    assert m.t == len(obs) >= 60
    np.testing.assert_array_equal(obs2[:, 0], obs[:, 0] + 1)      # never a reset observation
    np.testing.assert_array_equal(obs2[:, 1], obs[:, 1])          # s' of the same episode
    np.testing.assert_array_equal(rew, obs2[:, 0])
    env0 = obs[:, 1] < 100
    np.testing.assert_array_equal(done, env0 & (obs2[:, 0] == 4))  # d: env 0's terminations
    assert (obs2[done == 0, 0] == 7).any()                        # truncations: d = 0, s' final
    assert m.episodes == int(done.sum() + (obs2[:, 0] == 7).sum())


def test_the_critic_learns_the_discounted_value_under_truncation():
    """Reward 1 forever, episodes cut at 5 steps: with truncation bootstrapped, Q = 1/(1-gamma)
    everywhere (2 for gamma 0.5); taking a truncation as terminal would give 1 at step 5."""
    class Ones(CountEnv):
        def step(self, action):
            self.k += 1
            return np.array([self.k / 5, 0], np.float32), 1.0, False, False, {}

    env = SyncVectorEnv([lambda: TimeLimit(Ones(), 5) for _ in range(2)])
    m = DDPG(env, test_env=Ones(), log=False, gamma=0.5, q_lr=3e-3, start_steps=10**9,
             update_after=50, update_every=1, batch_size=64, **TINY)
    m.learn(3000, progress_bar=False)
    x = np.array([[k / 5, 0, a] for k in range(6) for a in (-0.5, 0.5)], np.float32)
    q = m.agent.critic.forward(x)[:, 0]
    np.testing.assert_allclose(q, 2.0, atol=0.15)


def test_vector_runs_save_load_resume_and_callbacks(tmp_path):
    seen = []

    class CB:
        def on_training_start(self, *a): pass
        def on_rollout_start(self): pass
        def on_rollout_end(self): pass
        def on_training_end(self): pass
        def update_locals(self, loc): self.loc = loc
        def on_step(self):
            seen.append((self.loc["new_obs"].shape, self.loc["rewards"].shape))
            return True

    env = gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync")
    m = DDPG(env, run_dir=tmp_path / "run", start_steps=100, update_after=100, update_every=10,
             batch_size=16, steps_per_epoch=300, num_test_episodes=1, hidden_sizes=(8,),
             chunks=1, seed=0)
    m.learn(600, progress_bar=False, callback=CB())
    assert seen[0] == ((3, 3), (3,)) and m.t == 600 and m.agent.q_optim.t == 51 * 10   # t = 100, 110, ..., 600
    # the file's vector record is shown, not obeyed: the user says how many envs to make
    loaded = OffPolicyAlgorithm.load(tmp_path / "run" / "checkpoint.npz", num_envs=3)
    assert loaded.n_envs == 3 and loaded.t == 600
    resumed = OffPolicyAlgorithm.resume(tmp_path / "run", total_steps=900, progress_bar=False,
                                        num_envs=3)
    assert resumed.n_envs == 3 and resumed.t == 900


def test_a_wrong_vector_observation_is_refused():
    from numddpg.training.envs import EnvFailure

    class Bad(gym.vector.VectorWrapper):
        def step(self, actions):
            obs, r, te, tr, info = self.env.step(actions)
            return obs[:, :2], r, te, tr, info

    env = Bad(gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync"))
    with pytest.raises(EnvFailure, match=r"observations of shape \(2, 2\).*\(2, 3\)"):
        DDPG(env, test_env=gym.make("Pendulum-v1"), log=False, **TINY).learn(
            10, progress_bar=False)
