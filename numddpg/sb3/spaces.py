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

SB3's MultiInputPolicy reads a Dict observation entry by entry (its CombinedExtractor) and
concatenates the features; numddpg's networks read the entries laid end to end in sorted key
order (numddpg.files.dictobs.DictLayout), each entry as ``DictEntry`` makes it:

    Box                    flattened; an image (SB3's ``is_image_space``: a 3-D uint8 Box with
                           bounds 0 and 255) scaled to [0, 1] as SB3's preprocess_obs scales it,
                           then flattened too: numddpg has no convolutions (SB3: its NatureCNN)
    Discrete, MultiDiscrete, MultiBinary   as for MlpPolicy above
    Dict, Tuple            refused (nested spaces: SB3 refuses them too)

A Dict whose entries are all 1-D float Boxes needs no map: numddpg's loop takes it as it is.
Otherwise a gymnasium env is wrapped in ``DictObservations``, whose observations are Dicts of
float32 vectors and whose ``compute_reward`` hands a goal env its goals back in the env's own
form (``DictEntry.values``, as SB3's HerReplayBuffer stores and passes them).
"""
import math
import warnings

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..training.envs import ActionSpaceError, EnvError


class UnsupportedActionSpace(ActionSpaceError, AssertionError):
    """numddpg's ActionSpaceError (an EnvError: a ValueError), also an AssertionError: what
    SB3's DDPG and TD3 raise for an action space they do not support (their assertion of
    ``supported_action_spaces``), so that code written for SB3 catches it."""


OBS_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def is_image(space):
    """SB3's ``is_image_space``: a Box of 3 dimensions, dtype uint8, bounds 0 and 255."""
    return (isinstance(space, spaces.Box) and len(space.shape) == 3
            and space.dtype == np.uint8 and bool(np.all(space.low == 0))
            and bool(np.all(space.high == 255)))


def _flat_obs_space(space):
    """The float32 Box the networks read for an observation ``space`` (SB3's preprocessing); of
    a Dict, the Dict of its entries' float32 vectors, or the Dict itself when no entry needs a
    map."""
    if isinstance(space, spaces.Dict):
        entries = dict_entries(space)
        if all(e.identity for e in entries.values()):
            return space
        return spaces.Dict({key: e.flat_space for key, e in entries.items()})
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


# ---------------------------------------------------------------------------------------------
# Dict observations (MultiInputPolicy)
# ---------------------------------------------------------------------------------------------

