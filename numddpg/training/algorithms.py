"""DDPG for users: ``DDPG(env).learn(steps)``, ``predict``, ``evaluate``, ``save``, ``load`` and
``resume`` (the facade).

``OffPolicyAlgorithm`` holds the env, the hyperparameters, the agent, the replay buffer and the
observation statistics, and composes the pieces of numddpg.training:

    loop.py       the training loop over n envs (a plain env is n = 1) that learn() runs
    runstate.py   the run state (counters, generators, noise, the epoch in progress) and the
                  checkpoint that holds it with the agent and the buffer: save, load
    acting.py     the policy: predict, evaluate, the loop's actions, the policy file
    guard.py      the NaN guard the loop runs after every burst of updates
    runfile.py    a run directory's files: config.json, loading and resuming a run
    envs.py       env checks and records

``DDPG`` is ``OffPolicyAlgorithm`` with ``agent_class = DDPGAgent``; another algorithm on the same
loop (TD3) names its own agent class, its table of hyperparameters (``SPECS``, from
numddpg.hyperparameters) and which of them the agent's constructor takes (``AGENT_KWARGS``).
"""
import difflib
import functools
import sys
from pathlib import Path

import numpy as np

from ..checks import check_int, check_memory
from ..engine.agents import DDPGAgent, TD3Agent
from ..engine.buffer import ReplayBuffer
from ..engine.her import HerReplayBuffer
from ..engine.hyperparameters import ADAM_KEYS, DDPG_TABLE, LOSS_KEYS, TD3_EXTRA, TD3_TABLE
from ..engine.hyperparameters import check as check_hyperparameter
from ..engine.noise import make_noise
from ..engine.normalizer import ObsNormalizer
from ..engine.presets import preset_for
from ..files import rundir as _rundir
from ..files import runlog as _runlog
from ..files.policy import n_params
from ..kernels import threads as _threads
from . import runfile as _runfile
from .acting import Policy, kernel_dtype, run_episodes, save_policy
from .envs import (EnvError, check_spaces, env_id as _env_id, env_record, goal_env, is_vector,
                   make_env, make_twin, obs_layout, own_compute_reward, split_module)
from .loop import Loop, PlainEnv, VectorEnvs, autoreset_same_step
from .runstate import RunState, restore_buffer, save_run

# The module's names from before the loop, the run state and acting had modules of their own,
# kept importable from here (tests, the command line, users' scripts).
from ..files.checkpoint import CheckpointError  # noqa: F401
from .acting import env_action  # noqa: F401
from .envs import EnvFailure  # noqa: F401
from .guard import FULL_SCAN_UPDATES, STAT_NAMES, NonFiniteError  # noqa: F401
from .loop import blas_threads  # noqa: F401
from .runfile import CHECKPOINT_FILE, POLICY_FILE, RunWriteError  # noqa: F401
from .runstate import STATS_ARRAY, read_run_checkpoint  # noqa: F401

# The policy in a policy file or run directory, as the jitted Policy that run_episodes acts
# with (numddpg.load_policy is the same reader, NumPy alone, giving a NumpyPolicy).
load_policy = Policy.load

# name: (default, meaning), from the one table of numddpg.hyperparameters (kinds and ranges
# there too); a preset (numddpg.presets) replaces some defaults per environment.
HYPERPARAMETERS = {name: (h.default, h.meaning) for name, h in DDPG_TABLE.items()}


def _table(hyperparameters):
    rows = [f"    {'name':<18} {'default':<12} meaning", "    " + "-" * 78]
    for name, (default, meaning) in hyperparameters.items():
        rows.append(f"    {name:<18} {default!s:<12} {meaning}")
    return "\n".join(rows)


def _state_attribute(name, doc):
    """A model attribute that is its run state's ``name`` (numddpg.training.runstate)."""
    return property(lambda self: getattr(self.state, name),
                    lambda self, value: setattr(self.state, name, value), doc=doc)


