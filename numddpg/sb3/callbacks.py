"""Stable-Baselines3's callbacks, for ``numddpg.sb3`` (and for the native ``learn(callback=)``).

The protocol is SB3's, so a callback written for SB3 runs unchanged.  The training loop
(numddpg.algorithms) calls, on the object it is given:

    on_training_start(locals, globals)      once per learn() call
    update_locals(locals); on_step()        after every env step; on_step() returning False
                                            stops training (learn() returns as at a normal end)
    on_rollout_end() ... on_rollout_start() around every training round (burst of updates)
    on_training_end()                       at the end

``BaseCallback`` turns these into the hooks a subclass overrides (``_on_step``, ...) and keeps
``n_calls`` (on_step calls), ``num_timesteps`` (the model's, refreshed at every step),
``locals`` ("new_obs", "rewards", "dones", "infos", "actions" with an env axis of 1, and "self",
the model), ``model``, ``parent``, ``logger`` and ``training_env``.

Event callbacks run a child callback when something happens: ``EvalCallback`` evaluates the
policy every ``eval_freq`` steps and runs ``callback_on_new_best`` (e.g.
``StopTrainingOnRewardThreshold``) on a new best mean return and ``callback_after_eval`` (e.g.
``StopTrainingOnNoModelImprovement``) after every evaluation; ``EveryNTimesteps`` runs its child
every ``n_steps`` env steps.  ``StopTrainingOnMaxEpisodes`` stops after so many episodes;
``CheckpointCallback`` saves the model every ``save_freq`` steps in numddpg's safe format
(npz + JSON, never pickled).

Every argument is checked when the callback is made: a bad value raises naming it.
"""
import math
import os

import numpy as np

from ..checks import check_bool, check_int, check_real
from .evaluation import check_eval_env, evaluate_policy


def check_verbose(verbose):
    """SB3's ``verbose`` of a model or callback: a whole number >= 0 (0 quiet, 1 info, 2 and
    above debug, as SB3 takes any)."""
    return check_int("verbose", verbose, 0)


# SB3's callback protocol: what the model calls on a callback (SB3's BaseCallback has them all)
PROTOCOL = ("init_callback", "on_training_start", "on_rollout_start", "on_step",
            "on_rollout_end", "on_training_end", "update_locals")


def is_callback(obj):
    """Whether ``obj`` has SB3's callback protocol (a numddpg.sb3 or stable_baselines3
    BaseCallback, or any object with its methods)."""
    return all(callable(getattr(obj, m, None)) for m in PROTOCOL)


def _check_callback(name, callback, optional=True):
    if (callback is None and optional) or is_callback(callback):
        return callback
    raise TypeError(f"{name} must be a callback (SB3's BaseCallback methods: "
                    f"{', '.join(PROTOCOL)}){' or None' if optional else ''}, got {callback!r} "
                    f"({type(callback).__name__})")


def _check_path(name, path, optional=True):
    if (path is None and optional) or isinstance(path, (str, os.PathLike)):
        return path
    raise TypeError(f"{name} must be a folder path (str or os.PathLike)"
                    f"{' or None' if optional else ''}, got {path!r} ({type(path).__name__})")


