"""numddpg: DDPG and TD3 as hand-written NumPy/Numba kernels on flat parameter vectors.

The folders, bottom to top (each imports only from those below it; tests/test_layers.py):

    checks.py, portable.py   argument checks; what differs between POSIX and Windows
    kernels/                 the jitted math, its NumPy twin and the gradient checks
    files/                   the checkpoint container, the policy file, run directories, run logs
    engine/                  agents, replay buffer, noise, normalization, hyperparameters, presets
    training/                the loop over n envs, the run state, acting, evaluation, envs
    sb3/, tools/             Stable-Baselines3's interface; the command line and what it runs

Names load on first use (PEP 562), so that ``numddpg.load_policy`` (numddpg.files.policy) needs
NumPy alone, without numba or gymnasium.  Add an export as a line of _EXPORTS, not as an
import here.
"""
import importlib
import importlib.abc
import importlib.util
import sys

from .kernels.jitcache import drop_stale_kernels

__version__ = "0.1.0"

drop_stale_kernels()     # before any kernel loads: a cached kernel must match all its sources

_EXPORTS = {                                   # name -> submodule that defines it
    "MLP": "kernels.nn", "DDPGAgent": "engine.agents", "TD3Agent": "engine.agents",
    "ReplayBuffer": "engine.buffer", "GaussianNoise": "engine.noise", "OUNoise": "engine.noise",
    "EnvError": "training.envs", "make_env": "training.envs",
    "DDPG": "training.algorithms", "TD3": "training.algorithms",
    "OffPolicyAlgorithm": "training.algorithms", "Policy": "training.acting",
    "PRESETS": "engine.presets",
    "load_policy": "files.policy", "NumpyPolicy": "files.policy",
    "CheckpointError": "files.checkpoint",
}

# Module paths of numddpg 0.1.0, before the package had folders: `import numddpg.agents` (or
# `from numddpg.nn import MLP`) still gives the module, now under its folder (README, "Upgrading").
MOVED = {
    **{m: f"kernels.{m}" for m in ("nn", "optim", "update", "gemm", "sync", "rng", "reference",
                                    "gradcheck", "jitcache", "threads")},
    **{m: f"engine.{m}" for m in ("agents", "buffer", "noise", "hyperparameters", "presets")},
    "normalize": "engine.normalizer",
    **{m: f"training.{m}" for m in ("algorithms", "envs", "runfile")},
    **{m: f"files.{m}" for m in ("checkpoint", "policy", "runlog")},
    "logger": "files.rundir", "callbacks": "sb3.callbacks",
    **{m: f"tools.{m}" for m in ("cli", "sweep", "tune", "plot", "hpfile")},
}

__all__ = [*_EXPORTS, "__version__"]


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds numddpg.<old name> as the module it became (MOVED): the same module object, so
    that patching or importing either name reaches the one module."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.rpartition(".")
        if prefix == __name__ and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")

    def exec_module(self, module):
        pass                                   # already executed under its own name

    def get_code(self, fullname):
        """What ``python -m numddpg.<old name>`` runs (runpy asks for it): the module under its
        new name as __main__, so that its relative imports resolve from its own folder."""
        new = f"{__name__}.{MOVED[fullname.rpartition('.')[2]]}"
        return compile(f"import runpy\nrunpy.run_module({new!r}, run_name='__main__', "
                       "alter_sys=True)\n", f"<{fullname}, now {new}>", "exec")


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value                # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
