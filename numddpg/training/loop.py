"""The training loop: n envs stepped together, one transition per env and step (Spinning Up's
pseudocode); a plain gymnasium.Env is n = 1.

    a_i = uniform in [low, high]                           while t < start_steps
        = clip(mid + half (tanh(actor(s_i)) + n_i), low, high)   after, n_i: env i's noise
    s'_i, r_i, terminated_i, truncated_i = step(a)
    store (s_i, a_i, r_i, s'_i, d_i = terminated_i)        truncation (time limit or max_ep_len)
                                                           is *not* an end of the MDP: d = 0 and
                                                           s' is the true last observation, so
                                                           it bootstraps; t counts transitions
    an ended episode starts again (a reset seeded from the loop's generator)
    the update_every multiples from update_after on that t passed: their updates in one burst
    if the epoch is over: num_test_episodes deterministic episodes on a separate env, one row
                          of progress.csv, policy.npz saved

How n envs step and start new episodes is all that differs between a plain env and a vector
env, and ``PlainEnv`` and ``VectorEnvs`` say it: a plain env is reset by the loop as soon as an
episode ends (``max_ep_len`` is its time limit), a vector env resets its envs itself.
"""
import contextlib
import sys
import time

import numpy as np

from ..engine.agents import N_STATS
from ..engine.buffer import BAD_WHAT, STORED, NonFiniteTransition
from ..engine.her import HerReplayBuffer
from ..files import rundir as _rundir
from ..files import runlog as _runlog
from ..files.policy import POLICY_FILE
from ..files.rundir import SUCCESS_COLUMN
from ..kernels import jitcache as _jitcache
from ..kernels import threads as _threads
from .acting import env_action, kernel_dtype, reset_seed, run_episodes, success_flag
from .envs import (EnvError, EnvFailure, check_flags, check_obs, check_reward, check_rewards,
                   env_id, env_info)
from .guard import check_finite
from .runfile import CHECKPOINT_FILE, RunWriteError


@contextlib.contextmanager
def blas_threads(n):
    """BLAS limited to ``n`` threads inside the block (numddpg.threads explains the choice)."""
    limiter = _threads.limit_blas_threads(n)
    try:
        yield
    finally:
        limiter.restore_original_limits()


# what a non-finite transition's message ends with (the replay buffer's or the hindsight one's)
NON_FINITE_HINT = ("; training stopped there. Check the env, or wrap it (e.g. "
                   "gymnasium.wrappers.ClipReward / TransformObservation).")


