"""Stable-Baselines3's HerReplayBuffer under its name, on numddpg's hindsight buffer
(numddpg.engine.her, docs/math.md section 10):

    from numddpg.sb3 import TD3, HerReplayBuffer      # was: from stable_baselines3 import ...
    model = TD3("MultiInputPolicy", goal_env, replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"))

``replay_buffer_class`` takes this class or SB3's own (recognized by its name: numddpg never
imports SB3; SB3's ReplayBuffer and DictReplayBuffer are numddpg's uniform buffer, as None).
``buffer_options`` reads ``replay_buffer_kwargs``:

    n_sampled_goal            numddpg's her_k: a drawn transition is relabelled with
                              probability k / (k + 1) (SB3 relabels int(k / (k + 1) * B) rows
                              of each minibatch of B)
    goal_selection_strategy   her: "future", "final", "episode" (any case), or a
                              GoalSelectionStrategy (this module's or SB3's enum)
    copy_info_dict            each step's info dict is kept and handed to compute_reward
                              (in memory: numddpg's files hold no Python objects)
    handle_timeout_termination  as for the uniform buffer

The rewards of relabelled rows come from the env's ``compute_reward(achieved_goal,
desired_goal, infos)``, called once per minibatch with the goals in the env's own form: through
an SB3 VecEnv ``env_method("compute_reward", ..., indices=[0])`` as SB3 calls it
(numddpg.sb3.vecenv), on a gymnasium env its own (numddpg.sb3.spaces).

``model.replay_buffer`` is then a ``HerReplayBuffer``: the native buffer under SB3's names.
"""
import collections
import enum
import warnings

import numpy as np

from ..checks import check_bool, check_int
from ..engine import her as _her
from ..engine.hyperparameters import MAX_SAMPLED_GOALS
from ..training.envs import EnvError
from .parts import Count, ReplayBufferView
from .vecenv import is_vec_env, vec_normalize_of


class GoalSelectionStrategy(enum.Enum):
    """SB3's names of the goals a transition is relabelled with (numddpg.kernels.her)."""

    FUTURE = 0      # achieved at a step of the same episode from this one on
    FINAL = 1       # achieved at the episode's end
    EPISODE = 2     # achieved at any step of the episode


KEY_TO_GOAL_STRATEGY = {s.name.lower(): s for s in GoalSelectionStrategy}

BufferOptions = collections.namedtuple(
    "BufferOptions", "handle_timeout_termination her n_sampled_goal copy_info_dict")
BufferOptions.__doc__ = """SB3's replay buffer arguments as numddpg takes them: her is None
(the uniform buffer) or the strategy's name ("future", "final", "episode")."""

UNIFORM_NAMES = ("ReplayBuffer", "DictReplayBuffer")     # SB3's default classes
HER_KWARGS = ("n_sampled_goal", "goal_selection_strategy", "copy_info_dict",
              "handle_timeout_termination")


def is_her_class(cls):
    """Whether ``cls`` is this module's HerReplayBuffer or SB3's (a class of that name)."""
    return cls is HerReplayBuffer or (isinstance(cls, type) and cls.__name__ == "HerReplayBuffer")


def strategy_name(strategy):
    """"future", "final" or "episode" from a name (any case) or a GoalSelectionStrategy (this
    module's, SB3's: an enum member of that name); ValueError otherwise."""
    name = strategy.lower() if isinstance(strategy, str) else (
        strategy.name.lower() if isinstance(strategy, enum.Enum) else None)
    if name not in KEY_TO_GOAL_STRATEGY:
        raise ValueError(f"replay_buffer_kwargs['goal_selection_strategy']={strategy!r}: "
                         f"expected one of {list(KEY_TO_GOAL_STRATEGY)} or a "
                         "GoalSelectionStrategy")
    return name


