"""numddpg.sb3 on SB3's VecEnv API: a VecEnv (any object with its methods) trains, its episode
ends reach the replay buffer as SB3 stores them, and ``get_env()`` has the API for any env.

The duck-typed VecEnv below needs no SB3; the cases with SB3's own DummyVecEnv, SubprocVecEnv,
VecMonitor and VecNormalize skip when stable_baselines3 is not installed.
"""
import gymnasium as gym
import numpy as np
import pytest

from numddpg.sb3 import DDPG, TD3
from numddpg.sb3.vecenv import LoopVecEnv, OneEnvVecEnv, is_vec_env

TINY = dict(net_arch=[8])


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


class CountingVecEnv:
    """SB3's VecEnv API by hand: env i's observation is (i, its step in the episode, episode
    count); every episode lasts ``length`` steps and ends truncated (a time limit) when
    ``truncate`` else terminated."""

    def __init__(self, n=2, length=3, truncate=True):
        self.num_envs, self.length, self.truncate = n, length, truncate
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.steps, self.episodes, self.seeds = np.zeros(n, int), np.zeros(n, int), []

    def _obs(self):
        return np.stack([np.arange(self.num_envs), self.steps, self.episodes],
                        axis=1).astype(np.float32)

    def seed(self, seed=None):
        self.seeds.append(seed)
        return [seed + i for i in range(self.num_envs)]

    def reset(self):
        self.steps[:] = 0
        return self._obs()

    def step_async(self, actions):
        assert actions.shape == (self.num_envs, 1)

    def step_wait(self):
        self.steps += 1
        dones = self.steps == self.length
        infos = [{} for _ in range(self.num_envs)]
        final = self._obs()
        for i in np.flatnonzero(dones):
            infos[i] = {"terminal_observation": final[i], "TimeLimit.truncated": self.truncate}
            self.steps[i], self.episodes[i] = 0, self.episodes[i] + 1
        return self._obs(), np.ones(self.num_envs, np.float32), dones, infos

    def close(self):
        pass


def stored(model):
    buf = model.replay_buffer
    n = buf.size() if callable(buf.size) else buf.size
    return buf.obs[:n], buf.obs2[:n], buf.done[:n]


@pytest.mark.parametrize("truncate, timeouts, done", [(True, True, 0.0), (False, True, 1.0),
                                                      (True, False, 1.0)])
def test_an_episode_end_is_stored_as_sb3_stores_it(truncate, timeouts, done):
    venv = CountingVecEnv(truncate=truncate)
    model = DDPG("MlpPolicy", venv, learning_starts=100, buffer_size=100, policy_kwargs=TINY,
                 replay_buffer_kwargs=dict(handle_timeout_termination=timeouts), seed=0)
    model.learn(12)                         # 6 steps of 2 envs: 2 episodes each
    obs, obs2, dones = stored(model)
    assert len(obs) == 12 and model.num_timesteps == 12 and model.get_env() is venv
    ends = obs2[:, 1] == 3                  # s' of an episode's last step: its final obs
    assert ends.sum() == 4 and np.all(dones[ends] == done) and np.all(dones[~ends] == 0)
    np.testing.assert_array_equal(obs2[ends][:, 2], obs[ends][:, 2])   # the same episode
    assert np.all(obs[obs[:, 1] == 0][:, 2] >= 0)           # every step's s is stored
    assert venv.seeds and all(isinstance(s, int) for s in venv.seeds)   # seeded resets


def test_callback_locals_hold_the_vec_envs_own_infos():
    seen = []
    model = TD3("MlpPolicy", CountingVecEnv(), learning_starts=100, buffer_size=100,
                policy_kwargs=TINY, seed=0)
    model.learn(6, callback=lambda loc, glob: seen.append(loc["infos"]) is None)
    assert [len(i) for i in seen] == [2, 2, 2]
    assert seen[2][0]["TimeLimit.truncated"] is True
    assert model._episode_num == 2 and [e["l"] for e in model.ep_info_buffer] == [3, 3]


def test_get_env_of_a_gymnasium_env_has_sb3_vec_env_api():
    model = DDPG("MlpPolicy", "Pendulum-v1", learning_starts=10, batch_size=4,
                 policy_kwargs=TINY, seed=0)
    model.learn(20)
    vec_env = model.get_env()
    assert is_vec_env(vec_env) and vec_env.num_envs == 1 and vec_env is model.get_env()
    vec_env.seed(1)
    obs = vec_env.reset()                                # SB3's README loop
    for _ in range(201):
        action, _ = model.predict(obs)
        obs, rewards, dones, info = vec_env.step(action)
        if dones[0]:
            break
    assert obs.shape == (1, 3) and rewards.shape == (1,) and dones[0]
    assert info[0]["terminal_observation"].shape == (3,) and info[0]["TimeLimit.truncated"]
    assert vec_env.get_attr("spec")[0].id == "Pendulum-v1"
    assert vec_env.env_is_wrapped(gym.wrappers.TimeLimit) == [True]


