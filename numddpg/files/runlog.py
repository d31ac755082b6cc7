"""A run in the files people already read: Stable-Baselines3's monitor.csv and TensorBoard.

    RUN_DIR/monitor.csv     one row per finished training episode, SB3 Monitor's format
    TB_DIR/<tb_log_name>_<N>/events.out.tfevents.*
                            TensorBoard scalars under SB3's names (only with a tensorboard_dir;
                            tensorboardX writes them: ``pip install 'numddpg[tensorboard]'``)

progress.csv (numddpg.files.rundir) stays the per-epoch record; this module adds the per-episode and
per-dump views that SB3 users' tools (``stable_baselines3.common.monitor.load_results``,
``tensorboard --logdir TB_DIR``, the RL Zoo's plot scripts) expect.  The training loop drives one
``RunLog`` per ``learn()`` call: ``on_episode`` at each training episode's end, ``on_updates``
after each burst of updates, ``on_epoch`` at each epoch's end, ``close`` at the end.

monitor.csv (the facts of SB3's ``Monitor`` / ``ResultsWriter``):

    #{"t_start": 1796186481.25, "env_id": "Pendulum-v1"}     JSON: wall-clock start, env id
    r,l,t                                                   header
    -1185.412873,200,1.153642                               return, length, seconds since start

``r`` and ``t`` are rounded to 6 decimals like SB3's; SB3's reader adds ``t_start`` to ``t``.
Rows end in "\\n" (SB3's csv writer ends them in "\\r\\n"; every CSV reader takes both) and are
flushed one by one.  ``t`` counts seconds of training (``elapsed`` plus the time since this
RunLog started) when ``elapsed`` is given, else wall-clock seconds since ``t_start`` as in SB3.
With TensorBoard the header also names the run's event folder (``"tensorboard": "DDPG_3"``), so
that a resumed run writes on in the same one (SB3's reader ignores the extra key); a run that
began without TensorBoard and turns it on later gets a new folder each time.

TensorBoard scalars, each at the env step ``t`` as its step (SB3's ``num_timesteps``):

    rollout/ep_rew_mean   mean return of the last ``ep_info_window`` (100) training episodes
    rollout/ep_len_mean   their mean length
    rollout/success_rate  the mean info["is_success"] of those of them that report one (goal
                          envs; SB3's name)
    train/critic_loss     mean loss_q over the updates since the previous dump
    train/actor_loss      mean loss_pi over the actor updates since the previous dump (TD3's
                          critic-only updates have none)
    time/fps              env steps per second since this RunLog started (SB3: since learn())
    time/episodes         training episodes so far (SB3 keeps this one out of TensorBoard)
    eval/mean_reward      the epoch's mean test return (AverageTestEpRet; SB3's EvalCallback name)
    eval/mean_ep_length   the epoch's mean test episode length (TestEpLen)
    eval/success_rate     the epoch's test success rate (TestSuccessRate, goal envs)
    numddpg/<Column>      every finite column of the epoch's progress.csv row but the step

When: rollout/, train/ and time/ every ``log_interval`` training episodes (4, SB3's off-policy
default) and at each epoch end; eval/ and numddpg/ at each epoch end, where the writer is also
flushed (at most one epoch of scalars is lost if the process is killed).

A run continued in the same run directory (a resume, or a second ``learn``) constructs its
RunLog with the loop's counters: monitor.csv is cut back to the ``episodes`` rows the checkpoint
counts (rows written after it are written again), the last ``ep_info_window`` of them refill the
rollout window, and the recorded event folder is reopened with ``purge_step = t + 1``, so that
TensorBoard hides the scalars the killed process wrote after the checkpoint.  The sums of
train/ since the last dump before a kill are not in the checkpoint: the first train/ point after
a resume averages the resumed updates only.
"""
import json
import math
import os
import time
import warnings
from collections import deque
from pathlib import Path

import numpy as np

from ..checks import check_int
from .rundir import SUCCESS_COLUMN

