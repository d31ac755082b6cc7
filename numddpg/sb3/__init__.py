"""Stable-Baselines3's DDPG and TD3, on numddpg's training loop: switch by one import line.

    from numddpg.sb3 import DDPG, NormalActionNoise, EvalCallback   # was: stable_baselines3

model.py (DDPG, TD3), callbacks.py, noise.py (action noise), schedules.py (learning-rate
schedules), evaluation.py (envs, evaluate_policy, make_vec_env), her.py (HerReplayBuffer) and
logger.py, under SB3's names; docs/sb3.md maps every argument and default.
"""
from .callbacks import (BaseCallback, CallbackList, CheckpointCallback, ConvertCallback,
                        EvalCallback, EventCallback, EveryNTimesteps, StopTrainingOnMaxEpisodes,
                        StopTrainingOnNoModelImprovement, StopTrainingOnRewardThreshold)
from .evaluation import evaluate_policy, make_vec_env
from .her import GoalSelectionStrategy, HerReplayBuffer
from .logger import Logger
from .model import DDPG, TD3, TrainFreq
from .noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from .schedules import ConstantSchedule, FloatSchedule, LinearSchedule

__all__ = ["DDPG", "TD3", "BaseCallback", "CallbackList", "CheckpointCallback",
           "ConvertCallback", "EvalCallback", "EventCallback", "EveryNTimesteps",
           "StopTrainingOnMaxEpisodes", "StopTrainingOnNoModelImprovement",
           "StopTrainingOnRewardThreshold",
           "NormalActionNoise", "OrnsteinUhlenbeckActionNoise", "ActionNoise", "evaluate_policy",
           "make_vec_env", "Logger", "TrainFreq", "ConstantSchedule", "FloatSchedule",
           "LinearSchedule", "HerReplayBuffer", "GoalSelectionStrategy"]
