"""Hyperparameter search with Optuna, each trial scored on several seeds.

    numddpg tune --env Pendulum-v1 --algo ddpg --trials 50 --seeds 0 1 2 --total-steps 20000
                 [--space FILE.json] [--sampler tpe|random] [--pruner median|none]
                 [--storage URL] [--study NAME] [--workers W] --out DIR

One seed's return is a noisy objective (this project's 1M-step runs differ by 1,000 between
seeds), so a trial trains its hyperparameters once per seed -- in parallel, one process and one
BLAS thread each, each run exactly a ``numddpg sweep`` cell (``sweep.run_cell``) -- and its value
is the mean over the seeds of each run's final deterministic evaluation (``--eval-episodes``
episodes).  At the end of every epoch the seeds' mean test return goes to the pruner (median:
Optuna's MedianPruner stops a trial below the median of earlier trials at the same env step).

The search space is a JSON object, one key per hyperparameter (``numddpg train --help``):

    {"pi_lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": true},
     "update_every": {"type": "int", "low": 1, "high": 256, "log": true},
     "hidden_sizes": {"type": "categorical", "choices": [[64, 64], [400, 300]]},
     "steps_per_epoch": 1000}                          (a plain value: fixed, not searched)

Every other hyperparameter is the env's preset (numddpg.presets) or the reference default.
``--space`` replaces the default space (DEFAULT_SPACES, each range with its source).  The scale
of the noise not in use (act_noise for "ou", ou_* for "gaussian") is not sampled.  One key is
not a hyperparameter: "utd_ratio", the update-to-data ratio, sets gradient_steps to
max(1, round(ratio x update_every)) (e.g. {"type": "categorical", "choices": [0.5, 1, 2]}).

    DIR/
        study.db              the Optuna storage when --storage is not given (SQLite)
        trial0007/s0/ ...     every trial's run directories (config.json, progress.csv, ...)
        trials.csv            one row per trial: state, mean, std, per-seed values, params, error
        best.json             the best trial as a preset: numddpg train --preset DIR/best.json
        history.png           each trial's mean +- std over seeds, and the best so far

Studies live in Optuna's RDB storage: SQLite on one machine, any database URL it supports
across machines.  Several processes given the same ``--storage`` and ``--study`` work one study
together; ``--trials`` is the study's size, so running the same command again resumes an
interrupted study (a trial interrupted by Ctrl-C, or whose process died -- seen by its stale
heartbeat -- is run again with the same parameters).  A process whose study is full waits for
the trials still running elsewhere before it writes its outputs.  A trial whose run fails (an error while
training, a worker killed) is recorded as failed with its error, and the study goes on.
"""
import json
import math
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
import warnings
from multiprocessing.connection import wait
from pathlib import Path

from . import hpfile
from . import sweep

HELP = ("search hyperparameters with Optuna: every trial trains one run per seed and scores "
        "the seeds' mean final return; pruning, shared studies, resume")

TRIALS_CSV = "trials.csv"
BEST_JSON = "best.json"
HISTORY_PNG = "history.png"
STUDY_DB = "study.db"
POLL_SECONDS = 0.5
DEFAULT_HEARTBEAT = 30          # seconds between a running trial's heartbeats (RDB storage)
OPTUNA_MISSING = ("numddpg tune needs Optuna: pip install 'numddpg[tune]' (or pip install "
                  "'optuna>=3')")

# The scales of each noise type: sampled only when that type is the one in use.
NOISE_SCALES = {"gaussian": ("act_noise",), "ou": ("ou_theta", "ou_sigma", "ou_dt")}

# A search-space key that is not a hyperparameter: the update-to-data ratio, which sets
# gradient_steps from the trial's update_every (numddpg's loop takes the two, not the ratio).
UTD = "utd_ratio"

