"""The run state: everything a run changes as it trains besides the agent, the replay buffer and
the observation statistics, and the checkpoint that holds all of them.

Randomness lives in exactly three places, so that a run is reproducible from its seed and can
later be resumed exactly: the agent's ``rng_state`` (minibatch indices, TD3's smoothing noise),
the loop's numpy Generator ``rng`` (random actions, exploration noise, every env reset seed,
test envs included) and the OU noise state ``noise_process.x``.  Beside them ``RunState`` keeps
the counters (``t``, ``epoch``, ``episodes``), the episodes in progress (one per env), the
accumulators of the epoch in progress and the NaN guard's count.

A checkpoint (numddpg.files.checkpoint's container, kind "algorithm") is written by
``save_run``, checked field by field by ``run_checkpoint_specs`` before anything is read, and
put back by ``restore_run``:

    arrays  "agent.*" (the agent's state_dict), "buffer.*" (the filled rows and the sampler
            state), "noise.x" (the OU state), "epoch.*" (the epoch's accumulators), "norm.*"
            (the observation statistics), "loop.obs" (the first observation of the episode
            the checkpoint is at the start of)
    record  algo, env_id, env (its record), hyperparameters, the agent config, the spaces, the
            loop generator's ``bit_generator.state``, the loop counters, the buffer's ptr/size
            and the number of progress.csv rows written; and the sections a subclass adds
            (``extra_records``: numddpg.sb3's "sb3", its learning-rate schedule)

A checkpoint taken at a plain env's episode boundary holds that episode's reset seed, so that a
resume redoes the reset exactly; elsewhere (mid-episode, or a vector env's, whose episodes end
at different steps) a load starts new episodes.
"""
import math
import re
import time
import warnings

import numpy as np

from ..checks import MAX_COUNT
from ..engine.agents import (N_STATS, agent_array_specs, agent_arrays, full_config,
                             agent_layer_sizes, agent_state, check_agent_meta)
from ..engine.buffer import ReplayBuffer
from ..engine.her import RECORD_FIELDS, HerReplayBuffer, record_arrays
from ..engine.hyperparameters import ADAM_KEYS, LOSS_KEYS, TABLES, whole_as_json
from ..engine.hyperparameters import check as check_hyperparameter
from ..files import checkpoint as _checkpoint
from ..files.checkpoint import CheckpointError, is_int, is_number
from ..files.dictobs import DictLayout, DictObsError
from ..files.policy import ACT_DTYPES
from ..files.rundir import SUCCESS_COLUMN, jsonable
from .envs import EnvError, check_env_record

STATS_ARRAY = "epoch.update_stats"    # TD3's loss_pi is NaN on updates without an actor step
MAX_ENVS = 1024             # envs of a vector env a file may ask to rebuild
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")   # a module name
# hyperparameters newer than the format: files written before them lack them (the default holds)
SAVED_SINCE = {"chunks", "gradient_steps", "qf_hidden_sizes", "her", "her_k", "n_critics",
               "n_steps", *ADAM_KEYS, *LOSS_KEYS, "random_eps", "obs_norm_eps"}


class BufferMissingWarning(RuntimeWarning):
    """A run is resumed from a checkpoint saved without its replay buffer: training goes on with
    an empty one, so it differs from an uninterrupted run (a caller that only acts, such as
    SB3's ``Policy.load``, ignores this category)."""


