"""numddpg.sb3's files and envs as SB3's: attributes saved beside the model (exclude, include,
custom_objects), loading with other hyperparameters or another number of envs, the episodes
in progress (_last_obs, set_env and load with force_reset), learn()'s env reset,
optimize_memory_usage, a model loaded without an env it can make, and the replay buffer's
SB3 methods.  SB3 itself is never imported: its VecEnv API is numddpg.sb3.vecenv's
OneEnvVecEnv (a DummyVecEnv of one env)."""
import os
import warnings
import zipfile

import gymnasium as gym
import numpy as np
import pytest

from helpers import rewrite_meta, small_sb3
from numddpg.files.checkpoint import CheckpointError
from numddpg.sb3 import DDPG, TD3, make_vec_env
from numddpg.sb3.vecenv import OneEnvVecEnv

TINY = dict(net_arch=[8])


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


def small(Algo=TD3, env="Pendulum-v1", **kw):
    return small_sb3(Algo, env, **kw)


def same_agent(a, b, skip=()):
    sa, sb = a.native.agent.state_dict(), b.native.agent.state_dict()
    for name in sa:
        if name not in skip:
            np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def test_exclude_include_custom_objects_and_user_attributes(tmp_path):
    model = small(verbose=2, stats_window_size=7)
    model.learn(40)
    model.tag = {"run": "a", "n": [1, 2]}                  # an attribute the user set
    model.save(tmp_path / "m", exclude=["verbose", "replay_buffer"], include=["tag"])
    with pytest.warns(RuntimeWarning, match="without its replay buffer"):
        loaded = TD3.load(tmp_path / "m.zip")              # what save("m") wrote
    assert loaded.verbose == 0 and loaded.tag == model.tag and loaded.replay_buffer.size() == 0
    assert loaded.num_timesteps == 40 and loaded.stats_window_size == 7
    assert list(loaded.ep_info_buffer) == list(model.ep_info_buffer)
    model.save(tmp_path / "m", exclude=["verbose"], include=["verbose"])    # include wins
    with pytest.warns(UserWarning, match=r"custom_objects names \['dummy'\]"):
        loaded = TD3.load(tmp_path / "m", custom_objects=dict(learning_rate=2e-5, dummy=1.0))
    assert loaded.verbose == 2 and not hasattr(loaded, "dummy")   # (not in the file: ignored)
    assert loaded.learning_rate == 2e-5                   # the schedule trained on from now
    assert loaded.num_timesteps == 40 and loaded.replay_buffer.size() == 40
    same_agent(loaded, model)                             # networks, Adam, counters, sampler
    loaded.learn(20)
    assert loaded.num_timesteps == 20                     # reset_num_timesteps=True
    assert loaded.native.agent.learning_rates == (2e-5, 2e-5)


def test_load_with_other_hyperparameters_continues_from_the_file(tmp_path):
    model = small(DDPG, buffer_size=300)
    model.learn(60)
    model.save(tmp_path / "m")
    # the RL Zoo's -i: its hyperparameters again, some changed
    loaded = DDPG.load(tmp_path / "m", env=gym.make("Pendulum-v1"), batch_size=16, tau=0.01,
                       train_freq=(2, "step"), gradient_steps=2, verbose=1, seed=5)
    assert (loaded.batch_size, loaded.tau, loaded.train_freq) == (16, 0.01, (2, "step"))
    assert loaded.native.update_every == 2 and loaded.native.gradient_steps == 2
    assert loaded.native.t == 60 and loaded.num_timesteps == 60 and loaded.seed == 5
    assert loaded.replay_buffer.size() == 60              # the same capacity: kept
    same_agent(loaded, model)
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.num_timesteps == 80 and loaded.n_updates == model.n_updates + 20
    bigger = DDPG.load(tmp_path / "m", buffer_size=400)   # another capacity: an empty buffer
    assert bigger.buffer_size == 400 and bigger.replay_buffer.size() == 0
    same = DDPG.load(tmp_path / "m", learning_rate=1e-3, policy_kwargs=TINY)   # the saved ones
    assert same.replay_buffer.size() == 60 and same.learning_rate == 1e-3
    with pytest.raises(ValueError, match="policy_kwargs"):
        DDPG.load(tmp_path / "m", policy_kwargs=dict(net_arch=[16]))


