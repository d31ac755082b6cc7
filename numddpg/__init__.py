"""numddpg: DDPG and TD3 as hand-written NumPy/Numba kernels on flat parameter vectors."""
__version__ = "0.1.0"

from .nn import MLP
from .agents import DDPGAgent, TD3Agent

__all__ = ["MLP", "DDPGAgent", "TD3Agent", "__version__"]
