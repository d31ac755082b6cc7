"""A run's files beyond its state: the run directory's file names, config.json's checks, the
env a file was trained on, ``load`` and ``resume`` of a saved model or run, and
``export_policy``.

The checkpoint itself (what it holds, its checks, writing and restoring it) is
numddpg.training.runstate's; numddpg.files.checkpoint is the container.
"""
from pathlib import Path

from ..checks import check_int
from ..engine.agents import agent_from_arrays, load_agent
from ..engine.hyperparameters import TABLES
from ..engine.hyperparameters import check as check_hyperparameter
from ..engine.normalizer import EPS, ObsNormalizer
from ..files import checkpoint as _checkpoint
from ..files import policy as _policy_file
from ..files import rundir as _rundir
from ..files import runlog as _runlog
from ..files.checkpoint import CheckpointError, is_int
from ..files.policy import POLICY_FILE
from .envs import EnvError, make_from_record, make_recorded_env, split_module
from .runstate import check_vector_record, read_run_checkpoint, restore_run, saved_layout

# The checkpoint's names from before they moved to runstate, kept importable from here.
from ..files.rundir import jsonable as plain  # noqa: F401
from .runstate import (MAX_ENVS, MODULE, SAVED_SINCE, STATS_ARRAY, finite_or_none,  # noqa: F401
                       run_checkpoint_specs)

CHECKPOINT_FILE = "checkpoint.npz"


class RunWriteError(OSError):
    """A file of the run directory could not be written (disk full, ...); nothing was lost."""

    def __str__(self):
        return self.strerror


def make_saved_env(record, env_module, vector=None):
    """The env a run checkpoint's or config.json's ``record`` was trained on, rebuilt exactly
    from its env record (files from before env records: from its id): one env, or the
    ``vector`` the user asked for (vector_for), whatever the record's vector record says."""
    module = record.get("env_module")
    if "env" in record:
        return make_from_record(record["env"], env_module=env_module, recorded_module=module,
                                vector=vector)
    return make_recorded_env(record["env_id"], env_module=env_module, recorded_module=module,
                             vector=vector)


def vector_for(num_envs, vectorization_mode):
    """The envs the user asked a load or resume to make: None (one env) or {"num_envs",
    "mode"}.  A file's vector record is never obeyed: it would choose how many envs, and with
    mode "async" how many processes, to start."""
    if num_envs is None:
        if vectorization_mode is not None:
            raise ValueError("vectorization_mode goes with num_envs")
        return None
    n = check_int("num_envs", num_envs, 1, MAX_ENVS)
    mode = "sync" if vectorization_mode is None else vectorization_mode
    if mode not in ("sync", "async"):
        raise ValueError(f"vectorization_mode must be 'sync' or 'async', got {mode!r}")
    return {"num_envs": n, "mode": mode}


def _resume_vector(recorded, num_envs, vectorization_mode, run_dir):
    """The envs a resume makes: the user's, which must be as many as the run was trained on
    (the resume is exact only then); ValueError saying what to pass otherwise."""
    asked = vector_for(num_envs, vectorization_mode)
    trained = 1 if recorded is None else recorded["num_envs"]
    if asked is None and recorded is not None:
        n, mode = recorded["num_envs"], recorded["mode"]
        flag, arg = ((" --vectorization-mode async", ", vectorization_mode='async'")
                     if mode == "async" else ("", ""))
        raise ValueError(f"{run_dir} was trained on {n} envs ({mode}); numddpg starts no envs "
                         f"or processes because a file says so: resume it with --num-envs {n}"
                         f"{flag} (Python: resume(..., num_envs={n}{arg}))")
    if asked is not None and asked["num_envs"] != trained:
        raise ValueError(f"{run_dir} was trained on {trained} env(s); a resume on "
                         f"{asked['num_envs']} would not continue it exactly: "
                         + (f"give --num-envs {trained}" if recorded else "leave out --num-envs"))
    return asked


