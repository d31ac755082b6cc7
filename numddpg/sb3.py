"""Stable-Baselines3's DDPG and TD3, on numddpg's training loop: switch by one import line.

    from numddpg.sb3 import DDPG, NormalActionNoise, EvalCallback   # was: stable_baselines3

``DDPG("MlpPolicy", env, ...)`` and ``TD3(...)`` take SB3's arguments with SB3's defaults, map
them onto numddpg's hyperparameters (docs/sb3.md has the whole table) and
build a native numddpg.DDPG / numddpg.TD3 (``model.native``), whose loop does the training:

    learning_rate            pi_lr = q_lr = learning_rate
    buffer_size              replay_size
    learning_starts          start_steps = learning_starts (random actions before it) and
                             update_after = learning_starts + 1 (SB3 trains once
                             num_timesteps > learning_starts)
    tau                      polyak = 1 - tau
    train_freq n / (n, "step")   update_every = n * n_envs (SB3 counts steps of the vector
                             env, numddpg transitions)
    gradient_steps           gradient_steps (-1: as many as env steps, numddpg's None)
    action_noise             noise (None: "none"; NormalActionNoise with mean 0 and one sigma:
                             "gaussian", act_noise = sigma; OrnsteinUhlenbeckActionNoise with
                             mean 0 and one sigma: "ou", ou_sigma, ou_theta, ou_dt)
    policy_kwargs net_arch   hidden_sizes (and qf_hidden_sizes for dict(pi=..., qf=...))
    policy_delay, target_policy_noise, target_noise_clip (TD3)
                             policy_delay, target_noise, noise_clip

What numddpg cannot do raises naming the argument (a learning-rate schedule, a device other than
the CPU, a policy other than "MlpPolicy", train_freq in episodes, n-step returns, another
replay buffer class, Dict observations, ...); nothing is silently ignored.  Envs are gymnasium
1.x envs or vector envs (``make_vec_env`` builds the latter).  Files are numddpg's safe format
(npz + JSON, never pickles): ``save("x")`` writes ``x.npz``.
"""
import collections
import math
import os
import platform
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

from . import algorithms as _algorithms
from . import checkpoint as _checkpoint
from . import runlog as _runlog
from .callbacks import (BaseCallback, CallbackList, CheckpointCallback, ConvertCallback,
                        EvalCallback, EventCallback, EveryNTimesteps, StopTrainingOnMaxEpisodes,
                        StopTrainingOnNoModelImprovement, StopTrainingOnRewardThreshold,
                        convert_callback)
from .checks import check_bool, check_int, check_non_negative, check_widths
from .hyperparameters import check as check_hyperparameter
from .envs import EnvError, check_spaces, env_id as _env_id, make_twin

__all__ = ["DDPG", "TD3", "BaseCallback", "CallbackList", "CheckpointCallback",
           "ConvertCallback", "EvalCallback", "EventCallback", "EveryNTimesteps",
           "StopTrainingOnMaxEpisodes", "StopTrainingOnNoModelImprovement",
           "StopTrainingOnRewardThreshold",
           "NormalActionNoise", "OrnsteinUhlenbeckActionNoise", "ActionNoise", "evaluate_policy",
           "make_vec_env", "Logger", "TrainFreq"]

# numddpg's loop caps episodes at max_ep_len; SB3 has no cap of its own (the env's TimeLimit
# ends episodes), so the models of this module set one no episode reaches.
NO_EPISODE_CAP = 2**62
EXTENSION = ".npz"
NOISE_HYPERPARAMETERS = ("noise", "act_noise", "ou_sigma", "ou_theta", "ou_dt")


# ---------------------------------------------------------------------------------------------
# Action noise: SB3's classes, in half-range units (SB3's [-1, 1] scaled actions)
# ---------------------------------------------------------------------------------------------

def _noise_vector(name, value):
    arr = np.asarray(value)
    if arr.ndim > 1 or arr.dtype.kind not in "fiu" or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite real number or 1-D array (one entry per "
                         f"action dimension), got {value!r}")
    return np.array(arr, dtype=np.float64, ndmin=1)


def _noise_params(mean, sigma):
    mu, sig = _noise_vector("mean", mean), _noise_vector("sigma", sigma)
    try:
        mu, sig = (np.array(x) for x in np.broadcast_arrays(mu, sig))
    except ValueError:
        raise ValueError(f"mean {mu.shape} and sigma {sig.shape} must have the same shape (one "
                         "entry per action dimension)") from None
    if np.any(sig < 0):
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    return mu, sig


def _noise_dtype(dtype):
    """The float dtype ``noise()`` returns its samples in (SB3's ``dtype`` argument)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise ValueError(f"dtype must be a float dtype (np.float32, 'float64'), got {dtype!r}")
    return dt


def _uniform(sig):
    """sig's one value if all its entries are equal, else None."""
    return float(sig[0]) if np.all(sig == sig[0]) else None


class ActionNoise:
    """SB3's action-noise interface: ``noise()`` returns one sample (drawn from NumPy's global
    generator, as in SB3), ``reset()`` starts a new episode.  numddpg's loop calls
    ``sample(rng, out)`` instead, which draws from the loop's seeded generator."""

    def reset(self):
        """Called at the start of every episode."""

    def __call__(self):
        raise NotImplementedError

    def native_hyperparameters(self):
        """numddpg's noise hyperparameters equal to this noise, or None if there are none."""
        return None

    @property
    def kind(self):
        """numddpg's noise kind this noise is ("gaussian", "ou"), or None: the vector-env loop
        gives each further env a native process of that kind (else this one serves all)."""
        native = self.native_hyperparameters()
        return None if native is None else native["noise"]


class NormalActionNoise(ActionNoise):
    """n ~ N(mean, sigma^2) i.i.d. per action dimension, in half-range units.

    With mean 0 and one sigma for all dimensions it is numddpg's noise="gaussian",
    act_noise=sigma, draw for draw (and saved as that).
    """

    def __init__(self, mean, sigma, dtype=np.float32):
        self._mu, self._sigma = _noise_params(mean, sigma)
        self._dtype = _noise_dtype(dtype)
        self._zero_mean = not np.any(self._mu)

    def sample(self, rng, out):
        """One draw from ``rng`` into ``out`` (act_dim,) float64; returns it."""
        rng.standard_normal(out=out)
        out *= self._sigma
        if not self._zero_mean:
            out += self._mu
        return out

    def __call__(self):
        return np.random.normal(self._mu, self._sigma).astype(self._dtype)

    def native_hyperparameters(self):
        sigma = _uniform(self._sigma)
        if self._zero_mean and sigma is not None:
            return {"noise": "gaussian", "act_noise": sigma}
        return None

    def __repr__(self):
        return f"NormalActionNoise(mu={self._mu}, sigma={self._sigma})"


