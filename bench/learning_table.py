"""The learning campaign's table and figures, computed from the committed run logs.

    python bench/learning_table.py            # print the table, rewrite its blocks, draw figures
    python bench/learning_table.py --check    # exit 1 if bench/RESULTS.md or README.md differ
    python bench/learning_table.py --no-plot  # the tables only

Reads bench/learning/campaign/<env>_<algo>_s<seed>/ (config.json, progress.csv and the
final policy's final_eval.json, copied there by `bench/learning.py --collect`) and writes:

- bench/RESULTS.md, between the markers of BLOCKS["results"]: one row per cell (env, algo)
  with its seeds, the TD3 paper's figure per seed (the mean of its last 10 evaluations) as
  mean +- std and as the interquartile mean (IQM) with a 95 % bootstrap interval, the final
  policy over 100 episodes, the training minutes, and the env steps and minutes to first reach
  the threshold; then the published figure and whether the target is met (a miss says
  whether the target lies inside the IQM's interval: a shortfall the seeds cannot tell from
  chance); under the table each seed's figure, and the runs still going.
- README.md, between the markers of BLOCKS["readme"]: a short form of the same table.
- bench/learning/campaign/<env>.png: every cell's mean curve with a band (mean +- std over
  seeds) of the 10-episode evaluations against env steps (needs matplotlib).

Unfinished runs (their progress.csv short of the config's total_steps) are listed apart and
enter no statistic.  The IQM is the mean of the middle half of the seeds' figures (rliable's
definition); its interval comes from resampling the seeds with replacement (a stratified
bootstrap with one task per cell: rliable's method), 20,000 resamples, percentile interval,
a fixed generator seed so that the table is the same every time.
"""
import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CAMPAIGN_DIR = HERE / "learning" / "campaign"
sys.path.insert(0, str(HERE))
from learning import CAMPAIGN, FINAL_EVAL_FILE  # noqa: E402

LAST = 10                      # the TD3 paper's Table 2: the mean of the last 10 evaluations
BOOTSTRAP = 20_000
# (published figure, its source and protocol, the target: ("iqm" | "every", value))
PUBLISHED = {
    ("HalfCheetah-v5", "td3"): (9533, "TD3 paper Table 2 (10 seeds, last 10 evaluations); "
                                      "CleanRL 9,583 +- 126", ("iqm", 9533)),
    ("Hopper-v5", "td3"): (3305, "TD3 paper Table 2; CleanRL 3,135 +- 360", ("iqm", 3305)),
    ("Walker2d-v5", "td3"): (4565, "TD3 paper Table 2; CleanRL 4,058 +- 659", ("iqm", 4565)),
    ("HalfCheetah-v5", "ddpg"): (8577, "TD3 paper's DDPG; CleanRL 10,374 +- 157",
                                 ("iqm", 8577)),
    ("LunarLanderContinuous-v3", "ddpg"): (230, "RL Zoo 230 +- 92 (one run, v2)", ("iqm", 200)),
    ("Pendulum-v1", "ddpg"): (-152, "RL Zoo -152 +- 94", ("every", -200)),
    ("Pendulum-v1", "td3"): (-152, "RL Zoo -152 +- 90", ("every", -200)),
    ("Ant-v5", "td3"): (4185, "TD3 paper Table 2", ("iqm", 4185)),
}
# The return a user waits for (the thresholds).
THRESHOLD = {"HalfCheetah-v5": 5000, "Hopper-v5": 2500, "Walker2d-v5": 3000, "Ant-v5": 3000,
             "LunarLanderContinuous-v3": 200, "Pendulum-v1": -200}
BLOCKS = {
    "results": (ROOT / "bench" / "RESULTS.md", "<!-- learning-table: start -->",
                "<!-- learning-table: end -->"),
    "readme": (ROOT / "README.md", "<!-- learning-summary: start -->",
               "<!-- learning-summary: end -->"),
}


def read_progress(run):
    """progress.csv as column -> float64 array."""
    with open(run / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else math.nan for r in rows])
            for k in (rows[0] if rows else ())}