class DictEntry:
    """Entry ``key`` of a Dict observation space as the networks read it: ``width`` float32
    numbers (the module docstring's table).

    Attributes
    ----------
    space : the entry's space.  flat_space : Box (width,) float32, what ``flat`` makes.
    identity : whether the entry is already a 1-D float Box (no map needed).
    image : whether it is an image (scaled by 1/255).
    """

    def __init__(self, key, space):
        if isinstance(space, (spaces.Dict, spaces.Tuple)):
            raise ValueError(f"Dict observation entry {key!r} is a {type(space).__name__} "
                             f"({space}): nested observation spaces are not supported (SB3 "
                             "refuses them too); flatten the entry with an ObservationWrapper")
        if not isinstance(space, OBS_SPACES) or (isinstance(space, spaces.Box)
                                                 and space.dtype.kind not in "fiu"):
            raise ValueError(f"Dict observation entry {key!r} is {space}: numddpg.sb3 reads Box "
                             "(of real numbers), Discrete, MultiDiscrete and MultiBinary entries")
        self.key, self.space = key, space
        self.image = is_image(space)
        self.identity = (isinstance(space, spaces.Box) and len(space.shape) == 1
                         and space.dtype.kind == "f")
        if isinstance(space, spaces.MultiDiscrete):
            self.offsets = np.concatenate([[0], np.cumsum(space.nvec.reshape(-1))])
        if self.image:
            low, high = np.zeros(math.prod(space.shape)), np.ones(math.prod(space.shape))
        elif isinstance(space, spaces.Box):
            low, high = space.low.reshape(-1), space.high.reshape(-1)
        else:
            flat = spaces.flatten_space(space)
            low, high = flat.low, flat.high
        self.width = int(low.shape[0])
        self.flat_space = spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                     dtype=np.float32)

    def flat(self, x, n=None):
        """(n, width) float32 from n values of the entry ((n, *space.shape)), or (width,) from
        one value (n None); ValueError naming the key for another shape or a value outside a
        Discrete's or MultiDiscrete's range."""
        lead = () if n is None else (n,)
        space = self.space
        x = np.asarray(x)
        if x.shape != lead + space.shape or x.dtype.kind not in "biuf":
            raise ValueError(f"Dict observation entry {self.key!r} has shape {x.shape} and dtype "
                             f"{x.dtype}; its space {space} promises shape "
                             f"{lead + space.shape} of numbers")
        rows = x.reshape((-1,) + space.shape)
        if isinstance(space, (spaces.Box, spaces.MultiBinary)):
            out = rows.reshape(len(rows), -1).astype(np.float32)
            if self.image:
                out /= np.float32(255.0)
        else:
            index = (rows.reshape(len(rows), -1) - np.asarray(space.start).reshape(-1))
            sizes = ([int(space.n)] if isinstance(space, spaces.Discrete)
                     else list(space.nvec.reshape(-1)))
            bad = (index < 0) | (index >= np.array(sizes)) | (index != np.floor(index))
            if np.any(bad):
                raise ValueError(f"Dict observation entry {self.key!r} holds "
                                 f"{rows.reshape(len(rows), -1)[bad][0]}, outside its space "
                                 f"{space}")
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            out = np.zeros((len(rows), self.width), np.float32)
            out[np.arange(len(rows))[:, None], starts + index.astype(np.int64)] = 1.0
        return out if n is not None else out[0]

    def values(self, z):
        """The entry's values in the env's own form from m rows of the networks' (m, width):
        as SB3's buffers store them (the space's dtype; a Discrete's as (m, 1), a
        MultiDiscrete's as (m, entries)).  The inverse of ``flat``."""
        z = np.asarray(z).reshape(len(z), self.width)
        space = self.space
        if isinstance(space, spaces.Discrete):
            return (np.argmax(z, axis=1) + space.start).astype(space.dtype)[:, None]
        if isinstance(space, spaces.MultiDiscrete):
            cols = [np.argmax(z[:, a:b], axis=1) for a, b in zip(self.offsets[:-1],
                                                                self.offsets[1:])]
            return (np.stack(cols, 1) + space.start.reshape(-1)).astype(space.dtype)
        if self.image:
            z = z * 255.0
        if np.dtype(space.dtype).kind != "f":
            z = np.rint(z)
        return z.astype(space.dtype).reshape((len(z),) + space.shape)

    def __repr__(self):
        return f"DictEntry({self.key!r}, {self.space})"


def dict_entries(space):
    """{key: DictEntry} of a Dict observation ``space``, in its order; ValueError naming the
    first entry numddpg.sb3 cannot read."""
    return {key: DictEntry(key, sub) for key, sub in space.spaces.items()}


def image_keys(space):
    """The keys of a Dict ``space``'s image entries (``is_image``), or [] (also for others)."""
    if not isinstance(space, spaces.Dict):
        return []
    return [key for key, sub in space.spaces.items() if is_image(sub)]


def observation_space_of(env):
    """One env's observation space of a gymnasium Env, vector env or SB3 VecEnv."""
    if isinstance(env, gym.vector.VectorEnv):
        return env.single_observation_space
    return env.observation_space


def check_policy(policy, space, policy_kwargs):
    """ValueError unless ``policy`` reads observations of ``space`` (the user's env's): SB3's
    MultiInputPolicy a Dict, its MlpPolicy the rest.  Image entries of a Dict (SB3 reads them
    with a CNN) are flattened: a UserWarning says so."""
    is_dict = isinstance(space, spaces.Dict)
    if policy == "MlpPolicy" and is_dict:
        raise EnvError(f"MlpPolicy reads one flat observation, the env observes a Dict "
                       f"({space}): use MultiInputPolicy (SB3 asks for it too)")
    if policy == "MultiInputPolicy" and not is_dict:
        raise ValueError(f"MultiInputPolicy reads Dict observations, the env observes {space}: "
                         "use MlpPolicy")
    images = image_keys(space)
    if images:
        if (policy_kwargs or {}).get("normalize_images", True) is False:
            raise ValueError(f"policy_kwargs['normalize_images']=False with the image entries "
                             f"{images}: numddpg scales images by 1/255 as SB3's default does "
                             "(a saved model records no other scale); pass True or leave it out")
        warnings.warn(f"Dict entries {images} are images: SB3's MultiInputPolicy reads them with "
                      "a CNN (NatureCNN of cnn_output_dim features), numddpg has no "
                      "convolutions and flattens their pixels, scaled to [0, 1], into the "
                      "MLPs' input", UserWarning, stacklevel=4)


