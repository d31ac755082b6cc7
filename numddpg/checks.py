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
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"action bounds must be finite, got act_low={low}, act_high={high}; "
                         "DDPG squashes actions with tanh into [low, high], so give finite bounds "
                         "(e.g. wrap the env with gymnasium.wrappers.RescaleAction)")
    if np.any(low >= high):
        raise ValueError(f"act_low must be < act_high in every dimension, got act_low={low}, "
                         f"act_high={high}")
    return low, high


def check_unit_interval(name, value):
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def check_positive(name, value):
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_dim(name, value):
    if isinstance(value, (bool, np.bool_)) or int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
