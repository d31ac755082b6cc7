"""Stable-Baselines3's DDPG and TD3, on numddpg's training loop: switch by one import line.

    from numddpg.sb3 import DDPG, NormalActionNoise, EvalCallback   # was: stable_baselines3

``DDPG("MlpPolicy", env, ...)`` and ``TD3(...)`` take SB3's arguments with SB3's defaults, map
them onto numddpg's hyperparameters (docs/sb3.md has the whole table) and
build a native numddpg.DDPG / numddpg.TD3 (``model.native``), whose loop does the training:

    learning_rate            pi_lr = q_lr = learning_rate (a schedule: its value at
                             progress_remaining 1); a schedule sets both anew before each
                             training round, as SB3's train() (numddpg.sb3.schedules)
    buffer_size              replay_size
    learning_starts          start_steps = learning_starts (random actions before it) and
                             update_after = learning_starts + 1 (SB3 trains once
                             num_timesteps > learning_starts)
    tau                      polyak = 1 - tau
    train_freq n / (n, "step")   update_every = n * n_envs (SB3 counts steps of the vector
                             env, numddpg transitions)
    gradient_steps           gradient_steps (-1: as many as env steps, numddpg's None; 0:
                             never trains, update_after = NEVER)
    batch_size               batch_size (may exceed buffer_size: sampled with replacement)
    action_noise             noise (None: "none"; NormalActionNoise with mean 0 and one sigma:
                             "gaussian", act_noise = sigma; OrnsteinUhlenbeckActionNoise with
                             mean 0 and one sigma: "ou", ou_sigma, ou_theta, ou_dt)
    policy_kwargs net_arch   hidden_sizes (and qf_hidden_sizes for dict(pi=..., qf=...)); []
                             for none: linear networks
    policy_kwargs n_critics  n_critics (DDPG 1, TD3 2 by default)
    policy_kwargs optimizer_class (Adam, AdamW), optimizer_kwargs
                             weight_decay, decoupled_weight_decay, adam_beta1, adam_beta2,
                             adam_eps (numddpg.sb3.optimizers)
    policy_delay, target_policy_noise, target_noise_clip (TD3)
                             policy_delay, target_noise, noise_clip
    replay_buffer_class=HerReplayBuffer, replay_buffer_kwargs
                             her = goal_selection_strategy, her_k = n_sampled_goal
                             (numddpg.sb3.her)
    n_steps                  n_steps (n-step returns; model.replay_buffer is then SB3's
                             NStepReplayBuffer by name, numddpg.sb3.parts)

"MultiInputPolicy" reads a Dict observation (numddpg.sb3.spaces: its entries laid end to end;
images flattened, with a warning, where SB3 has a CNN).  What numddpg cannot do raises naming
the argument (a device other than the CPU, a CnnPolicy, train_freq in episodes, another replay
buffer class, an optimizer other than Adam or AdamW, nested Dict observations, ...); nothing
else is silently changed.  Envs are
gymnasium 1.x envs or vector envs (``make_vec_env`` builds the latter) or SB3 VecEnvs
(numddpg.sb3.envs); ``get_env()`` has SB3's VecEnv API.  The parts (policy, replay_buffer,
parameters) are NumPy objects under SB3's names (numddpg.sb3.parts), the logger SB3's
(numddpg.sb3.logger), and bridge.py makes the loop's calls SB3's.  Files are numddpg's safe
format (npz + JSON, never pickles): ``save("x")`` writes ``x.zip`` as SB3's does (an npz is a zip
archive of arrays), the native model's
checkpoint with SB3's attributes of plain data (numddpg.sb3.attributes); ``load`` takes SB3's
keyword arguments and custom_objects.  On SB3's VecNormalize the loop trains as SB3's
off-policy algorithms do (numddpg.sb3.vecnormalize).
"""
import collections
import os
import platform
import random
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

from ..checks import check_bool, check_int, check_widths
from ..engine.agents import agent_state
from ..engine.her import HerReplayBuffer as NativeHer
from ..engine.hyperparameters import check as check_hyperparameter
from ..files import checkpoint as _checkpoint
from ..files import runlog as _runlog
from ..kernels.jitcache import kernels_cached
from ..training import algorithms as _algorithms
from ..training.envs import ActionSpaceError, EnvError, check_spaces, env_id as _env_id
from ..training.runfile import make_saved_env
from ..training.runstate import (BufferMissingWarning, read_run_checkpoint,
                                 run_checkpoint_specs, saved_her)
from . import attributes as _attributes
from .bridge import Bridge
from .callbacks import CallbackList, check_verbose, convert_callback
from .envs import (NoEnv, check_env, native_test_env, no_env, training_env, user_env,
                   vec_env_view)
from .evaluation import autoreset_mode
from .her import (HerReplayBuffer, buffer_options, check_her_env, is_her_class,
                  saved_buffer_options)
from .logger import Logger, SB3Logging, check_tensorboard_log, configure_logger
from .noise import (NOISE_HYPERPARAMETERS, NormalActionNoise, OrnsteinUhlenbeckActionNoise,
                    native_noise, noise_hyperparameters, own_noise)
from .optimizers import optimizer_hyperparameters, optimizer_policy_kwargs
from .parameters import parameters, set_parameters
from .parts import CPU, ReplayBufferView, SavedPolicy, buffer_view, check_device
from .parts import Policy as PolicyParts
from .schedules import (FloatSchedule, learning_rate_from_record, learning_rate_record,
                        value_at)
from .spaces import Preprocessing, UnsupportedActionSpace, check_policy, observation_space_of
from .vecenv import is_vec_env, vec_normalize_of
from .vecnormalize import Normalization

# numddpg's loop caps episodes at max_ep_len; SB3 has no cap of its own (the env's TimeLimit
# ends episodes), so the models of this module set one no episode reaches.
NO_EPISODE_CAP = 2**62
NEVER = 2**62                  # update_after of gradient_steps=0: no env step reaches it
# What save() adds to a path without a suffix: SB3's ".zip" (numddpg's npz container is a zip
# archive of arrays and JSON, never a pickle), and ".npz" for a replay buffer alone (SB3's
# ".pkl" would promise a pickle).  numddpg.sb3 wrote models as ".npz" before: load finds those.
EXTENSION = ".zip"
BUFFER_EXTENSION = ".npz"
OLD_EXTENSION = ".npz"


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


def _policy_sizes(policy_kwargs, n_critics_spec, multi_input=False):
    """(hidden_sizes, qf_hidden_sizes, n_critics) from SB3's policy_kwargs, refusing what
    numddpg's MLPs cannot be; n_critics checked by ``n_critics_spec`` (its default: the
    algorithm's); ``multi_input``: for MultiInputPolicy (SB3's CombinedExtractor, whose
    ``cnn_output_dim`` sizes the CNN of image entries, which numddpg flattens instead)."""
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
    n_critics = check_hyperparameter("policy_kwargs['n_critics']",
                                     kw.get("n_critics", n_critics_spec.default), n_critics_spec)
    # (optimizer_class and optimizer_kwargs: numddpg.sb3.optimizers)
    extractor_kwargs = dict(kw.get("features_extractor_kwargs") or {})
    if multi_input and "cnn_output_dim" in extractor_kwargs:
        check_int("policy_kwargs['features_extractor_kwargs']['cnn_output_dim']",
                  extractor_kwargs.pop("cnn_output_dim"), 1)
    if extractor_kwargs:
        raise ValueError(f"policy_kwargs['features_extractor_kwargs']="
                         f"{kw['features_extractor_kwargs']!r} is not supported (there is no "
                         "feature extractor to configure but MultiInputPolicy's cnn_output_dim, "
                         "unused)")
    extractor = "CombinedExtractor" if multi_input else "FlattenExtractor"
    if "features_extractor_class" in kw and not _is_named(kw["features_extractor_class"],
                                                          extractor):
        raise ValueError(f"policy_kwargs['features_extractor_class']="
                         f"{kw['features_extractor_class']!r}: numddpg's MLPs read the flat "
                         f"observation (SB3's {extractor}) only")
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
        return pi, (None if qf == pi else qf), n_critics
    if not isinstance(arch, (list, tuple)):
        raise TypeError(f"policy_kwargs['net_arch'] must be a list of widths or dict(pi=[...], "
                        f"qf=[...]), got {arch!r}")
    return check_widths("policy_kwargs['net_arch']", arch), None, n_critics


