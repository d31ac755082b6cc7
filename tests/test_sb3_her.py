"""numddpg.sb3's MultiInputPolicy and HerReplayBuffer: a Dict observation is read entry by entry
as SB3 preprocesses it (images scaled and flattened, with a warning), predict takes Dicts of one
observation or of batches, and SB3's HerReplayBuffer arguments train numddpg's hindsight
buffer, whose relabelled rewards come from the env's compute_reward on the goals in the env's
own form (through a VecEnv: env_method), with the info dicts of copy_info_dict; the buffer
saves, loads and truncates its last trajectory.

The VecEnvs here are duck-typed (no SB3 needed); the cases with SB3's own VecNormalize and
VecFrameStack skip when stable_baselines3 is not installed.
"""
import enum
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import numddpg
from numddpg.files.checkpoint import CheckpointError
from numddpg.sb3 import DDPG, TD3, GoalSelectionStrategy, HerReplayBuffer
from numddpg.sb3.her import buffer_options
from numddpg.sb3.spaces import DictEntry
from numddpg.sb3.vecenv import OneEnvVecEnv
from numddpg.training.envs import EnvError

TINY = dict(net_arch=[8])
N_BITS = 3


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


class BitsEnv(gym.Env):
    """N_BITS bits, each flipped by an action component > 0, toward all ones: a goal env of
    SB3's bit-flipping kind written small.  Dict {observation, achieved_goal, desired_goal} of
    MultiBinary(N_BITS), or with ``image`` of (1, 2, 2) uint8 images (bit i: pixel i at 255).
    Reward 0 at the goal else -1, compute_reward over a leading axis; the episode terminates
    at the goal and truncates after N_BITS steps; info["step"] counts the episode's steps."""

    def __init__(self, image=False):
        self.image = image
        entry = (spaces.Box(0, 255, (1, 2, 2), np.uint8) if image
                 else spaces.MultiBinary(N_BITS))
        self.observation_space = spaces.Dict({"observation": entry, "achieved_goal": entry,
                                              "desired_goal": entry})
        self.action_space = spaces.Box(-1.0, 1.0, (N_BITS,), np.float32)

    def _encode(self, bits):
        if not self.image:
            return bits.astype(np.int8)
        return np.concatenate([bits, [0] * (4 - N_BITS)]).astype(np.uint8).reshape(1, 2, 2) * 255

    def _bits(self, x):
        x = np.asarray(x)
        return (x.reshape(len(x), -1)[:, :N_BITS] / 255 if self.image
                else x.reshape(len(x), -1))

    def compute_reward(self, achieved_goal, desired_goal, info):
        one = np.ndim(achieved_goal) == len(self.observation_space["achieved_goal"].shape)
        a, d = (self._bits(np.asarray(x)[None] if one else x)
                for x in (achieved_goal, desired_goal))
        r = -(np.abs(a - d).sum(axis=1) > 0).astype(np.float32)
        return r[0] if one else r

    def _obs(self):
        return {"observation": self._encode(self.state), "achieved_goal": self._encode(self.state),
                "desired_goal": self._encode(np.ones(N_BITS, int))}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = self.np_random.integers(0, 2, N_BITS), 0
        return self._obs(), {}

    def step(self, action):
        self.state = np.where(np.asarray(action) > 0, 1 - self.state, self.state)
        self.t += 1
        obs = self._obs()
        rew = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        return obs, rew, rew == 0.0, self.t >= N_BITS, {"step": self.t}


