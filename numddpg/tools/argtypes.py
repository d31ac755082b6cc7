"""The argparse types of numddpg's flags (a strict boolean, a whole number, an env id), shared
by `numddpg train`'s hyperparameter flags, `numddpg eval` and `numddpg sweep`'s axes; and
``negative_values``, which lets a flag take a negative number as its value."""
import argparse
import math
import re

# "-1e-3", "-.5", "-2": what argparse would take for an unknown option after a flag (only plain
# negative integers and decimals are numbers to it), so that --q-lr -1e-3 said "expected one
# argument" instead of reaching the check that says a learning rate must be > 0.
_NEGATIVE = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|-inf|-nan", re.IGNORECASE)


def strict_bool(text):
    """true/false (also 1/0, yes/no); anything else is an error, never a silent False."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(
        text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def whole_number(text):
    """An integer flag value; 1e6 and 1_000_000 are read as the whole numbers they are."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def positive_whole_number(text):
    """A whole number >= 1 (a count of steps: 0 or -1 would mean nothing to do)."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def env_id(text):
    """A gymnasium id: any non-blank text (gymnasium says whether it is registered)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a gymnasium id such as Pendulum-v1, got "
                                         f"{text!r}")
    return text


def negative_values(argv):
    """``argv`` with each "--flag NEGATIVE-NUMBER" pair joined as "--flag=NEGATIVE-NUMBER",
    so that the number reaches the flag's own check and its message."""
    out = []
    for arg in argv:
        if (out and _NEGATIVE.fullmatch(arg) and out[-1].startswith("--")
                and "=" not in out[-1]):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out
