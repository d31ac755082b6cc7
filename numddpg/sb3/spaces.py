"""SB3's preprocessing of spaces, for numddpg's flat MLPs: what an env's observations and actions
are to the networks.

SB3's MlpPolicy (FlattenExtractor after ``preprocess_obs``) reads

    Box (any shape)        the observation flattened
    Discrete(n)            one-hot, n floats
    MultiDiscrete(nvec)    one one-hot per entry, concatenated: sum(nvec) floats
    MultiBinary(n)         the bits as floats

and its actor writes a Box action of any shape (flattened in the network, reshaped for the env).
gymnasium's ``flatten`` is that map for observations, so a gymnasium env is wrapped in
gymnasium's own FlattenObservation and DtypeObservation (wrappers a saved model's record can
rebuild) and, for an action Box that is not 1-D, in ``FlatActions``.  ``Preprocessing`` applies
the same maps to what does not pass through a wrapper: an SB3 VecEnv's batches and the
observations given to ``predict``.
"""
import gymnasium as gym
import numpy as np
from gymnasium import spaces

OBS_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def _flat_obs_space(space):
    """The float32 Box the networks read for an observation ``space`` (SB3's preprocessing)."""
    if not isinstance(space, OBS_SPACES):
        return space                # (check_spaces refuses it, naming the kind)
    if isinstance(space, spaces.Box) and len(space.shape) == 1 and space.dtype.kind == "f":
        return space
    flat = spaces.flatten_space(space)
    return spaces.Box(flat.low.astype(np.float32), flat.high.astype(np.float32),
                      dtype=np.float32)


def _flat_act_space(space):
    """A Box action space of any shape as the 1-D Box the actor writes."""
    if isinstance(space, spaces.Box) and len(space.shape) > 1:
        return spaces.Box(space.low.reshape(-1), space.high.reshape(-1), dtype=space.dtype)
    return space


class FlatActions(gym.ActionWrapper):
    """A Box action of shape (d1, d2, ...) taken as a flat vector of d1 * d2 * ... numbers."""

    def __init__(self, env):
        super().__init__(env)
        self.action_space = _flat_act_space(env.action_space)

    def action(self, action):
        return np.asarray(action).reshape(self.env.action_space.shape)


def flat_env(env):
    """``env`` (a gymnasium Env) wrapped so that its observations and actions are the flat
    float vectors SB3's MlpPolicy would make of them; ``env`` itself when they already are."""
    obs_space = env.observation_space
    if _flat_obs_space(obs_space) is not obs_space:
        if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1):
            env = gym.wrappers.FlattenObservation(env)
        if env.observation_space.dtype != np.float32:
            env = gym.wrappers.DtypeObservation(env, np.float32)
    if _flat_act_space(env.action_space) is not env.action_space:
        env = FlatActions(env)
    return env


class Preprocessing:
    """The maps of the module docstring for one env's ``observation_space`` and
    ``action_space`` (the env's own): ``obs`` turns one observation or a batch into the
    networks' (n, obs_dim) floats, ``actions`` turns the actor's (n, act_dim) back into the
    env's shape; with ``identity`` both maps keep what they are given."""

    def __init__(self, observation_space, action_space, identity=False):
        self.observation_space, self.action_space = observation_space, action_space
        self.flat_observation_space = (observation_space if identity
                                       else _flat_obs_space(observation_space))
        self.flat_action_space = action_space if identity else _flat_act_space(action_space)
        self.maps_obs = self.flat_observation_space is not observation_space
        self.maps_actions = self.flat_action_space is not action_space

    def is_batch(self, obs):
        """Whether ``obs`` is a batch of observations (SB3's is_vectorized_observation)."""
        return np.shape(obs) != self.observation_space.shape

    def obs(self, obs):
        """A batch (n, ...) of the env's observations as (n, obs_dim) float32."""
        if not self.maps_obs:
            return obs
        space = self.observation_space
        return np.stack([spaces.flatten(space, np.asarray(o, dtype=space.dtype))
                         for o in obs]).astype(np.float32)

    def actions(self, actions):
        """The actor's (n, act_dim) actions in the env's action shape (n, *shape)."""
        if not self.maps_actions:
            return actions
        return np.asarray(actions).reshape((-1, *self.action_space.shape))
