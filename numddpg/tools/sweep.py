"""Many runs: a grid of ``numddpg train`` settings times seeds, on local cores or a Ray cluster.

    numddpg sweep --env Pendulum-v1 HalfCheetah-v5 --seed 0 1 2 --hidden "64 64" "256 256"
                  [--algo ddpg td3] [--<hyperparameter> V [V ...]] [--total-steps N [N ...]]
                  [--backend local|ray] [--workers N] [--address ADDR] --out DIR

Every option given several values is an axis of the grid.  A *cell* is one point of the grid
(env, algo, one value of every axis, seed) and runs exactly as ``numddpg train`` would run it,
into an ordinary run directory.  A *configuration* is a cell without its seed: the summary has
one row per configuration, the plot one line.

    DIR/
        sweep.json                  the grid of the latest invocation and its cells' names
        <cell name>/                a run directory: config.json, progress.csv, policy.npz, and
            result.json             written last, once the run finished: the completion marker
            error.json              instead, if the run failed (retried by the next invocation)
        summary.csv, summary.md     one row per configuration: final test return over seeds

Cell names are stable: env, algo, the value of every axis that has several values, then the
seed, e.g. ``Pendulum-v1_ddpg_hidden64-64_s0``.  Running the same command again skips the cells
with a result.json (after checking that it was made with the same settings) and retries the
others.  A failure -- a bad hyperparameter, an exception while training, a worker process that
dies -- is one failed cell, with its error in error.json and the summary; the other cells go on.

Final test return of a cell: the mean return of ``eval_episodes`` (default 10) deterministic
episodes of the final policy, on the run's test env with reset seeds from the run's generator
(the "final policy" number ``numddpg train`` prints).  The summary's "mean +- std" is over the
seeds of a configuration (std with ddof=0, like the plot's band).

Backends
    local  one process per cell, at most ``workers`` (default: the usable cores) at a time, each
           started with 'spawn' (numba and fork do not mix) and with OMP/OpenBLAS/MKL/Numba
           threads, ``blas_threads`` and ``chunks`` pinned to 1, so that N runs on N cores do not fight over
           them.  A fresh process per cell costs about a second of imports and cached kernels;
           in exchange a crash (segfault, out-of-memory kill) is charged to its own cell alone
           and every run returns its memory.
    ray    each cell a Ray task asking for one CPU (extra ``numddpg[ray]``); the run directory is
           written in a temporary directory on the worker and its files are sent back to DIR on
           the head.  Connects to ``--address`` (an existing cluster, whose workers must have
           numddpg installed) or starts a local Ray with ``--workers`` CPUs.
"""
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .argtypes import strict_bool, whole_number

HELP = ("run a grid of train settings x seeds on local cores or a Ray cluster; skip finished "
        "cells; write a summary table")

RESULT_FILE = "result.json"      # a finished cell (written last)
ERROR_FILE = "error.json"        # a failed cell (not a completion marker)
SWEEP_FILE = "sweep.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
DEFAULT_EVAL_EPISODES = 10

# Environment of every worker: one thread per run for each threading layer a run may load.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "NUMDDPG_BLAS_THREADS": "1"}

# Grid keys that are not hyperparameters of the algorithm (the rest are, seed included).
RUN_KEYS = ("env", "algo", "preset", "total_steps")
SHORT_NAMES = {"hidden_sizes": "hidden", "total_steps": "steps"}
RAY_MISSING = ("the ray backend needs Ray: pip install 'numddpg[ray]' (or pip install "
               "'ray>=2.9'), or use --backend local")


class SweepError(ValueError):
    """A grid that cannot be run as given (unknown option for an algo, clashing cell names...)."""


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------