def test_episodes_in_progress_follow_set_env_and_load_as_in_sb3(tmp_path):
    env = OneEnvVecEnv(gym.make("Pendulum-v1"))
    model = small(DDPG, env=env, learning_starts=50, train_freq=4)
    model.learn(64)
    assert model._last_obs.shape == (1, 3) and model._last_original_obs is None
    model.set_env(OneEnvVecEnv(gym.make("Pendulum-v1")), force_reset=True)
    assert model._last_obs is None and model._last_episode_starts.all()
    model.learn(64, reset_num_timesteps=True)
    assert model.num_timesteps == 64
    model.set_env(gym.make("Pendulum-v1"))                # a gymnasium Env counts as one env
    model.learn(64)
    with pytest.raises(AssertionError, match="load"):     # SB3's error for another count
        model.set_env(make_vec_env("Pendulum-v1", n_envs=2))
    before = model._last_obs
    model.set_env(model.get_env(), force_reset=False)     # the same env, where it is
    np.testing.assert_array_equal(model._last_obs, before)
    model.learn(64, reset_num_timesteps=False)
    assert model.num_timesteps == 128
    current = model.get_env()
    model.save(tmp_path / "m")
    loaded = DDPG.load(tmp_path / "m", env=current, force_reset=False)
    np.testing.assert_array_equal(loaded._last_obs, model._last_obs)
    np.testing.assert_array_equal(loaded._last_episode_starts, model._last_episode_starts)
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps == 192
    assert DDPG.load(tmp_path / "m", env=gym.make("Pendulum-v1"))._last_obs is None
    two = DDPG.load(tmp_path / "m", env=make_vec_env("Pendulum-v1", n_envs=2))
    assert two.train_freq == (4, "step") and two.native.update_every == 8   # 4 steps of 2 envs
    two.learn(16)
    assert two.num_timesteps == 16


def test_learn_resets_the_env_unless_reset_num_timesteps_is_false():
    model = small(DDPG, learning_starts=5)
    model.learn(30)
    assert model.native.state.ep_len[0] == 30
    model.learn(30, reset_num_timesteps=False)            # the same episode goes on
    assert model.native.state.ep_len[0] == 60
    model.learn(30)                                       # SB3: a new episode
    assert model.native.state.ep_len[0] == 30 and model.num_timesteps == 30
    model._last_obs = None                                # SB3's way to force a reset
    model.learn(10, reset_num_timesteps=False)
    assert model.native.state.ep_len[0] == 10
    with pytest.raises(ValueError, match="None"):
        model._last_obs = np.zeros((1, 3))


def test_optimize_memory_usage_holds_sb3s_transitions_and_truncates_as_sb3():
    with pytest.raises(ValueError, match="handle_timeout_termination"):
        small(optimize_memory_usage=True)
    no_timeouts = dict(handle_timeout_termination=False)
    model = small(buffer_size=20, optimize_memory_usage=True, replay_buffer_kwargs=no_timeouts)
    assert model.buffer_size == 20 and model.native.replay_size == 19   # SB3's full buffer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.learn(15)
        model.learn(3, reset_num_timesteps=False)         # the episode continues: no warning
    done = model.native.buffer.done.copy()
    assert not done.any()
    with pytest.warns(UserWarning, match="last trajectory in the replay buffer will be trunc"):
        model.learn(5)                                    # the env resets: the last step ends
    last = (model.native.buffer.ptr - 6) % 19             # the row stored before the reset
    assert model.native.buffer.done[last] == 1.0