class Loop:
    """One learn() call of ``model`` (an OffPolicyAlgorithm): the steps of the module docstring
    up to env step ``end``, with the training rounds, epochs, checkpoints and ``callback``
    calls (SB3's protocol, numddpg.sb3.callbacks) on the way.  The loop's state is the
    model's run state (numddpg.training.runstate), so that a checkpoint holds all of it."""

    def __init__(self, model, callback=None, progress_bar=True):
        self.model, self.state, self.callback = model, model.state, callback
        self.agent, self.buffer, self.policy, self.obs_norm = model.loop_parts()
        self.envs = model.stepper()
        # a buffer that stores whole steps of every env (the hindsight buffer keeps episodes
        # whole) gets them from _store_step; the replay buffer gets each transition
        self.whole_steps = isinstance(self.buffer, HerReplayBuffer)
        self.progress_bar, self.bar = progress_bar, None
        self.runlog = None                     # numddpg.files.runlog.RunLog, while running
        self.checkpoint_every = 0              # env steps between checkpoints (0: none)
        self.next_checkpoint = None
        self.thread_guard = None               # numddpg.kernels.threads.ThreadGuard

    def run(self, end):
        """Train up to env step ``end`` (numddpg.training.algorithms.OffPolicyAlgorithm.learn
        says what is written where)."""
        model, state = self.model, self.state
        self._open(end)
        state.learning, state.diverged, finished = True, False, False
        try:
            with blas_threads(model.blas_threads or _threads.default_blas_threads()):
                self.thread_guard = _threads.ThreadGuard(self.agent)
                self._steps(end)
            finished = True
        finally:
            self._close(finished)

    def _open(self, end):
        model, state = self.model, self.state
        if model.run_dir is not None or model.tensorboard_log is not None:
            self.runlog = _runlog.RunLog(model.run_dir, model.tensorboard_log,
                                         model.tb_log_name or type(model).__name__,
                                         env_id=model.env_id, t=state.t,
                                         episodes=state.episodes, elapsed=state.elapsed,
                                         log_interval=model.log_interval)
        if self.progress_bar and not _jitcache.kernels_cached():
            print("compiling kernels (first run only, 20-60 s)", file=sys.stderr, flush=True)
        self.bar = _rundir.ProgressBar(end, initial=state.t, disable=not self.progress_bar,
                                       desc=f"{model.algo} {model.env_id}")
        # The epoch in progress carries over (after a resume it is half done); only its clock
        # restarts.
        state.epoch_clock = state.learn_started = time.perf_counter()
        every = model.steps_per_epoch if model.checkpoint_every is None else \
            model.checkpoint_every
        self.checkpoint_every = every if model.run_dir is not None else 0
        self.next_checkpoint = state.t + self.checkpoint_every
        if self.checkpoint_every and not (model.run_dir / CHECKPOINT_FILE).exists():
            self._save_checkpoint()

    def _close(self, finished):
        """The end of a learn() call, normal or not: the clock, the logs, and with a run
        directory the policy and (after a normal end) a last checkpoint."""
        model, state = self.model, self.state
        state.learning = False
        state.elapsed += time.perf_counter() - state.learn_started
        self.bar.close()
        if self.runlog is not None:
            self.runlog.close()
            self.runlog = None
        if model.run_dir is None or state.diverged:      # never save NaN parameters
            return
        try:
            model.save_policy(model.run_dir / POLICY_FILE)
        except OSError as exc:
            if finished:                       # (else keep the error already on its way)
                raise self._write_error(model.run_dir / POLICY_FILE, exc) from None
        if finished and self.checkpoint_every and state.checkpoint_t != state.t:
            self._save_checkpoint()            # (unless the last step's one is this state)

    # -- the steps ----------------------------------------------------------------------------
    def _steps(self, end):
        model, state, envs, obs_norm = self.model, self.state, self.envs, self.obs_norm
        # (the step's test for a training round, before calling _train_rounds, which counts
        # them: most steps have none, and a call costs a Python frame per step)
        update_after, every = model.update_after, model.update_every
        noises = state.env_noises(envs.n)
        acts = np.zeros((envs.n, model.act_dim), kernel_dtype(self.policy.act_dtype))
        if state.obs is None:                  # a fresh start (or a load, a new env)
            state.new_episodes(envs.n)
            if not self.whole_steps:           # (n-step returns: no link to an old episode)
                self.buffer.end_episodes()
            state.obs = envs.start(state, obs_norm, noises)
        if self.callback is not None:
            self.callback.on_rollout_start()
        while state.t < end:
            obs = state.obs
            if state.t < model.start_steps:
                self.policy.uniform(state.rng, acts)
            else:
                self.policy.explore(obs, noises, state.rng, acts, model.random_eps)
            obs2, rews, terms, ends, infos = envs.step(acts, state)
            t0 = state.t
            self._store(obs, acts, obs2, rews, terms, ends, infos, noises)
            if obs_norm is not None:           # (a vector env's reset observations too)
                obs_norm.update(obs2)
            state.obs = envs.next_obs(state, obs2, ends, obs_norm, noises)
            if self.callback is not None and not self._callback_step(obs2, acts, rews, ends,
                                                                     infos):
                end = t0 = state.t             # stop here, as a normal end would (and, as
            if state.t >= update_after and state.t // every > t0 // every:
                self._train_rounds(t0)         # SB3, without a last training round)
            if state.t - state.epoch_t0 >= model.steps_per_epoch or state.t >= end:
                self._end_epoch()
            if (self.checkpoint_every and state.t >= self.next_checkpoint
                    and envs.at_boundary(state)):
                self._save_checkpoint()

    def _store(self, obs, acts, obs2, rews, terms, ends, infos, noises):
        """Store every env's transition of this step (d = terminated only; with the env's
        index and whether its episode ended, by which n-step returns link an episode's
        transitions) and count it; an ended episode goes into the epoch's record."""
        state, envs, whole = self.state, self.envs, self.whole_steps
        if whole:                              # s' of each env, and which envs made a step
            rows2, stored = np.array(obs2, np.float64), np.zeros(envs.n)
        else:
            store = self.buffer.store_fast
        for i in envs.transitions(state, noises):
            state.t += 1
            state.ep_len[i] += 1
            state.ep_ret[i] += rews[i]
            s2 = envs.final_obs(i, obs2, infos) if ends[i] else obs2[i]
            if whole:
                rows2[i], stored[i] = s2, 1.0
            else:
                code = store(obs[i], acts[i], rews[i], s2, 1.0 if terms[i] else 0.0, i,
                             ends[i])
                if code != STORED:
                    raise self._non_finite(code, s2, rews[i], i)
            if ends[i]:
                state.end_episode(i, self.runlog, envs.success(i, infos))
                envs.episode_ended(i, state, noises)
        if whole:
            self._store_step(obs, acts, rews, rows2, terms, ends, stored, infos)

    def _store_step(self, obs, acts, rews, obs2, terms, ends, stored, infos):
        """One step of every env into the hindsight buffer: truncated is an end that is not a
        termination (a time limit, max_ep_len); an env that made no transition is left out.
        A buffer that keeps info dicts (SB3's copy_info_dict) gets each env's."""
        terms, ends = np.asarray(terms, bool), np.asarray(ends, bool)
        env_infos = None if self.buffer.infos is None else self.envs.env_infos(infos)
        try:
            self.buffer.store(obs, acts, np.asarray(rews, np.float64), obs2, terms,
                              ends & ~terms, stored, env_infos)
        except NonFiniteTransition as exc:
            raise EnvFailure(f"{self.model.env_id} returned a non-finite value at env step "
                             f"{self.state.t} ({exc}){NON_FINITE_HINT}") from None

    def _non_finite(self, code, obs2, rew, i):
        state = self.state
        return EnvFailure(f"{self.model.env_id} returned a non-finite {BAD_WHAT[code]} at env "
                          f"step {state.t} (step {state.ep_len[i]} of episode "
                          f"{state.episodes + 1}; NaN, inf, or beyond float32's range): "
                          f"obs={obs2}, reward={rew}{NON_FINITE_HINT}")

    def _callback_step(self, obs2, acts, rews, ends, infos):
        """Hand one step to the callback in Stable-Baselines3's locals (arrays with an env
        axis) and return what its on_step says (False: stop training)."""
        self.callback.update_locals({"self": self.model, "new_obs": obs2,
                                     "actions": acts.copy(), "rewards": np.asarray(rews),
                                     "dones": np.asarray(ends), "infos": infos})
        return bool(self.callback.on_step())  # (as in SB3, a None from _on_step stops too)

    # -- training -----------------------------------------------------------------------------
    def _train_rounds(self, t0):
        """The training rounds due in env steps (t0, t]: multiples of update_every from
        update_after on, their updates (gradient_steps each) in one burst."""
        model, t = self.model, self.state.t
        every = model.update_every
        first = max(t0 // every + 1, -(-model.update_after // every))
        rounds = max(0, t // every - first + 1)
        if rounds:
            self._train_round(rounds * (model.gradient_steps or every))

    def _train_round(self, n_updates):
        """One training round: ``n_updates`` updates in one jitted burst, then the NaN guard,
        the busy-machine guard, the logs, and the callback's rollout_end/start around it."""
        model, state, callback = self.model, self.state, self.callback
        if callback is not None:
            callback.on_rollout_end()
        t_burst = time.perf_counter()
        stats = self.buffer.train(self.agent, model.batch_size, n_updates, self.obs_norm)
        self.thread_guard.observe((time.perf_counter() - t_burst) / n_updates)
        self._check_finite(stats)
        if len(stats):                         # (none: a hindsight buffer with no episode yet)
            state.update_stats.append(stats)
        if self.runlog is not None:
            self.runlog.on_updates(stats, state.t)
        self.bar.update_to(state.t)
        if callback is not None:
            callback.on_rollout_start()

    def _check_finite(self, stats, full=False):
        run_dir = self.model.run_dir
        check_finite(self.agent, stats, self.state,
                     None if run_dir is None else run_dir / CHECKPOINT_FILE, full)

    # -- epochs and files ---------------------------------------------------------------------
    def _end_epoch(self):
        model, state = self.model, self.state
        steps, seconds = state.epoch_progress()
        n = model.num_test_episodes
        successes = [] if SUCCESS_COLUMN in model.progress_columns() else None
        tests = (run_episodes(self.policy, model.test_env, n, state.rng, model.max_ep_len,
                              successes) if n else (np.zeros(0), np.zeros(0)))
        row = model.last_row = state.end_epoch(steps, seconds, *tests, successes)
        if self.runlog is not None:
            self.runlog.on_epoch(row, state.t)
        if model._csv is not None:
            model._csv.write(row)
            model.save_policy(model.run_dir / POLICY_FILE)
        self.bar.update_to(state.t)
        self.bar.set_stats(sps=row["SPS"], test_return=row["AverageTestEpRet"])
        state.new_epoch()

    def _save_checkpoint(self):
        """RUN_DIR/checkpoint.npz, after making the progress rows it counts durable (and after
        the NaN guard's full scan, so that a checkpoint only ever replaces another with a good
        state)."""
        model, state = self.model, self.state
        self._check_finite(np.zeros((0, N_STATS)), full=True)
        path = model.run_dir / CHECKPOINT_FILE
        try:
            if model._csv is not None:
                model._csv.sync()
            if self.runlog is not None:
                self.runlog.sync()
            model.save(path)
        except OSError as exc:
            raise self._write_error(path, exc) from None
        state.checkpoint_t = state.t
        self.next_checkpoint = state.t + self.checkpoint_every

    def _write_error(self, path, exc):
        """RunWriteError for a failed write of ``path`` (a full disk, a lost mount)."""
        state = self.state
        kept = (f"the previous checkpoint (env step {state.checkpoint_t}) is kept"
                if state.checkpoint_t is not None else "no checkpoint was written yet")
        return RunWriteError(exc.errno, f"cannot write {path} at env step {state.t}: "
                             f"{exc.strerror or exc}; {kept}. Free space (or fix the folder), "
                             f"then continue with: numddpg train --resume {self.model.run_dir}")


# ---------------------------------------------------------------------------------------------
# n envs: a plain env (n = 1) and a vector env
# ---------------------------------------------------------------------------------------------

OBS_DTYPES = (np.float32, np.float64)


class PlainEnv:
    """A gymnasium.Env as the loop's n = 1 envs.  The loop resets it itself as soon as an
    episode ends (terminated, truncated, or ``max_ep_len`` steps: a time limit), with a seed
    drawn from the loop's generator and kept: a checkpoint taken at that episode boundary
    redoes the reset exactly, so checkpoints wait for one (``at_boundary``)."""

    n = 1

    def __init__(self, env, env_id, obs_dim, max_ep_len, layout=None):
        self.env, self.env_id, self.obs_dim, self.max_ep_len = env, env_id, obs_dim, max_ep_len
        self.layout = layout                   # a Dict observation's DictLayout, or None
        self.act_dtype = env.action_space.dtype

    def reset(self, seed, t):
        """The first observation (obs_dim,) of an episode reset with ``seed``, checked."""
        obs, _ = self.env.reset(seed=seed)
        return check_obs(obs, self.obs_dim, self.env_id, f"reset at env step {t}",
                         layout=self.layout)

    def start(self, state, obs_norm, noises):
        """A new episode (obs (1, obs_dim)); its first observation joins the statistics."""
        state.ep_seed = reset_seed(state.rng)  # kept: a checkpoint redoes this reset
        obs = self.reset(state.ep_seed, state.t)
        finite = np.all(np.isfinite(obs))
        if obs_norm is not None and finite:
            obs_norm.update(obs)
        if not finite:
            raise EnvFailure(f"{self.env_id} returned a non-finite observation {obs} from "
                             f"reset at env step {state.t}; training stopped")
        state.ep_ret[0], state.ep_len[0] = 0.0, 0
        noises[0].reset()
        return obs[None]

    def step(self, acts, state):
        """(obs2 (1, obs_dim), rewards, terminated, ended, infos) of one step, checked."""
        obs2, rew, terminated, truncated, info = self.env.step(env_action(acts[0],
                                                                          self.act_dtype))
        t = state.t + 1                        # the number of this step's transition
        if not (type(obs2) is np.ndarray and obs2.shape == (self.obs_dim,)
                and obs2.dtype in OBS_DTYPES):            # (the common case, checked fast)
            obs2 = check_obs(obs2, self.obs_dim, self.env_id, f"step at env step {t}",
                             layout=self.layout)
        rew = check_reward(rew, self.env_id, "step", t)
        # this step is the episode's (ep_len + 1)-th: at max_ep_len the loop truncates it
        ended = terminated or truncated or state.ep_len[0] + 1 >= self.max_ep_len
        return obs2[None], (rew,), (terminated,), (ended,), [info]

    def transitions(self, state, noises):
        return range(1)                        # every step of a plain env is a transition

    def success(self, i, infos):
        """The ended episode's info["is_success"] (a goal env's) as 0.0/1.0, or None."""
        info = infos[0]
        if not isinstance(info, dict) or "is_success" not in info:
            return None
        return success_flag(info["is_success"], self.env_id)

    def final_obs(self, i, obs2, infos):
        return obs2[i]

    def env_infos(self, infos):
        """The step's info dict of each env: [info]."""
        return infos

    def episode_ended(self, i, state, noises):
        """(The next episode starts in ``next_obs``, once the step is stored and merged.)"""

    def next_obs(self, state, obs2, ends, obs_norm, noises):
        """The observations the next step acts on: a new episode's after one ended."""
        return self.start(state, obs_norm, noises) if ends[0] else obs2

    def at_boundary(self, state):
        return state.ep_len[0] == 0


class VectorEnvs:
    """A gymnasium vector env of n envs.

    gymnasium 1.x autoresets an env whose episode ended: in NEXT_STEP mode (the default) the
    step that ended it returns the true final observation, and that env's *next* step is its
    reset (its action ignored, reward 0): that step is no transition and is not stored.  In
    SAME_STEP mode the ending step returns the reset observation and the true final one in
    info["final_obs"], which is what s' is then.  Either way a truncated episode bootstraps
    from its true final observation (d = terminated only).  Episodes end by the envs' own time
    limits (max_ep_len is not applied: a vector env cannot reset one of its envs on request),
    at different steps: checkpoints never wait for a boundary, and a load starts every env's
    episode afresh.
    """

    def __init__(self, env, env_id, obs_dim, layout=None):
        self.env, self.env_id, self.obs_dim, self.layout = env, env_id, obs_dim, layout
        self.n = env.num_envs
        self.act_dtype = env.single_action_space.dtype
        self.same_step = autoreset_same_step(env)

    def start(self, state, obs_norm, noises):
        """New episodes in every env (obs (n, obs_dim)), joining the statistics."""
        obs, _ = self.env.reset(seed=reset_seed(state.rng))
        obs = check_obs(obs, self.obs_dim, self.env_id, "reset", self.n, self.layout)
        if obs_norm is not None:
            obs_norm.update(obs)
        for p in noises:
            p.reset()
        return obs

    def step(self, acts, state):
        """(obs2 (n, obs_dim), rewards, terminated, ended, infos) of one step, checked."""
        obs2, rew, term, trunc, infos = self.env.step(env_action(acts, self.act_dtype))
        obs2 = check_obs(obs2, self.obs_dim, self.env_id, f"step at env step {state.t}",
                         self.n, self.layout)
        rew = check_rewards(rew, self.n, self.env_id, state.t)
        term = check_flags(term, self.n, self.env_id, "terminations", state.t)
        trunc = check_flags(trunc, self.n, self.env_id, "truncations", state.t)
        if not isinstance(infos, dict):
            raise EnvFailure(f"{self.env_id}: step at env step {state.t} returned infos "
                             f"{type(infos).__name__} {infos!r:.80}; a vector env returns a dict")
        return obs2, rew, term, term | trunc, infos

    def transitions(self, state, noises):
        """The envs whose step was a transition (not a NEXT_STEP reset), in order."""
        for i in range(self.n):
            if state.resetting[i]:             # this step was env i's reset
                state.resetting[i] = False
                noises[i].reset()
            else:
                yield i

    def success(self, i, infos):
        """Env i's ended episode's info["is_success"] (a goal env's) as 0.0/1.0, or None: in
        the step's infos (NEXT_STEP), or in their "final_info" (SAME_STEP)."""
        if self.same_step:
            infos = infos.get("final_info", {}) if isinstance(infos, dict) else {}
        if not isinstance(infos, dict) or "is_success" not in infos:
            return None
        if not np.asarray(infos.get("_is_success", np.ones(self.n, bool)))[i]:
            return None
        return success_flag(np.asarray(infos["is_success"])[i], self.env_id)

    def final_obs(self, i, obs2, infos):
        """s' of env i's ending step: its true final observation."""
        if self.same_step:
            return check_obs(infos["final_obs"][i], self.obs_dim, self.env_id,
                             f"final_obs of env {i}", layout=self.layout)
        return obs2[i]

    def env_infos(self, infos):
        """The step's info dict of each env: the vector env's own list (numddpg.sb3's VecEnv
        adapter keeps it as ``per_env``), or each env's part of gymnasium's infos."""
        per_env = getattr(infos, "per_env", None)
        return per_env if per_env is not None else [env_info(infos, i) for i in range(self.n)]

    def episode_ended(self, i, state, noises):
        if self.same_step:
            noises[i].reset()                  # obs2[i] starts the next episode already
        else:
            state.resetting[i] = True

    def next_obs(self, state, obs2, ends, obs_norm, noises):
        return obs2

    def at_boundary(self, state):
        return True


def autoreset_same_step(env):
    """True for a vector env in SAME_STEP autoreset mode, False for NEXT_STEP (gymnasium's
    default); EnvError for DISABLED, whose envs would never start a new episode here."""
    from gymnasium.vector import AutoresetMode
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        raise EnvError(f"{env_id(env)}: autoreset_mode {mode} is not supported; make the "
                       "vector env with AutoresetMode.NEXT_STEP (the default) or SAME_STEP")
    return mode == AutoresetMode.SAME_STEP
