"""Hyperparameters read from files, checked before any run starts.

A preset file (``numddpg train --preset FILE.json``, the ``best.json`` of ``numddpg tune``) and a
search space (``numddpg tune --space FILE.json``) may come from someone else.  Every key must name
a hyperparameter of the algorithm (``hyperparameter_table()``), every value must have the kind
of that hyperparameter's default (a number where the default is a number, a list of widths for
``hidden_sizes``...) and pass the algorithm's own checks, which run by building the algorithm
on the env without training (``check_with_algorithm``).  Each error names the file, the key,
the value and what is allowed.  Nothing read from a file chooses code to import or run.

A preset file is one JSON object: hyperparameter names with their values, optionally
``total_steps`` (the budget ``learn()`` and ``numddpg train`` use when none is given) and
``tuned`` (an object saying where the values come from; never read).
"""
import difflib
import json
from pathlib import Path

from ..files.small import NotARegularFile, FileTooLarge, read_small

MAX_BYTES = 1 << 20          # a preset or a search space is a few hundred bytes
NOT_IN_FILES = ("seed",)     # a file never chooses the seed: --seed / --seeds do
PRESET_EXTRAS = ("total_steps", "tuned")


class HyperparameterFileError(ValueError):
    """A file whose keys or values cannot be used (the message names file, key and value)."""


def read_json_object(path, what):
    """The JSON object in ``path``: at most MAX_BYTES, no duplicate keys, no NaN/Infinity."""
    path = Path(path)
    try:
        text = read_small(path, MAX_BYTES, what).decode("utf-8")
    except (NotARegularFile, FileTooLarge) as exc:
        raise HyperparameterFileError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HyperparameterFileError(f"cannot read {what} {path}: {exc}") from None

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise HyperparameterFileError(f"{what} {path}: the key {dup[0]!r} appears twice")
        return dict(pairs)

    def no_constant(name):
        raise HyperparameterFileError(f"{what} {path}: {name} is not a number JSON allows")

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise HyperparameterFileError(f"{what} {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HyperparameterFileError(f"{what} {path} must hold one JSON object "
                                      f"{{name: value}}, not a {type(data).__name__}")
    return data


def check_name(cls, name, where):
    """Refuse a key that is not a hyperparameter of ``cls`` (or one a file may not set)."""
    from ..training.algorithms import ALGORITHMS

    table = cls.hyperparameter_table()
    if name in NOT_IN_FILES:
        raise HyperparameterFileError(f"{where}: {name!r} cannot be set in a file; the command "
                                      "line chooses the seeds")
    if name in table:
        return
    owners = sorted(a for a, c in ALGORITHMS.items() if name in c.hyperparameter_table())
    if owners:
        why = f"only {', '.join(owners)} takes it"
    else:
        close = difflib.get_close_matches(str(name), table, n=1)
        why = f"did you mean {close[0]!r}?" if close else "no algorithm takes it"
    raise HyperparameterFileError(f"{where}: {name!r} is not a hyperparameter of {cls.algo} "
                                  f"({why}); known: {', '.join(table)}")


def check_type(cls, name, value, where):
    """``value`` as ``name`` takes it (numddpg.hyperparameters.check: whole floats as int,
    widths as a list), or raise naming the key, the value and the kind of value allowed."""
    from ..engine.hyperparameters import check, describe

    spec = cls.hyperparameter_specs()[name]
    try:
        value = check(name, value, spec)
    except ValueError:
        raise HyperparameterFileError(f"{where}: {name} = {json.dumps(value)} is not allowed: "
                                      f"{name} takes {describe(spec)} (default "
                                      f"{spec.default!r})") from None
    return list(value) if isinstance(value, tuple) else value


def check_with_algorithm(cls, env, values, where, preset="auto"):
    """Build ``cls(env, preset=preset, **values)`` without training (no run directory, one
    chunk) so that the algorithm's own checks see ``values``; raise their message, prefixed
    with ``where``.  ``env`` is best an instance (built once by the caller)."""
    values = {"chunks": 1, "seed": 0, **values}
    try:
        model = cls(env, preset=preset, log=False, **values)
    except (ValueError, TypeError, OverflowError) as exc:
        raise HyperparameterFileError(f"{where}: {exc}") from None
    model.test_env.close()


def load_preset(path, algo):
    """The preset in the JSON file ``path`` for ``algo`` ("ddpg", "td3"), as a dict the
    algorithms take (``preset=``): every key a hyperparameter of ``algo`` or ``total_steps``
    (a positive integer) or ``tuned`` (an object, dropped); every value of its kind.  The
    algorithm checks the values themselves when it is built."""
    from ..training.algorithms import ALGORITHMS

    cls = ALGORITHMS[algo]
    where = f"preset {path}"
    data = read_json_object(path, "preset")
    preset = {}
    for name, value in data.items():
        if name == "tuned":
            if not isinstance(value, dict):
                raise HyperparameterFileError(f"{where}: 'tuned' must be an object saying "
                                              f"where the values come from, got "
                                              f"{json.dumps(value)}")
            continue
        if name == "total_steps":
            if (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise HyperparameterFileError(f"{where}: total_steps = {json.dumps(value)} is "
                                              "not allowed: a positive integer")
            preset[name] = value
            continue
        check_name(cls, name, where)
        preset[name] = check_type(cls, name, value, where)
    return preset