class BaseCallback:
    """The base of every callback: subclass it and override ``_on_step`` (return False to stop
    training), and optionally ``_init_callback``, ``_on_training_start``, ``_on_rollout_start``,
    ``_on_rollout_end``, ``_on_training_end``.

    Attributes: ``model`` (the numddpg.sb3 model, set by ``init_callback``), ``n_calls``,
    ``num_timesteps``, ``locals``, ``globals``, ``parent`` (the event callback that runs this
    one, if any), ``verbose``; properties ``logger`` and ``training_env`` (the model's).
    """

    def __init__(self, verbose=0):
        self.n_calls = 0
        self.num_timesteps = 0
        self.verbose = check_verbose(verbose)
        self.locals = {}
        self.globals = {}
        self.parent = None
        self.model = None

    @property
    def training_env(self):
        """The model's training env (``model.get_env()``)."""
        return self.model.get_env()

    @property
    def logger(self):
        """The model's logger (``record(key, value)``, ``dump(step)``)."""
        return self.model.logger

    # -- what the model calls -----------------------------------------------------------------
    def init_callback(self, model):
        """Bind the callback to ``model`` (learn() does this before training starts)."""
        self.model = model
        self._init_callback()

    def on_training_start(self, locals_, globals_):
        self.locals = locals_
        self.globals = globals_
        self.num_timesteps = self.model.num_timesteps
        self._on_training_start()

    def on_rollout_start(self):
        self._on_rollout_start()

    def on_step(self):
        """After every env step (for a child of an event callback: at every event).  Returns
        False to stop training."""
        self.n_calls += 1
        self.num_timesteps = self.model.num_timesteps
        return self._on_step()

    def on_rollout_end(self):
        self._on_rollout_end()

    def on_training_end(self):
        self._on_training_end()

    def update_locals(self, locals_):
        """Take the loop's variables of the step just taken (and hand them to children)."""
        self.locals.update(locals_)
        self.update_child_locals(locals_)

    def update_child_locals(self, locals_):
        """Hand ``locals_`` on to child callbacks (none here)."""

    # -- what a subclass overrides -------------------------------------------------------------
    def _init_callback(self):
        pass

    def _on_training_start(self):
        pass

    def _on_rollout_start(self):
        pass

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        pass

    def _on_training_end(self):
        pass

    def __repr__(self):
        return f"{type(self).__name__}(n_calls={self.n_calls}, num_timesteps={self.num_timesteps})"


class EventCallback(BaseCallback):
    """A callback that runs a child ``callback`` (its ``on_step``) when an event happens
    (``_on_event``)."""

    def __init__(self, callback=None, verbose=0):
        super().__init__(verbose=verbose)
        self.callback = _check_callback("callback", callback)
        if self.callback is not None:
            self.callback.parent = self

    def init_callback(self, model):
        super().init_callback(model)
        if self.callback is not None:
            self.callback.init_callback(self.model)

    def _on_training_start(self):
        if self.callback is not None:
            self.callback.on_training_start(self.locals, self.globals)

    def _on_event(self):
        return self.callback.on_step() if self.callback is not None else True

    def update_child_locals(self, locals_):
        if self.callback is not None:
            self.callback.update_locals(locals_)


class CallbackList(BaseCallback):
    """Several callbacks run in order; training stops if any of them returns False (all of
    them still run at that step)."""

    def __init__(self, callbacks):
        super().__init__()
        if not isinstance(callbacks, list):
            raise TypeError(f"callbacks must be a list of callbacks, got {callbacks!r} "
                            f"({type(callbacks).__name__})")
        for i, c in enumerate(callbacks):
            _check_callback(f"callbacks[{i}]", c, optional=False)
        self.callbacks = callbacks

    def _init_callback(self):
        for callback in self.callbacks:
            callback.init_callback(self.model)
            callback.parent = self.parent

    def _on_training_start(self):
        for callback in self.callbacks:
            callback.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self):
        for callback in self.callbacks:
            callback.on_rollout_start()

    def _on_step(self):
        continue_training = True
        for callback in self.callbacks:
            continue_training = callback.on_step() and continue_training
        return continue_training

    def _on_rollout_end(self):
        for callback in self.callbacks:
            callback.on_rollout_end()

    def _on_training_end(self):
        for callback in self.callbacks:
            callback.on_training_end()

    def update_child_locals(self, locals_):
        for callback in self.callbacks:
            callback.update_locals(locals_)


