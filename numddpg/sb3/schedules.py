"""SB3's learning-rate schedules: their value at a training round, and their record in a file.

SB3 evaluates ``lr_schedule(progress_remaining)`` when each train() call begins, with
progress_remaining = 1 - num_timesteps / total_timesteps of the learn() in progress, and steps
every gradient step of that call with the value.  numddpg.sb3 does the same before each
training round, one jitted burst of updates (numddpg.engine.agents.DDPGAgent.set_learning_rates).

A schedule is any callable of progress_remaining.  This module holds SB3's schedules under
SB3's names (``ConstantSchedule``, ``LinearSchedule``, ``FloatSchedule``) and the Zoo's
``SimpleLinearSchedule`` (its ``lin_<x>``), each computing its formula with the same
floating-point operations in the same order, so that a rebuilt schedule gives the original's
numbers.  ``record`` writes a schedule it knows as JSON data (its kind and its numbers):

    {"type": "constant", "val": x}                        x at every progress_remaining p
    {"type": "linear", "start": a, "end": b, "end_fraction": f}
                                                          a + (1 - p) (b - a) / f until
                                                          1 - p > f, then b
    {"type": "simple_linear", "initial_value": x}         p x (the Zoo's lin_x)
    {"type": "float", "value_schedule": <record>}         float() of another (SB3's wrapper)

It knows SB3's classes (matched by their qualified names: numddpg never imports SB3), SB3's
deprecated ``constant_fn`` / ``get_linear_fn`` closures, the Zoo's class and this module's, and
only when the rebuilt schedule gives the same numbers at PROGRESS_POINTS.  Any other callable
has no record (None): its file keeps the learning rate it last gave (numddpg.sb3.model).
``rebuild`` checks a record read from a file and returns this module's schedule.
"""
import math

import numpy as np

from ..files.checkpoint import CheckpointError

# where a rebuilt schedule must agree with the original (its ends and points between)
PROGRESS_POINTS = (1.0, 0.9, 0.75, 0.5, 0.3, 0.25, 0.1, 0.0)
SB3_UTILS = "stable_baselines3.common.utils"
ZOO_UTILS = "rl_zoo3.utils"


class ConstantSchedule:
    """SB3's ConstantSchedule: ``val`` at every progress_remaining."""

    def __init__(self, val):
        self.val = val

    def __call__(self, _):
        return self.val

    def __repr__(self):
        return f"ConstantSchedule(val={self.val})"


class LinearSchedule:
    """SB3's LinearSchedule: from ``start`` at progress_remaining 1 straight to ``end`` at
    progress_remaining 1 - ``end_fraction``, then ``end``."""

    def __init__(self, start, end, end_fraction):
        self.start, self.end, self.end_fraction = start, end, end_fraction

    def __call__(self, progress_remaining):
        done = 1 - progress_remaining                 # the fraction of training done
        if done > self.end_fraction:
            return self.end
        return self.start + done * (self.end - self.start) / self.end_fraction

    def __repr__(self):
        return (f"LinearSchedule(start={self.start}, end={self.end}, "
                f"end_fraction={self.end_fraction})")


class SimpleLinearSchedule:
    """The RL Zoo's ``lin_<x>`` (rl_zoo3.utils.SimpleLinearSchedule): progress_remaining times
    ``initial_value``, from x down to 0."""

    def __init__(self, initial_value):
        self.initial_value = float(initial_value)

    def __call__(self, progress_remaining):
        return progress_remaining * self.initial_value

    def __repr__(self):
        return f"SimpleLinearSchedule(initial_value={self.initial_value})"


class FloatSchedule:
    """SB3's FloatSchedule: ``value_schedule`` (a number stands for its ConstantSchedule) with
    its values made Python floats; SB3's ``model.lr_schedule``."""

    def __init__(self, value_schedule):
        if isinstance(value_schedule, FloatSchedule):
            value_schedule = value_schedule.value_schedule
        elif _is_number(value_schedule):
            value_schedule = ConstantSchedule(float(value_schedule))
        elif not callable(value_schedule):
            raise TypeError(f"learning_rate must be a number or a schedule (a callable of "
                            f"progress_remaining), got {value_schedule!r}")
        self.value_schedule = value_schedule

    def __call__(self, progress_remaining):
        return float(self.value_schedule(progress_remaining))

    def __repr__(self):
        return f"FloatSchedule({self.value_schedule})"


# kind: (this module's class, its parameters in the constructor's order)
KINDS = {"constant": (ConstantSchedule, ("val",)),
         "linear": (LinearSchedule, ("start", "end", "end_fraction")),
         "simple_linear": (SimpleLinearSchedule, ("initial_value",))}
# (module, qualified name) of the schedules ``record`` knows -> kind (or "float": the wrapper)
KNOWN = {(SB3_UTILS, "ConstantSchedule"): "constant",
         (SB3_UTILS, "LinearSchedule"): "linear",
         (SB3_UTILS, "FloatSchedule"): "float",
         (SB3_UTILS, "constant_fn.<locals>.func"): "constant",
         (SB3_UTILS, "get_linear_fn.<locals>.func"): "linear",
         (ZOO_UTILS, "SimpleLinearSchedule"): "simple_linear",
         **{(__name__, cls.__name__): kind for kind, (cls, _) in KINDS.items()},
         (__name__, "FloatSchedule"): "float"}


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_))