# -- the default search space ---------------------------------------------------------------
# The RL Baselines3 Zoo's DDPG/TD3 samplers (rl_zoo3/hyperparams_opt.py, sample_ddpg_params and
# sample_td3_params, which are identical) are the source of every range; where this space
# differs, the comment says why.  TD3's own three (target_noise, noise_clip, policy_delay) stay
# at the TD3 paper's values, as in the Zoo.
_LR = {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}
DEFAULT_SPACE = {
    # The Zoo draws one learning rate for both networks, log-uniform on [1e-5, 1]; here one per
    # network (the DDPG paper's actor and critic rates differ 10x: 1e-4 and 1e-3), and the top
    # cut to 1e-2, ten times Spinning Up's 1e-3: on [1e-5, 1] two draws in five would fall
    # above 1e-2, where no published DDPG or TD3 configuration goes.
    "pi_lr": _LR,
    "q_lr": _LR,
    # The Zoo's batch sizes without 1024 and 2048: an update's cost on a CPU grows with the
    # batch (bench/RESULTS.md), and the published runs use 64 (DDPG paper), 100 (Spinning Up,
    # TD3 paper) or 256 (the TD3 author's later settings, SB3).
    "batch_size": {"type": "categorical", "choices": [16, 32, 64, 100, 128, 256, 512]},
    # The Zoo's discount factors.
    "gamma": {"type": "categorical", "choices": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]},
    # The Zoo's tau (the weight of the online net) 0.001 ... 0.08, as polyak = 1 - tau.
    "polyak": {"type": "categorical", "choices": [0.999, 0.995, 0.99, 0.98, 0.95, 0.92]},
    # The Zoo's noise types (its third, no noise, is act_noise near 0 here) and its one scale,
    # uniform on [0, 1]; the Zoo's is in action units, this one in half-ranges (the same for
    # actions in [-1, 1]).
    "noise": {"type": "categorical", "choices": ["gaussian", "ou"]},
    "act_noise": {"type": "float", "low": 0.0, "high": 1.0},
    "ou_sigma": {"type": "float", "low": 0.0, "high": 1.0},
    # The Zoo's net_arch small, medium and big.
    "hidden_sizes": {"type": "categorical", "choices": [[64, 64], [256, 256], [400, 300]]},
    # The Zoo's train_freq, whose gradient_steps equal it: update_every is both here (bursts of
    # update_every updates every update_every env steps).  The update-to-data ratio itself is
    # one update per env step in numddpg's loop, as in the Zoo's sampler; it joins this space
    # once the loop takes it as a hyperparameter.
    "update_every": {"type": "categorical", "choices": [1, 4, 8, 16, 32, 64, 128, 256, 512]},
    # The update-to-data ratio, which the Zoo fixes at 1: gradient_steps = max(1, round(ratio x
    # update_every)).  Below 1 halves the update cost; above 1 is REDQ's direction (Chen et al.
    # 2021 use up to 20 with an ensemble of critics, here at most 4 for plain DDPG/TD3).
    UTD: {"type": "categorical", "choices": [0.5, 1, 2, 4]},
}
DEFAULT_SPACES = {"ddpg": DEFAULT_SPACE, "td3": DEFAULT_SPACE}


class TuneError(ValueError):
    """Bad input to a study: a space, an option, a study that exists with other settings."""


class TuneEnvironmentError(RuntimeError):
    """Not the input's fault: Optuna or a database driver missing, a database unreachable."""


class TrialFailed(Exception):
    """A trial's run failed; its error is in the trial's user attribute "error"."""


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise TuneEnvironmentError(OPTUNA_MISSING) from None
    return optuna


# ---------------------------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------------------------

_SPEC_KEYS = {"float": ("type", "low", "high", "log", "step"),
              "int": ("type", "low", "high", "log", "step"),
              "categorical": ("type", "choices")}


def check_space(raw, algo, where="the search space"):
    """The space ``raw`` (a dict as in the module docstring) with every key and value checked
    for ``algo`` and normalised: name -> {"type": "float"|"int", "low", "high", "log", "step"},
    {"type": "categorical", "choices"} or {"type": "fixed", "value"}."""
    from ..training.algorithms import ALGORITHMS

    cls = ALGORITHMS[algo]
    if not isinstance(raw, dict) or not raw:
        raise TuneError(f"{where} must be a non-empty JSON object {{hyperparameter: range}}")
    space = {}
    for name, entry in raw.items():
        at = f"{where}, {name!r}"
        if name == UTD:
            space[name] = _check_utd(entry, at)
            continue
        hpfile.check_name(cls, name, where)
        if not isinstance(entry, dict):
            space[name] = {"type": "fixed", "value": hpfile.check_type(cls, name, entry, where)}
            continue
        kind = entry.get("type")
        if kind not in _SPEC_KEYS:
            raise TuneError(f"{at}: type {json.dumps(kind)} is not allowed: float, int or "
                            "categorical (or a plain value instead of an object to fix it)")
        extra = [k for k in entry if k not in _SPEC_KEYS[kind]]
        if extra:
            raise TuneError(f"{at}: unknown key {extra[0]!r} for a {kind} range; allowed: "
                            f"{', '.join(_SPEC_KEYS[kind])}")
        space[name] = (_check_choices(cls, name, entry, at, where) if kind == "categorical"
                       else _check_range(cls, name, entry, at, where))
    return space


def _check_choices(cls, name, entry, at, where):
    choices = entry.get("choices")
    if not isinstance(choices, list) or not choices:
        raise TuneError(f"{at}: choices must be a non-empty list, got {json.dumps(choices)}")
    choices = [hpfile.check_type(cls, name, c, where) for c in choices]
    labels = [_label(c) for c in choices]
    if len(set(labels)) < len(labels):
        raise TuneError(f"{at}: choices repeat a value: {json.dumps(choices)}")
    return {"type": "categorical", "choices": choices}


