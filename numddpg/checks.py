"""Argument checks shared by the agents and the replay buffer: each names the argument and the
value it got."""
import numpy as np

# The most row chunks an update may be cut into (numddpg.update, "Row chunks"): enough for any
# core count worth chunking for, and a bound on what a file or a typo can make an agent
# allocate (C gradients per network).
MAX_CHUNKS = 64


def check_bounds(act_low, act_high, act_dim):
    """Return (low, high) as float64 (act_dim,) arrays after checking they are finite and ordered."""
    low = np.broadcast_to(np.asarray(act_low, dtype=np.float64), (act_dim,)).copy()
    high = np.broadcast_to(np.asarray(act_high, dtype=np.float64), (act_dim,)).copy()
    problem = bounds_problem(low, high)
    if problem:
        raise ValueError({
            "infinite": f"action bounds must be finite, got act_low={low}, act_high={high}; "
                        "DDPG squashes actions with tanh into [low, high], so give finite "
                        "bounds (e.g. wrap the env with gymnasium.wrappers.RescaleAction)",
            "empty": f"act_low must be < act_high in every dimension, got act_low={low}, "
                     f"act_high={high}",
            "too wide": f"action bounds act_low={low}, act_high={high} are too wide: their "
                        f"midpoint and half-range must be float32 numbers (at most "
                        f"{FLOAT32_MAX:.3g}); give the env's real bounds (e.g. wrap it with "
                        "gymnasium.wrappers.RescaleAction)"}[problem])
    return low, high


FLOAT32_MAX = float(np.finfo(np.float32).max)
# The largest step or update count a file may give: more than any run reaches (2**53 env steps
# at 10**6 steps/s is 285 years), and every count up to it is exact as a float64, which the
# logs write.
MAX_COUNT = 2**53


def bounds_problem(low, high):
    """None for action bounds (float64 arrays) that the actor can squash into; else what is
    wrong: "infinite", "empty" (low >= high somewhere) or "too wide" (bounds_fit)."""
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return "infinite"
    if np.any(low >= high):
        return "empty"
    return None if bounds_fit(low, high) else "too wide"


def bounds_fit(low, high):
    """Whether mid = (high + low) / 2 and half = (high - low) / 2 of finite float64 bounds are
    float32 numbers: the actor's squashing mid + half tanh(.) runs in float32, and bounds of
    +-1e308 (finite) would make half infinite."""
    with np.errstate(over="ignore"):
        mid, half = (high + low) / 2, (high - low) / 2
    return bool(np.all(np.abs(mid) <= FLOAT32_MAX) and np.all(half <= FLOAT32_MAX))


def check_unit_interval(name, value):
    return check_real(name, value, 0.0, 1.0, what="lie in [0, 1]")


def check_positive(name, value):
    return check_real(name, value, 0.0, low_open=True, what="be a positive finite number")


def check_non_negative(name, value):
    return check_real(name, value, 0.0, what="be a finite number >= 0")


def check_dim(name, value):
    """A positive integer (a dimension, a count), strictly: see check_int."""
    return check_int(name, value, 1)


# ---------------------------------------------------------------------------------------------
# Strict values: a wrong type raises, naming the argument; nothing is silently coerced
# ---------------------------------------------------------------------------------------------

def is_integral(v):
    """An int, a numpy integer, or a float/numpy float holding a whole number (1e6); not a bool
    or a string."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer()


def check_int(name, value, minimum, maximum=None):
    """int(value) after checking it is a whole number in [minimum, maximum]."""
    if not is_integral(value) or value < minimum or (maximum is not None and value > maximum):
        rng = ("a positive integer" if (minimum, maximum) == (1, None) else
               f"an integer >= {minimum}" if maximum is None else
               f"an integer from {minimum} to {maximum}")
        raise ValueError(f"{name} must be {rng}, got {value!r} ({type(value).__name__})")
    return int(value)


def check_real(name, value, low=-np.inf, high=np.inf, low_open=False, what=None,
               high_open=False):
    """float(value) after checking it is a finite real number in [low, high] ((low, high]
    with low_open, [low, high) with high_open); ``what`` words the requirement in the
    message."""
    ok = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)) and np.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        what = what or "be a finite number " + (
            f"{'>' if low_open else '>='} {low}" if high == np.inf else
            f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")
        raise ValueError(f"{name} must {what}, got {value!r} ({type(value).__name__})")
    return float(value)


def check_widths(name, value):
    """A tuple of positive whole numbers (hidden layer widths); one int means one layer, an
    empty sequence none (a linear network)."""
    items = (value,) if is_integral(value) else value
    if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
        raise ValueError(f"{name} must be a sequence of positive integers like (256, 256), got "
                         f"{value!r} ({type(value).__name__})")
    items = tuple(items)
    if not all(is_integral(h) for h in items):
        raise ValueError(f"{name} must be whole numbers like (256, 256), got {value!r}")
    if not all(h > 0 for h in items):
        raise ValueError(f"{name} must all be positive, got {value!r} "
                         f"(bad: {[h for h in items if h <= 0]})")
    return tuple(int(h) for h in items)


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


# ---------------------------------------------------------------------------------------------
# Memory: a size from a file or a flag is checked before anything of that size is allocated
# ---------------------------------------------------------------------------------------------

class TooLarge(ValueError):
    """An allocation the sizes ask for is larger than the memory this machine has free."""


def available_memory():
    """Bytes of memory available to a new allocation (Linux: MemAvailable; elsewhere the
    physical memory), or None where it cannot be told."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes, what):
    """Raise TooLarge if ``nbytes`` (what ``what`` needs) exceeds the available memory."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise TooLarge(f"{what} needs {_gib(nbytes)} of memory, but this machine has "
                       f"{_gib(free)} available; choose smaller sizes")


def _gib(n):
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"
