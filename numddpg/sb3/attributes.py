"""What an SB3-layer model's file holds beside the native model, and SB3's ``save(exclude=...,
include=...)`` on it.

The file is the native model's checkpoint (networks, Adam states, generators, counters, the
replay buffer, the hyperparameters: numddpg.training.runstate) with its "sb3" section (the
native model's extra_records), JSON:

    "config"         how the model was made beyond the hyperparameters:
                     handle_timeout_termination, optimize_memory_usage
    "attributes"     SB3's attributes of plain data, as SB3 saves them (SAVED): verbose,
                     stats_window_size, num_timesteps, _episode_num, ep_info_buffer,
                     ep_success_buffer
    "loop"           the episodes in progress, {"obs": (n_envs, obs_dim), "ep_len", "ep_ret":
                     (n_envs,)} as lists: SB3's ``_last_obs``, which ``load(env=...,
                     force_reset=False)`` continues from
    "user"           attributes named in ``include`` that numddpg does not keep itself: plain
                     data only (None, bools, numbers, strings, lists and dicts of them), never
                     a pickle
    "learning_rate"  a learning-rate schedule as data (numddpg.sb3.schedules)

``exclude`` leaves out attributes of SAVED (a loaded model then has their defaults),
``_last_obs`` (the loop's episodes) and ``replay_buffer`` (the file then holds no buffer);
``include`` wins over ``exclude``, as in SB3.  The hyperparameters (ARGUMENTS) build the model
and cannot be left out; SB3's other attributes (env, policy, logger, ...) are objects numddpg
never writes.  ``tensorboard_log`` is never saved: a file never chooses where numddpg writes.
A file's record is checked before it is used (CheckpointError naming the field).
"""
import math

import numpy as np

from ..files.checkpoint import CheckpointError, is_int, is_number

SAVED = ("verbose", "stats_window_size", "num_timesteps", "_episode_num", "ep_info_buffer",
         "ep_success_buffer")
LOOP = ("_last_obs", "_last_original_obs", "_last_episode_starts")   # one choice: all or none
# SB3's constructor arguments: the file's hyperparameters and config, which build the model
ARGUMENTS = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma",
             "train_freq", "gradient_steps", "action_noise", "replay_buffer_class",
             "replay_buffer_kwargs", "optimize_memory_usage", "n_steps", "policy_kwargs",
             "seed", "policy_delay", "target_policy_noise", "target_noise_clip")
BUFFER = "replay_buffer"
SECTIONS = ("config", "attributes", "loop", "user")     # the "sb3" section's, beside schedules
# the arguments whose change on load() makes a new model (numddpg.sb3.model.load)
REBUILD = ("buffer_size", "learning_starts", "batch_size", "tau", "gamma",
           "train_freq", "gradient_steps", "optimize_memory_usage", "policy_delay",
           "target_policy_noise", "target_noise_clip", "n_steps")
MAX_STATS = 10**6                     # entries of ep_info_buffer a file may hold


def plain(name, value):
    """``value`` as plain JSON data (NumPy scalars as Python numbers, tuples as lists), or
    ValueError: numddpg's files hold no Python objects."""
    if isinstance(value, np.generic) and value.shape == ():
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name}={value!r}: a file holds finite numbers only")
        return value
    if isinstance(value, (list, tuple)):
        return [plain(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: plain(f"{name}[{k!r}]", v) for k, v in value.items()}
    raise ValueError(f"{name} is a {type(value).__name__}: numddpg's files hold plain data "
                     "only (None, bools, numbers, strings, lists and dicts of them), never "
                     "pickled objects")


def chosen(model, exclude, include):
    """(saved SAVED names, whether the loop's episodes are saved, include_buffer or None for
    the default, {user attribute: value}) for SB3's ``exclude`` and ``include`` lists."""
    exclude = _names("exclude", exclude)
    include = _names("include", include)
    for name in exclude | include:
        if name in ARGUMENTS:
            if name in exclude - include:
                raise ValueError(f"exclude={sorted(exclude)!r}: {name!r} is a hyperparameter "
                                 "that builds the model; numddpg's file always records it")
        elif name not in SAVED + LOOP + (BUFFER,) and not hasattr(model, name):
            raise ValueError(f"{name!r} (in exclude or include) is not an attribute of the "
                             "model")
    dropped = exclude - include
    buffer = (False if BUFFER in dropped else True if BUFFER in include else None)
    user = {}
    for name in sorted(include - set(SAVED + LOOP + ARGUMENTS + (BUFFER,))):
        if name not in model.user_attributes():
            raise ValueError(f"include=[{name!r}]: numddpg saves the model's own state "
                             "itself; include names attributes you set on the model, of "
                             "plain data")
        user[name] = plain(name, getattr(model, name))
    return ([n for n in SAVED if n not in dropped], not (set(LOOP) & dropped), buffer, user)


def _names(what, names):
    if names is None:
        return set()
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what} must be a list of attribute names, got {names!r}")
    return set(names)