class ListVecEnv:
    """SB3's VecEnv API over a list of gymnasium envs (a DummyVecEnv by hand): an ended
    episode's env resets at once, with info["terminal_observation"] and
    info["TimeLimit.truncated"]; ``env_method`` calls env i's method for i in ``indices``."""

    def __init__(self, envs):
        self.envs, self.num_envs = envs, len(envs)
        self.observation_space, self.action_space = envs[0].observation_space, envs[0].action_space
        self.calls = []

    def _stack(self, obs):
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}

    def reset(self):
        return self._stack([e.reset(seed=i)[0] for i, e in enumerate(self.envs)])

    def step_async(self, actions):
        self.actions = actions

    def step_wait(self):
        obs, rews, dones, infos = [], [], [], []
        for env, a in zip(self.envs, self.actions):
            o, r, term, trunc, info = env.step(a)
            if term or trunc:
                info = dict(info, terminal_observation=o,
                            **{"TimeLimit.truncated": bool(trunc and not term)})
                o = env.reset()[0]
            obs.append(o), rews.append(r), dones.append(term or trunc), infos.append(info)
        return self._stack(obs), np.array(rews, np.float32), np.array(dones), infos

    def env_method(self, name, *args, indices=None, **kwargs):
        self.calls.append((name, args, indices))
        return [getattr(self.envs[i], name)(*args, **kwargs) for i in indices]

    def has_attr(self, name):
        return hasattr(self.envs[0], name)

    def close(self):
        pass


def her_model(env, Algo=TD3, **kwargs):
    rb_kwargs = dict(n_sampled_goal=4, goal_selection_strategy="future")
    rb_kwargs.update(kwargs.pop("replay_buffer_kwargs", {}))
    args = dict(replay_buffer_class=HerReplayBuffer, replay_buffer_kwargs=rb_kwargs,
                learning_starts=20, batch_size=16, buffer_size=300, train_freq=4,
                policy_kwargs=TINY, seed=0)
    args.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)          # (the images' warning)
        return Algo("MultiInputPolicy", env, **args)


# ---------------------------------------------------------------------------------------------
# Dict observations (MultiInputPolicy)
# ---------------------------------------------------------------------------------------------

def test_each_dict_entry_is_what_sb3_makes_of_it_and_goes_back():
    cases = [  # (space, two values, what the networks read of them)
        (spaces.Box(-1, 1, (2, 2), np.float64), np.arange(8.0).reshape(2, 2, 2) / 8,
         np.arange(8.0).reshape(2, 4) / 8),
        (spaces.Box(0, 255, (1, 1, 2), np.uint8), np.array([[[[0, 255]]], [[[51, 102]]]]),
         np.array([[0, 1], [0.2, 0.4]])),                       # an image: / 255
        (spaces.Discrete(3, start=1), np.array([1, 3]), np.array([[1, 0, 0], [0, 0, 1]])),
        (spaces.MultiDiscrete([2, 3]), np.array([[1, 0], [0, 2]]),
         np.array([[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]])),
        (spaces.MultiBinary(3), np.array([[1, 0, 1], [0, 0, 1]]), np.array([[1, 0, 1],
                                                                            [0, 0, 1]])),
    ]
    for space, x, flat in cases:
        entry = DictEntry("k", space)
        out = entry.flat(x.astype(space.dtype), 2)
        assert out.dtype == np.float32 and entry.flat_space.shape == (out.shape[1],)
        np.testing.assert_allclose(out, flat, rtol=1e-7)
        np.testing.assert_array_equal(entry.flat(x[0].astype(space.dtype)), out[0])
        back = entry.values(out)              # as SB3's buffers hold them: Discrete as (m, 1)
        want = x.reshape(2, 1) if isinstance(space, spaces.Discrete) else x
        assert back.dtype == space.dtype
        np.testing.assert_allclose(back, want, rtol=1e-6)


@pytest.mark.parametrize("space, value, words", [
    (spaces.Dict({"a": spaces.Discrete(2)}), None, "nested"),
    (spaces.Tuple([spaces.Discrete(2)]), None, "nested"),
    (spaces.Discrete(3), np.array([3]), "outside"),
    (spaces.Box(-1, 1, (2,)), np.zeros((1, 3)), r"shape \(1, 3\)"),
])
def test_an_entry_numddpg_cannot_read_is_named(space, value, words):
    with pytest.raises(ValueError, match=f"'k'.*{words}|{words}.*'k'") as info:
        DictEntry("k", space).flat(value, 1)
    assert "\n" not in str(info.value)