class RunState:
    """What a run changes as it trains (module docstring), with the epoch's summary.

    rng: the loop's numpy Generator; make_noise: a new exploration noise process of the run's
    kind (numddpg.engine.noise), one per env.
    """

    def __init__(self, rng, make_noise):
        self.rng = rng                  # the loop's generator
        self.noise_process = make_noise()       # the first env's exploration noise
        self._make_noise, self._noise_kind = make_noise, self.noise_process.kind
        self.t = 0                      # env steps (stored transitions) taken by learn()
        self.epoch = 0                  # epochs completed
        self.episodes = 0               # training episodes completed
        self.elapsed = 0.0              # seconds spent in learn() calls that ended
        self.last_test_return = math.nan
        self.learning = False           # a learn() is running, since learn_started
        self.learn_started = None
        self.checkpoint_t = None        # env step of the last checkpoint written
        self.unscanned = 0              # updates since the NaN guard's last full scan
        self.diverged = False           # the NaN guard stopped training
        self._noises = None             # one noise process per env (env_noises)
        self.new_episodes(1)
        self.new_epoch()

    def new_episodes(self, n):
        """Drop the episodes in progress: the next step starts one per env (``obs`` None)."""
        self.obs = None                 # current observations (n, obs_dim)
        self.ep_ret = np.zeros(n)       # return and length of each env's episode so far
        self.ep_len = np.zeros(n, np.int64)
        self.resetting = np.zeros(n, bool)      # a vector env's next step is env i's reset
        self.ep_seed = None             # reset seed of a plain env's current episode

    def env_noises(self, n):
        """One exploration noise process per env: ``noise_process`` for the first and, when it
        is of the run's kind, new ones for the others (OU noise has a state per episode); a
        noise process set from outside (SB3's) serves them all.  Kept while they stay."""
        noises = self._noises
        if noises is None or len(noises) != n or noises[0] is not self.noise_process:
            own = getattr(self.noise_process, "kind", None) == self._noise_kind
            self._noises = [self.noise_process] + [self._make_noise() if own
                                                   else self.noise_process
                                                   for _ in range(n - 1)]
        return self._noises

    def drop_noises(self):
        """Forget the other envs' noise processes (a new env: they start again)."""
        self._noises = None

    def end_episode(self, i, runlog, success=None):
        """Env i's episode is over: into the epoch's accumulators (and monitor.csv; its
        success, 0.0/1.0 or None, into TensorBoard's rollout/success_rate)."""
        ret, length = float(self.ep_ret[i]), int(self.ep_len[i])
        self.ep_rets.append(ret)
        self.ep_lens.append(length)
        self.episodes += 1
        if runlog is not None:
            runlog.on_episode(ret, length, self.t, success)
        self.ep_ret[i], self.ep_len[i] = 0.0, 0

    def elapsed_now(self):
        """Seconds spent in learn(), the one running included."""
        return self.elapsed + (time.perf_counter() - self.learn_started if self.learning
                               else 0.0)

    # -- the epoch ----------------------------------------------------------------------------
    def new_epoch(self):
        """Empty accumulators for the epoch that starts at env step ``t``."""
        self.ep_rets, self.ep_lens, self.update_stats = [], [], []
        self.epoch_t0 = self.t
        self.epoch_clock = time.perf_counter()

    def epoch_progress(self):
        """(env steps, seconds) of the epoch so far."""
        return self.t - self.epoch_t0, time.perf_counter() - self.epoch_clock

    def end_epoch(self, steps, seconds, test_rets, test_lens, test_successes=None):
        """Count the epoch and return its progress.csv row (numddpg.files.rundir's columns)
        from its accumulators, its ``steps`` in ``seconds`` and its test episodes
        (test_successes: their 0/1 successes, for the success column of a goal env's run, or
        None for a run without that column)."""
        self.epoch += 1
        if len(test_rets):
            self.last_test_return = float(np.mean(test_rets))
        row = {"Epoch": self.epoch, "TotalEnvInteracts": self.t}
        row.update(_describe("EpRet", self.ep_rets))
        row.update(_describe("TestEpRet", test_rets))
        row["EpLen"] = _mean(self.ep_lens)
        row["TestEpLen"] = _mean(test_lens)
        if self.update_stats:
            s = np.concatenate(self.update_stats)
            q_mean = float(np.mean(s[:, 2]))
            # pooled std of all Q(s, a) of the epoch's (equal-sized) minibatches
            q_var = float(np.mean(s[:, 3] ** 2 + s[:, 2] ** 2)) - q_mean ** 2
            row.update(AverageQVals=q_mean, StdQVals=math.sqrt(max(q_var, 0.0)),
                       LossPi=_nanmean(s[:, 1]), LossQ=float(np.mean(s[:, 0])))
        else:
            row.update(AverageQVals=math.nan, StdQVals=math.nan, LossPi=math.nan,
                       LossQ=math.nan)
        row["SPS"] = steps / seconds if seconds > 0 else math.nan
        row["Time"] = self.elapsed + time.perf_counter() - self.learn_started
        if test_successes is not None:
            row[SUCCESS_COLUMN] = _mean(test_successes)
        return row

    # -- the checkpoint's part ----------------------------------------------------------------
    def record(self, plain_env):
        """(arrays, loop record, first observation) of this state for a checkpoint: the noise
        state, the epoch's accumulators, the counters, and at a plain env's episode boundary
        its reset seed and first observation (else None: a vector env's episodes end at
        different steps, so its checkpoints are never at a boundary)."""
        arrays = {"noise.x": np.asarray(getattr(self.noise_process, "x", np.zeros(0)),
                                        np.float64),
                  "epoch.ep_rets": np.asarray(self.ep_rets, np.float64),
                  "epoch.ep_lens": np.asarray(self.ep_lens, np.int64),
                  STATS_ARRAY: (np.concatenate(self.update_stats) if self.update_stats
                                else np.zeros((0, N_STATS), np.float64))}
        at_boundary = bool(plain_env and self.obs is not None and self.ep_len[0] == 0)
        in_progress = bool(not plain_env or (self.obs is not None and self.ep_len[0] > 0))
        record = {"t": self.t, "epoch": self.epoch, "episodes": self.episodes,
                  "epoch_t0": self.epoch_t0, "elapsed": float(self.elapsed_now()),
                  "last_test_return": finite_or_none(self.last_test_return),
                  "episode_seed": int(self.ep_seed) if at_boundary else None,
                  "episode_in_progress": in_progress}
        return arrays, record, (self.obs[0] if at_boundary else None)

    def restore_rng(self, state, where):
        try:
            self.rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise CheckpointError(f"{where}: the loop generator's saved state is unusable: "
                                  f"{type(e).__name__}: {e}") from None

    def restore(self, loop, arrays):
        """The counters and the epoch's accumulators of a checkpoint's ``loop`` record; the
        episodes in progress are dropped (``restore_run`` redoes a saved boundary's reset)."""
        noise_x = arrays["noise.x"]
        if noise_x.size:
            self.noise_process.x[...] = noise_x
        self.t, self.epoch, self.episodes = loop["t"], loop["epoch"], loop["episodes"]
        self.elapsed = loop["elapsed"]
        self.last_test_return = (math.nan if loop["last_test_return"] is None
                                 else loop["last_test_return"])
        self.new_epoch()
        self.epoch_t0 = loop["epoch_t0"]
        self.ep_rets = arrays["epoch.ep_rets"].tolist()
        self.ep_lens = arrays["epoch.ep_lens"].tolist()
        self.update_stats = [arrays[STATS_ARRAY]] if len(arrays[STATS_ARRAY]) else []
        self.new_episodes(1)


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


