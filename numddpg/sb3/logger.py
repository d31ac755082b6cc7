"""SB3's logger: ``record``, ``record_mean``, ``dump(step)`` and the outputs a model's
``learn()`` configures (SB3's ``configure_logger``).

    stdout        with verbose >= 1: SB3's table, one section per key prefix
                  ("rollout/", "time/", "train/"), keys sorted
    tensorboard   with ``tensorboard_log``: every numeric value not excluded from
                  "tensorboard", at the dump's step, under
                  ``tensorboard_log/<tb_log_name>_<N>`` (N one more than the largest there;
                  the same N again when the learn() continues, reset_num_timesteps=False)

TensorBoard files are written by tensorboardX's SummaryWriter or, when only PyTorch and
tensorboard are installed, by ``torch.utils.tensorboard``'s (the same methods: ``add_scalar``,
``add_text``, ``flush``, ``close``).  A logger made by SB3's own ``configure`` works as well
(``model.set_logger``): the model calls only ``record`` and ``dump``.
"""
import os
import time

import numpy as np

from ..files.runlog import MissingExtra, latest_run_id

MAX_LENGTH = 36           # SB3's HumanOutputFormat cuts longer keys and values


def _excluded(exclude):
    """SB3's ``exclude`` argument (None, a format name, or a tuple of them) as a tuple."""
    return () if exclude is None else (exclude,) if isinstance(exclude, str) else tuple(exclude)


def summary_writer_class():
    """A TensorBoard SummaryWriter class: tensorboardX's, else torch.utils.tensorboard's;
    MissingExtra naming what to install when neither imports."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtra("tensorboard_log needs tensorboardX (pip install "
                               "'numddpg[tensorboard]') or PyTorch with tensorboard; neither is "
                               "installed (or leave tensorboard_log out)") from None
    return SummaryWriter


def check_tensorboard_log(tensorboard_log):
    """``tensorboard_log`` as a str (or None), after checking it is a folder path and a writer
    can be made."""
    if tensorboard_log is None:
        return None
    path = os.fspath(tensorboard_log) if isinstance(tensorboard_log, os.PathLike) \
        else tensorboard_log
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"tensorboard_log must be a folder path (str or Path) or None, got "
                         f"{tensorboard_log!r}")
    summary_writer_class()
    return path


def _cut(text):
    return text[:MAX_LENGTH - 3] + "..." if len(text) > MAX_LENGTH else text


def table(values, excluded):
    """SB3's stdout table of ``values`` (key -> value), but those excluded from "stdout" or
    "log"; None when there is nothing to show."""
    rows, tag = [], None
    for key in sorted(values):
        if {"stdout", "log"} & set(_excluded(excluded.get(key))):
            continue
        value = values[key]
        text = f"{value:<8.3g}" if isinstance(value, float) else str(value)
        if key.find("/") > 0:                       # a new section: its header row
            section = key[:key.find("/") + 1]
            if section != tag:
                tag = section
                rows.append((_cut(tag), ""))
        if tag is not None and key.startswith(tag):
            key = "   " + key[len(tag):]
        rows.append((_cut(key), _cut(text)))
    if not rows:
        return None
    w_key, w_val = max(len(k) for k, _ in rows), max(len(v) for _, v in rows)
    dashes = "-" * (w_key + w_val + 7)
    return "\n".join([dashes, *(f"| {k:<{w_key}} | {v:<{w_val}} |" for k, v in rows), dashes])


class Logger:
    """SB3's logger interface: ``record(key, value, exclude=None)``, ``record_mean``,
    ``dump(step)`` (writes every output, then forgets the values), ``name_to_value``,
    ``get_dir()``, ``close()``.

    verbose : >= 1 prints the table at every dump.
    folder : the TensorBoard event folder (None: no TensorBoard).
    """

    def __init__(self, verbose=0, folder=None):
        self.verbose = verbose
        self.folder = folder
        self.writer = None if folder is None else summary_writer_class()(folder)
        self.name_to_value, self.name_to_count, self.name_to_excluded = {}, {}, {}

    def record(self, key, value, exclude=None):
        self.name_to_value[key] = value
        self.name_to_excluded[key] = exclude

    def record_mean(self, key, value, exclude=None):
        n = self.name_to_count.get(key, 0)
        old = self.name_to_value.get(key, 0.0)
        self.name_to_value[key] = old * n / (n + 1) + value / (n + 1)
        self.name_to_count[key] = n + 1
        self.name_to_excluded[key] = exclude

    def dump(self, step=0):
        if self.folder is not None:
            if self.writer is None:            # (closed by sync)
                self.writer = summary_writer_class()(self.folder)
            self._write_tensorboard(step)
        if self.verbose >= 1:
            text = table(self.name_to_value, self.name_to_excluded)
            if text is not None:
                print(text, flush=True)
        self.name_to_value.clear()
        self.name_to_count.clear()
        self.name_to_excluded.clear()

    def _write_tensorboard(self, step):
        for key, value in self.name_to_value.items():
            if "tensorboard" in _excluded(self.name_to_excluded.get(key)):
                continue
            if isinstance(value, str):
                self.writer.add_text(key, value, step)
            elif isinstance(value, (int, float, np.integer, np.floating)) \
                    and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def sync(self):
        """Put every recorded TensorBoard event on disk now (learn() does it as it returns):
        tensorboardX's ``flush`` leaves the events still queued for its writer thread behind,
        and only ``close`` waits for them; so the writer is closed, and the next dump opens
        another file in the same folder."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def get_dir(self):
        return self.folder

    def close(self):
        self.sync()
        self.folder = None                     # (no file is opened after close)


