"""Making and checking gymnasium environments for DDPG.

DDPG needs a flat continuous observation (a 1-D ``Box``, or a ``Dict`` of Boxes, which is
flattened in sorted key order: numddpg.files.dictobs) and a flat continuous action (a 1-D
``Box`` with finite bounds, because the actor squashes with tanh into [low, high]).  Every other
space is refused here, with the space in the message and what to do instead.

Seeding: ``make_env`` seeds the action and observation spaces; the training loop seeds every
``env.reset`` with a seed drawn from its own generator (numddpg.algorithms), so one seed drives
everything.
"""
import copy
import difflib
import importlib
import json
import re

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..checks import TooLarge, bounds_problem, check_memory
from ..files.dictobs import DictLayout, DictObsError


class EnvError(ValueError):
    """An environment DDPG cannot train on (unknown id, unsupported spaces, bad values)."""


class ActionSpaceError(EnvError):
    """An env whose action space is not a Box (Discrete, MultiDiscrete, ...): DDPG's actor
    cannot output its actions."""


class EnvFailure(EnvError):
    """An env that misbehaved while running: a step or reset returned what its spaces do not
    allow (a wrong shape, a non-finite number)."""


def registered_ids():
    """All environment ids gymnasium knows (after importing its optional env families)."""
    return sorted(gym.envs.registry.keys())


# gymnasium env families that need an extra of numddpg's (setup.cfg), by entry-point package
EXTRAS = {"gymnasium.envs.mujoco": "mujoco", "gymnasium.envs.box2d": "box2d"}


def _missing_dependency(env_id, exc):
    spec = gym.envs.registry.get(split_module(env_id)[1])
    entry = str(getattr(spec, "entry_point", ""))
    extra = next((x for pkg, x in EXTRAS.items() if entry.startswith(pkg)), None)
    how = (f"pip install 'numddpg[{extra}]'" if extra else
           "install the package the message names")
    return EnvError(f"{env_id} needs a package that is not installed: {exc}. Install it: {how}")


