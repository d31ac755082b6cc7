"""Learning benchmarks: train env x algo x seeds with the presets, evaluate, plot, tabulate.

    python bench/learning.py --env HalfCheetah-v5 --algo ddpg td3 --seeds 0 1 [--steps N]
                             [--parallel 2] [--out runs/learning]
                             [--set pi_lr=1e-4 --set gamma=0.99 ...] [--tag NAME]

Each cell is an ordinary `numddpg train` run directory (<out>/<env>_<algo>[_<tag>]_s<seed>;
--set overrides preset values, and a variant gets its own --tag), run as a subprocess,
`--parallel` at a time with one BLAS thread each (one run per core).  A cell whose
directory already holds a finished run is not run again (a killed one is resumed).  Then every
final policy gets a deterministic evaluation (10 episodes, no noise, fresh reset seeds: the
issue's protocol; and, for a tighter estimate of the same policy, 100 episodes), the
table of mean +- std over seeds is printed and written to <out>/results.md, and the learning
curves (AverageTestEpRet against TotalEnvInteracts, mean +- std over seeds) to
<out>/<env>.png when matplotlib is installed.

    python bench/learning.py --campaign [--out DIR] [--parallel 2] [--nice 19] [--only ENV]
    python bench/learning.py --twin ENV ALGO SEED --out DIR

runs the learning campaign (bench/RESULTS.md, "Learning campaign"): every cell of CAMPAIGN
with its seeds, under the presets as they stand, two runs at a time under `nice`, each
checkpointing its replay buffer every CAMPAIGN_CHECKPOINT_EVERY steps so that a run killed at
any point resumes exactly; after a run ends, its final policy's 100 deterministic episodes go to
<run>/final_eval.json.  Run it again after an interruption: it goes on from where it stopped.
Run it from a clone at a fixed commit (config.json records the commit and the CPU), and copy
the runs' logs into the repository with --collect DEST (bench/learning_table.py reads those).
--twin retrains a finished cell with a SIGKILL past half its budget and a resume, and compares
the two bit for bit.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from numddpg.training.algorithms import ALGORITHMS, HYPERPARAMETERS, TD3  # noqa: E402
from numddpg.files.policy import load_policy  # noqa: E402
from numddpg.engine.presets import preset_for  # noqa: E402

# Issue targets (mean over seeds) and the published figures they come from (docs/reference.md §3).
TARGETS = {
    ("HalfCheetah-v5", "ddpg"): (10_000, "Spinning Up ~10,100; CleanRL 10,374"),
    ("HalfCheetah-v5", "td3"): (9_600, "TD3 paper 9,637"),
    ("Hopper-v5", "td3"): (3_000, "CleanRL 3,135"),
    ("Walker2d-v5", "td3"): (4_000, "CleanRL 4,058"),
    ("MountainCarContinuous-v0", "ddpg"): (90, "SB3 zoo 93.5"),
    ("LunarLanderContinuous-v3", "ddpg"): (200, "SB3 zoo 230"),
    ("Pendulum-v1", "ddpg"): (-200, "SB3 zoo -152"),
}


# The learning campaign (issue: learning results that hold over seeds), in the order it runs:
# the short cells first, so that every session adds finished cells to the table.
CAMPAIGN = [
    ("Pendulum-v1", "ddpg", range(10)),
    ("Pendulum-v1", "td3", range(10)),
    ("LunarLanderContinuous-v3", "ddpg", range(10)),
    ("HalfCheetah-v5", "td3", range(5)),
    ("Hopper-v5", "td3", range(5)),
    ("Walker2d-v5", "td3", range(5)),
    ("HalfCheetah-v5", "ddpg", range(5)),
    ("Ant-v5", "td3", range(5)),
]
# Env steps between a campaign run's checkpoints (each with the replay buffer: HalfCheetah's is
# ~170 MB, Ant's ~900 MB), for budgets above it; shorter runs checkpoint every epoch.
CAMPAIGN_CHECKPOINT_EVERY = 50_000
FINAL_EVAL_FILE = "final_eval.json"
# What --collect copies into the repository: the logs the table is computed from (and the
# final policy, ~300 kB, so that anyone can evaluate it again).
COLLECTED = ("config.json", "progress.csv", FINAL_EVAL_FILE, "policy.npz")


def cell_dir(out, env, algo, seed, tag=""):
    return Path(out) / f"{env}_{algo}{'_' + tag if tag else ''}_s{seed}"


def variant_cells(out, env, tag=""):
    """Every finished or running cell of ``env`` with this tag (any algo, any seed)."""
    pattern = re.compile(rf"{re.escape(env)}_(ddpg|td3){'_' + re.escape(tag) if tag else ''}_s\d+")
    return sorted(p for p in Path(out).iterdir() if p.is_dir() and pattern.fullmatch(p.name))


def parse_sets(pairs):
    """["pi_lr=1e-4", "hidden_sizes=64 64"] -> the `numddpg train` flags that set them."""
    flags = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"--set takes KEY=VALUE (a hyperparameter name, e.g. pi_lr=1e-4), "
                             f"got {pair!r}")
        known = set(HYPERPARAMETERS) | set(TD3.EXTRA_HYPERPARAMETERS)
        if key not in known:
            raise SystemExit(f"--set: unknown hyperparameter {key!r}; known: "
                             f"{', '.join(sorted(known))}")
        flags += ["--" + key.replace("_", "-"), *value.split()]
    return flags


# Hyperparameters that say how a run is executed, not what it learns: never compared.
HOW_RUN = {"seed", "blas_threads", "checkpoint_every", "checkpoint_buffer"}


def _canon(value):
    """A config.json value, a preset value or a --set string as a comparable tuple:
    "256 256", [256, 256] and (256, 256) all give (256.0, 256.0); "1e-3" and 0.001 give (0.001,)."""
    items = value.split() if isinstance(value, str) else (
        list(value) if isinstance(value, (list, tuple)) else [value])
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            out.append(str(item))
    return tuple(out)


def expected_hyperparameters(env, algo, sets):
    """What a new cell of (env, algo) would be trained with: the algorithm's defaults, then the
    env's preset, then the --set pairs (already validated by parse_sets)."""
    hp = {k: v for k, (v, _) in ALGORITHMS[algo].hyperparameter_table().items() if k not in HOW_RUN}
    hp.update({k: v for k, v in preset_for(env).items() if k in hp})
    for pair in sets:
        key, _, value = pair.partition("=")
        if key in hp:
            hp[key] = value
    return hp


