"""Learning curves: one line per configuration, the mean over its seeds with a +- std band.

    numddpg plot RUN_DIR_OR_SWEEP_DIR... [-x TotalEnvInteracts] [-y AverageTestEpRet]
                 [--smooth K] [-o curves.png]

Every directory holding a progress.csv (found recursively under the paths given) is a run; runs
whose config.json agrees on everything but the seed are one configuration.  Failed sweep cells
(an error.json) are left out.  One panel per environment, since returns of different
environments do not share a scale.

For each run, y is first smoothed by a centred moving average over ``K`` epochs (K=1: none;
windows are cut at the ends and NaN epochs skipped, so the curve keeps its length and is not
pulled towards zero at its ends -- Spinning Up's plot does the same).  The runs of a
configuration are then put on the union of their x values by linear interpolation, never
extrapolated: at each x the line is the mean, and the band mean +- std (ddof=0), of the runs
that reached that x.  Needs matplotlib (extra ``numddpg[plot]``).
"""
import json
import sys
import textwrap
from pathlib import Path

HELP = "plot learning curves of runs or sweeps: mean +- std over seeds, one line per config"
PLOT_MISSING = "numddpg plot needs matplotlib: pip install 'numddpg[plot]'"

# Keys of config.json["hyperparameters"] that say how a run was executed, not what it learned.
NOT_CONFIGURATION = ("seed", "blas_threads", "chunks", "checkpoint_every", "checkpoint_buffer")


class PlotError(ValueError):
    """Nothing to plot, or a column that the runs do not have."""


# ---------------------------------------------------------------------------------------------
# Runs and configurations
# ---------------------------------------------------------------------------------------------

def find_runs(paths):
    """Run directories (with a progress.csv) at or under ``paths``, in the order of the paths
    and sorted under each, failed sweep cells left out.  Returns (runs, skipped) where skipped
    lists (directory, reason)."""
    runs, skipped = {}, []
    for path in map(Path, paths):
        if not path.exists():
            raise PlotError(f"{path} does not exist")
        for csv_path in ([path] if path.is_file() else sorted(path.rglob("progress.csv"))):
            run = csv_path.parent
            if csv_path.name != "progress.csv":
                raise PlotError(f"{path} is a file; give run or sweep directories")
            if (run / "error.json").exists():
                skipped.append((run, "failed (error.json)"))
            elif not (run / "config.json").exists():
                skipped.append((run, "no config.json"))
            else:
                runs[run.resolve()] = run
    return list(runs.values()), skipped


def load_run(run_dir):
    """(config, progress) of a run: config.json as a dict, progress.csv as column -> float
    array."""
    import numpy as np

    from ..files.rundir import read_progress

    with open(Path(run_dir) / "config.json") as f:
        config = json.load(f)
    progress = {k: np.asarray(v, dtype=np.float64)
                for k, v in read_progress(Path(run_dir) / "progress.csv").items()}
    return config, progress


def configuration(config):
    """What defines a configuration: config.json without the seed, versions and execution
    details (NOT_CONFIGURATION), as a flat dict."""
    hp = {k: v for k, v in config.get("hyperparameters", {}).items()
          if k not in NOT_CONFIGURATION}
    return {"env": config.get("env_id"), "algo": config.get("algo"),
            "preset": config.get("preset"), "total_steps": config.get("total_steps"), **hp}


def group_runs(runs):
    """[(configuration dict, [(run_dir, progress), ...]), ...] in order of first appearance."""
    groups = {}
    for run in runs:
        config, progress = load_run(run)
        conf = configuration(config)
        key = json.dumps(conf, sort_keys=True)
        groups.setdefault(key, (conf, []))[1].append((run, progress))
    return list(groups.values())