def finite_or_none(x):
    """x as a float for a JSON record, or None if it is NaN or infinite (JSON has neither)."""
    x = float(x)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# Writing and restoring a model's checkpoint
# ---------------------------------------------------------------------------------------------

def save_run(model, path, include_buffer):
    """Write ``model``'s whole training state to ``path`` (module docstring), atomically."""
    state = model.state
    cfg = model.agent.config()
    arrays = agent_arrays(model.agent, "agent.")
    buf_arrays, buf_record = model.buffer.state(include_buffer)
    arrays.update({f"buffer.{k}": v for k, v in buf_arrays.items()})
    state_arrays, loop, first_obs = state.record(plain_env=not model.n_envs)
    arrays.update(state_arrays)
    if model.obs_norm is not None:
        arrays.update({f"norm.{k}": v for k, v in model.obs_norm.state().items()})
    if first_obs is not None:
        arrays["loop.obs"] = np.asarray(first_obs, np.float64)
    meta = {
        "kind": "algorithm", "algo": model.algo, "env_id": model.env_id,
        "env": model.env_record, "env_module": model.env_module,
        "vector": model.vector_record(),
        "preset": model.preset_name, "hyperparameters": jsonable(model.hyperparameters),
        "config": cfg, "layer_sizes": agent_layer_sizes(cfg),
        "spaces": {"obs_dim": model.obs_dim, "act_dim": model.act_dim,
                   "act_low": model.act_low.tolist(), "act_high": model.act_high.tolist(),
                   "act_dtype": np.dtype(model.env.action_space.dtype).name,
                   **({} if model.obs_layout is None else
                      {"obs_layout": model.obs_layout.record()})},
        "rng": jsonable(state.rng.bit_generator.state),
        "loop": loop,
        "buffer": buf_record,
        "logger": {"progress_rows": state.epoch if model._csv is not None else None},
    }
    extra = model.extra_records()                  # a subclass's own sections (numddpg.sb3's)
    if set(extra) & set(meta):
        raise ValueError(f"extra_records() names {sorted(set(extra) & set(meta))}, which are "
                         "numddpg's own sections of a checkpoint")
    meta.update(extra)
    return _checkpoint.write_checkpoint(path, arrays, meta, allow_nonfinite=(STATS_ARRAY,))


