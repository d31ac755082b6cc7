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
loop (TD3) names its own agent class, extra hyperparameters (``EXTRA_HYPERPARAMETERS``) and which
of them the agent's constructor takes (``AGENT_KWARGS``).
"""
import contextlib
import difflib
import math
import time
from pathlib import Path

import numpy as np

from . import checkpoint as _checkpoint
from . import logger as _logger
from . import policy as _policy_file
from .agents import N_STATS, ST_LOSS_PI, DDPGAgent, TD3Agent
from .buffer import STORED, ReplayBuffer, BAD_WHAT
from .envs import EnvError, check_spaces, env_id as _env_id, make_env, make_twin
from .nn import acts_size, check_dtype, mlp_forward
from .noise import NOISE_TYPES, make_noise, noisy_action, uniform_action
from .presets import preset_for
from .checks import MAX_CHUNKS
from . import threads as _threads

POLICY_FILE = "policy.npz"
CHECKPOINT_FILE = _checkpoint.CHECKPOINT_FILE
STAT_NAMES = ("loss_q", "loss_pi", "q_mean", "q_std")    # columns of update_burst's statistics
assert len(STAT_NAMES) == N_STATS


# The NaN guard scans every array at least once per this many updates (see _check_finite).
FULL_SCAN_UPDATES = 1000


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinite loss, gradient or parameter (it stops there)."""

# name: (default, meaning).  Defaults are the reference's (shared/REFERENCE.md section 2); a
# preset (numddpg.presets) replaces some of them per environment.
HYPERPARAMETERS = {
    "hidden_sizes": ((256, 256), "hidden layer widths of both actor and critic (ReLU)"),
    "replay_size": (1_000_000, "replay buffer capacity (float32 ring arrays)"),
    "gamma": (0.99, "discount factor"),
    "polyak": (0.995, "target averaging weight rho: targ <- rho targ + (1 - rho) online"),
    "pi_lr": (1e-3, "actor Adam learning rate"),
    "q_lr": (1e-3, "critic Adam learning rate"),
    "batch_size": (100, "minibatch rows, sampled uniformly with replacement"),
    "start_steps": (10_000, "env steps of uniform random actions before using the actor"),
    "update_after": (1000, "env steps before the first update"),
    "update_every": (50, "every this many env steps, run this many updates (ratio 1:1)"),
    "act_noise": (0.1, "Gaussian exploration std, in units of the action half-range"),
    "noise": ("gaussian", "exploration noise: 'gaussian' (act_noise) or 'ou' (ou_*)"),
    "ou_theta": (0.15, "Ornstein-Uhlenbeck mean reversion rate (noise='ou')"),
    "ou_sigma": (0.2, "Ornstein-Uhlenbeck scale, in half-ranges (noise='ou')"),
    "ou_dt": (1e-2, "Ornstein-Uhlenbeck time step (noise='ou')"),
    "num_test_episodes": (10, "deterministic test episodes at the end of every epoch"),
    "max_ep_len": (1000, "episode length cap (truncation: bootstrapped, not terminal)"),
    "steps_per_epoch": (4000, "env steps per epoch (one progress.csv row each)"),
    "seed": (None, "seeds networks, minibatches, actions, noise and env resets (None: random)"),
    "dtype": ("float32", "float32 (training) or float64 (gradient checks) networks"),
    "chunks": (None, "row chunks of each minibatch, run on as many threads (None: measured "
                     "once per CPU and shape and cached, numddpg.threads; env NUMDDPG_CHUNKS); "
                     "fixes the summation order, so a run keeps its value"),
    "blas_threads": (None, "BLAS threads of the kernels' products (None: 1, the cores are "
                           "shared through chunks; env NUMDDPG_BLAS_THREADS)"),
    "checkpoint_every": (None, "env steps between checkpoints of the run (at the next episode "
                               "end; None: every epoch, 0: never)"),
    "checkpoint_buffer": (True, "put the replay buffer in checkpoints (False: smaller files, but "
                                "a resumed run restarts from an empty buffer, so it is not "
                                "identical to an uninterrupted one)"),
}