def labels(confs):
    """A legend label per configuration: algo plus every setting that differs between them.

    A setting only some algorithms have (a TD3 option) counts as differing only if it differs
    among the configurations that have it, and is shown only on those."""
    keys = []
    for conf in confs:
        keys += [k for k in conf if k not in keys and k not in ("env", "algo")]
    differ = [k for k in keys if len({json.dumps(c[k], sort_keys=True) for c in confs
                                      if c.get(k) is not None}) > 1]
    out = []
    for conf in confs:
        parts = [str(conf.get("algo"))]
        parts += [f"{k}={_short(conf[k])}" for k in differ if conf.get(k) is not None]
        out.append(" ".join(parts))
    return out


def _short(v):
    if isinstance(v, list):
        return "x".join(str(x) for x in v)
    return str(v)


# ---------------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------------

def smooth(y, k):
    """Centred moving average of window ``k`` over the finite values of ``y``; the window is cut
    at the ends (each point averages the values that exist).  k=1 returns y unchanged."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    if k is None or k <= 1:
        return y.copy()
    ok = np.isfinite(y)
    # point i averages y[i - (k-1)//2 : i + k//2 + 1] (clipped to the curve), via cumulative sums
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(len(y))
    lo = np.maximum(i - (int(k) - 1) // 2, 0)
    hi = np.minimum(i + int(k) // 2 + 1, len(y))
    total, count = csum[hi] - csum[lo], ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def aggregate(curves):
    """Mean and std (ddof=0) over runs of curves [(x, y), ...] on the union of their x values.

    Each run is interpolated linearly onto the union grid inside its own x range (never
    extrapolated); NaN points of a run are dropped first.  Returns (x, mean, std, n) where n[i]
    is the number of runs that cover x[i].
    """
    import numpy as np

    cleaned = []
    for x, y in curves:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            order = np.argsort(x[ok], kind="stable")
            cleaned.append((x[ok][order], y[ok][order]))
    if not cleaned:
        return (np.zeros(0),) * 4
    grid = np.unique(np.concatenate([x for x, _ in cleaned]))
    values = np.full((len(cleaned), len(grid)), np.nan)
    for i, (x, y) in enumerate(cleaned):
        inside = (grid >= x[0]) & (grid <= x[-1])
        values[i, inside] = np.interp(grid[inside], x, y)
    n = np.isfinite(values).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.nansum(values, axis=0) / n
        std = np.sqrt(np.nansum((values - mean) ** 2, axis=0) / n)
    return grid, mean, std, n


# ---------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------

def plot_runs(paths, x="TotalEnvInteracts", y="AverageTestEpRet", smooth_k=1, out="curves.png",
              title=None, echo=None):
    """Draw the learning curves of the runs at or under ``paths`` into ``out`` (any format
    matplotlib writes: .png, .pdf, .svg).  Returns a dict: figure, path, panels (env ->
    [(label, number of runs)]).  Raises PlotError when there is nothing to plot."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import EngFormatter
    except ImportError:
        raise PlotError(PLOT_MISSING) from None

    if smooth_k is None or int(smooth_k) != smooth_k or smooth_k < 1:
        raise PlotError(f"--smooth must be a positive integer window, got {smooth_k!r}")
    envs, panels, below = _panels(_groups_with(paths, (x, y), echo))
    legend_rows = max(sum(n.count("\n") + 1 for n, _ in lines) for lines in panels.values())
    height = 4.4 + (0.22 * legend_rows + 0.3 if below else 0.0)

    fig = Figure(figsize=(6.4 * len(envs), height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(envs), squeeze=False)[0]
    for ax, env in zip(axes, envs):
        for label, members in panels[env]:
            grid, mean, std, _ = aggregate([(p[x], smooth(p[y], smooth_k)) for _, p in members])
            (line,) = ax.plot(grid, mean, label=label, linewidth=1.8)
            if len(members) > 1:
                ax.fill_between(grid, mean - std, mean + std, color=line.get_color(),
                                alpha=0.2, linewidth=0)
        ax.set_title(str(env) if title is None else f"{title}: {env}")
        ax.set_xlabel(x)
        ax.set_ylabel(y + (f" (moving average of {smooth_k})" if smooth_k > 1 else ""))
        ax.grid(True, alpha=0.3)
        if below:
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.13),
                      borderaxespad=0.0, frameon=False)
        else:
            ax.legend(fontsize="small", loc="best")
        if x == "TotalEnvInteracts":
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))    # 5k, 200k, 1M env steps
    panels = {env: [(n, len(m)) for n, m in lines] for env, lines in panels.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return {"figure": fig, "path": out, "panels": panels}


def _groups_with(paths, columns, echo):
    """group_runs of the runs at or under ``paths`` (those skipped told to ``echo``), after
    checking that each has ``columns``; PlotError when there is none, or a column is missing."""
    runs, skipped = find_runs(paths)
    for run, why in skipped:
        if echo:
            echo(f"  skipped {run}: {why}")
    if not runs:
        raise PlotError(f"no run directories (with progress.csv and config.json) under "
                        f"{', '.join(map(str, paths))}")
    groups = group_runs(runs)
    for _, members in groups:
        for run, progress in members:
            missing = [c for c in columns if c not in progress]
            if missing:
                raise PlotError(f"{run}/progress.csv has no column {missing[0]!r}; its columns "
                                f"are {', '.join(progress) or '(none: no epochs yet)'}")
    return groups


def _panels(groups):
    """(envs, {env: [(label, runs)]}, below): one panel per env with its lines' labels and
    runs; ``below`` when a label is long: then they go under the panel, wrapped to its width,
    and the figure grows to hold them."""
    envs = list(dict.fromkeys(conf["env"] for conf, _ in groups))
    panels, below = {}, False
    for env in envs:
        members = [m for conf, m in groups if conf["env"] == env]
        names = labels([conf for conf, _ in groups if conf["env"] == env])
        names = [f"{n} ({len(m)} seed{'s' if len(m) > 1 else ''})"
                 for n, m in zip(names, members)]
        below |= max(map(len, names)) > 45
        panels[env] = list(zip(names, members))
    if below:
        wrap = lambda text: textwrap.fill(text, 70, subsequent_indent="    ")
        panels = {env: [(wrap(n), m) for n, m in lines] for env, lines in panels.items()}
    return envs, panels, below


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def add_arguments(p):
    """The ``numddpg plot`` options (cli.py registers them)."""
    p.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_SWEEP_DIR",
                   help="run directories, or directories searched recursively for them")
    p.add_argument("-x", default="TotalEnvInteracts", metavar="COLUMN",
                   help="progress.csv column on the x axis (default TotalEnvInteracts)")
    p.add_argument("-y", default="AverageTestEpRet", metavar="COLUMN",
                   help="progress.csv column on the y axis (default AverageTestEpRet)")
    p.add_argument("--smooth", type=int, default=1, metavar="K",
                   help="moving average over K epochs of each run before averaging (default 1: "
                        "none)")
    p.add_argument("-o", "--out", default="curves.png", metavar="FILE",
                   help="output image, .png/.pdf/.svg (default curves.png)")
    p.add_argument("--title", default=None, help="title before each panel's env id")
    p.set_defaults(func=run_command)


def run_command(args):
    try:
        info = plot_runs(args.paths, x=args.x, y=args.y, smooth_k=args.smooth, out=args.out,
                         title=args.title, echo=print)
    except PlotError as exc:
        print(f"numddpg: error: {exc}", file=sys.stderr)
        return 2
    n_lines = sum(len(v) for v in info["panels"].values())
    n_runs = sum(n for v in info["panels"].values() for _, n in v)
    print(f"{info['path']}: {n_lines} configuration{'s' if n_lines != 1 else ''} from "
          f"{n_runs} runs")
    for env, lines in info["panels"].items():
        for label, _ in lines:
            print(f"  {env}: {label}")
    return 0