def config_mismatch(run, expected):
    """["batch_size: run 256, now 100", ...] where the run's config.json differs from
    ``expected`` (empty when they agree or the cell has no config yet)."""
    try:
        got = json.loads((run / "config.json").read_text())["hyperparameters"]
    except (OSError, KeyError, ValueError):
        return []
    return [f"{k}: run {got.get(k)!r}, now {v!r}" for k, v in expected.items()
            if _canon(got.get(k)) != _canon(v)]


def check_cells(cells, sets):
    """Refuse to reuse, resume or report a cell trained with other hyperparameters than this
    command asks for (a preset changed since, or a variant run without its --tag): it would
    silently stand in the table for a configuration it never ran."""
    stale = []
    for run, (env, algo, _seed) in cells:
        diff = config_mismatch(run, expected_hyperparameters(env, algo, sets))
        if diff:
            stale.append(f"  {run}: " + "; ".join(diff))
    if stale:
        raise SystemExit("these cells were trained with other hyperparameters than this command "
                         "gives (preset plus --set):\n" + "\n".join(stale) + "\nmove them "
                         "away, give their values with --set and a --tag, or use another --out")


def finished(run):
    """A run is finished when its progress.csv reached the total_steps in its config.json."""
    try:
        total = json.loads((run / "config.json").read_text())["total_steps"]
        rows = (run / "progress.csv").read_text().strip().splitlines()[1:]
        return bool(rows) and int(rows[-1].split(",")[1]) >= total
    except (OSError, KeyError, ValueError, IndexError):
        return False


