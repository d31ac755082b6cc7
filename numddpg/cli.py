"""The ``numddpg`` command: parses arguments and calls the library, nothing more.

    numddpg train [--env Pendulum-v1] [--total-steps N] [--seed S] [--hidden 64 64] [--<hp> V]
                  [--preset auto|none] [--out RUN_DIR | --runs-root DIR] [--quiet]
                  [--checkpoint-every N] [--no-checkpoint-buffer]
    numddpg train --resume RUN_DIR [--total-steps N] [--quiet]
    numddpg eval RUN_DIR [--episodes N] [--render human|rgb_array] [--video DIR]
    numddpg export RUN_DIR policy.npz
    numddpg gradcheck ...
    numddpg sweep --env E [E ...] --seed S [S ...] [--hidden "64 64" ...] [--<hp> V [V ...]]
                  [--backend local|ray] [--workers N] [--address ADDR] --out DIR
    numddpg plot RUN_DIR_OR_SWEEP_DIR... [-x COL] [-y COL] [--smooth K] [-o curves.png]
"""
import argparse
import sys

DEFAULT_ENV = "Pendulum-v1"
TRAIN_HELP = ("train an agent on a gymnasium env; with no options, DDPG on Pendulum-v1 with its "
              "preset (20k steps, well under a minute) and a comparison with a random policy")
EVAL_HELP = "evaluate a run's saved policy: mean +- std of the deterministic return"
EXPORT_HELP = ("write a run's policy as a NumPy-only file: numddpg.load_policy(FILE) reads it "
               "without numba or gymnasium (or copy numddpg/policy.py and checkpoint.py along)")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

def _hp_type(default):
    if isinstance(default, bool):
        return lambda s: s.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def _all_hyperparameters():
    from .algorithms import ALGORITHMS
    table = {}
    for cls in ALGORITHMS.values():
        table.update(cls.hyperparameter_table())
    return table


def add_train_arguments(p):
    from .algorithms import ALGORITHMS
    p.add_argument("--env", default=DEFAULT_ENV, help=f"gymnasium id (default {DEFAULT_ENV})")
    p.add_argument("--algo", default="ddpg", choices=sorted(ALGORITHMS), help="default ddpg")
    p.add_argument("--total-steps", type=int, default=None,
                   help="env steps (default: the preset's budget, else steps_per_epoch x 100)")
    p.add_argument("--preset", default="auto",
                   help="auto (numddpg.presets for this env, the default), none, or an env id")
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="exact run directory to create (must not exist)")
    p.add_argument("--runs-root", default="runs", metavar="DIR",
                   help="parent of the timestamped run directory (default runs/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint (bit-identical to a run never "
                        "interrupted), appending to its progress.csv; only --total-steps and "
                        "--quiet may come along")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the final comparison with a random policy")
    hp = p.add_argument_group("hyperparameters (default: preset, else shared/REFERENCE.md)")
    hp.add_argument("--hidden", "--hidden-sizes", dest="hidden_sizes", type=int, nargs="+",
                    default=None, metavar="N", help="hidden layer widths, e.g. --hidden 256 256")
    hp.add_argument("--seed", type=int, default=0, help="one seed for everything (default 0)")
    for name, (default, meaning) in _all_hyperparameters().items():
        if name in ("hidden_sizes", "seed"):
            continue
        kwargs = {"type": _hp_type(default)}
        if name == "noise":
            kwargs["choices"] = ("gaussian", "ou")
        elif name == "dtype":
            kwargs["choices"] = ("float32", "float64")
        elif default is None:
            kwargs["type"] = int
        hp.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                        help=f"{meaning} (default {default})", **kwargs)
    hp.add_argument("--no-checkpoint-buffer", dest="checkpoint_buffer", action="store_const",
                    const=False, default=None,
                    help="leave the replay buffer out of checkpoints: smaller files, but a "
                         "resumed run restarts from an empty buffer and is not identical to an "
                         "uninterrupted one")
    p.set_defaults(func=run_train)