def buffer_options(replay_buffer_class, replay_buffer_kwargs):
    """BufferOptions from SB3's ``replay_buffer_class`` and ``replay_buffer_kwargs`` (module
    docstring); ValueError naming what numddpg does not take."""
    cls, kwargs = replay_buffer_class, replay_buffer_kwargs
    her = cls is not None and is_her_class(cls)
    if cls is not None and not her and not (isinstance(cls, type)
                                            and cls.__name__ in UNIFORM_NAMES):
        raise ValueError(f"replay_buffer_class={cls!r}: numddpg has its uniform replay buffer "
                         "(None, or SB3's ReplayBuffer / DictReplayBuffer) and HerReplayBuffer "
                         "(numddpg.sb3's or SB3's)")
    kwargs = {} if kwargs is None else kwargs
    allowed = HER_KWARGS if her else ("handle_timeout_termination",)
    if not isinstance(kwargs, dict) or set(kwargs) - set(allowed):
        what = "HerReplayBuffer takes" if her else "numddpg's uniform replay buffer takes only"
        raise ValueError(f"replay_buffer_kwargs={replay_buffer_kwargs!r}: {what} "
                         f"{', '.join(allowed)}")
    timeouts = check_bool("replay_buffer_kwargs['handle_timeout_termination']",
                          kwargs.get("handle_timeout_termination", True))
    if not her:
        return BufferOptions(timeouts, None, None, False)
    k = kwargs.get("n_sampled_goal", 4)
    if not isinstance(k, bool) and k == 0:
        raise ValueError("replay_buffer_kwargs['n_sampled_goal']=0 relabels nothing: train "
                         "without HerReplayBuffer (replay_buffer_class=None) instead")
    return BufferOptions(
        timeouts, strategy_name(kwargs.get("goal_selection_strategy", "future")),
        check_int("replay_buffer_kwargs['n_sampled_goal']", k, 1, MAX_SAMPLED_GOALS),
        check_bool("replay_buffer_kwargs['copy_info_dict']",
                   kwargs.get("copy_info_dict", False)))


def saved_buffer_options(replay_buffer_kwargs, hp, buffer):
    """Check ``load``'s replay_buffer_kwargs against the saved hyperparameters ``hp``: the
    file fixes the buffer (uniform or HER, its strategy and n_sampled_goal); copy_info_dict
    (not in the file) is applied to ``buffer``."""
    her = hp["her"] != "none"
    opts = buffer_options(HerReplayBuffer if her else None, replay_buffer_kwargs)
    kwargs = replay_buffer_kwargs or {}
    for key, saved, given in (("goal_selection_strategy", hp["her"], opts.her),
                              ("n_sampled_goal", hp["her_k"], opts.n_sampled_goal)):
        if key in kwargs and given != saved:
            raise ValueError(f"load(replay_buffer_kwargs={{{key!r}: {kwargs[key]!r}}}): the "
                             f"file's HerReplayBuffer has {key}={saved!r}, which a load cannot "
                             "change")
    if opts.copy_info_dict:
        buffer.keep_infos()


def check_her_env(env):
    """ValueError unless an SB3 VecEnv ``env`` can recompute HER's rewards as SB3 does (its
    envs' compute_reward, through env_method) from goals it stores as given: VecNormalize must
    leave the goals unnormalized (numddpg stores the normalized observations)."""
    if not is_vec_env(env):
        return
    has_attr = getattr(env, "has_attr", None)
    if not callable(getattr(env, "env_method", None)) or (
            callable(has_attr) and not has_attr("compute_reward")):
        raise EnvError(f"HerReplayBuffer recomputes rewards with the envs' compute_reward("
                       f"achieved_goal, desired_goal, infos) through env_method: {env!r} has "
                       "no such method")
    norm = vec_normalize_of(env)
    if norm is not None and getattr(norm, "norm_obs", False):
        keys = getattr(norm, "norm_obs_keys", None)
        goals = {"achieved_goal", "desired_goal"}
        goals = sorted(goals if keys is None else goals & set(keys))
        if goals:
            raise ValueError(f"HerReplayBuffer with a VecNormalize that normalizes {goals}: "
                             "numddpg stores the normalized observations, and compute_reward "
                             "needs the goals as the env gives them; leave them out of "
                             "norm_obs_keys")


