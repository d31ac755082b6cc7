"""The ``numddpg`` command: parses arguments and calls the library, nothing more.

    numddpg train [--env Pendulum-v1] [--total-steps N] [--seed S] [--hidden 64 64] [--<hp> V]
                  [--preset auto|none|ENV|FILE.json] [--out RUN_DIR | --runs-root DIR] [--quiet]
                  [--checkpoint-every N] [--no-checkpoint-buffer]
    numddpg train --resume RUN_DIR [--total-steps N] [--quiet]
    numddpg eval RUN_DIR [--episodes N] [--render human|rgb_array] [--video DIR]
    numddpg export RUN_DIR policy.npz
    numddpg gradcheck ...
    numddpg sweep --env E [E ...] --seed S [S ...] [--hidden "64 64" ...] [--<hp> V [V ...]]
                  [--backend local|ray] [--workers N] [--address ADDR] --out DIR
    numddpg tune --env E --algo A --trials N --seeds S [S ...] --total-steps T [--space FILE]
                 [--sampler tpe|random] [--pruner median|none] [--storage URL] [--study NAME]
                 [--workers W] --out DIR
    numddpg plot RUN_DIR_OR_SWEEP_DIR... [-x COL] [-y COL] [--smooth K] [-o curves.png]
"""
import argparse
import sys

from .argtypes import (env_id, negative_values, positive_whole_number, strict_bool,
                       whole_number)

DEFAULT_ENV = "Pendulum-v1"
TRAIN_HELP = ("train an agent on a gymnasium env; with no options, DDPG on Pendulum-v1 with its "
              "preset (20k steps, well under a minute) and a comparison with a random policy")
EVAL_HELP = "evaluate a run's saved policy: mean +- std of the deterministic return"
EXPORT_HELP = ("write a run's policy as a NumPy-only file: numddpg.load_policy(FILE) reads it "
               "without numba or gymnasium (or copy numddpg/files/policy.py and checkpoint.py along)")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

def flag_kwargs(spec):
    """argparse's type/choices/nargs of a hyperparameter's flag, from its kind in the table of
    numddpg.hyperparameters (the constructor then checks the range)."""
    return {"int": {"type": whole_number}, "real": {"type": float},
            "widths": {"type": whole_number, "nargs": "*", "metavar": "N"},   # none: linear
            "bool": {"type": strict_bool}, "choice": {"choices": spec.choices},
            "dtype": {"choices": ("float32", "float64")}}[spec.kind]


def _all_hyperparameters():
    """name: numddpg.hyperparameters.Hyperparameter of every algorithm's hyperparameters."""
    from ..training.algorithms import ALGORITHMS
    table = {}
    for cls in ALGORITHMS.values():
        table.update(cls.hyperparameter_specs())
    return table


def _preset_preview(argv):
    """For `numddpg train --help`: the preset these arguments would apply, as (its name, its
    values), found by reading --env, --algo and --preset out of ``argv`` before argparse runs
    (the help text is built first).  (None, {}) without -h/--help or when no preset applies;
    (why, {}) for a preset file that cannot be read."""
    argv = [str(arg) for arg in argv or ()]
    if not {"-h", "--help"} & set(argv):
        return None, {}

    def last(flag, default):                     # argparse's rule: the last occurrence wins
        value = default
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg[len(flag) + 1:]
        return value

    from ..training.algorithms import ALGORITHMS
    from ..training.envs import split_module
    from ..engine.presets import preset_for

    env, algo = last("--env", DEFAULT_ENV), last("--algo", "ddpg")
    preset = last("--preset", "auto")
    if preset == "none":
        return None, {}
    if preset.endswith(".json"):
        from .hpfile import load_preset
        try:
            return preset, load_preset(preset, algo if algo in ALGORITHMS else "ddpg")
        except (OSError, ValueError) as exc:
            return f"the preset file {preset} cannot be read: {exc}", {}
    name = split_module(env)[1] if preset == "auto" else preset   # auto: the env's own
    values = preset_for(name)
    return (name, values) if values else (None, {})


