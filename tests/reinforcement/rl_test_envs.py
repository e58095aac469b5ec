"""Environments for the reinforcement tests (copied next to each test's spec, found via its folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import CartPoleEnv


class OldApiEnv(gym.Env):
    """Breaks the Gymnasium API: ``reset`` returns only the observation (the old gym API)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return np.zeros(3, dtype=np.float32)

    def step(self, action: int) -> Any:
        return np.zeros(3, dtype=np.float32), 0.0, True, False, {}


class OutOfSpaceEnv(OldApiEnv):
    """Breaks the API differently: observations outside the declared space."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        gym.Env.reset(self, seed=seed)
        return np.full(3, 5.0, dtype=np.float32), {}


class CrashingCartPole(CartPoleEnv):
    """CartPole that raises once, after ``crash_after`` steps, while ``flag`` exists (a simulated crash)."""

    def __init__(self, flag: str, crash_after: int, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        self.flag = Path(flag)
        self.crash_after = crash_after
        self.steps = 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        if self.steps > self.crash_after and self.flag.exists():
            os.unlink(self.flag)
            raise RuntimeError("simulated crash of the training process")
        return super().step(action)


class UnpicklableCartPole(CartPoleEnv):
    """CartPole holding a lock, as an env holding a file or a socket would: it cannot be pickled."""

    def __init__(self, **kwargs: Any) -> None:
        import threading

        super().__init__(**kwargs)
        self._lock = threading.Lock()