def _check_range(cls, name, entry, at, where):
    from ..engine.hyperparameters import describe
    spec = cls.hyperparameter_specs()[name]
    kind, has = entry["type"], spec.kind
    if (kind, has) not in (("float", "real"), ("int", "int")):
        raise TuneError(f"{at}: a {kind} range is not allowed: {name} takes "
                        f"{describe(spec)}; use "
                        f"{'a float or categorical' if has == 'real' else 'categorical'} range")
    for key in ("low", "high"):
        if key not in entry:
            raise TuneError(f"{at}: a {kind} range needs low and high")
    low, high = (hpfile.check_type(cls, name, entry[k], where) for k in ("low", "high"))
    if low is None or high is None or not low < high:
        raise TuneError(f"{at}: low ({json.dumps(entry['low'])}) must be below high "
                        f"({json.dumps(entry['high'])}); give a plain value to fix {name}")
    log, step = entry.get("log", False), entry.get("step")
    if not isinstance(log, bool):
        raise TuneError(f"{at}: log must be true or false, got {json.dumps(log)}")
    if log and low <= 0:
        raise TuneError(f"{at}: a log range needs low > 0, got {json.dumps(entry['low'])}")
    if step is not None:
        ok = (not isinstance(step, bool) and isinstance(step, (int, float)) and
              math.isfinite(step) and step > 0 and (kind == "float" or float(step).is_integer()))
        if not ok or log:
            raise TuneError(f"{at}: step = {json.dumps(step)} is not allowed: a positive "
                            f"{'number' if kind == 'float' else 'integer'}, and not with log")
        step = step if kind == "float" else int(step)
    return {"type": kind, "low": low, "high": high, "log": log, "step": step}


def _check_utd(entry, at):
    """The utd_ratio entry: a positive number, a float range with low > 0, or positive choices."""
    def positive(v):
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and v > 0)

    if not isinstance(entry, dict):
        if not positive(entry):
            raise TuneError(f"{at}: the update-to-data ratio must be a positive number, got "
                            f"{json.dumps(entry)}")
        return {"type": "fixed", "value": float(entry)}
    kind = entry.get("type")
    if kind == "categorical":
        choices = entry.get("choices")
        if not (isinstance(choices, list) and choices and all(map(positive, choices))
                and set(entry) == {"type", "choices"}):
            raise TuneError(f"{at}: choices must be a non-empty list of positive numbers, got "
                            f"{json.dumps(entry)}")
        return {"type": "categorical", "choices": [float(c) for c in choices]}
    if kind == "float" and set(entry) <= {"type", "low", "high", "log"} and positive(
            entry.get("low")) and positive(entry.get("high")) and entry["low"] < entry["high"] \
            and isinstance(entry.get("log", False), bool):
        return {"type": "float", "low": float(entry["low"]), "high": float(entry["high"]),
                "log": entry.get("log", False), "step": None}
    raise TuneError(f"{at}: the update-to-data ratio takes a positive number, a float range "
                    f"{{low > 0, high}} or categorical positive choices, got {json.dumps(entry)}")


def _label(value):
    """How a categorical choice is stored in Optuna (lists as their JSON text)."""
    return json.dumps(value) if isinstance(value, list) else value


def candidate_values(space):
    """(name, value) of every value the space can give alone: the ends of each range, each
    choice."""
    for name, entry in space.items():
        if name == UTD:                        # (any ratio gives gradient_steps >= 1)
            continue
        if entry["type"] == "categorical":
            yield from ((name, c) for c in entry["choices"])
        elif entry["type"] != "fixed":
            yield from ((name, entry["low"]), (name, entry["high"]))


def check_space_values(space, algo, env, where="the search space"):
    """Refuse, before any run, a space value the algorithm refuses: the fixed values together,
    then every candidate value with them (built on ``env``, an instance, without training)."""
    from ..training.algorithms import ALGORITHMS

    cls = ALGORITHMS[algo]
    fixed = fixed_values(space)
    hpfile.check_with_algorithm(cls, env, fixed, f"{where}, its fixed values")
    for name, value in candidate_values(space):
        hpfile.check_with_algorithm(cls, env, {**fixed, name: value},
                                    f"{where}, {name} = {json.dumps(value)}")


def fixed_values(space):
    return {n: e["value"] for n, e in space.items() if e["type"] == "fixed" and n != UTD}


def _in_range(name, entry, value):
    """``value`` if the space's range holds it; Optuna returns a queued trial's value (one in
    the study database, enqueued by anyone) even outside the range, so it is checked here."""
    kind = float if entry["type"] == "float" else int
    if not (isinstance(value, kind) and not isinstance(value, bool)
            and entry["low"] <= value <= entry["high"]):
        raise TrialFailed(f"the queued value {name}={value!r} is outside the space's range "
                          f"[{entry['low']}, {entry['high']}]; it is not run")
    return value


def suggest(trial, space, base_noise, base_update_every=None):
    """The hyperparameters of ``trial`` (JSON-shaped): fixed values as they are, the others
    drawn by Optuna; the scales of the noise type not in use are left out; a utd_ratio becomes
    gradient_steps = max(1, round(ratio x update_every)) (update_every: the trial's, else
    ``base_update_every``, the preset's or default)."""
    hp = {}
    order = sorted(space, key=lambda n: n != "noise")        # the noise type first
    for name in order:
        entry = space[name]
        noise = hp.get("noise", base_noise)
        if any(name in scales for k, scales in NOISE_SCALES.items() if k != noise):
            continue
        if entry["type"] == "fixed":
            hp[name] = entry["value"]
        elif entry["type"] == "float":
            hp[name] = _in_range(name, entry, trial.suggest_float(
                name, entry["low"], entry["high"], log=entry["log"], step=entry["step"]))
        elif entry["type"] == "int":
            hp[name] = _in_range(name, entry, trial.suggest_int(
                name, entry["low"], entry["high"], log=entry["log"], step=entry["step"] or 1))
        else:
            labels = [_label(c) for c in entry["choices"]]
            try:                   # (Optuna refuses a queued value outside the choices)
                label = trial.suggest_categorical(name, labels)
            except ValueError:
                label = None
            if label not in labels:
                raise TrialFailed(f"the queued value {name}={trial.params.get(name)!r} is not "
                                  f"one of the space's choices {labels}; it is not run")
            hp[name] = entry["choices"][labels.index(label)]
    if UTD in hp:
        every = hp.get("update_every", base_update_every)
        if every is None:
            from ..engine.hyperparameters import DDPG_TABLE
            every = DDPG_TABLE["update_every"].default
        hp["gradient_steps"] = max(1, round(hp.pop(UTD) * every))
    return hp