def _preset_note(name, preview):
    """'; preset NAME: VALUE' for a flag's help when the previewed preset sets ``name``."""
    preset, values = preview
    if name not in values:
        return ""
    value = values[name]
    text = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return f"; preset {preset}: {text}".replace("%", "%%")      # argparse %-formats help


def add_train_arguments(p, argv=None):
    """The train subcommand's flags; ``argv`` (the command line, when known) lets --help show
    the preset's value beside each default (_preset_preview)."""
    from ..training.algorithms import ALGORITHMS
    preview = _preset_preview(argv)
    p.add_argument("--env", default=None, type=env_id,
                   help=f"gymnasium id (default {DEFAULT_ENV}); 'mymodule:MyEnv-v0' imports "
                        "mymodule first (with --resume: the run's own env, to rebuild it)")
    p.add_argument("--env-module", default=None, metavar="MODULE",
                   help="with --resume: import MODULE first, the module that registers the "
                        "run's env (a run directory never makes numddpg import a module)")
    p.add_argument("--algo", default="ddpg", choices=sorted(ALGORITHMS), help="default ddpg")
    p.add_argument("--total-steps", type=positive_whole_number, default=None,
                   help="env steps (default: the preset's budget, else steps_per_epoch x 100"
                        f"{_preset_note('total_steps', preview)})")
    p.add_argument("--preset", default="auto",
                   help="auto (numddpg.presets for this env, the default), none, an env id, or "
                        "a preset file FILE.json (e.g. the best.json of numddpg tune)")
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="exact run directory to create (must not exist)")
    p.add_argument("--runs-root", default="runs", metavar="DIR",
                   help="parent of the timestamped run directory (default runs/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint (bit-identical to a run never "
                        "interrupted), appending to its progress.csv; only --total-steps and "
                        "--quiet may come along")
    p.add_argument("--num-envs", type=positive_whole_number, default=None, metavar="N",
                   help="with --resume of a run trained on a vector env: make N envs (as many "
                        "as it was trained on; a run directory never starts envs by itself)")
    p.add_argument("--vectorization-mode", choices=("sync", "async"), default=None,
                   help="with --num-envs: sync (default) or async (one process per env)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the final comparison with a random policy")
    p.add_argument("--tensorboard-log", default=None, metavar="DIR",
                   help="also write TensorBoard event files under DIR/<tb-log-name>_<N>, "
                        "with Stable-Baselines3's scalar names (numddpg[tensorboard] extra)")
    p.add_argument("--tb-log-name", default=None, metavar="NAME",
                   help="the TensorBoard run folder's name before _<N> (default DDPG or TD3)")
    _add_hyperparameter_arguments(p, preview)
    p.set_defaults(func=run_train)


def _add_hyperparameter_arguments(p, preview):
    """train's hyperparameter flags, one per name of the table (with the preset's value beside
    each default, from ``preview``), and --no-checkpoint-buffer."""
    preset, values = preview
    if values:
        applies = (f"with these arguments the preset {preset} applies: 'preset {preset}: V' "
                   "beside a default is the value it sets; a flag given wins")
    else:                               # preset: None, or why its file cannot be read
        applies = preset or "with these arguments no preset applies: the defaults are used"
    hp = p.add_argument_group("hyperparameters (default: preset, else docs/reference.md §2)",
                              description=applies.replace("%", "%%"))
    hp.add_argument("--hidden", "--hidden-sizes", dest="hidden_sizes", type=whole_number,
                    nargs="*", default=None, metavar="N",
                    help="hidden layer widths, e.g. --hidden 256 256; --hidden alone for none, "
                         "linear networks (default 256 256"
                         f"{_preset_note('hidden_sizes', preview)})")
    hp.add_argument("--seed", type=whole_number, default=0,
                    help="one seed for everything (default 0)")
    for name, spec in _all_hyperparameters().items():
        if name in ("hidden_sizes", "seed"):
            continue
        hp.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                        help=f"{spec.meaning} (default {spec.default}"
                             f"{_preset_note(name, preview)})", **flag_kwargs(spec))
    hp.add_argument("--no-checkpoint-buffer", dest="checkpoint_buffer", action="store_const",
                    const=False, default=None,
                    help="leave the replay buffer out of checkpoints: smaller files, but a "
                         "resumed run restarts from an empty buffer and is not identical to an "
                         "uninterrupted one")


