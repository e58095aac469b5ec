"""Reinforcement learning: PPO, A2C, DQN, SAC and TD3 from Stable-Baselines3 on Gymnasium envs."""

from gravityml.paradigms.reinforcement._algos import ACTION_SPACES, ALGORITHMS, OFF_POLICY, algorithm_kwargs
from gravityml.paradigms.reinforcement._train import train

__all__ = ["ACTION_SPACES", "ALGORITHMS", "OFF_POLICY", "algorithm_kwargs", "train"]