class ConvertCallback(BaseCallback):
    """A function ``f(locals, globals) -> bool`` as a callback (SB3's old functional form)."""

    def __init__(self, callback, verbose=0):
        super().__init__(verbose)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable (locals, globals) -> bool, got "
                            f"{callback!r}")
        self.callback = callback

    def _on_step(self):
        return self.callback(self.locals, self.globals) if self.callback is not None else True


class CheckpointCallback(BaseCallback):
    """Save the model every ``save_freq`` steps to
    ``save_path/{name_prefix}_{num_timesteps}_steps.zip`` (SB3's name; numddpg's safe format, no
    pickles), and the replay buffer beside it
    (``{name_prefix}_replay_buffer_{num_timesteps}_steps.npz``; SB3's .pkl) with
    ``save_replay_buffer``.
    ``save_vecnormalize``: numddpg has no VecNormalize, so there is never one to save (as in
    SB3 for a model without it)."""

    def __init__(self, save_freq, save_path, name_prefix="rl_model", save_replay_buffer=False,
                 save_vecnormalize=False, verbose=0):
        super().__init__(verbose)
        self.save_freq = check_int("save_freq", save_freq, 1)
        self.save_path = _check_path("save_path", save_path, optional=False)
        if not isinstance(name_prefix, str) or not name_prefix or os.sep in name_prefix:
            raise ValueError(f"name_prefix must be a file name prefix without {os.sep!r}, got "
                             f"{name_prefix!r}")
        self.name_prefix = name_prefix
        self.save_replay_buffer = check_bool("save_replay_buffer", save_replay_buffer)
        self.save_vecnormalize = check_bool("save_vecnormalize", save_vecnormalize)

    def _init_callback(self):
        os.makedirs(self.save_path, exist_ok=True)

    def _checkpoint_path(self, checkpoint_type="", extension="zip"):
        return os.path.join(self.save_path, f"{self.name_prefix}_{checkpoint_type}"
                                            f"{self.num_timesteps}_steps.{extension}")

    def _on_step(self):
        if self.n_calls % self.save_freq == 0:
            path = self._checkpoint_path()
            self.model.save(path)
            if self.verbose >= 2:
                print(f"Saving model checkpoint to {path}")
            if self.save_replay_buffer:
                path = self._checkpoint_path("replay_buffer_", "npz")
                self.model.save_replay_buffer(path)
                if self.verbose >= 2:
                    print(f"Saving model replay buffer checkpoint to {path}")
        return True