def run_train(args):
    from ..training.algorithms import ALGORITHMS

    table = _all_hyperparameters()
    given = {k: v for k, v in vars(args).items() if k in table and v is not None}
    if args.resume is not None:
        return run_resume(args, given)
    if args.env_module is not None:
        raise UsageError("--env-module goes with --resume (a new run names its module in "
                         "--env mymodule:MyEnv-v0)")
    if args.num_envs is not None or args.vectorization_mode is not None:
        raise UsageError("--num-envs and --vectorization-mode go with --resume (a new vector "
                         "run is made in Python: DDPG(gymnasium.make_vec(...)))")
    cls = ALGORITHMS[args.algo]
    preset = args.preset
    if preset.endswith(".json"):
        from .hpfile import load_preset
        preset = load_preset(preset, args.algo)
    model = cls(args.env or DEFAULT_ENV, preset=preset, run_dir=args.out,
                runs_root=args.runs_root, tensorboard_log=args.tensorboard_log,
                tb_log_name=args.tb_log_name, **given)
    total = args.total_steps
    if total is None:
        total = model.preset_total_steps or model.steps_per_epoch * 100
    print(f"numddpg train: {args.algo} on {model.env_id}, {total:,} steps, seed {model.seed}, "
          f"preset {model.preset_name or 'none'}", flush=True)
    try:
        model.learn(total, progress_bar=not args.quiet)
    except KeyboardInterrupt:
        return _interrupted(model)
    return _report(args, model)


def _interrupted(model):
    where = (f"policy so far saved in {model.run_dir}; continue with: numddpg train --resume "
             f"{model.run_dir}" if model.run_dir is not None else "nothing was written yet")
    print(f"\ninterrupted at step {model.t:,}; {where}", file=sys.stderr)
    return 130


def run_resume(args, given):
    from ..training.algorithms import OffPolicyAlgorithm
    from ..training.envs import make_env

    extra = [f"--{k.replace('_', '-')}" for k in given if k != "seed" or args.seed != 0]
    extra += [flag for flag, used in (("--algo", args.algo != "ddpg"),
                                      ("--preset", args.preset != "auto"),
                                      ("--out", args.out is not None),
                                      ("--runs-root", args.runs_root != "runs")) if used]
    if extra:
        raise UsageError(f"--resume continues {args.resume} with the settings it was started "
                         f"with; leave out {', '.join(extra)}")
    env = make_env(args.env) if args.env is not None else None     # the user's own id
    print(f"numddpg train: resuming {args.resume} from its last checkpoint", flush=True)
    try:
        model = OffPolicyAlgorithm.resume(args.resume, args.total_steps,
                                          progress_bar=not args.quiet, env=env,
                                          env_module=args.env_module,
                                          tensorboard_log=args.tensorboard_log,
                                          tb_log_name=args.tb_log_name,
                                          num_envs=args.num_envs,
                                          vectorization_mode=args.vectorization_mode)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: numddpg train --resume {args.resume}",
              file=sys.stderr)
        return 130
    return _report(args, model)


def _report(args, model):
    import numpy as np

    from ..training.envs import random_policy_returns

    n = max(model.num_test_episodes, 10)
    print(f"run directory: {model.run_dir}")
    try:
        mean, std = model.evaluate(n)
    except KeyboardInterrupt:
        print(f"\ninterrupted during the final evaluation; the run is complete and saved in "
              f"{model.run_dir} (numddpg eval {model.run_dir} evaluates it)", file=sys.stderr)
        return 130
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
    p.add_argument("--episodes", type=whole_number, default=10,
                   help="number of episodes (default 10)")
    p.add_argument("--render", choices=("human", "rgb_array"), default=None,
                   help="gymnasium render mode")
    p.add_argument("--video", default=None, metavar="DIR",
                   help="record every episode as mp4 into DIR (gymnasium RecordVideo; "
                        "needs moviepy)")
    p.add_argument("--env", default=None, type=env_id,
                   help="the env to evaluate on, instead of the one saved with the policy "
                        "('mymodule:MyEnv-v0' imports mymodule first)")
    p.add_argument("--env-module", default=None, metavar="MODULE",
                   help="import MODULE first: the module that registers the saved env (a "
                        "policy file never makes numddpg import a module)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes' resets")
    p.set_defaults(func=run_eval)