class OrnsteinUhlenbeckActionNoise(ActionNoise):
    """x <- x + theta (mean - x) dt + sigma sqrt(dt) N(0, 1), per action dimension, in
    half-range units; x restarts at ``initial_noise`` (default 0) at every episode start.

    With mean 0, one sigma and no initial_noise it is numddpg's noise="ou" (ou_sigma, ou_theta,
    ou_dt), draw for draw (and saved as that, its state x included).
    """

    def __init__(self, mean, sigma, theta=0.15, dt=1e-2, initial_noise=None,
                 dtype=np.float32):
        self._mu, self._sigma = _noise_params(mean, sigma)
        self._theta = check_non_negative("theta", theta)
        self._dt = check_non_negative("dt", dt)
        self._dtype = _noise_dtype(dtype)
        if initial_noise is not None:
            initial_noise = _noise_vector("initial_noise", initial_noise)
            if initial_noise.shape != self._mu.shape:
                raise ValueError(f"initial_noise must have the shape of mean {self._mu.shape}, "
                                 f"got {initial_noise.shape}")
        self.initial_noise = initial_noise
        # x <- (1 - theta dt) x + theta dt mean + sigma sqrt(dt) n, in numddpg.noise.OUNoise's
        # order of operations (so that the two agree bit for bit)
        self._decay = 1.0 - self._theta * self._dt
        self._scale = self._sigma * math.sqrt(self._dt)
        self._drift = self._theta * self._dt * self._mu
        self.x = np.zeros(self._mu.shape, np.float64)
        self.reset()

    @property
    def noise_prev(self):
        """The process's current value (SB3's name for x)."""
        return self.x

    @noise_prev.setter
    def noise_prev(self, value):
        self.x[...] = value

    def reset(self):
        self.x[...] = 0.0 if self.initial_noise is None else self.initial_noise

    def _advance(self, n):
        n *= self._scale
        self.x *= self._decay
        if np.any(self._drift):
            self.x += self._drift
        self.x += n

    def sample(self, rng, out):
        """Advance x one step with a draw from ``rng``; write x into ``out`` and return it."""
        rng.standard_normal(out=out)
        self._advance(out)
        out[:] = self.x
        return out

    def __call__(self):
        self._advance(np.random.normal(size=self.x.shape))
        return self.x.astype(self._dtype)

    def native_hyperparameters(self):
        sigma = _uniform(self._sigma)
        if np.any(self._mu) or sigma is None or (self.initial_noise is not None
                                                 and np.any(self.initial_noise)):
            return None
        return {"noise": "ou", "ou_sigma": sigma, "ou_theta": self._theta, "ou_dt": self._dt}

    def __repr__(self):
        return f"OrnsteinUhlenbeckActionNoise(mu={self._mu}, sigma={self._sigma})"


class _ForeignNoise:
    """The loop's noise protocol (sample(rng, out), reset()) around a noise numddpg's
    hyperparameters cannot express (a mean, one sigma per dimension, any SB3-style object with
    ``__call__`` and ``reset``).  It has no ``x``, so checkpoints record noise="none"."""

    def __init__(self, noise, act_dim):
        self.noise, self.act_dim = noise, act_dim

    def sample(self, rng, out):
        if hasattr(self.noise, "sample"):
            return self.noise.sample(rng, out)
        v = np.asarray(self.noise(), dtype=np.float64)
        if v.shape != out.shape or not np.all(np.isfinite(v)):
            raise ValueError(f"action_noise {self.noise!r} returned {v!r}; it must return "
                             f"{out.shape[0]} finite numbers (one per action dimension)")
        out[:] = v
        return out

    def reset(self):
        self.noise.reset()


def _noise_hyperparameters(action_noise):
    """numddpg's noise hyperparameters equal to ``action_noise`` ({"noise": "none"} for None),
    or None when they cannot express it."""
    if action_noise is None:
        return {"noise": "none"}
    if not (callable(action_noise) and callable(getattr(action_noise, "reset", None))):
        raise TypeError(f"action_noise must be None or an action noise (NormalActionNoise, "
                        f"OrnsteinUhlenbeckActionNoise, or an object with __call__() and "
                        f"reset()), got {action_noise!r} ({type(action_noise).__name__})")
    if isinstance(action_noise, ActionNoise):
        return action_noise.native_hyperparameters()
    return None


def _noise_process(action_noise, act_dim, hyperparameters):
    """The loop's noise_process for ``action_noise`` on a native model whose hyperparameters
    are ``hyperparameters``: the object itself when they describe it (a checkpoint then saves
    and restores it as the native process), else a _ForeignNoise around it; None for None."""
    if action_noise is None:
        return None
    shape = getattr(action_noise, "_mu", np.zeros(act_dim)).shape
    if shape != (act_dim,):
        raise ValueError(f"action_noise {action_noise!r} has {shape[0]} dimension(s), the action "
                         f"space {act_dim}: give mean and sigma one entry per action dimension")
    native = _noise_hyperparameters(action_noise)
    if native is not None and native == {k: hyperparameters[k] for k in native}:
        return action_noise                     # the same draws as the native process
    return _ForeignNoise(action_noise, act_dim)


# ---------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------

def _check_env(name, env):
    """``env`` if it is what numddpg's loop trains on: a gymnasium id, Env or vector env."""
    if env is None:
        raise ValueError(f"{name}=None: numddpg builds its networks from the env's spaces; pass "
                         "an env (a gymnasium id, Env or vector env)")
    if isinstance(env, (str, gym.Env, gym.vector.VectorEnv)):
        return env
    raise TypeError(f"{name} must be a gymnasium id, a gymnasium.Env or a gymnasium vector env, "
                    f"got {env!r} ({type(env).__name__})")


def _autoreset_mode(env):
    """A vector env's gymnasium AutoresetMode (NEXT_STEP unless its metadata says)."""
    return gym.vector.AutoresetMode(env.metadata.get("autoreset_mode",
                                                     gym.vector.AutoresetMode.NEXT_STEP))


def _test_env(env):
    """The native model's test env for a vector env without a spec (made from functions, which
    numddpg cannot rebuild): a separate instance of its first env; None otherwise (the native
    model makes its own)."""
    if not isinstance(env, gym.vector.VectorEnv) or env.spec is not None:
        return None
    if hasattr(env, "envs"):
        return make_twin(env.envs[0])
    raise ValueError(f"env is a {type(env).__name__} made from functions, without a spec: numddpg "
                     "cannot make the separate env it evaluates on from it. Make it from an id "
                     "(make_vec_env('Pendulum-v1', vec_env_cls=SubprocVecEnv), gymnasium.make_vec) "
                     "or as a SyncVectorEnv")


def check_eval_env(name, env):
    """``env`` if it is a gymnasium Env or vector env (what evaluate_policy steps)."""
    if isinstance(env, (gym.Env, gym.vector.VectorEnv)):
        return env
    raise TypeError(f"{name} must be a gymnasium.Env or a gymnasium vector env, got {env!r} "
                    f"({type(env).__name__})")


