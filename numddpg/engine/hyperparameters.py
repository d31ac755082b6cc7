"""The hyperparameters of DDPG and TD3: one table of each one's default, kind, range and meaning.

The table is the one home of these facts: the constructor checks values with ``check``
(numddpg.algorithms), the command line makes its flags from it (numddpg.cli), preset and
search-space files and sweep axes are checked against it (numddpg.hpfile, numddpg.sweep), and a
loaded run's record is checked with it.  Defaults are Spinning Up's (docs/reference.md §2); a
preset (numddpg.presets) replaces some of them per environment.

    kind     a value is                                   normalised to
    int      a whole number (1e6 too; not a bool or str)  int
    real     a finite real number (not a bool or str)     float
    widths   a sequence of positive integers (empty: no   tuple of int
             hidden layer, a linear network)
    choice   one of ``choices``                           str
    bool     True or False                                bool
    dtype    "float32"/"float64" (or np.float32/float64)  its name

``optional``: None is allowed too, and means what ``meaning`` says.  ``sb3``: the name of the
same quantity in Stable-Baselines3, where there is one (numddpg.sb3 maps the others).
"""
import math
from typing import NamedTuple

import numpy as np

from ..checks import (MAX_CHUNKS, check_bool, check_int, check_positive, check_real,
                      check_unit_interval, check_widths)
from ..kernels.her import STRATEGIES
from ..kernels.normalize import EPS as NORM_EPS
from .noise import NOISE_TYPES

MAX_SAMPLED_GOALS = 1000        # HER's k beyond this relabels all but 0.1 % of rows
MAX_CRITICS = 10                # (REDQ's ensemble; each number of critics compiles its kernel)
MAX_N_STEPS = 1000              # n-step returns: rewards summed per minibatch row, at most


class Hyperparameter(NamedTuple):
    default: object
    kind: str
    meaning: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    optional: bool = False
    choices: tuple = ()
    sb3: str = None
    high_open: bool = False


def _int(default, meaning, low, high=None, optional=False, sb3=None):
    return Hyperparameter(default, "int", meaning, low, math.inf if high is None else high,
                          optional=optional, sb3=sb3)


def _real(default, meaning, low=0.0, high=math.inf, low_open=False, sb3=None, high_open=False):
    return Hyperparameter(default, "real", meaning, low, high, low_open, sb3=sb3,
                          high_open=high_open)


def _n_critics(default):
    return _int(default, "critics, each regressed to y = r + gamma (1 - d) min_k Q_k_targ(s', "
                "a') (SB3's policy_kwargs n_critics); the actor follows critic 1", 1, MAX_CRITICS)