def test_is_vec_env_is_duck_typed():
    assert is_vec_env(CountingVecEnv()) and is_vec_env(OneEnvVecEnv(gym.make("Pendulum-v1")))
    assert not is_vec_env(gym.make("Pendulum-v1"))
    assert not is_vec_env(gym.make_vec("Pendulum-v1", num_envs=2))
    assert not is_vec_env(object())


def test_set_env_takes_a_vec_env_of_as_many_envs():
    model = DDPG("MlpPolicy", CountingVecEnv(), buffer_size=100, policy_kwargs=TINY, seed=0)
    other = CountingVecEnv()
    model.set_env(other)
    model.learn(4)
    assert model.get_env() is other and other.steps.sum() > 0
    with pytest.raises(ValueError, match="set_env"):
        model.set_env(CountingVecEnv(n=3))


# ---------------------------------------------------------------------------------------------
# SB3's own VecEnvs
# ---------------------------------------------------------------------------------------------

def test_dummy_and_subproc_vec_envs_train():
    vec_env_mod = pytest.importorskip("stable_baselines3.common.vec_env")
    from stable_baselines3.common.env_util import make_vec_env
    for cls in (vec_env_mod.DummyVecEnv, vec_env_mod.SubprocVecEnv):
        venv = make_vec_env("Pendulum-v1", n_envs=2, seed=0, vec_env_cls=cls)
        try:
            model = TD3("MlpPolicy", venv, learning_starts=20, batch_size=8, buffer_size=1000,
                        policy_kwargs=TINY, seed=0)
            model.learn(440)                     # 220 steps of 2 envs: one episode each
            assert [e["l"] for e in model.ep_info_buffer] == [200, 200]   # its Monitor's
            obs = venv.reset()
            action, _ = model.predict(obs)
            assert action.shape == (2, 1)
        finally:
            venv.close()


def test_vec_normalize_statistics_are_the_ones_trained_on(tmp_path):
    vec_env_mod = pytest.importorskip("stable_baselines3.common.vec_env")
    venv = vec_env_mod.VecNormalize(vec_env_mod.VecMonitor(
        vec_env_mod.DummyVecEnv([lambda: gym.make("Pendulum-v1")])))
    model = DDPG("MlpPolicy", venv, learning_starts=20, batch_size=8, buffer_size=1000,
                 policy_kwargs=TINY, seed=0)
    model.learn(250)
    assert model.get_vec_normalize_env() is venv and venv.obs_rms.count > 250
    obs, obs2, _ = stored(model)                          # the originals, as SB3 stores them
    np.testing.assert_allclose(obs2[249], venv.get_original_obs()[0], rtol=1e-6)
    np.testing.assert_allclose(model._last_original_obs, venv.get_original_obs(), rtol=1e-6)
    np.testing.assert_allclose(model._last_obs, venv.normalize_obs(venv.get_original_obs()),
                               rtol=1e-5, atol=1e-6)
    assert model.ep_info_buffer[0]["r"] < -50             # the Monitor's unnormalized return
    venv.save(tmp_path / "vecnormalize.pkl")               # as SB3 users save the statistics
    loaded = vec_env_mod.VecNormalize.load(tmp_path / "vecnormalize.pkl", venv.venv)
    np.testing.assert_array_equal(loaded.obs_rms.mean, venv.obs_rms.mean)


class RunningMeanStd:
    def __init__(self, shape=()):
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, x):
        m, v, n = x.mean(0), x.var(0), x.shape[0]
        delta, total = m - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + v * n + delta ** 2 * self.count * n / total) / total
        self.count = total