def _make_by_id(env_id, **kwargs):
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.UnregisteredEnv:
        why = ""
    except gym.error.DeprecatedEnv as exc:
        why = f" ({exc})"
    except gym.error.DependencyNotInstalled as exc:
        raise _missing_dependency(env_id, exc) from None
    except gym.error.Error as exc:              # a malformed id, a namespace that isn't there
        raise EnvError(f"{env_id!r} is not a usable gymnasium id: {exc}") from None
    except ModuleNotFoundError as exc:          # the "module:" part of an id the user gave
        if split_module(env_id)[0] is None:
            raise
        raise EnvError(f"{env_id}: cannot import module {split_module(env_id)[0]!r} ({exc}); "
                       "is it installed or on PYTHONPATH?") from None
    close = difflib.get_close_matches(env_id, registered_ids(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    if env_id.startswith("Fetch"):             # gymnasium-robotics registers these on import
        hint += (f" The Fetch tasks are gymnasium-robotics': pip install 'numddpg[robotics]' and "
                 f"pass gymnasium_robotics:{env_id}.")
    raise EnvError(f"unknown environment id {env_id!r}{why}.{hint} "
                   "(`python -c \"import gymnasium; gymnasium.pprint_registry()\"` lists them all)"
                   ) from None


def split_module(env_id):
    """("mymodule", "MyEnv-v0") for gymnasium's "mymodule:MyEnv-v0" form, (None, id) otherwise."""
    module, sep, name = str(env_id).rpartition(":")
    return (module, name) if sep else (None, name)


def make_recorded_env(env_id, seed=None, env_module=None, recorded_module=None, vector=None,
                      **make_kwargs):
    """The env an id read from a file (a checkpoint, a policy, config.json) names, made without
    letting the file choose code to import.

    gymnasium.make("mymodule:MyEnv-v0") imports ``mymodule``: only an id the user passes may do
    that (``make_env``).  Here an id with a module part is refused unless ``env_module`` (the
    user's own --env-module / env_module=) names that module; ``env_module`` is imported, then
    the bare id is made.  recorded_module : the module the run was trained with (read from the
    file; only ever shown in the message, never imported).  vector : the record
    {"num_envs": n, "mode": "sync" | "async"} of a vector env (checked by the caller), made
    with gymnasium.make_vec.  Raises EnvError.
    """
    if not isinstance(env_id, str) or not env_id:
        raise EnvError(f"the file names no usable env id ({env_id!r}); pass the env yourself")
    module, name = split_module(env_id)
    recorded_module = module or recorded_module
    if module is not None and module != env_module:
        raise EnvError(f"the file names env {env_id!r}, which would import module {module!r}; "
                       "numddpg never imports code that a file names. If you trust that module, "
                       f"pass it yourself: --env-module {module} (Python: env_module={module!r})")
    if env_module is not None:
        _import_env_module(env_module)
    if name not in gym.envs.registry and recorded_module and env_module is None:
        raise EnvError(f"{name} is not registered in this process; the run was trained with "
                       f"--env {recorded_module}:{name}. numddpg does not import that module "
                       f"because a file names it: if you trust it, pass --env-module "
                       f"{recorded_module} (Python: env_module={recorded_module!r})")
    _check_argument_types(name, {k: v for k, v in make_kwargs.items()
                                 if k != "max_episode_steps"})
    if vector is not None:
        try:
            env = gym.make_vec(name, num_envs=vector["num_envs"],
                               vectorization_mode=vector["mode"], **make_kwargs)
        except gym.error.Error as exc:
            raise EnvError(f"cannot make {vector['num_envs']} {name} envs: {exc}") from None
        return make_env(env, seed)
    return make_env(name, seed, **make_kwargs)


def _import_env_module(module):
    """Import the module the user named (it registers envs on import), or EnvError."""
    if not isinstance(module, str) or not module:
        raise EnvError(f"env_module must be a module name, got {module!r}")
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise EnvError(f"cannot import env module {module!r} ({exc}); is it installed or on "
                       "PYTHONPATH?") from None


def is_vector(env):
    """Whether ``env`` is a gymnasium 1.x vector env (gym.make_vec, SyncVectorEnv, ...)."""
    return isinstance(env, gym.vector.VectorEnv)


# gymnasium's own wrappers that a record may ask to apply again: each changes numbers only (no
# files, no callables, no running statistics), and is looked up by this name in
# gymnasium.wrappers, never imported from a path the record names.  Each with the kwargs a
# record may give it and their kinds (RECORD_VALUE_KINDS): a wrapper's kwargs are typed and
# bounded, and those that keep observations (MEMORY_KWARGS) count against the free memory.
WRAPPER_KWARGS = {
    "RescaleAction": {"min_action": "numbers", "max_action": "numbers"},
    "ClipAction": {},
    "RescaleObservation": {"min_obs": "numbers", "max_obs": "numbers"},
    "ClipReward": {"min_reward": "numbers or null", "max_reward": "numbers or null"},
    "FlattenObservation": {},
    "DtypeObservation": {"dtype": "float dtype"},
    "ReshapeObservation": {"shape": "shape"},
    "TimeAwareObservation": {"flatten": "bool", "normalize_time": "bool",
                             "dict_time_key": "name"},
    "RecordEpisodeStatistics": {"buffer_length": "count", "stats_key": "name"},
    "StickyAction": {"repeat_action_probability": "probability",
                     "repeat_action_duration": "count or pair"},
    "FrameStackObservation": {"stack_size": "stack", "padding_type": "padding"},
    "DelayObservation": {"delay": "stack or zero"},
    "TimeLimit": {"max_episode_steps": "count"},
}
REBUILDABLE_WRAPPERS = tuple(WRAPPER_KWARGS)
MEMORY_KWARGS = {("FrameStackObservation", "stack_size"), ("DelayObservation", "delay")}
MAX_RECORD_COUNT = 10**9           # the largest count (a buffer, a duration) a record gives
MAX_RECORD_STACK = 10_000          # the most observations a record's stack or delay keeps
MAX_RECORD_LIST = 4096             # the longest list of numbers (per-dimension bounds)
MAX_RECORD_INT = 2**53             # an env argument's integers: exact as float64 and int64
_RECORD_KINDS = {
    "bool": lambda v: isinstance(v, bool),
    "name": lambda v: isinstance(v, str) and 0 < len(v) <= 200,
    "count": lambda v: _is_int(v) and 1 <= v <= MAX_RECORD_COUNT,
    "stack": lambda v: _is_int(v) and 1 <= v <= MAX_RECORD_STACK,
    "stack or zero": lambda v: _is_int(v) and 0 <= v <= MAX_RECORD_STACK,
    "count or pair": lambda v: _RECORD_KINDS["count"](v) or (
        isinstance(v, list) and len(v) == 2 and all(map(_RECORD_KINDS["count"], v))),
    "probability": lambda v: _is_real(v) and 0 <= v < 1,
    "numbers": lambda v: _is_real(v) or (isinstance(v, list) and 0 < len(v) <= MAX_RECORD_LIST
                                         and all(map(_is_real, v))),
    "numbers or null": lambda v: v is None or _RECORD_KINDS["numbers"](v),
    "float dtype": lambda v: v in ("float32", "float64"),
    "shape": lambda v: isinstance(v, list) and 0 < len(v) <= 8 and all(
        _is_int(d) and 1 <= d <= MAX_RECORD_COUNT for d in v),
    "padding": lambda v: v in ("reset", "zero"),
}


_KIND_WORDS = {
    "bool": "true or false", "name": "a text of 1 to 200 characters",
    "count": f"an integer from 1 to {MAX_RECORD_COUNT:,}",
    "stack": f"an integer from 1 to {MAX_RECORD_STACK:,}",
    "stack or zero": f"an integer from 0 to {MAX_RECORD_STACK:,}",
    "count or pair": f"an integer from 1 to {MAX_RECORD_COUNT:,}, or a pair of them",
    "probability": "a number in [0, 1)",
    "numbers": f"a finite number or a list of at most {MAX_RECORD_LIST:,} of them",
    "numbers or null": f"null, a finite number or a list of at most {MAX_RECORD_LIST:,}",
    "float dtype": "'float32' or 'float64'", "shape": "a list of 1 to 8 positive integers",
    "padding": "'reset' or 'zero'",
}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v):
    return (_is_int(v) and abs(v) <= MAX_RECORD_INT) or (isinstance(v, float) and np.isfinite(v))


def _is_env_argument(v):
    """An env argument a record may hold: null, a boolean, an integer exact in float64, a
    finite number, a short text, or a short flat list of those."""
    def scalar(x):
        return x is None or isinstance(x, bool) or _is_real(x) or _RECORD_KINDS["name"](x)
    return scalar(v) or (isinstance(v, list) and len(v) <= MAX_RECORD_LIST
                         and all(map(scalar, v)))
# env arguments that name a file or folder (MuJoCo's xml_file): never taken from a record
FILE_ARGUMENT = re.compile(r"file|path|dir|xml|url", re.IGNORECASE)
VECTOR_KWARGS = ("num_envs", "vectorization_mode", "vector_kwargs", "wrappers")
MAX_EPISODE_STEPS = 10**9


def env_record(env):
    """What rebuilds ``env`` later, as JSON: {"id", "kwargs" (gymnasium.make's),
    "max_episode_steps", "wrappers": [{"name", "kwargs"}] (those applied after make, from
    env.spec), "why": None},
    or with "why" saying why it cannot be rebuilt (then eval and resume refuse rather than make
    another env).  For a vector env, the record of one of its envs."""
    spec = getattr(env, "spec", None)
    record = {"id": env_id(env), "kwargs": {}, "max_episode_steps": None, "wrappers": [],
              "why": None}
    if spec is None:
        return dict(record, why="it has no gymnasium spec (an instance not made by "
                                "gymnasium.make)")
    kwargs = {k: v for k, v in spec.kwargs.items()
              if not (is_vector(env) and k in VECTOR_KWARGS) and k != "render_mode"}
    record.update(kwargs=kwargs, max_episode_steps=spec.max_episode_steps)
    named = [k for k in kwargs if FILE_ARGUMENT.search(k)]
    if named:                                  # (MuJoCo's xml_file, ...)
        return dict(record, kwargs={}, why=f"its argument {named[0]}={kwargs[named[0]]!r} "
                                           "names a file, which numddpg never reads on a file's "
                                           "word")
    for w in () if is_vector(env) else spec.additional_wrappers:
        if w.name not in REBUILDABLE_WRAPPERS or not str(w.entry_point).startswith(
                "gymnasium.wrappers"):
            return dict(record, why=f"its wrapper {w.name} ({w.entry_point}) is not one of "
                                    "gymnasium's that numddpg re-applies from a file")
        record["wrappers"].append({"name": w.name, "kwargs": dict(w.kwargs or {})})
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return dict({**record, "kwargs": {}, "wrappers": []},
                    why=f"its arguments are not plain values ({exc})")
    return record


def check_env_record(record):
    """EnvError unless ``record`` (read from a file) has env_record's form and bounds."""
    def is_name(v):
        return isinstance(v, str) and 0 < len(v) <= 200

    ok = (isinstance(record, dict)
          and set(record) == {"id", "kwargs", "max_episode_steps", "wrappers", "why"}
          and is_name(record["id"]) and isinstance(record["kwargs"], dict)
          and all(is_name(k) and not FILE_ARGUMENT.search(k) for k in record["kwargs"])
          and (record["max_episode_steps"] is None
               or (type(record["max_episode_steps"]) is int
                   and 0 < record["max_episode_steps"] <= MAX_EPISODE_STEPS))
          and isinstance(record["wrappers"], list) and len(record["wrappers"]) <= 32
          and all(isinstance(w, dict) and set(w) == {"name", "kwargs"}
                  and w["name"] in REBUILDABLE_WRAPPERS and isinstance(w["kwargs"], dict)
                  and all(is_name(k) for k in w["kwargs"]) for w in record["wrappers"])
          and (record["why"] is None or isinstance(record["why"], str)))
    if not ok:
        raise EnvError(f"the env record {_cut(record)} is not one numddpg writes (id, kwargs, "
                       f"max_episode_steps, wrappers among {REBUILDABLE_WRAPPERS}, why)")
    for key, value in record["kwargs"].items():
        if not _is_env_argument(value):
            raise EnvError(f"the env record's argument {key}={_cut(value)} is not a value "
                           f"numddpg rebuilds an env with (null, true/false, an integer of at "
                           f"most {MAX_RECORD_INT:.0e}, a finite number, a text of at most 200 "
                           "characters, or a list of those); pass the env yourself")
    for w in record["wrappers"]:
        allowed = WRAPPER_KWARGS[w["name"]]
        for key, value in w["kwargs"].items():
            kind = allowed.get(key)
            if kind is None or not _RECORD_KINDS[kind](value):
                what = (f"takes {_KIND_WORDS[kind]} as {key}" if kind else
                        f"takes no {key!r} (its arguments: {sorted(allowed) or 'none'})")
                raise EnvError(f"the env record's wrapper {w['name']}({key}={_cut(value)}) is "
                               f"refused: {w['name']} {what}; pass the env yourself")


def _cut(value, n=200):
    """repr(value), cut to ``n`` characters (a record may hold anything)."""
    text = repr(value)
    return text if len(text) <= n else text[:n - 3] + "..."


def _check_argument_types(name, kwargs):
    """EnvError unless each record argument has the type of the env constructor's default
    for it (a number where it takes a float, text where it takes text, ...): "text" for
    Pendulum's g would make the env and fail mid-run."""
    import inspect

    spec = gym.envs.registry.get(name)
    try:
        creator = gym.envs.registration.load_env_creator(spec.entry_point) \
            if isinstance(spec.entry_point, str) else spec.entry_point
        params = inspect.signature(creator).parameters
    except Exception:                          # noqa: BLE001 -- then gymnasium.make decides
        return
    rules = {bool: lambda v: isinstance(v, bool), int: _is_int,
             float: lambda v: _is_real(v), str: lambda v: isinstance(v, str)}
    for key, value in kwargs.items():
        default = params[key].default if key in params else None
        rule = rules.get(type(default))
        if rule is not None and not rule(value):
            raise EnvError(f"the env record gives {name} the argument {key}={_cut(value)}, but "
                           f"{name} takes a {type(default).__name__} there (default "
                           f"{default!r}); pass the env yourself")


def _wrapper_memory(w, env):
    """Refuse (TooLarge) a wrapper whose kwargs keep more observations than memory holds: each
    kept observation is an array (its bytes and ~128 of header), and the stack is copied out
    once per step."""
    for key, value in w["kwargs"].items():
        if (w["name"], key) in MEMORY_KWARGS:
            space = env.observation_space
            item = np.dtype(getattr(space, "dtype", None) or np.float64).itemsize
            check_memory(value * (2 * int(np.prod(space.shape or (1,))) * item + 128),
                         f"the env record's {w['name']}({key}={value:,})")


def make_from_record(record, seed=None, env_module=None, recorded_module=None, vector=None,
                     **make_kwargs):
    """The env ``record`` (env_record's, read from a file) describes, made exactly: the id with
    its kwargs and episode limit, then its wrappers; or EnvError saying why it cannot be (the
    rules of make_recorded_env apply to the id).  Never another env than the record's."""
    check_env_record(record)
    if record["why"] is not None:
        raise EnvError(f"the run was trained on {record['id']}, which cannot be rebuilt from "
                       f"its record: {record['why']}. Pass the env yourself (--env ID, or "
                       "env=... in Python)")
    kwargs = dict(record["kwargs"], **make_kwargs)
    if record["max_episode_steps"] is not None and vector is None:
        kwargs["max_episode_steps"] = record["max_episode_steps"]
    try:
        env = make_recorded_env(record["id"], None, env_module, recorded_module, vector,
                                **kwargs)
        for w in record["wrappers"]:
            _wrapper_memory(w, env)
            env = getattr(gym.wrappers, w["name"])(env, **w["kwargs"])
    except (EnvError, TooLarge):
        raise
    except Exception as exc:                   # the env's or a wrapper's constructor refused
        raise EnvError(f"cannot rebuild {record['id']} from its record ({type(exc).__name__}: "
                       f"{exc})") from None
    rebuilt = env_record(env)
    if rebuilt != record:                      # e.g. an episode limit the registry overrides
        raise EnvError(f"{record['id']} rebuilt from its record is another env: {rebuilt} "
                       f"against the record's {record}")
    return make_env(env, seed)


def check_spaces(env):
    """Return (obs_dim, act_dim, act_low, act_high) of a DDPG-compatible env, or raise EnvError.
    For a vector env, of one of its envs (``single_*_space``)."""
    name = env_id(env)
    if is_vector(env):
        act_space, obs_space = env.single_action_space, env.single_observation_space
    else:
        act_space, obs_space = env.action_space, env.observation_space
    if not isinstance(act_space, spaces.Box):
        kind = type(act_space).__name__
        raise ActionSpaceError(
            f"{name}: DDPG needs a continuous Box action space, got {kind} {act_space}. "
            + {"Discrete": "DDPG's actor outputs real-valued actions; use a discrete-action "
                           "method (DQN) or the env's continuous variant if it has one "
                           "(e.g. MountainCarContinuous-v0, LunarLanderContinuous-v3).",
               "MultiDiscrete": "DDPG cannot output integer action vectors; use a "
                                "discrete-action method.",
               "MultiBinary": "DDPG cannot output binary actions; use a discrete-action method.",
               "Dict": "flatten it into one Box with an ActionWrapper "
                       "(gymnasium.spaces.flatten_space gives the Box) before training.",
               "Tuple": "flatten it into one Box before training."}.get(
                   kind, "wrap the env so its action space is a 1-D Box."))
    if len(act_space.shape) != 1:
        raise EnvError(f"{name}: DDPG needs a 1-D Box action space, got shape {act_space.shape} "
                       f"({act_space}); reshape the actions with an ActionWrapper.")
    low = np.asarray(act_space.low, dtype=np.float64)
    high = np.asarray(act_space.high, dtype=np.float64)
    problem = bounds_problem(low, high)
    if problem:
        raise EnvError(f"{name}: the action space {act_space} " + {
            "infinite": f"has infinite bounds (low={low}, high={high}); DDPG squashes actions "
                        "into [low, high] with tanh, so wrap the env with "
                        "gymnasium.wrappers.ClipAction + RescaleAction or give finite bounds.",
            "empty": f"has low >= high in some dimension (low={low}, high={high}).",
            "too wide": f"is too wide for float32 actions (low={low}, high={high}); wrap the "
                        "env with gymnasium.wrappers.RescaleAction to give its real bounds."
        }[problem])
    if not np.issubdtype(act_space.dtype, np.floating):
        raise EnvError(f"{name}: the action space {act_space} holds {act_space.dtype} actions; "
                       "DDPG's actor outputs real numbers, which an integer Box would truncate. "
                       "Give the env a float Box (an ActionWrapper that rounds, if it needs "
                       "integers).")
    if isinstance(obs_space, spaces.Dict):
        return obs_layout(env).obs_dim, int(act_space.shape[0]), low, high
    if not isinstance(obs_space, spaces.Box):
        kind = type(obs_space).__name__
        hint = ("wrap it with gymnasium.wrappers.FlattenObservation to get one Box"
                if kind == "Tuple" else
                "DDPG's networks need a real-valued observation vector")
        raise EnvError(f"{name}: DDPG needs a Box observation space, got {kind} {obs_space}; "
                       f"{hint}.")
    if len(obs_space.shape) != 1:
        raise EnvError(f"{name}: DDPG needs a 1-D Box observation space, got shape "
                       f"{obs_space.shape} ({obs_space}); wrap it with "
                       "gymnasium.wrappers.FlattenObservation.")
    return int(obs_space.shape[0]), int(act_space.shape[0]), low, high


def obs_layout(env):
    """The DictLayout of ``env``'s Dict observation space (a vector env's: of one env), or None
    for a Box; EnvError naming the entry of a Dict that is not a Box."""
    space = env.single_observation_space if is_vector(env) else env.observation_space
    if not isinstance(space, spaces.Dict):
        return None
    try:
        return DictLayout.from_space(space)
    except DictObsError as exc:
        raise EnvError(f"{env_id(env)}: {exc}") from None


def goal_env(env, layout):
    """(achieved, desired, compute_reward) of a goal env: the spans of its achieved and
    desired goal in the flat observation (``layout``, its DictLayout) and its vectorized
    ``env.unwrapped.compute_reward(achieved_goal, desired_goal, info)``, as
    gymnasium-robotics' goal envs have (or ``env.compute_reward`` when the outermost wrapper or
    vector env defines its own: numddpg.sb3's, which hands the env its goals in the env's own
    form); EnvError saying what is missing otherwise."""
    name = env_id(env)
    if layout is None:
        raise EnvError(f"{name}: hindsight experience replay (her) needs a goal env, whose "
                       "observation is a Dict with 'achieved_goal' and 'desired_goal' entries; "
                       "this env observes a Box (train it with her='none')")
    try:
        achieved, desired = layout.goal_spans()
    except DictObsError as exc:
        raise EnvError(f"{name}: {exc}") from None
    compute_reward = own_compute_reward(env) or getattr(getattr(env, "unwrapped", None),
                                                        "compute_reward", None)
    if not callable(compute_reward):
        raise EnvError(f"{name}: hindsight experience replay (her) recomputes rewards with the "
                       "env's compute_reward(achieved_goal, desired_goal, info) "
                       "(env.unwrapped.compute_reward, as gymnasium-robotics' goal envs have); "
                       "this env has none")
    return achieved, desired, compute_reward


def env_info(infos, i):
    """Env i's info dict from a gymnasium vector env's ``infos`` (arrays over the envs, each
    with its "_key" mask of the envs that set it; nested dicts alike)."""
    out = {}
    for k, v in infos.items():
        mask = infos.get("_" + k)
        if k.startswith("_") or (mask is not None and not mask[i]):
            continue
        out[k] = env_info(v, i) if isinstance(v, dict) else v[i]
    return out


def own_compute_reward(env):
    """``env.compute_reward`` if ``env`` itself (not the env it wraps: gymnasium's wrappers
    do not pass attributes on) defines one, else None."""
    compute_reward = getattr(env, "compute_reward", None)
    return compute_reward if callable(compute_reward) else None


def check_obs(obs, obs_dim, name, where, n_envs=None, layout=None):
    """``obs`` as a float32/float64 array of shape (obs_dim,) (a vector env's: (n_envs,
    obs_dim)), or EnvError naming the env, the call (``where``, e.g. "step at env step 120")
    and the expected and received shapes.

    Every observation an env returns passes here before it reaches a kernel: a kernel writes
    obs_dim numbers per row, so a longer vector would spill into the next row and a shorter one
    read past its end.  The common case (a float ndarray of the right shape) is returned as is.
    layout : the env's DictLayout: a Dict observation is flattened by it (EnvFailure naming a
    missing, extra or misshapen entry).
    """
    if layout is not None:
        try:
            return layout.flatten(obs, n_envs)
        except DictObsError as exc:
            raise EnvFailure(f"{name}: {where} returned an observation that does not fit its "
                             f"Dict space: {exc}") from None
    shape = (obs_dim,) if n_envs is None else (n_envs, obs_dim)
    if type(obs) is np.ndarray and obs.shape == shape and obs.dtype.kind == "f" \
            and obs.dtype.itemsize >= 4:
        return obs
    try:
        arr = np.asarray(obs)
    except Exception:                          # an object numpy cannot even look at
        arr = np.asarray(None, dtype=object)
    if arr.shape != shape or arr.dtype.kind not in "fiu":
        what, promise = (("an observation", "its observation space promises") if n_envs is None
                         else ("observations", f"its {n_envs} envs promise"))
        raise EnvFailure(f"{name}: {where} returned {what} of shape {arr.shape} and dtype "
                         f"{arr.dtype} ({type(obs).__name__}); {promise} shape {shape} of real "
                         "numbers. The env is inconsistent with its observation_space: fix the "
                         "env, or wrap it so the two agree.")
    return arr.astype(np.float64)


def check_reward(rew, name, call, t):
    """``rew`` as a Python float, or EnvError naming the env, the call and step ``t``."""
    if isinstance(rew, float):                 # float, np.float64: the common case
        return float(rew)
    arr = np.asarray(rew) if isinstance(rew, (int, np.generic, np.ndarray)) else None
    if arr is None or arr.shape not in ((), (1,)) or arr.dtype.kind not in "fiub":
        raise EnvFailure(f"{name}: {call} at step {t} returned a reward {rew!r} of type "
                       f"{type(rew).__name__}{'' if arr is None else f' and shape {arr.shape}'};"
                       " a reward must be one real number.")
    return float(arr.reshape(()))


def check_rewards(rew, n, name, t):
    """A vector env's n rewards as a float64 (n,) array, or EnvFailure."""
    arr = np.asarray(rew) if isinstance(rew, (np.ndarray, list, tuple)) else None
    if arr is None or arr.shape != (n,) or arr.dtype.kind not in "fiub":
        raise EnvFailure(f"{name}: step at env step {t} returned rewards {rew!r}; its {n} envs "
                         f"must return a real (n,) = ({n},) array")
    return arr.astype(np.float64)


def check_flags(flags, n, name, what, t):
    """A vector env's n terminated (or truncated) flags as a bool (n,) array, or EnvFailure:
    each a boolean or 0/1 (0.5 or a (1,) array broadcast to n envs would be read as a
    flag nobody meant)."""
    arr = np.asarray(flags) if isinstance(flags, (np.ndarray, list, tuple)) else None
    if arr is None or arr.shape != (n,) or arr.dtype.kind not in "biuf" or (
            arr.dtype != bool and not np.all((arr == 0) | (arr == 1))):   # (bools: every step)
        raise EnvFailure(f"{name}: step at env step {t} returned {what} {flags!r}; its {n} "
                         f"envs must return a boolean (n,) = ({n},) array")
    return arr.astype(bool)


def env_id(env):
    """The registered id of an env instance (e.g. "Pendulum-v1"), or its class name."""
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return spec.id
    return type(getattr(env, "unwrapped", env)).__name__


def make_env(env, seed=None, **make_kwargs):
    """A checked gymnasium env from an id or an instance, its spaces seeded with ``seed``.

    env : str (a registered id, e.g. "Pendulum-v1"), a gymnasium.Env or a gymnasium vector env
        (gymnasium.make_vec; used as they are).
    seed : int or None — seeds ``action_space`` and ``observation_space``.  Resets are seeded
        by the caller (``env.reset(seed=...)``).
    make_kwargs : passed to gymnasium.make for ids (e.g. render_mode="human").
    Raises EnvError for unknown ids (with the closest registered ids) and unsupported spaces.
    """
    if isinstance(env, str):
        make_kwargs.setdefault("disable_env_checker", True)   # check_spaces does our checks
        env = _make_by_id(env, **make_kwargs)
    elif not isinstance(env, gym.Env) and not is_vector(env):
        raise EnvError(f"env must be a gymnasium id, a gymnasium.Env or a gymnasium vector env, "
                       f"got {type(env).__name__} {env!r}")
    check_spaces(env)
    if seed is not None:
        env.action_space.seed(int(seed))
        env.observation_space.seed(int(seed))
    return env


def make_twin(env, seed=None):
    """A separate instance of ``env`` (for test episodes that must not disturb training).

    Registered envs (env.spec set) are rebuilt from their spec, wrappers included; others are
    deep-copied.  For a vector env, one env of the kind it holds (from its spec).  Raises
    EnvError if neither works: then pass ``test_env=`` explicitly.
    """
    spec = getattr(env, "spec", None)
    if is_vector(env):
        if spec is None:
            raise EnvError(f"{env_id(env)}: a vector env without a spec; pass test_env= one "
                           "env of the kind it holds")
        kwargs = {k: v for k, v in spec.kwargs.items()
                  if k not in ("num_envs", "vectorization_mode", "vector_kwargs", "wrappers")}
        return make_env(gym.make(spec.id, **kwargs), seed)
    if spec is not None:
        try:
            return make_env(gym.make(spec), seed)
        except Exception:                      # a wrapper that cannot be rebuilt from its spec
            pass
    try:
        return make_env(copy.deepcopy(env), seed)
    except Exception as exc:
        raise EnvError(f"could not make a separate test instance of {env_id(env)} ({exc}); "
                       "pass test_env= a second instance of it") from exc


def random_policy_returns(env, n_episodes, rng, max_ep_len=None):
    """Returns of ``n_episodes`` episodes of uniform random actions in [low, high].

    Every reset is seeded from ``rng`` (a numpy Generator), as in training.  The baseline that
    `numddpg train` compares its result against.
    """
    _, act_dim, low, high = check_spaces(env)
    dtype = env.action_space.dtype
    returns = []
    for _ in range(int(n_episodes)):
        env.reset(seed=int(rng.integers(2**31)))
        ep_ret, ep_len, over = 0.0, 0, False
        while not over:
            a = (low + (high - low) * rng.random(act_dim)).astype(dtype)
            _, r, terminated, truncated, _ = env.step(a)
            ep_ret += float(r)
            ep_len += 1
            over = terminated or truncated or (max_ep_len is not None and ep_len >= max_ep_len)
        returns.append(ep_ret)
    return np.array(returns)