def train_command(run, env, algo, seed, steps, extra=(), buffer=False):
    """`numddpg train` for a new cell (``extra``: more flags, e.g. from --set), or `--resume`
    for one a kill interrupted.  ``buffer``: checkpoints hold the replay buffer (an exact
    resume) instead of leaving it out (a resume then starts from an empty buffer)."""
    cmd = [sys.executable, "-m", "numddpg", "train", "--quiet"]
    if (run / "checkpoint.npz").exists():
        cmd += ["--resume", str(run)]
    else:
        cmd += ["--no-baseline", "--blas-threads", "1", "--env", env, "--algo", algo,
                "--seed", str(seed), "--out", str(run), *extra]
        if not buffer:
            cmd.append("--no-checkpoint-buffer")
    if steps:
        cmd += ["--total-steps", str(steps)]
    return cmd


def run_cells(cells, parallel, nice=0):
    """Run (run_dir, commands) pairs, ``parallel`` cells at a time, each cell's commands one
    after the other (the next only if the last exited 0); logs go to <run_dir>.log.  ``nice``:
    the runs' niceness, so that interactive work on the same cores comes first."""
    pending, running = [(run, [c] if isinstance(c[0], str) else list(c)) for run, c in cells], []
    # One core per run, as the cells in bench/learning/ were trained (one chunk is the serial
    # update, bit-identical to theirs, so they resume exactly).
    env = dict(os.environ, NUMDDPG_BLAS_THREADS="1", NUMDDPG_CHUNKS="1", OMP_NUM_THREADS="1")

    def start(run, cmds):
        log = open(f"{run}.log", "a")
        proc = subprocess.Popen(cmds[0], stdout=log, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)
        running.append((run, cmds[1:], proc, log))

    while pending or running:
        while pending and len(running) < parallel:
            start(*pending.pop(0))
            print(f"started {running[-1][0].name}", flush=True)
        time.sleep(2)
        for item in list(running):
            run, rest, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode == 0 and rest:
                    start(run, rest)
                else:
                    print(f"{run.name}: exit {proc.returncode}", flush=True)


def evaluate(run, episodes=100, seed=12345):
    """Deterministic returns (a list) of the run's final policy over ``episodes`` episodes,
    reset with seeds seed, seed + 1, ...: the first 10 are the 10-episode evaluation."""
    import gymnasium as gym
    policy = load_policy(run / "policy.npz")
    env_id = json.loads((run / "config.json").read_text())["env_id"]
    env = gym.make(env_id)
    rets = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs))
            ret += float(r)
            done = term or trunc
        rets.append(ret)
    return rets


def write_final_eval(run, episodes=100, seed=12345):
    """<run>/final_eval.json: the final policy's deterministic returns over ``episodes``
    episodes (reset seeds seed, seed + 1, ...), so that the table needs no evaluation."""
    rets = evaluate(run, episodes, seed)
    (run / FINAL_EVAL_FILE).write_text(json.dumps(
        {"episodes": episodes, "reset_seeds": [seed, seed + episodes - 1], "returns": rets,
         "mean": float(np.mean(rets)), "std": float(np.std(rets))}, indent=1) + "\n")


def campaign(out, parallel, nice, only=()):
    """Run (or go on with) every unfinished cell of CAMPAIGN under the current presets."""
    cells = [(env, algo, s) for env, algo, seeds in CAMPAIGN for s in seeds
             if not only or env in only]
    check_cells([(cell_dir(out, *c), c) for c in cells], [])
    todo = []
    for env, algo, seed in cells:
        run = cell_dir(out, env, algo, seed)
        if (run / FINAL_EVAL_FILE).exists():
            continue
        evaluate_cmd = [sys.executable, os.path.abspath(__file__), "--final-eval", str(run)]
        if finished(run):
            todo.append((run, [evaluate_cmd]))
            continue
        total = preset_for(env)["total_steps"]
        extra = (["--checkpoint-every", str(CAMPAIGN_CHECKPOINT_EVERY)]
                 if total > CAMPAIGN_CHECKPOINT_EVERY else [])
        todo.append((run, [train_command(run, env, algo, seed, None, extra, buffer=True),
                           evaluate_cmd]))
    print(f"campaign: {len(todo)} of {len(cells)} cells to run or evaluate", flush=True)
    run_cells(todo, parallel, nice)