DDPG_TABLE = {
    "hidden_sizes": Hyperparameter((256, 256), "widths", "hidden layer widths of the actor, and "
                                   "of the critics unless qf_hidden_sizes is given (ReLU; none: "
                                   "linear networks)"),
    "qf_hidden_sizes": Hyperparameter(None, "widths", "hidden layer widths of the critics "
                                      "(None: hidden_sizes)", optional=True),
    "n_critics": _n_critics(1),
    "replay_size": _int(1_000_000, "replay buffer capacity (float32 ring arrays)", 1,
                        sb3="buffer_size"),
    "her": Hyperparameter("none", "choice", "hindsight experience replay (a goal env's Dict "
                          "observation; docs/math.md section 10): 'none', or the goals "
                          "transitions are relabelled with, 'future', 'final' or 'episode'",
                          choices=("none", *STRATEGIES)),
    "her_k": _int(4, "HER's n_sampled_goal k: a drawn transition is relabelled with "
                  "probability k / (k + 1)", 1, MAX_SAMPLED_GOALS),
    "gamma": _real(0.99, "discount factor", 0.0, 1.0, sb3="gamma"),
    "n_steps": _int(1, "n-step returns: a target sums the rewards of up to n steps of the "
                    "episode and bootstraps from the state after them (1: one-step targets; "
                    "docs/math.md section 12)", 1, MAX_N_STEPS, sb3="n_steps"),
    "polyak": _real(0.995, "target averaging weight rho: targ <- rho targ + (1 - rho) online",
                    0.0, 1.0),
    "pi_lr": _real(1e-3, "actor Adam learning rate", low_open=True),
    "q_lr": _real(1e-3, "critic Adam learning rate", low_open=True),
    "weight_decay": _real(0.0, "Adam's weight decay lambda of actor and critics (0: none; "
                          "decoupled_weight_decay says which kind)"),
    "decoupled_weight_decay": Hyperparameter(True, "bool", "True: AdamW's decay p <- p - lr "
                                             "lambda p before each step (torch.optim.AdamW); "
                                             "False: the L2 term g <- g + lambda p "
                                             "(torch.optim.Adam's weight_decay)"),
    "adam_beta1": _real(0.9, "Adam's first-moment decay beta1 (torch.optim.Adam's betas[0])",
                        0.0, 1.0, high_open=True),
    "adam_beta2": _real(0.999, "Adam's second-moment decay beta2 (torch.optim.Adam's betas[1])",
                        0.0, 1.0, high_open=True),
    "adam_eps": _real(1e-8, "Adam's epsilon, added to sqrt(v_hat) (torch.optim.Adam's eps)",
                      low_open=True),
    "action_l2": _real(0.0, "weight of the actor's action penalty: J += action_l2 * the mean of "
                       "u^2 over rows and action dims, u = the actor's tanh output in [-1, 1] "
                       "(the HER papers: 1.0; docs/math.md section 5)"),
    "clip_return": Hyperparameter(False, "bool", "clip the TD target y to [-1 / (1 - gamma), "
                                  "0], the returns' range when every reward lies in [-1, 0], "
                                  "as a goal env's (the HER papers' clip_return)"),
    "batch_size": _int(100, "minibatch rows, sampled uniformly with replacement", 1,
                       sb3="batch_size"),
    "start_steps": _int(10_000, "env steps of uniform random actions before using the actor",
                        0),
    "update_after": _int(1000, "env steps before the first update", 0),
    "update_every": _int(50, "env steps between training rounds (SB3's train_freq)", 1,
                         sb3="train_freq"),
    "gradient_steps": _int(None, "updates per training round (None: update_every, the ratio "
                           "1:1; the update-to-data ratio is gradient_steps / update_every)",
                           1, optional=True, sb3="gradient_steps"),
    "act_noise": _real(0.1, "Gaussian exploration std, in units of the action half-range"),
    "noise": Hyperparameter("gaussian", "choice", "exploration noise: 'gaussian' (act_noise), "
                            "'ou' (ou_*) or 'none'", choices=NOISE_TYPES),
    "ou_theta": _real(0.15, "Ornstein-Uhlenbeck mean reversion rate (noise='ou')"),
    "ou_sigma": _real(0.2, "Ornstein-Uhlenbeck scale, in half-ranges (noise='ou')"),
    "ou_dt": _real(1e-2, "Ornstein-Uhlenbeck time step (noise='ou')"),
    "random_eps": _real(0.0, "probability that a behaviour action after start_steps is uniform "
                        "in the action box instead of the noisy actor's (the HER papers: 0.3)",
                        0.0, 1.0),
    "normalize_obs": Hyperparameter(False, "bool", "normalize observations by running mean "
                                    "and std, as SB3's VecNormalize (numddpg.normalize)"),
    "obs_clip": _real(10.0, "clip of normalized observations, in stds (normalize_obs)",
                      low_open=True),
    "obs_norm_eps": _real(NORM_EPS, "added to the running variance under the normalization's "
                          "square root (normalize_obs): an entry's scale is at most "
                          "1/sqrt(eps) (SB3's VecNormalize 1e-8; the HER papers' std floor "
                          "0.01 is 1e-4)", 0.0, 1.0, low_open=True),
    "num_test_episodes": _int(10, "deterministic test episodes at the end of every epoch", 0),
    "max_ep_len": _int(1000, "episode length cap (truncation: bootstrapped, not terminal)", 1),
    "steps_per_epoch": _int(4000, "env steps per epoch (one progress.csv row each)", 1),
    "seed": _int(None, "seeds networks, minibatches, actions, noise and env resets (None: "
                 "random)", 0, optional=True, sb3="seed"),
    "dtype": Hyperparameter("float32", "dtype", "float32 (training) or float64 (gradient "
                            "checks) networks"),
    "chunks": _int(None, "row chunks of each minibatch, run on as many threads (None: measured "
                   "once per CPU and shape and cached, numddpg.threads; env NUMDDPG_CHUNKS); "
                   "fixes the summation order, so a run keeps its value", 1, MAX_CHUNKS,
                   optional=True),
    "blas_threads": _int(None, "BLAS threads of the kernels' products (None: 1, the cores are "
                         "shared through chunks; env NUMDDPG_BLAS_THREADS)", 1, optional=True),
    "checkpoint_every": _int(None, "env steps between checkpoints of the run (at the next "
                             "episode end; None: every epoch, 0: never)", 0, optional=True),
    "checkpoint_buffer": Hyperparameter(True, "bool", "put the replay buffer in checkpoints "
                                        "(False: smaller files, but a resumed run restarts from "
                                        "an empty buffer, so it is not identical to an "
                                        "uninterrupted one)"),
}