class HandNormalize:
    """SB3's VecNormalize by hand (its attributes and methods that numddpg.sb3 reads): running
    statistics of observations and of the discounted return, normalized observations and
    rewards returned, the originals kept."""

    def __init__(self, venv, clip_obs=2.0, clip_reward=1.5, gamma=0.9):
        self.venv, self.num_envs = venv, venv.num_envs
        self.observation_space, self.action_space = venv.observation_space, venv.action_space
        self.obs_rms, self.ret_rms = RunningMeanStd((3,)), RunningMeanStd()
        self.clip_obs, self.clip_reward, self.gamma, self.epsilon = clip_obs, clip_reward, \
            gamma, 1e-8
        self.norm_obs = self.norm_reward = self.training = True
        self.returns = np.zeros(self.num_envs)

    def normalize_obs(self, obs):
        return np.clip((obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon),
                       -self.clip_obs, self.clip_obs)

    def unnormalize_obs(self, obs):
        return obs * np.sqrt(self.obs_rms.var + self.epsilon) + self.obs_rms.mean

    def reset(self):
        self.old_obs = self.venv.reset()
        self.obs_rms.update(self.old_obs)
        self.returns[:] = 0
        return self.normalize_obs(self.old_obs)

    def step_async(self, actions):
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.old_obs, self.old_reward = obs, rewards
        self.obs_rms.update(obs)
        self.returns = self.returns * self.gamma + rewards
        self.ret_rms.update(self.returns)
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = self.normalize_obs(infos[i]["terminal_observation"])
        self.returns[dones] = 0
        return (self.normalize_obs(obs), np.clip(rewards / np.sqrt(self.ret_rms.var + 1e-8),
                                                 -self.clip_reward, self.clip_reward),
                dones, infos)

    def get_original_obs(self):
        return self.old_obs.copy()

    def get_original_reward(self):
        return self.old_reward.copy()

    def close(self):
        pass


class Rewarding(CountingVecEnv):
    """CountingVecEnv whose reward grows with the step, so that the return's statistics move."""

    def step_wait(self):
        obs, rewards, dones, infos = super().step_wait()
        return obs, rewards * (1 + obs[:, 1] + obs[:, 2]), dones, infos


def test_vec_normalize_trains_as_sb3_originals_stored_normalized_as_sampled():
    venv = HandNormalize(Rewarding(n=2, length=5, truncate=False), clip_obs=10.0)
    model = DDPG("MlpPolicy", venv, learning_starts=6, batch_size=8, buffer_size=100,
                 train_freq=2, policy_kwargs=TINY, seed=0)
    model.learn(40)
    obs, obs2, done = stored(model)
    assert set(np.unique(obs[:, 0])) == {0.0, 1.0}        # env indexes, unnormalized
    assert set(np.unique(obs[:, 1])) == {0.0, 1.0, 2.0, 3.0, 4.0}     # step counts
    np.testing.assert_allclose(obs2[done == 1, 1], 5.0, rtol=1e-5)    # terminal, unnormalized
    rewards = model.replay_buffer.rew[:40]               # the env's: whole numbers from 2 on
    assert np.all(rewards == np.round(rewards)) and rewards.min() == 2 > venv.clip_reward
    np.testing.assert_allclose(model._last_obs, venv.normalize_obs(venv.get_original_obs()),
                               rtol=1e-5)
    # a round on the VecNormalize equals a round on rows normalized beforehand, bit for bit
    native = model.native
    agent, buffer, _, statistics = native.loop_parts()
    twin = native.agent.state_dict()
    rows = native.buffer
    normalized = type(rows)(rows.obs_dim, rows.act_dim, rows.max_size)
    for name in ("obs", "obs2"):
        getattr(normalized, name)[:] = np.clip((getattr(rows, name).astype(np.float64)
                                                - statistics.shift) * statistics.scale,
                                               -venv.clip_obs, venv.clip_obs)
    normalized.rew[:] = np.clip(rows.rew.astype(np.float64) / np.sqrt(venv.ret_rms.var + 1e-8),
                                -venv.clip_reward, venv.clip_reward)
    normalized.act[:], normalized.done[:], normalized.size = rows.act, rows.done, rows.size
    buffer.train(agent, 8, 3, statistics)
    ours = agent.state_dict()
    agent.load_state_dict(twin)
    normalized.train(agent, 8, 3)
    for name, value in agent.state_dict().items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_loop_vec_env_is_a_same_step_vector_env():
    env = LoopVecEnv(CountingVecEnv(length=2))
    obs, _ = env.reset(seed=5)
    _, _, term, trunc, infos = env.step(np.zeros((2, 1)))
    assert not (term.any() or trunc.any()) and "final_obs" not in infos
    obs, _, term, trunc, infos = env.step(np.zeros((2, 1)))
    assert trunc.all() and not term.any() and infos["_final_obs"].all()
    assert np.all(infos["final_obs"][:, 1] == 2) and np.all(obs[:, 1] == 0)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP


def test_evaluate_policy_steps_a_vec_env():
    from numddpg.sb3 import evaluate_policy
    model = DDPG("MlpPolicy", CountingVecEnv(), buffer_size=100, policy_kwargs=TINY, seed=0)
    returns, lengths = evaluate_policy(model, CountingVecEnv(n=3, length=4), n_eval_episodes=5,
                                       return_episode_rewards=True)
    assert lengths == [4] * 5 and returns == [4.0] * 5