def make_cells(grid):
    """The cells of ``grid``: a list of (name, spec), seeds innermost.

    grid : dict of key -> list of values, keys "env", "algo", "seed", optionally "preset"
        (default ["auto"]) and "total_steps" (default [None]: the preset's budget), and any
        hyperparameter of the algorithms (e.g. "hidden_sizes": [[64, 64], [256, 256]]).
    spec : {"env", "algo", "preset", "total_steps", "hyperparameters"}, JSON-shaped (lists, not
        tuples), exactly what ``run_cell`` passes to ``ALGORITHMS[algo](env, ...)``.

    A hyperparameter that only some of the algorithms take (a TD3 option in a DDPG + TD3 grid)
    is dropped from the cells of the others, whose duplicates are merged.
    """
    from ..training.algorithms import ALGORITHMS

    grid = {k: list(v) for k, v in grid.items()}
    grid.setdefault("preset", ["auto"])
    grid.setdefault("total_steps", [None])
    for key in ("env", "algo", "seed"):
        if not grid.get(key):
            raise SweepError(f"the grid needs at least one {key!r} value")
    empty = [k for k, v in grid.items() if not v]
    if empty:
        raise SweepError(f"grid axes without values: {empty}")
    for key, values in grid.items():
        as_json = [json.dumps(_jsonable(v), sort_keys=True) for v in values]
        if len(set(as_json)) < len(as_json):
            raise SweepError(f"--{key.replace('_', '-')} repeats a value: {values}")
    unknown_algos = [a for a in grid["algo"] if a not in ALGORITHMS]
    if unknown_algos:
        raise SweepError(f"unknown algo {unknown_algos}; known: {', '.join(sorted(ALGORITHMS))}")
    hp_keys = [k for k in grid if k not in RUN_KEYS]
    tables = {a: ALGORITHMS[a].hyperparameter_table() for a in grid["algo"]}
    for key in hp_keys:
        if not any(key in t for t in tables.values()):
            owners = sorted(a for a, cls in ALGORITHMS.items()
                            if key in cls.hyperparameter_table())
            why = (f"only {', '.join(owners)} take it" if owners else
                   "no algorithm takes it")
            raise SweepError(f"{key!r} is not a hyperparameter of {', '.join(grid['algo'])} "
                             f"({why})")
    # Axes named in cell names: env and algo always, then every other key with several values,
    # the seed last (so "<configuration name>_s<seed>").
    named = [k for k in grid if k not in ("env", "algo", "seed") and len(grid[k]) > 1]
    order = ["env", "algo", "preset", "total_steps", *[k for k in hp_keys if k != "seed"],
             "seed"]

    cells = {}
    for point in _product(order, grid):
        algo = point["algo"]
        hp = {k: point[k] for k in hp_keys if k in tables[algo]}
        spec = _jsonable({"env": point["env"], "algo": algo, "preset": point["preset"],
                          "total_steps": point["total_steps"], "hyperparameters": hp})
        parts = [_label("env", point["env"]), _label("algo", algo)]
        parts += [_label(k, point[k]) for k in named if k in RUN_KEYS or k in hp]
        name = "_".join(parts) + f"_s{point['seed']}"
        if name in cells and cells[name] != spec:
            raise SweepError(f"two different cells would share the name {name!r}: {cells[name]} "
                             f"and {spec}; make the values differ in more than punctuation")
        cells[name] = spec
    return list(cells.items())


def _product(order, grid):
    points = [{}]
    for key in order:
        points = [{**p, key: v} for p in points for v in grid[key]]
    return points


def _label(key, value):
    """One name part: "hidden64-64", "gamma0.9", "noise-ou"; env and algo as they are."""
    if isinstance(value, (list, tuple)):
        text = "-".join(str(v) for v in value)
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    text = re.sub(r"[^A-Za-z0-9.+-]+", "-", text)
    if key in ("env", "algo"):
        return text
    short = SHORT_NAMES.get(key, key.replace("_", "-"))
    return short + (text if text[:1].isdigit() or text[:1] in "-." else "-" + text)


def config_name(name):
    """A cell's name without its seed: the name of its configuration."""
    return re.sub(r"_s\d+$", "", name)


def _jsonable(v):
    return json.loads(json.dumps(v, default=lambda x: x.item() if hasattr(x, "item") else str(x)))


# ---------------------------------------------------------------------------------------------
# One cell
# ---------------------------------------------------------------------------------------------