# ---------------------------------------------------------------------------------------------
# One trial: a run per seed, epochs reported to the pruner
# ---------------------------------------------------------------------------------------------

def _seed_run(spec, run_dir, eval_episodes, parent):
    """A worker process: one seed's run.  Ctrl-C is the tuning process's to handle; if that
    process dies, the run stops too (Linux: the parent-death signal)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)    # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:          # it died before that: stop now
            return
    sweep.run_cell(spec, run_dir, eval_episodes)


def run_seeds(trial, specs, trial_dir, processes, eval_episodes, stop):
    """Run ``specs`` ({seed: cell spec}) into trial_dir/s<seed>, ``processes`` at a time; report
    the seeds' mean test return of every epoch to ``trial``.  Returns {seed: record of
    sweep.run_cell}; stops the runs early when one fails.  Raises optuna.TrialPruned when the
    pruner says so, KeyboardInterrupt when ``stop`` is set."""
    import optuna

    ctx = mp.get_context("spawn")
    dirs = {seed: trial_dir / f"s{seed}" for seed in specs}
    queue, running, records, reported = list(specs), {}, {}, 0
    try:
        while queue or running:
            while queue and len(running) < processes:
                seed = queue.pop(0)
                p = ctx.Process(target=_seed_run, daemon=True, name=f"numddpg-tune-s{seed}",
                                args=(specs[seed], str(dirs[seed]), eval_episodes,
                                      os.getpid()))
                p.start()
                running[p.sentinel] = (seed, p)
            for sentinel in wait(list(running), timeout=POLL_SECONDS):
                seed, p = running.pop(sentinel)
                p.join()
                records[seed] = _record(dirs[seed], p.exitcode)
            if any(r["status"] != "done" for r in records.values()):
                break
            for step, mean in _new_epochs(dirs, reported):
                reported += 1
                if math.isfinite(mean):
                    trial.report(mean, step)
                if (queue or running) and trial.should_prune():      # (not once all ended)
                    raise optuna.TrialPruned(f"pruned at env step {step}")
            if stop.is_set():
                raise KeyboardInterrupt
    finally:
        for _, p in running.values():
            p.terminate()
            p.join()
    return records


def _record(run_dir, exitcode):
    for name in (sweep.RESULT_FILE, sweep.ERROR_FILE):
        try:
            with open(run_dir / name) as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
    return {"status": "failed", "error": f"the worker process died (exit code {exitcode}) "
                                         "before the run finished"}


def _progress(run_dir):
    """(TotalEnvInteracts, AverageTestEpRet) of each complete row of run_dir/progress.csv."""
    try:
        text = (run_dir / "progress.csv").read_text()
    except OSError:
        return []
    lines = text.split("\n")[:-1]           # a row is complete once its newline is written
    if not lines:
        return []
    header = lines[0].split(",")
    try:
        i, j = header.index("TotalEnvInteracts"), header.index("AverageTestEpRet")
        return [(int(r[i]), float(r[j])) for r in (line.split(",") for line in lines[1:])]
    except (ValueError, IndexError):
        return []


def _new_epochs(dirs, reported):
    """(env step, the seeds' mean test return) of each epoch after the first ``reported`` that
    every seed has finished."""
    rows = [_progress(d) for d in dirs.values()]
    for epoch in range(reported, min(len(r) for r in rows)):
        yield rows[0][epoch][0], sum(r[epoch][1] for r in rows) / len(rows)


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------

def tune(env="Pendulum-v1", algo="ddpg", trials=20, seeds=(0, 1, 2), total_steps=None,
         space=None, sampler="tpe", pruner="median", storage=None, study=None, workers=None,
         out="tune", eval_episodes=sweep.DEFAULT_EVAL_EPISODES, heartbeat=DEFAULT_HEARTBEAT,
         sampler_seed=None, echo=print):
    """Run, resume or join the study ``study`` until it holds ``trials`` trials; write
    trials.csv, best.json and history.png into ``out``; return the optuna Study.

    env, algo : what to tune (a gymnasium id; "ddpg" or "td3").
    seeds : the seeds every trial trains (its value: the mean of their final evaluations).
    total_steps : env steps of every run.
    space : a dict as in the module docstring, a path to a JSON file of one, or None for
        DEFAULT_SPACES[algo].
    sampler, pruner : "tpe" or "random"; "median" or "none".
    storage, study : an Optuna RDB URL (default: sqlite in ``out``) and the study's name
        (default "<env>_<algo>").  An existing study is resumed if its settings agree.
    workers : runs at a time in this process (default: the usable cores); a trial's seeds run
        side by side, workers // len(seeds) trials at a time.
    heartbeat : seconds between a running trial's heartbeats; a trial silent for 4 of them
        belonged to a process that died, and is run again.
    sampler_seed : seeds the sampler (None: random), for repeatable proposals.
    echo : called with one line per event (None: silent).
    Raises TuneError for bad input, before any run starts; TuneEnvironmentError when Optuna
    or the database cannot be used.
    """
    from ..engine.presets import preset_for

    echo = echo or (lambda *a, **k: None)
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)     # echo says what happens
    seeds = _check_options(algo, trials, seeds, total_steps, eval_episodes, heartbeat, workers,
                           sampler, pruner)
    env_id, space = _checked_space(env, algo, space)
    base = {**preset_for(env_id), **fixed_values(space)}
    settings = {"env": env_id, "algo": algo, "seeds": seeds, "total_steps": total_steps,
                "eval_episodes": eval_episodes, "space": space}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage_url = storage or f"sqlite:///{(out / STUDY_DB).resolve()}"
    name = study or f"{env_id}_{algo}"
    the_study = _open_study(optuna, storage_url, name, settings, sampler, pruner, heartbeat,
                            sampler_seed)
    workers = workers or sweep.usable_cores()
    runner = _Runner(the_study, settings, base.get("noise", "gaussian"), out, trials,
                     processes=min(len(seeds), workers), echo=echo)
    runner.base_update_every = base.get("update_every")
    echo(f"numddpg tune: study {name!r} in {storage_url}: {algo} on {env_id}, seeds "
         f"{' '.join(map(str, seeds))}, {total_steps:,} steps a run, {trials} trials; "
         f"{len(runner.finished())} already there")
    try:
        with sweep.thread_env():          # inherited by the seeds' processes
            runner.run(threads=max(1, workers // len(seeds)))
    finally:
        write_outputs(the_study, out, settings, echo)
    return the_study


def _check_options(algo, trials, seeds, total_steps, eval_episodes, heartbeat, workers,
                   sampler, pruner):
    """The seeds as a list, after checking every option of ``tune`` but the space (TuneError)."""
    from ..training.algorithms import ALGORITHMS

    if algo not in ALGORITHMS:
        raise TuneError(f"unknown algo {algo!r}; known: {', '.join(sorted(ALGORITHMS))}")
    seeds = list(seeds)
    for name, value, minimum in (("trials", trials, 1), ("total_steps", total_steps, 1),
                                 ("eval_episodes", eval_episodes, 1), ("heartbeat", heartbeat, 1),
                                 *[("a seed", s, 0) for s in seeds]):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise TuneError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise TuneError(f"workers must be a positive integer, got {workers!r}")
    if not seeds or len(set(seeds)) < len(seeds):
        raise TuneError(f"seeds must be distinct, and at least one: {seeds}")
    if sampler not in ("tpe", "random"):
        raise TuneError(f"sampler must be 'tpe' or 'random', got {sampler!r}")
    if pruner not in ("median", "none"):
        raise TuneError(f"pruner must be 'median' or 'none', got {pruner!r}")
    return seeds


def _checked_space(env, algo, space):
    """(the env's id, the search space checked against the algorithm on that env): ``space``
    a dict, a JSON file's path, or None for DEFAULT_SPACES[algo]."""
    from ..training.envs import EnvError, make_env

    try:
        env_instance = make_env(env)
    except EnvError as exc:
        raise TuneError(str(exc)) from None
    if space is None:
        space, where = DEFAULT_SPACES[algo], "the default search space"
    elif isinstance(space, dict):
        where = "the search space"
    else:
        where = f"search space {space}"
        space = hpfile.read_json_object(space, "search space")
    try:
        space = check_space(space, algo, where)
        check_space_values(space, algo, env_instance, where)
    finally:
        env_instance.close()
    return (env_instance.spec.id if env_instance.spec else str(env)), space


def _open_study(optuna, url, name, settings, sampler, pruner, heartbeat, sampler_seed):
    import sqlalchemy.exc

    storages = optuna.storages
    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)      # Optuna >= 4.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = ({"heartbeat_stale_trial_callback": retry()} if retry else
                    {"failed_trial_callback": storages.RetryFailedTrialCallback()})
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    pruners = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5),
               "none": optuna.pruners.NopPruner}
    for attempt in range(5):       # processes starting together race to create the tables
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                store = storages.RDBStorage(url, engine_kwargs=engine,
                                            heartbeat_interval=heartbeat,
                                            grace_period=4 * heartbeat, **callback)
            the_study = optuna.create_study(storage=store, study_name=name,
                                            sampler=samplers[sampler](seed=sampler_seed),
                                            pruner=pruners[pruner](), direction="maximize",
                                            load_if_exists=True)
            break
        except sqlalchemy.exc.ArgumentError as exc:
            raise TuneError(f"--storage {url!r} is not a database URL Optuna can use: "
                            f"{exc}") from None
        except ValueError as exc:          # e.g. the study exists with another direction
            raise TuneError(f"study {name!r} in {url}: {exc}") from None
        except (ImportError, sqlalchemy.exc.SQLAlchemyError) as exc:
            if attempt == 4 or isinstance(exc, ImportError):
                raise TuneEnvironmentError(f"cannot open the storage {url}: "
                                           f"{type(exc).__name__}: {exc}") from None
            time.sleep(1 + attempt)
    old = the_study.user_attrs.get("numddpg")
    if old is None:
        the_study.set_user_attr("numddpg", settings)
    elif not isinstance(old, dict) or set(old) != set(settings):
        raise TuneError(f"study {name!r} in {url} holds a settings record numddpg did not "
                        f"write ({_short(old)}); give another --study or --storage")
    elif old != json.loads(json.dumps(settings)):
        diff = ", ".join(f"{k}: {_short(old.get(k))} there, {_short(v)} here"
                         for k, v in json.loads(json.dumps(settings)).items()
                         if old.get(k) != v)
        raise TuneError(f"study {name!r} in {url} was started with other settings ({diff}); "
                        "give the same ones to resume it, or another --study")
    for trial in the_study.get_trials(deepcopy=False):
        check_trial_record(trial, settings, f"study {name!r} in {url}")
    return the_study