def configure_logger(verbose, tensorboard_log, tb_log_name, reset_num_timesteps):
    """The Logger a learn() call writes to when no logger was set (SB3's configure_logger):
    a TensorBoard folder ``tensorboard_log/<tb_log_name>_<N>`` when tensorboard_log is given,
    N the next free number (the last one again when not reset_num_timesteps)."""
    folder = None
    if tensorboard_log is not None:
        n = latest_run_id(tensorboard_log, tb_log_name)
        if not reset_num_timesteps:
            n -= 1
        folder = os.path.join(tensorboard_log, f"{tb_log_name}_{n + 1}")
    return Logger(verbose, folder)


class SB3Logging:
    """The model's side of SB3's logging (a part of numddpg.sb3's model, kept here beside the
    Logger it records into): ``logger``, ``set_logger``, and SB3's rollout/, time/ and train/
    keys recorded and dumped as SB3's off-policy algorithms do.  The model provides
    ``verbose``, ``native``, ``current_learning_rate``, the episode buffers, the clock and the
    step counts."""

    @property
    def logger(self):
        """The logger the model records SB3's keys into (``record``, ``dump``): the one
        ``set_logger`` gave, else the one the last learn() configured (numddpg.sb3.logger)."""
        if self._logger is None:
            self._logger = Logger(self.verbose)
        return self._logger

    def set_logger(self, logger):
        """Log into ``logger`` from now on (any object with SB3's ``record(key, value,
        exclude=None)`` and ``dump(step)``, e.g. one made by SB3's ``configure``): learn() then
        configures none of its own."""
        if not (callable(getattr(logger, "record", None))
                and callable(getattr(logger, "dump", None))):
            raise TypeError(f"logger must have record(key, value, exclude) and dump(step) "
                            f"(SB3's Logger), got {logger!r}")
        self._logger, self._custom_logger = logger, True

    def dump_logs(self):
        """Record SB3's rollout/ and time/ keys and dump the logger at ``num_timesteps``
        (learn() does it every ``log_interval`` episodes)."""
        elapsed = max(time.perf_counter() - self.start_time, 1e-9)
        logger = self.logger
        logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        if self.ep_info_buffer:
            logger.record("rollout/ep_rew_mean",
                          float(np.mean([e["r"] for e in self.ep_info_buffer])))
            logger.record("rollout/ep_len_mean",
                          float(np.mean([e["l"] for e in self.ep_info_buffer])))
        logger.record("time/fps", int((self.num_timesteps - self._num_timesteps_at_start)
                                      / elapsed))
        logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        if self.ep_success_buffer:
            logger.record("rollout/success_rate", float(np.mean(self.ep_success_buffer)))
        logger.dump(step=self.num_timesteps)

    def record_training(self, stats):
        """Record SB3's train/ keys of a training round whose updates gave ``stats`` (K, 4):
        loss_q, loss_pi (NaN on TD3's critic-only updates), q_mean, q_std per update."""
        logger = self.logger
        logger.record("train/learning_rate", self.current_learning_rate)
        logger.record("train/n_updates", self.n_updates, exclude="tensorboard")
        actor = stats[:, 1][~np.isnan(stats[:, 1])]
        if actor.size:
            logger.record("train/actor_loss", float(np.mean(actor)))
        logger.record("train/critic_loss", float(np.mean(stats[:, 0])))

    @property
    def n_updates(self):
        """Gradient steps taken by the critic(s) so far (SB3's ``_n_updates``)."""
        return int(self.native.agent.t_q)
