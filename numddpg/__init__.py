"""numddpg: DDPG and TD3 as hand-written NumPy/Numba kernels on flat parameter vectors."""
__version__ = "0.1.0"

from .nn import MLP
from .agents import DDPGAgent
from .buffer import ReplayBuffer
from .noise import GaussianNoise, OUNoise
from .envs import EnvError, make_env
from .algorithms import DDPG, OffPolicyAlgorithm, Policy, load_policy
from .presets import PRESETS

__all__ = ["MLP", "DDPGAgent", "ReplayBuffer", "GaussianNoise", "OUNoise", "EnvError",
           "make_env", "DDPG", "OffPolicyAlgorithm", "Policy", "load_policy", "PRESETS",
           "__version__"]