class HerReplayBuffer(ReplayBufferView):
    """SB3's HerReplayBuffer: the class to pass as ``replay_buffer_class``, and what
    ``model.replay_buffer`` is then: numddpg's hindsight buffer ``buffer`` under SB3's names,
    its arrays shaped (buffer_size, n_envs, ...) as SB3's (views of numddpg's rows: slot p of
    env e is row p * n_envs + e).  ``observations`` and ``next_observations`` are
    {key: (buffer_size, n_envs, width)}: each Dict entry as the networks read it, by
    ``layout`` (the model's numddpg.files.dictobs.DictLayout).  Other attributes are the native
    buffer's (``sample``, ``n_sampleable``, ...)."""

    def __init__(self, buffer, layout, handle_timeout_termination=True):
        if not isinstance(buffer, _her.HerReplayBuffer):
            raise TypeError("numddpg.sb3.HerReplayBuffer is made by the model: pass the class as "
                            "replay_buffer_class=HerReplayBuffer (numddpg's own buffer is "
                            f"numddpg.engine.her.HerReplayBuffer), got {buffer!r:.100}")
        super().__init__(buffer)
        self.layout = layout
        self.handle_timeout_termination = bool(handle_timeout_termination)

    def _rows(self, a):
        """The native (N, ...) array ``a`` as (n_slots, n_envs, ...)."""
        b = self.buffer
        return a.reshape((b.n_slots, b.n_envs) + a.shape[1:])

    def _entries(self, obs):
        return {key: self._rows(obs)[..., start:stop]
                for key, start, stop in zip(self.layout.keys, self.layout.starts,
                                            self.layout.stops)}

    size = property(lambda self: Count(self.buffer.size))      # SB3: filled slots
    full = property(lambda self: self.buffer.size == self.buffer.n_slots)
    buffer_size = property(lambda self: self.buffer.n_slots)
    n_envs = property(lambda self: self.buffer.n_envs)
    observations = property(lambda self: self._entries(self.buffer.obs))
    next_observations = property(lambda self: self._entries(self.buffer.obs2))
    actions = property(lambda self: self._rows(self.buffer.act))
    rewards = property(lambda self: self._rows(self.buffer.rew))
    dones = property(lambda self: self._rows(self.buffer.done))
    ep_start = property(lambda self: self._rows(self.buffer.episodes.ep_start))
    ep_length = property(lambda self: self._rows(self.buffer.episodes.ep_len))
    n_sampled_goal = property(lambda self: self.buffer.n_sampled_goal)
    her_ratio = property(lambda self: self.buffer.p_relabel)
    goal_selection_strategy = property(
        lambda self: KEY_TO_GOAL_STRATEGY[self.buffer.goal_selection_strategy])
    copy_info_dict = property(lambda self: self.buffer.infos is not None)

    def truncate_last_trajectory(self):
        """End each env's running episode where the buffer stops, so that its rows may be
        drawn (SB3's method, with its warning): the run that continues will not continue it.
        Its last step bootstraps (with handle_timeout_termination; else it is terminal)."""
        running = np.flatnonzero(self.buffer.episodes.cur_len > 0)
        if running.size:
            warnings.warn(f"truncate_last_traj: the episode that env(s) {running.tolist()} "
                          "had running in the replay buffer ends where the buffer stops; if "
                          "training goes on with that same episode, load the buffer with "
                          "truncate_last_traj=False", UserWarning, stacklevel=3)
        self.buffer.truncate_last_trajectory(terminal=not self.handle_timeout_termination)

    def __repr__(self):
        return f"HerReplayBuffer({self.buffer!r})"