class OffPolicyAlgorithm:
    """An off-policy actor-critic trained by numddpg.training.loop's loop.

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

    algo = None                 # names run directories and saved policies: agent_class.algo
    agent_class = None          # constructor (obs_dim, act_dim, low, high, hidden_sizes=, gamma=,
                                # polyak=, pi_lr=, q_lr=, dtype=, seed=, **AGENT_KWARGS)
    SPECS = DDPG_TABLE          # numddpg.hyperparameters: every hyperparameter it takes
    AGENT_KWARGS = ()           # names of extra hyperparameters the agent's constructor takes
    batch_within_buffer = True  # refuse batch_size > replay_size (numddpg.sb3 allows it, as SB3)

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
        _refuse_unknown(self, hyperparameters, self.hyperparameter_table(), "hyperparameters")
        self._use_env(make_env(env))
        # "mymodule:MyEnv-v0": the module that registers the env, recorded so that a later
        # eval/resume can *tell* the user to pass it (a file never makes numddpg import it)
        self.env_module = split_module(env)[0] if isinstance(env, str) else None
        self.hyperparameters = self._resolve_hyperparameters(preset, hyperparameters)
        for name, value in self.hyperparameters.items():
            setattr(self, name, value)
        self.obs_dim, self.act_dim, self.act_low, self.act_high = check_spaces(self.env)
        self.obs_layout = obs_layout(self.env)     # Dict observations' DictLayout, or None
        _check_memory(self)
        self._test_env = None if test_env is None else self._checked_test_env(make_env(test_env))
        self._build(np.random.SeedSequence(self.seed))
        self.log = bool(log)
        if self.log and run_dir is not None and Path(run_dir).exists():
            raise _rundir.RunDirExists(f"run directory {str(run_dir)!r} already exists; numddpg "
                                       "never overwrites a previous run. Choose another one.")
        self.run_dir = None
        self._run_dir_request = run_dir
        self._runs_root = runs_root
        self._csv = None                # progress.csv, written at every epoch end
        self._lock = None               # the run directory's RunLock, held while learning
        self._progress_rows = None      # progress.csv rows a loaded checkpoint counts
        self._loop = None               # the learn() in progress (numddpg.training.loop)
        self.log_interval = _runlog.LOG_INTERVAL   # episodes between TensorBoard rollout dumps
        # where TensorBoard event files go (numddpg.runlog); not a hyperparameter: a file that
        # is loaded never chooses where numddpg writes
        self.tensorboard_log, self.tb_log_name = _runlog.check_tensorboard_args(
            tensorboard_log, tb_log_name)
        self._bind_policy()

    # -- construction -------------------------------------------------------------------------
    def _use_env(self, env):
        self.env, self.env_id, self.env_record = env, _env_id(env), env_record(env)
        self.n_envs = env.num_envs if is_vector(env) else 0   # 0: one plain env
        if self.n_envs:
            autoreset_same_step(env)           # (refuses a mode the loop cannot step, now)

    def _resolve_hyperparameters(self, preset, given):
        """The defaults, under the preset's values, under ``given``; checked, with a seed."""
        table = self.hyperparameter_table()
        self.preset_name, preset_values = _resolve_preset(self, preset)
        self.preset_total_steps = preset_values.pop("total_steps", None)
        hp = {name: default for name, (default, _) in table.items()}
        hp.update(preset_values)
        hp.update(given)
        if hp["seed"] is None:                 # draw one, so the run can be repeated from it
            hp["seed"] = int(np.random.SeedSequence().entropy % (2**31))
        return _check_hyperparameters(hp, self.hyperparameter_specs(), self.batch_within_buffer)

    def _build(self, seq):
        """The agent, the buffer, the statistics and the run state, from one seed: three
        independent streams spawned from it (the agent's, the loop's, the buffer's)."""
        agent_seq, loop_seq, buffer_seq = seq.spawn(3)
        self.env.action_space.seed(int(loop_seq.generate_state(1)[0]))
        self._test_env_seed = int(loop_seq.generate_state(2)[1])
        if self._test_env is not None:
            self._test_env.action_space.seed(self._test_env_seed)
        rng = np.random.default_rng(loop_seq)
        self.chunks_used, self.threads_record = self._resolve_chunks()
        self.agent = self._make_agent(int(agent_seq.generate_state(1, np.uint64)[0]))
        self.buffer = self._make_buffer(int(buffer_seq.generate_state(1, np.uint64)[0]))
        self.obs_norm = (ObsNormalizer(self.obs_dim, self.obs_clip, self.obs_norm_eps)
                         if self.normalize_obs else None)
        self.state = RunState(rng, functools.partial(make_noise, self.noise, self.act_dim,
                                                     self.act_noise, self.ou_sigma,
                                                     self.ou_theta, self.ou_dt))

    def _make_buffer(self, seed):
        """The replay buffer; with ``her`` the hindsight buffer, which relabels the goals of a
        goal env (numddpg.engine.her; a vector env's compute_reward is its test env's, unless
        the vector env has its own: numddpg.sb3's VecEnv adapter)."""
        if self.her == "none":
            return ReplayBuffer(self.obs_dim, self.act_dim, self.replay_size, seed=seed,
                                n_steps=self.n_steps, gamma=self.gamma)
        achieved, desired, compute_reward = self._goal_env()
        return HerReplayBuffer(self.obs_dim, self.act_dim, self.replay_size, achieved, desired,
                               compute_reward, n_envs=max(1, self.n_envs),
                               n_sampled_goal=self.her_k, goal_selection_strategy=self.her,
                               seed=seed)

    def _goal_env(self):
        """goal_env of the training env (of a vector env: of its test env, unless the vector
        env has its own compute_reward: numddpg.sb3's VecEnv adapter)."""
        source = self.test_env if self.n_envs and not own_compute_reward(self.env) else self.env
        return goal_env(source, self.obs_layout)

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

    def _checked_test_env(self, env, what="test_env"):
        """``env`` after checking it has this model's observation and action sizes and the
        same Dict layout (or none)."""
        dims = check_spaces(env)[:2]
        if dims != (self.obs_dim, self.act_dim):
            raise EnvError(f"{what} has obs/act dims {dims}, env has "
                           f"{(self.obs_dim, self.act_dim)}")
        layout = obs_layout(env)
        if layout != self.obs_layout:
            raise EnvError(f"{what} observes {layout or 'a Box'}, this model "
                           f"{self.obs_layout or 'a Box'}")
        return env

    def set_env(self, env):
        """Continue training on ``env`` (an id, an env or a vector env) with the same spaces
        and action dtype; the episode in progress is dropped (the next step resets)."""
        env = make_env(env)
        spaces = check_spaces(env)
        same_box = (np.array_equal(spaces[2], self.act_low)
                    and np.array_equal(spaces[3], self.act_high))
        if (spaces[:2] != (self.obs_dim, self.act_dim) or not same_box
                or obs_layout(env) != self.obs_layout):
            raise EnvError(f"set_env: {_env_id(env)} has spaces {spaces[:2]} with bounds "
                           f"{spaces[2]}..{spaces[3]}; this model's are "
                           f"{(self.obs_dim, self.act_dim)}, {self.act_low}..{self.act_high}")
        act_space = env.single_action_space if is_vector(env) else env.action_space
        mine = kernel_dtype(self.policy.act_dtype)
        if kernel_dtype(act_space.dtype) != mine:
            raise EnvError(f"set_env: {_env_id(env)}'s actions are {act_space.dtype}, this "
                           f"model's {mine}")
        self._use_env(env)
        if isinstance(self.buffer, HerReplayBuffer):       # the new env's rewards from now on
            self.buffer.compute_reward = self._goal_env()[2]
        self.state.new_episodes(1)
        self.state.drop_noises()
        self._bind_policy()

    def _make_agent(self, seed, chunks=None):
        return self.agent_class(self.obs_dim, self.act_dim, self.act_low, self.act_high,
                                hidden_sizes=self.hidden_sizes,
                                qf_hidden_sizes=self.qf_hidden_sizes,
                                n_critics=self.n_critics, gamma=self.gamma,
                                polyak=self.polyak, pi_lr=self.pi_lr, q_lr=self.q_lr,
                                dtype=np.dtype(self.dtype), seed=seed,
                                chunks=self.chunks_used if chunks is None else chunks,
                                **{name: self.hyperparameters[name]
                                   for name in (*ADAM_KEYS, *LOSS_KEYS, *self.AGENT_KWARGS)})

    def _resolve_chunks(self):
        """The chunks hyperparameter, or numddpg.threads' calibrated choice for this CPU and
        shape; ``threads_record`` says which (config.json's "threads")."""
        if self.chunks is not None:
            return self.chunks, {"source": "chunks hyperparameter"}
        # (a number of critics other than the algorithm's own is another shape to calibrate)
        shape = (self.algo if self.n_critics == self.agent_class.n_critics
                 else f"{self.algo} with {self.n_critics} critics")
        return _threads.calibrated_chunks(lambda c: self._make_agent(0, chunks=c), shape,
                                          self.obs_dim, self.act_dim, self.hidden_sizes,
                                          self.batch_size, self.dtype,
                                          macs=_update_macs(self))

    def _bind_policy(self):
        """``policy``: the agent's live actor acting in the env's action dtype, with the
        record a policy file keeps (call again if the agent or the env is replaced)."""
        act_space = self.env.single_action_space if self.n_envs else self.env.action_space
        self.policy = Policy.from_agent(self.agent, act_space.dtype,
                                        meta={"env_id": self.env_id, "algo": self.algo,
                                              "env_module": self.env_module,
                                              "env": self.env_record,
                                              "max_ep_len": self.max_ep_len,
                                              "seed": self.seed},
                                        obs_norm=self.obs_norm, layout=self.obs_layout)

    # -- the pieces the loop runs on ----------------------------------------------------------
    def loop_parts(self):
        """(agent, buffer, policy, obs_norm) a learn() trains with: the model's own.  (A layer
        above may train with others: numddpg.sb3 on SB3's VecNormalize.)"""
        return self.agent, self.buffer, self.policy, self.obs_norm

    def stepper(self):
        """The training env as the loop's n envs (numddpg.training.loop)."""
        if self.n_envs:
            return VectorEnvs(self.env, self.env_id, self.obs_dim, self.obs_layout)
        return PlainEnv(self.env, self.env_id, self.obs_dim, self.max_ep_len, self.obs_layout)

    t = _state_attribute("t", "Env steps (stored transitions) taken by learn() so far.")
    epoch = _state_attribute("epoch", "Epochs completed.")
    episodes = _state_attribute("episodes", "Training episodes completed.")
    elapsed = _state_attribute("elapsed", "Seconds spent in learn() calls that ended.")
    last_test_return = _state_attribute("last_test_return", "The last epoch's mean test return.")
    rng = _state_attribute("rng", "The loop's numpy Generator (numddpg.training.runstate).")
    noise_process = _state_attribute("noise_process", "The (first env's) exploration noise.")
    ep_ret = property(lambda self: float(self.state.ep_ret[0]),
                      doc="Return of the (first env's) episode in progress.")
    ep_len = property(lambda self: int(self.state.ep_len[0]),
                      doc="Length of the (first env's) episode in progress.")

    @property
    def num_timesteps(self):
        """Env steps taken so far (Stable-Baselines3's name for ``t``)."""
        return self.t

    @property
    def runlog(self):
        """The numddpg.runlog.RunLog of the learn() in progress (monitor.csv, TensorBoard),
        or None: e.g. ``model.runlog.add_scalars({"custom/x": 1.0}, model.t)`` in a callback."""
        return None if self._loop is None else self._loop.runlog

    # -- acting -------------------------------------------------------------------------------
    def predict(self, obs, deterministic=True):
        """(action, None) for obs (obs_dim,) or (batch, obs_dim), like Stable-Baselines3; for
        an env of Dict observations a Dict (of one observation, or of a batch per entry) or
        the flat vector it makes.

        DDPG's policy is deterministic: the action is mu(obs) whatever ``deterministic`` says
        (exploration noise belongs to training, as in SB3).  The second element stands for
        SB3's recurrent state.
        """
        return self.policy(obs), None

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
        try:
            if callback is not None:
                callback.on_training_start(locals(), globals())
            self._loop = Loop(self, callback, progress_bar)
            self._loop.run(end)
            if callback is not None:
                callback.on_training_end()
        finally:
            self._loop = None
            if self._lock is not None:
                self._lock.release()
        return self

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
            env = self._checked_test_env(env, f"evaluate: env {_env_id(env)}")
        if seed is None:
            self._evaluations = getattr(self, "_evaluations", 0) + 1
            seed = [self.seed, 7, self._evaluations]
        returns, _ = run_episodes(self.policy, env, n_episodes, np.random.default_rng(seed),
                                  self.max_ep_len)
        return float(np.mean(returns)), float(np.std(returns))

    # -- files --------------------------------------------------------------------------------
    def vector_record(self):
        """{"num_envs", "mode"} of a vector env (what make_vec rebuilds it from), else None."""
        return _runfile.vector_record(self)

    def extra_records(self):
        """{section: JSON-able value}: records of its own that a subclass adds to its
        checkpoints beside numddpg's sections (none here; numddpg.sb3 keeps SB3's learning-rate
        schedule so); ``restore_extra_records`` gets them back when one is loaded."""
        return {}

    def restore_extra_records(self, meta, where):
        """Take back what ``extra_records`` wrote, from the record ``meta`` of the checkpoint
        ``where`` that was loaded into this model (numddpg checked its own sections; a
        subclass checks its own).  Nothing here."""

    def config(self, total_steps=None):
        """Everything that defines this run, as written to config.json."""
        return _runfile.run_config(self, total_steps)

    def progress_columns(self):
        """progress.csv's columns (runfile.progress_columns)."""
        return _runfile.progress_columns(self)

    def _open_run(self, total_steps):
        _runfile.open_run(self, total_steps)

    def save_policy(self, path):
        """Save the current actor to ``path`` (.npz); ``numddpg eval`` and load_policy read it."""
        return save_policy(path, self.policy)

    def save(self, path, include_buffer=None):
        """Save the whole training state to ``path`` (.npz, written atomically): networks,
        targets, Adam moments and step counts, every generator's state, the loop counters, the
        epoch in progress, and the replay buffer (include_buffer: default ``checkpoint_buffer``;
        without it a loaded model restarts from an empty buffer).  ``load`` restores it.

        Saved at an episode boundary (as learn()'s checkpoints always are), a loaded model
        continues exactly as this one would; saved mid-episode, loading drops that episode.
        The file is a checkpoint of kind "algorithm"; numddpg.training.runstate lists what it
        holds.
        """
        include = self.checkpoint_buffer if include_buffer is None else bool(include_buffer)
        return save_run(self, path, include)

    def save_replay_buffer(self, path):
        """``save(path, include_buffer=True)``: the file is a whole checkpoint, from which
        ``load_replay_buffer`` takes the buffer (and ``load`` the model)."""
        return self.save(path, include_buffer=True)

    def load_replay_buffer(self, path):
        """Replace the replay buffer's contents by those saved at ``path`` (by
        ``save_replay_buffer`` or any checkpoint saved with its buffer), the rest of the model
        untouched.  The file is checked whole, and its buffer must be of this model's kind
        (uniform or hindsight, with the same settings) and sizes: else CheckpointError, and
        nothing changed."""
        meta, arrays = read_run_checkpoint(path)
        restore_buffer(self, meta, arrays, str(path))

    @classmethod
    def load(cls, path, env=None, test_env=None, log=False, run_dir=None, runs_root="runs",
             env_module=None, tensorboard_log=None, tb_log_name=None, num_envs=None,
             vectorization_mode=None):
        """The model saved by ``save`` (or a run's checkpoint.npz) at ``path``.

        env : the env to continue on (default: a new instance of the saved env id); its spaces
            must match.  log/run_dir/runs_root: as in the constructor, for a later learn().
        env_module : the module that registers the saved env id, for a run trained with
            env="mymodule:MyEnv-v0": a file never makes numddpg import a module, you name it.
        num_envs, vectorization_mode : without ``env``, make num_envs envs ("sync" by default;
            "async": one process each) instead of one; a file's own vector record is never
            obeyed (it would choose how many envs and processes to start).
        Raises numddpg.CheckpointError if the file is damaged or does not fit, EnvError if the
        saved env cannot be made.
        ``OffPolicyAlgorithm.load`` picks the class from the file; ``DDPG.load`` insists on it.
        """
        return _runfile.load_model(cls, path, env=env, test_env=test_env, log=log,
                                   run_dir=run_dir, runs_root=runs_root, env_module=env_module,
                                   tensorboard_log=tensorboard_log, tb_log_name=tb_log_name,
                                   num_envs=num_envs, vectorization_mode=vectorization_mode)

    @classmethod
    def resume(cls, run_dir, total_steps=None, progress_bar=True, env=None, env_module=None,
               tensorboard_log=None, tb_log_name=None, num_envs=None, vectorization_mode=None):
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
        resuming it gets RunDirBusy.  env / env_module: as in ``load``.  A run trained on a
        vector env resumes on as many envs, made only when asked: num_envs (and
        vectorization_mode), as in ``load``.  A total_steps below the steps already run, or
        a run started with checkpoint_every 0, is refused (ValueError).
        """
        return _runfile.resume_run(cls, run_dir, total_steps=total_steps,
                                   progress_bar=progress_bar, env=env, env_module=env_module,
                                   tensorboard_log=tensorboard_log, tb_log_name=tb_log_name,
                                   num_envs=num_envs, vectorization_mode=vectorization_mode)

    @classmethod
    def class_for(cls, algo):
        """The class that loads a file of ``algo``: this one, or for ``OffPolicyAlgorithm`` the
        algorithm of that name (None if there is none)."""
        return ALGORITHMS.get(algo) if cls is OffPolicyAlgorithm else cls

    def __repr__(self):
        return (f"{type(self).__name__}(env={self.env_id!r}, preset={self.preset_name!r}, "
                f"t={self.t}, seed={self.seed})")


def _refuse_unknown(model, given, table, what):
    """TypeError naming every key of ``given`` not in ``table``, with the closest known name."""
    unknown = [k for k in given if k not in table]
    if unknown:
        close = {k: difflib.get_close_matches(str(k), table, n=1) for k in unknown}
        hint = "; ".join(f"{k!r} (did you mean {c[0]!r}?)" if c else repr(k)
                         for k, c in close.items())
        raise TypeError(f"{type(model).__name__} got unknown {what}: {hint}. "
                        f"Known: {', '.join(table)}")


# ---------------------------------------------------------------------------------------------
# Hyperparameters: the defaults, under a preset, under the given values; checked
# ---------------------------------------------------------------------------------------------

def _resolve_preset(model, preset):
    """(preset name, its values) for ``model``'s env: preset "auto", "none", an id or a dict."""
    if preset is None or preset == "none":
        return None, {}
    if isinstance(preset, dict):
        _refuse_unknown(model, preset, {**model.hyperparameter_table(), "total_steps": 0},
                        "preset keys")
        return "custom", dict(preset)
    if preset == "auto":
        values = preset_for(model.env_id)
        return (model.env_id if values else None), values
    if isinstance(preset, str):
        values = preset_for(preset)
        if not values:
            from ..engine.presets import PRESETS
            raise ValueError(f"no preset named {preset!r}; presets exist for "
                             f"{', '.join(PRESETS)} (or use preset='auto' / 'none')")
        return preset, values
    raise ValueError(f"preset must be 'auto', 'none', an env id or a dict, got {preset!r}")