def run_train(args):
    from .algorithms import ALGORITHMS, NonFiniteError
    from .envs import EnvError
    from .logger import RunDirExists

    table = _all_hyperparameters()
    given = {k: v for k, v in vars(args).items() if k in table and v is not None}
    if args.resume is not None:
        return run_resume(args, given)
    cls = ALGORITHMS[args.algo]
    try:
        model = cls(args.env, preset=args.preset, run_dir=args.out, runs_root=args.runs_root,
                    **given)
    except (ValueError, TypeError, RunDirExists) as exc:    # EnvError is a ValueError
        return _fail(exc)
    total = args.total_steps
    if total is None:
        total = model.preset_total_steps or model.steps_per_epoch * 100
    print(f"numddpg train: {args.algo} on {model.env_id}, {total:,} steps, seed {model.seed}, "
          f"preset {model.preset_name or 'none'}", flush=True)
    try:
        model.learn(total, progress_bar=not args.quiet)
    except (EnvError, RunDirExists, NonFiniteError) as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return _interrupted(model)
    return _report(args, model)


def _interrupted(model):
    print(f"\ninterrupted at step {model.t:,}; policy so far saved in {model.run_dir}; "
          f"continue with: numddpg train --resume {model.run_dir}")
    return 130


def run_resume(args, given):
    from .algorithms import NonFiniteError, OffPolicyAlgorithm
    from .checkpoint import CheckpointError
    from .envs import EnvError

    extra = [f"--{k.replace('_', '-')}" for k in given if k != "seed" or args.seed != 0]
    extra += [flag for flag, used in (("--env", args.env != DEFAULT_ENV),
                                      ("--algo", args.algo != "ddpg"),
                                      ("--preset", args.preset != "auto"),
                                      ("--out", args.out is not None),
                                      ("--runs-root", args.runs_root != "runs")) if used]
    if extra:
        return _fail(ValueError(f"--resume continues {args.resume} with the settings it was "
                                f"started with; leave out {', '.join(extra)}"))
    print(f"numddpg train: resuming {args.resume} from its last checkpoint", flush=True)
    try:
        model = OffPolicyAlgorithm.resume(args.resume, args.total_steps,
                                          progress_bar=not args.quiet)
    except (CheckpointError, EnvError, NonFiniteError, OSError, ValueError) as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: numddpg train --resume {args.resume}")
        return 130
    return _report(args, model)


def _report(args, model):
    import numpy as np

    from .envs import random_policy_returns

    n = max(model.num_test_episodes, 10)
    mean, std = model.evaluate(n)
    print(f"run directory: {model.run_dir}")
    print(f"final policy : {mean:9.1f} +- {std:6.1f}  (deterministic, {n} episodes)")
    if not args.no_baseline:
        rand = random_policy_returns(model.test_env, n, np.random.default_rng([model.seed, 1]),
                                     model.max_ep_len)
        verdict = ("learned" if mean > rand.mean() + 2 * rand.std() else
                   "did not clearly beat the random policy")
        print(f"random policy: {rand.mean():9.1f} +- {rand.std():6.1f}  ({n} episodes)")
        print(f"{verdict}: {mean - rand.mean():+.1f} over random "
              f"in {model.elapsed:.1f} s ({model.t / model.elapsed:,.0f} steps/s incl. tests)")
    return 0


# ---------------------------------------------------------------------------------------------
# eval
# ---------------------------------------------------------------------------------------------

def add_eval_arguments(p):
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a policy .npz)")
    p.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    p.add_argument("--render", choices=("human", "rgb_array"), default=None,
                   help="gymnasium render mode")
    p.add_argument("--video", default=None, metavar="DIR",
                   help="record every episode as mp4 into DIR (gymnasium RecordVideo; "
                        "needs moviepy)")
    p.add_argument("--env", default=None, help="override the env id saved with the policy")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes' resets")
    p.set_defaults(func=run_eval)