# Adam's options: every agent takes them (keywords of its constructor, keys of its config)
ADAM_KEYS = ("weight_decay", "decoupled_weight_decay", "adam_beta1", "adam_beta2", "adam_eps")
# The losses' settings beyond the reference's (the HER papers' action penalty and clip of the
# target): every agent takes them too
LOSS_KEYS = ("action_l2", "clip_return")

TD3_EXTRA = {
    "target_noise": _real(0.2, "target policy smoothing noise std, in action half-ranges",
                          sb3="target_policy_noise"),
    "noise_clip": _real(0.5, "clip of the smoothing noise, in action half-ranges",
                        sb3="target_noise_clip"),
    "policy_delay": _int(2, "critic updates per actor (and target) update", 1,
                         sb3="policy_delay"),
}
TD3_TABLE = {**DDPG_TABLE, **TD3_EXTRA, "n_critics": _n_critics(2)}   # (in DDPG's place)
TABLES = {"ddpg": DDPG_TABLE, "td3": TD3_TABLE}      # by the algorithm's name in files

_UNIT = (0.0, 1.0)


def whole_as_json(value, spec):
    """True unless a whole-number hyperparameter (an int, or a list of widths) read from a JSON
    file holds something other than JSON integers: ``check`` takes 8.0 for 8, but a file that
    says 8.0 would not be written back as it was read, so files must say 8."""
    if spec.kind == "int":
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if spec.kind == "widths" and isinstance(value, list):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return True


def check(name, value, spec):
    """``value`` as hyperparameter ``name`` takes it, or ValueError naming both and what is
    allowed (numddpg.checks' strict checks: nothing is coerced but whole floats to ints)."""
    if value is None and spec.optional:
        return None
    if spec.kind == "int":
        return check_int(name, value, int(spec.low),
                         None if spec.high == math.inf else int(spec.high))
    if spec.kind == "real":
        if (spec.low, spec.high, spec.low_open, spec.high_open) == (*_UNIT, False, False):
            return check_unit_interval(name, value)
        if (spec.low, spec.high, spec.low_open) == (0.0, math.inf, True):
            return check_positive(name, value)
        return check_real(name, value, spec.low, spec.high, spec.low_open,
                          high_open=spec.high_open)
    if spec.kind == "widths":
        return check_widths(name, value)
    if spec.kind == "bool":
        return check_bool(name, value)
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            raise ValueError(f"{name} must be one of {spec.choices}, got {value!r}")
        return value
    if spec.kind == "dtype":
        if not any(value is t or (isinstance(value, (str, np.dtype))
                                  and value == np.dtype(t).name)
                   for t in (np.float32, np.float64)):
            raise ValueError(f"{name} must be float32 or float64 ('float32', np.float32), got "
                             f"{value!r}")
        return np.dtype(value).name
    raise AssertionError(f"unknown kind {spec.kind!r} of {name}")


def describe(spec):
    """What a value must be, in words (for messages about files and flags)."""
    words = {"int": "an integer" + (f" >= {int(spec.low)}" if spec.low > -math.inf else ""),
             "real": f"a number in {'(' if spec.low_open else '['}{spec.low}, {spec.high}"
                     f"{')' if spec.high_open else ']'}",
             "widths": "a list of positive integer widths, e.g. [64, 64] ([] for none)",
             "bool": "true or false", "choice": f"one of {list(spec.choices)}",
             "dtype": "'float32' or 'float64'"}[spec.kind]
    return words + (" or null" if spec.optional else "")