class FloatDictEnv(gym.Env):
    """Pendulum with its observation as {"x": Box (3,) float32}."""

    def __init__(self):
        self.env = gym.make("Pendulum-v1")
        self.observation_space = spaces.Dict({"x": self.env.observation_space})
        self.action_space = self.env.action_space

    def reset(self, seed=None, options=None):
        obs, info = self.env.reset(seed=seed)
        return {"x": obs}, info

    def step(self, action):
        obs, *rest = self.env.step(action)
        return {"x": obs}, *rest


def test_a_dict_of_float_boxes_trains_as_mlp_policy_on_the_flat_vector():
    args = dict(learning_starts=20, batch_size=8, buffer_size=200, policy_kwargs=TINY, seed=3)
    by_dict = TD3("MultiInputPolicy", gym.wrappers.TimeLimit(FloatDictEnv(), 30), **args)
    flat = TD3("MlpPolicy", gym.wrappers.FlattenObservation(
        gym.wrappers.TimeLimit(FloatDictEnv(), 30)), **args)
    by_dict.learn(80)
    flat.learn(80)
    np.testing.assert_array_equal(by_dict.actor.params, flat.actor.params)
    obs = {"x": np.array([0.5, -0.5, 1.0], np.float32)}
    np.testing.assert_array_equal(by_dict.predict(obs)[0], flat.predict(obs["x"])[0])


class MixedEnv(gym.Env):
    """A Dict of an image, a Discrete and a float64 Box; actions of shape (2, 1) float64."""

    observation_space = spaces.Dict({"img": spaces.Box(0, 255, (2, 2, 1), np.uint8),
                                     "d": spaces.Discrete(4), "v": spaces.Box(-1, 1, (2,))})
    action_space = spaces.Box(-1, 1, (2, 1), np.float64)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        assert action.shape == (2, 1)
        return self.observation_space.sample(), 0.0, False, False, {}


def test_multi_input_policy_maps_each_entry_and_predicts_dicts():
    with pytest.warns(UserWarning, match=r"\['img'\] are images.*no convolutions"):
        model = DDPG("MultiInputPolicy", gym.wrappers.TimeLimit(MixedEnv(), 20),
                     learning_starts=10, batch_size=8, buffer_size=100, seed=0,
                     policy_kwargs=dict(net_arch=[8], features_extractor_kwargs=dict(
                         cnn_output_dim=16)))
    assert model.native.obs_dim == 4 + 4 + 2
    assert model.observation_space == MixedEnv.observation_space
    model.learn(30)
    obs = [MixedEnv.observation_space.sample() for _ in range(3)]
    batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    actions, state = model.predict(batch)
    assert actions.shape == (3, 2, 1) and actions.dtype == np.float64 and state is None
    one, _ = model.predict(obs[1])
    np.testing.assert_array_equal(one, actions[1])
    flat = np.concatenate([[0] * 4, np.asarray(obs[1]["img"]).reshape(-1) / np.float32(255),
                           obs[1]["v"]]).astype(np.float32)
    flat[obs[1]["d"]] = 1                                 # keys sorted: d, img, v
    np.testing.assert_array_equal(model.native.predict(flat)[0], one.reshape(-1))
    with pytest.raises(ValueError, match="Dict"):
        model.predict(flat)