def run_eval(args):
    import numpy as np

    from .algorithms import load_policy, run_episodes
    from .envs import make_env

    if args.episodes < 1:
        return _fail(ValueError(f"--episodes must be >= 1, got {args.episodes}"))
    try:
        policy = load_policy(args.run_dir)
    except (OSError, ValueError, KeyError) as exc:
        return _fail(exc)
    env_id = args.env or policy.meta.get("env_id")
    if not env_id:
        return _fail(ValueError(f"the policy in {args.run_dir} names no env; pass --env"))
    render_mode = "rgb_array" if args.video else args.render
    try:
        env = make_env(env_id, args.seed, **({"render_mode": render_mode} if render_mode else {}))
        if args.video:
            from gymnasium.error import DependencyNotInstalled
            from gymnasium.wrappers import RecordVideo
            try:
                env = RecordVideo(env, args.video, episode_trigger=lambda i: True,
                                  name_prefix=f"{env_id.replace('/', '-')}", disable_logger=True)
            except DependencyNotInstalled as exc:
                return _fail(ValueError(f"--video needs moviepy ({exc}); pip install moviepy"))
        if (policy.obs_dim, policy.act_dim) != (env.observation_space.shape[0],
                                                env.action_space.shape[0]):
            return _fail(ValueError(
                f"the policy expects obs_dim={policy.obs_dim}, act_dim={policy.act_dim}, but "
                f"{env_id} has {env.observation_space.shape[0]} and {env.action_space.shape[0]}"))
        returns, lengths = run_episodes(policy, env, args.episodes,
                                        np.random.default_rng(args.seed),
                                        policy.meta.get("max_ep_len"))
    except ValueError as exc:
        return _fail(exc)
    finally:
        if "env" in locals():
            env.close()
    print(f"{env_id} ({policy.meta.get('algo', '?')} policy from {args.run_dir}): "
          f"return {returns.mean():.1f} +- {returns.std():.1f} over {args.episodes} episodes "
          f"(deterministic, mean length {lengths.mean():.0f}, seed {args.seed})")
    if args.video:
        print(f"videos in {args.video}")
    return 0


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------

def add_export_arguments(p):
    p.add_argument("source", metavar="RUN_DIR",
                   help="a run directory (its policy.npz, else checkpoint.npz), or a policy, "
                        "agent or run checkpoint file")
    p.add_argument("out", metavar="OUT", help="the policy file to write, e.g. policy.npz")
    p.set_defaults(func=run_export)


def run_export(args):
    from .checkpoint import CheckpointError, export_policy

    try:
        path, src = export_policy(args.source, args.out)
    except (CheckpointError, OSError) as exc:
        return _fail(exc)
    print(f"wrote {path} (the actor of {src}); to act with NumPy alone:\n"
          f"    import numddpg; policy = numddpg.load_policy({str(path)!r}); action = policy(obs)")
    return 0


def _fail(exc):
    print(f"numddpg: error: {exc}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(prog="numddpg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP))
    add_eval_arguments(sub.add_parser("eval", help=EVAL_HELP, description=EVAL_HELP))
    add_export_arguments(sub.add_parser("export", help=EXPORT_HELP, description=EXPORT_HELP))
    try:
        from . import gradcheck
    except ModuleNotFoundError as exc:        # gradcheck.py is not in this checkout yet
        if exc.name != f"{__package__}.gradcheck":
            raise
        gradcheck = None
    if gradcheck is not None:
        gradcheck.add_arguments(sub.add_parser("gradcheck", help=gradcheck.HELP,
                                               description=gradcheck.HELP))
    from . import plot, sweep                 # sweep/plot import ray/matplotlib only when run
    sweep.add_arguments(sub.add_parser("sweep", help=sweep.HELP, description=sweep.HELP))
    plot.add_arguments(sub.add_parser("plot", help=plot.HELP, description=plot.HELP))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