class Seed:
    """One finished run: its figures."""

    def __init__(self, run, threshold):
        config = json.loads((run / "config.json").read_text())
        self.seed = config["hyperparameters"]["seed"]
        self.total = config["total_steps"]
        self.cpu = config.get("versions", {}).get("cpu", "?")
        self.commit = (config.get("versions", {}).get("commit") or "?")[:7]
        p = read_progress(run)
        self.steps, self.returns, self.time = (p["TotalEnvInteracts"], p["AverageTestEpRet"],
                                               p["Time"])
        self.finished = len(self.steps) > 0 and self.steps[-1] >= self.total
        self.last10 = float(np.mean(self.returns[-LAST:])) if len(self.returns) else math.nan
        self.minutes = float(self.time[-1]) / 60 if len(self.time) else math.nan
        hit = np.flatnonzero(self.returns >= threshold)
        self.reach = ((int(self.steps[hit[0]]), float(self.time[hit[0]]) / 60) if len(hit)
                      else None)
        final = run / FINAL_EVAL_FILE
        self.final100 = (json.loads(final.read_text())["mean"] if final.exists() else math.nan)


def iqm(x):
    """Interquartile mean, as rliable computes it (scipy.stats.trim_mean(x, 0.25)): sort, drop
    int(n / 4) values at each end, average the rest (5 seeds: the middle 3; 10: the middle 6)."""
    x = np.sort(np.asarray(x, np.float64))
    k = int(0.25 * len(x))
    return float(np.mean(x[k:len(x) - k]))


def iqm_interval(x, reps=BOOTSTRAP, seed=0):
    """95 % percentile bootstrap interval of the IQM, resampling the seeds with replacement."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    samples = np.sort(x[rng.integers(0, len(x), size=(reps, len(x)))], axis=1)
    k = int(0.25 * len(x))
    stats = samples[:, k:len(x) - k].mean(axis=1)           # iqm() of every resample
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def cells(root=CAMPAIGN_DIR):
    """[(env, algo, finished Seeds, unfinished [(seed, steps)])] in CAMPAIGN's order."""
    out = []
    for env, algo, seeds in CAMPAIGN:
        done, running = [], []
        for s in seeds:
            run = root / f"{env}_{algo}_s{s}"
            if not (run / "progress.csv").exists():
                continue
            seed = Seed(run, THRESHOLD[env])
            (done if seed.finished else running).append(
                seed if seed.finished else (s, int(seed.steps[-1]) if len(seed.steps) else 0))
        out.append((env, algo, done, running))
    return out


def _dur(minutes):
    """A wall-clock duration: seconds under a minute, else minutes."""
    if minutes is None or math.isnan(minutes):
        return "–"
    return f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:,.0f} min"


def _num(x, digits=0):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def verdict(env, algo, seeds, planned):
    """'met', 'missed by N %' or 'n of m seeds' for a cell."""
    kind, target = PUBLISHED[(env, algo)][2]
    if len(seeds) < planned:
        return f"{len(seeds)} of {planned} seeds"
    if kind == "every":
        worst = min(s.final100 for s in seeds)
        return "met" if worst >= target else f"missed: worst seed {worst:,.0f}"
    figures = [s.last10 for s in seeds]
    value = iqm(figures)
    if value >= target:
        return "met"
    lo, hi = iqm_interval(figures)
    inside = " (the target lies inside the 95 % interval)" if lo <= target <= hi else ""
    return f"missed by {100 * (target - value) / abs(target):.0f} %{inside}"


