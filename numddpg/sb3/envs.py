"""Which envs an SB3 model takes, and what numddpg's loop trains on for each.

    a gymnasium id or Env        the env, wrapped by numddpg.sb3.spaces when its spaces are not
                                 flat float vectors (SB3's preprocessing); the loop's plain env
    a gymnasium vector env       as it is (gymnasium's NEXT_STEP or SAME_STEP autoreset)
    an SB3 VecEnv (DummyVecEnv,  numddpg.sb3.vecenv.LoopVecEnv around it: a SAME_STEP vector env
    SubprocVecEnv, VecNormalize, ...)
"""
import gymnasium as gym
import numpy as np

from ..training.envs import make_env, make_twin
from .spaces import flat_env
from .vecenv import LoopVecEnv, OneEnvVecEnv, is_vec_env


class NoEnv(gym.Env):
    """The env of a model loaded without one when the saved env cannot be made (SB3's load then
    leaves ``model.env`` None): the saved spaces (a flat float observation, the action box),
    so that ``predict`` works; reset and step raise, naming ``set_env``."""

    def __init__(self, obs_dim, act_low, act_high, act_dtype):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(np.asarray(act_low, act_dtype),
                                           np.asarray(act_high, act_dtype), dtype=act_dtype)

    def reset(self, *, seed=None, options=None):
        raise RuntimeError("this model was loaded without an env (the saved one cannot be "
                           "made from its record): call model.set_env(env) before learn()")

    step = reset


def no_env(meta):
    """A NoEnv for a checked model file's ``meta`` if its env cannot be made from its record
    (else None: load makes it)."""
    record = meta.get("env")
    if record is None or record["why"] is None or "obs_layout" in meta["spaces"]:
        return None                    # (a Dict env's: load names what cannot be made)
    sp = meta["spaces"]
    return NoEnv(sp["obs_dim"], sp["act_low"], sp["act_high"], np.dtype(sp["act_dtype"]))


def check_env(name, env):
    """``env`` if it is an env a model takes (the module docstring)."""
    if env is None:
        raise ValueError(f"{name}=None: numddpg builds its networks from the env's spaces; pass "
                         "an env (a gymnasium id, Env or vector env, or an SB3 VecEnv)")
    if isinstance(env, (str, gym.Env, gym.vector.VectorEnv)) or is_vec_env(env):
        return env
    raise TypeError(f"{name} must be a gymnasium id, a gymnasium.Env, a gymnasium vector env or "
                    f"an SB3 VecEnv (num_envs, reset, step_async, step_wait), got {env!r} "
                    f"({type(env).__name__})")


def training_env(env, handle_timeout_termination=True):
    """What the loop steps for the checked ``env``: see the module docstring.  Without
    ``handle_timeout_termination`` (SB3's ReplayBuffer argument) every episode end is a
    termination, so a gymnasium Env then steps as a VecEnv of one (``user_env`` makes an id
    first).  An id stays an id otherwise: the native model makes it and records it."""
    if isinstance(env, str):
        return env
    if is_vec_env(env):
        return LoopVecEnv(env, handle_timeout_termination, originals=True)
    if isinstance(env, gym.vector.VectorEnv):
        if not handle_timeout_termination:
            raise ValueError("replay_buffer_kwargs={'handle_timeout_termination': False} needs "
                             "a gymnasium Env or an SB3 VecEnv (DummyVecEnv); a gymnasium vector "
                             "env's time limits always bootstrap")
        return env
    if not handle_timeout_termination:
        return LoopVecEnv(OneEnvVecEnv(env), handle_timeout_termination=False)
    return flat_env(env)


def user_env(env, handle_timeout_termination=True):
    """The checked ``env`` as the user's env object: an id is made when the loop cannot take it
    as an id (without ``handle_timeout_termination``), else kept for the native model."""
    if isinstance(env, str) and not handle_timeout_termination:
        return make_env(env)
    return env


def vec_env_view(env):
    """``env`` (the user's) behind SB3's VecEnv API, as ``model.get_env()`` returns it: an SB3
    VecEnv or a gymnasium vector env as it is, a gymnasium Env in a OneEnvVecEnv."""
    if isinstance(env, gym.Env):
        return OneEnvVecEnv(env)
    return env


def native_test_env(env):
    """The native model's test env for the loop's ``env`` when numddpg cannot make one from
    its spec (a vector env made from functions): a separate instance of its first env; None
    otherwise (the native model makes its own when first needed)."""
    if not isinstance(env, gym.vector.VectorEnv) or env.spec is not None:
        return None
    if isinstance(env, LoopVecEnv):
        return None                    # (only model.evaluate needs one: pass it env=)
    if hasattr(env, "envs"):
        return make_twin(env.envs[0])
    raise ValueError(f"env is a {type(env).__name__} made from functions, without a spec: numddpg "
                     "cannot make the separate env it evaluates on from it. Make it from an id "
                     "(make_vec_env('Pendulum-v1', vec_env_cls=SubprocVecEnv), gymnasium.make_vec) "
                     "or as a SyncVectorEnv")