# ---------------------------------------------------------------------------------------------
# The deterministic policy alone: acting, saving, loading
# ---------------------------------------------------------------------------------------------

class Policy:
    """mu(s) = mid + half * tanh(MLP_theta(s)), acting on one observation at a time.

    ``act`` reuses preallocated arrays (it is on the training loop's hot path): the array it
    returns is overwritten by the next call.  ``params`` is used by reference, so a policy built
    on an agent's live actor parameters follows its updates.
    """

    def __init__(self, params, sizes, mid, half, low, high, act_dtype=np.float32, meta=None):
        self.params = params
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
        self._a = np.zeros(self.act_dim, act_dtype)

    @classmethod
    def from_agent(cls, agent, act_dtype=np.float32, meta=None):
        return cls(agent.actor.params, agent.actor.sizes, agent.mid, agent.half,
                   agent.act_low, agent.act_high, act_dtype, meta)

    def act(self, obs, noise=None):
        """clip(mid + half (tanh(actor(obs)) + noise), low, high) for one obs (obs_dim,).

        noise: (act_dim,) float64 in half-range units, or None for the deterministic action.
        """
        self._x[0] = obs
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
        x = np.ascontiguousarray(obs.reshape(-1, self.obs_dim), dtype=self.dtype)
        acts = np.empty(acts_size(tuple(self.sizes), x.shape[0]), self.dtype)
        u = mlp_forward(self.params, self.sizes, True, x, acts)
        a = np.clip(self.mid + self.half * u, self.low, self.high).astype(self._a.dtype)
        return a[0] if obs.ndim == 1 else a


def save_policy(path, policy):
    """Write ``policy`` (actor params, layer sizes, mid, half, bounds) and its ``meta`` dict to a
    policy file (numddpg.policy's format: a checkpoint of kind "policy"), atomically.  The
    NumPy-only ``numddpg.load_policy`` reads it too."""
    return _policy_file.save_policy(path, policy.params, policy.sizes, policy.mid, policy.half,
                                    policy.low, policy.high, policy._a.dtype, **policy.meta)


def load_policy(path):
    """The Policy saved by ``save_policy`` at ``path`` (a file, or a run directory); raises
    numddpg.CheckpointError for a missing, damaged or foreign file."""
    p = _policy_file.load_policy(path)
    return Policy(p.params, p.layer_sizes, p.mid, p.half, p.low, p.high, p.act_dtype, p.meta)