def _short(value):
    """``value`` as JSON, cut to 120 characters (for messages about study records)."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= 120 else text[:117] + "..."


def check_trial_record(trial, settings, where):
    """TuneError unless what this module reads of a finished trial is as it writes it: a
    COMPLETE trial's finite value, its hyperparameters (names of the space, values of their
    type), per-seed returns and std; a FAIL's error text.  A study database is a file like any
    other: a trial doctored or written by another program is refused, never half-used."""
    a, state = trial.user_attrs, trial.state.name
    if state == "FAIL" and not isinstance(a.get("error", ""), str):
        raise TuneError(f"{where}: trial {trial.number}'s error record {_short(a['error'])} is "
                        "not text; give another --study or --storage")
    if state != "COMPLETE":
        return
    hp, returns = a.get("hyperparameters"), a.get("returns")
    problem = None
    if not (isinstance(trial.value, float) and math.isfinite(trial.value)):
        problem = f"its value {trial.value!r} is not a finite number"
    elif not isinstance(hp, dict):
        problem = f"its hyperparameters record is {_short(hp)}, not an object"
    elif not isinstance(returns, dict) or sorted(returns) != sorted(map(str, settings["seeds"])) \
            or not all(_finite(v) for v in returns.values()):
        problem = f"its returns record {_short(returns)} does not give each seed's return"
    elif not _finite(a.get("std", 0.0)):
        problem = f"its std {_short(a.get('std'))} is not a finite number"
    else:
        from ..training.algorithms import ALGORITHMS
        cls = ALGORITHMS[settings["algo"]]
        try:
            for key, value in hp.items():
                at = f"trial {trial.number}'s hyperparameters"
                hpfile.check_name(cls, key, at)
                hpfile.check_type(cls, key, value, at)
        except hpfile.HyperparameterFileError as exc:
            problem = str(exc)
    if problem:
        raise TuneError(f"{where}: trial {trial.number} is COMPLETE but {problem}; the study "
                        "was not written by numddpg tune as it is: give another --study or "
                        "--storage")


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


class _Runner:
    """Trials in threads (each waits on its seeds' processes) until the study holds enough."""

    def __init__(self, study, settings, base_noise, out, trials, processes, echo):
        self.study, self.settings, self.base_noise = study, settings, base_noise
        self.base_update_every = None           # the preset's, if any (for a utd_ratio)
        self.out, self.trials, self.processes, self.echo = out, trials, processes, echo
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.pending = 0               # threads of this process about to start a trial
        self.errors = []

    def finished(self):
        from optuna.trial import TrialState
        return [t for t in self.study.get_trials(deepcopy=False)
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                or (t.state == TrialState.FAIL and "error" in t.user_attrs)]

    def _claim(self):
        """True if this thread should start a trial now; False when the study is full and
        nothing is running; None to look again later (trials still running)."""
        from optuna.trial import TrialState
        trials = self.study.get_trials(deepcopy=False)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        counted = len(self.finished()) + waiting + running
        if waiting > self.pending or counted + self.pending < self.trials:
            self.pending += 1
            return True
        return None if running else False

    def run(self, threads):
        """Run ``threads`` trial loops until the study is full; on Ctrl-C, stop them and wait
        until each has recorded its trial as interrupted (and queued its retry).

        Each loop sets its own Event when it ends, and this thread waits on those, not on
        Thread.join: on Python 3.11 a Ctrl-C that lands inside join() marks the thread as
        ended while it still runs (the second join returns at once), and the process then
        exits before the interrupted trial is told to the study."""
        ended = [threading.Event() for _ in range(threads)]
        for i, event in enumerate(ended):
            threading.Thread(target=self._loop, args=(event,), name=f"numddpg-tune-{i}",
                             daemon=True).start()
        try:
            for event in ended:
                event.wait()
        except KeyboardInterrupt:
            self.stop.set()
            for event in ended:
                event.wait()
            raise
        if self.errors:
            raise self.errors[0]

    def _loop(self, ended):
        try:
            self._trials()
        finally:
            ended.set()

    def _trials(self):
        import optuna

        try:
            while not self.stop.is_set():
                with self.lock:
                    go = self._claim()
                if go is False:
                    return
                if go is None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(self.study)
                    self.stop.wait(POLL_SECONDS * 4)
                    continue
                started = []
                try:
                    self.study.optimize(lambda trial: self._objective(trial, started),
                                        n_trials=1, catch=(TrialFailed,),
                                        callbacks=[self._after])
                except KeyboardInterrupt:
                    return
                finally:
                    if not started:
                        with self.lock:
                            self.pending -= 1
        except Exception as exc:                   # storage errors, bugs: the main thread
            self.errors.append(exc)                 # raises them
            self.stop.set()

    def _objective(self, trial, started):
        with self.lock:
            self.pending -= 1
            started.append(trial.number)
        s = self.settings
        try:
            hp = suggest(trial, s["space"], self.base_noise, self.base_update_every)
        except TrialFailed as exc:
            trial.set_user_attr("error", str(exc))
            raise
        trial.set_user_attr("hyperparameters", hp)
        trial.set_user_attr("host", f"{socket.gethostname()}:{os.getpid()}")
        trial_dir = self.out / f"trial{trial.number:04d}"
        trial.set_user_attr("dir", str(trial_dir.resolve()))
        specs = {seed: {"env": s["env"], "algo": s["algo"], "preset": "auto",
                        "total_steps": s["total_steps"],
                        "hyperparameters": {**hp, "seed": seed}} for seed in s["seeds"]}
        try:
            records = run_seeds(trial, specs, trial_dir, self.processes, s["eval_episodes"],
                                self.stop)
        except KeyboardInterrupt:
            # Run it again, with the same parameters, when the study is resumed.
            trial.set_user_attr("interrupted", True)
            self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            raise
        returns = {str(seed): records[seed]["final_test_return"] for seed in s["seeds"]
                   if records.get(seed, {}).get("status") == "done"}
        trial.set_user_attr("returns", returns)
        failed = {seed: r.get("error", "unknown error") for seed, r in records.items()
                  if r["status"] != "done"}
        if failed:
            error = "; ".join(f"s{seed}: {e}" for seed, e in failed.items())
            trial.set_user_attr("error", error)
            raise TrialFailed(error)
        values = [returns[str(seed)] for seed in s["seeds"]]
        mean = sum(values) / len(values)
        trial.set_user_attr("std", math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)))
        if not math.isfinite(mean):
            trial.set_user_attr("error", f"the final returns are not finite: {returns}")
            raise TrialFailed(trial.user_attrs["error"])
        return mean

    def _after(self, study, frozen):
        self.echo(describe(frozen, self.settings["seeds"]))
        with self.lock:
            write_outputs(study, self.out, self.settings, None)