# The frame of the user's load() (or resume()) call, seen from restore_run: warnings point there
# (restore_run <- runfile.load_model <- OffPolicyAlgorithm.load <- the caller).
_LOAD_CALLER = 4


def restore_run(model, meta, arrays, where):
    """Put the state read by ``read_run_checkpoint`` into ``model``, built with the same
    hyperparameters on an env with the same spaces.  Raises CheckpointError if they differ.
    With a saved episode boundary, the env is reset with the saved seed (the first
    observation must come out equal, else a RuntimeWarning says the resume is inexact)."""
    _check_fits(model, meta, arrays["noise.x"], where)
    state, b = model.state, meta["buffer"]
    state.restore_rng(meta["rng"], where)
    model.agent.load_state_dict(agent_state(arrays, where, "agent."))
    model.buffer.restore({k[len("buffer."):]: v for k, v in arrays.items()
                          if k.startswith("buffer.")}, b)
    if not b["saved"] and b["size"]:
        warnings.warn(f"{where} was saved without its replay buffer: training resumes "
                      f"with an empty buffer (it held {b['size']} transitions), so the "
                      "resumed run differs from an uninterrupted one", BufferMissingWarning,
                      stacklevel=_LOAD_CALLER)
    if model.obs_norm is not None:
        norm = {k: arrays[f"norm.{k}"] for k in ("mean", "var", "count")}
        if np.any(norm["var"] < 0) or not norm["count"][0] > 0:
            raise CheckpointError(f"{where}: observation statistics var={norm['var']}, "
                                  f"count={norm['count']} (var >= 0, count > 0)")
        model.obs_norm.restore(norm)
    state.restore(meta["loop"], arrays)
    seed = meta["loop"]["episode_seed"]
    if seed is not None and not model.n_envs:     # an episode boundary: redo its reset exactly
        _redo_reset(model, seed, arrays["loop.obs"])


def _check_fits(model, meta, noise_x, where):
    """CheckpointError unless the checkpoint is of ``model``'s algorithm, agent, spaces,
    buffer and noise."""
    cfg, sp, b = meta["config"], meta["spaces"], meta["buffer"]
    if model.algo != meta["algo"]:
        raise CheckpointError(f"{where}: a {meta['algo']} checkpoint cannot be loaded into "
                              f"{type(model).__name__} ({model.algo})")
    if model.agent.config() != full_config(cfg):
        raise CheckpointError(f"{where}: the saved agent config {cfg} differs from the one "
                              f"the saved hyperparameters build here: {model.agent.config()}")
    if ((model.obs_dim, model.act_dim) != (sp["obs_dim"], sp["act_dim"])
            or model.act_low.tolist() != sp["act_low"]
            or model.act_high.tolist() != sp["act_high"]):
        raise CheckpointError(f"{where}: saved for spaces obs_dim={sp['obs_dim']}, act_dim="
                              f"{sp['act_dim']}, bounds {sp['act_low']}..{sp['act_high']}; "
                              f"the env {model.env_id} has {model.obs_dim}, {model.act_dim}, "
                              f"{model.act_low.tolist()}..{model.act_high.tolist()}")
    layout = saved_layout(sp, where)
    if layout != model.obs_layout:
        raise CheckpointError(f"{where}: saved for observations {layout or 'of a Box'}; the env "
                              f"{model.env_id} observes {model.obs_layout or 'a Box'}")
    buffer = model.buffer
    if isinstance(buffer, HerReplayBuffer):    # (its restore checks the record against it)
        if not saved_her(meta):
            raise CheckpointError(f"{where}: saved without hindsight experience replay; this "
                                  f"model has her={model.her!r}")
    elif (b["max_size"], b["dtype"]) != (buffer.max_size, buffer.dtype.name):
        raise CheckpointError(f"{where}: buffer max_size={b['max_size']} dtype={b['dtype']} "
                              f"differs from this model's {buffer.max_size} "
                              f"{buffer.dtype.name}")
    noise = model.state.noise_process
    if noise_x.shape != np.shape(getattr(noise, "x", np.zeros(0))):
        raise CheckpointError(f"{where}: noise state has shape {noise_x.shape}, this model's "
                              f"{type(noise).__name__} has none of that shape")


