"""A tiny random number generator for jitted code whose whole state is one uint64 the caller owns.

SplitMix64 (Steele, Lea & Flood 2014, the seeder of xoshiro): state += golden gamma, then a
bijective mix of the state is the output.  The state lives in a (1,) uint64 array so that an
agent can save it in a checkpoint and resume the exact same stream of minibatch indices and
smoothing noise.  Statistically it passes BigCrush; it is not cryptographic.
"""
import numpy as np
from numba import njit

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53


def new_state(seed):
    """A (1,) uint64 state array derived from a Python int seed (any size, taken mod 2^64)."""
    return np.array([int(seed) % (1 << 64)], dtype=np.uint64)


@njit(cache=True)
def next_u64(state):
    """Advance ``state[0]`` and return the next 64-bit output."""
    s = state[0] + _GAMMA
    state[0] = s
    z = (s ^ (s >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True)
def uniform(state):
    """A float64 uniform on [0, 1) from the top 53 bits of the next output."""
    return (next_u64(state) >> _S11) * _TWO_M53


@njit(cache=True)
def randint(state, n):
    """An integer uniform on {0, ..., n-1} (bias below n / 2^53, nil for any buffer size)."""
    return int(uniform(state) * n)


@njit(cache=True)
def normal(state):
    """A standard normal by Box-Muller from two uniforms (1 - u keeps the log finite)."""
    u1 = 1.0 - uniform(state)
    u2 = uniform(state)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
