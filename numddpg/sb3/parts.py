"""A model's parts under SB3's names, as NumPy objects (numddpg has no torch modules):

    model.policy          Policy: ``actor``, ``actor_target`` (numddpg.kernels.nn.MLP: flat
                          ``params``, per-layer ``weights`` and ``biases`` views), ``critic``,
                          ``critic_target`` (Critics: SB3's ContinuousCritic names, ``qf0``,
                          ``qf1``, ... ``q_networks``, over the n critics' MLPs), ``device``
                          "cpu", ``predict``, ``set_training_mode``
    model.replay_buffer   ReplayBufferView: SB3's ``size()``, ``pos``, ``full``,
                          ``buffer_size``, ``observations``, ``actions``, ``rewards``,
                          ``next_observations``, ``dones`` (views of numddpg's rows, one env
                          axis of 1), and numddpg's own ReplayBuffer attributes (``n_steps``
                          and ``gamma`` too: with n-step returns an NStepReplayBufferView)
    get_parameters()      SB3's dicts (numddpg.sb3.parameters): the policy's state dict and the
                          two Adam states, under SB3's names and torch's shapes
"""
import abc
import sys
import warnings

import numpy as np

from ..training.acting import Policy as ActingPolicy
from . import parameters as _parameters

SB3_BUFFERS = "stable_baselines3.common.buffers"    # read from sys.modules, never imported


class Device(str):
    """The device "cpu" with torch.device's ``type`` (SB3's code reads ``policy.device.type``)."""

    @property
    def type(self):
        return str(self)


CPU = Device("cpu")


def check_device(device):
    """The device numddpg uses for SB3's ``device`` argument (a string or a torch.device): the
    CPU for "auto" and "cpu"; for "cuda" too, with a warning (SB3 falls back to the CPU where
    CUDA is unavailable, and numddpg's kernels have no other device); anything else is refused."""
    kind = str(getattr(device, "type", device))
    if kind in ("auto", "cpu"):
        return CPU
    if kind == "cuda" or kind.startswith("cuda:"):
        warnings.warn(f"device={str(device)!r}: numddpg's kernels run on the CPU, so the CPU is "
                      "used (as SB3 does where CUDA is unavailable)", UserWarning, stacklevel=3)
        return CPU
    raise ValueError(f"device={device!r}: numddpg runs on the CPU only (NumPy/Numba kernels); "
                     "use device='cpu' or 'auto'")


class Critics:
    """SB3's ContinuousCritic over the agent's n critics (or their targets), the live MLPs:
    ``q_networks`` (a list), ``qf0`` .. ``qf<n-1>``, ``n_critics``; ``forward(obs, actions)``
    (also the call) the tuple of their Q(s, a) (B, 1) and ``q1_forward`` critic 1's, for
    observations as the networks read them and actions in the env's units (numddpg's critics
    read a, not SB3's rescaled [-1, 1]).  Any other attribute is critic 1's (``params``,
    ``weights``, ``sizes``...: ``model.critic`` was critic 1's MLP before there were n)."""

    def __init__(self, nets):
        self.q_networks = list(nets)
        self.n_critics = len(self.q_networks)

    def __getattr__(self, name):
        if name.startswith("qf") and name[2:].isdigit() and int(name[2:]) < len(
                self.__dict__.get("q_networks", ())):
            return self.q_networks[int(name[2:])]
        if name in ("q_networks", "n_critics"):
            raise AttributeError(name)
        return getattr(self.q_networks[0], name)

    def forward(self, obs, actions):
        """(Q_1(s, a), ..., Q_n(s, a)), each (B, 1), for obs (B, o) and actions (B, a)."""
        x = np.concatenate([np.atleast_2d(obs), np.atleast_2d(actions)], axis=1)
        return tuple(net.forward(x) for net in self.q_networks)

    __call__ = forward

    def q1_forward(self, obs, actions):
        """Q_1(s, a) (B, 1): the critic the actor follows."""
        return self.forward(obs, actions)[0]

    def __repr__(self):
        return f"Critics(n_critics={self.n_critics}, qf0={self.q_networks[0]!r})"