MONITOR_FILE = "monitor.csv"          # SB3's Monitor.EXT
MONITOR_COLUMNS = "r,l,t"
LOG_INTERVAL = 4                      # SB3's off-policy learn(log_interval=4): episodes per dump
EP_INFO_WINDOW = 100                  # SB3's stats_window_size
MAX_HEADER_BYTES = 4096               # the JSON line is ~100 bytes; a longer one is not ours
MAX_ROW_BYTES = 256                   # "r,l,t\n" is < 80 bytes
EXTRA = "pip install 'numddpg[tensorboard]'"


class MissingExtra(ImportError, ValueError):
    """An optional dependency is not installed (an ImportError, and a ValueError: the argument
    that asked for it is what the user changes)."""


def require_tensorboardx(tensorboard_dir=None):
    """tensorboardX's SummaryWriter class, or MissingExtra naming the extra to install.

    Call it when the hyperparameters are checked, so that a missing package stops a run before
    it starts.  (With torch installed, tensorboardX imports it: a few seconds, once.)"""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise MissingExtra(f"tensorboard_log={str(tensorboard_dir)!r} needs tensorboardX, which "
                           f"is not installed: {EXTRA} (or leave tensorboard_log out)") from None
    return SummaryWriter


def check_tensorboard_args(tensorboard_log, tb_log_name):
    """(tensorboard_log as a str or None, tb_log_name) after checking them, for an algorithm's
    hyperparameter check: a folder path or None; a folder name or None; and tensorboardX
    installed when a folder is given (MissingExtra, a ValueError, names the extra)."""
    if tb_log_name is not None:
        _check_folder_name("tb_log_name", tb_log_name)
    if tensorboard_log is None:
        return None, tb_log_name
    path = tensorboard_log
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"tensorboard_log must be a folder path (str or Path) or None, got "
                         f"{tensorboard_log!r}")
    require_tensorboardx(path)
    return path, tb_log_name


