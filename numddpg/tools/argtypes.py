"""The argparse types of numddpg's flags: a strict boolean and a whole number, shared by
`numddpg train`'s hyperparameter flags and `numddpg sweep`'s axes."""
import argparse
import math


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