def restore_buffer(model, meta, arrays, where):
    """Put the replay buffer of a checkpoint read by ``read_run_checkpoint`` into ``model``
    (nothing else), after checking that it was saved and is of the model's kind, sizes and
    observation layout (CheckpointError, and nothing changed)."""
    b, sp, buffer = meta["buffer"], meta["spaces"], model.buffer
    if not b["saved"]:
        raise CheckpointError(f"{where} was saved without its replay buffer "
                              "(include_buffer=False): there is none to load")
    her = isinstance(buffer, HerReplayBuffer)
    if her != saved_her(meta):
        kinds = ("a uniform", "a hindsight (her)")
        raise CheckpointError(f"{where} holds {kinds[saved_her(meta)]} replay buffer; this "
                              f"model's is {kinds[her]} one")
    if saved_layout(sp, where) != model.obs_layout:
        raise CheckpointError(f"{where}: its buffer holds observations "
                              f"{saved_layout(sp, where) or 'of a Box'}, this model's "
                              f"{model.obs_layout or 'of a Box'}")
    if not her:            # (a hindsight buffer's restore checks its whole record against it)
        theirs = (sp["obs_dim"], sp["act_dim"], b["max_size"], b["dtype"])
        ours = (buffer.obs_dim, buffer.act_dim, buffer.max_size, buffer.dtype.name)
        if theirs != ours:
            raise CheckpointError(f"{where}: its replay buffer has (obs_dim, act_dim, "
                                  f"replay_size (SB3's buffer_size), dtype) = {theirs}, this "
                                  f"model's {ours}")
    buffer.restore({k[len("buffer."):]: v for k, v in arrays.items()
                    if k.startswith("buffer.")}, b)


def saved_layout(spaces, where):
    """The DictLayout of a checkpoint's ``spaces.obs_layout`` (checked: typed, bounded, of
    obs_dim numbers), or None for a Box env's."""
    if "obs_layout" not in spaces:
        return None
    try:
        return DictLayout.from_record(spaces["obs_layout"], spaces["obs_dim"])
    except DictObsError as exc:
        raise CheckpointError(f"{where}: spaces.obs_layout: {exc}") from None


def _redo_reset(model, seed, saved_obs):
    """The reset of the episode a checkpoint was saved at the start of, redone with its seed
    (a RuntimeWarning if the first observation differs: the env's reset is not reproducible)."""
    state = model.state
    state.ep_seed = seed
    obs = model.stepper().reset(seed, state.t)
    state.noise_process.reset()
    state.obs = obs[None]
    if not np.array_equal(np.asarray(obs, np.float64), saved_obs):
        warnings.warn(f"{model.env_id}.reset(seed={seed}) gave a different first observation "
                      "than when the checkpoint was saved: the env's reset is not "
                      "reproducible, so this resume is not exact", RuntimeWarning,
                      stacklevel=_LOAD_CALLER + 1)


# ---------------------------------------------------------------------------------------------
# Checking a checkpoint's record before anything is read
# ---------------------------------------------------------------------------------------------