def latest_run_id(tensorboard_dir, tb_log_name):
    """The largest N of the folders ``<tb_log_name>_<N>`` in tensorboard_dir (0 if none), as
    SB3's ``get_latest_run_id``."""
    best = 0
    try:
        entries = list(os.scandir(tensorboard_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        name, _, n = entry.name.rpartition("_")
        if name == tb_log_name and n.isdigit() and n.isascii():
            best = max(best, int(n))
    return best


def _check_folder_name(what, name):
    """A single path component: no separator, not "." or "..", not empty."""
    if (not isinstance(name, str) or not name or name in (".", "..") or len(name) > 200
            or any(c in name for c in "/\\\0")):
        raise ValueError(f"{what} must be a folder name (no '/', '\\', '.' or '..'), "
                         f"got {name!r}")
    return name


class RunLog:
    """monitor.csv and TensorBoard scalars of one ``learn()`` call (see the module docstring).

    Parameters
    ----------
    run_dir : path or None
        The run directory: RUN_DIR/monitor.csv is written there (None: no monitor.csv).
    tensorboard_dir : path or None
        Write TensorBoard event files under tensorboard_dir/<tb_log_name>_<N> (N one more than
        the largest there, as SB3); None: no TensorBoard.  Needs tensorboardX (MissingExtra).
    tb_log_name : str
        The event folder's name before ``_N`` (SB3: the algorithm's class name, "DDPG");
        default "run".
    ep_info_window : int
        Training episodes averaged by rollout/ep_rew_mean and rollout/ep_len_mean (SB3: 100).
    env_id : str, optional
        Written into monitor.csv's header line.
    log_interval : int or None
        Training episodes between dumps of rollout/, train/, time/ (SB3: 4); None: epoch ends
        only.
    t, episodes : int
        The env steps and training episodes the run has done before this RunLog starts (0 for
        a new run; the loop's counters for a resume or a second learn()).
    elapsed : float or None
        Seconds of training the run has done before this RunLog starts: monitor.csv's ``t``
        counts on from it.  None: wall-clock seconds since the header's ``t_start`` (SB3).

    Raises ValueError if an existing monitor.csv is not one (its header, or a row it must keep,
    is not SB3's format) and MissingExtra if tensorboardX is missing.  A monitor.csv holding
    fewer rows than ``episodes`` (lost, or cut by hand) is kept as it is, with a RuntimeWarning.
    """

    def __init__(self, run_dir, tensorboard_dir=None, tb_log_name=None,
                 ep_info_window=EP_INFO_WINDOW, *, env_id=None, log_interval=LOG_INTERVAL,
                 t=0, episodes=0, elapsed=None):
        ep_info_window = check_int("ep_info_window", ep_info_window, 1)
        if log_interval is not None:
            log_interval = check_int("log_interval", log_interval, 1)
        t = check_int("t", t, 0)
        self.episodes = check_int("episodes", episodes, 0)
        if elapsed is not None and not (isinstance(elapsed, (int, float))
                                        and not isinstance(elapsed, bool)
                                        and math.isfinite(elapsed) and elapsed >= 0):
            raise ValueError(f"elapsed must be a finite number of seconds >= 0 or None, got "
                             f"{elapsed!r}")
        tb_log_name = _check_folder_name("tb_log_name", "run" if tb_log_name is None
                                         else tb_log_name)
        SummaryWriter = (require_tensorboardx(tensorboard_dir) if tensorboard_dir is not None
                         else None)
        self.log_interval = log_interval
        self._elapsed0 = elapsed
        self._clock0 = time.perf_counter()
        self._t0 = t
        # the rollout window: (return, length) of the last ep_info_window training episodes
        self._window = deque(maxlen=ep_info_window)
        # and the successes of the last ep_info_window that reported one (a goal env's; not in
        # monitor.csv, so a resumed run's window starts empty)
        self._successes = deque(maxlen=ep_info_window)
        # train/ sums since the last dump (on_updates adds, _dump writes and zeroes)
        self._sum_q, self._n_q, self._sum_pi, self._n_pi = 0.0, 0, 0.0, 0
        self._dumped_t = None
        self._monitor = None
        self._writer = None
        self.monitor_path = None if run_dir is None else Path(run_dir) / MONITOR_FILE
        self.tensorboard_path = None   # the event folder, once open

        recorded = None                # the event folder named by an existing monitor.csv
        header = None
        if self.monitor_path is not None and self.monitor_path.is_file():
            header, recorded = self._continue_monitor()
        if SummaryWriter is not None:
            self._open_writer(SummaryWriter, Path(tensorboard_dir), tb_log_name, recorded, t)
        if self.monitor_path is not None and header is None:
            try:
                self._new_monitor(env_id)
            except BaseException:
                self.close()               # (the writer's thread)
                raise

    # -- monitor.csv ---------------------------------------------------------------------------
    def _new_monitor(self, env_id):
        self.t_start = time.time()
        header = {"t_start": self.t_start, "env_id": str(env_id)}
        if self.tensorboard_path is not None:
            header["tensorboard"] = self.tensorboard_path.name
        self._monitor = open(self.monitor_path, "w", encoding="utf-8", newline="")
        self._monitor.write(f"#{json.dumps(header)}\n{MONITOR_COLUMNS}\n")
        self._monitor.flush()

    def _continue_monitor(self):
        """Read an existing monitor.csv; with episodes > 0 keep its first ``episodes`` rows,
        refill the window from them and append after them.  Returns (header or None when the
        file is to be written anew, the recorded event folder name or None)."""
        path = self.monitor_path
        with open(path, "rb") as f:
            first = f.readline(MAX_HEADER_BYTES + 1)
            header = self._parse_header(first)
            columns = f.readline(MAX_ROW_BYTES)
            if columns.rstrip(b"\r\n") != MONITOR_COLUMNS.encode():
                raise ValueError(f"{path}: line 2 is {columns[:80]!r}, not the header "
                                 f"{MONITOR_COLUMNS!r}; move the file away to start a new one")
            recorded = header.get("tensorboard")
            if recorded is not None:
                _check_folder_name(f"{path}: the header's \"tensorboard\"", recorded)
            if self.episodes == 0:
                return None, recorded  # a run begun again from step 0: a new file
            offset, kept = len(first) + len(columns), 0
            while kept < self.episodes:
                line = f.readline(MAX_ROW_BYTES)
                if not line.endswith(b"\n"):
                    break              # the end, or a row cut short by a kill
                self._window.append(self._parse_row(line, kept + 3))
                offset += len(line)
                kept += 1
        if kept < self.episodes:
            warnings.warn(f"{path} holds {kept} complete episode rows, but the run has done "
                          f"{self.episodes} training episodes: the missing rows were lost or "
                          "removed; new rows are appended after the ones there",
                          RuntimeWarning, stacklevel=3)
        self.t_start = header["t_start"]
        with open(path, "r+b") as f:           # rows written after the checkpoint go
            f.truncate(offset)
        self._monitor = open(path, "a", encoding="utf-8", newline="")
        return header, recorded

    def _parse_header(self, line):
        path = self.monitor_path
        try:
            if not (line.startswith(b"#") and line.endswith(b"\n")):
                raise ValueError("it is not one '#' line")
            header = json.loads(line[1:].decode("utf-8"))
            if not (isinstance(header, dict) and type(header.get("t_start")) in (int, float)
                    and math.isfinite(header["t_start"])):
                raise ValueError('it is not a JSON object with a number "t_start"')
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{path} does not start with a monitor header line "
                             f"'#{{\"t_start\": ..., \"env_id\": ...}}' ({exc}); move the file "
                             "away to start a new one") from None
        return header

    def _parse_row(self, line, lineno):
        try:
            r, l, t = line.decode("ascii").rstrip("\r\n").split(",")
            r, l, _ = float(r), int(l), float(t)
        except ValueError:
            raise ValueError(f"{self.monitor_path}, line {lineno}: {line[:80]!r} is not a row "
                             f"'{MONITOR_COLUMNS}' (return, length, seconds); move the file "
                             "away to start a new one") from None
        return r, l

    def _seconds(self):
        """monitor.csv's t: training seconds when elapsed was given, else SB3's wall clock."""
        if self._elapsed0 is None:
            return time.time() - self.t_start
        return self._elapsed0 + (time.perf_counter() - self._clock0)

    # -- TensorBoard ---------------------------------------------------------------------------
    def _open_writer(self, SummaryWriter, tensorboard_dir, tb_log_name, recorded, t):
        if recorded is not None:   # the run's own folder: hide what was written after step t
            path, purge_step = tensorboard_dir / recorded, t + 1
            path.mkdir(parents=True, exist_ok=True)
        else:                      # a new folder, N one past the largest (mkdir wins races)
            n, purge_step = latest_run_id(tensorboard_dir, tb_log_name) + 1, None
            while True:
                path = tensorboard_dir / f"{tb_log_name}_{n}"
                try:
                    path.mkdir(parents=True)
                    break
                except FileExistsError:
                    n += 1
        # tensorboardX names a file by the second it opened and the host, so a writer reopened
        # within the same second would overwrite the last file: the suffix makes the name unique
        # and keeps files in the order written (TensorBoard reads them sorted by name).
        self._writer = SummaryWriter(str(path), purge_step=purge_step,
                                     filename_suffix=f".{time.time_ns()}.{os.getpid()}")
        self.tensorboard_path = path

    def _dump(self, t):
        """Write rollout/, train/ and time/ at step t (once per step)."""
        if t == self._dumped_t:
            return
        add = self._writer.add_scalar
        if self._window:
            n = len(self._window)
            add("rollout/ep_rew_mean", sum(r for r, _ in self._window) / n, t)
            add("rollout/ep_len_mean", sum(l for _, l in self._window) / n, t)
        if self._successes:
            add("rollout/success_rate", sum(self._successes) / len(self._successes), t)
        if self._n_q:
            add("train/critic_loss", self._sum_q / self._n_q, t)
        if self._n_pi:
            add("train/actor_loss", self._sum_pi / self._n_pi, t)
        self._sum_q, self._n_q, self._sum_pi, self._n_pi = 0.0, 0, 0.0, 0
        seconds = max(time.perf_counter() - self._clock0, 1e-9)
        add("time/fps", int((t - self._t0) / seconds), t)      # an int, as SB3's
        add("time/episodes", self.episodes, t)
        self._dumped_t = t

    def add_scalars(self, values, t):
        """Write ``values`` ({tag: number}) at env step t, now (what an SB3 callback's
        ``logger.record`` + ``dump`` gives); non-numbers and non-finite values are skipped.
        Nothing happens without TensorBoard."""
        if self._writer is None:
            return
        for tag, value in values.items():
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                    value, bool) and math.isfinite(value):
                self._writer.add_scalar(str(tag), float(value), int(t))

    # -- what the loop calls -------------------------------------------------------------------
    def on_episode(self, ep_return, ep_length, t, success=None):
        """A training episode ended at env step t: one monitor.csv row; every log_interval
        episodes, a dump of rollout/, train/ and time/.  success : its info["is_success"]
        (0.0/1.0; a goal env's) or None, for rollout/success_rate."""
        ep_return, ep_length = float(ep_return), int(ep_length)
        self.episodes += 1
        self._window.append((ep_return, ep_length))
        if success is not None:
            self._successes.append(float(success))
        if self._monitor is not None:
            self._monitor.write(f"{round(ep_return, 6)!r},{ep_length},"
                                f"{round(self._seconds(), 6)!r}\n")
            self._monitor.flush()
        if (self._writer is not None and self.log_interval is not None
                and self.episodes % self.log_interval == 0):
            self._dump(t)

    def on_updates(self, stats, t):
        """After a burst: ``stats`` (K, 4) float64, columns loss_q, loss_pi (NaN on TD3's
        critic-only updates), q_mean, q_std, one row per update.  Adds the losses to the sums
        of the next dump (t is not needed: the means are written at the next dump's step)."""
        if self._writer is None:
            return
        if len(stats) == 1:        # update_every=1: a burst after every env step, no arrays made
            loss_q, loss_pi = stats.item(0), stats.item(1)
            self._sum_q += loss_q
            self._n_q += 1
            if loss_pi == loss_pi:                 # not NaN
                self._sum_pi += loss_pi
                self._n_pi += 1
            return
        self._sum_q += float(stats[:, 0].sum())
        self._n_q += len(stats)
        loss_pi = stats[:, 1]
        actor = loss_pi == loss_pi
        n_pi = int(actor.sum())
        if n_pi:
            self._sum_pi += float(loss_pi[actor].sum())
            self._n_pi += n_pi

    def on_epoch(self, row, t):
        """An epoch ended at env step t with progress.csv's ``row`` (a dict column -> value):
        eval/ and numddpg/ scalars, a dump, and the event file flushed."""
        if self._writer is None:
            return
        add = self._writer.add_scalar
        for tag, column in (("eval/mean_reward", "AverageTestEpRet"),
                            ("eval/mean_ep_length", "TestEpLen"),
                            ("eval/success_rate", SUCCESS_COLUMN)):
            if _finite(row.get(column)):
                add(tag, float(row[column]), t)
        for column, value in row.items():
            if column != "TotalEnvInteracts" and _finite(value):
                add(f"numddpg/{column}", float(value), t)
        self._dump(t)
        self._writer.flush()

    def sync(self):
        """Make monitor.csv's rows durable (flush and fsync): call it before a checkpoint, whose
        episode count says how many rows a resume keeps."""
        if self._monitor is not None and not self._monitor.closed:
            self._monitor.flush()
            os.fsync(self._monitor.fileno())

    def close(self):
        """Close monitor.csv and the event file (after writing what is pending); idempotent."""
        if self._monitor is not None and not self._monitor.closed:
            self._monitor.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _finite(v):
    """A finite real number (Python's or NumPy's, not a bool)."""
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and math.isfinite(v))