def make_vec_env(env_id, n_envs=1, seed=None, start_index=0, monitor_dir=None,
                 wrapper_class=None, env_kwargs=None, vec_env_cls=None, vec_env_kwargs=None,
                 monitor_kwargs=None, wrapper_kwargs=None):
    """A gymnasium vector env of ``n_envs`` copies of ``env_id`` (an id or a function that
    makes an env), SB3's signature.  Each sub-env is wrapped in gymnasium's
    RecordEpisodeStatistics (SB3's Monitor: info["episode"] = {"r", "l", "t"}), then in
    ``wrapper_class(env, **wrapper_kwargs)``.  vec_env_cls: gymnasium's SyncVectorEnv (default;
    SB3's "DummyVecEnv" means it too) or AsyncVectorEnv ("SubprocVecEnv").  seed: sub-env i's
    first reset is seeded with seed + start_index + i.

    Unlike SB3's VecEnv, the result has gymnasium's API (reset() -> (obs, infos), step() -> five
    values).  numddpg's models train on it as it is (one transition per sub-env and step).
    """
    n_envs = check_int("n_envs", n_envs, 1)
    start_index = check_int("start_index", start_index, 0)
    if seed is not None:
        seed = check_int("seed", seed, 0)
    if monitor_dir is not None:
        raise ValueError(f"monitor_dir={monitor_dir!r}: numddpg writes one monitor.csv per run "
                         "(in a native model's run directory, numddpg.runlog), not one per "
                         "sub-env; pass monitor_dir=None (episode statistics are in "
                         "info['episode'])")
    for name, kw in (("env_kwargs", env_kwargs), ("vec_env_kwargs", vec_env_kwargs),
                     ("wrapper_kwargs", wrapper_kwargs)):
        if kw is not None and not isinstance(kw, dict):
            raise TypeError(f"{name} must be a dict or None, got {kw!r}")
    if monitor_kwargs:
        raise ValueError(f"monitor_kwargs={monitor_kwargs!r}: gymnasium's "
                         "RecordEpisodeStatistics, numddpg's Monitor, takes none")
    if not (isinstance(env_id, str) or callable(env_id)):
        raise TypeError(f"env_id must be a gymnasium id or a function returning an env, got "
                        f"{env_id!r}")
    if wrapper_class is not None and not callable(wrapper_class):
        raise TypeError(f"wrapper_class must be callable (env -> env), got {wrapper_class!r}")
    classes = {None: gym.vector.SyncVectorEnv, "DummyVecEnv": gym.vector.SyncVectorEnv,
               "SubprocVecEnv": gym.vector.AsyncVectorEnv}
    name = vec_env_cls if vec_env_cls is None else getattr(vec_env_cls, "__name__", None)
    if vec_env_cls in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        cls = vec_env_cls
    elif name in classes:
        cls = classes[name]
    else:
        raise ValueError(f"vec_env_cls must be gymnasium.vector.SyncVectorEnv or AsyncVectorEnv "
                         f"(or SB3's DummyVecEnv / SubprocVecEnv, which mean them), got "
                         f"{vec_env_cls!r}")
    env_kwargs, wrapper_kwargs = dict(env_kwargs or {}), dict(wrapper_kwargs or {})

    wrappers = [gym.wrappers.RecordEpisodeStatistics]
    if wrapper_class is not None:
        wrappers.append(lambda env: wrapper_class(env, **wrapper_kwargs))
    if isinstance(env_id, str):                 # gymnasium.make_vec: the vector env has a spec
        mode = "async" if cls is gym.vector.AsyncVectorEnv else "sync"
        vec_env = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode,
                               vector_kwargs=vec_env_kwargs, wrappers=wrappers, **env_kwargs)
    else:
        def make_env():
            env = env_id(**env_kwargs)
            for wrap in wrappers:
                env = wrap(env)
            return env
        vec_env = cls([make_env for _ in range(n_envs)], **(vec_env_kwargs or {}))
    if seed is not None:
        vec_env.reset(seed=seed + start_index)      # sub-env i: seed + start_index + i
        vec_env.action_space.seed(seed + start_index)
    return vec_env


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

def evaluate_policy(model, env, n_eval_episodes=10, deterministic=True, render=False,
                    callback=None, reward_threshold=None, return_episode_rewards=False,
                    warn=True):
    """Run ``model.predict`` for ``n_eval_episodes`` episodes on ``env`` (SB3's signature).

    env : a gymnasium Env, or a gymnasium vector env (the episodes are divided among its
        sub-envs as evenly as possible, as SB3 does, so that short episodes are not favoured).
    callback : f(locals, globals) after every counted step (locals hold "reward", "done",
        "info", "i", ...).
    reward_threshold : AssertionError if the mean return is not above it.
    Returns (mean, std) of the returns, or (returns, lengths) as two lists with
    ``return_episode_rewards``.  A return is the sum of the rewards the env gives (SB3 prefers
    its Monitor's; with gymnasium's RecordEpisodeStatistics outermost the two agree).  ``warn``
    is accepted for SB3's signature: there is no Monitor to warn about.
    """
    n_eval_episodes = check_int("n_eval_episodes", n_eval_episodes, 1)
    deterministic = check_bool("deterministic", deterministic)
    render = check_bool("render", render)
    return_episode_rewards = check_bool("return_episode_rewards", return_episode_rewards)
    check_bool("warn", warn)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function (locals, globals) or None, got "
                        f"{callback!r}")
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"model must have a predict(obs, state, episode_start, deterministic) "
                        f"method, got {model!r}")
    env = check_eval_env("env", env)
    if isinstance(env, gym.vector.VectorEnv):
        returns, lengths = _evaluate_vector(model, env, n_eval_episodes, deterministic, render,
                                            callback)
    else:
        returns, lengths = _evaluate_single(model, env, n_eval_episodes, deterministic, render,
                                            callback)
    mean_reward, std_reward = float(np.mean(returns)), float(np.std(returns))
    if reward_threshold is not None:
        assert mean_reward > reward_threshold, (f"Mean reward below threshold: "
                                                f"{mean_reward:.2f} < {reward_threshold:.2f}")
    if return_episode_rewards:
        return returns, lengths
    return mean_reward, std_reward


def _evaluate_single(model, env, n_eval_episodes, deterministic, render, callback):
    episode_rewards, episode_lengths = [], []
    observations, _ = env.reset()
    states, episode_starts = None, np.ones(1, dtype=bool)
    current_reward, current_length, i = 0.0, 0, 0
    while len(episode_rewards) < n_eval_episodes:
        actions, states = model.predict(observations, state=states,
                                        episode_start=episode_starts,
                                        deterministic=deterministic)
        new_observations, reward, terminated, truncated, info = env.step(actions)
        current_reward += float(reward)
        current_length += 1
        done = bool(terminated or truncated)
        episode_starts[0] = done
        if callback is not None:
            callback(locals(), globals())
        if done:
            episode_rewards.append(current_reward)
            episode_lengths.append(current_length)
            current_reward, current_length = 0.0, 0
            new_observations, _ = env.reset()
        observations = new_observations
        if render:
            env.render()
    return episode_rewards, episode_lengths