def results_table(data):
    planned = {(env, algo): len(seeds) for env, algo, seeds in CAMPAIGN}
    lines = ["| env | algo | seeds | last 10 evaluations: mean ± std | IQM [95 % CI] | "
             "final policy, 100 ep. | time per run (median) | reached threshold: steps (time) | "
             "published | target |", "|---|---|---|---|---|---|---|---|---|---|"]
    notes, unfinished = [], []
    for env, algo, seeds, running in data:
        if running:
            unfinished.append(f"{env} {algo}: running " + ", ".join(f"s{s} at {n:,} steps"
                                                                    for s, n in running))
        if not seeds:
            continue
        last = np.array([s.last10 for s in seeds])
        lo, hi = iqm_interval(last)
        reached = [s.reach for s in seeds if s.reach]
        reach = (f"{len(reached)}/{len(seeds)}: median {_num(np.median([r[0] for r in reached]))}"
                 f" ({_dur(np.median([r[1] for r in reached]))})" if reached else
                 f"0/{len(seeds)}")
        pub, source, (kind, target) = PUBLISHED[(env, algo)]
        notes.append(f"{env} {algo}, each seed's last 10 evaluations: " + ", ".join(
            f"s{s.seed} {_num(s.last10)}" for s in seeds))
        lines.append(
            f"| {env} | {algo.upper()} | {len(seeds)} ({', '.join(str(s.seed) for s in seeds)}) "
            f"| {_num(last.mean())} ± {_num(last.std())} | {_num(iqm(last))} "
            f"[{_num(lo)}, {_num(hi)}] | {_num(np.mean([s.final100 for s in seeds]))} "
            f"(worst {_num(min(s.final100 for s in seeds))}) | "
            f"{_dur(np.median([s.minutes for s in seeds]))} | {reach} (≥ {THRESHOLD[env]:,}) "
            f"| {source} | {'IQM' if kind == 'iqm' else 'every seed'} ≥ {target:,}: "
            f"{verdict(env, algo, seeds, planned[(env, algo)])} |")
    notes += unfinished
    machines = sorted({(s.cpu, s.commit) for _, _, seeds, _ in data for s in seeds})
    notes.append("runs made on " + "; ".join(f"{cpu} at commit {c}" for cpu, c in machines)
                 if machines else "no finished run yet")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def readme_table(data):
    lines = ["| env | algo | seeds | IQM of the last 10 evaluations [95 % CI] | published |",
             "|---|---|---|---|---|"]
    for env, algo, seeds, _ in data:
        if seeds:
            last = [s.last10 for s in seeds]
            lo, hi = iqm_interval(last)
            lines.append(f"| {env} | {algo.upper()} | {len(seeds)} | {_num(iqm(last))} "
                         f"[{_num(lo)}, {_num(hi)}] | {PUBLISHED[(env, algo)][1]} |")
    return "\n".join(lines) + "\n"


def replace_block(text, start, end, body):
    """``text`` with what lies between the marker lines ``start`` and ``end`` set to body."""
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + "\n" + body + text[j:]


def plot(data, out_dir=CAMPAIGN_DIR):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    for env in dict.fromkeys(env for env, *_ in data):
        fig, ax = plt.subplots(figsize=(7, 4))
        drawn = False
        for e, algo, seeds, _ in data:
            if e != env or not seeds:
                continue
            n = min(len(s.returns) for s in seeds)
            steps = seeds[0].steps[:n]
            curves = np.stack([s.returns[:n] for s in seeds])
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(steps, mean, label=f"{algo.upper()} ({len(seeds)} seeds)")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
            drawn = True
        if drawn:
            ax.axhline(THRESHOLD[env], color="grey", lw=0.8, ls=":")
            ax.set(title=f"{env}: 10-episode deterministic evaluations (mean ± std over seeds)",
                   xlabel="env steps", ylabel="return")
            ax.title.set_fontsize(9)
            ax.legend()
            fig.tight_layout()
            fig.savefig(out_dir / f"{env}.png", dpi=100)
        plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the blocks in bench/RESULTS.md and README.md are stale")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    data = cells()
    bodies = {"results": results_table(data), "readme": readme_table(data)}
    stale = []
    for name, (path, start, end) in BLOCKS.items():
        text = path.read_text()
        new = replace_block(text, start, end, bodies[name])
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    print(bodies["results"])
    if args.check:
        if stale:
            print(f"stale: {', '.join(stale)}: run python bench/learning_table.py")
        return 1 if stale else 0
    if not args.no_plot:
        plot(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
