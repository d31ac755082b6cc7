"""Whole-training throughput: env steps per second of ``DDPG.learn``, updates included.

    python bench/train_speed.py [--steps 3000] [--repeats 3] [--envs Pendulum-v1 HalfCheetah-v5]

Two settings per env, both DDPG with (256, 256) networks, measured after the random phase and
the first updates (so JIT compile and warm-up are excluded; they are printed separately):
  1:1 b256   batch 256, one update after every env step (update_every 1) — the setting of
             shared/REFERENCE.md §4's figures (SB3 136 steps/s, CleanRL ~250 on HalfCheetah)
  ref b100   the reference defaults: batch 100, 50 updates every 50 steps
Each cell is the median over --repeats timed learn() calls; the settings alternate per repeat.
Test episodes are off (num_test_episodes 0) so the figure is training alone.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from numddpg import DDPG  # noqa: E402
from numddpg.threads import auto_blas_threads  # noqa: E402

SETTINGS = {"1:1 b256": dict(batch_size=256, update_every=1),
            "ref b100": dict(batch_size=100, update_every=50)}


def make(env_id, setting, seed=0):
    return DDPG(env_id, preset="none", log=False, seed=seed, hidden_sizes=(256, 256),
                start_steps=1000, update_after=1000, steps_per_epoch=10**9,
                num_test_episodes=0, replay_size=100_000, **SETTINGS[setting])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", nargs="+", default=["Pendulum-v1", "HalfCheetah-v5"])
    ap.add_argument("--steps", type=int, default=3000, help="timed env steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"numddpg training throughput, DDPG (256, 256), {os.cpu_count()} cores, BLAS threads "
          f"{auto_blas_threads((256, 256), 100)} (auto), median of {args.repeats} x "
          f"{args.steps} steps")
    print(f"{'env':18} {'setting':10} {'env steps/s':>11} {'warm-up s':>9}")
    for env_id in args.envs:
        models, warm = {}, {}
        for name in SETTINGS:
            t = time.perf_counter()
            models[name] = make(env_id, name).learn(1500, progress_bar=False)
            warm[name] = time.perf_counter() - t
        sps = {name: [] for name in SETTINGS}
        for _ in range(args.repeats):
            for name, model in models.items():
                t = time.perf_counter()
                model.learn(args.steps, progress_bar=False)
                sps[name].append(args.steps / (time.perf_counter() - t))
        for name in SETTINGS:
            print(f"{env_id:18} {name:10} {np.median(sps[name]):11.0f} {warm[name]:9.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
