"""Train DDPG + HER on a gymnasium-robotics Fetch task with its preset (bench/RESULTS.md,
"Hindsight experience replay (FetchReach-v4)").

    /work/robotics-venv/bin/python bench/her_fetch.py --env FetchReach-v4 --seed 0 --out DIR

needs the ``robotics`` extra (gymnasium-robotics, mujoco < 3.4).  Writes the run directory
DIR (config.json, progress.csv, policy.npz, checkpoint.npz) with the preset's budget; evaluate
its final policy with ``numddpg eval DIR --episodes 100 --env-module gymnasium_robotics``.
"""
import argparse
import json
import sys

import gymnasium as gym
import gymnasium_robotics

import numddpg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="FetchReach-v4")
    ap.add_argument("--algo", choices=("ddpg", "td3"), default="ddpg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="the run directory to write (must not exist)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=JSON",
                    help="hyperparameters over the preset's, e.g. gradient_steps=50")
    args = ap.parse_args(argv)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    gym.register_envs(gymnasium_robotics)
    cls = numddpg.TD3 if args.algo == "td3" else numddpg.DDPG
    model = cls(args.env, seed=args.seed, chunks=1, blas_threads=1, run_dir=args.out,
                **overrides)
    model.learn(progress_bar=False)                  # the preset's total_steps
    row = model.last_row
    print(f"{args.env} {args.algo} seed {args.seed}: {model.t} steps in {row['Time']:.0f} s, "
          f"last epoch's test success {row['TestSuccessRate']:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