class Actor:
    """SB3's Actor, ``model.policy.actor``: the live actor MLP (any attribute is the MLP's:
    ``params``, ``weights``, ``sizes``, ``forward``...) with SB3's ``predict`` (the model's),
    ``save`` (numddpg's policy file: the actor alone, readable with NumPy alone by
    ``numddpg.load_policy``) and ``load`` (a SavedPolicy)."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        if name.startswith("__") or "_model" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self._model.native.agent.actor, name)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """The model's ``predict`` (its actions are the actor's)."""
        return self._model.predict(observation, state, episode_start, deterministic)

    def save(self, path):
        """The actor as numddpg's policy file at exactly ``path``."""
        self._model.native.save_policy(path)

    @classmethod
    def load(cls, path, device="auto"):
        """The policy file at ``path`` (``save``'s, numddpg's export) as a SavedPolicy."""
        check_device(device)
        return SavedPolicy.load(path)

    def __repr__(self):
        return f"Actor({self._model.native.agent.actor!r})"


class Policy:
    """SB3's ``model.policy`` of ``model`` (an SB3-layer model): its networks are the live
    agent's, so an update changes them and a change of their ``params`` changes the model."""

    device = CPU

    def __init__(self, model):
        self._model = model
        self.training = False

    @property
    def _agent(self):
        return self._model.native.agent

    actor = property(lambda self: Actor(self._model))
    critic = property(lambda self: Critics(self._agent.critics))
    actor_target = property(lambda self: self._agent.actor_targ)
    critic_target = property(lambda self: Critics(self._agent.critics_targ))
    observation_space = property(lambda self: self._model.observation_space)
    action_space = property(lambda self: self._model.action_space)

    def __getattr__(self, name):
        """critic<k> and critic<k>_target (k >= 2): critic k's MLP and its target's (as TD3's
        critic2 was before ``critic`` held them all)."""
        k = name[len("critic"):].removesuffix("_target")
        if name.startswith("critic") and k.isdigit() and 2 <= int(k) <= getattr(
                self._agent, "n_critics", 0):
            return getattr(self._agent, f"critic{k}" + ("_targ" if name.endswith("_target")
                                                          else ""))
        raise AttributeError(name)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """The model's ``predict``."""
        return self._model.predict(observation, state, episode_start, deterministic)

    def __call__(self, observation):
        """The deterministic action for one observation or a batch (numddpg's Policy call)."""
        return self._model.native.policy(observation)

    def state_dict(self):
        """SB3's state dict of the policy (actor, actor_target, critic, critic_target), copies
        under SB3's names and torch's shapes (numddpg.sb3.parameters)."""
        return _parameters.as_tensors(_parameters.policy_state_dict(self._agent))

    def load_state_dict(self, state_dict, strict=True):
        """Put ``state_dict`` (as ``state_dict`` returns; without ``strict``, any part of it)
        into the live networks, checked first (ParameterError: a ValueError, and a
        RuntimeError as torch's)."""
        _parameters.load_policy_state_dict(self._agent, state_dict, strict)

    def save(self, path):
        """SB3's ``policy.save``: every network of the policy (actor, critics, their targets)
        at exactly ``path``, as the model's file without its replay buffer (numddpg.sb3.model's
        ``Policy.load``, which needs the model classes, reads it back).  ``actor.save`` writes
        the actor alone as numddpg's policy file."""
        self._model.save_policy_networks(path)

    def set_training_mode(self, mode):
        """SB3 switches torch's train/eval mode (batch norm, dropout); numddpg's MLPs have no
        such layers, so only ``training`` records it."""
        self.training = bool(mode)

    def __repr__(self):
        return f"Policy(actor={self.actor!r}, critic={self.critic!r}, device='cpu')"


class Count(int):
    """A row count that is also SB3's ``size()`` method: ``buffer.size == 30`` and
    ``buffer.size() == 30`` both hold."""

    def __call__(self):
        return int(self)


