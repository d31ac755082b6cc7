"""The Pendulum learning bar: DDPG on Pendulum-v1, 5 seeds x 20,000 env steps.

    python bench/pendulum.py [--seeds 0 1 2 3 4] [--steps 20000] [--episodes 10] [--cold]

Each seed runs in a fresh Python process, timed from outside, so its wall time includes
importing numddpg and Numba's JIT.  The processes share one new, empty Numba cache directory:
the first seed compiles every kernel from scratch (what a first run after installing costs)
and the others load the compiled kernels from the cache (what every later run costs).
--cold gives every seed its own empty cache, so every seed compiles.  The final policy is
evaluated deterministically over --episodes episodes.

Bar (issue "Training on gymnasium"): mean over seeds >= -200 and every seed >= -400
(SB3 zoo's tuned DDPG: -152 +- 94 at 20k steps).  Prints a markdown table for
bench/RESULTS.md; exit status 1 if the bar is missed.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

BAR_MEAN, BAR_EACH = -200.0, -400.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(seed, steps, episodes, preset):
    """One seed, in this process: train, evaluate, print a JSON line."""
    t0 = time.perf_counter()
    sys.path.insert(0, ROOT)
    import numddpg
    from numddpg.kernels.nn import MLP
    import numpy as np
    t_import = time.perf_counter() - t0
    # JIT: the first forward/update compile (or load) every kernel the run uses
    t1 = time.perf_counter()
    warm = numddpg.DDPG("Pendulum-v1", seed=seed, log=False, preset=preset,
                        num_test_episodes=1, steps_per_epoch=10**6)
    warm.buffer.store(np.zeros(3), np.zeros(1), 0.0, np.zeros(3), 0.0)
    warm.agent.update_burst(warm.buffer, warm.batch_size, 1)
    warm.policy.act(np.zeros(3, np.float32))
    MLP([3, 4, 1]).forward(np.zeros((1, 3)))
    t_jit = time.perf_counter() - t1
    t2 = time.perf_counter()
    model = numddpg.DDPG("Pendulum-v1", seed=seed, log=False, preset=preset)
    model.learn(steps, progress_bar=False)
    t_train = time.perf_counter() - t2
    mean, std = model.evaluate(episodes)
    print(json.dumps({"seed": seed, "mean": mean, "std": std, "import_s": t_import,
                      "jit_s": t_jit, "train_s": t_train, "sps": steps / t_train,
                      "hidden": list(model.hidden_sizes), "batch_size": model.batch_size}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--preset", default="auto")
    p.add_argument("--cold", action="store_true", help="an empty Numba cache for every seed")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        return worker(args.worker, args.steps, args.episodes, args.preset)

    results = []
    shared_cache = tempfile.mkdtemp(prefix="numddpg-bench-cache-")
    print(f"Pendulum-v1, {args.steps:,} steps, seeds {args.seeds}, preset {args.preset}, "
          f"{'cold Numba cache for every seed' if args.cold else 'Numba cache new at seed 1'}; {platform.processor() or ''} "
          f"{os.cpu_count()} cores", flush=True)
    for seed in args.seeds:
        env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="numddpg-bench-cache-")
                   if args.cold else shared_cache)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(seed), "--steps",
               str(args.steps), "--episodes", str(args.episodes), "--preset", args.preset]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"seed {seed} failed")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["wall_s"] = wall
        results.append(r)
        print(f"seed {seed}: {r['mean']:8.1f} +- {r['std']:5.1f}   wall {wall:5.1f} s "
              f"(import {r['import_s']:.1f}, JIT {r['jit_s']:.1f}, train {r['train_s']:.1f} s, "
              f"{r['sps']:,.0f} steps/s)", flush=True)

    means = [r["mean"] for r in results]
    overall = sum(means) / len(means)
    ok = overall >= BAR_MEAN and min(means) >= BAR_EACH
    print()
    print("| seed | return (10 eps, mean +- std) | wall s (incl. import + JIT) | JIT s | "
          "train s | train steps/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['seed']} | {r['mean']:.1f} +- {r['std']:.1f} | {r['wall_s']:.1f} | "
              f"{r['jit_s']:.1f} | {r['train_s']:.1f} | {r['sps']:,.0f} |")
    walls = [r["wall_s"] for r in results]
    print(f"| **mean** | **{overall:.1f}** (min seed {min(means):.1f}) | "
          f"{sum(walls) / len(walls):.1f} (max {max(walls):.1f}) | | | |")
    print()
    print(f"bar: mean >= {BAR_MEAN:.0f} and every seed >= {BAR_EACH:.0f}: "
          f"{'PASS' if ok else 'FAIL'} (hidden {results[0]['hidden']}, "
          f"batch {results[0]['batch_size']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
