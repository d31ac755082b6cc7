"""How each seed's final policy moves: a look behind a cell's spread of returns.

    python bench/gait.py --env HalfCheetah-v5 --algo td3       # every finished seed of the cell

For the planar MuJoCo runners (HalfCheetah, Hopper, Walker2d: qpos = [x, z, pitch, joints...])
it loads each finished seed's committed final policy (bench/learning/campaign/<env>_<algo>_s<seed>/
policy.npz, numddpg.load_policy: NumPy alone) and runs one deterministic episode from reset
seed 12345 (the first of the final evaluation's seeds), then prints the return, the mean
forward velocity (qvel[0], m/s), the mean and largest |pitch| of the torso (radians), and the
share of steps with |pitch| > pi/2 (running on its back: HalfCheetah's known local optimum).
Needs the ``mujoco`` extra.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
PLANAR = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")


def episode(policy, env, seed=12345):
    """(return, forward velocities, pitches) of one deterministic episode."""
    obs, _ = env.reset(seed=seed)
    total, vel, pitch = 0.0, [], []
    while True:
        obs, r, term, trunc, _ = env.step(policy(obs))
        total += float(r)
        vel.append(float(env.unwrapped.data.qvel[0]))
        pitch.append(float(env.unwrapped.data.qpos[2]))
        if term or trunc:
            return total, np.array(vel), np.array(pitch)


def main(argv=None):
    import gymnasium as gym
    from numddpg import load_policy
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", choices=PLANAR, required=True)
    ap.add_argument("--algo", choices=("ddpg", "td3"), required=True)
    ap.add_argument("--runs", type=Path, default=HERE / "learning" / "campaign")
    args = ap.parse_args(argv)
    runs = sorted(args.runs.glob(f"{args.env}_{args.algo}_s*"),
                  key=lambda p: int(p.name.rsplit("_s", 1)[1]))
    runs = [r for r in runs if (r / "policy.npz").is_file() and (r / "final_eval.json").is_file()]
    if not runs:
        print(f"no finished run of {args.env} {args.algo} under {args.runs} (a finished run "
              "holds policy.npz and final_eval.json)")
        return 1
    print(f"{args.env} {args.algo}: one deterministic episode per seed (reset seed 12345)")
    print("seed  return    velocity  mean |pitch|  max |pitch|  on its back")
    for run in runs:
        env = gym.make(args.env)
        ret, vel, pitch = episode(load_policy(run), env)
        env.close()
        print(f"{run.name.rsplit('_', 1)[1]:>4}  {ret:8,.0f}  {vel.mean():8.2f}  "
              f"{np.abs(pitch).mean():12.2f}  {np.abs(pitch).max():11.2f}  "
              f"{np.mean(np.abs(pitch) > np.pi / 2):11.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