def run_cell(spec, run_dir, eval_episodes=DEFAULT_EVAL_EPISODES):
    """Train one cell into ``run_dir`` (which must not exist) as ``numddpg train`` would, then
    evaluate the final policy.  Never raises for a failed run: writes result.json (last) or
    error.json into run_dir and returns that record (a dict with "status" "done" or "failed").

    BLAS runs on one thread and the update on one chunk unless the cell sets ``blas_threads``
    or ``chunks`` itself (its cores are the other cells').
    """
    run_dir = Path(run_dir)
    started = time.time()
    base = {"name": run_dir.name, "cell": spec, "host": socket.gethostname(), "pid": os.getpid()}
    try:
        from ..training.algorithms import ALGORITHMS
        if spec["algo"] not in ALGORITHMS:
            raise ValueError(f"unknown algo {spec['algo']!r} on this host; known: "
                             f"{', '.join(sorted(ALGORITHMS))}")
        hp = dict(spec["hyperparameters"])
        hp.setdefault("blas_threads", 1)
        hp.setdefault("chunks", 1)
        model = ALGORITHMS[spec["algo"]](spec["env"], preset=spec["preset"], run_dir=run_dir,
                                         **hp)
        total = spec["total_steps"] or model.preset_total_steps or model.steps_per_epoch * 100
        model.learn(total, progress_bar=False)
        mean, std = model.evaluate(eval_episodes)
        last = getattr(model, "last_row", {}).get("AverageTestEpRet", math.nan)
        record = {**base, "status": "done", "final_test_return": mean, "final_test_std": std,
                  "eval_episodes": int(eval_episodes), "last_epoch_test_return": last,
                  "env_steps": int(model.t), "train_seconds": model.elapsed,
                  "seconds": time.time() - started}
        _write_json(run_dir / RESULT_FILE, record)
    except Exception as exc:
        record = {**base, "status": "failed", "error": _one_line(exc),
                  "traceback": traceback.format_exc(), "seconds": time.time() - started}
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / ERROR_FILE, record)
    return record


def _one_line(exc):
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