def _evaluate_vector(model, env, n_eval_episodes, deterministic, render, callback):
    n_envs = env.num_envs
    mode = _autoreset_mode(env)
    episode_rewards, episode_lengths = [], []
    episode_counts = np.zeros(n_envs, dtype=int)
    episode_count_targets = np.array([(n_eval_episodes + i) // n_envs for i in range(n_envs)])
    current_rewards, current_lengths = np.zeros(n_envs), np.zeros(n_envs, dtype=int)
    resetting = np.zeros(n_envs, dtype=bool)     # NEXT_STEP: this step only resets sub-env i
    observations, _ = env.reset()
    states, episode_starts = None, np.ones(n_envs, dtype=bool)
    while (episode_counts < episode_count_targets).any():
        actions, states = model.predict(observations, state=states,
                                        episode_start=episode_starts,
                                        deterministic=deterministic)
        new_observations, rewards, terminated, truncated, infos = env.step(actions)
        dones = np.logical_or(terminated, truncated)
        for i in range(n_envs):
            if resetting[i]:
                resetting[i] = False
                continue
            current_rewards[i] += rewards[i]
            current_lengths[i] += 1
            if episode_counts[i] < episode_count_targets[i]:
                reward, done = float(rewards[i]), bool(dones[i])
                info = _sub_info(infos, i)
                episode_starts[i] = done
                if callback is not None:
                    callback(locals(), globals())
                if done:
                    episode_rewards.append(float(current_rewards[i]))
                    episode_lengths.append(int(current_lengths[i]))
                    episode_counts[i] += 1
            if dones[i]:
                current_rewards[i], current_lengths[i] = 0.0, 0
                resetting[i] = mode == gym.vector.AutoresetMode.NEXT_STEP
        if mode == gym.vector.AutoresetMode.DISABLED and dones.any():
            new_observations, _ = env.reset(options={"reset_mask": dones})
        observations = new_observations
        if render:
            env.render()
    return episode_rewards, episode_lengths


def _sub_info(infos, i):
    """Sub-env i's info dict from a gymnasium vector env's infos (arrays with "_key" masks)."""
    out = {}
    for k, v in infos.items():
        mask = infos.get("_" + k)
        if k.startswith("_") or (mask is not None and not mask[i]):
            continue
        out[k] = _sub_info(v, i) if isinstance(v, dict) else v[i]
    return out


# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------

def _excluded(exclude):
    """SB3's ``exclude`` argument (None, a format name, or a tuple of them) as a tuple."""
    return () if exclude is None else (exclude,) if isinstance(exclude, str) else tuple(exclude)


class Logger:
    """SB3's logger interface as callbacks use it: ``record(key, value)``,
    ``record_mean(key, value)``, ``dump(step)`` (prints the table when the model is verbose,
    then forgets the values), ``name_to_value``.

    ``dump`` also writes the recorded numbers (but those excluded from "tensorboard") into the
    model's TensorBoard files when it has them (``tensorboard_log``; numddpg.runlog), as SB3's
    logger does.
    """

    def __init__(self, verbose=0, native=None):
        self.verbose = verbose
        self.native = native          # the numddpg model whose run log takes the values
        self.name_to_value, self.name_to_count, self.name_to_excluded = {}, {}, {}

    def record(self, key, value, exclude=None):
        self.name_to_value[key] = value
        self.name_to_excluded[key] = exclude

    def record_mean(self, key, value, exclude=None):
        n = self.name_to_count.get(key, 0)
        old = self.name_to_value.get(key, 0.0)
        self.name_to_value[key] = old * n / (n + 1) + value / (n + 1)
        self.name_to_count[key] = n + 1
        self.name_to_excluded[key] = exclude

    def dump(self, step=0):
        runlog = getattr(self.native, "runlog", None)
        if runlog is not None:
            runlog.add_scalars({k: v for k, v in self.name_to_value.items()
                                if "tensorboard" not in _excluded(self.name_to_excluded.get(k))},
                               step)
        if self.verbose >= 1 and self.name_to_value:
            rows = [(k, f"{v:.3g}" if isinstance(v, float) else str(v))
                    for k, v in sorted(self.name_to_value.items())]
            w = max(len(k) for k, _ in rows), max(len(v) for _, v in rows)
            line = "-" * (w[0] + w[1] + 7)
            print("\n".join([line, *(f"| {k:<{w[0]}} | {v:<{w[1]}} |" for k, v in rows), line]))
        self.name_to_value.clear()
        self.name_to_count.clear()
        self.name_to_excluded.clear()

    def get_dir(self):
        return None


# ---------------------------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------------------------

TrainFreq = collections.namedtuple("TrainFreq", "frequency unit")


def _train_freq(train_freq):
    """SB3's train_freq (n, or (n, "step")) as a TrainFreq; episodes are refused."""
    if isinstance(train_freq, (tuple, list)) and len(train_freq) == 2:
        n, unit = train_freq
    else:
        n, unit = train_freq, "step"
    n = check_int("train_freq", n, 1)
    if unit == "episode":
        raise ValueError(f"train_freq={train_freq!r}: numddpg trains every n env steps; a "
                         "frequency in episodes is not supported. Use train_freq=n or "
                         "(n, 'step')")
    if unit != "step":
        raise ValueError(f"train_freq={train_freq!r}: the unit must be 'step' (numddpg has no "
                         "'episode' frequency)")
    return TrainFreq(n, "step")


def _is_named(obj, name):
    """``obj`` is the class (or an instance of the class) called ``name``: SB3's policy_kwargs
    name torch classes, which numddpg never imports."""
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(cls, "__name__", None) == name


def _policy_sizes(policy_kwargs, n_critics):
    """(hidden_sizes, qf_hidden_sizes) from SB3's policy_kwargs, refusing what numddpg's MLPs
    cannot be."""
    if policy_kwargs is None:
        policy_kwargs = {}
    if not isinstance(policy_kwargs, dict):
        raise TypeError(f"policy_kwargs must be a dict or None, got {policy_kwargs!r}")
    known = {"net_arch", "activation_fn", "n_critics", "optimizer_class", "optimizer_kwargs",
             "features_extractor_class", "features_extractor_kwargs", "normalize_images",
             "share_features_extractor"}
    unknown = sorted(set(policy_kwargs) - known)
    if unknown:
        raise TypeError(f"policy_kwargs has keys numddpg does not know: {unknown}; known: "
                        f"{sorted(known)}")
    kw = policy_kwargs
    if "activation_fn" in kw and not _is_named(kw["activation_fn"], "ReLU"):
        raise ValueError(f"policy_kwargs['activation_fn']={kw['activation_fn']!r}: numddpg's "
                         "hidden layers are ReLU (torch.nn.ReLU); others are not supported")
    if kw.get("n_critics", n_critics) != n_critics:
        raise ValueError(f"policy_kwargs['n_critics']={kw['n_critics']!r}: this algorithm has "
                         f"{n_critics} critic(s) (DDPG 1, TD3 2)")
    if "optimizer_class" in kw and not _is_named(kw["optimizer_class"], "Adam"):
        raise ValueError(f"policy_kwargs['optimizer_class']={kw['optimizer_class']!r}: numddpg "
                         "uses Adam (torch.optim.Adam's formula) only")
    for key in ("optimizer_kwargs", "features_extractor_kwargs"):
        if kw.get(key):
            raise ValueError(f"policy_kwargs[{key!r}]={kw[key]!r} is not supported (Adam's betas "
                             "0.9, 0.999 and eps 1e-8 are fixed; there is no feature extractor)")
    if "features_extractor_class" in kw and not _is_named(kw["features_extractor_class"],
                                                          "FlattenExtractor"):
        raise ValueError(f"policy_kwargs['features_extractor_class']="
                         f"{kw['features_extractor_class']!r}: numddpg's MLPs read the flat "
                         "observation (SB3's FlattenExtractor) only")
    for key in ("normalize_images", "share_features_extractor"):
        if key in kw:        # no images, no extractor parameters: either value is the same
            check_bool(f"policy_kwargs[{key!r}]", kw[key])
    arch = kw.get("net_arch", [400, 300])            # SB3's TD3Policy default for MLPs
    if isinstance(arch, dict):
        if set(arch) != {"pi", "qf"}:
            raise ValueError(f"policy_kwargs['net_arch'] as a dict must have exactly the keys "
                             f"'pi' and 'qf', got {arch!r}")
        pi = check_widths("policy_kwargs['net_arch']['pi']", arch["pi"])
        qf = check_widths("policy_kwargs['net_arch']['qf']", arch["qf"])
        return pi, (None if qf == pi else qf)
    if not isinstance(arch, (list, tuple)):
        raise TypeError(f"policy_kwargs['net_arch'] must be a list of widths or dict(pi=[...], "
                        f"qf=[...]), got {arch!r}")
    return check_widths("policy_kwargs['net_arch']", arch), None


def _check_device(device):
    if str(device) not in ("auto", "cpu"):
        raise ValueError(f"device={device!r}: numddpg runs on the CPU only (NumPy/Numba "
                         "kernels); use device='cpu' or 'auto'")


class OffPolicySB3:
    """SB3's interface over a native numddpg model (``native``, which does the work)."""

    native_class = None          # numddpg.algorithms.DDPG / TD3
    n_critics = None
    default_tb_log_name = None

    # -- construction ---------------------------------------------------------------------
    def _setup(self, args):
        """Check SB3's arguments ``args``, map them and build the native model."""
        if args.pop("_init_setup_model") is not True:
            raise ValueError("_init_setup_model=False is not supported: numddpg builds its "
                             "networks when the model is made")
        policy = args["policy"]
        if not (policy == "MlpPolicy" or _is_named(policy, "MlpPolicy")):
            raise ValueError(f"policy={policy!r}: numddpg has only 'MlpPolicy' (MLP actor and "
                             "critics on a flat Box observation)")
        _check_device(args["device"])
        if args["replay_buffer_class"] is not None:
            raise ValueError(f"replay_buffer_class={args['replay_buffer_class']!r}: numddpg has "
                             "its own uniform replay buffer only; pass None")
        if args["replay_buffer_kwargs"]:
            raise ValueError(f"replay_buffer_kwargs={args['replay_buffer_kwargs']!r} is not "
                             "supported; pass None")
        if check_bool("optimize_memory_usage", args["optimize_memory_usage"]):
            raise ValueError("optimize_memory_usage=True is not supported: numddpg's buffer "
                             "stores s' beside s")
        if check_int("n_steps", args["n_steps"], 1) != 1:
            raise ValueError(f"n_steps={args['n_steps']!r}: numddpg computes one-step targets "
                             "only (n_steps=1)")
        lr = args["learning_rate"]
        if callable(lr):
            raise ValueError(f"learning_rate={lr!r}: learning-rate schedules are not supported; "
                             "pass a number")
        # SB3's argument, checked under its own name by the spec of the numddpg
        # hyperparameter it becomes (numddpg.hyperparameters, the one table)
        specs = self.native_class.SPECS

        def checked(sb3_name, name):
            return check_hyperparameter(sb3_name, args[sb3_name], specs[name])

        lr = check_hyperparameter("learning_rate", lr, specs["pi_lr"])
        tau = checked("tau", "polyak")                    # both lie in [0, 1]
        train_freq = _train_freq(args["train_freq"])
        gradient_steps = check_int("gradient_steps", args["gradient_steps"], -1)
        if gradient_steps == 0:
            raise ValueError("gradient_steps=0: numddpg trains at every training round; to "
                             "collect without training, set learning_starts >= the steps you "
                             "collect")
        learning_starts = checked("learning_starts", "start_steps")
        buffer_size = checked("buffer_size", "replay_size")
        batch_size = checked("batch_size", "batch_size")
        if batch_size > buffer_size:
            raise ValueError(f"batch_size ({batch_size}) must not exceed buffer_size "
                             f"({buffer_size}): a minibatch is drawn from the buffer's rows")
        gamma = checked("gamma", "gamma")
        verbose = check_int("verbose", args["verbose"], 0, 2)
        seed = checked("seed", "seed")
        tb = args["tensorboard_log"]                # (checked by the native model)
        hidden, qf_hidden = _policy_sizes(args["policy_kwargs"], self.n_critics)
        env = _check_env("env", args["env"])
        n_envs = env.num_envs if isinstance(env, gym.vector.VectorEnv) else 1
        stats_window = check_int("stats_window_size", args.get("stats_window_size", 100), 1)

        hp = {"pi_lr": lr, "q_lr": lr, "replay_size": buffer_size,
              "start_steps": learning_starts, "update_after": learning_starts + 1,
              "batch_size": batch_size, "polyak": 1.0 - tau, "gamma": gamma,
              # SB3 counts train_freq in steps of the (vector) env, numddpg in transitions
              "update_every": train_freq.frequency * n_envs,
              "gradient_steps": None if gradient_steps == -1 else gradient_steps,
              "hidden_sizes": hidden, "qf_hidden_sizes": qf_hidden,
              "num_test_episodes": 0, "max_ep_len": NO_EPISODE_CAP}
        if seed is not None:
            hp["seed"] = seed
        if self.native_class.algo == "td3":
            hp.update(policy_delay=checked("policy_delay", "policy_delay"),
                      target_noise=checked("target_policy_noise", "target_noise"),
                      noise_clip=checked("target_noise_clip", "noise_clip"))
        action_noise = args["action_noise"]
        hp.update(_noise_hyperparameters(action_noise) or {"noise": "none"})
        native = self.native_class(env, preset="none", log=False, test_env=_test_env(env),
                                   tensorboard_log=tb, **hp)
        noise_process = _noise_process(action_noise, native.act_dim, native.hyperparameters)
        self._attach(native, noise_process, action_noise, verbose=verbose, tensorboard_log=tb,
                     stats_window_size=stats_window, learning_rate=lr, tau=tau,
                     policy_kwargs=args["policy_kwargs"], seed=seed, train_freq=train_freq,
                     gradient_steps=gradient_steps)

    def _attach(self, native, noise_process, action_noise, verbose, tensorboard_log,
                stats_window_size, learning_rate, tau, policy_kwargs, seed, train_freq,
                gradient_steps):
        self.native = native
        if noise_process is not None:
            native.noise_process = noise_process
        self.action_noise = action_noise
        self.verbose = verbose
        self.tensorboard_log = tensorboard_log     # the native model writes there
        self.stats_window_size = stats_window_size
        self.ep_info_buffer = collections.deque(maxlen=stats_window_size)
        self.ep_success_buffer = collections.deque(maxlen=stats_window_size)
        self._vec_env = None                       # get_env()'s vector env around a plain env
        self._episode_num = 0
        self._new_episode_stats()
        self._timesteps_offset = native.t          # num_timesteps counts from here
        self._total_timesteps = 0
        self.logger = Logger(verbose, native)
        self.learning_rate = learning_rate
        self.tau = tau
        self.policy_kwargs = {} if policy_kwargs is None else dict(policy_kwargs)
        self.seed = seed
        self.device = "cpu"
        self.train_freq = train_freq
        self.gradient_steps = gradient_steps
        self.n_envs = native.n_envs or 1

    def _new_episode_stats(self):
        """Per env: return and length of the episode so far, and whether its next step is a
        vector env's autoreset (NEXT_STEP mode: not a step of any episode)."""
        n = self.native.n_envs or 1
        self._episode_ret, self._episode_len = np.zeros(n), np.zeros(n, np.int64)
        self._resetting = np.zeros(n, bool)
        self._next_step_reset = (bool(self.native.n_envs) and _autoreset_mode(self.native.env)
                                 == gym.vector.AutoresetMode.NEXT_STEP)

    # -- SB3's attributes, read from the native model ----------------------------------------
    @property
    def num_timesteps(self):
        """Env steps taken (since the last learn(reset_num_timesteps=True))."""
        return self.native.t - self._timesteps_offset

    @property
    def policy(self):
        """The deterministic actor (numddpg.algorithms.Policy; callable on observations)."""
        return self.native.policy

    @property
    def replay_buffer(self):
        """numddpg's ReplayBuffer (obs, act, rew, obs2, done arrays; size, ptr, max_size)."""
        return self.native.buffer

    @property
    def observation_space(self):
        """One env's observation space (of a vector env: its single_observation_space)."""
        env = self.native.env
        return env.single_observation_space if self.native.n_envs else env.observation_space

    @property
    def action_space(self):
        """One env's action space (of a vector env: its single_action_space)."""
        env = self.native.env
        return env.single_action_space if self.native.n_envs else env.action_space

    @property
    def env(self):
        return self.get_env()

    buffer_size = property(lambda self: self.native.replay_size)
    learning_starts = property(lambda self: self.native.start_steps)
    batch_size = property(lambda self: self.native.batch_size)
    gamma = property(lambda self: self.native.gamma)

    def get_env(self):
        """The training env as a gymnasium vector env: the one training steps (for a plain env,
        a SyncVectorEnv of one around that same instance)."""
        native = self.native
        if native.n_envs:
            return native.env
        if self._vec_env is None or self._vec_env.envs[0] is not native.env:
            env = native.env
            self._vec_env = gym.vector.SyncVectorEnv([lambda: env])
        return self._vec_env

    def set_env(self, env, force_reset=True):
        """Train on ``env`` from now on: the same spaces, and a vector env of as many envs if
        the model was made on a vector env (else a plain env).  The next learn() starts new
        episodes (``force_reset`` is accepted: a new env always starts afresh)."""
        check_bool("force_reset", force_reset)
        env = _check_env("env", env)
        if isinstance(env, str):
            env = gym.make(env, disable_env_checker=True)
        native = self.native
        n = env.num_envs if isinstance(env, gym.vector.VectorEnv) else 0
        if n != native.n_envs:
            raise ValueError(f"set_env: the model was made on {native.n_envs or 'a plain'} "
                             f"{'envs' if native.n_envs else 'env'}, env is "
                             f"{n or 'a plain'} {'envs' if n else 'env'}; they must agree")
        if n and _autoreset_mode(env) != _autoreset_mode(native.env):
            raise ValueError(f"set_env: env's autoreset mode {_autoreset_mode(env)} differs from "
                             f"the model's env's {_autoreset_mode(native.env)}")
        dims = check_spaces(env)
        dtype = (env.single_action_space if n else env.action_space).dtype
        old = (native.env.single_action_space if n else native.env.action_space).dtype
        if (dims[:2] != (native.obs_dim, native.act_dim)
                or not np.array_equal(dims[2], native.act_low)
                or not np.array_equal(dims[3], native.act_high) or dtype != old):
            raise EnvError(f"set_env: {_env_id(env)} has obs/act dims {dims[:2]}, bounds "
                           f"{dims[2]}..{dims[3]}, action dtype {dtype}; the model's are "
                           f"{(native.obs_dim, native.act_dim)}, {native.act_low}.."
                           f"{native.act_high}, {old}")
        native.set_env(env)        # the next learn() starts new episodes on it
        self._vec_env = None
        self._new_episode_stats()

    def get_vec_normalize_env(self):
        """None: numddpg has no VecNormalize."""
        return None

    # -- training -----------------------------------------------------------------------------
    def learn(self, total_timesteps, callback=None, log_interval=4, tb_log_name=None,
              reset_num_timesteps=True, progress_bar=False):
        """Train for ``total_timesteps`` more env steps on numddpg's loop (SB3's signature).

        callback : a callback, a list of them (CallbackList), a function (locals, globals) ->
            bool, or None.
        log_interval : with verbose >= 1, print the rollout statistics every this many
            episodes.
        reset_num_timesteps : True: ``num_timesteps`` counts from 0 again (the buffer, the
            networks and the episode in progress carry on).
        Returns self.
        """
        total_timesteps = check_int("total_timesteps", total_timesteps, 1)
        log_interval = check_int("log_interval", log_interval, 1)
        tb_log_name = self.default_tb_log_name if tb_log_name is None else tb_log_name
        _runlog.check_tensorboard_args(None, tb_log_name)
        reset_num_timesteps = check_bool("reset_num_timesteps", reset_num_timesteps)
        progress_bar = check_bool("progress_bar", progress_bar)
        callback = convert_callback(callback)
        if reset_num_timesteps:
            self._timesteps_offset = self.native.t
            self._episode_num = 0
            self.ep_info_buffer.clear()
            self.ep_success_buffer.clear()
        self._total_timesteps = self.num_timesteps + total_timesteps
        if callback is not None:
            callback.init_callback(self)
        bridge = _Bridge(self, callback, log_interval,
                         dict(total_timesteps=self._total_timesteps, callback=callback,
                              log_interval=log_interval, tb_log_name=tb_log_name,
                              reset_num_timesteps=reset_num_timesteps,
                              progress_bar=progress_bar))
        self.native.tb_log_name = tb_log_name      # this learn()'s TensorBoard folder name
        self.native.log_interval = log_interval    # episodes between its rollout dumps
        self.native.learn(total_timesteps, progress_bar=progress_bar, callback=bridge)
        return self

    def _dump_logs(self, start_time, start_steps):
        elapsed = max(time.perf_counter() - start_time, 1e-9)
        if self.ep_info_buffer:
            self.logger.record("rollout/ep_rew_mean",
                               float(np.mean([e["r"] for e in self.ep_info_buffer])))
            self.logger.record("rollout/ep_len_mean",
                               float(np.mean([e["l"] for e in self.ep_info_buffer])))
        self.logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        self.logger.record("time/fps", int((self.num_timesteps - start_steps) / elapsed),
                           exclude="tensorboard")
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)

    # -- acting -------------------------------------------------------------------------------
    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """(action, None) for one observation (obs_dim,) or a batch (n, obs_dim).  The policy
        is deterministic whatever ``deterministic`` says (as SB3's DDPG/TD3: exploration noise
        belongs to training); None stands for SB3's recurrent state."""
        if isinstance(observation, dict):
            raise ValueError("Dict observations are not supported: numddpg's MLPs take one flat "
                             "Box (wrap the env with gymnasium.wrappers.FlattenObservation)")
        if (isinstance(observation, tuple) and len(observation) == 2
                and isinstance(observation[1], dict)):
            raise ValueError("predict got an (obs, info) pair: gymnasium's reset() returns two "
                             "values (SB3's VecEnv returned obs alone); pass the observation: "
                             "obs, info = env.reset()")
        check_bool("deterministic", deterministic)
        return self.native.predict(observation)[0], None

    # -- files --------------------------------------------------------------------------------
    def save(self, path, exclude=None, include=None):
        """The whole model (networks, optimizers, generators, counters and the replay buffer,
        as numddpg's ``save``) in numddpg's safe format at ``path`` (".npz" added when it has
        no suffix).  ``exclude``/``include`` are not supported (everything is saved)."""
        if exclude is not None or include is not None:
            raise ValueError(f"save(exclude={exclude!r}, include={include!r}): numddpg saves the "
                             "whole model; pass neither")
        path = _file_path("path", path)
        recorded = {k: self.native.hyperparameters[k] for k in NOISE_HYPERPARAMETERS}
        native = _noise_hyperparameters(self.action_noise)
        if native is None or native != {k: recorded[k] for k in native}:
            warnings.warn(f"action_noise {self.action_noise!r} is not what the file records "
                          f"(numddpg's noise hyperparameters {recorded}, which hold mean 0 and "
                          "one sigma for all dimensions): pass it again to "
                          "load(path, action_noise=...)", UserWarning, stacklevel=2)
        self.native.save(path)

    @classmethod
    def load(cls, path, env=None, device="auto", custom_objects=None, print_system_info=False,
             force_reset=True, **kwargs):
        """The model ``save`` wrote at ``path`` (or ``path`` + ".npz").

        env : the env to continue on (default: the saved env, rebuilt from its record); its
            spaces must be the saved ones.  kwargs: ``verbose``, ``tensorboard_log``,
            ``action_noise`` replace the saved ones; others raise (numddpg's files hold
            hyperparameters, not Python objects to patch).
        """
        _check_device(device)
        if custom_objects:
            raise ValueError(f"custom_objects={custom_objects!r}: numddpg's files hold no Python "
                             "objects (never pickles), so there is nothing to replace")
        if check_bool("print_system_info", print_system_info):
            import numba
            from . import __version__
            print(f"numddpg {__version__}, Python {platform.python_version()}, numpy "
                  f"{np.__version__}, numba {numba.__version__}, gymnasium {gym.__version__}, "
                  f"{platform.platform()}")
        check_bool("force_reset", force_reset)
        allowed = {"verbose", "tensorboard_log", "action_noise"}
        if set(kwargs) - allowed:
            raise ValueError(f"load() cannot change {sorted(set(kwargs) - allowed)}: they are "
                             "saved hyperparameters of the model; only "
                             f"{sorted(allowed)} may be given")
        path = _file_path("path", path)
        if not os.path.exists(path) and os.path.exists(path + EXTENSION):
            path += EXTENSION
        env = None if env is None else _check_env("env", env)
        native = cls.native_class.load(
            path, env=env, test_env=_test_env(env),
            tensorboard_log=kwargs.get("tensorboard_log"))
        hp = native.hyperparameters
        if "action_noise" in kwargs:
            action_noise = kwargs["action_noise"]
            noise_process = _noise_process(action_noise, native.act_dim, hp)
        else:
            action_noise = _noise_from_hyperparameters(hp, native.act_dim)
            noise_process = action_noise
            if isinstance(action_noise, OrnsteinUhlenbeckActionNoise):
                action_noise.x[...] = native.noise_process.x     # the saved OU state
        arch = (list(hp["hidden_sizes"]) if hp["qf_hidden_sizes"] is None else
                {"pi": list(hp["hidden_sizes"]), "qf": list(hp["qf_hidden_sizes"])})
        model = cls.__new__(cls)
        model._attach(native, noise_process, action_noise,
                      verbose=check_int("verbose", kwargs.get("verbose", 0), 0, 2),
                      tensorboard_log=native.tensorboard_log, stats_window_size=100,
                      learning_rate=hp["pi_lr"], tau=float(f"{1.0 - hp['polyak']:.15g}"),
                      policy_kwargs={"net_arch": arch}, seed=hp["seed"],
                      train_freq=TrainFreq(hp["update_every"] // (native.n_envs or 1), "step"),
                      gradient_steps=-1 if hp["gradient_steps"] is None else hp["gradient_steps"])
        model._timesteps_offset = 0
        return model

    def save_replay_buffer(self, path):
        """Save the replay buffer (filled rows and sampler state) in numddpg's safe format at
        ``path`` (".npz" added when it has no suffix).  The file is a whole model checkpoint
        (as ``save`` writes, the buffer included): ``load_replay_buffer`` takes the buffer from
        it, ``load`` the model."""
        self.native.save(_file_path("path", path), include_buffer=True)

    def load_replay_buffer(self, path, truncate_last_traj=True):
        """Replace the replay buffer by the one saved at ``path`` (by ``save_replay_buffer``, or
        any numddpg model file saved with its buffer).  Its observation and action dims, its
        capacity (buffer_size) and dtype must be this model's, else CheckpointError; the file
        is fully checked before anything is replaced.  ``truncate_last_traj`` is accepted for
        SB3's signature: numddpg stores each transition's own s', so no trajectory needs
        truncating."""
        check_bool("truncate_last_traj", truncate_last_traj)
        path = _file_path("path", path)
        if not os.path.exists(path) and os.path.exists(path + EXTENSION):
            path += EXTENSION
        meta, arrays = _algorithms.read_run_checkpoint(path)
        buffer, record, spaces = self.native.buffer, meta["buffer"], meta["spaces"]
        theirs = (spaces["obs_dim"], spaces["act_dim"], record["max_size"], record["dtype"])
        ours = (buffer.obs_dim, buffer.act_dim, buffer.max_size, buffer.dtype.name)
        if theirs != ours:
            raise _checkpoint.CheckpointError(
                f"{path}: its replay buffer has (obs_dim, act_dim, buffer_size, dtype) = "
                f"{theirs}, this model's {ours}")
        if not record["saved"]:
            raise _checkpoint.CheckpointError(f"{path} was saved without its replay buffer "
                                              "(include_buffer=False): there is none to load")
        buffer.restore({k[len("buffer."):]: v for k, v in arrays.items()
                        if k.startswith("buffer.")}, record)

    def __repr__(self):
        return (f"{type(self).__name__}(env={self.native.env_id!r}, "
                f"num_timesteps={self.num_timesteps}, seed={self.native.seed})")


def _file_path(name, path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {path!r} "
                        f"({type(path).__name__}); numddpg writes files atomically by path")
    path = os.fspath(path)
    return path if Path(path).suffix else path + EXTENSION


def _noise_from_hyperparameters(hp, act_dim):
    """The SB3 noise equal to numddpg's noise hyperparameters (None for 'none')."""
    zeros = np.zeros(act_dim)
    if hp["noise"] == "gaussian":
        return NormalActionNoise(zeros, np.full(act_dim, hp["act_noise"]))
    if hp["noise"] == "ou":
        return OrnsteinUhlenbeckActionNoise(zeros, np.full(act_dim, hp["ou_sigma"]),
                                            theta=hp["ou_theta"], dt=hp["ou_dt"])
    return None


class _Bridge:
    """What the training loop calls (numddpg.algorithms' callback protocol), handed on to the
    SB3 callback with the SB3 model as locals["self"]; keeps SB3's episode statistics
    (``ep_info_buffer``, ``_episode_num``) and prints them every ``log_interval`` episodes when
    the model is verbose."""

    def __init__(self, model, callback, log_interval, learn_locals):
        self.model, self.callback, self.log_interval = model, callback, log_interval
        self.learn_locals = learn_locals
        self.start_time, self.start_steps = time.perf_counter(), model.num_timesteps

    def on_training_start(self, locals_, globals_):
        if self.callback is not None:
            self.callback.on_training_start(dict(self.learn_locals, self=self.model), globals_)

    def update_locals(self, locals_):
        model = self.model
        locals_["self"] = model
        infos = locals_["infos"]
        if isinstance(infos, dict):            # a vector env's: SB3 hands a list of dicts
            infos = locals_["infos"] = [_sub_info(infos, i) for i in range(model.n_envs)]
        if model.native.n_envs:
            self._episode_ends(locals_["rewards"], locals_["dones"], infos)
        else:
            ret, length = model._episode_ret, model._episode_len
            ret[0] += locals_["rewards"][0]
            length[0] += 1
            if locals_["dones"][0]:
                self._episode_end(0, infos[0])
        if self.callback is not None:
            self.callback.update_locals(locals_)

    def _episode_ends(self, rewards, dones, infos):
        """A vector env's step: n steps, but in NEXT_STEP mode an env's step after its episode
        ended is its reset (no step of any episode)."""
        model = self.model
        for i in range(model.n_envs):
            if model._resetting[i]:
                model._resetting[i] = False
                continue
            model._episode_ret[i] += rewards[i]
            model._episode_len[i] += 1
            if dones[i]:
                self._episode_end(i, infos[i])
                model._resetting[i] = model._next_step_reset

    def _episode_end(self, i, info):
        model = self.model
        model.ep_info_buffer.append({"r": round(float(model._episode_ret[i]), 6),
                                     "l": int(model._episode_len[i]),
                                     "t": round(time.perf_counter() - self.start_time, 6)})
        if info.get("is_success") is not None:
            model.ep_success_buffer.append(info["is_success"])
        model._episode_ret[i], model._episode_len[i] = 0.0, 0
        model._episode_num += 1
        if model.verbose >= 1 and model._episode_num % self.log_interval == 0:
            model._dump_logs(self.start_time, self.start_steps)

    def on_step(self):
        return self.callback.on_step() if self.callback is not None else True

    def on_rollout_start(self):
        if self.callback is not None:
            self.callback.on_rollout_start()

    def on_rollout_end(self):
        if self.callback is not None:
            self.callback.on_rollout_end()

    def on_training_end(self):
        if self.callback is not None:
            self.callback.on_training_end()


class TD3(OffPolicySB3):
    """SB3's TD3 (signature and defaults of stable_baselines3.TD3) on numddpg's TD3 loop.

    ``TD3("MlpPolicy", env, learning_rate=1e-3, buffer_size=1_000_000, learning_starts=100,
    batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, action_noise=None,
    ..., policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, ...,
    policy_kwargs=dict(net_arch=[400, 300]), verbose=0, seed=None, device="auto")``; see the
    module docstring for the mapping and docs/sb3.md for the table.
    """

    native_class = _algorithms.TD3
    n_critics = 2
    default_tb_log_name = "TD3"

    def __init__(self, policy, env, learning_rate=1e-3, buffer_size=1_000_000,
                 learning_starts=100, batch_size=256, tau=0.005, gamma=0.99, train_freq=1,
                 gradient_steps=1, action_noise=None, replay_buffer_class=None,
                 replay_buffer_kwargs=None, optimize_memory_usage=False, n_steps=1,
                 policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5,
                 stats_window_size=100, tensorboard_log=None, policy_kwargs=None, verbose=0,
                 seed=None, device="auto", _init_setup_model=True):
        args = dict(locals())
        del args["self"]
        self._setup(args)

    policy_delay = property(lambda self: self.native.policy_delay)
    target_policy_noise = property(lambda self: self.native.target_noise)
    target_noise_clip = property(lambda self: self.native.noise_clip)


class DDPG(OffPolicySB3):
    """SB3's DDPG (signature and defaults of stable_baselines3.DDPG) on numddpg's DDPG loop.

    ``DDPG("MlpPolicy", env, learning_rate=1e-3, buffer_size=1_000_000, learning_starts=100,
    batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, action_noise=None,
    ..., policy_kwargs=dict(net_arch=[400, 300]), verbose=0, seed=None, device="auto")``; see
    the module docstring for the mapping and docs/sb3.md for the table.
    """

    native_class = _algorithms.DDPG
    n_critics = 1
    default_tb_log_name = "DDPG"

    def __init__(self, policy, env, learning_rate=1e-3, buffer_size=1_000_000,
                 learning_starts=100, batch_size=256, tau=0.005, gamma=0.99, train_freq=1,
                 gradient_steps=1, action_noise=None, replay_buffer_class=None,
                 replay_buffer_kwargs=None, optimize_memory_usage=False, n_steps=1,
                 tensorboard_log=None, policy_kwargs=None, verbose=0, seed=None, device="auto",
                 _init_setup_model=True):
        args = dict(locals())
        del args["self"]
        self._setup(args)