# ---------------------------------------------------------------------------------------------
# Reading a file's record back
# ---------------------------------------------------------------------------------------------

def checked(record, where, obs_dim):
    """The "sb3" section ``record`` of a model file (or None), checked: {"config",
    "attributes", "loop" (obs, ep_len, ep_ret arrays, or None), "user"}; files without one give
    empty parts.  CheckpointError for a field that is not what ``save`` writes."""
    if record is None:
        return {"config": {}, "attributes": {}, "loop": None, "user": {}}
    config = _section(record, "config", where)
    for key in config:
        if key not in ("handle_timeout_termination", "optimize_memory_usage") or \
                not isinstance(config[key], bool):
            raise CheckpointError(f"{where}: sb3 config {key}={config[key]!r}")
    attributes = _section(record, "attributes", where)
    for name, value in attributes.items():
        if name not in SAVED or not _valid(name, value):
            raise CheckpointError(f"{where}: sb3 attribute {name}={str(value)[:200]}")
    user = _section(record, "user", where)
    for name in user:
        if not name.isidentifier() or name.startswith("__"):
            raise CheckpointError(f"{where}: sb3 user attribute name {name!r}")
    loop = None if record.get("loop") is None else _loop_arrays(record["loop"], where, obs_dim)
    return {"config": config, "attributes": attributes, "loop": loop, "user": user}


def _section(record, key, where):
    section = record.get(key, {})
    if not isinstance(section, dict):
        raise CheckpointError(f"{where}: sb3 {key} must be a dict, got {section!r}")
    return section


def _valid(name, v):
    """Whether ``v`` read from a file is a value SB3's attribute ``name`` can have."""
    if name == "verbose":
        return is_int(v) and v >= 0
    if name == "stats_window_size":
        return is_int(v) and 1 <= v <= MAX_STATS
    if name in ("num_timesteps", "_episode_num"):
        return is_int(v) and v >= 0
    if name == "ep_info_buffer":
        return isinstance(v, list) and len(v) <= MAX_STATS and all(
            isinstance(e, dict) and set(e) == {"r", "l", "t"} and is_number(e["r"])
            and is_int(e["l"]) and is_number(e["t"]) for e in v)
    if name == "ep_success_buffer":
        return isinstance(v, list) and len(v) <= MAX_STATS and all(
            isinstance(e, bool) or is_number(e) for e in v)
    return False


def _loop_arrays(loop, where, obs_dim):
    """The loop's episodes in progress: obs (n, obs_dim) finite, ep_len (n,) whole numbers
    >= 0, ep_ret (n,) finite, from a record's lists."""
    if not (isinstance(loop, dict) and set(loop) == {"obs", "ep_len", "ep_ret"}):
        raise CheckpointError(f"{where}: sb3 loop {str(loop)[:200]} must hold obs, ep_len, "
                              "ep_ret")
    try:
        obs, ep_len, ep_ret = (np.array(loop[k], np.float64) for k in ("obs", "ep_len",
                                                                       "ep_ret"))
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: sb3 loop arrays are not numbers") from None
    n = obs.shape[0] if obs.ndim == 2 else -1
    if (obs.shape != (n, obs_dim) or n < 1 or ep_len.shape != (n,) or ep_ret.shape != (n,)
            or not (np.all(np.isfinite(obs)) and np.all(np.isfinite(ep_ret)))
            or not np.all((ep_len >= 0) & (ep_len == np.floor(ep_len)))):
        raise CheckpointError(f"{where}: sb3 loop arrays obs {obs.shape}, ep_len "
                              f"{ep_len.shape}, ep_ret {ep_ret.shape}: (n, {obs_dim}), (n,), "
                              "(n,) of finite numbers, lengths whole")
    return obs, ep_len.astype(np.int64), ep_ret