def run_episodes(policy, env, n_episodes, rng, max_ep_len=None):
    """Returns and lengths of ``n_episodes`` deterministic episodes of ``policy`` on ``env``.

    Every reset is seeded from ``rng`` (a numpy Generator).  Returns two float64 arrays.
    """
    returns = np.zeros(int(n_episodes))
    lengths = np.zeros(int(n_episodes))
    act = policy.act
    for i in range(int(n_episodes)):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        ep_ret, ep_len, over = 0.0, 0, False
        while not over:
            obs, r, terminated, truncated, _ = env.step(act(obs))
            ep_ret += r
            ep_len += 1
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
    **hyperparameters
        See the table below.

    Hyperparameters
    ---------------
{table}
    """

    algo = None                 # "ddpg", "td3": names run directories and saved policies
    agent_class = None          # constructor (obs_dim, act_dim, low, high, hidden_sizes=, gamma=,
                                # polyak=, pi_lr=, q_lr=, dtype=, seed=, **AGENT_KWARGS)
    EXTRA_HYPERPARAMETERS = {}  # name: (default, meaning), appended to HYPERPARAMETERS
    AGENT_KWARGS = ()           # names of extra hyperparameters the agent's constructor takes

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__ and "{table}" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{table}", _table(cls.hyperparameter_table()))

    @classmethod
    def hyperparameter_table(cls):
        """name: (default, meaning) of every hyperparameter this algorithm takes."""
        return {**HYPERPARAMETERS, **cls.EXTRA_HYPERPARAMETERS}

    def __init__(self, env, preset="auto", test_env=None, log=True, run_dir=None,
                 runs_root="runs", **hyperparameters):
        table = self.hyperparameter_table()
        unknown = [k for k in hyperparameters if k not in table]
        if unknown:
            close = {k: difflib.get_close_matches(k, table, n=1) for k in unknown}
            hint = "; ".join(f"{k!r} (did you mean {c[0]!r}?)" if c else repr(k)
                             for k, c in close.items())
            raise TypeError(f"{type(self).__name__} got unknown hyperparameters: {hint}. "
                            f"Known: {', '.join(table)}")
        self.env = make_env(env)
        self.env_id = _env_id(self.env)
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
        self.test_env = make_twin(self.env) if test_env is None else make_env(test_env)
        check = check_spaces(self.test_env)
        if check[:2] != (self.obs_dim, self.act_dim):
            raise EnvError(f"test_env has obs/act dims {check[:2]}, env has "
                           f"{(self.obs_dim, self.act_dim)}")

        # One seed drives everything: three independent streams spawned from it.
        agent_seq, loop_seq, buffer_seq = np.random.SeedSequence(self.seed).spawn(3)
        self.env.action_space.seed(int(loop_seq.generate_state(1)[0]))
        self.test_env.action_space.seed(int(loop_seq.generate_state(2)[1]))
        self.rng = np.random.default_rng(loop_seq)
        self.chunks_used, self.threads_record = self._resolve_chunks()
        self.agent = self._make_agent(int(agent_seq.generate_state(1, np.uint64)[0]))
        self.buffer = ReplayBuffer(self.obs_dim, self.act_dim, self.replay_size,
                                   seed=int(buffer_seq.generate_state(1, np.uint64)[0]))
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
            raise _logger.RunDirExists(f"run directory {str(run_dir)!r} already exists; numddpg "
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
        self._bind_fast_paths()
        self._new_epoch_accumulators()

    # -- construction -------------------------------------------------------------------------
    def _resolve_preset(self, preset):
        if preset is None or preset == "none":
            return None, {}
        if isinstance(preset, dict):
            return "custom", dict(preset)
        if preset == "auto":
            values = preset_for(self.env_id)
            return (self.env_id if values else None), values
        if isinstance(preset, str):
            values = preset_for(preset)
            if not values:
                from .presets import PRESETS
                raise ValueError(f"no preset named {preset!r}; presets exist for "
                                 f"{', '.join(PRESETS)} (or use preset='auto' / 'none')")
            return preset, values
        raise ValueError(f"preset must be 'auto', 'none', an env id or a dict, got {preset!r}")

    def _check_hyperparameters(self, hp):
        def integer(name, minimum):
            v = hp[name]
            if isinstance(v, (bool, np.bool_)) or not float(v).is_integer() or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
            hp[name] = int(v)

        for name in ("replay_size", "batch_size", "update_every", "max_ep_len",
                     "steps_per_epoch"):
            integer(name, 1)
        for name in ("start_steps", "update_after", "num_test_episodes", "seed"):
            integer(name, 0)
        if hp["batch_size"] > hp["replay_size"]:
            raise ValueError(f"batch_size ({hp['batch_size']}) must not exceed replay_size "
                             f"({hp['replay_size']}): a minibatch is drawn from the buffer's rows")
        if hp["noise"] not in NOISE_TYPES:
            raise ValueError(f"noise must be one of {NOISE_TYPES}, got {hp['noise']!r}")
        hp["dtype"] = check_dtype(hp["dtype"]).name
        hp["hidden_sizes"] = tuple(int(h) for h in np.atleast_1d(hp["hidden_sizes"]))
        for name in ("blas_threads", "chunks"):
            if hp[name] is not None:
                integer(name, 1)
        if hp["chunks"] is not None and hp["chunks"] > MAX_CHUNKS:
            raise ValueError(f"chunks must be at most {MAX_CHUNKS}, got {hp['chunks']}")
        if hp["checkpoint_every"] is not None:
            integer("checkpoint_every", 0)
        if not isinstance(hp["checkpoint_buffer"], (bool, np.bool_)):
            raise ValueError(f"checkpoint_buffer must be True or False, got "
                             f"{hp['checkpoint_buffer']!r}")
        hp["checkpoint_buffer"] = bool(hp["checkpoint_buffer"])
        for name in ("act_noise", "ou_theta", "ou_sigma", "ou_dt"):
            v = hp[name]
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
            hp[name] = float(v)
        return hp

    def _agent_kwargs(self):
        return {name: self.hyperparameters[name] for name in self.AGENT_KWARGS}

    def _make_agent(self, seed, chunks=None):
        return self.agent_class(self.obs_dim, self.act_dim, self.act_low, self.act_high,
                                hidden_sizes=self.hidden_sizes, gamma=self.gamma,
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
        self.policy = Policy.from_agent(self.agent, self.env.action_space.dtype,
                                        meta={"env_id": self.env_id, "algo": self.algo,
                                              "max_ep_len": self.max_ep_len,
                                              "seed": self.seed})
        self._u01 = np.zeros(self.act_dim, np.float64)      # uniform draws / noise draws
        self._a = np.zeros(self.act_dim, self.env.action_space.dtype)

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
        if not np.all(np.isfinite(obs)):
            raise EnvError(f"{self.env_id} returned a non-finite observation {obs} from reset "
                           f"at env step {self.t}; training stopped")
        self.obs = obs
        self.ep_ret, self.ep_len = 0.0, 0
        self.noise_process.reset()

    def _non_finite(self, code, obs2, rew):
        return EnvError(f"{self.env_id} returned a non-finite {BAD_WHAT[code]} at env step "
                        f"{self.t} (step {self.ep_len} of episode {self.episodes + 1}): "
                        f"obs={obs2}, reward={rew}; training stopped there. Check the env, or "
                        "wrap it (e.g. gymnasium.wrappers.ClipReward / TransformObservation).")

    def learn(self, total_steps=None, progress_bar=True):
        """Train for ``total_steps`` env steps (default: the preset's budget, else 400k).

        Writes the run directory on the first call when ``log`` is on; later calls continue
        the same run.  With a run directory, the whole state goes to RUN_DIR/checkpoint.npz
        before the first step, every ``checkpoint_every`` steps (at the next episode end, where
        a resume needs no env state beyond the reset seed) and at the end; ``resume(run_dir)``
        continues from the last one, bit-identical to a run never interrupted.  Raises
        NonFiniteError (and leaves the last checkpoint as it was) if training diverges.
        Returns self.
        """
        if total_steps is None:
            total_steps = self.preset_total_steps or self.steps_per_epoch * 100
        if isinstance(total_steps, bool) or int(total_steps) != total_steps or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        end = self.t + int(total_steps)
        if self.log and self.run_dir is None:
            self._open_run(int(total_steps))
        bar = _logger.ProgressBar(end, initial=self.t, disable=not progress_bar,
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
                self._loop(end, bar)
            finished = True
        finally:
            self._learning = False
            self.elapsed += time.perf_counter() - self._learn_started
            bar.close()
            if self.run_dir is not None and not self._diverged:  # never save NaN parameters
                self.save_policy(self.run_dir / POLICY_FILE)
                if finished and self._checkpoint_every and self._checkpoint_t != self.t:
                    self._save_checkpoint()       # (unless the last step's one is this state)
        return self

    def _loop(self, end, bar):
        env, buffer, agent = self.env, self.buffer, self.agent
        store, step = buffer.store_fast, env.step
        start_steps, update_after, update_every = self.start_steps, self.update_after, self.update_every
        batch_size, max_ep_len, steps_per_epoch = self.batch_size, self.max_ep_len, self.steps_per_epoch
        if self.obs is None:
            self._start_episode()
        while self.t < end:
            obs = self.obs
            a = self._random_action() if self.t < start_steps else self._explore_action(obs)
            obs2, rew, terminated, truncated, _ = step(a)
            rew = float(rew)
            self.t += 1
            self.ep_len += 1
            self.ep_ret += rew
            code = store(obs, a, rew, obs2, 1.0 if terminated else 0.0)   # d = terminated only
            if code != STORED:
                raise self._non_finite(code, obs2, rew)
            self.obs = obs2
            if terminated or truncated or self.ep_len >= max_ep_len:
                self._ep_rets.append(self.ep_ret)
                self._ep_lens.append(self.ep_len)
                self.episodes += 1
                self._start_episode()
            if self.t >= update_after and self.t % update_every == 0:
                t_burst = time.perf_counter()
                stats = agent.update_burst(buffer, batch_size, update_every)
                self._guard.observe((time.perf_counter() - t_burst) / update_every)
                self._check_finite(stats)
                self._update_stats.append(stats)
                bar.update_to(self.t)
            if self.t - self._epoch_t0 >= steps_per_epoch or self.t == end:
                self._end_epoch(bar)
            if self.ep_len == 0 and self._checkpoint_every and self.t >= self._next_checkpoint:
                self._save_checkpoint()            # an episode just ended: a boundary

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
        if ok.all() and not full and self._updates_unscanned < FULL_SCAN_UPDATES:
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
        test_rets, test_lens = run_episodes(self.policy, self.test_env, self.num_test_episodes,
                                            self.rng, self.max_ep_len)
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
        if self._csv is not None:
            self._csv.write(row)
            self.save_policy(self.run_dir / POLICY_FILE)
        bar.update_to(self.t)
        bar.set_stats(sps=row["SPS"], test_return=row["AverageTestEpRet"])
        self._new_epoch_accumulators()

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, n_episodes=10):
        """(mean, std) of the deterministic policy's return over ``n_episodes`` test episodes
        (on the test env; reset seeds from the loop's generator)."""
        returns, _ = run_episodes(self.policy, self.test_env, n_episodes, self.rng,
                                  self.max_ep_len)
        return float(np.mean(returns)), float(np.std(returns))

    # -- files --------------------------------------------------------------------------------
    def config(self, total_steps=None):
        """Everything that defines this run, as written to config.json."""
        return {"algo": self.algo, "env_id": self.env_id, "preset": self.preset_name,
                "total_steps": total_steps, "hyperparameters": dict(self.hyperparameters),
                "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "act_low": self.act_low.tolist(), "act_high": self.act_high.tolist(),
                "threads": {"chunks": self.chunks_used, **self.threads_record}}

    def _open_run(self, total_steps):
        self.run_dir = _logger.create_run_dir(self._run_dir_request, self._runs_root,
                                              self.env_id, self.algo, self.seed)
        _logger.write_config(self.run_dir, self.config(total_steps))
        self._csv = _logger.ProgressCSV(self.run_dir / "progress.csv")

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
        continues exactly as this one would; saved mid-episode, loading drops that episode."""
        include = self.checkpoint_buffer if include_buffer is None else bool(include_buffer)
        elapsed = self.elapsed + (time.perf_counter() - self._learn_started if self._learning
                                  else 0.0)
        return _checkpoint.save_algorithm(path, self, include, elapsed)

    def _save_checkpoint(self):
        """RUN_DIR/checkpoint.npz, after making the progress rows it counts durable (and after
        the NaN guard's full scan, so that a checkpoint only ever replaces another with a good
        state)."""
        self._check_finite(np.zeros((0, N_STATS)), full=True)
        if self._csv is not None:
            self._csv.sync()
        self.save(self.run_dir / CHECKPOINT_FILE)
        self._checkpoint_t = self.t
        self._next_checkpoint = self.t + self._checkpoint_every

    @classmethod
    def load(cls, path, env=None, test_env=None, log=False, run_dir=None, runs_root="runs"):
        """The model saved by ``save`` (or a run's checkpoint.npz) at ``path``.

        env : the env to continue on (default: a new instance of the saved env id); its spaces
            must match.  log/run_dir/runs_root: as in the constructor, for a later learn().
        Raises numddpg.CheckpointError if the file is damaged or does not fit.
        ``OffPolicyAlgorithm.load`` picks the class from the file; ``DDPG.load`` insists on it.
        """
        meta, arrays = _checkpoint.read_algorithm(path)
        target = ALGORITHMS.get(meta["algo"]) if cls is OffPolicyAlgorithm else cls
        if target is None or target.algo != meta["algo"]:
            raise _checkpoint.CheckpointError(
                f"{path}: this is a {meta['algo']!r} checkpoint; load it with "
                f"{'an algorithm of that name' if target is None else 'its own class'} "
                f"(numddpg.OffPolicyAlgorithm.load picks it), not {cls.__name__}.load")
        hp = dict(meta["hyperparameters"])
        saved_chunks = hp.get("chunks")
        # the saved agent's (checked, at most MAX_CHUNKS; files before chunks existed: 1)
        hp["chunks"] = meta["config"].get("chunks", 1)
        try:
            model = target(meta["env_id"] if env is None else env, preset="none",
                           test_env=test_env, log=log, run_dir=run_dir, runs_root=runs_root,
                           **hp)
        except EnvError:
            raise
        except (TypeError, ValueError) as exc:
            raise _checkpoint.CheckpointError(
                f"{path}: cannot rebuild {target.__name__} from the saved hyperparameters: "
                f"{exc}") from None
        model.preset_name = meta["preset"]
        if saved_chunks is None:               # calibrated when it was trained: say so again
            model.chunks = model.hyperparameters["chunks"] = None
        model.threads_record = {"source": f"the saved agent ({path})"}
        _checkpoint.restore_algorithm(model, meta, arrays, str(path))
        model._checkpoint_t = model.t
        model._progress_rows = meta["logger"]["progress_rows"]
        return model

    @classmethod
    def resume(cls, run_dir, total_steps=None, progress_bar=True, env=None):
        """Continue the run in ``run_dir`` from its checkpoint.npz up to ``total_steps`` (default:
        the run's own, from config.json), appending to its progress.csv (rows written after
        the checkpoint are dropped first, so none is duplicated).  Returns the model.

        Killed at any moment (even SIGKILL) and resumed, a run ends with parameters
        bit-identical to the same run never interrupted (same machine, same seed): the
        checkpoint holds every generator's state and is taken at an episode boundary.
        """
        run_dir = Path(run_dir)
        path = run_dir / CHECKPOINT_FILE
        if not path.is_file():
            raise _checkpoint.CheckpointError(
                f"{path}: no checkpoint to resume from; is {str(run_dir)!r} a run directory "
                "written by numddpg train (with checkpoint_every other than 0)?")
        config = _logger.read_config(run_dir)
        _checkpoint.remove_stale_temporaries(run_dir)    # left by a process killed mid-save
        model = cls.load(path, env=env)
        total = config.get("total_steps") if total_steps is None else int(total_steps)
        model.run_dir, model.log = run_dir, True
        if model._progress_rows is not None:
            _logger.truncate_progress(run_dir / "progress.csv", model._progress_rows)
        model._csv = _logger.ProgressCSV(run_dir / "progress.csv")
        if total is not None and model.t < total:
            model.learn(total - model.t, progress_bar=progress_bar)
        return model

    def __repr__(self):
        return (f"{type(self).__name__}(env={self.env_id!r}, preset={self.preset_name!r}, "
                f"t={self.t}, seed={self.seed})")


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

    Hyperparameters (defaults: shared/REFERENCE.md section 2)
    ----------------------------------------------------------
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

    Hyperparameters (defaults: shared/REFERENCE.md section 2)
    ----------------------------------------------------------
{table}

    Example
    -------
    >>> model = TD3("HalfCheetah-v5", seed=0).learn(1_000_000)   # doctest: +SKIP
    """

    algo = "td3"
    agent_class = TD3Agent
    EXTRA_HYPERPARAMETERS = {
        "target_noise": (0.2, "target policy smoothing noise std, in action half-ranges"),
        "noise_clip": (0.5, "clip of the smoothing noise, in action half-ranges"),
        "policy_delay": (2, "critic updates per actor (and target) update"),
    }
    AGENT_KWARGS = ("target_noise", "noise_clip", "policy_delay")


# Algorithms by name, for the command line.
ALGORITHMS = {"ddpg": DDPG, "td3": TD3}