def test_the_policy_must_fit_the_observations():
    env = gym.wrappers.TimeLimit(MixedEnv(), 20)
    with pytest.raises(EnvError, match="MultiInputPolicy"):
        DDPG("MlpPolicy", env, buffer_size=100)
    with pytest.raises(ValueError, match="MultiInputPolicy reads Dict"):
        DDPG("MultiInputPolicy", "Pendulum-v1", buffer_size=100)
    with pytest.raises(ValueError, match="CnnPolicy"):
        DDPG("CnnPolicy", env, buffer_size=100)
    with pytest.raises(ValueError, match="normalize_images"):
        DDPG("MultiInputPolicy", env, buffer_size=100,
             policy_kwargs=dict(net_arch=[8], normalize_images=False))
    with pytest.raises(ValueError, match="features_extractor_kwargs"):
        DDPG("MultiInputPolicy", env, buffer_size=100,
             policy_kwargs=dict(net_arch=[8], features_extractor_kwargs=dict(features_dim=4)))
    nested = gym.wrappers.TransformObservation(
        gym.make("Pendulum-v1"), lambda o: {"a": {"b": o}},
        spaces.Dict({"a": spaces.Dict({"b": gym.make("Pendulum-v1").observation_space})}))
    with pytest.raises(ValueError, match="nested"):
        DDPG("MultiInputPolicy", nested, buffer_size=100)


# ---------------------------------------------------------------------------------------------
# HerReplayBuffer
# ---------------------------------------------------------------------------------------------

class SB3Strategy(enum.Enum):          # an enum of SB3's names, as its GoalSelectionStrategy
    FUTURE, FINAL, EPISODE = 0, 1, 2


def test_her_arguments_as_sb3_takes_them():
    SB3Her = type("HerReplayBuffer", (), {})              # SB3's class, known by its name
    for cls, strategy, name in [(HerReplayBuffer, "Final", "final"),
                                (SB3Her, SB3Strategy.EPISODE, "episode"),
                                (HerReplayBuffer, GoalSelectionStrategy.FUTURE, "future")]:
        opts = buffer_options(cls, dict(goal_selection_strategy=strategy, n_sampled_goal=2))
        assert (opts.her, opts.n_sampled_goal, opts.copy_info_dict) == (name, 2, False)
    assert buffer_options(type("DictReplayBuffer", (), {}), None).her is None
    for cls, kwargs, words in [
            (HerReplayBuffer, dict(n_sampled_goal=0), "relabels nothing"),
            (HerReplayBuffer, dict(goal_selection_strategy="last"), "one of"),
            (HerReplayBuffer, dict(online_sampling=True), "HerReplayBuffer takes"),
            (None, dict(n_sampled_goal=4), "uniform replay buffer takes only"),
            (dict, None, "replay_buffer_class")]:
        with pytest.raises(ValueError, match=words):
            buffer_options(cls, kwargs)
    model = her_model(BitsEnv(), replay_buffer_kwargs=dict(goal_selection_strategy="episode",
                                                           n_sampled_goal=2))
    assert (model.native.her, model.native.her_k) == ("episode", 2)
    rb = model.replay_buffer
    assert isinstance(rb, HerReplayBuffer) and rb.goal_selection_strategy is \
        GoalSelectionStrategy.EPISODE and rb.her_ratio == pytest.approx(2 / 3)
    with pytest.raises(TypeError, match="replay_buffer_class"):
        HerReplayBuffer(300, BitsEnv().observation_space)


@pytest.mark.parametrize("image", [False, True])
@pytest.mark.parametrize("vec", [False, True])
def test_relabelled_rewards_are_compute_reward_of_the_goals_in_the_envs_form(image, vec):
    seen = []

    class Spy(BitsEnv):
        def compute_reward(self, achieved_goal, desired_goal, info):
            if np.ndim(achieved_goal) > len(self.observation_space["achieved_goal"].shape):
                seen.append((achieved_goal.shape, achieved_goal.dtype, desired_goal.dtype))
            return super().compute_reward(achieved_goal, desired_goal, info)

    env = ListVecEnv([Spy(image), Spy(image)]) if vec else gym.wrappers.TimeLimit(Spy(image), 5)
    model = her_model(env)
    model.learn(40)
    shape, dtype = ((1, 2, 2), np.uint8) if image else ((N_BITS,), np.int8)
    assert seen and all(s[1:] == shape and a == d == dtype for s, a, d in seen)
    if vec:
        assert env.calls and all(c[0] == "compute_reward" and c[2] == [0] for c in env.calls)
    batch = model.native.buffer.sample(64)
    layout, entry = model.native.obs_layout, DictEntry("g", Spy(image).observation_space[
        "achieved_goal"])
    (a0, a1), (d0, d1) = layout.goal_spans()
    want = Spy(image).compute_reward(entry.values(batch["obs2"][:, a0:a1]),
                                     entry.values(batch["obs"][:, d0:d1]), None)
    np.testing.assert_array_equal(batch["rew"], want)
    relabelled = np.any(batch["obs"][:, d0:d1] != batch["obs"][:1, d0:d1], axis=1)
    assert relabelled.any()                 # (the env's own goal is always all ones)