def _handle_timeout_termination(replay_buffer_kwargs):
    """SB3's replay_buffer_kwargs' ``handle_timeout_termination`` (default True: a time
    limit's end bootstraps; False: every episode end is terminal), read before the model and
    its buffer exist (``buffer_options`` checks the rest)."""
    kwargs = replay_buffer_kwargs if isinstance(replay_buffer_kwargs, dict) else {}
    return check_bool("replay_buffer_kwargs['handle_timeout_termination']",
                      kwargs.get("handle_timeout_termination", True))


def _optimize_memory_usage(optimize_memory_usage, handle_timeouts, buffer_size):
    """SB3's optimize_memory_usage, checked as SB3's ReplayBuffer checks it.  SB3 then keeps
    s' of row i in row i + 1 (next_observations are not stored), so that a full buffer of
    buffer_size rows holds buffer_size - 1 whole transitions; numddpg stores s' beside s in a
    buffer of buffer_size - 1 rows, which holds the same transitions and gives the same
    minibatches (it saves no memory)."""
    memory = check_bool("optimize_memory_usage", optimize_memory_usage)
    if memory and handle_timeouts:
        raise ValueError("optimize_memory_usage=True and handle_timeout_termination=True "
                         "cannot go together (as in SB3: s' of a time limit's last step is "
                         "not kept); pass replay_buffer_kwargs=dict("
                         "handle_timeout_termination=False)")
    if memory and buffer_size < 2:
        raise ValueError(f"optimize_memory_usage=True needs buffer_size >= 2, got {buffer_size}")
    return memory


class EnvCountMismatch(ValueError, AssertionError):
    """set_env with another number of envs than the model's: a ValueError, and the
    AssertionError SB3 raises for it."""


POLICIES = ("MlpPolicy", "MultiInputPolicy")


def _policy_name(policy):
    """"MlpPolicy" or "MultiInputPolicy" from SB3's ``policy`` (a name or a class of that
    name); ValueError for others."""
    for name in POLICIES:
        if policy == name or _is_named(policy, name):
            return name
    raise ValueError(f"policy={policy!r}: numddpg has 'MlpPolicy' (MLP actor and critics on a "
                     "flat observation) and 'MultiInputPolicy' (on a Dict observation); no "
                     "CnnPolicy or custom policy classes")


def _refuse_unsupported(args):
    """ValueError for an SB3 argument that asks for what numddpg does not do."""
    if args.pop("_init_setup_model") is not True:
        raise ValueError("_init_setup_model=False is not supported: numddpg builds its "
                         "networks when the model is made")
    _policy_name(args["policy"])
    check_device(args["device"])


def _checked_arguments(args, native_class):
    """SB3's arguments that become numddpg hyperparameters, each checked under its own name by
    the spec of the hyperparameter it becomes (numddpg.hyperparameters, the one table)."""
    specs = native_class.SPECS

    def checked(sb3_name, name):
        return check_hyperparameter(sb3_name, args[sb3_name], specs[name])

    lr_schedule = FloatSchedule(args["learning_rate"])         # SB3's model.lr_schedule
    sb3 = {"learning_rate": args["learning_rate"],
           "initial_lr": _initial_learning_rate(args["learning_rate"], lr_schedule, specs),
           "tau": checked("tau", "polyak"),                    # both lie in [0, 1]
           "train_freq": _train_freq(args["train_freq"]),
           "gradient_steps": check_int("gradient_steps", args["gradient_steps"], -1)}
    sb3.update(learning_starts=checked("learning_starts", "start_steps"),
               buffer_size=checked("buffer_size", "replay_size"),
               batch_size=checked("batch_size", "batch_size"),
               gamma=checked("gamma", "gamma"),
               n_steps=checked("n_steps", "n_steps"),
               verbose=check_verbose(args["verbose"]),
               seed=checked("seed", "seed"))
    sb3["policy"] = _policy_name(args["policy"])
    sb3["net_arch"] = _policy_sizes(args["policy_kwargs"], specs["n_critics"],
                                    sb3["policy"] == "MultiInputPolicy")
    sb3["optimizer"] = optimizer_hyperparameters(args["policy_kwargs"], specs)
    sb3["buffer"] = buffer_options(args["replay_buffer_class"], args["replay_buffer_kwargs"])
    return sb3


def _initial_learning_rate(learning_rate, lr_schedule, specs):
    """The learning rate at progress_remaining 1 (SB3 makes its optimizers with it), checked
    as pi_lr: the native model's pi_lr and q_lr, which its file records."""
    if not callable(learning_rate):
        return check_hyperparameter("learning_rate", learning_rate, specs["pi_lr"])
    return check_hyperparameter(f"learning_rate (the schedule {learning_rate!r} at "
                                "progress_remaining=1)", value_at(lr_schedule, 1.0),
                                specs["pi_lr"])


def _native_hyperparameters(sb3, n_envs, optimize_memory_usage=False):
    """numddpg's hyperparameters from SB3's checked arguments ``sb3`` (the module docstring's
    table), for an env of ``n_envs`` envs (with ``optimize_memory_usage``: buffer_size - 1
    rows, _optimize_memory_usage says why)."""
    lr, learning_starts, gradient_steps = (sb3["initial_lr"], sb3["learning_starts"],
                                           sb3["gradient_steps"])
    hidden, qf_hidden, n_critics = sb3["net_arch"]
    hp = {"pi_lr": lr, "q_lr": lr,
          "replay_size": sb3["buffer_size"] - bool(optimize_memory_usage),
          "start_steps": learning_starts,
          # SB3 trains once num_timesteps > learning_starts, never with gradient_steps=0
          "update_after": NEVER if gradient_steps == 0 else learning_starts + 1,
          "batch_size": sb3["batch_size"], "polyak": 1.0 - sb3["tau"], "gamma": sb3["gamma"],
          "n_steps": sb3["n_steps"],
          # SB3 counts train_freq in steps of the (vector) env, numddpg in transitions
          "update_every": sb3["train_freq"].frequency * n_envs,
          "gradient_steps": None if gradient_steps in (-1, 0) else gradient_steps,
          "hidden_sizes": hidden, "qf_hidden_sizes": qf_hidden, "n_critics": n_critics,
          "num_test_episodes": 0, "max_ep_len": NO_EPISODE_CAP, **sb3["optimizer"]}
    if sb3["buffer"].her is not None:
        hp.update(her=sb3["buffer"].her, her_k=sb3["buffer"].n_sampled_goal)
    if sb3["seed"] is not None:
        hp["seed"] = sb3["seed"]
    return hp