def read_run_checkpoint(path):
    """(meta, arrays) of an algorithm checkpoint, fully checked (``save_run``'s format)."""
    where = str(path)
    return _checkpoint.read_checkpoint(path, "algorithm",
                                       lambda m: run_checkpoint_specs(m, where),
                                       allow_nonfinite=(STATS_ARRAY,))


def run_checkpoint_specs(meta, where):
    """The array table an algorithm record promises, after checking the record's fields (a
    file from anyone is refused before it allocates, imports or loads anything)."""
    cfg = check_agent_meta(meta, where)
    record = _Record(meta, where)
    sp = record.section("spaces", ("obs_dim", "act_dim", "act_low", "act_high", "act_dtype"))
    if not (is_int(sp["obs_dim"]) and is_int(sp["act_dim"])) or (
            (sp["obs_dim"], sp["act_dim"]) != (cfg["obs_dim"], cfg["act_dim"])):
        raise CheckpointError(f"{where}: spaces (obs_dim={sp['obs_dim']}, act_dim="
                              f"{sp['act_dim']}) disagree with the agent config "
                              f"({cfg['obs_dim']}, {cfg['act_dim']})")
    if sp["act_dtype"] not in ACT_DTYPES:
        raise CheckpointError(f"{where}: spaces.act_dtype {sp['act_dtype']!r} is not a float type")
    saved_layout(sp, where)
    loop = _check_loop(record)
    b = _check_her_buffer(record, cfg) if saved_her(meta) else _check_buffer(record)
    rows = record.count(record.section("logger", ("progress_rows",)), "progress_rows",
                        "logger", allow_none=True)
    if rows is not None and rows != loop["epoch"]:
        raise CheckpointError(f"{where}: logger.progress_rows={rows} must equal loop.epoch="
                              f"{loop['epoch']} (one progress row per epoch)")
    _check_names(meta, cfg, where)
    _check_saved_hyperparameters(meta.get("hyperparameters"), cfg, where)
    _check_generator_state(meta.get("rng"), where)
    return _array_specs(meta, cfg, b, loop)


class _Record:
    """A checkpoint's record and the place to name in its errors."""

    def __init__(self, meta, where):
        self.meta, self.where = meta, where

    def section(self, name, fields):
        sec = self.meta.get(name)
        if not isinstance(sec, dict) or any(f not in sec for f in fields):
            raise CheckpointError(f"{self.where}: metadata section {name!r} must hold {fields}, "
                                  f"got {sec!r}")
        return sec

    def count(self, sec, key, name, allow_none=False, bits=None):
        """sec[key], an integer from 0 to 2**bits - 1 (default: to MAX_COUNT, a count a run
        can reach)."""
        v, top = sec[key], MAX_COUNT if bits is None else 2**bits - 1
        if not ((allow_none and v is None) or (is_int(v) and 0 <= v <= top)):
            raise CheckpointError(f"{self.where}: {name}.{key}={v!r} must be an integer from 0 "
                                  f"to {'2**53' if bits is None else f'2**{bits} - 1'}")
        return v


def _check_loop(record):
    where = record.where
    loop = record.section("loop", ("t", "epoch", "episodes", "epoch_t0", "elapsed",
                                   "last_test_return", "episode_seed", "episode_in_progress"))
    for key in ("t", "epoch", "episodes", "epoch_t0"):
        record.count(loop, key, "loop")
    record.count(loop, "episode_seed", "loop", allow_none=True, bits=31)  # acting.reset_seed's
    if loop["epoch_t0"] > loop["t"]:
        raise CheckpointError(f"{where}: loop.epoch_t0={loop['epoch_t0']} is after "
                              f"loop.t={loop['t']}")
    if not (is_number(loop["elapsed"]) and loop["elapsed"] >= 0):
        raise CheckpointError(f"{where}: loop.elapsed={loop['elapsed']!r} must be a number >= 0")
    if not (loop["last_test_return"] is None or is_number(loop["last_test_return"])):
        raise CheckpointError(f"{where}: loop.last_test_return={loop['last_test_return']!r}")
    if not isinstance(loop["episode_in_progress"], bool) or (
            loop["episode_in_progress"] and loop["episode_seed"] is not None):
        raise CheckpointError(f"{where}: loop.episode_in_progress="
                              f"{loop['episode_in_progress']!r} with episode_seed="
                              f"{loop['episode_seed']!r} is contradictory")
    return loop


