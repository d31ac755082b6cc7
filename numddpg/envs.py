"""Making and checking gymnasium environments for DDPG.

DDPG needs a flat continuous observation (a 1-D ``Box``) and a flat continuous action (a 1-D
``Box`` with finite bounds, because the actor squashes with tanh into [low, high]).  Every other
space is refused here, with the space in the message and what to do instead.

Seeding: ``make_env`` seeds the action and observation spaces; the training loop seeds every
``env.reset`` with a seed drawn from its own generator (numddpg.algorithms), so one seed drives
everything.
"""
import copy
import difflib

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class EnvError(ValueError):
    """An environment DDPG cannot train on (unknown id, unsupported spaces, bad values)."""


def registered_ids():
    """All environment ids gymnasium knows (after importing its optional env families)."""
    return sorted(gym.envs.registry.keys())


def _make_by_id(env_id, **kwargs):
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.UnregisteredEnv:
        why = ""
    except gym.error.DeprecatedEnv as exc:
        why = f" ({exc})"
    close = difflib.get_close_matches(env_id, registered_ids(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise EnvError(f"unknown environment id {env_id!r}{why}.{hint} "
                   "(`python -c \"import gymnasium; gymnasium.pprint_registry()\"` lists them all)"
                   ) from None


def check_spaces(env):
    """Return (obs_dim, act_dim, act_low, act_high) of a DDPG-compatible env, or raise EnvError."""
    name = env_id(env)
    act_space, obs_space = env.action_space, env.observation_space
    if not isinstance(act_space, spaces.Box):
        kind = type(act_space).__name__
        raise EnvError(
            f"{name}: DDPG needs a continuous Box action space, got {kind} {act_space}. "
            + {"Discrete": "DDPG's actor outputs real-valued actions; use a discrete-action "
                           "method (DQN) or the env's continuous variant if it has one "
                           "(e.g. MountainCarContinuous-v0, LunarLanderContinuous-v3).",
               "MultiDiscrete": "DDPG cannot output integer action vectors; use a "
                                "discrete-action method.",
               "MultiBinary": "DDPG cannot output binary actions; use a discrete-action method.",
               "Dict": "flatten it into one Box with an ActionWrapper "
                       "(gymnasium.spaces.flatten_space gives the Box) before training.",
               "Tuple": "flatten it into one Box before training."}.get(
                   kind, "wrap the env so its action space is a 1-D Box."))
    if len(act_space.shape) != 1:
        raise EnvError(f"{name}: DDPG needs a 1-D Box action space, got shape {act_space.shape} "
                       f"({act_space}); reshape the actions with an ActionWrapper.")
    low = np.asarray(act_space.low, dtype=np.float64)
    high = np.asarray(act_space.high, dtype=np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise EnvError(f"{name}: the action space {act_space} has infinite bounds (low={low}, "
                       f"high={high}); DDPG squashes actions into [low, high] with tanh, so wrap "
                       "the env with gymnasium.wrappers.ClipAction + RescaleAction or give "
                       "finite bounds.")
    if np.any(low >= high):
        raise EnvError(f"{name}: the action space {act_space} has low >= high in some dimension "
                       f"(low={low}, high={high}).")
    if not isinstance(obs_space, spaces.Box):
        kind = type(obs_space).__name__
        hint = ("wrap it with gymnasium.wrappers.FlattenObservation to get one Box"
                if kind in ("Dict", "Tuple") else
                "DDPG's networks need a real-valued observation vector")
        raise EnvError(f"{name}: DDPG needs a Box observation space, got {kind} {obs_space}; "
                       f"{hint}.")
    if len(obs_space.shape) != 1:
        raise EnvError(f"{name}: DDPG needs a 1-D Box observation space, got shape "
                       f"{obs_space.shape} ({obs_space}); wrap it with "
                       "gymnasium.wrappers.FlattenObservation.")
    return int(obs_space.shape[0]), int(act_space.shape[0]), low, high


def env_id(env):
    """The registered id of an env instance (e.g. "Pendulum-v1"), or its class name."""
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return spec.id
    return type(getattr(env, "unwrapped", env)).__name__


def make_env(env, seed=None, **make_kwargs):
    """A checked gymnasium env from an id or an instance, its spaces seeded with ``seed``.

    env : str (a registered id, e.g. "Pendulum-v1") or a gymnasium.Env instance (used as is).
    seed : int or None — seeds ``action_space`` and ``observation_space``.  Resets are seeded
        by the caller (``env.reset(seed=...)``).
    make_kwargs : passed to gymnasium.make for ids (e.g. render_mode="human").
    Raises EnvError for unknown ids (with the closest registered ids) and unsupported spaces.
    """
    if isinstance(env, str):
        make_kwargs.setdefault("disable_env_checker", True)   # check_spaces does our checks
        env = _make_by_id(env, **make_kwargs)
    elif not isinstance(env, gym.Env):
        raise EnvError(f"env must be a gymnasium id or a gymnasium.Env, got {type(env).__name__}"
                       f" {env!r}")
    check_spaces(env)
    if seed is not None:
        env.action_space.seed(int(seed))
        env.observation_space.seed(int(seed))
    return env


def make_twin(env, seed=None):
    """A separate instance of ``env`` (for test episodes that must not disturb training).

    Registered envs (env.spec set) are rebuilt from their spec, wrappers included; others are
    deep-copied.  Raises EnvError if neither works: then pass ``test_env=`` explicitly.
    """
    spec = getattr(env, "spec", None)
    if spec is not None:
        try:
            return make_env(gym.make(spec), seed)
        except Exception:                      # a wrapper that cannot be rebuilt from its spec
            pass
    try:
        return make_env(copy.deepcopy(env), seed)
    except Exception as exc:
        raise EnvError(f"could not make a separate test instance of {env_id(env)} ({exc}); "
                       "pass test_env= a second instance of it") from exc


def random_policy_returns(env, n_episodes, rng, max_ep_len=None):
    """Returns of ``n_episodes`` episodes of uniform random actions in [low, high].

    Every reset is seeded from ``rng`` (a numpy Generator), as in training.  The baseline that
    `numddpg train` compares its result against.
    """
    _, act_dim, low, high = check_spaces(env)
    dtype = env.action_space.dtype
    returns = []
    for _ in range(int(n_episodes)):
        env.reset(seed=int(rng.integers(2**31)))
        ep_ret, ep_len, over = 0.0, 0, False
        while not over:
            a = (low + (high - low) * rng.random(act_dim)).astype(dtype)
            _, r, terminated, truncated, _ = env.step(a)
            ep_ret += float(r)
            ep_len += 1
            over = terminated or truncated or (max_ep_len is not None and ep_len >= max_ep_len)
        returns.append(ep_ret)
    return np.array(returns)
