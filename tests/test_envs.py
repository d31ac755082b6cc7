"""make_env / check_spaces: what DDPG accepts, and the errors for what it cannot train on."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from numddpg.training.envs import (EnvError, check_spaces, env_id, make_env, make_twin,
                                   random_policy_returns)


class SpacesEnv(gym.Env):
    """A do-nothing env with the given spaces."""

    def __init__(self, action_space, observation_space=None):
        self.action_space = action_space
        self.observation_space = observation_space or spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_pendulum_is_accepted_with_its_dims_and_bounds():
    env = make_env("Pendulum-v1", seed=0)
    obs_dim, act_dim, low, high = check_spaces(env)
    assert (obs_dim, act_dim) == (3, 1)
    np.testing.assert_array_equal(low, [-2.0])
    np.testing.assert_array_equal(high, [2.0])
    assert env_id(env) == "Pendulum-v1"
    assert env.spec.max_episode_steps == 200            # gymnasium's TimeLimit is kept


def test_an_instance_is_used_as_is_and_its_spaces_seeded():
    env = gym.make("Pendulum-v1")
    assert make_env(env, seed=5) is env
    a = env.action_space.sample()
    make_env(env, seed=5)
    np.testing.assert_array_equal(env.action_space.sample(), a)


def test_unknown_id_suggests_close_ids():
    with pytest.raises(EnvError, match=r"unknown environment id 'Pendulm-v1'.*Pendulum-v1"):
        make_env("Pendulm-v1")
    with pytest.raises(EnvError, match=r"'Pendulum-v2'.*Pendulum-v1"):
        make_env("Pendulum-v2")
    with pytest.raises(EnvError, match="unknown environment id 'qqqqzzzz'"):
        make_env("qqqqzzzz")


@pytest.mark.parametrize("space, words", [
    (spaces.Discrete(3), "Discrete"),
    (spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
    (spaces.MultiBinary(2), "MultiBinary"),
    (spaces.Dict({"a": spaces.Box(-1, 1, (1,))}), "Dict"),
])
def test_non_box_action_spaces_are_refused_naming_the_space(space, words):
    with pytest.raises(EnvError, match=f"continuous Box action space, got {words}"):
        make_env(SpacesEnv(space))


def test_discrete_action_env_by_id_suggests_a_continuous_variant():
    with pytest.raises(EnvError, match="CartPole-v1.*Discrete.*Continuous"):
        make_env("CartPole-v1")


@pytest.mark.parametrize("low, high", [(-np.inf, 1.0), (-1.0, np.inf), (-np.inf, np.inf)])
def test_unbounded_actions_are_refused(low, high):
    with pytest.raises(EnvError, match="infinite bounds.*RescaleAction"):
        make_env(SpacesEnv(spaces.Box(low, high, (2,), np.float32)))


def test_non_box_and_non_flat_observations_are_refused():
    box = spaces.Box(-1, 1, (1,), np.float32)
    with pytest.raises(EnvError, match="Box observation space, got Discrete"):
        make_env(SpacesEnv(box, spaces.Discrete(4)))
    # a Dict of Boxes is flattened (numddpg.files.dictobs); one holding another space is not
    dict_env = SpacesEnv(box, spaces.Dict({"x": spaces.Box(-1, 1, (2,))}))
    assert check_spaces(make_env(dict_env))[0] == 2
    with pytest.raises(EnvError, match="entry 'x' is Discrete.*not a Box"):
        make_env(SpacesEnv(box, spaces.Dict({"x": spaces.Discrete(3)})))
    with pytest.raises(EnvError, match=r"1-D Box observation space, got shape \(2, 3\)"):
        make_env(SpacesEnv(box, spaces.Box(-1, 1, (2, 3), np.float32)))
    with pytest.raises(EnvError, match=r"1-D Box action space, got shape \(1, 1\)"):
        make_env(SpacesEnv(spaces.Box(-1, 1, (1, 1), np.float32)))


def test_not_an_env_at_all():
    with pytest.raises(EnvError, match="a gymnasium id, a gymnasium.Env or a gymnasium vector env"):
        make_env(42)


def test_make_twin_gives_a_separate_instance():
    env = make_env("Pendulum-v1")
    twin = make_twin(env)
    assert twin is not env and twin.unwrapped is not env.unwrapped
    assert env_id(twin) == "Pendulum-v1" and twin.spec.max_episode_steps == 200
    custom = SpacesEnv(spaces.Box(-1, 1, (1,), np.float32))   # no spec: deep-copied
    assert make_twin(custom) is not custom


def test_random_policy_returns_are_seeded_and_pendulum_is_bad():
    env = make_env("Pendulum-v1")
    a = random_policy_returns(env, 4, np.random.default_rng(0))
    b = random_policy_returns(env, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4,) and np.all(a < -400)        # random Pendulum: about -1200 +- 300