def _check_hyperparameters(hp, specs, batch_within_buffer=True):
    """``hp`` with every value checked against its kind and range in the table of
    numddpg.hyperparameters (ValueError naming the first bad one and its value)."""
    for name, spec in specs.items():
        hp[name] = check_hyperparameter(name, hp[name], spec)
    if batch_within_buffer and hp["batch_size"] > hp["replay_size"]:
        raise ValueError(f"batch_size ({hp['batch_size']}) must not exceed replay_size "
                         f"({hp['replay_size']}): a minibatch is drawn from the buffer's rows")
    if hp["n_steps"] > 1 and hp["her"] != "none":
        raise ValueError(f"n_steps={hp['n_steps']} with her={hp['her']!r}: hindsight replay "
                         "relabels one-step transitions only; use n_steps=1 with her")
    return hp


def _net_sizes(model):
    """(sizes_pi, sizes_q): the layer widths of the actor and of each critic."""
    o, a = model.obs_dim, model.act_dim
    return ([o, *model.hidden_sizes, a],
            [o + a, *(model.hidden_sizes if model.qf_hidden_sizes is None
                      else model.qf_hidden_sizes), 1])


def _update_macs(model):
    """About how many multiply-adds one update costs: each network's weights meet each of the
    batch's rows in a forward pass and twice in a backward pass, the actor and every critic
    about once each in the target, the critic step and the actor step."""
    sizes_pi, sizes_q = _net_sizes(model)
    nets = n_params(sizes_pi) + model.n_critics * n_params(sizes_q)
    return float(model.batch_size) * nets * 3 * 2