class ReplayBufferView:
    """numddpg's ReplayBuffer ``buffer`` under SB3's names as well (the module docstring).  SB3
    keeps (buffer_size, n_envs, ...) arrays; numddpg one row per transition, shown here as
    (buffer_size, 1, ...).  numddpg stores d = terminated (a time limit's end is stored as
    not done and bootstraps): ``dones`` is that, and ``timeouts`` all zero, so that SB3's
    ``dones * (1 - timeouts)`` is what training reads.  ``actions`` are in the env's units
    (SB3's buffer holds them rescaled to [-1, 1])."""

    device = CPU
    n_envs = 1

    def __init__(self, buffer, handle_timeout_termination=True):
        self.buffer = buffer
        self.handle_timeout_termination = handle_timeout_termination

    size = property(lambda self: Count(self.buffer.size))
    pos = property(lambda self: self.buffer.ptr)
    full = property(lambda self: self.buffer.size == self.buffer.max_size)
    buffer_size = property(lambda self: self.buffer.max_size)
    observations = property(lambda self: self.buffer.obs[:, None])
    actions = property(lambda self: self.buffer.act[:, None])
    rewards = property(lambda self: self.buffer.rew[:, None])
    next_observations = property(lambda self: self.buffer.obs2[:, None])
    dones = property(lambda self: self.buffer.done[:, None])
    timeouts = property(lambda self: np.zeros_like(self.buffer.done)[:, None])

    def add(self, obs, next_obs, action, reward, done, infos):
        """SB3's ``add``: one step of n envs (obs, next_obs (n, obs_dim), action (n, act_dim)
        in the env's units, reward and done (n,), infos n dicts), each env's transition a
        row; d = done, but not for a time limit's end (info "TimeLimit.truncated") unless
        handle_timeout_termination is False.  NonFiniteTransition (nothing stored) for NaN
        or inf."""
        buffer = self.buffer
        obs, next_obs = (np.asarray(x).reshape(-1, buffer.obs_dim) for x in (obs, next_obs))
        action = np.asarray(action).reshape(-1, buffer.act_dim)
        reward, done = np.asarray(reward).reshape(-1), np.asarray(done).reshape(-1)
        n = obs.shape[0]
        if not (next_obs.shape[0] == action.shape[0] == reward.size == done.size == len(infos)
                == n):
            raise ValueError(f"add: obs, next_obs, action, reward, done and infos must hold one "
                             f"entry per env; got {obs.shape[0]}, {next_obs.shape[0]}, "
                             f"{action.shape[0]}, {reward.size}, {done.size}, {len(infos)}")
        for i in range(n):
            truncated = bool(infos[i].get("TimeLimit.truncated", False))
            timeout = self.handle_timeout_termination and truncated
            buffer.store(obs[i], action[i], float(reward[i]), next_obs[i],
                         float(bool(done[i]) and not timeout), truncated=truncated, env=i)

    def extend(self, *args, **kwargs):
        """SB3's ``extend``: ``add`` for each step of arrays with a leading step axis."""
        for data in zip(*args):
            self.add(*data)

    def __getattr__(self, name):
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.buffer, name)

    def __len__(self):
        return self.buffer.size

    def __repr__(self):
        return f"{type(self).__name__}({self.buffer!r})"


class NStepReplayBufferView(ReplayBufferView):
    """The view of a buffer with n-step returns (``n_steps`` > 1, ``gamma``): SB3's
    NStepReplayBuffer's role."""


def buffer_view(buffer, handle_timeout_termination=True):
    """``model.replay_buffer`` for numddpg's uniform ``buffer``: its ReplayBufferView, or with
    n-step returns its NStepReplayBufferView.  Where the process has imported SB3's buffers
    module (numddpg never imports it), NStepReplayBufferView is first registered as a virtual
    subclass of SB3's NStepReplayBuffer (abc's ``register``; so of its ReplayBuffer too), so
    that SB3 code's ``isinstance(model.replay_buffer, NStepReplayBuffer)`` sees the role it
    plays; SB3's ``sample`` and ``_get_samples`` are not among the view's."""
    base = getattr(sys.modules.get(SB3_BUFFERS), "NStepReplayBuffer", None)
    if isinstance(base, abc.ABCMeta) and not issubclass(NStepReplayBufferView, base):
        base.register(NStepReplayBufferView)
    n_steps = getattr(buffer, "n_steps", 1)
    view = NStepReplayBufferView if n_steps > 1 else ReplayBufferView
    return view(buffer, handle_timeout_termination)


class SavedPolicy(ActingPolicy):
    """A policy file read back (``Policy.load``): numddpg's acting policy (the model's, so its
    actions are the model's to the bit) with SB3's ``predict`` and the actor's part of the
    policy's state dict."""

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """(action(s), None) for one flat observation (obs_dim,) or a batch (n, obs_dim);
        deterministic whatever ``deterministic`` says, as the model's."""
        return self(observation), None

    def state_dict(self):
        """{"actor.mu.<2l>.weight", ...: the actor's tensors} (the file holds no critic)."""
        return _parameters.as_tensors(
            dict(_parameters.network_tensors("actor.mu", self.params, self.layer_sizes)))
