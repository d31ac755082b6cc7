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
    obs, _, _ = stored(model)
    assert np.all(np.abs(obs) <= venv.clip_obs)           # normalized, as the policy sees them
    assert model.ep_info_buffer[0]["r"] < -50             # the Monitor's unnormalized return
    venv.save(tmp_path / "vecnormalize.pkl")               # as SB3 users save the statistics
    loaded = vec_env_mod.VecNormalize.load(tmp_path / "vecnormalize.pkl", venv.venv)
    np.testing.assert_array_equal(loaded.obs_rms.mean, venv.obs_rms.mean)


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