def describe(trial, seeds):
    """One line about a finished trial."""
    a = trial.user_attrs
    state = trial.state.name
    if state == "COMPLETE":
        per = ", ".join(f"s{s} {a['returns'][str(s)]:.1f}" for s in seeds)
        return f"trial {trial.number}: {trial.value:.1f} +- {a.get('std', math.nan):.1f} ({per})"
    if state == "PRUNED":
        steps = trial.intermediate_values
        if steps:
            last = max(steps)
            return (f"trial {trial.number}: pruned at env step {last:,} (seeds' mean test "
                    f"return {steps[last]:.1f})")
        return f"trial {trial.number}: pruned"
    return f"trial {trial.number}: FAILED: {a.get('error', 'interrupted')}"


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------

def write_outputs(study, out, settings, echo):
    """trials.csv, best.json (when a trial completed) and history.png (with matplotlib)."""
    from ..engine.presets import preset_for

    out = Path(out)
    trials = study.get_trials(deepcopy=False)
    _write_trials_csv(out / TRIALS_CSV, trials, settings)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = max(complete, key=lambda t: t.value)
        preset = best_preset(best, study.study_name, settings, preset_for(settings["env"]))
        _write_atomic(out / BEST_JSON, json.dumps(preset, indent=2) + "\n")
    try:
        write_history(out / HISTORY_PNG, trials, settings)
    except ImportError:
        if echo:
            echo(f"no {HISTORY_PNG}: it needs matplotlib (pip install 'numddpg[tune]')")
    if echo:
        if complete:
            echo(f"best: trial {best.number}, {best.value:.1f} +- "
                 f"{best.user_attrs.get('std', math.nan):.1f}; train it with: numddpg train "
                 f"--algo {settings['algo']} --env {settings['env']} --preset "
                 f"{out / BEST_JSON}")
        echo(f"trials: {out / TRIALS_CSV}")