def _write_json(path, data):
    """Write atomically: a reader never sees half a file (result.json marks completion)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def cell_state(run_dir, spec):
    """("done", record) for a finished cell made with ``spec``; ("clash", message) for a
    finished one made with other settings or a directory that is not a cell; ("todo", None)."""
    run_dir = Path(run_dir)
    result = run_dir / RESULT_FILE
    if result.exists():
        try:
            record = _read_json(result)
        except (OSError, ValueError):           # a damaged marker: run the cell again
            return "todo", None
        if record.get("cell") == spec:
            return "done", record
        return "clash", (f"{run_dir} holds a finished run with other settings "
                         f"({_differences(record.get('cell') or {}, spec)}); choose another "
                         "--out or remove that directory")
    if run_dir.exists() and not _is_stale_cell(run_dir):
        return "clash", (f"{run_dir} exists and is not a run directory of this sweep; choose "
                         "another --out or move it away")
    return "todo", None


def _differences(old, new):
    """"key: old value -> new value" for every setting (hyperparameters flattened) that differs."""
    flat = lambda spec: {**{k: v for k, v in spec.items() if k != "hyperparameters"},
                         **spec.get("hyperparameters", {})}
    old, new = flat(old), flat(new)
    return ", ".join(f"{k}: {old.get(k, '(unset)')} there, {new.get(k, '(unset)')} here"
                     for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k))


def _is_stale_cell(run_dir):
    """An earlier attempt at a cell (failed or interrupted): empty, or a run directory."""
    names = [p.name for p in Path(run_dir).iterdir()]
    return not names or "config.json" in names or ERROR_FILE in names


def _clear(run_dir):
    """Remove an earlier failed or interrupted attempt before the cell runs again."""
    if Path(run_dir).exists():
        shutil.rmtree(run_dir)


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------

def run_sweep(cells, out, backend="local", workers=None, address=None,
              eval_episodes=DEFAULT_EVAL_EPISODES, echo=print):
    """Run every cell of ``cells`` (from ``make_cells``) that is not finished yet into
    ``out/<name>``; write sweep.json, summary.csv and summary.md; return the summary rows.

    backend : "local" (processes on this machine) or "ray".
    workers : runs at a time (local default: usable cores; ray: the CPUs of a local Ray it
        starts, or a cap on tasks in flight on a cluster).
    address : Ray cluster address (ray backend only; default: start a local Ray).
    echo : called with one line per event (None: silent).
    """
    echo = echo or (lambda *a, **k: None)
    if backend not in ("local", "ray"):
        raise SweepError(f"backend must be 'local' or 'ray', got {backend!r}")
    if address is not None and backend != "ray":
        raise SweepError("--address is for --backend ray")
    if workers is not None and (int(workers) != workers or workers < 1):
        raise SweepError(f"workers must be a positive integer, got {workers!r}")
    if int(eval_episodes) != eval_episodes or eval_episodes < 1:
        raise SweepError(f"eval_episodes must be a positive integer, got {eval_episodes!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / SWEEP_FILE, {"cells": [name for name, _ in cells],
                                   "specs": dict(cells), "eval_episodes": eval_episodes})

    records, todo = _earlier_cells(cells, out, echo)
    if not todo:
        echo(f"numddpg sweep: all {len(cells)} cells finished earlier; nothing to run")
    else:
        echo(f"numddpg sweep: {len(todo)} of {len(cells)} cells to run on {backend}"
             + (f" ({len(cells) - len(todo)} finished earlier)" if len(todo) < len(cells) else ""))
        counter = {"k": 0}

        def report(name, record):
            records[name] = record
            counter["k"] += 1
            head = f"[{counter['k']}/{len(todo)}] {name}:"
            if record["status"] == "done":
                echo(f"{head} final test return {record['final_test_return']:.1f} "
                     f"({record['seconds']:.0f} s)")
            else:
                echo(f"{head} FAILED: {record['error']}")

        for name, _ in todo:
            _clear(out / name)
        if backend == "local":
            _run_local(todo, out, workers, eval_episodes, report)
        else:
            _run_ray(todo, out, workers, address, eval_episodes, report)

    rows = summarize(cells, records)
    write_summary(out, rows)
    echo(format_table(rows))
    return rows


def _earlier_cells(cells, out, echo):
    """({name: record} of the cells finished earlier or clashing with their directory, the
    (name, spec) cells still to run)."""
    records, todo = {}, []
    for name, spec in cells:
        state, detail = cell_state(out / name, spec)
        if state == "done":
            records[name] = detail
            echo(f"  {name}: finished earlier, skipped")
        elif state == "clash":
            records[name] = {"name": name, "cell": spec, "status": "failed", "error": detail}
            echo(f"  {name}: FAILED: {detail}")
        else:
            todo.append((name, spec))
    return records, todo


# -- local: one spawned process per cell -----------------------------------------------------

def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                 # not on Linux
        return os.cpu_count() or 1


def _run_local(todo, out, workers, eval_episodes, report):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    workers = min(int(workers or usable_cores()), len(todo))
    queue, running = list(todo), {}          # sentinel -> (name, spec, process)
    try:
        with thread_env():                   # inherited by the processes started below
            _launch_and_wait(ctx, queue, running, workers, out, eval_episodes, report)
    finally:
        for _, _, p in running.values():     # interrupted: stop the runs this sweep started
            p.terminate()
            p.join()


def _launch_and_wait(ctx, queue, running, workers, out, eval_episodes, report):
    """Keep ``workers`` cells running until ``queue`` and ``running`` are empty."""
    from multiprocessing.connection import wait

    while queue or running:
        while queue and len(running) < workers:
            name, spec = queue.pop(0)
            p = ctx.Process(target=run_cell, args=(spec, str(out / name), eval_episodes),
                            name=f"numddpg-sweep-{name}", daemon=True)
            p.start()
            running[p.sentinel] = (name, spec, p)
        for sentinel in wait(list(running)):
            name, spec, p = running.pop(sentinel)
            p.join()
            report(name, _record_after_exit(out / name, spec, p.exitcode))


@contextlib.contextmanager
def thread_env():
    """THREAD_ENV set in os.environ inside the block (the processes started in it inherit
    it: one thread each), and the variables as they were after it."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update(THREAD_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _record_after_exit(run_dir, spec, exitcode):
    for file in (RESULT_FILE, ERROR_FILE):
        if (run_dir / file).exists():
            try:
                return _read_json(run_dir / file)
            except (OSError, ValueError):
                pass
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exit code {exitcode}"
    hint = " (out of memory?)" if exitcode == -signal.SIGKILL else ""
    record = {"name": run_dir.name, "cell": spec, "status": "failed",
              "error": f"the worker process died ({how}){hint} before the run finished"}
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / ERROR_FILE, record)
    return record


# -- ray: one task per cell, files back to the head -----------------------------------------

def _ray_cell(spec, name, eval_episodes):
    """On a Ray worker: run the cell in a temporary directory; return (record, {relative path:
    bytes}) of its run directory."""
    with tempfile.TemporaryDirectory(prefix="numddpg-sweep-") as tmp:
        run_dir = Path(tmp) / name
        record = run_cell(spec, run_dir, eval_episodes)
        files = {p.relative_to(run_dir).as_posix(): p.read_bytes()
                 for p in sorted(run_dir.rglob("*")) if p.is_file()}
    return record, files


def import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError(RAY_MISSING) from None
    return ray


