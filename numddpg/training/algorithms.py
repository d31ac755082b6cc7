"""DDPG for users: ``DDPG(env).learn(steps)``, ``predict``, ``evaluate`` (the training loop).

The loop of ``OffPolicyAlgorithm.learn``, one env step at a time (Spinning Up's pseudocode):

    a = uniform in [low, high]                       while t < start_steps
      = clip(mid + half (tanh(actor(s)) + n), low, high)  after, n from noise.py
    s', r, terminated, truncated = env.step(a)
    store (s, a, r, s', d = terminated)              truncation (time limit or max_ep_len) is
                                                     *not* an end of the MDP: d = 0 and s' is the
                                                     true last observation, so it bootstraps
    if the episode ended: reset (seed drawn from the loop's generator)
    if t >= update_after and t % update_every == 0:  update_every updates, one jitted call
    if the epoch is over: num_test_episodes deterministic episodes on a separate env,
                          one row of progress.csv, policy.npz saved

Randomness lives in exactly three places, so that a run is reproducible from its seed and can
later be resumed exactly: the agent's ``rng_state`` (minibatch indices), the loop's numpy
Generator ``rng`` (random actions, exploration noise, every env reset seed, test envs included)
and the OU noise state ``noise_process.x``.  Loop counters are attributes (``t``, ``epoch``,
``episodes``, ``ep_ret``, ``ep_len``).

``DDPG`` is ``OffPolicyAlgorithm`` with ``agent_class = DDPGAgent``; another algorithm on the same
loop (TD3) names its own agent class, its table of hyperparameters (``SPECS``, from
numddpg.hyperparameters) and which of them the agent's constructor takes (``AGENT_KWARGS``).
"""
import contextlib
import difflib
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..checks import MAX_CHUNKS, check_int, check_memory
from ..engine.agents import (AGENT_OPTIONAL_KEYS, N_STATS, ST_LOSS_PI, DDPGAgent, TD3Agent,
                             agent_arrays, agent_layer_sizes, agent_state)
from ..engine.buffer import STORED, ReplayBuffer, BAD_WHAT
from ..engine.hyperparameters import DDPG_TABLE, TD3_EXTRA, TD3_TABLE
from ..engine.hyperparameters import check as check_hyperparameter
from ..engine.noise import make_noise, noisy_action, uniform_action
from ..engine.normalizer import ObsNormalizer, normalize_into
from ..engine.presets import preset_for
from ..files import checkpoint as _checkpoint
from ..files import rundir as _rundir
from ..files import policy as _policy_file
from ..files import runlog as _runlog
from ..files.checkpoint import CheckpointError
from ..kernels import jitcache as _jitcache
from ..kernels import threads as _threads
from ..kernels.nn import acts_size, mlp_forward
from .envs import (EnvError, EnvFailure, check_obs, check_reward, check_rewards, check_spaces,
                   env_id as _env_id, env_record, is_vector, make_env, make_twin, split_module)
from .runfile import (CHECKPOINT_FILE, POLICY_FILE, STATS_ARRAY, check_belongs,
                      check_run_config, finite_or_none, make_saved_env, plain,
                      read_run_checkpoint)

STAT_NAMES = ("loss_q", "loss_pi", "q_mean", "q_std")    # columns of update_burst's statistics
assert len(STAT_NAMES) == N_STATS