def test_copy_info_dict_hands_the_stored_infos_to_compute_reward():
    infos = []

    class Spy(BitsEnv):
        def compute_reward(self, achieved_goal, desired_goal, info):
            if np.ndim(achieved_goal) == 2:
                infos.append(list(info))
            return super().compute_reward(achieved_goal, desired_goal, info)

    venv = ListVecEnv([Spy(), Spy()])
    model = her_model(venv, replay_buffer_kwargs=dict(copy_info_dict=True))
    assert model.replay_buffer.copy_info_dict
    model.learn(40)
    assert infos and all(1 <= i["step"] <= N_BITS for batch in infos for i in batch)
    infos.clear()
    her_model(ListVecEnv([Spy(), Spy()])).learn(40)
    assert infos and all(i == {} for batch in infos for i in batch)


def test_her_buffer_saves_loads_and_truncates_its_last_trajectory(tmp_path):
    def make():                            # (train_freq 1: learn() ends at step 42, as SB3's)
        return her_model(ListVecEnv([BitsEnv(), BitsEnv()]), train_freq=1)

    model = make()
    model.learn(41)                        # an odd count: an episode is running
    rb = model.replay_buffer
    assert rb.observations["desired_goal"].shape == (150, 2, N_BITS) and rb.size() == 21
    running = rb.episodes.cur_len.copy()
    assert running.any()
    model.save_replay_buffer(tmp_path / "rb")
    other = make()
    other.load_replay_buffer(tmp_path / "rb", truncate_last_traj=False)
    for name in ("actions", "rewards", "dones", "ep_length"):
        np.testing.assert_array_equal(getattr(other.replay_buffer, name), getattr(rb, name))
    np.testing.assert_array_equal(other.replay_buffer.episodes.cur_len, running)
    with pytest.warns(UserWarning, match="truncate_last_traj"):
        other.load_replay_buffer(tmp_path / "rb")
    assert not other.replay_buffer.episodes.cur_len.any()
    assert other.replay_buffer.n_sampleable == rb.n_sampleable + running.sum()
    np.testing.assert_array_equal(other.replay_buffer.dones, rb.dones)   # (they bootstrap)
    other.learn(20, reset_num_timesteps=False)
    uniform = DDPG("MultiInputPolicy", ListVecEnv([BitsEnv(), BitsEnv()]), buffer_size=300,
                   policy_kwargs=TINY)
    with pytest.raises(CheckpointError, match="hindsight"):
        uniform.load_replay_buffer(tmp_path / "rb")


def test_a_her_model_saves_and_loads_whole(tmp_path):
    venv = ListVecEnv([BitsEnv(image=True), BitsEnv(image=True)])
    model = her_model(venv, Algo=DDPG)
    model.learn(40)
    model.save(tmp_path / "m.zip")
    loaded = DDPG.load(tmp_path / "m.zip", env=venv,
                       replay_buffer_kwargs=dict(copy_info_dict=True))
    assert loaded.replay_buffer.copy_info_dict and loaded.replay_buffer.n_sampled_goal == 4
    np.testing.assert_array_equal(loaded.replay_buffer.rewards, model.replay_buffer.rewards)
    obs = venv.reset()
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    loaded.learn(20)
    with pytest.raises(ValueError, match="n_sampled_goal=4"):
        DDPG.load(tmp_path / "m.zip", env=venv, replay_buffer_kwargs=dict(n_sampled_goal=2))