def _is_python_number(x):
    """An int or a float (numpy's float64 is one): arithmetic in float64."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def value_at(schedule, progress_remaining):
    """``schedule(progress_remaining)`` as a float, or ValueError unless it is a finite number
    >= 0 (TypeError unless a number: FloatSchedule's float() would take the text "1e-3"): the
    learning rate of a training round."""
    inner = schedule.value_schedule if isinstance(schedule, FloatSchedule) else schedule
    value = inner(progress_remaining)
    if not _is_number(value):
        raise TypeError(f"learning_rate schedule {inner!r} returned {value!r} at "
                        f"progress_remaining={progress_remaining:g}; a schedule must return "
                        "numbers")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"learning_rate schedule {inner!r} returned {value!r} at "
                         f"progress_remaining={progress_remaining:g}; a learning rate must be a "
                         "finite number >= 0")
    return float(value)


def _parameters(schedule, names):
    """{name: value} of a known schedule: its attributes, or a closure's free variables."""
    if hasattr(schedule, "__code__") and schedule.__closure__ is not None:
        cells = dict(zip(schedule.__code__.co_freevars,
                         (c.cell_contents for c in schedule.__closure__)))
        return {name: cells.get(name) for name in names}
    return {name: getattr(schedule, name, None) for name in names}


def _qualified_name(schedule):
    """(module, qualified name) of a function, or of an instance's class."""
    named = schedule if hasattr(schedule, "__code__") else type(schedule)
    return getattr(named, "__module__", None), getattr(named, "__qualname__", None)


def record(schedule):
    """The JSON record of ``schedule`` (module docstring), or None when it is not one this
    module can rebuild with the same numbers (an unknown callable; parameters that are not
    Python or float64 numbers, whose arithmetic would differ: float32's)."""
    kind = KNOWN.get(_qualified_name(schedule))
    if kind is None:
        return None
    if kind == "float":
        inner = record(getattr(schedule, "value_schedule", None))
        rec = None if inner is None else {"type": "float", "value_schedule": inner}
    else:
        params = _parameters(schedule, KINDS[kind][1])
        # a constant's value is all it gives; another schedule computes with its numbers
        numeric = _is_number if kind == "constant" else _is_python_number
        if not all(numeric(v) and math.isfinite(v) for v in params.values()):
            return None
        rec = {"type": kind, **{k: float(v) for k, v in params.items()}}
    if rec is None:
        return None
    try:
        rebuilt = rebuild(rec, "a schedule's record")
        same = all(float(rebuilt(p)) == float(schedule(p)) for p in PROGRESS_POINTS)
    except (CheckpointError, ArithmeticError, TypeError, ValueError):
        return None
    return rec if same else None


def rebuild(rec, where):
    """This module's schedule of the record ``rec`` (read from ``where``); CheckpointError
    unless it is a well-formed record (a known type, finite numbers, end_fraction > 0)."""
    if not isinstance(rec, dict) or rec.get("type") not in (*KINDS, "float"):
        raise CheckpointError(f"{where}: learning-rate schedule record {rec!r} must be a dict "
                              f"whose type is one of {sorted((*KINDS, 'float'))}")
    if rec["type"] == "float":
        if set(rec) != {"type", "value_schedule"}:
            raise CheckpointError(f"{where}: schedule record {rec!r} must hold type and "
                                  "value_schedule")
        return FloatSchedule(rebuild(rec["value_schedule"], where))
    cls, names = KINDS[rec["type"]]
    values = [rec.get(name) for name in names]
    if set(rec) != {"type", *names} or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values):
        raise CheckpointError(f"{where}: {rec['type']} schedule record {rec!r} must hold the "
                              f"finite numbers {list(names)}")
    if rec["type"] == "linear" and not rec["end_fraction"] > 0:
        raise CheckpointError(f"{where}: linear schedule record {rec!r} needs end_fraction > 0")
    return cls(*values)


# ---------------------------------------------------------------------------------------------
# SB3's learning_rate argument in a model's file
# ---------------------------------------------------------------------------------------------

REPR_CHARS = 200          # of an unknown schedule's repr, kept to name it in the load's warning


def learning_rate_record(learning_rate, last):
    """The file's record of SB3's ``learning_rate``: None for a number (the saved pi_lr is
    it), ``record``'s for a schedule it knows, and for any other callable
    {"type": "callable", "repr": its repr (cut to REPR_CHARS), "last": ``last``, the learning
    rate it gave the last training round}."""
    if not callable(learning_rate):
        return None
    rec = record(learning_rate)
    if rec is None:
        rec = {"type": "callable", "repr": repr(learning_rate)[:REPR_CHARS], "last": float(last)}
    return rec


def learning_rate_from_record(rec, where):
    """(learning_rate, warning or None) of a loaded model whose file holds ``rec`` (not None):
    the rebuilt schedule; for an unknown callable's record its last learning rate, a constant,
    with a warning that says so.  CheckpointError for a malformed record."""
    if isinstance(rec, dict) and rec.get("type") == "callable":
        last, text = rec.get("last"), rec.get("repr")
        if set(rec) != {"type", "repr", "last"} or not isinstance(text, str) or not (
                _is_python_number(last) and math.isfinite(last) and last >= 0):
            raise CheckpointError(f"{where}: learning-rate record {rec!r} must hold a repr "
                                  "(text) and last (a finite number >= 0)")
        return float(last), (
            f"{where}: learning_rate was {text[:REPR_CHARS]}, a Python callable that "
            f"numddpg's files do not hold (never pickles): this model trains on with the "
            f"constant learning rate {float(last)!r} it last gave. Pass "
            "load(path, custom_objects={'learning_rate': schedule}) to continue the schedule")
    return rebuild(rec, where), None