def vector_record(model):
    """{"num_envs", "mode"} of ``model``'s vector env (what make_vec rebuilds it from), else
    None: shown in files, never obeyed (vector_for)."""
    if not model.n_envs:
        return None
    mode = "async" if type(model.env).__name__ == "AsyncVectorEnv" else "sync"
    return {"num_envs": model.n_envs, "mode": mode}


def run_config(model, total_steps=None):
    """Everything that defines ``model``'s run, as written to config.json."""
    return {"algo": model.algo, "env_id": model.env_id, "env": model.env_record,
            "env_module": model.env_module,
            "vector": vector_record(model), "preset": model.preset_name,
            "total_steps": total_steps, "hyperparameters": dict(model.hyperparameters),
            "obs_dim": model.obs_dim, "act_dim": model.act_dim,
            "act_low": model.act_low.tolist(), "act_high": model.act_high.tolist(),
            "threads": {"chunks": model.chunks_used, **model.threads_record},
            **({} if model.obs_layout is None else
               {"obs_layout": model.obs_layout.record()})}


def progress_columns(model):
    """progress.csv's columns: Spinning Up's, and for an env of Dict observations (a goal
    env's) the test episodes' success rate, SUCCESS_COLUMN."""
    return _rundir.PROGRESS_COLUMNS + (() if model.obs_layout is None
                                       else (_rundir.SUCCESS_COLUMN,))


def open_run(model, total_steps):
    """Create ``model``'s run directory, lock it, write its config.json and open its
    progress.csv (the first learn() of a logging model)."""
    model.run_dir = _rundir.create_run_dir(model._run_dir_request, model._runs_root,
                                           model.env_id, model.algo, model.seed)
    model._lock = _rundir.RunLock(model.run_dir).acquire()
    _rundir.write_config(model.run_dir, run_config(model, total_steps))
    model._csv = _rundir.ProgressCSV(model.run_dir / _rundir.PROGRESS_FILE,
                                     progress_columns(model))


def check_run_config(config, run_dir):
    """config.json of a run directory, after checking the fields a resume uses (the file is
    untrusted: its hyperparameters are checked again by the constructor)."""
    where = f"{run_dir}/config.json"
    if config.get("algo") not in TABLES:
        raise CheckpointError(f"{where}: algo {config.get('algo')!r} is not one of "
                              f"{sorted(TABLES)}")
    if not isinstance(config.get("env_id"), str):
        raise CheckpointError(f"{where}: env_id {config.get('env_id')!r} is not an env id")
    if not isinstance(config.get("hyperparameters"), dict):
        raise CheckpointError(f"{where}: 'hyperparameters' must be an object")
    total = config.get("total_steps")
    if not (total is None or (is_int(total) and total > 0)):
        raise CheckpointError(f"{where}: total_steps {total!r} must be a positive integer")
    module = config.get("env_module")
    if not (module is None or isinstance(module, str)):
        raise CheckpointError(f"{where}: env_module {module!r} must be a module name")
    check_vector_record(config.get("vector"), where)
    if "obs_layout" in config:                 # (a run of Dict observations)
        saved_layout(config, where)
    return config


def check_belongs(model, config, path):
    """CheckpointError unless the checkpoint loaded into ``model`` is the run that config.json
    describes (a checkpoint copied in from another run would silently continue that one)."""
    hp = config["hyperparameters"]
    mine = {"algo": model.algo, "env_id": model.env_id, "seed": model.seed,
            "hidden_sizes": list(model.hidden_sizes), "obs_dim": model.obs_dim,
            "act_dim": model.act_dim,
            "obs_layout": None if model.obs_layout is None else model.obs_layout.record()}
    theirs = {"algo": config["algo"], "env_id": split_module(config["env_id"])[1],
              "seed": hp.get("seed"), "hidden_sizes": hp.get("hidden_sizes"),
              "obs_dim": config.get("obs_dim"), "act_dim": config.get("act_dim"),
              "obs_layout": config.get("obs_layout")}
    differ = [f"{k} {mine[k]!r} (checkpoint) vs {theirs[k]!r} (config.json)"
              for k in mine if mine[k] != theirs[k]]
    if differ:
        raise CheckpointError(f"{path} does not belong to this run directory: "
                              f"{'; '.join(differ)}. Resume the run it came from, or start a "
                              "new one.")


