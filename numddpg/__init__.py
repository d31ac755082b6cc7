"""numddpg: DDPG and TD3 as hand-written NumPy/Numba kernels on flat parameter vectors.

Names load on first use (PEP 562), so that ``numddpg.load_policy`` (numddpg.policy) needs
NumPy alone, without numba or gymnasium.  Add an export as a line of _EXPORTS, not as an
import here.
"""
import importlib

from .jitcache import drop_stale_kernels

__version__ = "0.1.0"

drop_stale_kernels()     # before any kernel loads: a cached kernel must match all its sources

_EXPORTS = {                                   # name -> submodule that defines it
    "MLP": "nn", "DDPGAgent": "agents", "TD3Agent": "agents", "ReplayBuffer": "buffer",
    "GaussianNoise": "noise", "OUNoise": "noise", "EnvError": "envs", "make_env": "envs",
    "DDPG": "algorithms", "TD3": "algorithms", "OffPolicyAlgorithm": "algorithms",
    "Policy": "algorithms",
    "PRESETS": "presets",
    "load_policy": "policy", "NumpyPolicy": "policy", "CheckpointError": "checkpoint",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value                # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