class EvalCallback(EventCallback):
    """Evaluate the policy every ``eval_freq`` steps on ``eval_env`` (``n_eval_episodes``
    episodes, numddpg.sb3.evaluate_policy) and log ``eval/mean_reward``, ``eval/mean_ep_length``.

    eval_env : a gymnasium Env, or a gymnasium vector env (the episodes are divided among its
        sub-envs as SB3 does).
    callback_on_new_best : run when the mean return is a new best (``best_mean_reward``).
    callback_after_eval : run after every evaluation.
    log_path : folder for ``evaluations.npz`` (timesteps, results, ep_lengths), rewritten at
        every evaluation.
    best_model_save_path : folder for ``best_model.zip``, saved at every new best.
    Attributes ``best_mean_reward`` and ``last_mean_reward`` (-inf before the first evaluation).
    """

    def __init__(self, eval_env, callback_on_new_best=None, callback_after_eval=None,
                 n_eval_episodes=5, eval_freq=10000, log_path=None, best_model_save_path=None,
                 deterministic=True, render=False, verbose=1, warn=True):
        super().__init__(callback_after_eval, verbose=verbose)
        self.eval_env = check_eval_env("eval_env", eval_env)
        self.callback_on_new_best = _check_callback("callback_on_new_best", callback_on_new_best)
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.parent = self
        self.n_eval_episodes = check_int("n_eval_episodes", n_eval_episodes, 1)
        self.eval_freq = check_int("eval_freq", eval_freq, -2**62)   # <= 0: never (as SB3)
        self.deterministic = check_bool("deterministic", deterministic)
        self.render = check_bool("render", render)
        self.warn = check_bool("warn", warn)
        self.best_model_save_path = _check_path("best_model_save_path", best_model_save_path)
        log_path = _check_path("log_path", log_path)
        self.log_path = None if log_path is None else os.path.join(log_path, "evaluations")
        self.best_mean_reward = -math.inf
        self.last_mean_reward = -math.inf
        self.evaluations_results, self.evaluations_timesteps = [], []
        self.evaluations_length, self.evaluations_successes = [], []
        self._is_success_buffer = []

    def _init_callback(self):
        if self.best_model_save_path is not None:
            os.makedirs(self.best_model_save_path, exist_ok=True)
        if self.log_path is not None:
            os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.init_callback(self.model)

    def _log_success_callback(self, locals_, globals_):
        """Collect info["is_success"] at episode ends (goal-conditioned envs)."""
        if locals_["done"]:
            success = locals_["info"].get("is_success")
            if success is not None:
                self._is_success_buffer.append(success)

    def _on_step(self):
        continue_training = True
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self._is_success_buffer = []
            returns, lengths = evaluate_policy(
                self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes,
                render=self.render, deterministic=self.deterministic,
                return_episode_rewards=True, warn=self.warn, callback=self._log_success_callback)
            if self.log_path is not None:
                self.evaluations_timesteps.append(self.num_timesteps)
                self.evaluations_results.append(returns)
                self.evaluations_length.append(lengths)
                extra = {}
                if self._is_success_buffer:
                    self.evaluations_successes.append(self._is_success_buffer)
                    extra["successes"] = np.asarray(self.evaluations_successes, np.float64)
                np.savez(self.log_path, timesteps=np.asarray(self.evaluations_timesteps),
                         results=np.asarray(self.evaluations_results, np.float64),
                         ep_lengths=np.asarray(self.evaluations_length, np.int64), **extra)
            mean_reward, std_reward = float(np.mean(returns)), float(np.std(returns))
            mean_length, std_length = float(np.mean(lengths)), float(np.std(lengths))
            self.last_mean_reward = mean_reward
            if self.verbose >= 1:
                print(f"Eval num_timesteps={self.num_timesteps}, "
                      f"episode_reward={mean_reward:.2f} +/- {std_reward:.2f}")
                print(f"Episode length: {mean_length:.2f} +/- {std_length:.2f}")
            self.logger.record("eval/mean_reward", mean_reward)
            self.logger.record("eval/mean_ep_length", mean_length)
            if self._is_success_buffer:
                success_rate = float(np.mean(self._is_success_buffer))
                if self.verbose >= 1:
                    print(f"Success rate: {100 * success_rate:.2f}%")
                self.logger.record("eval/success_rate", success_rate)
            self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
            self.logger.dump(self.num_timesteps)
            if mean_reward > self.best_mean_reward:
                if self.verbose >= 1:
                    print("New best mean reward!")
                if self.best_model_save_path is not None:
                    self.model.save(os.path.join(self.best_model_save_path, "best_model"))
                self.best_mean_reward = mean_reward
                if self.callback_on_new_best is not None:
                    continue_training = self.callback_on_new_best.on_step()
            if self.callback is not None:
                continue_training = continue_training and self._on_event()
        return continue_training


class StopTrainingOnRewardThreshold(BaseCallback):
    """Stop once the parent EvalCallback's best mean return reaches ``reward_threshold``
    (use it as ``EvalCallback(callback_on_new_best=...)``)."""

    def __init__(self, reward_threshold, verbose=0):
        super().__init__(verbose=verbose)
        self.reward_threshold = check_real("reward_threshold", reward_threshold)

    def _on_step(self):
        if self.parent is None:
            raise RuntimeError("StopTrainingOnRewardThreshold must be used with an EvalCallback "
                               "(as its callback_on_new_best)")
        continue_training = bool(self.parent.best_mean_reward < self.reward_threshold)
        if self.verbose >= 1 and not continue_training:
            print(f"Stopping training because the mean reward {self.parent.best_mean_reward:.2f}"
                  f" is above the threshold {self.reward_threshold}")
        return continue_training


