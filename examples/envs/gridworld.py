"""A small custom Gymnasium environment: walk from a corner of a grid to the opposite corner.

Used by examples/gridworld.yaml as ``env: {entry_point: "envs.gridworld:GridWorld"}``. gravityml
puts the spec's folder (examples/) on ``sys.path`` while it imports the entry point, so
``envs/gridworld.py`` beside the spec is found without installing anything.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])  # up, down, left, right


class GridWorld(gym.Env):
    """An agent on a ``size`` x ``size`` grid; +1 for reaching the goal, -0.01 per step.

    Observation: the agent's (row, column) scaled to [0, 1]. Actions: up, down, left, right.
    Episodes end at the goal or after ``max_steps`` steps.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, size: int = 5, max_steps: int = 50, render_mode: str | None = None) -> None:
        self.size = size
        self.max_steps = max_steps
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(4)
        self._pos = np.zeros(2, dtype=np.int64)
        self._steps = 0

    def _obs(self) -> np.ndarray:
        return (self._pos / (self.size - 1)).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._pos = np.zeros(2, dtype=np.int64)
        self._steps = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._pos = np.clip(self._pos + MOVES[int(action)], 0, self.size - 1)
        self._steps += 1
        at_goal = bool((self._pos == self.size - 1).all())
        reward = 1.0 if at_goal else -0.01
        return self._obs(), reward, at_goal, self._steps >= self.max_steps, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        cell = 32
        image = np.full((self.size * cell, self.size * cell, 3), 235, dtype=np.uint8)
        image[-cell:, -cell:] = (60, 180, 75)  # goal
        row, col = self._pos
        image[row * cell + 6 : (row + 1) * cell - 6, col * cell + 6 : (col + 1) * cell - 6] = (30, 90, 200)
        return image