def load_model(cls, path, env=None, test_env=None, log=False, run_dir=None, runs_root="runs",
               env_module=None, tensorboard_log=None, tb_log_name=None, num_envs=None,
               vectorization_mode=None):
    """``cls.load``: the model saved at ``path``, of ``cls.class_for`` its algo, rebuilt from
    its hyperparameters on ``env`` (default: the saved env) and restored."""
    meta, arrays = read_run_checkpoint(path)
    target = cls.class_for(meta["algo"])
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
            env = make_saved_env(meta, env_module, vector_for(num_envs, vectorization_mode))
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
    model.preset_name = meta.get("preset")       # (checked: null or a name; may be absent)
    if saved_chunks is None:               # calibrated when it was trained: say so again
        model.chunks = model.hyperparameters["chunks"] = None
    model.threads_record = {"source": f"the saved agent ({path})"}
    restore_run(model, meta, arrays, str(path))
    model.restore_extra_records(meta, str(path))
    model.state.checkpoint_t = model.t
    model._progress_rows = meta["logger"]["progress_rows"]
    return model


def resume_run(cls, run_dir, total_steps=None, progress_bar=True, env=None, env_module=None,
               tensorboard_log=None, tb_log_name=None, num_envs=None, vectorization_mode=None):
    """``cls.resume``: the run in ``run_dir`` continued, under its lock, from its checkpoint
    (or from config.json if it has none) up to ``total_steps``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise _rundir.RunDirError(f"{str(run_dir)!r} is not a directory; --resume takes the "
                                  "run directory a training run wrote")
    config = check_run_config(_rundir.read_config(run_dir), run_dir)
    vector = None if env is not None else _resume_vector(config.get("vector"), num_envs,
                                                         vectorization_mode, run_dir)
    lock = _rundir.RunLock(run_dir).acquire()
    try:
        _checkpoint.remove_stale_temporaries(run_dir)  # left by a process killed mid-save
        path = run_dir / CHECKPOINT_FILE
        if path.is_file():
            model = cls.load(path, env=env, env_module=env_module,
                             **({} if vector is None else {
                                 "num_envs": vector["num_envs"],
                                 "vectorization_mode": vector["mode"]}))
            check_belongs(model, config, path)
        elif config["hyperparameters"].get("checkpoint_every") == 0:
            raise ValueError(f"{run_dir} was started with checkpoint_every 0 (no checkpoints), "
                             "so it cannot be resumed; start a new run")
        else:                              # never checkpointed: start it again, here
            model = restart_run(cls, config, run_dir, env, env_module, vector)
        total = config["total_steps"] if total_steps is None else check_int(
            "total_steps", total_steps, 1)
        if total < model.t:
            raise ValueError(f"{run_dir} has run {model.t:,} env steps; total_steps {total:,} "
                             f"is fewer: give more than {model.t:,} to continue it, or leave it "
                             "out to finish its own budget")
        model.run_dir, model.log, model._lock = run_dir, True, lock
        model.tensorboard_log, model.tb_log_name = _runlog.check_tensorboard_args(
            tensorboard_log, tb_log_name)
        rows = model._progress_rows if path.is_file() else 0
        progress = run_dir / _rundir.PROGRESS_FILE
        if rows is not None:
            _rundir.truncate_progress(progress, rows, missing_ok=not rows)
        model._csv = _rundir.ProgressCSV(progress, model.progress_columns())
        if total is not None and model.t < total:
            model.learn(total - model.t, progress_bar=progress_bar)
    finally:
        lock.release()
    return model


def restart_run(cls, config, run_dir, env, env_module, vector=None):
    """A new model from a run directory's config.json (checked), for a run that died before
    its first checkpoint (on ``vector``'s envs: _resume_vector)."""
    target = cls.class_for(config["algo"])
    if target.algo != config["algo"]:
        raise CheckpointError(f"{run_dir}: config.json is a {config['algo']} run, not "
                              f"{target.__name__}'s")
    if env is None:
        env = make_saved_env(config, env_module, vector)
    try:
        model = target(env, preset="none", log=False, **config["hyperparameters"])
    except (TypeError, ValueError) as exc:
        if isinstance(exc, EnvError):
            raise
        raise CheckpointError(f"{run_dir}/config.json: cannot rebuild the run from its "
                              f"hyperparameters: {exc}") from None
    layout = config.get("obs_layout")
    if layout != (None if model.obs_layout is None else model.obs_layout.record()):
        raise CheckpointError(f"{run_dir}/config.json: the run observed {layout or 'a Box'}, "
                              f"the env {model.env_id} observes {model.obs_layout or 'a Box'}")
    model.env_module = model.env_module or env_module or config.get("env_module")
    model.preset_name = config.get("preset")
    return model


def export_policy(src, dst):
    """Write the actor of ``src`` as a NumPy-only policy file at ``dst`` (numddpg.policy).

    src: a run directory (its policy.npz, else its checkpoint.npz), a policy file, or an
    agent or algorithm checkpoint.  Returns (dst path, the source file used).
    """
    src = Path(src)
    if src.is_dir():
        candidates = [src / POLICY_FILE, src / CHECKPOINT_FILE]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise CheckpointError(f"{src}: no {POLICY_FILE} or {CHECKPOINT_FILE} in this "
                                  "directory; is it a numddpg run directory?")
        src = found[0]
    where = str(src)
    kind = _checkpoint.read_meta(src)["kind"]
    if kind == "policy":
        p = _policy_file.load_policy(src)
        info = {k: v for k, v in p.meta.items() if k in ("algo", "env_id")}
        path = _policy_file.save_policy(dst, p.params, p.layer_sizes, p.mid, p.half, p.low,
                                        p.high, p.act_dtype, p.obs_norm, p.layout, **info)
        return path, src
    obs_norm, layout = None, None
    if kind == "agent":
        agent, info, act_dtype = load_agent(src), {}, "float32"
    elif kind == "algorithm":
        meta, arrays = read_run_checkpoint(src)
        agent = agent_from_arrays(meta["config"], arrays, where, "agent.")
        info = {"algo": meta["algo"], "env_id": meta["env_id"],
                "trained_steps": meta["loop"]["t"]}
        act_dtype = meta["spaces"]["act_dtype"]
        layout = saved_layout(meta["spaces"], where)
        if "norm.mean" in arrays:
            hp, table = meta["hyperparameters"], TABLES[meta["algo"]]
            try:                                   # (a loaded run's constructor checks them)
                clip, eps = (check_hyperparameter(name, hp.get(name, default), table[name])
                             for name, default in (("obs_clip", None), ("obs_norm_eps", EPS)))
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{where}: {e}") from None
            norm = ObsNormalizer(meta["config"]["obs_dim"], clip, eps)
            norm.restore({k: arrays[f"norm.{k}"] for k in ("mean", "var", "count")})
            obs_norm = (norm.shift, norm.scale, norm.clip[0])
    path = _policy_file.save_policy(dst, agent.actor.params, agent.actor.sizes, agent.mid,
                                    agent.half, agent.act_low, agent.act_high, act_dtype,
                                    obs_norm, layout, **dict(info, algo=agent.algo))
    return path, src