class DictObservations(gym.ObservationWrapper):
    """A gymnasium env of Dict observations whose entries need a map (``DictEntry``): each
    entry a float32 vector, and a goal env's ``compute_reward`` taking the goals in that form
    (numddpg's hindsight buffer relabels the flat rows it stores)."""

    def __init__(self, env):
        super().__init__(env)
        self.entries = dict_entries(env.observation_space)
        self.observation_space = spaces.Dict({k: e.flat_space for k, e in self.entries.items()})

    def observation(self, observation):
        return dict_obs(self.entries, observation)

    def compute_reward(self, achieved_goal, desired_goal, info):
        """The env's compute_reward on goals given as m rows of the networks' numbers."""
        return self.env.unwrapped.compute_reward(
            self.entries["achieved_goal"].values(achieved_goal),
            self.entries["desired_goal"].values(desired_goal), info)


def dict_obs(entries, obs, n=None):
    """The Dict observation ``obs`` (one, or a batch of n: each entry with a leading axis) as
    {key: float32 (width,) or (n, width)} by ``entries`` (dict_entries'); ValueError naming a
    missing or extra key."""
    if not isinstance(obs, dict) or obs.keys() != entries.keys():
        got = sorted(map(str, obs)) if isinstance(obs, dict) else type(obs).__name__
        raise ValueError(f"expected a Dict observation with keys {sorted(entries)}, got {got}")
    return {key: e.flat(obs[key], n) for key, e in entries.items()}


# ---------------------------------------------------------------------------------------------
# Wrapping a gymnasium env, and the maps for what passes no wrapper
# ---------------------------------------------------------------------------------------------

class FlatActions(gym.ActionWrapper):
    """A Box action of shape (d1, d2, ...) taken as a flat vector of d1 * d2 * ... numbers."""

    def __init__(self, env):
        super().__init__(env)
        self.action_space = _flat_act_space(env.action_space)

    def action(self, action):
        return np.asarray(action).reshape(self.env.action_space.shape)


def flat_env(env):
    """``env`` (a gymnasium Env) wrapped so that its observations and actions are the flat
    float vectors SB3's MlpPolicy would make of them (of a Dict observation: a Dict of them,
    as its MultiInputPolicy would); ``env`` itself when they already are."""
    obs_space = env.observation_space
    if isinstance(obs_space, spaces.Dict):
        if _flat_obs_space(obs_space) is not obs_space:
            env = DictObservations(env)
    elif _flat_obs_space(obs_space) is not obs_space:
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
    networks' (n, obs_dim) floats (of a Dict space: {key: (n, width)}), ``actions`` turns the
    actor's (n, act_dim) back into the env's shape; with ``identity`` both maps keep what they
    are given.  ``goal_values`` gives a goal env its goals back (``DictEntry.values``)."""

    def __init__(self, observation_space, action_space, identity=False):
        self.observation_space, self.action_space = observation_space, action_space
        self.flat_observation_space = (observation_space if identity
                                       else _flat_obs_space(observation_space))
        self.flat_action_space = action_space if identity else _flat_act_space(action_space)
        self.maps_obs = self.flat_observation_space is not observation_space
        self.maps_actions = self.flat_action_space is not action_space
        self.entries = (dict_entries(observation_space)
                        if isinstance(observation_space, spaces.Dict) and not identity else None)

    def is_batch(self, obs):
        """Whether ``obs`` is a batch of observations (SB3's is_vectorized_observation); of a
        Dict space, read from its first entry."""
        space = self.observation_space
        if isinstance(space, spaces.Dict) and isinstance(obs, dict):
            key = next(iter(space.spaces))
            return key in obs and np.ndim(obs[key]) > len(space.spaces[key].shape)
        return np.shape(obs) != space.shape

    def obs(self, obs):
        """A batch (n, ...) of the env's observations as (n, obs_dim) float32 (of a Dict
        space: {key: (n, width) float32}, or the batch as it is when no entry needs a map)."""
        if not self.maps_obs:
            return obs
        space = self.observation_space
        if isinstance(space, spaces.Dict):
            n = len(np.asarray(obs[next(iter(space.spaces))])) if isinstance(obs, dict) else 0
            return dict_obs(self.entries, obs, n)
        return np.stack([spaces.flatten(space, np.asarray(o, dtype=space.dtype))
                         for o in obs]).astype(np.float32)

    def actions(self, actions):
        """The actor's (n, act_dim) actions in the env's action shape (n, *shape)."""
        if not self.maps_actions:
            return actions
        return np.asarray(actions).reshape((-1, *self.action_space.shape))

    def goal_values(self, key, z):
        """Entry ``key`` of m flat observations' (m, width) in the env's own form."""
        return self.entries[key].values(z)