# The NaN guard scans every array at least once per this many updates (see _check_finite).
FULL_SCAN_UPDATES = 1000


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinite loss, gradient or parameter (it stops there)."""


class RunWriteError(OSError):
    """A file of the run directory could not be written (disk full, ...); nothing was lost."""

    def __str__(self):
        return self.strerror

# name: (default, meaning), from the one table of numddpg.hyperparameters (kinds and ranges
# there too); a preset (numddpg.presets) replaces some defaults per environment.
HYPERPARAMETERS = {name: (h.default, h.meaning) for name, h in DDPG_TABLE.items()}


# ---------------------------------------------------------------------------------------------
# The deterministic policy alone: acting, saving, loading
# ---------------------------------------------------------------------------------------------

class Policy:
    """mu(s) = mid + half * tanh(MLP_theta(s)), acting on one observation at a time.

    ``act`` reuses preallocated arrays (it is on the training loop's hot path): the array it
    returns is overwritten by the next call.  ``params`` is used by reference, so a policy built
    on an agent's live actor parameters follows its updates.
    """

    def __init__(self, params, sizes, mid, half, low, high, act_dtype=np.float32, meta=None,
                 obs_norm=None):
        self.params = params
        self.obs_norm = obs_norm                 # numddpg.normalize.ObsNormalizer, or None
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.dtype = params.dtype
        self.mid = np.asarray(mid, dtype=self.dtype)
        self.half = np.asarray(half, dtype=self.dtype)
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.obs_dim, self.act_dim = int(self.sizes[0]), int(self.sizes[-1])
        self.meta = dict(meta or {})
        self._x = np.zeros((1, self.obs_dim), self.dtype)     # the observation as a batch of 1
        self._acts = np.empty(acts_size(tuple(self.sizes), 1), self.dtype)
        self._zeros = np.zeros(self.act_dim, np.float64)
        self.act_dtype = np.dtype(act_dtype)     # the env's; the kernels' is float32/float64
        self._a = np.zeros(self.act_dim, kernel_dtype(self.act_dtype))

    @classmethod
    def from_agent(cls, agent, act_dtype=np.float32, meta=None, obs_norm=None):
        return cls(agent.actor.params, agent.actor.sizes, agent.mid, agent.half,
                   agent.act_low, agent.act_high, act_dtype, meta, obs_norm)

    def act(self, obs, noise=None):
        """clip(mid + half (tanh(actor(obs)) + noise), low, high) for one obs (obs_dim,).

        noise: (act_dim,) float64 in half-range units, or None for the deterministic action.
        """
        if self.obs_norm is None:
            self._x[0] = obs
        else:
            n = self.obs_norm
            normalize_into(obs, n.shift, n.scale, n.clip, self._x[0])
        u = mlp_forward(self.params, self.sizes, True, self._x, self._acts)
        noisy_action(u[0], self.mid, self.half, self._zeros if noise is None else noise,
                     self.low, self.high, self._a)
        return self._a

    def __call__(self, obs):
        """Deterministic actions for obs (obs_dim,) or (B, obs_dim), as a new array."""
        obs = np.asarray(obs)
        if obs.shape[-1:] != (self.obs_dim,) or obs.ndim not in (1, 2):
            raise ValueError(f"obs must have shape ({self.obs_dim},) or (batch, {self.obs_dim}), "
                             f"got {obs.shape}")
        x = self.inputs(obs.reshape(-1, self.obs_dim))
        acts = np.empty(acts_size(tuple(self.sizes), x.shape[0]), self.dtype)
        u = mlp_forward(self.params, self.sizes, True, x, acts)
        a = np.clip(self.mid + self.half * u, self.low, self.high).astype(self.act_dtype)
        return a[0] if obs.ndim == 1 else a


    def inputs(self, obs):
        """The actor's input for observations (B, obs_dim): normalized if the policy
        normalizes, in its dtype, C-contiguous."""
        if self.obs_norm is not None:
            obs = self.obs_norm(obs)
        return np.ascontiguousarray(obs, dtype=self.dtype)


def kernel_dtype(dtype):
    """The dtype the kernels compute an action of ``dtype`` in: itself for float32/float64, and
    float32 for others (float16 spaces: Numba has no float16 arithmetic); env_action casts."""
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def env_action(a, dtype):
    """``a`` in the env's action dtype (a copy only when that differs from the kernels')."""
    return a if a.dtype == dtype else a.astype(dtype)


def save_policy(path, policy):
    """Write ``policy`` (actor params, layer sizes, mid, half, bounds) and its ``meta`` dict to a
    policy file (numddpg.policy's format: a checkpoint of kind "policy"), atomically.  The
    NumPy-only ``numddpg.load_policy`` reads it too."""
    n = policy.obs_norm
    return _policy_file.save_policy(path, policy.params, policy.sizes, policy.mid, policy.half,
                                    policy.low, policy.high, policy.act_dtype,
                                    obs_norm=None if n is None else (n.shift, n.scale, n.clip[0]),
                                    **policy.meta)


def load_policy(path):
    """The Policy saved by ``save_policy`` at ``path`` (a file, or a run directory); raises
    numddpg.CheckpointError for a missing, damaged or foreign file."""
    p = _policy_file.load_policy(path)
    norm = None if p.obs_norm is None else ObsNormalizer.from_map(*p.obs_norm)
    return Policy(p.params, p.layer_sizes, p.mid, p.half, p.low, p.high, p.act_dtype, p.meta,
                  norm)


def run_episodes(policy, env, n_episodes, rng, max_ep_len=None):
    """Returns and lengths of ``n_episodes`` deterministic episodes of ``policy`` on ``env``.

    Every reset is seeded from ``rng`` (a numpy Generator).  Returns two float64 arrays.
    """
    n_episodes = check_int("n_episodes", n_episodes, 0)
    check_memory(16 * n_episodes, f"{n_episodes:,} test episodes' returns and lengths")
    returns = np.zeros(n_episodes)
    lengths = np.zeros(n_episodes)
    act, name, o = policy.act, _env_id(env), policy.obs_dim
    act_dtype = env.action_space.dtype
    for i in range(int(n_episodes)):
        obs = check_obs(env.reset(seed=int(rng.integers(2**31)))[0], o, name, "reset")
        ep_ret, ep_len, over = 0.0, 0, False
        while not over:
            obs, r, terminated, truncated, _ = env.step(env_action(act(obs), act_dtype))
            ep_len += 1
            obs = check_obs(obs, o, name, f"step {ep_len} of a test episode")
            ep_ret += check_reward(r, name, "step of a test episode", ep_len)
            over = terminated or truncated or (max_ep_len is not None and ep_len >= max_ep_len)
        returns[i], lengths[i] = ep_ret, ep_len
    return returns, lengths


@contextlib.contextmanager
def blas_threads(n):
    """BLAS limited to ``n`` threads inside the block (numddpg.threads explains the choice)."""
    limiter = _threads.limit_blas_threads(n)
    try:
        yield
    finally:
        limiter.restore_original_limits()


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

def _table(hyperparameters):
    rows = [f"    {'name':<18} {'default':<12} meaning", "    " + "-" * 78]
    for name, (default, meaning) in hyperparameters.items():
        rows.append(f"    {name:<18} {default!s:<12} {meaning}")
    return "\n".join(rows)


class OffPolicyAlgorithm:
    """An off-policy actor-critic trained by the loop of the module docstring.

    Parameters
    ----------
    env : str or gymnasium.Env
        A registered id ("Pendulum-v1") or an instance with a 1-D Box observation space and a
        1-D Box action space with finite bounds.
    preset : "auto", "none", an env id, or a dict
        "auto" (default) applies numddpg.presets.PRESETS[env id] when there is one; explicit
        hyperparameters override it.
    test_env : gymnasium.Env, optional
        The env for test episodes and ``evaluate``; by default a separate instance of ``env``.
    log : bool
        Write a run directory (config.json, progress.csv, policy.npz) when learning.
    run_dir : path, optional
        The exact run directory (must not exist); by default
        ``runs_root/<env>_<algo>_s<seed>_<timestamp>``.
    tensorboard_log, tb_log_name : optional
        TensorBoard event files under ``tensorboard_log/<tb_log_name>_<N>`` (default name:
        the class name), with Stable-Baselines3's scalar names (numddpg.runlog; the
        ``numddpg[tensorboard]`` extra).
    **hyperparameters
        See the table below.

    Hyperparameters
    ---------------
{table}
    """

    algo = None                 # "ddpg", "td3": names run directories and saved policies
    agent_class = None          # constructor (obs_dim, act_dim, low, high, hidden_sizes=, gamma=,
                                # polyak=, pi_lr=, q_lr=, dtype=, seed=, **AGENT_KWARGS)
    SPECS = DDPG_TABLE          # numddpg.hyperparameters: every hyperparameter it takes
    AGENT_KWARGS = ()           # names of extra hyperparameters the agent's constructor takes

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__ and "{table}" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{table}", _table(cls.hyperparameter_table()))

    @classmethod
    def hyperparameter_table(cls):
        """name: (default, meaning) of every hyperparameter this algorithm takes."""
        return {name: (h.default, h.meaning) for name, h in cls.hyperparameter_specs().items()}

    @classmethod
    def hyperparameter_specs(cls):
        """name: numddpg.hyperparameters.Hyperparameter (default, kind, range, meaning)."""
        return cls.SPECS

    def __init__(self, env, preset="auto", test_env=None, log=True, run_dir=None,
                 runs_root="runs", tensorboard_log=None, tb_log_name=None, **hyperparameters):
        table = self.hyperparameter_table()
        _refuse_unknown(self, hyperparameters, table, "hyperparameters")
        self.env = make_env(env)
        self.env_id = _env_id(self.env)
        self.n_envs = self.env.num_envs if is_vector(self.env) else 0   # 0: one plain env
        self.env_record = env_record(self.env)   # what eval and resume rebuild (envs.py)
        if self.n_envs:
            self._same_step = _autoreset_same_step(self.env)
        # "mymodule:MyEnv-v0": the module that registers the env, recorded so that a later
        # eval/resume can *tell* the user to pass it (a file never makes numddpg import it)
        self.env_module = split_module(env)[0] if isinstance(env, str) else None
        self.preset_name, preset_values = self._resolve_preset(preset)
        self.preset_total_steps = preset_values.pop("total_steps", None)
        hp = {name: default for name, (default, _) in table.items()}
        hp.update(preset_values)
        hp.update(hyperparameters)
        if hp["seed"] is None:                 # draw one, so the run can be repeated from it
            hp["seed"] = int(np.random.SeedSequence().entropy % (2**31))
        self.hyperparameters = self._check_hyperparameters(hp)
        for name, value in self.hyperparameters.items():
            setattr(self, name, value)

        self.obs_dim, self.act_dim, self.act_low, self.act_high = check_spaces(self.env)
        self._check_memory()
        self._test_env = None if test_env is None else self._checked_test_env(make_env(test_env))

        # One seed drives everything: three independent streams spawned from it.
        agent_seq, loop_seq, buffer_seq = np.random.SeedSequence(self.seed).spawn(3)
        self.env.action_space.seed(int(loop_seq.generate_state(1)[0]))
        self._test_env_seed = int(loop_seq.generate_state(2)[1])
        if self._test_env is not None:
            self._test_env.action_space.seed(self._test_env_seed)
        self.rng = np.random.default_rng(loop_seq)
        self.chunks_used, self.threads_record = self._resolve_chunks()
        self.agent = self._make_agent(int(agent_seq.generate_state(1, np.uint64)[0]))
        self.buffer = ReplayBuffer(self.obs_dim, self.act_dim, self.replay_size,
                                   seed=int(buffer_seq.generate_state(1, np.uint64)[0]))
        self.obs_norm = (ObsNormalizer(self.obs_dim, self.obs_clip) if self.normalize_obs
                         else None)
        self.noise_process = make_noise(self.noise, self.act_dim, self.act_noise,
                                        self.ou_sigma, self.ou_theta, self.ou_dt)

        # Loop state (attributes, so that a checkpoint can save and restore all of it).
        self.t = 0                      # env steps taken by learn()
        self.epoch = 0                  # epochs completed
        self.episodes = 0               # training episodes completed
        self.obs = None                 # current observation (None: reset before the next step)
        self.ep_ret = 0.0
        self.ep_len = 0
        self.elapsed = 0.0              # seconds spent in learn()
        self.last_test_return = math.nan

        self.log = bool(log)
        if self.log and run_dir is not None and Path(run_dir).exists():
            raise _rundir.RunDirExists(f"run directory {str(run_dir)!r} already exists; numddpg "
                                       "never overwrites a previous run. Choose another one.")
        self.run_dir = None
        self._run_dir_request = run_dir
        self._runs_root = runs_root
        self._csv = None
        self._ep_seed = None            # reset seed of the current episode
        self._learning = False
        self._checkpoint_every = 0      # set by learn(): steps between checkpoints, 0 for none
        self._checkpoint_t = None       # env step of the last checkpoint written
        self._progress_rows = None      # progress.csv rows a loaded checkpoint counts
        self._lock = None               # the run directory's RunLock, held while learning
        self._runlog = None             # monitor.csv and TensorBoard, open during learn()
        self.log_interval = _runlog.LOG_INTERVAL   # episodes between TensorBoard rollout dumps
        # where TensorBoard event files go (numddpg.runlog); not a hyperparameter: a file that
        # is loaded never chooses where numddpg writes
        self.tensorboard_log, self.tb_log_name = _runlog.check_tensorboard_args(
            tensorboard_log, tb_log_name)
        self._bind_fast_paths()
        self._new_epoch_accumulators()

    # -- construction -------------------------------------------------------------------------
    @property
    def test_env(self):
        """The env of test episodes and ``evaluate``: the one given, or a separate instance of
        the training env, made when first needed (so that a training env numddpg cannot copy,
        such as an AsyncVectorEnv of functions, trains when no test episode is asked for)."""
        if self._test_env is None:
            self._test_env = self._checked_test_env(make_twin(self.env))
            self._test_env.action_space.seed(self._test_env_seed)
        return self._test_env

    @test_env.setter
    def test_env(self, env):
        self._test_env = self._checked_test_env(make_env(env))

    def _checked_test_env(self, env):
        dims = check_spaces(env)[:2]
        if dims != (self.obs_dim, self.act_dim):
            raise EnvError(f"test_env has obs/act dims {dims}, env has "
                           f"{(self.obs_dim, self.act_dim)}")
        return env

    def set_env(self, env):
        """Continue training on ``env`` (an id, an env or a vector env) with the same spaces
        and action dtype; the episode in progress is dropped (the next step resets)."""
        env = make_env(env)
        spaces = check_spaces(env)
        same_box = (np.array_equal(spaces[2], self.act_low)
                    and np.array_equal(spaces[3], self.act_high))
        if spaces[:2] != (self.obs_dim, self.act_dim) or not same_box:
            raise EnvError(f"set_env: {_env_id(env)} has spaces {spaces[:2]} with bounds "
                           f"{spaces[2]}..{spaces[3]}; this model's are "
                           f"{(self.obs_dim, self.act_dim)}, {self.act_low}..{self.act_high}")
        act_space = env.single_action_space if is_vector(env) else env.action_space
        if kernel_dtype(act_space.dtype) != self._a.dtype:
            raise EnvError(f"set_env: {_env_id(env)}'s actions are {act_space.dtype}, this "
                           f"model's {self._a.dtype}")
        self.n_envs = env.num_envs if is_vector(env) else 0
        if self.n_envs:
            self._same_step = _autoreset_same_step(env)
        self.env, self.env_id, self.env_record = env, _env_id(env), env_record(env)
        self.obs, self.ep_ret, self.ep_len = None, 0.0, 0
        self._noises = None
        self._bind_fast_paths()

    def _resolve_preset(self, preset):
        if preset is None or preset == "none":
            return None, {}
        if isinstance(preset, dict):
            _refuse_unknown(self, preset, {**self.hyperparameter_table(), "total_steps": 0},
                            "preset keys")
            return "custom", dict(preset)
        if preset == "auto":
            values = preset_for(self.env_id)
            return (self.env_id if values else None), values
        if isinstance(preset, str):
            values = preset_for(preset)
            if not values:
                from ..engine.presets import PRESETS
                raise ValueError(f"no preset named {preset!r}; presets exist for "
                                 f"{', '.join(PRESETS)} (or use preset='auto' / 'none')")
            return preset, values
        raise ValueError(f"preset must be 'auto', 'none', an env id or a dict, got {preset!r}")

    def _check_hyperparameters(self, hp):
        """``hp`` with every value checked against its kind and range in the table of
        numddpg.hyperparameters (ValueError naming the first bad one and its value)."""
        for name, spec in self.hyperparameter_specs().items():
            hp[name] = check_hyperparameter(name, hp[name], spec)
        if hp["batch_size"] > hp["replay_size"]:
            raise ValueError(f"batch_size ({hp['batch_size']}) must not exceed replay_size "
                             f"({hp['replay_size']}): a minibatch is drawn from the buffer's rows")
        return hp

    def _check_memory(self):
        """TooLarge, before anything is allocated, if the replay buffer, the networks and the
        update's workspace need more memory than is available (the sizes may come from a file
        or a typo: --replay-size 10000000000)."""
        item = np.dtype(self.dtype).itemsize
        o, a, n = self.obs_dim, self.act_dim, self.replay_size
        buffer = n * (2 * o + a + 2) * 4
        sizes_pi = [o, *self.hidden_sizes, a]
        sizes_q = [o + a, *(self.qf_hidden_sizes or self.hidden_sizes), 1]
        critics = 2 if self.algo == "td3" else 1
        chunks = self.chunks or MAX_CHUNKS
        nets = (_policy_file.n_params(sizes_pi) + critics * _policy_file.n_params(sizes_q)) \
            * (5 + chunks) * item                      # params, targ, m, v, grad per chunk
        work = self.batch_size * (sum(sizes_pi) + 2 * critics * sum(sizes_q)) * 4 * item
        check_memory(buffer + nets + work,
                     f"replay_size={n:,} (buffer {buffer / 2**30:,.2f} GiB), "
                     f"hidden_sizes={self.hidden_sizes} and batch_size={self.batch_size} "
                     f"on {self.env_id} (obs_dim={o}, act_dim={a})")

    def _agent_kwargs(self):
        return {name: self.hyperparameters[name] for name in self.AGENT_KWARGS}

    def _make_agent(self, seed, chunks=None):
        return self.agent_class(self.obs_dim, self.act_dim, self.act_low, self.act_high,
                                hidden_sizes=self.hidden_sizes,
                                qf_hidden_sizes=self.qf_hidden_sizes, gamma=self.gamma,
                                polyak=self.polyak, pi_lr=self.pi_lr, q_lr=self.q_lr,
                                dtype=np.dtype(self.dtype), seed=seed,
                                chunks=self.chunks_used if chunks is None else chunks,
                                **self._agent_kwargs())

    def _resolve_chunks(self):
        """The chunks hyperparameter, or numddpg.threads' calibrated choice for this CPU and
        shape; ``threads_record`` says which (config.json's "threads")."""
        if self.chunks is not None:
            return self.chunks, {"source": "chunks hyperparameter"}
        return _threads.calibrated_chunks(lambda c: self._make_agent(0, chunks=c), self.algo,
                                          self.obs_dim, self.act_dim, self.hidden_sizes,
                                          self.batch_size, self.dtype)

    def _bind_fast_paths(self):
        """Preallocated arrays of the per-step code (call again if the agent is replaced)."""
        act_space = self.env.single_action_space if self.n_envs else self.env.action_space
        self.policy = Policy.from_agent(self.agent, act_space.dtype,
                                        meta={"env_id": self.env_id, "algo": self.algo,
                                              "env_module": self.env_module,
                                              "env": self.env_record,
                                              "max_ep_len": self.max_ep_len,
                                              "seed": self.seed},
                                        obs_norm=self.obs_norm)
        self._u01 = np.zeros(self.act_dim, np.float64)      # uniform draws / noise draws
        self._a = np.zeros(self.act_dim, kernel_dtype(act_space.dtype))

    def _new_epoch_accumulators(self):
        self._ep_rets, self._ep_lens, self._update_stats = [], [], []
        self._epoch_t0 = self.t
        self._epoch_clock = time.perf_counter()

    # -- acting -------------------------------------------------------------------------------
    def _random_action(self):
        """Uniform on [low, high] from the loop's generator (not action_space.sample())."""
        self.rng.random(out=self._u01)
        uniform_action(self._u01, self.act_low, self.act_high, self._a)
        return self._a

    def _explore_action(self, obs):
        return self.policy.act(obs, self.noise_process.sample(self.rng, self._u01))

    def predict(self, obs, deterministic=True):
        """(action, None) for obs (obs_dim,) or (batch, obs_dim), like Stable-Baselines3.

        DDPG's policy is deterministic: the action is mu(obs) whatever ``deterministic`` says
        (exploration noise belongs to training, as in SB3).  The second element stands for
        SB3's recurrent state.
        """
        return self.policy(obs), None

    # -- the loop -----------------------------------------------------------------------------
    def _start_episode(self):
        self._ep_seed = int(self.rng.integers(2**31))  # kept: a checkpoint redoes this reset
        obs, _ = self.env.reset(seed=self._ep_seed)
        obs = self._checked_obs(obs, "reset")
        if self.obs_norm is not None and np.all(np.isfinite(obs)):
            self.obs_norm.update(obs)
        if not np.all(np.isfinite(obs)):
            raise EnvFailure(f"{self.env_id} returned a non-finite observation {obs} from reset "
                           f"at env step {self.t}; training stopped")
        self.obs = obs
        self.ep_ret, self.ep_len = 0.0, 0
        self.noise_process.reset()

    def _checked_obs(self, obs, call):
        """An observation from env.reset/step, checked (numddpg.envs.check_obs)."""
        return check_obs(obs, self.obs_dim, self.env_id, f"{call} at env step {self.t}")

    def _non_finite(self, code, obs2, rew):
        return EnvFailure(f"{self.env_id} returned a non-finite {BAD_WHAT[code]} at env step "
                          f"{self.t} (step {self.ep_len} of episode {self.episodes + 1}; NaN, "
                          f"inf, or beyond float32's range): obs={obs2}, reward={rew}; training "
                          "stopped there. Check the env, or wrap it (e.g. "
                          "gymnasium.wrappers.ClipReward / TransformObservation).")

    def learn(self, total_steps=None, progress_bar=True, callback=None):
        """Train for ``total_steps`` env steps (default: the preset's budget, else 400k).

        Writes the run directory on the first call when ``log`` is on; later calls continue
        the same run.  With a run directory, the whole state goes to RUN_DIR/checkpoint.npz
        before the first step, every ``checkpoint_every`` steps (at the next episode end, where
        a resume needs no env state beyond the reset seed) and at the end; ``resume(run_dir)``
        continues from the last one, bit-identical to a run never interrupted.  Raises
        NonFiniteError (and leaves the last checkpoint as it was) if training diverges.

        callback : an object with Stable-Baselines3's callback methods (numddpg.callbacks):
            ``on_training_start(locals, globals)`` once; after every env step
            ``update_locals(locals)`` then ``on_step()``, whose False stops training as a
            normal end would (policy and checkpoint saved); ``on_rollout_end()`` before each
            training round and ``on_rollout_start()`` after it; ``on_training_end()``.
        Returns self.
        """
        if total_steps is None:
            total_steps = self.preset_total_steps or self.steps_per_epoch * 100
        total_steps = check_int("total_steps", total_steps, 1)
        end = self.t + total_steps
        if self.log and self.run_dir is None:
            self._open_run(total_steps)
            if progress_bar:
                print(f"run directory: {self.run_dir}", file=sys.stderr, flush=True)
        if self.run_dir is not None:           # one writer per run directory
            self._lock = self._lock or _rundir.RunLock(self.run_dir)
            self._lock.acquire()
        self._callback = callback
        try:
            if callback is not None:
                callback.on_training_start(locals(), globals())
            self._learn(end, progress_bar)
            if callback is not None:
                callback.on_training_end()
        finally:
            self._callback = None
            if self._lock is not None:
                self._lock.release()
        return self

    def vector_record(self):
        """{"num_envs", "mode"} of a vector env (what make_vec rebuilds it from), else None."""
        if not self.n_envs:
            return None
        mode = "async" if type(self.env).__name__ == "AsyncVectorEnv" else "sync"
        return {"num_envs": self.n_envs, "mode": mode}

    @property
    def runlog(self):
        """The numddpg.runlog.RunLog of the learn() in progress (monitor.csv, TensorBoard),
        or None: e.g. ``model.runlog.add_scalars({"custom/x": 1.0}, model.t)`` in a callback."""
        return self._runlog

    @property
    def num_timesteps(self):
        """Env steps taken so far (Stable-Baselines3's name for ``t``)."""
        return self.t

    def _learn(self, end, progress_bar):
        if self.run_dir is not None or self.tensorboard_log is not None:
            self._runlog = _runlog.RunLog(self.run_dir, self.tensorboard_log,
                                          self.tb_log_name or type(self).__name__,
                                          env_id=self.env_id, t=self.t, episodes=self.episodes,
                                          elapsed=self.elapsed, log_interval=self.log_interval)
        if progress_bar and not _jitcache.kernels_cached():
            print("compiling kernels (first run only, 20-60 s)", file=sys.stderr, flush=True)
        bar = _rundir.ProgressBar(end, initial=self.t, disable=not progress_bar,
                                  desc=f"{self.algo} {self.env_id}")
        # The epoch in progress carries over (after a resume it is half done); only its clock
        # restarts.
        self._epoch_clock = self._learn_started = time.perf_counter()
        every = self.steps_per_epoch if self.checkpoint_every is None else self.checkpoint_every
        self._checkpoint_every = every if self.run_dir is not None else 0
        self._next_checkpoint = self.t + self._checkpoint_every
        if self._checkpoint_every and not (self.run_dir / CHECKPOINT_FILE).exists():
            self._save_checkpoint()
        self._learning, self._diverged, finished = True, False, False
        try:
            with blas_threads(self.blas_threads or _threads.default_blas_threads()):
                self._guard = _threads.ThreadGuard(self.agent)
                (self._loop_vector if self.n_envs else self._loop)(end, bar)
            finished = True
        finally:
            self._learning = False
            self.elapsed += time.perf_counter() - self._learn_started
            bar.close()
            if self._runlog is not None:
                self._runlog.close()
                self._runlog = None
            if self.run_dir is not None and not self._diverged:  # never save NaN parameters
                try:
                    self.save_policy(self.run_dir / POLICY_FILE)
                except OSError as exc:
                    if finished:               # (else keep the error already on its way)
                        raise self._write_error(self.run_dir / POLICY_FILE, exc) from None
                if finished and self._checkpoint_every and self._checkpoint_t != self.t:
                    self._save_checkpoint()       # (unless the last step's one is this state)

    def _loop(self, end, bar):
        env, buffer, callback = self.env, self.buffer, self._callback
        store, step, runlog, obs_norm = buffer.store_fast, env.step, self._runlog, self.obs_norm
        start_steps, update_after = self.start_steps, self.update_after
        update_every, max_ep_len, steps_per_epoch = (self.update_every, self.max_ep_len,
                                                     self.steps_per_epoch)
        n_updates = self.gradient_steps or update_every         # updates per training round
        obs_shape, obs_dtypes = (self.obs_dim,), (np.float32, np.float64)
        act_dtype = self.env.action_space.dtype
        if self.obs is None:
            self._start_episode()
        if callback is not None:
            callback.on_rollout_start()
        while self.t < end:
            obs = self.obs
            a = self._random_action() if self.t < start_steps else self._explore_action(obs)
            obs2, rew, terminated, truncated, info = step(a if a.dtype == act_dtype
                                                          else a.astype(act_dtype))
            self.t += 1
            if not (type(obs2) is np.ndarray and obs2.shape == obs_shape
                    and obs2.dtype in obs_dtypes):            # (the common case, checked fast)
                obs2 = self._checked_obs(obs2, "step")
            rew = check_reward(rew, self.env_id, "step", self.t)
            self.ep_len += 1
            self.ep_ret += rew
            code = store(obs, a, rew, obs2, 1.0 if terminated else 0.0)   # d = terminated only
            if code != STORED:
                raise self._non_finite(code, obs2, rew)
            if obs_norm is not None:
                obs_norm.update(obs2)
            self.obs = obs2
            ended = terminated or truncated or self.ep_len >= max_ep_len
            if ended:
                self._ep_rets.append(self.ep_ret)
                self._ep_lens.append(self.ep_len)
                self.episodes += 1
                if runlog is not None:
                    runlog.on_episode(self.ep_ret, self.ep_len, self.t)
                self._start_episode()
            stop = callback is not None and not self._callback_step(
                callback, obs2, a, rew, ended, info)
            if stop:
                end = self.t                       # stop here, as a normal end would (and, as
            elif self.t >= update_after and self.t % update_every == 0:   # SB3, not train)
                self._train_round(n_updates, bar)
            if self.t - self._epoch_t0 >= steps_per_epoch or self.t == end:
                self._end_epoch(bar)
            if self.ep_len == 0 and self._checkpoint_every and self.t >= self._next_checkpoint:
                self._save_checkpoint()            # an episode just ended: a boundary

    def _train_round(self, n_updates, bar):
        """One training round: ``n_updates`` updates in one jitted burst, then the NaN guard,
        the busy-machine guard, the logs, and the callback's rollout_end/start around it."""
        callback, runlog = self._callback, self._runlog
        if callback is not None:
            callback.on_rollout_end()
        t_burst = time.perf_counter()
        stats = self.agent.update_burst(self.buffer, self.batch_size, n_updates, self.obs_norm)
        self._guard.observe((time.perf_counter() - t_burst) / n_updates)
        self._check_finite(stats)
        self._update_stats.append(stats)
        if runlog is not None:
            runlog.on_updates(stats, self.t)
        bar.update_to(self.t)
        if callback is not None:
            callback.on_rollout_start()

    def _loop_vector(self, end, bar):
        """The loop on a gymnasium vector env of n envs: n transitions per step.

        gymnasium 1.x autoresets an env whose episode ended: in NEXT_STEP mode (the default)
        the step that ended it returns the true final observation, and that env's *next* step
        is its reset (its action ignored, reward 0): that step is no transition and is not
        stored.  In SAME_STEP mode the ending step returns the reset observation and the true
        final one in info["final_obs"], which is what s' is then.  Either way a truncated
        episode bootstraps from its true final observation (d = terminated only).  ``t``
        counts stored transitions; episodes end by the envs' own time limits (max_ep_len is
        not applied: a vector env cannot reset one of its envs on request).
        """
        env, buffer, callback = self.env, self.buffer, self._callback
        n, o, k = self.n_envs, self.obs_dim, self.act_dim
        store, rng, policy, runlog = buffer.store_fast, self.rng, self.policy, self._runlog
        update_every, update_after = self.update_every, self.update_after
        n_updates = self.gradient_steps or update_every
        act_dtype = env.single_action_space.dtype
        noises = self._vector_noises()
        acts = np.empty(acts_size(tuple(policy.sizes), n), policy.dtype)
        a_all = np.zeros((n, k), self._a.dtype)
        if self.obs is None:                   # a fresh start (or a load): every env resets
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            self.obs = check_obs(obs, o, self.env_id, "reset", n)
            if self.obs_norm is not None:
                self.obs_norm.update(self.obs)
            self._vec_ret, self._vec_len = np.zeros(n), np.zeros(n, np.int64)
            self._vec_resetting = np.zeros(n, bool)
            for p in noises:
                p.reset()
        if callback is not None:
            callback.on_rollout_start()
        while self.t < end:
            obs = self.obs
            if self.t < self.start_steps:
                for i in range(n):
                    a_all[i] = self._random_action()
            else:
                u = mlp_forward(policy.params, policy.sizes, True, policy.inputs(obs), acts)
                for i in range(n):
                    noisy_action(u[i], policy.mid, policy.half, noises[i].sample(rng, self._u01),
                                 policy.low, policy.high, a_all[i])
            obs2, rew, term, trunc, infos = env.step(env_action(a_all, act_dtype))
            obs2 = check_obs(obs2, o, self.env_id, f"step at env step {self.t}", n)
            rew = check_rewards(rew, n, self.env_id, self.t)
            term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
            t0 = self.t
            for i in range(n):
                if self._vec_resetting[i]:     # this step was env i's reset, not a transition
                    self._vec_resetting[i] = False
                    noises[i].reset()
                    continue
                ended = term[i] or trunc[i]
                s2 = obs2[i]
                if ended and self._same_step:
                    s2 = check_obs(infos["final_obs"][i], o, self.env_id, f"final_obs of env {i}")
                code = store(obs[i], a_all[i], float(rew[i]), s2, 1.0 if term[i] else 0.0)
                if code != STORED:
                    raise self._non_finite(code, s2, rew[i])
                self.t += 1
                self._vec_len[i] += 1
                self._vec_ret[i] += rew[i]
                if ended:
                    self._ep_rets.append(float(self._vec_ret[i]))
                    self._ep_lens.append(int(self._vec_len[i]))
                    self.episodes += 1
                    if runlog is not None:
                        runlog.on_episode(self._vec_ret[i], self._vec_len[i], self.t)
                    self._vec_ret[i], self._vec_len[i] = 0.0, 0
                    if self._same_step:
                        noises[i].reset()
                    else:
                        self._vec_resetting[i] = True
            self.obs = obs2
            if self.obs_norm is not None:               # (the reset and final ones too)
                self.obs_norm.update(obs2)
            if callback is not None:
                callback.update_locals({"self": self, "new_obs": obs2, "actions": a_all.copy(),
                                        "rewards": rew, "dones": term | trunc, "infos": infos})
                if not callback.on_step():
                    end = t0 = self.t              # stop, and (as SB3) without a last round
            # training rounds due: multiples of update_every (from update_after on) in (t0, t]
            first = max(t0 // update_every + 1, -(-update_after // update_every))
            rounds = max(0, self.t // update_every - first + 1)
            if rounds:
                self._train_round(rounds * n_updates, bar)
            if self.t - self._epoch_t0 >= self.steps_per_epoch or self.t >= end:
                self._end_epoch(bar)
            if self._checkpoint_every and self.t >= self._next_checkpoint:
                self._save_checkpoint()

    def _vector_noises(self):
        """One exploration noise process per env of a vector env (OU noise has a state per
        episode); a noise process set from outside serves them all."""
        if getattr(self, "_noises", None) is None or self._noises[0] is not self.noise_process:
            self._noises = [self.noise_process] + [
                make_noise(self.noise, self.act_dim, self.act_noise, self.ou_sigma,
                           self.ou_theta, self.ou_dt)
                if getattr(self.noise_process, "kind", None) == self.noise else self.noise_process
                for _ in range(self.n_envs - 1)]
        return self._noises

    def _callback_step(self, callback, obs2, a, rew, done, info):
        """Hand one env step to ``callback`` in Stable-Baselines3's locals (arrays with an env
        axis of 1) and return what its on_step says (False: stop training)."""
        callback.update_locals({"self": self, "new_obs": obs2[None], "actions": a[None],
                                "rewards": np.array([rew]), "dones": np.array([done]),
                                "infos": [info]})
        return bool(callback.on_step())       # (as in SB3, a None from _on_step stops too)

    def _check_finite(self, stats, full=False):
        """The NaN guard, after every burst: the burst's losses and Q statistics (K, 4); then,
        every FULL_SCAN_UPDATES updates, before every checkpoint (``full``) and whenever a
        statistic is bad, every parameter, target, Adam moment and the last gradients.

        The statistics alone catch a divergence at the next update: a non-finite weight, target
        weight or moment makes that update's Q values and losses non-finite.  The full scan
        names the array, and keeps the per-step cost of update_every=1 small (scanning ~10^6
        numbers after every update would cost ~0.3 ms).  Raises NonFiniteError."""
        ok = np.isfinite(stats)
        if hasattr(self.agent, "policy_delay"):   # TD3: loss_pi is NaN on critic-only updates
            ok[:, ST_LOSS_PI] |= np.isnan(stats[:, ST_LOSS_PI])
        self._updates_unscanned = getattr(self, "_updates_unscanned", 0) + len(stats)
        # A NaN in the actor's parameters shows only in loss_pi (the critic's update uses the
        # target actor), and TD3's loss_pi is NaN by design on critic-only updates: so the
        # actor's parameters are checked after every burst (np.isfinite(...).all(): ~15 us for
        # (256, 256)'s 72 k parameters, where a float64 sum took ~60-170 us).
        actor_ok = bool(np.isfinite(self.agent.actor.params).all())
        if ok.all() and actor_ok and not full and self._updates_unscanned < FULL_SCAN_UPDATES:
            return
        self._updates_unscanned = 0
        what = None
        if not ok.all():
            k, c = (int(i) for i in np.argwhere(~ok)[0])
            what = (f"{STAT_NAMES[c]} = {stats[k, c]} (update {k + 1} of the {len(stats)} in "
                    "this burst)")
        else:
            for name, arr in self._guarded_arrays():
                if not np.isfinite(arr).all():
                    i = int(np.argwhere(~np.isfinite(arr))[0, 0])
                    what = f"{name} (element {i} = {arr[i]})"
                    break
        if what is None:
            return
        self._diverged = True
        kept = (f"the last good checkpoint, {self.run_dir / CHECKPOINT_FILE} (env step "
                f"{self._checkpoint_t}), is kept as it was"
                if self.run_dir is not None and self._checkpoint_t is not None
                else "no checkpoint was written")
        raise NonFiniteError(
            f"training diverged at env step {self.t} (critic update {self.agent.q_optim.t}): "
            f"non-finite {what}; {kept}. Lower pi_lr/q_lr, or scale the rewards down "
            "(e.g. gymnasium.wrappers.TransformReward).")

    def _guarded_arrays(self):
        """(name, array) of everything the NaN guard watches: the agent's state and gradients."""
        agent = self.agent
        for name, arr in agent._state_arrays().items():
            if arr.dtype.kind == "f":
                kind = "Adam moment" if name[-2:] in ("_m", "_v") else "parameter vector"
                yield f"{kind} {name!r}", arr
        for name in ("_g_pi", "_g_q", "_g_q2"):
            if hasattr(agent, name):
                yield f"gradient {name[1:]!r}", getattr(agent, name)

    def _end_epoch(self, bar):
        steps = self.t - self._epoch_t0
        train_seconds = time.perf_counter() - self._epoch_clock
        test_rets, test_lens = (run_episodes(self.policy, self.test_env, self.num_test_episodes,
                                             self.rng, self.max_ep_len)
                                if self.num_test_episodes else (np.zeros(0), np.zeros(0)))
        self.epoch += 1
        if len(test_rets):
            self.last_test_return = float(np.mean(test_rets))
        row = {"Epoch": self.epoch, "TotalEnvInteracts": self.t}
        row.update(_describe("EpRet", self._ep_rets))
        row.update(_describe("TestEpRet", test_rets))
        row["EpLen"] = _mean(self._ep_lens)
        row["TestEpLen"] = _mean(test_lens)
        if self._update_stats:
            s = np.concatenate(self._update_stats)
            q_mean = float(np.mean(s[:, 2]))
            # pooled std of all Q(s, a) of the epoch's (equal-sized) minibatches
            q_var = float(np.mean(s[:, 3] ** 2 + s[:, 2] ** 2)) - q_mean ** 2
            row.update(AverageQVals=q_mean, StdQVals=math.sqrt(max(q_var, 0.0)),
                       LossPi=_nanmean(s[:, 1]), LossQ=float(np.mean(s[:, 0])))
        else:
            row.update(AverageQVals=math.nan, StdQVals=math.nan, LossPi=math.nan,
                       LossQ=math.nan)
        row["SPS"] = steps / train_seconds if train_seconds > 0 else math.nan
        row["Time"] = self.elapsed + time.perf_counter() - self._learn_started
        self.last_row = row
        if self._runlog is not None:
            self._runlog.on_epoch(row, self.t)
        if self._csv is not None:
            self._csv.write(row)
            self.save_policy(self.run_dir / POLICY_FILE)
        bar.update_to(self.t)
        bar.set_stats(sps=row["SPS"], test_return=row["AverageTestEpRet"])
        self._new_epoch_accumulators()

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, n_episodes=10, env=None, seed=None):
        """(mean, std) of the deterministic policy's return over ``n_episodes`` episodes.

        env : any gymnasium env with this model's spaces (default: the test env).
        seed : seeds the episodes' resets (default: one per call, from the run's seed and the
            number of evaluations so far).  Evaluation has its own generator: it never draws
            from the training loop's, so training interleaved with evaluations is bit-identical
            to training without them."""
        n_episodes = check_int("n_episodes", n_episodes, 1)
        if env is None:
            env = self.test_env
        else:
            env = make_env(env)
            dims = check_spaces(env)[:2]
            if dims != (self.obs_dim, self.act_dim):
                raise EnvError(f"evaluate: env {_env_id(env)} has obs/act dims {dims}, this "
                               f"model's are {(self.obs_dim, self.act_dim)}")
        if seed is None:
            self._evaluations = getattr(self, "_evaluations", 0) + 1
            seed = [self.seed, 7, self._evaluations]
        returns, _ = run_episodes(self.policy, env, n_episodes, np.random.default_rng(seed),
                                  self.max_ep_len)
        return float(np.mean(returns)), float(np.std(returns))

    # -- files --------------------------------------------------------------------------------
    def config(self, total_steps=None):
        """Everything that defines this run, as written to config.json."""
        return {"algo": self.algo, "env_id": self.env_id, "env": self.env_record,
                "env_module": self.env_module,
                "vector": self.vector_record(), "preset": self.preset_name,
                "total_steps": total_steps, "hyperparameters": dict(self.hyperparameters),
                "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "act_low": self.act_low.tolist(), "act_high": self.act_high.tolist(),
                "threads": {"chunks": self.chunks_used, **self.threads_record}}

    def _open_run(self, total_steps):
        self.run_dir = _rundir.create_run_dir(self._run_dir_request, self._runs_root,
                                              self.env_id, self.algo, self.seed)
        self._lock = _rundir.RunLock(self.run_dir).acquire()
        _rundir.write_config(self.run_dir, self.config(total_steps))
        self._csv = _rundir.ProgressCSV(self.run_dir / "progress.csv")

    def save_policy(self, path):
        """Save the current actor to ``path`` (.npz); ``numddpg eval`` and load_policy read it."""
        return save_policy(path, self.policy)

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path, include_buffer=None):
        """Save the whole training state to ``path`` (.npz, written atomically): networks,
        targets, Adam moments and step counts, every generator's state, the loop counters, the
        epoch in progress, and the replay buffer (include_buffer: default ``checkpoint_buffer``;
        without it a loaded model restarts from an empty buffer).  ``load`` restores it.

        Saved at an episode boundary (as learn()'s checkpoints always are), a loaded model
        continues exactly as this one would; saved mid-episode, loading drops that episode.

        The file (a checkpoint of kind "algorithm", numddpg.checkpoint) holds the arrays
        "agent.*" (the agent's state_dict), "buffer.*" (the filled rows and the sampler state),
        "noise.x" (the OU state), "epoch.*" (the epoch's accumulators), "loop.obs" (the first
        observation of the episode the checkpoint is at the start of); its JSON record holds
        algo, env_id, hyperparameters, the agent config, the spaces, the loop generator's
        ``bit_generator.state``, the loop counters, the buffer's ptr/size and the number of
        progress.csv rows written.
        """
        include = self.checkpoint_buffer if include_buffer is None else bool(include_buffer)
        elapsed = self.elapsed + (time.perf_counter() - self._learn_started if self._learning
                                  else 0.0)
        cfg = self.agent.config()
        arrays = agent_arrays(self.agent, "agent.")
        buf_arrays, buf_record = self.buffer.state(include)
        arrays.update({f"buffer.{k}": v for k, v in buf_arrays.items()})
        arrays["noise.x"] = np.asarray(getattr(self.noise_process, "x", np.zeros(0)), np.float64)
        arrays["epoch.ep_rets"] = np.asarray(self._ep_rets, np.float64)
        arrays["epoch.ep_lens"] = np.asarray(self._ep_lens, np.int64)
        arrays[STATS_ARRAY] = (np.concatenate(self._update_stats) if self._update_stats
                               else np.zeros((0, N_STATS), np.float64))
        # (a vector env's episodes end at different steps: its checkpoints are never at a
        # boundary, and a load starts every env's episode afresh)
        if self.obs_norm is not None:
            arrays.update({f"norm.{k}": v for k, v in self.obs_norm.state().items()})
        at_boundary = not self.n_envs and self.obs is not None and self.ep_len == 0
        in_progress = bool(self.n_envs) or (self.obs is not None and self.ep_len > 0)
        if at_boundary:
            arrays["loop.obs"] = np.asarray(self.obs, np.float64)
        meta = {
            "kind": "algorithm", "algo": self.algo, "env_id": self.env_id,
            "env": self.env_record, "env_module": self.env_module,
            "vector": self.vector_record(),
            "preset": self.preset_name, "hyperparameters": plain(self.hyperparameters),
            "config": cfg, "layer_sizes": agent_layer_sizes(cfg),
            "spaces": {"obs_dim": self.obs_dim, "act_dim": self.act_dim,
                       "act_low": self.act_low.tolist(), "act_high": self.act_high.tolist(),
                       "act_dtype": np.dtype(self.env.action_space.dtype).name},
            "rng": plain(self.rng.bit_generator.state),
            "loop": {"t": self.t, "epoch": self.epoch, "episodes": self.episodes,
                     "epoch_t0": self._epoch_t0, "elapsed": float(elapsed),
                     "last_test_return": finite_or_none(self.last_test_return),
                     "episode_seed": int(self._ep_seed) if at_boundary else None,
                     "episode_in_progress": in_progress},
            "buffer": buf_record,
            "logger": {"progress_rows": self.epoch if self._csv is not None else None},
        }
        return _checkpoint.write_checkpoint(path, arrays, meta, allow_nonfinite=(STATS_ARRAY,))

    def _save_checkpoint(self):
        """RUN_DIR/checkpoint.npz, after making the progress rows it counts durable (and after
        the NaN guard's full scan, so that a checkpoint only ever replaces another with a good
        state)."""
        self._check_finite(np.zeros((0, N_STATS)), full=True)
        path = self.run_dir / CHECKPOINT_FILE
        try:
            if self._csv is not None:
                self._csv.sync()
            if self._runlog is not None:
                self._runlog.sync()
            self.save(path)
        except OSError as exc:
            raise self._write_error(path, exc) from None
        self._checkpoint_t = self.t
        self._next_checkpoint = self.t + self._checkpoint_every

    def _restore(self, meta, arrays, where):
        """Put the state read by ``read_run_checkpoint`` into this model, built with the same
        hyperparameters on an env with the same spaces.  Raises CheckpointError if they
        differ.  With a saved episode boundary, the env is reset with the saved seed (the
        first observation must come out equal, else a RuntimeWarning says the resume is
        inexact)."""
        cfg, sp, b = meta["config"], meta["spaces"], meta["buffer"]
        if self.algo != meta["algo"]:
            raise CheckpointError(f"{where}: a {meta['algo']} checkpoint cannot be loaded into "
                                  f"{type(self).__name__} ({self.algo})")
        if self.agent.config() != {**AGENT_OPTIONAL_KEYS, **cfg}:
            raise CheckpointError(f"{where}: the saved agent config {cfg} differs from the one "
                                  f"the saved hyperparameters build here: {self.agent.config()}")
        if ((self.obs_dim, self.act_dim) != (sp["obs_dim"], sp["act_dim"])
                or self.act_low.tolist() != sp["act_low"]
                or self.act_high.tolist() != sp["act_high"]):
            raise CheckpointError(f"{where}: saved for spaces obs_dim={sp['obs_dim']}, act_dim="
                                  f"{sp['act_dim']}, bounds {sp['act_low']}..{sp['act_high']}; "
                                  f"the env {self.env_id} has {self.obs_dim}, {self.act_dim}, "
                                  f"{self.act_low.tolist()}..{self.act_high.tolist()}")
        if (b["max_size"], b["dtype"]) != (self.buffer.max_size, self.buffer.dtype.name):
            raise CheckpointError(f"{where}: buffer max_size={b['max_size']} dtype={b['dtype']} "
                                  f"differs from this model's {self.buffer.max_size} "
                                  f"{self.buffer.dtype.name}")
        noise_x = arrays["noise.x"]
        if noise_x.shape != np.shape(getattr(self.noise_process, "x", np.zeros(0))):
            raise CheckpointError(f"{where}: noise state has shape {noise_x.shape}, this model's "
                                  f"{type(self.noise_process).__name__} has none of that shape")
        try:
            self.rng.bit_generator.state = meta["rng"]
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise CheckpointError(f"{where}: the loop generator's saved state is unusable: "
                                  f"{type(e).__name__}: {e}") from None
        self.agent.load_state_dict(agent_state(arrays, where, "agent."))
        self.buffer.restore({k[len("buffer."):]: v for k, v in arrays.items()
                             if k.startswith("buffer.")}, b)
        if not b["saved"] and b["size"]:
            warnings.warn(f"{where} was saved without its replay buffer: training resumes "
                          f"with an empty buffer (it held {b['size']} transitions), so the "
                          "resumed run differs from an uninterrupted one", RuntimeWarning,
                          stacklevel=3)
        if noise_x.size:
            self.noise_process.x[...] = noise_x
        if self.obs_norm is not None:
            state = {k: arrays[f"norm.{k}"] for k in ("mean", "var", "count")}
            if np.any(state["var"] < 0) or not state["count"][0] > 0:
                raise CheckpointError(f"{where}: observation statistics var={state['var']}, "
                                      f"count={state['count']} (var >= 0, count > 0)")
            self.obs_norm.restore(state)

        loop = meta["loop"]
        self.t, self.epoch, self.episodes = loop["t"], loop["epoch"], loop["episodes"]
        self.elapsed = loop["elapsed"]
        self.last_test_return = (math.nan if loop["last_test_return"] is None
                                 else loop["last_test_return"])
        self._new_epoch_accumulators()
        self._epoch_t0 = loop["epoch_t0"]
        self._ep_rets = arrays["epoch.ep_rets"].tolist()
        self._ep_lens = arrays["epoch.ep_lens"].tolist()
        self._update_stats = [arrays[STATS_ARRAY]] if len(arrays[STATS_ARRAY]) else []
        self.ep_ret, self.ep_len = 0.0, 0
        self.obs = None                       # an episode in progress is dropped: a new one starts
        if loop["episode_seed"] is not None:  # an episode boundary: redo its reset exactly
            self._ep_seed = loop["episode_seed"]
            obs = self._checked_obs(self.env.reset(seed=self._ep_seed)[0], "reset")
            self.noise_process.reset()
            self.obs = obs
            if not np.array_equal(np.asarray(obs, np.float64), arrays["loop.obs"]):
                warnings.warn(f"{self.env_id}.reset(seed={self._ep_seed}) gave a different "
                              "first observation than when the checkpoint was saved: the env's "
                              "reset is not reproducible, so this resume is not exact",
                              RuntimeWarning, stacklevel=3)

    def _write_error(self, path, exc):
        """RunWriteError for a failed write of ``path`` (a full disk, a lost mount)."""
        kept = (f"the previous checkpoint (env step {self._checkpoint_t}) is kept"
                if self._checkpoint_t is not None else "no checkpoint was written yet")
        return RunWriteError(exc.errno, f"cannot write {path} at env step {self.t}: "
                             f"{exc.strerror or exc}; {kept}. Free space (or fix the folder), "
                             f"then continue with: numddpg train --resume {self.run_dir}")

    @classmethod
    def load(cls, path, env=None, test_env=None, log=False, run_dir=None, runs_root="runs",
             env_module=None, tensorboard_log=None, tb_log_name=None):
        """The model saved by ``save`` (or a run's checkpoint.npz) at ``path``.

        env : the env to continue on (default: a new instance of the saved env id); its spaces
            must match.  log/run_dir/runs_root: as in the constructor, for a later learn().
        env_module : the module that registers the saved env id, for a run trained with
            env="mymodule:MyEnv-v0": a file never makes numddpg import a module, you name it.
        Raises numddpg.CheckpointError if the file is damaged or does not fit, EnvError if the
        saved env cannot be made.
        ``OffPolicyAlgorithm.load`` picks the class from the file; ``DDPG.load`` insists on it.
        """
        meta, arrays = read_run_checkpoint(path)
        target = ALGORITHMS.get(meta["algo"]) if cls is OffPolicyAlgorithm else cls
        if target is None or target.algo != meta["algo"]:
            raise CheckpointError(
                f"{path}: this is a {meta['algo']!r} checkpoint; load it with "
                f"{'an algorithm of that name' if target is None else 'its own class'} "
                f"(numddpg.OffPolicyAlgorithm.load picks it), not {cls.__name__}.load")
        hp = dict(meta["hyperparameters"])
        saved_chunks = hp.get("chunks")
        # the saved agent's (checked, at most MAX_CHUNKS; files before chunks existed: 1)
        hp["chunks"] = meta["config"].get("chunks", 1)
        recorded_module = meta.get("env_module")
        if env is None:
            try:
                env = make_saved_env(meta, env_module)
            except EnvError as exc:
                raise CheckpointError(f"{path}: cannot make the env it was trained on: "
                                      f"{exc}") from None
        try:
            model = target(env, preset="none", test_env=test_env, log=log, run_dir=run_dir,
                           runs_root=runs_root, tensorboard_log=tensorboard_log,
                           tb_log_name=tb_log_name, **hp)
        except (EnvError, MemoryError):
            raise
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: cannot rebuild {target.__name__} from the saved hyperparameters: "
                f"{exc}") from None
        model.env_module = model.env_module or env_module or recorded_module
        model.preset_name = meta["preset"]
        if saved_chunks is None:               # calibrated when it was trained: say so again
            model.chunks = model.hyperparameters["chunks"] = None
        model.threads_record = {"source": f"the saved agent ({path})"}
        model._restore(meta, arrays, str(path))
        model._checkpoint_t = model.t
        model._progress_rows = meta["logger"]["progress_rows"]
        return model

    @classmethod
    def resume(cls, run_dir, total_steps=None, progress_bar=True, env=None, env_module=None,
               tensorboard_log=None, tb_log_name=None):
        """Continue the run in ``run_dir`` from its checkpoint.npz up to ``total_steps`` (default:
        the run's own, from config.json), appending to its progress.csv (rows written after
        the checkpoint are dropped first, so none is duplicated).  Returns the model.

        Killed at any moment (even SIGKILL) and resumed, a run ends with parameters
        bit-identical to the same run never interrupted (same machine, same seed): the
        checkpoint holds every generator's state and is taken at an episode boundary.

        The checkpoint must belong to the directory (algo, env, seed and sizes as in its
        config.json).  A run that never wrote its first checkpoint (killed, or a full disk,
        before it) starts again from the beginning in the same directory, from config.json.
        While it runs, the directory is locked (numddpg.files.rundir.RunLock): a second process
        resuming it gets RunDirBusy.  env / env_module: as in ``load``.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise _rundir.RunDirError(f"{str(run_dir)!r} is not a directory; --resume takes the "
                                      "run directory a training run wrote")
        config = check_run_config(_rundir.read_config(run_dir), run_dir)
        lock = _rundir.RunLock(run_dir).acquire()
        try:
            _checkpoint.remove_stale_temporaries(run_dir)  # left by a process killed mid-save
            path = run_dir / CHECKPOINT_FILE
            if path.is_file():
                model = cls.load(path, env=env, env_module=env_module)
                check_belongs(model, config, path)
            else:                              # never checkpointed: start it again, here
                model = cls._restart(config, run_dir, env, env_module)
            total = config["total_steps"] if total_steps is None else int(total_steps)
            model.run_dir, model.log, model._lock = run_dir, True, lock
            model.tensorboard_log, model.tb_log_name = _runlog.check_tensorboard_args(
                tensorboard_log, tb_log_name)
            rows = model._progress_rows if path.is_file() else 0
            if rows is not None:
                _rundir.truncate_progress(run_dir / "progress.csv", rows, missing_ok=not rows)
            model._csv = _rundir.ProgressCSV(run_dir / "progress.csv")
            if total is not None and model.t < total:
                model.learn(total - model.t, progress_bar=progress_bar)
        finally:
            lock.release()
        return model

    @classmethod
    def _restart(cls, config, run_dir, env, env_module):
        """A new model from a run directory's config.json (checked), for a run that died before
        its first checkpoint."""
        target = ALGORITHMS[config["algo"]] if cls is OffPolicyAlgorithm else cls
        if target.algo != config["algo"]:
            raise CheckpointError(f"{run_dir}: config.json is a {config['algo']} run, not "
                                  f"{target.__name__}'s")
        if env is None:
            env = make_saved_env(config, env_module)
        try:
            model = target(env, preset="none", log=False, **config["hyperparameters"])
        except (TypeError, ValueError) as exc:
            if isinstance(exc, EnvError):
                raise
            raise CheckpointError(f"{run_dir}/config.json: cannot rebuild the run from its "
                                  f"hyperparameters: {exc}") from None
        model.env_module = model.env_module or env_module or config.get("env_module")
        model.preset_name = config.get("preset")
        return model

    def __repr__(self):
        return (f"{type(self).__name__}(env={self.env_id!r}, preset={self.preset_name!r}, "
                f"t={self.t}, seed={self.seed})")


def _autoreset_same_step(env):
    """True for a vector env in SAME_STEP autoreset mode, False for NEXT_STEP (gymnasium's
    default); EnvError for DISABLED, whose envs would never start a new episode here."""
    from gymnasium.vector import AutoresetMode
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        raise EnvError(f"{_env_id(env)}: autoreset_mode {mode} is not supported; make the "
                       "vector env with AutoresetMode.NEXT_STEP (the default) or SAME_STEP")
    return mode == AutoresetMode.SAME_STEP


def _refuse_unknown(model, given, table, what):
    """TypeError naming every key of ``given`` not in ``table``, with the closest known name."""
    unknown = [k for k in given if k not in table]
    if unknown:
        close = {k: difflib.get_close_matches(str(k), table, n=1) for k in unknown}
        hint = "; ".join(f"{k!r} (did you mean {c[0]!r}?)" if c else repr(k)
                         for k, c in close.items())
        raise TypeError(f"{type(model).__name__} got unknown {what}: {hint}. "
                        f"Known: {', '.join(table)}")


def _nanmean(xs):
    """Mean over the finite entries (TD3 reports loss_pi = NaN on updates without an actor
    step); NaN when there are none."""
    xs = np.asarray(xs, dtype=np.float64)
    xs = xs[~np.isnan(xs)]
    return float(xs.mean()) if xs.size else math.nan


def _mean(xs):
    return float(np.mean(xs)) if len(xs) else math.nan


def _describe(name, xs):
    if len(xs) == 0:
        return {f"Average{name}": math.nan, f"Std{name}": math.nan, f"Max{name}": math.nan,
                f"Min{name}": math.nan}
    xs = np.asarray(xs, dtype=np.float64)
    return {f"Average{name}": float(xs.mean()), f"Std{name}": float(xs.std()),
            f"Max{name}": float(xs.max()), f"Min{name}": float(xs.min())}


OffPolicyAlgorithm.__doc__ = OffPolicyAlgorithm.__doc__.replace("{table}", _table(HYPERPARAMETERS))


class DDPG(OffPolicyAlgorithm):
    """Deep Deterministic Policy Gradient (Lillicrap et al. 2015) as in Spinning Up.

    ``DDPG(env, **hyperparameters).learn(total_steps)``, then ``predict(obs)`` /
    ``evaluate(n_episodes)``.  See OffPolicyAlgorithm for the loop; the update is
    numddpg.agents.DDPGAgent.

    Parameters
    ----------
    env : str or gymnasium.Env — an id ("Pendulum-v1") or an instance (1-D Box spaces, finite
        action bounds).
    preset : "auto" (default: numddpg.presets for this env id, under explicit values), "none",
        an env id, or a dict.
    test_env : gymnasium.Env, optional — for test episodes (default: a separate instance of env).
    log, run_dir, runs_root : whether and where learn() writes its run directory.

    Hyperparameters (defaults: docs/reference.md §2)
    ------------------------------------------------
{table}

    Example
    -------
    >>> model = DDPG("Pendulum-v1", seed=0)          # doctest: +SKIP  (the Pendulum preset)
    >>> model.learn(20_000)                          # doctest: +SKIP
    >>> action, _ = model.predict(obs)               # doctest: +SKIP
    >>> mean, std = model.evaluate(n_episodes=10)    # doctest: +SKIP
    """

    algo = "ddpg"
    agent_class = DDPGAgent


class TD3(OffPolicyAlgorithm):
    """Twin Delayed DDPG (Fujimoto et al. 2018) on the same loop: two critics and the clipped
    double-Q target, target policy smoothing, and the actor and target updates every
    ``policy_delay`` critic updates.  The update is numddpg.agents.TD3Agent.

    Parameters are DDPG's (see numddpg.DDPG); the hyperparameters add TD3's three.

    Hyperparameters (defaults: docs/reference.md §2)
    ------------------------------------------------
{table}

    Example
    -------
    >>> model = TD3("HalfCheetah-v5", seed=0).learn(1_000_000)   # doctest: +SKIP
    """

    algo = "td3"
    agent_class = TD3Agent
    SPECS = TD3_TABLE
    AGENT_KWARGS = tuple(TD3_EXTRA)      # target_noise, noise_clip, policy_delay


# Algorithms by name, for the command line.
ALGORITHMS = {"ddpg": DDPG, "td3": TD3}