def twin_check(out, env, algo, seed):
    """Train a twin of a finished campaign cell in <out>/twin/, SIGKILL it once a checkpoint
    past half its budget exists, resume it to the end, and compare: every array of the final
    checkpoints (agent, optimizer moments, generators, replay buffer) and every progress.csv
    column but the clock's must be identical.  Returns 0 when they are."""
    import signal
    cell = cell_dir(out, env, algo, seed)
    twin = cell_dir(Path(out) / "twin", env, algo, seed)
    if not finished(cell):
        raise SystemExit(f"{cell} is not a finished campaign run")
    if twin.exists():
        raise SystemExit(f"{twin} exists: remove it first")
    twin.parent.mkdir(parents=True, exist_ok=True)
    total = preset_for(env)["total_steps"]
    extra = (["--checkpoint-every", str(CAMPAIGN_CHECKPOINT_EVERY)]
             if total > CAMPAIGN_CHECKPOINT_EVERY else [])
    env_vars = dict(os.environ, NUMDDPG_BLAS_THREADS="1", NUMDDPG_CHUNKS="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(train_command(twin, env, algo, seed, None, extra, buffer=True),
                            env=env_vars, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    while proc.poll() is None:
        time.sleep(0.2)
        try:
            import numddpg.files.checkpoint as ck
            t = ck.read_meta(twin / "checkpoint.npz")["loop"]["t"]
        except Exception:                      # not written yet, or being replaced
            continue
        if t >= total // 2:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = t
    if killed_at is None:
        raise SystemExit("the twin finished before it could be killed: nothing was checked")
    subprocess.run(train_command(twin, env, algo, seed, None), env=env_vars, check=True,
                   stdout=subprocess.DEVNULL)
    a, b = np.load(cell / "checkpoint.npz"), np.load(twin / "checkpoint.npz")
    differ = sorted(k for k in set(a.files) | set(b.files) if k != "__meta__" and (
        k not in a.files or k not in b.files or not np.array_equal(a[k], b[k])))

    def meta(npz):                             # the record, but the clock (loop.elapsed)
        record = json.loads(bytes(npz["__meta__"]).decode())
        record["loop"].pop("elapsed", None)
        return record
    if meta(a) != meta(b):
        differ.append("__meta__")

    def rows(run):
        lines = (run / "progress.csv").read_text().splitlines()
        return [line.rsplit(",", 2)[0] for line in lines]       # without SPS and Time
    same_rows = rows(cell) == rows(twin)
    print(f"twin of {cell.name}: killed after its checkpoint at step {killed_at:,}, resumed; "
          f"{len(a.files)} checkpoint arrays (with the record, less its clock), {len(differ)} "
          "differ"
          f"{' (' + ', '.join(differ[:5]) + ')' if differ else ''}; progress.csv rows "
          f"{'identical' if same_rows else 'DIFFER'}")
    return 0 if not differ and same_rows else 1


def collect(out, dest):
    """Copy every campaign run's logs (COLLECTED) from ``out`` to ``dest``, for committing."""
    import shutil
    dest = Path(dest)
    for env, algo, seeds in CAMPAIGN:
        for seed in seeds:
            run = cell_dir(out, env, algo, seed)
            if not (run / "progress.csv").exists():
                continue
            (dest / run.name).mkdir(parents=True, exist_ok=True)
            for name in COLLECTED:
                if (run / name).exists():
                    shutil.copy2(run / name, dest / run.name / name)
            print(f"{run.name}: {steps_done(run):,} steps"
                  f"{', evaluated' if (run / FINAL_EVAL_FILE).exists() else ''}")


def steps_done(run):
    rows = (run / "progress.csv").read_text().strip().splitlines()[1:]
    return int(rows[-1].split(",")[1]) if rows else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", nargs="+")
    ap.add_argument("--campaign", action="store_true", help="run the learning campaign")
    ap.add_argument("--only", nargs="+", default=(), metavar="ENV",
                    help="with --campaign: only these envs' cells")
    ap.add_argument("--nice", type=int, default=19, help="with --campaign: the runs' niceness")
    ap.add_argument("--collect", metavar="DEST",
                    help="copy the campaign runs' logs from --out to DEST, and stop")
    ap.add_argument("--twin", nargs=3, metavar=("ENV", "ALGO", "SEED"),
                    help="kill and resume a twin of a finished campaign cell in --out/twin, "
                         "and compare it with the cell bit for bit")
    ap.add_argument("--final-eval", metavar="RUN", help=argparse.SUPPRESS)
    ap.add_argument("--algo", nargs="+", default=["ddpg"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=None, help="default: the preset's budget")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--out", default="runs/learning")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a preset hyperparameter (repeatable), e.g. pi_lr=1e-4")
    ap.add_argument("--tag", default="", help="names the variant's cells: <env>_<algo>_<tag>_s<seed>")
    ap.add_argument("--report-only", action="store_true",
                    help="evaluate and tabulate the runs already there (finished or not)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.final_eval:
        return write_final_eval(Path(args.final_eval))
    if args.collect:
        return collect(out, args.collect)
    if args.twin:
        return twin_check(out, args.twin[0], args.twin[1], int(args.twin[2]))
    out.mkdir(parents=True, exist_ok=True)
    if args.campaign:
        return campaign(out, args.parallel, args.nice, args.only)
    if not args.env:
        ap.error("--env is required (or --campaign)")
    extra = parse_sets(args.set)
    if extra and not args.tag:
        raise SystemExit("--set changes the preset: name the variant with --tag, so that its "
                         "runs do not mix with the preset's cells")
    grid = [(e, a, s) for e in args.env for a in args.algo for s in args.seeds]
    check_cells([(cell_dir(out, *c, args.tag), c) for c in grid], args.set)
    if not args.report_only:
        todo = [(cell_dir(out, *c, args.tag), c) for c in grid
                if not finished(cell_dir(out, *c, args.tag))]
        run_cells([(run, train_command(run, *c, args.steps, extra)) for run, c in todo],
                  args.parallel)
    lines = ["| env | algo | seeds | env steps | final deterministic return (10 ep.) | "
             "same, 100 ep. | target | published |", "|---|---|---|---|---|---|---|---|"]
    for env in args.env:
        for algo in args.algo:
            runs = [cell_dir(out, env, algo, s, args.tag) for s in args.seeds]
            runs = [r for r in runs if (r / "policy.npz").exists()]
            if not runs:
                continue
            episodes = [evaluate(r) for r in runs]
            rets = [float(np.mean(e[:10])) for e in episodes]
            rets100 = [float(np.mean(e)) for e in episodes]
            steps = min(steps_done(r) for r in runs)
            target, published = TARGETS.get((env, algo), (None, ""))
            label = f"{algo} ({args.tag}: {' '.join(args.set)})" if args.tag else algo
            lines.append(f"| {env} | {label} | {len(runs)} | {steps:,} | "
                         f"{np.mean(rets):,.1f} +- {np.std(rets):,.1f} "
                         f"({', '.join(f'{r:,.0f}' for r in rets)}) | "
                         f"{np.mean(rets100):,.1f} +- {np.std(rets100):,.1f} | "
                         f"{'' if target is None else f'>= {target:,}'} | {published} |")
        try:
            subprocess.run([sys.executable, "-m", "numddpg", "plot",
                            # a variant is drawn next to the preset's runs of the same env
                            *[str(p) for p in variant_cells(out, env, args.tag)
                              + (variant_cells(out, env) if args.tag else [])],
                            "-o", str(out / f"{env}{'_' + args.tag if args.tag else ''}.png")],
                           check=True)
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            print(f"no plot for {env}: {exc}")
    table = "\n".join(lines)
    print(table)
    (out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