def best_preset(trial, study_name, settings, base):
    """The best trial as a preset file: the env's preset under the trial's hyperparameters,
    the runs' budget, and where it comes from ("tuned", never read back)."""
    preset = {k: v for k, v in base.items() if k != "total_steps"}
    preset.update(trial.user_attrs["hyperparameters"])
    preset = json.loads(json.dumps(preset))
    preset["total_steps"] = settings["total_steps"]
    preset["tuned"] = {"env": settings["env"], "algo": settings["algo"], "study":
                       study_name, "trial": trial.number,
                       "mean_final_return": trial.value, "std": trial.user_attrs.get("std"),
                       "seeds": settings["seeds"], "returns": trial.user_attrs.get("returns"),
                       "eval_episodes": settings["eval_episodes"]}
    return preset


def _write_trials_csv(path, trials, settings):
    import csv
    import io

    params = list(dict.fromkeys(k for t in trials
                                for k in t.user_attrs.get("hyperparameters", {})
                                if settings["space"].get(k, {}).get("type") != "fixed"))
    seeds = settings["seeds"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", "mean", "std", *[f"return_s{s}" for s in seeds], *params,
                "error", "seconds", "dir"])
    for t in trials:
        a = t.user_attrs
        hp, returns = a.get("hyperparameters", {}), a.get("returns", {})
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else ""
        w.writerow([t.number, t.state.name, _num(t.value), _num(a.get("std")),
                    *[_num(returns.get(str(s))) for s in seeds],
                    *[json.dumps(hp[k]) if isinstance(hp.get(k), list) else hp.get(k, "")
                      for k in params],
                    a.get("error", "interrupted" if a.get("interrupted") else ""),
                    f"{seconds:.1f}" if seconds != "" else "", a.get("dir", "")])
    _write_atomic(path, buf.getvalue())