def _check_buffer(record):
    b = record.section("buffer", ("ptr", "size", "max_size", "dtype", "saved"))
    ptr, size, max_size = (record.count(b, k, "buffer") for k in ("ptr", "size", "max_size"))
    if not (0 < max_size and size <= max_size and ptr < max_size
            and (size == max_size or ptr == size)):
        raise CheckpointError(f"{record.where}: buffer ptr={ptr}, size={size}, max_size="
                              f"{max_size} cannot describe a ring buffer")
    if b["dtype"] not in ("float32", "float64") or not isinstance(b["saved"], bool):
        raise CheckpointError(f"{record.where}: buffer dtype={b['dtype']!r}, saved="
                              f"{b['saved']!r}")
    return b


def saved_her(meta):
    """Whether a checkpoint's run used hindsight experience replay (its hyperparameter her;
    files from before it have none).  The value itself is checked by the constructor."""
    hp = meta.get("hyperparameters")
    return isinstance(hp, dict) and hp.get("her", "none") != "none"


def _check_her_buffer(record, cfg):
    """The hindsight buffer's record (numddpg.engine.her: typed and bounded here, and of the
    agent's sizes; ``restore`` checks the rest against the buffer)."""
    b = record.section("buffer", RECORD_FIELDS)
    try:
        record_arrays(b)
    except CheckpointError as exc:
        raise CheckpointError(f"{record.where}: {exc}") from None
    if (b["obs_dim"], b["act_dim"]) != (cfg["obs_dim"], cfg["act_dim"]):
        raise CheckpointError(f"{record.where}: the hindsight buffer holds obs_dim="
                              f"{b['obs_dim']}, act_dim={b['act_dim']}; the agent's are "
                              f"{cfg['obs_dim']}, {cfg['act_dim']}")
    return b


def _check_names(meta, cfg, where):
    """The record's env id, algo, module and preset names, env record and vector record."""
    if not isinstance(meta.get("env_id"), str) or meta.get("algo") != cfg["algo"]:
        raise CheckpointError(f"{where}: env_id {meta.get('env_id')!r} / algo "
                              f"{meta.get('algo')!r} (the agent's is {cfg['algo']!r})")
    for key in ("env_module", "preset"):
        if not (meta.get(key) is None or (isinstance(meta[key], str) and MODULE.match(meta[key])
                                          if key == "env_module" else isinstance(meta[key], str))):
            raise CheckpointError(f"{where}: {key} {meta[key]!r} must be null or a name")
    if "env" in meta:                  # (files from before env records have none)
        try:
            check_env_record(meta["env"])
        except EnvError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        if meta["env"]["id"] != meta["env_id"]:
            raise CheckpointError(f"{where}: env_id {meta['env_id']!r} is not the env "
                                  f"record's {meta['env']['id']!r}")
    check_vector_record(meta.get("vector"), where)


def check_vector_record(vector, where):
    """CheckpointError unless ``vector`` (read from a file) is null or {"num_envs": 1..MAX_ENVS,
    "mode": "sync" | "async"}: a description of the run's envs, shown to the user, never
    obeyed (runfile.vector_for: the user says how many envs, and processes, to start)."""
    if vector is not None and not (
            isinstance(vector, dict) and set(vector) == {"num_envs", "mode"}
            and is_int(vector["num_envs"]) and 1 <= vector["num_envs"] <= MAX_ENVS
            and vector["mode"] in ("sync", "async")):
        raise CheckpointError(f"{where}: vector {vector!r} must be null or {{'num_envs': 1.."
                              f"{MAX_ENVS}, 'mode': 'sync' or 'async'}}")


