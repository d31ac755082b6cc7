"""Train DDPG + HER on a gymnasium-robotics Fetch task with its preset, and evaluate the final
policy (bench/RESULTS.md, "Hindsight experience replay (FetchReach-v4)"; bench/fetch_table.py
makes that section's table from what this writes).

    /work/robotics-venv/bin/python bench/her_fetch.py --env FetchReach-v4 --seed 0 --out DIR
    /work/robotics-venv/bin/python bench/her_fetch.py --final-eval DIR
    /work/robotics-venv/bin/python bench/her_fetch.py --env FetchPush-v4 --still 300
    /work/robotics-venv/bin/python bench/her_fetch.py --goal-heights RUN

needs the ``robotics`` extra (gymnasium-robotics, mujoco < 3.4).  Training writes the run
directory DIR (config.json, progress.csv, policy.npz, checkpoint.npz) with the preset's budget,
then DIR/final_eval.json: the final policy over 100 deterministic episodes, exactly as
``numddpg eval DIR --episodes 100 --env-module gymnasium_robotics`` runs them (the env rebuilt
from the policy's record, resets seeded from a generator of seed 0), each episode's return and
success (the last step's ``info["is_success"]``).  ``--final-eval DIR`` writes only that file;
``--still N`` prints how often a policy that never moves succeeds (chance) over N episodes;
``--goal-heights RUN`` how relabelled goals' heights normalize in RUN's checkpointed buffer.
"""
import argparse
import json
import sys

import gymnasium as gym
import gymnasium_robotics
import numpy as np

import numddpg
from numddpg.files.checkpoint import CheckpointError
from numddpg.training.acting import reset_seed, run_episodes
from numddpg.training.algorithms import load_policy
from numddpg.training.envs import make_from_record

FINAL_EVAL_FILE = "final_eval.json"
EPISODES, EVAL_SEED = 100, 0            # numddpg eval's --episodes 100 and default --seed 0


def final_eval(run, episodes=EPISODES, seed=EVAL_SEED):
    """Write run/final_eval.json (module docstring) and return its record."""
    policy = load_policy(run)
    env = make_from_record(policy.meta["env"], seed, "gymnasium_robotics",
                           policy.meta.get("env_module"))
    successes = []
    try:
        returns, _ = run_episodes(policy, env, episodes, np.random.default_rng(seed),
                                  policy.meta.get("max_ep_len"), successes)
    finally:
        env.close()
    record = {"episodes": episodes, "seed": seed,
              "command": f"numddpg eval RUN --episodes {episodes} --seed {seed} "
                         "--env-module gymnasium_robotics",
              "success_rate": float(np.mean(successes)), "return_mean": float(np.mean(returns)),
              "return_std": float(np.std(returns)), "returns": returns.tolist(),
              "successes": successes}
    with open(f"{run}/{FINAL_EVAL_FILE}", "w") as f:
        f.write(record_text(record))
    return record


def still_success(env_id, episodes=EPISODES, seed=EVAL_SEED):
    """The success rate of a policy that never moves (zero actions) over ``episodes``
    episodes, reset from the same seeds as the final evaluation's (its first ``episodes``):
    the rate at which the goal is met by chance."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    successes = []
    try:
        for _ in range(episodes):
            env.reset(seed=reset_seed(rng))
            while True:
                _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape,
                                                                      env.action_space.dtype))
                if terminated or truncated:
                    break
            successes.append(float(info["is_success"]))
    finally:
        env.close()
    return float(np.mean(successes))


def goal_heights(run, epsilons=(1e-8, 1e-4)):
    """How a relabelled goal's last coordinate (the height) looks to the networks: the achieved
    goal of every stored s' normalized with the desired goal's statistics, as relabelling
    writes it (docs/math.md section 10), for each eps of the normalization.  Reads RUN's
    checkpoint (its buffer and statistics); returns {eps: (scale, median |x|, share clipped)}."""
    from numddpg.training.runstate import read_run_checkpoint, saved_layout
    meta, arrays = read_run_checkpoint(f"{run}/checkpoint.npz")
    (achieved, _), (desired, d_stop) = saved_layout(meta["spaces"], run).goal_spans()
    clip = meta["hyperparameters"]["obs_clip"]
    z, zd = achieved + (d_stop - desired) - 1, d_stop - 1         # the height columns
    heights = arrays["buffer.obs2"][:, z].astype(np.float64)     # the rows stored
    out = {}
    for eps in epsilons:
        scale = 1.0 / np.sqrt(arrays["norm.var"][zd] + eps)
        x = np.clip((heights - arrays["norm.mean"][zd]) * scale, -clip, clip)
        out[eps] = (float(scale), float(np.median(np.abs(x))), float(np.mean(np.abs(x) >= clip)))
    return out


def record_text(record):
    """The record as JSON, one key per line (the per-episode lists on one line each)."""
    return "{\n " + ",\n ".join(f"{json.dumps(k)}: {json.dumps(v)}"
                                  for k, v in record.items()) + "\n}\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="FetchReach-v4")
    ap.add_argument("--algo", choices=("ddpg", "td3"), default="ddpg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="the run directory to write (must not exist)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=JSON",
                    help="hyperparameters over the preset's, e.g. gradient_steps=50")
    ap.add_argument("--final-eval", metavar="RUN", help="only evaluate the run RUN's policy")
    ap.add_argument("--still", type=int, metavar="EPISODES",
                    help="only print the success rate of zero actions on --env (chance)")
    ap.add_argument("--goal-heights", metavar="RUN",
                    help="only print how relabelled goals' heights normalize in RUN's buffer")
    args = ap.parse_args(argv)
    gym.register_envs(gymnasium_robotics)
    if args.goal_heights:
        for eps, (scale, median, clipped) in goal_heights(args.goal_heights).items():
            print(f"obs_norm_eps {eps:g}: the desired goal's height scaled by {scale:,.1f}; "
                  f"relabelled heights |x| median {median:.3f}, clipped {clipped:.1%}")
        return
    if args.still:
        print(f"{args.env}: zero actions succeed in {still_success(args.env, args.still):.3f} "
              f"of {args.still} episodes (resets seeded from {EVAL_SEED})")
        return
    if args.final_eval:
        run = args.final_eval
    else:
        if not args.out:
            ap.error("--out is required to train")
        overrides = {}
        for item in args.set:
            name, _, value = item.partition("=")
            try:
                overrides[name] = json.loads(value)
            except ValueError:
                ap.error(f"--set {item!r}: write NAME=JSON, e.g. gradient_steps=50")
        cls = numddpg.TD3 if args.algo == "td3" else numddpg.DDPG
        model = cls(args.env, seed=args.seed, chunks=1, blas_threads=1, run_dir=args.out,
                    **overrides)
        model.learn(progress_bar=False)                  # the preset's total_steps
        row = model.last_row
        print(f"{args.env} {args.algo} seed {args.seed}: {model.t} steps in {row['Time']:.0f} s, "
              f"last epoch's test success {row['TestSuccessRate']:.2f}", file=sys.stderr)
        run = args.out
    record = final_eval(run)
    print(f"{run}: success rate {record['success_rate']:.2f} over {record['episodes']} episodes, "
          f"return {record['return_mean']:.1f} +- {record['return_std']:.1f}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except (CheckpointError, OSError, TypeError, ValueError) as e:  # a missing run, a bad --set
        sys.exit(f"her_fetch.py: {e}")