def _num(x):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(x)


def _write_atomic(path, text):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_history(path, trials, settings):
    """The optimisation history: every completed trial's mean +- std over seeds, pruned and
    failed trials as marks at the bottom, and the best value so far."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    done = [t for t in trials if t.state.name == "COMPLETE"]
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if done:
        x = [t.number for t in done]
        ax.errorbar(x, [t.value for t in done], yerr=[t.user_attrs.get("std", 0) for t in done],
                    fmt="o", ms=4, capsize=2, label=f"trial: mean ± std over "
                                                     f"{len(settings['seeds'])} seeds")
        best, xs, ys = -math.inf, [], []
        for t in done:
            best = max(best, t.value)
            xs.append(t.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="C3", label="best so far")
        low = min(t.value - t.user_attrs.get("std", 0) for t in done)
        for state, mark in (("PRUNED", "x"), ("FAIL", "v")):
            others = [t.number for t in trials if t.state.name == state]
            if others:
                ax.plot(others, [low] * len(others), mark, color="0.5",
                        label=state.lower().replace("fail", "failed"))
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no trial completed yet", ha="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("final return (deterministic)")
    ax.set_title(f"{settings['algo']} on {settings['env']}: {settings['total_steps']:,} steps "
                 "a run", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def add_arguments(p):
    """The ``numddpg tune`` options (cli.py registers them)."""
    import argparse

    from ..training.algorithms import ALGORITHMS

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = "\n\n".join(__doc__.split("\n\n")[:6])
    p.add_argument("--env", default="Pendulum-v1", help="gymnasium id (default Pendulum-v1)")
    p.add_argument("--algo", default="ddpg", choices=sorted(ALGORITHMS), help="default ddpg")
    p.add_argument("--trials", type=int, default=20, metavar="N",
                   help="trials in the study (default 20); a resumed study runs the rest")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S",
                   help="seeds every trial trains, side by side (default 0 1 2)")
    p.add_argument("--total-steps", type=int, required=True, metavar="T",
                   help="env steps of every run")
    p.add_argument("--space", default=None, metavar="FILE.json",
                   help="search space replacing the default one (format: see above)")
    p.add_argument("--sampler", choices=("tpe", "random"), default="tpe", help="default tpe")
    p.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="default median (on the seeds' mean test return of each epoch)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna RDB storage, e.g. sqlite:///study.db or "
                        "postgresql://host/db (default: sqlite in DIR)")
    p.add_argument("--study", default=None, metavar="NAME",
                   help="study name (default <env>_<algo>); an existing one is resumed")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="runs at a time in this process (default: one per usable core)")
    p.add_argument("--eval-episodes", type=int, default=sweep.DEFAULT_EVAL_EPISODES,
                   metavar="N", help="episodes of each run's final evaluation (default 10)")
    p.add_argument("--heartbeat", type=int, default=DEFAULT_HEARTBEAT, metavar="SECONDS",
                   help="a trial silent for 4 heartbeats is run again (its process died; "
                        f"default {DEFAULT_HEARTBEAT})")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run directories, trials.csv, best.json, history.png")
    p.set_defaults(func=main)


def main(args):
    """``numddpg tune``: one line and exit 2 for bad input, 1 when Optuna or the storage
    cannot be used or no trial completed, 130 when interrupted."""
    try:
        the_study = tune(env=args.env, algo=args.algo, trials=args.trials, seeds=args.seeds,
                         total_steps=args.total_steps, space=args.space, sampler=args.sampler,
                         pruner=args.pruner, storage=args.storage, study=args.study,
                         workers=args.workers, out=args.out, eval_episodes=args.eval_episodes,
                         heartbeat=args.heartbeat, echo=lambda line: print(line, flush=True))
    except (TuneError, hpfile.HyperparameterFileError) as exc:
        print(f"numddpg: error: {exc}", file=sys.stderr)
        return 2
    except TuneEnvironmentError as exc:
        print(f"numddpg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command to resume the study (the interrupted "
              "trials run again)", file=sys.stderr)
        return 130
    if not any(t.state.name == "COMPLETE" for t in the_study.get_trials(deepcopy=False)):
        print("numddpg: no trial completed; see trials.csv for the errors", file=sys.stderr)
        return 1
    return 0