def _check_memory(model):
    """TooLarge, before anything is allocated, if ``model``'s replay buffer, networks and
    update workspace need more memory than is available (the sizes may come from a file or a
    typo: --replay-size 10000000000).  Counts the chunks the run will use: the hyperparameter's,
    else the most the calibration may pick on this process's CPUs."""
    item = np.dtype(model.dtype).itemsize
    o, a, n = model.obs_dim, model.act_dim, model.replay_size
    buffer = n * ((2 * o + a + 2) * 4 + (8 if model.n_steps > 1 else 0))   # (+ next_row)
    sizes_pi, sizes_q = _net_sizes(model)
    critics = model.n_critics
    chunks = model.chunks or _threads.largest_plan(model.batch_size)
    nets = (n_params(sizes_pi) + critics * n_params(sizes_q)) \
        * (5 + chunks) * item                      # params, targ, m, v, grad per chunk
    work = model.batch_size * (sum(sizes_pi) + sum(sizes_q)) * 4 * item
    check_memory(buffer + nets + work,
                 f"replay_size={n:,} (buffer {buffer / 2**30:,.2f} GiB), "
                 f"hidden_sizes={model.hidden_sizes} and batch_size={model.batch_size} "
                 f"on {model.env_id} (obs_dim={o}, act_dim={a})")


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

    algo = DDPGAgent.algo
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

    algo = TD3Agent.algo
    agent_class = TD3Agent
    SPECS = TD3_TABLE
    AGENT_KWARGS = tuple(TD3_EXTRA)      # target_noise, noise_clip, policy_delay


# Algorithms by name, for the command line and for files that name theirs.
ALGORITHMS = {cls.algo: cls for cls in (DDPG, TD3)}