class Unregistered(gym.Env):
    """An env gymnasium.make cannot make (so a file cannot rebuild it)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        return (self.np_random.uniform(-1, 1, 2).astype(np.float32), float(action[0]), False,
                False, {})


def test_a_model_whose_env_cannot_be_made_loads_to_act(tmp_path):
    model = small(env=Unregistered(), learning_starts=5)
    model.learn(20)
    model.save(tmp_path / "m")
    loaded = TD3.load(tmp_path / "m")                     # SB3: model.env is None
    assert loaded.get_env() is None and loaded.env is None
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    with pytest.raises(ValueError, match="set_env"):
        loaded.learn(10)
    loaded.set_env(Unregistered())
    loaded.learn(10)
    assert loaded.num_timesteps == 10


def test_replay_buffer_add_extend_timeouts_and_device():
    model = small(DDPG, env=Unregistered(), learning_starts=5, buffer_size=50)
    model.learn(10)
    rb = model.replay_buffer
    assert rb.device.type == "cpu" and not rb.timeouts.any()
    obs, act = np.zeros((1, 2)), np.full((1, 1), 0.5)
    rb.add(obs, obs + 1, act, np.array([2.0]), np.array([True]), [{"TimeLimit.truncated": True}])
    assert rb.size() == 11 and rb.dones[10, 0] == 0.0     # a time limit bootstraps
    rb.extend(np.zeros((2, 1, 2)), np.ones((2, 1, 2)), np.zeros((2, 1, 1)), np.ones((2, 1)),
              np.ones((2, 1)), [[{}], [{}]])
    assert rb.size() == 13 and rb.dones[11:13, 0].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="one entry per env"):
        rb.add(obs, obs, act, np.ones(2), np.ones(1), [{}])
    model.device = "cpu"
    with pytest.warns(UserWarning, match="the CPU is used"):    # SB3's fallback without CUDA
        model.device = "cuda"
    assert model.device.type == "cpu" == model.replay_buffer.device.type
    with pytest.raises(ValueError, match="CPU"):
        model.device = "mps"




@pytest.mark.parametrize("edit, match", [
    (lambda m: m["sb3"]["attributes"].update(verbose=-1), "verbose"),
    (lambda m: m["sb3"]["user"].update(native=1), "native"),
    (lambda m: m["sb3"]["config"].update(optimize_memory_usage="yes"), "optimize_memory_usage"),
    (lambda m: m["sb3"].update(loop={"obs": [[0.0]], "ep_len": [0], "ep_ret": [0.0]}), "loop"),
    (lambda m: m["sb3"].update(extra=1), "sb3"),
])
def test_a_files_sb3_record_is_checked(tmp_path, edit, match):
    model = small()
    model.learn(12)
    model.save(tmp_path / "m")
    bad = rewrite_meta(tmp_path / "m.zip", tmp_path / "bad.zip", edit)
    with pytest.raises(CheckpointError, match=match):
        TD3.load(bad)


def test_models_are_saved_under_sb3s_name_and_earlier_names_still_load(tmp_path):
    """save("m") writes m.zip as SB3's does (numddpg's npz container, a zip archive); a model
    that numddpg.sb3 wrote as m.npz before loads as "m", "m.zip" or "m.npz"; a replay buffer
    alone is .npz (SB3's .pkl would promise a pickle)."""
    model = small()
    model.learn(20)
    model.save(tmp_path / "m")
    model.save_replay_buffer(tmp_path / "rb")
    assert sorted(os.listdir(tmp_path)) == ["m.zip", "rb.npz"]
    os.replace(tmp_path / "m.zip", tmp_path / "old.npz")
    for name in ("old", "old.zip", "old.npz"):
        assert TD3.load(tmp_path / name).num_timesteps == 20
    TD3.load(tmp_path / "old").load_replay_buffer(tmp_path / "rb")


def test_an_sb3_file_is_refused_with_what_to_do(tmp_path):
    """SB3's own .zip (torch pickles, a "data" JSON) is never unpickled: the error says so and
    how to carry the weights over."""
    with zipfile.ZipFile(tmp_path / "sb3.zip", "w") as z:
        for member in ("data", "policy.pth", "pytorch_variables.pth"):
            z.writestr(member, b"{}")
    with pytest.raises(CheckpointError, match="Stable-Baselines3 model file.*set_parameters"):
        TD3.load(tmp_path / "sb3")