def _run_ray(todo, out, workers, address, eval_episodes, report):
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": workers or usable_cores()}
        ray.init(**kwargs, include_dashboard=False, log_to_driver=False)
    # Per task, so that it holds on a Ray someone else started too (workers with these
    # variables are started once, then reused).
    task = ray.remote(num_cpus=1)(_ray_cell).options(runtime_env={"env_vars": THREAD_ENV})
    cap = workers or len(todo)
    queue, in_flight = list(todo), {}        # ObjectRef -> (name, spec)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < cap:
                name, spec = queue.pop(0)
                in_flight[task.remote(spec, name, eval_episodes)] = (name, spec)
            done, _ = ray.wait(list(in_flight), num_returns=1)
            name, spec = in_flight.pop(done[0])
            run_dir = out / name
            try:
                record, files = ray.get(done[0])
            except Exception as exc:         # the task itself died (worker crash, node lost)
                record = {"name": name, "cell": spec, "status": "failed",
                          "error": f"the Ray task failed: {_one_line(exc)}"}
                files = {ERROR_FILE: (json.dumps(record, indent=2) + "\n").encode()}
            _write_files(run_dir, files)
            report(name, record)
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def _write_files(run_dir, files):
    """Write a run directory returned by a worker; result.json last, so that it still marks a
    complete directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    root = run_dir.resolve()
    for rel in sorted(files, key=lambda r: r == RESULT_FILE):
        path = (run_dir / rel).resolve()
        if root not in path.parents:
            raise SweepError(f"a worker returned a file outside its run directory: {rel!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(files[rel])
        os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------

def summarize(cells, records):
    """One row per configuration, in grid order: seeds done, mean and std (ddof=0) of the final
    test return over them, and the failed seeds with their errors."""
    import numpy as np

    rows = {}
    for name, spec in cells:
        key = config_name(name)
        row = rows.setdefault(key, {"configuration": key, "env": spec["env"],
                                    "algo": spec["algo"], "seeds": 0, "returns": [],
                                    "done_seeds": [], "failures": []})
        row["seeds"] += 1
        rec = records.get(name, {"status": "failed", "error": "not run"})
        seed = spec["hyperparameters"].get("seed")
        if rec.get("status") == "done":
            row["returns"].append(float(rec["final_test_return"]))
            row["done_seeds"].append(seed)
        else:
            row["failures"].append((seed, rec.get("error", "unknown error")))
    for row in rows.values():
        r = np.array(row["returns"], dtype=np.float64)
        row["done"] = len(r)
        row["mean"] = float(r.mean()) if len(r) else math.nan
        row["std"] = float(r.std()) if len(r) else math.nan
    return list(rows.values())


def _cell_text(row):
    ret = "-" if not row["done"] else f"{row['mean']:.1f} ± {row['std']:.1f}"
    by_error = {}                              # the same error for several seeds: said once
    for seed, err in row["failures"]:
        by_error.setdefault(err, []).append(f"s{seed}")
    fails = "; ".join(f"{', '.join(seeds)}: {err}" for err, seeds in by_error.items())
    return ret, fails


def format_table(rows):
    """The summary as a Markdown table (what ``numddpg sweep`` prints and writes)."""
    lines = ["| configuration | seeds done | final test return (mean ± std over seeds) | "
             "failures |", "|---|---|---|---|"]
    for row in rows:
        ret, fails = _cell_text(row)
        fails = fails.replace("|", "\\|")
        lines.append(f"| {row['configuration']} | {row['done']}/{row['seeds']} | {ret} | "
                     f"{fails} |")
    return "\n".join(lines)


def write_summary(out, rows):
    import csv

    out = Path(out)
    with open(out / SUMMARY_CSV, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["configuration", "env", "algo", "seeds_done", "seeds", "mean_test_return",
                    "std_test_return", "returns", "failed_seeds", "errors"])
        for row in rows:
            w.writerow([row["configuration"], row["env"], row["algo"], row["done"],
                        row["seeds"], _num(row["mean"]), _num(row["std"]),
                        " ".join(repr(x) for x in row["returns"]),
                        " ".join(str(s) for s, _ in row["failures"]),
                        " | ".join(e for _, e in row["failures"])])
    (out / SUMMARY_MD).write_text(
        "Final test return: mean of each seed's final deterministic evaluation, then mean ± "
        "std (ddof=0) over seeds.\n\n" + format_table(rows) + "\n")


def _num(x):
    return "" if math.isnan(x) else repr(x)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def _axis_kwargs(spec):
    """argparse's type/choices of one value of a sweep axis, from the hyperparameter's kind in
    numddpg.hyperparameters (widths: one quoted list per value)."""
    return {"int": {"type": whole_number}, "real": {"type": float}, "widths": {"type": _hidden},
            "bool": {"type": strict_bool}, "choice": {"choices": spec.choices},
            "dtype": {"choices": ("float32", "float64")}}[spec.kind]


def _hidden(text):
    """'64 64', '64,64' or '64x64' -> [64, 64]; '' -> [] (no hidden layer: linear networks)."""
    parts = [p for p in re.split(r"[\s,x]+", text.strip()) if p]
    if not parts:
        return []
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        import argparse
        raise argparse.ArgumentTypeError(
            f"--hidden takes one quoted list of widths per value, e.g. --hidden \"64 64\" "
            f"\"256 256\" (\"\" for none); got {text!r}")
    return sizes


def _hyperparameters():
    from ..training.algorithms import ALGORITHMS
    table = {}
    for cls in ALGORITHMS.values():
        table.update(cls.hyperparameter_specs())
    return table


def add_arguments(p):
    """The ``numddpg sweep`` options (cli.py registers them)."""
    from ..training.algorithms import ALGORITHMS

    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = "\n\n".join(__doc__.split("\n\n")[:3])
    p.add_argument("--out", required=True, metavar="DIR",
                   help="sweep directory: one run directory per cell, plus summary.csv/.md")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes (default) or Ray tasks (pip install 'numddpg[ray]')")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="runs at a time (default: one per usable core; ray: CPUs of the local "
                        "Ray it starts, or tasks in flight on --address)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to connect to (default: start a local Ray)")
    p.add_argument("--eval-episodes", type=int, default=DEFAULT_EVAL_EPISODES, metavar="N",
                   help="deterministic episodes of the final evaluation (default 10)")
    g = p.add_argument_group("grid axes (several values = an axis; each cell runs like "
                             "`numddpg train`)")
    g.add_argument("--env", nargs="+", default=["Pendulum-v1"], metavar="ENV",
                   help="gymnasium ids (default Pendulum-v1)")
    g.add_argument("--algo", nargs="+", default=["ddpg"], choices=sorted(ALGORITHMS),
                   metavar="ALGO", help=f"of {', '.join(sorted(ALGORITHMS))} (default ddpg)")
    g.add_argument("--seed", nargs="+", type=int, default=[0], metavar="S",
                   help="seeds (default 0)")
    g.add_argument("--total-steps", dest="total_steps", nargs="+", type=int, default=None,
                   metavar="N", help="env steps (default: the preset's budget)")
    g.add_argument("--preset", nargs="+", default=None, metavar="P",
                   help="auto (default), none, or an env id")
    g.add_argument("--hidden", "--hidden-sizes", dest="hidden_sizes", nargs="+", type=_hidden,
                   default=None, metavar='"N N"',
                   help='hidden widths, one quoted list per value: --hidden "64 64" "256 256"')
    for name, spec in _hyperparameters().items():
        if name in ("hidden_sizes", "seed"):
            continue
        g.add_argument("--" + name.replace("_", "-"), dest=name, nargs="+", default=None,
                       metavar="V", help=f"{spec.meaning} (default {spec.default})",
                       **_axis_kwargs(spec))
    p.set_defaults(func=run_command)


def grid_from_args(args):
    skip = {"out", "backend", "workers", "address", "eval_episodes", "func", "command"}
    return {k: v for k, v in vars(args).items() if k not in skip and v is not None}


def run_command(args):
    try:
        cells = make_cells(grid_from_args(args))
        if args.backend == "ray":
            import_ray()
        rows = run_sweep(cells, args.out, backend=args.backend, workers=args.workers,
                         address=args.address, eval_episodes=args.eval_episodes,
                         echo=lambda line: print(line, flush=True))
    except SweepError as exc:
        print(f"numddpg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; finished cells are kept, run the same command to go on",
              file=sys.stderr)
        return 130
    failed = sum(len(r["failures"]) for r in rows)
    print(f"summary: {Path(args.out) / SUMMARY_MD}, {Path(args.out) / SUMMARY_CSV}")
    if failed:
        print(f"{failed} of {sum(r['seeds'] for r in rows)} cells failed; run the same command "
              "again to retry them (finished cells are skipped)", file=sys.stderr)
        return 1
    return 0