def test_her_needs_a_goal_env_and_its_goals_as_the_env_gives_them():
    with pytest.raises(EnvError, match="compute_reward"):
        her_model(OneEnvVecEnv(gym.wrappers.TimeLimit(MixedEnv(), 5)))
    with pytest.raises(EnvError, match="achieved_goal"):
        her_model(gym.wrappers.TimeLimit(MixedEnv(), 5))
    vec_env = pytest.importorskip("stable_baselines3.common.vec_env")
    def make():
        return gym.wrappers.TimeLimit(BitsEnv(image=True), 5)       # (VecNormalize: Boxes)

    with pytest.raises(ValueError, match="achieved_goal"):
        her_model(vec_env.VecNormalize(vec_env.DummyVecEnv([make])))
    model = her_model(vec_env.VecNormalize(vec_env.DummyVecEnv([make]),
                                           norm_obs_keys=["observation"]))
    model.learn(30)


def test_vec_frame_stack_of_dicts_trains():
    vec_env = pytest.importorskip("stable_baselines3.common.vec_env")
    venv = vec_env.VecFrameStack(vec_env.DummyVecEnv([lambda: gym.wrappers.TimeLimit(
        BitsEnv(image=True), 7)]), n_stack=2, channels_order="first")
    with pytest.warns(UserWarning, match="images"):
        model = TD3("MultiInputPolicy", venv, learning_starts=10, batch_size=8,
                    buffer_size=100, policy_kwargs=TINY, seed=0)
    assert model.native.obs_dim == 3 * 2 * 4             # three entries of two (1, 2, 2) frames
    model.learn(30)
    assert model.predict(venv.reset())[0].shape == (1, N_BITS)


def test_native_load_replay_buffer_takes_the_buffer_alone(tmp_path):
    model = numddpg.TD3("Pendulum-v1", hidden_sizes=(8,), replay_size=500, start_steps=20,
                        update_after=20, update_every=10, batch_size=8, log=False, seed=0,
                        chunks=1)
    model.learn(50, progress_bar=False)
    model.save_replay_buffer(tmp_path / "rb.npz")
    other = numddpg.TD3("Pendulum-v1", hidden_sizes=(8,), replay_size=500, log=False, seed=1,
                        chunks=1)
    actor = other.agent.actor.params.copy()
    other.load_replay_buffer(tmp_path / "rb.npz")
    assert other.buffer.size == 50
    np.testing.assert_array_equal(other.buffer.obs[:50], model.buffer.obs[:50])
    np.testing.assert_array_equal(other.agent.actor.params, actor)     # the buffer alone
    small = numddpg.TD3("Pendulum-v1", hidden_sizes=(8,), replay_size=400, log=False, seed=1,
                        chunks=1)
    with pytest.raises(CheckpointError, match="replay_size"):
        small.load_replay_buffer(tmp_path / "rb.npz")


def test_evaluate_policy_and_set_env_take_dict_envs():
    from numddpg.sb3 import evaluate_policy
    model = her_model(ListVecEnv([BitsEnv(image=True), BitsEnv(image=True)]))
    model.learn(20)
    for env in (gym.wrappers.TimeLimit(BitsEnv(image=True), 5),
                ListVecEnv([BitsEnv(image=True), BitsEnv(image=True)])):
        returns, lengths = evaluate_policy(model, env, n_eval_episodes=4,
                                           return_episode_rewards=True)
        assert len(returns) == 4 and all(1 <= n <= N_BITS for n in lengths)
    venv = ListVecEnv([BitsEnv(image=True), BitsEnv(image=True)])
    model.set_env(venv)
    model.learn(20)
    assert venv.calls                      # relabelled rewards come from the new env now