class StopTrainingOnNoModelImprovement(BaseCallback):
    """Stop when the parent EvalCallback has found no new best model for more than
    ``max_no_improvement_evals`` evaluations in a row, counting only after ``min_evals``
    evaluations (use it as ``EvalCallback(callback_after_eval=...)``)."""

    def __init__(self, max_no_improvement_evals, min_evals=0, verbose=0):
        super().__init__(verbose=verbose)
        self.max_no_improvement_evals = check_int("max_no_improvement_evals",
                                                  max_no_improvement_evals, 0)
        self.min_evals = check_int("min_evals", min_evals, 0)
        self.last_best_mean_reward = -math.inf
        self.no_improvement_evals = 0

    def _on_step(self):
        if self.parent is None:
            raise RuntimeError("StopTrainingOnNoModelImprovement must be used with an "
                               "EvalCallback (as its callback_after_eval)")
        continue_training = True
        if self.n_calls > self.min_evals:
            if self.parent.best_mean_reward > self.last_best_mean_reward:
                self.no_improvement_evals = 0
            else:
                self.no_improvement_evals += 1
                if self.no_improvement_evals > self.max_no_improvement_evals:
                    continue_training = False
        self.last_best_mean_reward = self.parent.best_mean_reward
        if self.verbose >= 1 and not continue_training:
            print("Stopping training because there was no new best model in the last "
                  f"{self.no_improvement_evals:d} evaluations")
        return continue_training


class StopTrainingOnMaxEpisodes(BaseCallback):
    """Stop after ``max_episodes`` training episodes per env (``max_episodes * num_envs`` in
    all on a vector env), counted from ``locals["dones"]``."""

    def __init__(self, max_episodes, verbose=0):
        super().__init__(verbose=verbose)
        self.max_episodes = check_int("max_episodes", max_episodes, 1)
        self._total_max_episodes = self.max_episodes
        self.n_episodes = 0

    def _init_callback(self):
        self._total_max_episodes = self.max_episodes * self.training_env.num_envs

    def _on_step(self):
        self.n_episodes += int(np.sum(self.locals["dones"]))
        continue_training = self.n_episodes < self._total_max_episodes
        if self.verbose >= 1 and not continue_training:
            print(f"Stopping training with a total of {self.num_timesteps} steps because the "
                  f"model reached max_episodes={self.max_episodes}, by playing for "
                  f"{self.n_episodes} episodes")
        return continue_training


class EveryNTimesteps(EventCallback):
    """Run ``callback`` whenever at least ``n_steps`` env steps have passed since it last ran."""

    def __init__(self, n_steps, callback):
        super().__init__(_check_callback("callback", callback, optional=False))
        self.n_steps = check_int("n_steps", n_steps, 1)
        self.last_time_trigger = 0

    def _on_step(self):
        if self.num_timesteps - self.last_time_trigger >= self.n_steps:
            self.last_time_trigger = self.num_timesteps
            return self._on_event()
        return True


def convert_callback(callback):
    """``callback`` as one callback: None and any object with SB3's callback protocol (SB3's
    own BaseCallback subclasses too) stay as they are, a list becomes a CallbackList, a
    function ``f(locals, globals) -> bool`` a ConvertCallback."""
    if callback is None or is_callback(callback):
        return callback
    if isinstance(callback, list):
        return CallbackList(callback)
    if callable(callback):
        return ConvertCallback(callback)
    raise TypeError(f"callback must be a callback (SB3's BaseCallback protocol), a list of "
                    f"them, a function (locals, "
                    f"globals) -> bool, or None; got {callback!r} ({type(callback).__name__})")