def _eval_env(args, policy, env_id, kwargs):
    """The env `numddpg eval` runs: the user's --env (which may name a module), else the one
    the policy file records, rebuilt exactly as trained on (a file never imports a module)."""
    from ..training.envs import make_env, make_from_record, make_recorded_env

    if args.env is not None:
        return make_env(args.env, args.seed, **kwargs)
    recorded = policy.meta.get("env_module")
    recorded = recorded if isinstance(recorded, str) else None
    if "env" in policy.meta:
        return make_from_record(policy.meta["env"], args.seed, args.env_module, recorded,
                                **kwargs)
    return make_recorded_env(env_id, args.seed, args.env_module, recorded,   # (files from
                             **kwargs)                                        # before records)


def run_eval(args):
    import numpy as np

    from ..training.algorithms import load_policy, run_episodes
    from ..training.envs import check_spaces, env_id as id_of, obs_layout

    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    policy = load_policy(args.run_dir)
    env_id = args.env or policy.meta.get("env_id")
    if not env_id:
        raise UsageError(f"the policy in {args.run_dir} names no env; pass --env")
    render_mode = "rgb_array" if args.video else args.render
    if render_mode == "human" and not _has_display():
        raise OSError("--render human needs a screen, and this session has none (DISPLAY and "
                      "WAYLAND_DISPLAY are unset); record videos instead with --video DIR")
    kwargs = {"render_mode": render_mode} if render_mode else {}
    try:
        env = _eval_env(args, policy, env_id, kwargs)
        env_id = id_of(env)                    # what is evaluated, whatever the file says
        if args.video:
            from gymnasium.error import DependencyNotInstalled
            from gymnasium.wrappers import RecordVideo
            try:
                env = RecordVideo(env, args.video, episode_trigger=lambda i: True,
                                  name_prefix=f"{env_id.replace('/', '-')}", disable_logger=True)
            except DependencyNotInstalled as exc:
                raise UsageError(f"--video needs moviepy ({exc}); pip install moviepy") \
                    from None
        dims, layout = check_spaces(env)[:2], obs_layout(env)
        if (policy.obs_dim, policy.act_dim) != dims or policy.layout != layout:
            raise UsageError(
                f"the policy expects obs_dim={policy.obs_dim}, act_dim={policy.act_dim}"
                f"{'' if policy.layout is None else f' ({policy.layout})'}, but {env_id} has "
                f"{dims[0]} and {dims[1]}{'' if layout is None else f' ({layout})'}")
        max_ep_len = policy.meta.get("max_ep_len")
        if max_ep_len is not None and not (type(max_ep_len) is int and max_ep_len > 0):
            raise UsageError(f"{args.run_dir}: the policy's max_ep_len {max_ep_len!r} is not a "
                             "positive integer")
        successes = []
        returns, lengths = run_episodes(policy, env, args.episodes,
                                        np.random.default_rng(args.seed), max_ep_len,
                                        successes)
    finally:
        if "env" in locals():
            env.close()
    print(f"{env_id} ({policy.meta.get('algo', '?')} policy from {args.run_dir}): "
          f"return {returns.mean():.1f} +- {returns.std():.1f} over {args.episodes} episodes "
          f"(deterministic, mean length {lengths.mean():.0f}, seed {args.seed})")
    if successes:                              # a goal env's info["is_success"]
        print(f"success rate {np.mean(successes):.2f} ({int(np.sum(successes))} of "
              f"{len(successes)} episodes)")
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
    from ..training.runfile import export_policy

    path, src = export_policy(args.source, args.out)
    print(f"wrote {path} (the actor of {src}); to act with NumPy alone:\n"
          f"    import numddpg; policy = numddpg.load_policy({str(path)!r}); action = policy(obs)")
    return 0


def _has_display():
    """False on Linux and the BSDs without an X or Wayland display (a window cannot open)."""
    import os
    return not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class UsageError(ValueError):
    """A command line that cannot work as given (exit code 2)."""