class OffPolicySB3(SB3Logging):
    """SB3's interface over a native numddpg model (``native``, which does the work)."""

    native_class = None          # numddpg.training.algorithms.DDPG / TD3
    default_tb_log_name = None
    file_extension = EXTENSION   # what save() adds to a path without a suffix

    # -- construction ---------------------------------------------------------------------
    def _setup(self, args):
        """Check SB3's arguments ``args``, map them and build the native model."""
        _refuse_unsupported(args)
        native_class = self.native_class
        sb3 = _checked_arguments(args, native_class)
        handle_timeouts = sb3["buffer"].handle_timeout_termination
        memory = _optimize_memory_usage(args["optimize_memory_usage"], handle_timeouts,
                                        sb3["buffer_size"])
        env = user_env(check_env("env", args["env"]), handle_timeouts)
        if not isinstance(env, str):
            check_policy(sb3["policy"], observation_space_of(env), args["policy_kwargs"])
        if sb3["buffer"].her is not None:
            check_her_env(env)
        loop_env = training_env(env, handle_timeouts)
        n_envs = loop_env.num_envs if isinstance(loop_env, gym.vector.VectorEnv) else 1
        stats_window = check_int("stats_window_size", args.get("stats_window_size", 100), 1)
        hp = _native_hyperparameters(sb3, n_envs, memory)
        if sb3["seed"] is not None:          # SB3's set_random_seed: Python's and NumPy's global
            random.seed(sb3["seed"])         # generators too, which SB3's own action noises
            np.random.seed(sb3["seed"])      # (and other callers' code) draw from
        if sb3["verbose"] >= 1:
            print("Using cpu device")                # (SB3's line: numddpg runs on the CPU)
        # the algorithm's own hyperparameters (TD3's three), each from the SB3 argument of the
        # same quantity (the ``sb3`` names of numddpg.hyperparameters' table)
        for name in native_class.AGENT_KWARGS:
            spec = native_class.SPECS[name]
            hp[name] = check_hyperparameter(spec.sb3, args[spec.sb3], spec)
        action_noise = own_noise(args["action_noise"])
        hp.update(noise_hyperparameters(action_noise) or {"noise": "none"})
        tb = check_tensorboard_log(args["tensorboard_log"])     # (the logger writes there)
        try:
            native = native_class(loop_env, preset="none", log=False,
                                  test_env=native_test_env(loop_env), **hp)
        except ActionSpaceError as exc:
            raise UnsupportedActionSpace(str(exc)) from None
        if isinstance(env, str):
            check_policy(sb3["policy"], observation_space_of(native.env), args["policy_kwargs"])
        if sb3["buffer"].copy_info_dict:
            native.buffer.keep_infos()
        noise_process = native_noise(action_noise, native.act_dim, native.hyperparameters)
        self._attach(native, noise_process, action_noise, verbose=sb3["verbose"],
                     tensorboard_log=tb, stats_window_size=stats_window,
                     learning_rate=sb3["learning_rate"], tau=sb3["tau"],
                     policy_kwargs=args["policy_kwargs"], seed=sb3["seed"],
                     train_freq=sb3["train_freq"], gradient_steps=sb3["gradient_steps"],
                     env=env, handle_timeouts=handle_timeouts, optimize_memory_usage=memory)

    def _attach(self, native, noise_process, action_noise, verbose, tensorboard_log,
                stats_window_size, learning_rate, tau, policy_kwargs, seed, train_freq,
                gradient_steps, env, handle_timeouts, optimize_memory_usage):
        self.native = native
        self._handle_timeouts = handle_timeouts
        self.optimize_memory_usage = optimize_memory_usage
        self._buffer_removed = False
        self._use_user_env(env)
        if noise_process is not None:
            native.noise_process = noise_process
        self.action_noise = action_noise
        self.verbose = verbose
        self.tensorboard_log = tensorboard_log     # each learn()'s logger writes there
        self.stats_window_size = stats_window_size
        self.ep_info_buffer = collections.deque(maxlen=stats_window_size)
        self.ep_success_buffer = collections.deque(maxlen=stats_window_size)
        self._episode_num = 0
        self._new_episode_stats()
        self._timesteps_offset = native.t          # num_timesteps counts from here
        self._total_timesteps = 0
        self._logger, self._custom_logger = None, False
        self.start_time, self._num_timesteps_at_start = time.perf_counter(), 0
        self.learning_rate = learning_rate        # as given: a number or a schedule
        self.lr_schedule = FloatSchedule(learning_rate)
        self._current_learning_rate = value_at(self.lr_schedule, self._current_progress_remaining)
        self.tau = tau
        self.policy_kwargs = {} if policy_kwargs is None else dict(policy_kwargs)
        self.seed = seed
        self.train_freq = train_freq
        self.gradient_steps = gradient_steps
        self._own_attributes = frozenset(vars(self)) | {"_own_attributes"}

    def user_attributes(self):
        """The attributes set on the model by its user (not numddpg's own): what
        ``save(include=[...])`` may name."""
        return {name for name in vars(self) if name not in self._own_attributes}

    n_envs = property(lambda self: self.native.n_envs or 1,
                      doc="The number of envs trained on (a gymnasium Env counts as one).")

    @property
    def device(self):
        """The device, "cpu" (numddpg's kernels run on the CPU)."""
        return CPU

    @device.setter
    def device(self, device):
        """Accepts the CPU ("cpu", or torch.device("cpu")), and "cuda" with a warning
        (parts.check_device); anything else is refused."""
        check_device(device)


    def _use_user_env(self, env):
        """``env`` (the user's, or None for the native model's own) is the one get_env()
        returns and whose spaces predict() reads."""
        env = self.native.env if env is None or isinstance(env, str) else env
        self._user_env, self._vec_env, self._env_released = env, None, False
        if isinstance(env, gym.vector.VectorEnv):
            spaces = env.single_observation_space, env.single_action_space
        else:
            spaces = env.observation_space, env.action_space
        self._preprocessing = Preprocessing(*spaces)

    def _new_episode_stats(self):
        """Per env: return and length of the episode so far, and whether its next step is a
        vector env's autoreset (NEXT_STEP mode: not a step of any episode)."""
        n = self.native.n_envs or 1
        self._episode_ret, self._episode_len = np.zeros(n), np.zeros(n, np.int64)
        self._resetting = np.zeros(n, bool)
        self._next_step_reset = (bool(self.native.n_envs) and autoreset_mode(self.native.env)
                                 == gym.vector.AutoresetMode.NEXT_STEP)

    # -- SB3's attributes, read from the native model ----------------------------------------
    @property
    def num_timesteps(self):
        """Env steps taken (since the last learn(reset_num_timesteps=True))."""
        return self.native.t - self._timesteps_offset

    @property
    def _current_progress_remaining(self):
        """SB3's progress_remaining: 1 - num_timesteps / total_timesteps of the learn() in
        progress or last run (1 before any learn())."""
        total = self._total_timesteps
        return 1.0 if total <= 0 else 1.0 - float(self.num_timesteps) / float(total)

    @property
    def current_learning_rate(self):
        """The learning rate of the last training round (before any: the schedule's value at
        the current progress_remaining), which train/learning_rate records."""
        return self._current_learning_rate

    def _update_learning_rate(self):
        """What SB3's train() does first: the schedule's value at progress_remaining now
        becomes the learning rate of both networks' Adam (SB3 sets both optimizers) for every
        update of the coming training round (the bridge calls this before each round)."""
        lr = value_at(self.lr_schedule, self._current_progress_remaining)
        self._current_learning_rate = lr
        self.native.agent.set_learning_rates(lr, lr)

    @property
    def policy(self):
        """SB3's policy object: the networks as NumPy MLPs (numddpg.sb3.parts.Policy)."""
        return Policy(self)

    @policy.setter
    def policy(self, policy):
        """``model.policy = ...`` as SB3 code writes it: this model's own policy (nothing
        changes), or that policy wrapped by ``torch.compile``, which leaves the model as it
        is with a warning (numddpg's networks run in its Numba kernels, not in torch).
        Anything else is refused: numddpg has no policy objects to swap in."""
        if isinstance(policy, Policy) and policy._model is self:
            return
        if hasattr(policy, "_torchdynamo_orig_callable") or hasattr(policy, "_orig_mod"):
            warnings.warn("model.policy = torch.compile(model.policy): numddpg's networks run "
                          "in its Numba kernels, not in torch, so the model keeps its policy",
                          UserWarning, stacklevel=2)
            return
        raise TypeError(f"model.policy can only be this model's own policy, got "
                        f"{type(policy).__name__}; to take another model's networks: "
                        "model.policy.load_state_dict(other.policy.state_dict())")

    # SB3's shortcuts to the policy's networks
    actor = property(lambda self: self.policy.actor)
    critic = property(lambda self: self.policy.critic)
    actor_target = property(lambda self: self.policy.actor_target)
    critic_target = property(lambda self: self.policy.critic_target)

    @property
    def replay_buffer(self):
        """numddpg's replay buffer under SB3's names too (numddpg.sb3.parts.ReplayBufferView),
        or None after ``model.replay_buffer = None``."""
        if self._buffer_removed:
            return None
        buffer = self.native.buffer
        if isinstance(buffer, NativeHer):
            return HerReplayBuffer(buffer, self.native.obs_layout, self._handle_timeouts)
        return buffer_view(buffer, self._handle_timeouts)

    @replay_buffer.setter
    def replay_buffer(self, buffer):
        """Train from ``buffer`` (another model's ``replay_buffer``, or numddpg's ReplayBuffer
        with this model's dims and dtype), or None: no buffer until one is set (learn()
        refuses, save() writes none)."""
        if buffer is None:
            self._buffer_removed = True
            return
        buffer = buffer.buffer if isinstance(buffer, ReplayBufferView) else buffer
        mine = self.native.buffer
        if not isinstance(buffer, type(mine)) or _buffer_shape(buffer) != _buffer_shape(mine):
            raise ValueError(f"replay_buffer must be None or a replay buffer like this model's "
                             f"{mine!r}, got {buffer!r}")
        if _returns(buffer) != _returns(mine):     # (a file holds what the model's n_steps say)
            raise ValueError(f"replay_buffer sums n-step returns with (n_steps, gamma) = "
                             f"{_returns(buffer)}, this model with {_returns(mine)}: make the "
                             "model with the buffer's n_steps and gamma")
        self.native.buffer, self._buffer_removed = buffer, False

    def get_parameters(self):
        """SB3's {"policy": state dict, "actor.optimizer": ..., "critic.optimizer": ...}:
        copies of the networks, their targets and their Adam states under SB3's names and
        shapes (numddpg.sb3.parameters); ``set_parameters`` takes it back."""
        return parameters(self.native.agent)

    def set_parameters(self, load_path_or_dict, exact_match=True, device="auto"):
        """Put parameters in place: a dict as ``get_parameters`` returns (with exact_match
        False, any part of one), or the path of a saved model (its parameters).  Everything is
        checked before anything changes (numddpg.sb3.parameters.set_parameters)."""
        check_device(device)
        params = load_path_or_dict
        if isinstance(params, (str, os.PathLike)):
            params = type(self).load(params).get_parameters()
        set_parameters(self.native.agent, params, check_bool("exact_match", exact_match))

    @property
    def observation_space(self):
        """One env's observation space, as the env has it (of a vector env: its
        single_observation_space)."""
        return self._preprocessing.observation_space

    @property
    def action_space(self):
        """One env's action space, as the env has it."""
        return self._preprocessing.action_space

    @property
    def env(self):
        return self.get_env()

    @env.deleter
    def env(self):
        """SB3's ``del model.env``: the model lets go of its env; get_env() returns None and
        learn() asks for set_env() (the RL Zoo's hyperparameter search does this)."""
        self._env_released = True

    buffer_size = property(lambda self: self.native.replay_size + self.optimize_memory_usage,
                           doc="SB3's buffer_size (optimize_memory_usage: one row more than "
                               "the transitions it holds, as SB3's layout)")

    learning_starts = property(lambda self: self.native.start_steps)
    batch_size = property(lambda self: self.native.batch_size)
    gamma = property(lambda self: self.native.gamma)

    def get_env(self):
        """The training env behind SB3's VecEnv API: the SB3 VecEnv (or gymnasium vector env)
        given, or a numddpg.sb3.vecenv.OneEnvVecEnv around the gymnasium Env that training
        steps; None for a model loaded without an env it could make (as SB3's)."""
        if self._env_released or isinstance(self._user_env, NoEnv):
            return None
        if self._vec_env is None:
            self._vec_env = vec_env_view(self._user_env)
        return self._vec_env

    def set_env(self, env, force_reset=True):
        """Train on ``env`` from now on: the same spaces and as many envs (a gymnasium Env
        counts as one, as SB3's DummyVecEnv of it; else EnvCountMismatch, an AssertionError as
        SB3's: ``load(path, env=env)`` takes another number of envs).  ``force_reset`` (SB3's
        default True) starts new episodes at the next learn(); False continues the episodes
        in progress (``_last_obs``) on ``env``, which must then be where they are (SB3: "the
        env kept its state")."""
        force_reset = check_bool("force_reset", force_reset)
        env = check_env("env", env)
        if self.native.her != "none":
            check_her_env(env)
        if isinstance(env, str):
            env = gym.make(env, disable_env_checker=True)
        given, env = env, training_env(env, self._handle_timeouts)
        native = self.native
        n = env.num_envs if isinstance(env, gym.vector.VectorEnv) else 0
        if max(n, 1) != (native.n_envs or 1):
            raise EnvCountMismatch(
                f"set_env: env has {n or 1} env(s), the model {native.n_envs or 1}: set_env "
                f"keeps the number of envs; {type(self).__name__}.load(path, env=env) takes "
                "another")
        if n and native.n_envs and autoreset_mode(env) != autoreset_mode(native.env):
            raise ValueError(f"set_env: env's autoreset mode {autoreset_mode(env)} differs from "
                             f"the model's env's {autoreset_mode(native.env)}")
        dims = check_spaces(env)
        dtype = (env.single_action_space if n else env.action_space).dtype
        old = (native.env.single_action_space if native.n_envs
               else native.env.action_space).dtype
        if (dims[:2] != (native.obs_dim, native.act_dim)
                or not np.array_equal(dims[2], native.act_low)
                or not np.array_equal(dims[3], native.act_high) or dtype != old):
            raise EnvError(f"set_env: {_env_id(env)} has obs/act dims {dims[:2]}, bounds "
                           f"{dims[2]}..{dims[3]}, action dtype {dtype}; the model's are "
                           f"{(native.obs_dim, native.act_dim)}, {native.act_low}.."
                           f"{native.act_high}, {old}")
        episodes = None if force_reset else self._episodes()
        native.set_env(env)        # the next learn() starts new episodes on it
        self._use_user_env(given)
        self._new_episode_stats()
        if episodes is not None:
            self._continue_episodes(*episodes)

    # -- the episodes in progress: SB3's _last_obs ---------------------------------------------
    def _episodes(self):
        """(obs (n, obs_dim), ep_len (n,), ep_ret (n,)) of the loop's episodes in progress, or
        None before the first step (or after a reset was asked for)."""
        state = self.native.state
        if state.obs is None:
            return None
        return np.array(state.obs), state.ep_len.copy(), state.ep_ret.copy()

    def _continue_episodes(self, obs, ep_len, ep_ret):
        """Continue from episodes in progress (``_episodes``' arrays), if there are as many as
        the model has envs (else the next learn() starts new ones)."""
        state, n = self.native.state, self.native.n_envs or 1
        if obs.shape != (n, self.native.obs_dim):
            return
        native = self.native
        space = (native.env.single_observation_space if native.n_envs
                 else native.env.observation_space)
        dtype = getattr(space, "dtype", None)          # the env's own float type, as it steps
        state.new_episodes(n)
        state.obs = np.asarray(obs, dtype if dtype is not None and dtype.kind == "f"
                               else np.float64)
        state.ep_len[:], state.ep_ret[:] = ep_len, ep_ret
        self._episode_len[:], self._episode_ret[:] = ep_len, ep_ret

    def _normalization(self):
        """The VecNormalize statistics the loop trains with (numddpg.sb3.vecnormalize), or
        None."""
        return Normalization.of(self.native.env)

    @property
    def _last_obs(self):
        """SB3's ``_last_obs``: the observations (n_envs, ...) the next step acts on, as the
        policy reads them (with VecNormalize: normalized), or None when the next learn()
        starts new episodes."""
        obs = self.native.state.obs
        if obs is None:
            return None
        normalization = self._normalization()
        return obs.copy() if normalization is None else normalization.policy_obs(obs)

    @_last_obs.setter
    def _last_obs(self, value):
        """None: the next learn() starts new episodes (SB3's way to force a reset)."""
        if value is not None:
            raise ValueError("_last_obs can only be set to None (the next learn() then resets "
                             "the env); numddpg's loop keeps the observations it steps from")
        self.native.state.obs = None

    @property
    def _last_original_obs(self):
        """SB3's ``_last_original_obs``: with VecNormalize, the unnormalized observations the
        next step acts on (what the buffer stores); None otherwise, as SB3's."""
        obs = self.native.state.obs
        return None if obs is None or self._normalization() is None else obs.copy()

    @property
    def _last_episode_starts(self):
        """SB3's ``_last_episode_starts``: (n_envs,) bools, whether each env's next step is
        the first of an episode."""
        state = self.native.state
        if state.obs is None:
            return np.ones(self.native.n_envs or 1, bool)
        return state.ep_len == 0

    def get_vec_normalize_env(self):
        """The VecNormalize of the SB3 VecEnv trained on (its statistics are what SB3 users
        save: ``model.get_vec_normalize_env().save(path)``), or None."""
        return vec_normalize_of(self._user_env) if is_vec_env(self._user_env) else None

    # -- training -----------------------------------------------------------------------------
    def learn(self, total_timesteps, callback=None, log_interval=4, tb_log_name=None,
              reset_num_timesteps=True, progress_bar=False):
        """Train for ``total_timesteps`` more env steps on numddpg's loop (SB3's signature).

        callback : a callback, a list of them (CallbackList), a function (locals, globals) ->
            bool, or None.
        log_interval : with verbose >= 1, print the rollout statistics every this many
            episodes.
        reset_num_timesteps : True (SB3's default): ``num_timesteps`` counts from 0 again and
            the env is reset (new episodes; the buffer and the networks carry on); False: the
            count and the episodes in progress continue.
        As SB3's, learn() collects whole rollouts of train_freq steps, each followed by its
        training round: it ends at the first rollout end at or past ``total_timesteps``
        more steps (num_timesteps may pass it by up to train_freq * n_envs - 1).
        Returns self.
        """
        total_timesteps = check_int("total_timesteps", total_timesteps, 1)
        if self.get_env() is None:
            raise ValueError("this model has no env (loaded without one that could be made, "
                             "or after del model.env): call model.set_env(env) before learn()")
        if self._buffer_removed:
            raise ValueError("replay_buffer is None: set model.replay_buffer (or load one with "
                             "load_replay_buffer) before learn()")
        log_interval = check_int("log_interval", log_interval, 1)
        tb_log_name = self.default_tb_log_name if tb_log_name is None else tb_log_name
        _runlog.check_tensorboard_args(None, tb_log_name)
        reset_num_timesteps = check_bool("reset_num_timesteps", reset_num_timesteps)
        progress_bar = check_bool("progress_bar", progress_bar)
        callback = convert_callback(callback)
        if not self._custom_logger:
            if self._logger is not None:
                self._logger.close()
            self._logger = configure_logger(self.verbose, self.tensorboard_log, tb_log_name,
                                            reset_num_timesteps)
        if reset_num_timesteps:
            self._truncate_last_trajectory()
            self._timesteps_offset = self.native.t
            self._episode_num = 0
            self.ep_info_buffer.clear()
            self.ep_success_buffer.clear()
            self.native.state.obs = None           # SB3 resets the env: new episodes
            self._new_episode_stats()
        self._total_timesteps = self.num_timesteps + total_timesteps
        if callback is not None:
            callback.init_callback(self)
        self.start_time, self._num_timesteps_at_start = time.perf_counter(), self.num_timesteps
        if self.verbose >= 1 and not progress_bar and not kernels_cached():
            print("compiling kernels (first run only, 20-60 s)", flush=True)
        bridge = Bridge(self, callback, log_interval,
                         dict(total_timesteps=self._total_timesteps, callback=callback,
                              log_interval=log_interval, tb_log_name=tb_log_name,
                              reset_num_timesteps=reset_num_timesteps,
                              progress_bar=progress_bar))
        try:
            self.native.learn(self._rollout_end(total_timesteps) - self.native.t,
                              progress_bar=progress_bar, callback=bridge)
        finally:
            if not self._custom_logger:
                self._logger.sync()
        return self

    def _truncate_last_trajectory(self):
        """With optimize_memory_usage, before a learn() that resets the env: SB3's layout
        would overwrite s' of the last stored step with the reset observation, so SB3 marks
        that step's transitions done (d = 1) and warns; numddpg does the same to its rows, so
        that its minibatches stay SB3's."""
        buffer = self.native.buffer
        if not self.optimize_memory_usage or self._buffer_removed or buffer.size == 0:
            return
        warnings.warn("The last trajectory in the replay buffer will be truncated: with "
                      "optimize_memory_usage=True a learn() that resets the env ends the "
                      "episodes stored last (their last transitions become terminal, as in "
                      "SB3); pass reset_num_timesteps=False to continue them instead",
                      UserWarning, stacklevel=3)
        for k in range(1, min(self.native.n_envs or 1, buffer.size) + 1):
            buffer.done[(buffer.ptr - k) % buffer.max_size] = 1.0

    def _rollout_end(self, total_timesteps):
        """The env step a learn() of ``total_timesteps`` ends at: SB3 collects whole rollouts
        of train_freq steps of the (vector) env, each followed by its training round, so it
        ends at the first rollout end (numddpg's: a multiple of update_every transitions) at
        or past num_timesteps + total_timesteps."""
        every = self.native.update_every
        return -(-(self.native.t + total_timesteps) // every) * every

    # -- acting -------------------------------------------------------------------------------
    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """(action, None) for one observation (obs_dim,) or a batch (n, obs_dim); of a Dict
        observation space, a Dict of one observation's entries or of batches of them.  The
        policy is deterministic whatever ``deterministic`` says (as SB3's DDPG/TD3:
        exploration noise belongs to training); None stands for SB3's recurrent state."""
        is_dict = isinstance(self.observation_space, gym.spaces.Dict)
        if isinstance(observation, dict) != is_dict:
            raise ValueError(f"predict got {type(observation).__name__}, but this model observes "
                             f"{self.observation_space}: pass "
                             f"{'a Dict of its entries' if is_dict else 'an array, not a Dict'}")
        if (isinstance(observation, tuple) and len(observation) == 2
                and isinstance(observation[1], dict)):
            raise ValueError("predict got an (obs, info) pair: gymnasium's reset() returns two "
                             "values (SB3's VecEnv returned obs alone); pass the observation: "
                             "obs, info = env.reset()")
        check_bool("deterministic", deterministic)
        pre = self._preprocessing
        if not pre.maps_obs and not pre.maps_actions:
            return self.native.predict(observation)[0], None
        batch = pre.is_batch(observation)
        if batch:
            obs = observation if is_dict else np.asarray(observation)
        else:
            obs = ({k: np.asarray(v)[None] for k, v in observation.items()} if is_dict
                   else np.asarray(observation)[None])
        actions = pre.actions(self.native.predict(pre.obs(obs))[0])
        return (actions if batch else actions[0]), None

    # -- files --------------------------------------------------------------------------------
    def save(self, path, exclude=None, include=None):
        """The whole model (networks, optimizers, generators, counters and the replay buffer,
        as numddpg's ``save``) and SB3's attributes of plain data (numddpg.sb3.attributes) in
        numddpg's safe format at ``path`` (".zip" added when it has no suffix, as SB3's).

        exclude : names left out: SB3's saved attributes (``verbose``, ``ep_info_buffer``, ...;
            a loaded model has their defaults), ``_last_obs`` (the episodes in progress),
            ``replay_buffer`` (the buffer).  The hyperparameters cannot be left out.
        include : names saved although excluded, or attributes of plain data you set on the
            model (``load`` sets them back).
        """
        saved, loop, include_buffer, user = _attributes.chosen(self, exclude, include)
        path = _file_path("path", path, self.file_extension)
        recorded = {k: self.native.hyperparameters[k] for k in NOISE_HYPERPARAMETERS}
        native = noise_hyperparameters(self.action_noise)
        if native is None or native != {k: recorded[k] for k in native}:
            warnings.warn(f"action_noise {self.action_noise!r} is not what the file records "
                          f"(numddpg's noise hyperparameters {recorded}, which hold mean 0 and "
                          "one sigma for all dimensions): pass it again to "
                          "load(path, action_noise=...)", UserWarning, stacklevel=2)
        if self._buffer_removed:
            include_buffer = False
        self._save_native(path, include_buffer, saved, loop, user)

    def save_policy_networks(self, path):
        """SB3's ``policy.save``: the model's file at exactly ``path``, without the replay
        buffer and the episodes in progress (``load_policy_file`` reads it)."""
        self._save_native(_file_path("path", path, ""), include_buffer=False, loop=False)

    def _save_native(self, path, include_buffer, saved=_attributes.SAVED, loop=True,
                     user=None):
        """The native model's save, with its "sb3" section: SB3's learning_rate as data
        (numddpg.sb3.schedules) and SB3's attributes (numddpg.sb3.attributes)."""
        self.native.sb3_record = self._sb3_record(saved, loop, {} if user is None else user)
        self.native.save(path, include_buffer=include_buffer)

    def _sb3_record(self, saved, loop, user):
        """The file's "sb3" section (numddpg.sb3.attributes): the attributes ``saved``, the
        episodes in progress if ``loop``, the ``user``'s attributes."""
        values = {"verbose": self.verbose, "stats_window_size": self.stats_window_size,
                  "num_timesteps": self.num_timesteps, "_episode_num": self._episode_num,
                  "ep_info_buffer": list(self.ep_info_buffer),
                  "ep_success_buffer": [float(np.mean(s)) for s in self.ep_success_buffer]}
        record = {"config": {"handle_timeout_termination": self._handle_timeouts,
                             "optimize_memory_usage": self.optimize_memory_usage},
                  "attributes": {name: _attributes.plain(name, values[name]) for name in saved},
                  "user": user}
        rate = learning_rate_record(self.learning_rate, self._current_learning_rate)
        if rate is not None:                    # (a number is the saved pi_lr)
            record["learning_rate"] = rate
        episodes = self._episodes() if loop else None
        if episodes is not None:
            record["loop"] = dict(zip(("obs", "ep_len", "ep_ret"),
                                      (a.tolist() for a in episodes)))
        return record

    @classmethod
    def load(cls, path, env=None, device="auto", custom_objects=None, print_system_info=False,
             force_reset=True, **kwargs):
        """The model ``save`` wrote at ``path`` (or ``path`` + ".npz"; an SB3 name
        ``x.zip`` reads ``x.npz`` when only that exists).

        env : the env to continue on (default: the saved env, rebuilt from its record); its
            spaces must be the saved ones, its number of envs may differ (train_freq counts
            steps of the env given).
        force_reset : False, with ``env``: continue the episodes in progress saved in the
            file (SB3's ``_last_obs``: the env must be where they are).
        kwargs, custom_objects : SB3's arguments and saved attributes to replace (kwargs
            always; custom_objects only those the file holds, others ignored, as SB3).
            ``verbose``, ``stats_window_size``, ``tensorboard_log``, ``seed`` (the attribute,
            as SB3's load sets it), ``action_noise``, ``replay_buffer_kwargs`` and
            ``learning_rate`` (a number or a schedule to train on with) replace what the model
            has; a hyperparameter that differs from the saved one (``buffer_size``,
            ``batch_size``, ``train_freq``, ...: SB3's continued training with new
            hyperparameters) gives a model made with the new values that takes the file's
            networks, Adam states, counters and generators, and its replay buffer when the
            capacity is unchanged.  ``policy_kwargs`` must be the saved ones.  Without a
            learning_rate, a schedule SB3 or the Zoo made is rebuilt from the file, and an other
            callable is replaced by the learning rate it last gave, with a warning that says so
            (numddpg.sb3.schedules).
        """
        check_device(device)
        if check_bool("print_system_info", print_system_info):
            import numba
            from .. import __version__
            print(f"numddpg {__version__}, Python {platform.python_version()}, numpy "
                  f"{np.__version__}, numba {numba.__version__}, gymnasium {gym.__version__}, "
                  f"{platform.platform()}")
        force_reset = check_bool("force_reset", force_reset)
        path = _saved_path("path", path, cls.file_extension)
        meta = _checkpoint.read_meta(path, "algorithm")
        run_checkpoint_specs(meta, str(path))             # the whole record, checked
        if meta["algo"] != cls.native_class.algo:
            raise _checkpoint.CheckpointError(
                f"{path}: this is a {meta['algo']!r} checkpoint; load it with its own class, "
                f"not {cls.__name__}.load")
        record = meta.get("sb3")
        record = record if isinstance(record, dict) else {}    # (checked by restore below)
        saved = _saved_arguments(cls.native_class, meta, record)
        args, attributes = _replacements(cls.native_class, saved, kwargs, custom_objects)
        if args["learning_rate"] is saved["learning_rate"] and "learning_rate" in record:
            args["learning_rate"], warning = learning_rate_from_record(record["learning_rate"],
                                                                       str(path))
            if warning is not None:
                warnings.warn(warning, UserWarning, stacklevel=2)
        given = no_env(meta) if env is None else check_env("env", env)
        if any(args[k] != saved[k] for k in _attributes.REBUILD if k in saved):
            model = cls._rebuilt(path, given, args)
        else:
            model = cls._restored(path, given, args, saved)
        checked = _attributes.checked(model.native.sb3_record, str(path),
                                      model.native.obs_dim)
        model._restore_attributes(checked, attributes, keep_episodes=given is not None
                                  and not force_reset)
        return model

    @classmethod
    def _restored(cls, path, given, args, saved):
        """The model in the file at ``path``, as it was (numddpg's load), on ``given`` (None:
        the saved env) with ``args``' replacements of what does not build it."""
        handle_timeouts = _handle_timeout_termination(args["replay_buffer_kwargs"])
        env = None if given is None else training_env(user_env(given, handle_timeouts),
                                                       handle_timeouts)
        native = cls.native_class.load(path, env=env, test_env=native_test_env(env))
        hp = native.hyperparameters
        saved_buffer_options(args["replay_buffer_kwargs"], hp, native.buffer)
        if hp["her"] != "none" and given is not None and not isinstance(given, NoEnv):
            check_her_env(given)
        train_freq = args["train_freq"]
        every = train_freq.frequency * (native.n_envs or 1)
        if every != hp["update_every"]:     # another number of envs than saved: train_freq
            native.update_every = hp["update_every"] = every    # counts steps of this env
        if args["action_noise"] is not saved["action_noise"]:
            action_noise = own_noise(args["action_noise"])
            noise_process = native_noise(action_noise, native.act_dim, hp)
        else:
            action_noise = noise_process = args["action_noise"]
            if isinstance(action_noise, OrnsteinUhlenbeckActionNoise):
                action_noise.x[...] = native.noise_process.x     # the saved OU state
        model = cls.__new__(cls)
        model._attach(native, noise_process, action_noise, verbose=0,
                      tensorboard_log=None, stats_window_size=100,
                      learning_rate=args["learning_rate"], tau=args["tau"],
                      policy_kwargs=args["policy_kwargs"], seed=hp["seed"],
                      train_freq=train_freq, gradient_steps=args["gradient_steps"],
                      env=given, handle_timeouts=handle_timeouts,
                      optimize_memory_usage=args["optimize_memory_usage"])
        return model

    @classmethod
    def _rebuilt(cls, path, given, args):
        """A model made with SB3's arguments ``args`` (hyperparameters other than the file's)
        on ``given`` (None: the saved env), given the file's networks, Adam states, step
        counts and generators, its env step count and, when its capacity is this model's,
        its replay buffer."""
        meta, arrays = read_run_checkpoint(path)
        where = str(path)
        if given is None:
            given = make_saved_env(meta, None)
        policy = "MlpPolicy" if "obs_layout" not in meta["spaces"] else "MultiInputPolicy"
        model = cls(policy, given, **args)
        native = model.native
        try:
            native.agent.load_state_dict(agent_state(arrays, where, "agent."))
        except ValueError as exc:
            raise _checkpoint.CheckpointError(f"{where}: its networks do not fit the model "
                                              f"the arguments make: {exc}") from None
        native.state.t = native.state.epoch_t0 = meta["loop"]["t"]
        b, buffer = meta["buffer"], native.buffer
        if b["saved"] and not saved_her(meta) and (b["max_size"], b["dtype"]) == (
                buffer.max_size, buffer.dtype.name):
            buffer.restore({k[len("buffer."):]: v for k, v in arrays.items()
                            if k.startswith("buffer.")}, b)
        native.restore_extra_records(meta, where)
        model._timesteps_offset = 0
        return model

    def _restore_attributes(self, checked, replaced, keep_episodes):
        """Put back a file's SB3 attributes (``checked``: attributes.checked), then the
        ``replaced`` ones given to load(); with ``keep_episodes``, its episodes in progress."""
        values = dict(checked["attributes"], **replaced)
        self.verbose = check_verbose(values.get("verbose", 0))
        self.tensorboard_log = check_tensorboard_log(values.get("tensorboard_log"))
        if "seed" in replaced:
            self.seed = check_hyperparameter("seed", replaced["seed"],
                                             self.native_class.SPECS["seed"])
        window = check_int("stats_window_size", values.get("stats_window_size", 100), 1)
        self.stats_window_size = window
        self.ep_info_buffer = collections.deque(values.get("ep_info_buffer", ()), maxlen=window)
        self.ep_success_buffer = collections.deque(values.get("ep_success_buffer", ()),
                                                   maxlen=window)
        self._episode_num = values.get("_episode_num", 0)
        self._timesteps_offset = self.native.t - min(values.get("num_timesteps", self.native.t),
                                                     self.native.t)
        for name, value in checked["user"].items():
            if hasattr(type(self), name) or name in vars(self):
                raise _checkpoint.CheckpointError(
                    f"the file's user attribute {name!r} would replace one of numddpg's own")
            setattr(self, name, value)
        if keep_episodes and checked["loop"] is not None:
            self._continue_episodes(*checked["loop"])

    def save_replay_buffer(self, path):
        """Save the replay buffer (filled rows, episode bookkeeping of a HerReplayBuffer, and
        sampler state) in numddpg's safe format at ``path`` (".npz" added when it has no
        suffix; SB3's ".pkl" would promise a pickle): a whole model checkpoint with its buffer, as numddpg's
        ``save_replay_buffer`` writes (``load_replay_buffer`` takes the buffer from it,
        ``load`` the model).  A HerReplayBuffer's info dicts (copy_info_dict) stay out: files
        hold no Python objects."""
        self._save_native(_file_path("path", path, BUFFER_EXTENSION), True)

    def load_replay_buffer(self, path, truncate_last_traj=True):
        """Replace the replay buffer's contents by the one saved at ``path`` (by
        ``save_replay_buffer``, or any numddpg model file saved with its buffer): numddpg's
        ``load_replay_buffer``, which checks the whole file, and that its buffer is of this
        model's kind and sizes, before anything is replaced (CheckpointError).
        truncate_last_traj : of a HerReplayBuffer, end each env's episode that was running
            when the buffer was saved, so that its steps may be drawn (SB3's
            ``truncate_last_trajectory``, with a warning); False when training goes on with
            that same episode.  A uniform buffer stores each transition's own s': nothing to
            truncate."""
        check_bool("truncate_last_traj", truncate_last_traj)
        self.native.load_replay_buffer(_saved_path("path", path, BUFFER_EXTENSION))
        self._buffer_removed = False
        if truncate_last_traj and isinstance(self.native.buffer, NativeHer):
            self.replay_buffer.truncate_last_trajectory()

    def __repr__(self):
        return (f"{type(self).__name__}(env={self.native.env_id!r}, "
                f"num_timesteps={self.num_timesteps}, seed={self.native.seed})")


def _buffer_shape(buffer):
    """What a buffer that replaces another must share with it: dims and dtype, and of a
    hindsight buffer the envs and the goals' places."""
    shape = (buffer.obs_dim, buffer.act_dim, buffer.dtype)
    if isinstance(buffer, NativeHer):
        shape += (buffer.n_envs, buffer.achieved, buffer.desired)
    return shape


def _file_path(name, path, extension):
    """``path`` as a str, ``extension`` added when it has no suffix."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {path!r} "
                        f"({type(path).__name__}); numddpg writes files atomically by path")
    path = os.fspath(path)
    return path if Path(path).suffix else path + extension


def _saved_path(name, path, extension):
    """The file to read for ``path``: the first that exists of itself, ``path`` + ``extension``,
    and the names numddpg.sb3 wrote models under before (``x.npz`` for ``x`` or ``x.zip``);
    else ``path`` as written (the reader names it in its error)."""
    written = _file_path(name, path, extension)
    path = os.fspath(path)
    stem = path[:-len(extension)] if path.endswith(extension) else path
    for candidate in (written, path + extension, stem + OLD_EXTENSION):
        if os.path.exists(candidate):
            return candidate
    return written


def _check_learning_rate(name, learning_rate):
    """TypeError / ValueError naming ``name`` unless ``learning_rate`` is a number or a
    schedule whose value at progress_remaining 1 is a finite number >= 0."""
    try:
        value_at(FloatSchedule(learning_rate), 1.0)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}={learning_rate!r}: {exc}") from None


def _saved_policy_kwargs(hp):
    """SB3's policy_kwargs of numddpg's hyperparameters ``hp``."""
    arch = (list(hp["hidden_sizes"]) if hp["qf_hidden_sizes"] is None else
            {"pi": list(hp["hidden_sizes"]), "qf": list(hp["qf_hidden_sizes"])})
    return {"net_arch": arch, "n_critics": hp["n_critics"], **optimizer_policy_kwargs(hp)}


def _saved_arguments(native_class, meta, record):
    """SB3's constructor arguments of the model a file (its checked ``meta`` and "sb3"
    ``record``) holds: the module docstring's table read backwards (the learning rate: the
    saved pi_lr; load rebuilds a saved schedule)."""
    hp = {name: spec.default for name, spec in native_class.SPECS.items()}
    hp.update(meta["hyperparameters"])          # (files from before a hyperparameter: its default)
    vector = meta.get("vector")
    n_envs = vector["num_envs"] if vector else 1
    config = record.get("config", {}) if isinstance(record, dict) else {}
    memory = config.get("optimize_memory_usage") is True
    args = {"learning_rate": hp["pi_lr"], "buffer_size": hp["replay_size"] + memory,
            "learning_starts": hp["start_steps"], "batch_size": hp["batch_size"],
            "tau": float(f"{1.0 - hp['polyak']:.15g}"), "gamma": hp["gamma"],
            "train_freq": TrainFreq(max(1, hp["update_every"] // n_envs), "step"),
            "gradient_steps": _gradient_steps(hp),
            "action_noise": _noise_from_hyperparameters(hp, meta["spaces"]["act_dim"]),
            "replay_buffer_class": None if hp["her"] == "none" else HerReplayBuffer,
            "replay_buffer_kwargs": {"handle_timeout_termination":
                                     config.get("handle_timeout_termination") is not False,
                                     **({} if hp["her"] == "none" else {
                                         "goal_selection_strategy": hp["her"],
                                         "n_sampled_goal": hp["her_k"]})},
            "optimize_memory_usage": memory, "n_steps": hp["n_steps"],
            "policy_kwargs": _saved_policy_kwargs(hp), "seed": hp["seed"]}
    for name in native_class.AGENT_KWARGS:            # TD3's three, under SB3's names
        args[native_class.SPECS[name].sb3] = hp[name]
    return args


# load() arguments that are attributes of the model, not hyperparameters that build it
LOAD_ATTRIBUTES = ("verbose", "stats_window_size", "tensorboard_log", "seed")


def _replacements(native_class, saved, kwargs, custom_objects):
    """(SB3 arguments, attributes) for load(): the file's arguments ``saved`` with those
    ``kwargs`` and ``custom_objects`` replace (custom_objects: only names the file holds, as
    SB3's), normalized as the constructor takes them; attributes to set."""
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict or None, got {custom_objects!r}")
    held = set(saved) | set(LOAD_ATTRIBUTES) | set(_attributes.SAVED)
    custom = custom_objects or {}
    ignored = sorted(map(str, set(custom) - held))
    if ignored:
        warnings.warn(f"custom_objects names {ignored}, which the file does not hold: ignored "
                      "(as SB3's load does); it holds the SB3 arguments and attributes "
                      f"{sorted(held)}", UserWarning, stacklevel=3)
    given = {k: v for k, v in custom.items() if k in held}
    source = {k: f"custom_objects[{k!r}]" for k in given}     # (for the errors)
    given.update(kwargs)
    source.update((k, k) for k in kwargs)
    unknown = sorted(set(given) - held)
    if unknown:
        raise ValueError(f"load() got {unknown}: neither SB3 arguments of the model nor its "
                         f"saved attributes (those: {sorted(held)})")
    args, attributes = dict(saved), {}
    for name, value in given.items():
        if name in LOAD_ATTRIBUTES or name in _attributes.SAVED:
            attributes[name] = value
        elif name == "policy_kwargs":
            spec = native_class.SPECS["n_critics"]
            if (_policy_sizes(value, spec, multi_input=True)
                    != _policy_sizes(saved[name], spec, multi_input=True)):
                raise ValueError(f"load(policy_kwargs={value!r}): the saved model's are "
                                 f"{saved[name]!r}; the networks cannot change")
        elif name == "n_steps":                 # (another n rebuilds: attributes.REBUILD)
            args[name] = check_hyperparameter(source[name], value,
                                              native_class.SPECS["n_steps"])
        elif name == "replay_buffer_class":
            her = value is not None and is_her_class(value)
            if her != (saved[name] is not None):
                raise ValueError(f"load(replay_buffer_class={value!r}): the file's model has "
                                 f"{'a HerReplayBuffer' if saved[name] else 'a uniform buffer'}"
                                 ", which a load cannot change")
        elif name == "train_freq":
            args[name] = _train_freq(value)
        elif name == "learning_rate":
            _check_learning_rate(source[name], value)
            args[name] = value
        elif name == "replay_buffer_kwargs":    # (checked against the file's buffer on load)
            args[name] = dict(value or {})
            _handle_timeout_termination(args[name])
        else:
            args[name] = value
    return args, attributes


def _returns(buffer):
    """(n_steps, gamma) of a replay buffer's n-step returns; (1, None) for one-step ones."""
    n = getattr(buffer, "n_steps", 1)
    return (n, buffer.gamma if n > 1 else None)


def _gradient_steps(hp):
    """SB3's gradient_steps from numddpg's hyperparameters ``hp`` (0: never trains)."""
    if hp["update_after"] >= NEVER:
        return 0
    return -1 if hp["gradient_steps"] is None else hp["gradient_steps"]


def _noise_from_hyperparameters(hp, act_dim):
    """The SB3 noise equal to numddpg's noise hyperparameters (None for 'none')."""
    zeros = np.zeros(act_dim)
    if hp["noise"] == "gaussian":
        return NormalActionNoise(zeros, np.full(act_dim, hp["act_noise"]))
    if hp["noise"] == "ou":
        return OrnsteinUhlenbeckActionNoise(zeros, np.full(act_dim, hp["ou_sigma"]),
                                            theta=hp["ou_theta"], dt=hp["ou_dt"])
    return None


SB3_SECTION = {"learning_rate", *_attributes.SECTIONS}    # what a file's "sb3" holds


class SB3Records:
    """What numddpg.sb3 keeps in a native model's checkpoint besides numddpg's own record: the
    section "sb3", {"learning_rate": numddpg.sb3.schedules' record of a schedule}, written
    only for a schedule (a number is the saved pi_lr)."""

    sb3_record = None          # set by the SB3 model before it saves; read back by load

    def extra_records(self):
        return {} if self.sb3_record is None else {"sb3": self.sb3_record}

    def restore_extra_records(self, meta, where):
        """The "sb3" section of a loaded file (its schedule record is checked when the SB3
        model rebuilds it, its attributes by numddpg.sb3.attributes.checked)."""
        rec = meta.get("sb3")
        if rec is not None and not (isinstance(rec, dict) and set(rec) <= SB3_SECTION):
            raise _checkpoint.CheckpointError(f"{where}: section sb3 {str(rec)[:200]} must be a "
                                              f"dict of {sorted(SB3_SECTION)}")
        self.sb3_record = rec


class OnVecNormalize:
    """A native model's loop parts on SB3's VecNormalize: with a VecNormalize training env
    (its original observations and rewards stored), the loop trains with
    numddpg.sb3.vecnormalize's parts, else with the model's own."""

    def loop_parts(self):
        parts = super().loop_parts()
        normalization = Normalization.of(self.env)
        return parts if normalization is None else normalization.loop_parts(*parts[:3])


class NativeDDPG(SB3Records, OnVecNormalize, _algorithms.DDPG):
    """numddpg's DDPG as numddpg.sb3 builds it: batch_size may exceed buffer_size (SB3 then
    samples with replacement from the rows there are, as numddpg's buffer always samples)."""

    batch_within_buffer = False


class NativeTD3(SB3Records, OnVecNormalize, _algorithms.TD3):
    """numddpg's TD3 as numddpg.sb3 builds it (batch_size may exceed buffer_size)."""

    batch_within_buffer = False


class TD3(OffPolicySB3):
    """SB3's TD3 (signature and defaults of stable_baselines3.TD3) on numddpg's TD3 loop.

    ``TD3("MlpPolicy", env, learning_rate=1e-3, buffer_size=1_000_000, learning_starts=100,
    batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, action_noise=None,
    ..., policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, ...,
    policy_kwargs=dict(net_arch=[400, 300]), verbose=0, seed=None, device="auto")``; see the
    module docstring for the mapping and docs/sb3.md for the table.
    """

    native_class = NativeTD3
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

    native_class = NativeDDPG
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


class Policy(PolicyParts):
    """SB3's ``model.policy`` (numddpg.sb3.parts.Policy) with SB3's ``Policy.load``, here
    because reading ``policy.save``'s file makes a model of this module's classes."""

    @classmethod
    def load(cls, path, device="auto"):
        """What ``save`` wrote at ``path``: the policy of the model it holds (every network,
        ``predict``, ``state_dict``); a policy file (``actor.save``'s, numddpg's export) gives
        a SavedPolicy (the actor)."""
        check_device(device)
        return load_policy_file(path)


def load_policy_file(path):
    """SB3's ``policy_class.load(path)`` on a file numddpg.sb3 wrote there: ``policy.save``'s (a
    model file without its buffer) gives the policy of the model it holds, every network;
    ``actor.save``'s (numddpg's policy file, as ``numddpg export`` writes) a SavedPolicy."""
    path = _file_path("path", path, "")
    meta = _checkpoint.read_meta(path)
    if meta["kind"] == "policy":
        return SavedPolicy.load(path)
    models = {cls.native_class.algo: cls for cls in (DDPG, TD3)}
    if meta["kind"] != "algorithm" or meta.get("algo") not in models:
        raise _checkpoint.CheckpointError(
            f"{path}: a {meta['kind']!r} file; Policy.load reads what policy.save (a model "
            "file) or policy.actor.save (a policy file) wrote")
    with warnings.catch_warnings():            # (a policy is not trained on: no buffer to miss)
        warnings.simplefilter("ignore", BufferMissingWarning)
        return models[meta["algo"]].load(path).policy