def _array_specs(meta, cfg, b, loop):
    """{name: (dtype, shape)} of the arrays of a checked record."""
    specs = agent_array_specs(cfg, "agent.")
    o, a, size = cfg["obs_dim"], cfg["act_dim"], b["size"]
    if saved_her(meta):
        specs.update({f"buffer.{k}": v for k, v in record_arrays(b).items()})
    elif b["saved"]:
        shapes = {"obs": (size, o), "act": (size, a), "rew": (size,), "obs2": (size, o),
                  "done": (size,)}
        specs.update({f"buffer.{k}": (b["dtype"], shapes[k]) for k in ReplayBuffer.FIELDS})
        if meta["hyperparameters"].get("n_steps", 1) != 1:      # (checked: an int >= 1)
            specs[f"buffer.{ReplayBuffer.LINKS}"] = ("int64", (size,))
    specs["buffer.rng_state"] = ("uint64", (1,))
    table = meta["arrays"]
    noise_len = table.get("noise.x", {}).get("shape", [0])
    specs["noise.x"] = ("float64", (a,) if noise_len == [a] else (0,))
    k = table.get("epoch.ep_rets", {}).get("shape", [0])[:1] or [0]
    m = table.get(STATS_ARRAY, {}).get("shape", [0])[:1] or [0]
    specs["epoch.ep_rets"] = ("float64", (k[0],))
    specs["epoch.ep_lens"] = ("int64", (k[0],))
    specs[STATS_ARRAY] = ("float64", (m[0], 4))
    if loop["episode_seed"] is not None:
        specs["loop.obs"] = ("float64", (o,))
    if meta["hyperparameters"].get("normalize_obs") is True:
        specs.update({"norm.mean": ("float64", (o,)), "norm.var": ("float64", (o,)),
                      "norm.count": ("float64", (1,))})
    return specs


def _check_saved_hyperparameters(hp, cfg, where):
    """The record's hyperparameters: exactly the algorithm's names, a seed, and chunks as the
    agent's (or null: calibrated).  Their values are checked again by the constructor."""
    specs = TABLES[cfg["algo"]]
    if not isinstance(hp, dict) or not set(specs) - SAVED_SINCE <= set(hp) <= set(specs):
        names = sorted(set(hp) ^ set(specs)) if isinstance(hp, dict) else hp
        raise CheckpointError(f"{where}: hyperparameters must name exactly the {cfg['algo']} "
                              f"ones (differ: {names!r})")
    bad = [name for name in hp if not whole_as_json(hp[name], specs[name])]
    if bad:
        raise CheckpointError(f"{where}: hyperparameters.{bad[0]} {hp[bad[0]]!r} must be "
                              "written with JSON integers")
    if not (is_int(hp["seed"]) and hp["seed"] >= 0):
        raise CheckpointError(f"{where}: hyperparameters.seed {hp['seed']!r} must be an integer "
                              ">= 0 (a saved run always has its seed)")
    if "n_steps" in hp:                  # (it decides which buffer arrays the file holds)
        try:
            check_hyperparameter("n_steps", hp["n_steps"], specs["n_steps"])
        except ValueError as exc:
            raise CheckpointError(f"{where}: hyperparameters: {exc}") from None
    if hp.get("chunks") is not None and not (is_int(hp["chunks"])
                                         and hp["chunks"] == cfg.get("chunks", 1)):
        raise CheckpointError(f"{where}: hyperparameters.chunks {hp['chunks']!r} differs from the "
                              f"agent's {cfg.get('chunks', 1)}")


def _check_generator_state(state, where):
    """A numpy PCG64 ``bit_generator.state`` record, field by field (numpy itself would coerce
    a float or a bool)."""
    def int_in(v, bits):
        return is_int(v) and 0 <= v < 2**bits

    ok = (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32",
                                                     "uinteger"}
          and state["bit_generator"] == "PCG64" and isinstance(state["state"], dict)
          and set(state["state"]) == {"state", "inc"}
          and int_in(state["state"]["state"], 128) and int_in(state["state"]["inc"], 128)
          and state["has_uint32"] in (0, 1) and is_int(state["has_uint32"])
          and int_in(state["uinteger"], 32))
    if not ok:
        raise CheckpointError(f"{where}: rng {state!r} is not a PCG64 generator state (integers "
                              "state, inc < 2**128, has_uint32 0 or 1, uinteger < 2**32)")