USER_INPUT_EXIT, ENVIRONMENT_EXIT, INTERRUPTED_EXIT = 2, 1, 130


def _fail(exc, code=USER_INPUT_EXIT):
    print(f"numddpg: error: {exc}", file=sys.stderr)
    return code


def _exit_code(exc):
    """2 for what the user gave (values, ids, files, sizes), 1 for what failed around them
    (the disk, the memory, an env that misbehaves mid-run, another process, a diverged run)."""
    from ..training.algorithms import NonFiniteError
    from ..training.envs import EnvFailure
    from ..files.rundir import RunDirBusy, RunDirExists

    import errno
    if isinstance(exc, RunDirExists) or getattr(exc, "errno", None) == errno.ENAMETOOLONG:
        return USER_INPUT_EXIT         # (OSErrors, but of the path the user chose)
    if isinstance(exc, (OSError, MemoryError, NonFiniteError, RunDirBusy, EnvFailure)):
        return ENVIRONMENT_EXIT
    return USER_INPUT_EXIT


def _os_error_line(exc):
    """A bare OSError ("[Errno 28] No space left on device") as the path, the reason and what
    to do about it."""
    import errno
    hints = {errno.ENOSPC: "free some space on that disk, or write elsewhere",
             errno.ENAMETOOLONG: "choose a shorter name",
             errno.EACCES: "choose a place you may write to, or change its permissions",
             errno.EPERM: "choose a place you may write to, or change its permissions",
             errno.EROFS: "that file system is read-only: write elsewhere",
             errno.ENOENT: "check the path", errno.ENOTDIR: "check the path",
             errno.EISDIR: "give a file, not a directory",
             getattr(errno, "EDQUOT", -1): "free some space, or write elsewhere"}
    where = "".join(f"{name}: " for name in (exc.filename, exc.filename2) if name)
    hint = hints.get(exc.errno, "check the path and the disk")
    return f"{where}{exc.strerror or exc} ({hint})"


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt             # handled as Ctrl-C is: save, say how to resume, exit


# ---------------------------------------------------------------------------------------------

class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (the command and the problem) and exit code 2."""

    def error(self, message):
        self.exit(USER_INPUT_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv=None):
    parser = OneLineParser(prog="numddpg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP), argv)
    add_eval_arguments(sub.add_parser("eval", help=EVAL_HELP, description=EVAL_HELP))
    add_export_arguments(sub.add_parser("export", help=EXPORT_HELP, description=EXPORT_HELP))
    from . import gradcheck
    gradcheck.add_arguments(sub.add_parser("gradcheck", help=gradcheck.HELP,
                                           description=gradcheck.HELP))
    from . import plot, sweep, tune           # import ray/matplotlib/optuna only when run
    sweep.add_arguments(sub.add_parser("sweep", help=sweep.HELP, description=sweep.HELP))
    tune.add_arguments(sub.add_parser("tune", help=tune.HELP, description=tune.HELP))
    plot.add_arguments(sub.add_parser("plot", help=plot.HELP, description=plot.HELP))
    return parser


def main(argv=None):
    """Run one command; every failure is one line on stderr and an exit code (2: the input,
    1: the environment, 130: interrupted), never a traceback (NUMDDPG_TRACEBACK=1 shows it)."""
    import os
    import signal

    argv = negative_values(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:                  # not the main thread: leave signals alone
        previous = None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\nnumddpg: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception as exc:            # noqa: BLE001 -- the one place that turns errors into lines
        if os.environ.get("NUMDDPG_TRACEBACK"):
            raise
        if isinstance(exc, (ValueError, TypeError, OSError, MemoryError, RuntimeError,
                            FloatingPointError)):
            text = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and text.startswith("[Errno"):
                text = _os_error_line(exc)
            if isinstance(exc, MemoryError):
                text = f"out of memory ({text}); choose smaller sizes"
            return _fail(text, _exit_code(exc))
        return _fail(f"internal error, {type(exc).__name__}: {exc} (please report it; "
                     "NUMDDPG_TRACEBACK=1 shows where)", ENVIRONMENT_EXIT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
