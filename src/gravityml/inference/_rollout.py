"""Run a trained policy in its environment: returns per episode, and an optional GIF to watch.

Needs only the model folder and Gymnasium (no training code): the policy's manifest says how to
rebuild its environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gravityml.data import atomic_write
from gravityml.errors import EnvironmentError_, ModelError
from gravityml.inference._load import load
from gravityml.models import GravityModel
from gravityml.tracking import Workspace

MAX_GIF_FRAMES = 600
GIF_FPS = 30


@dataclass(frozen=True)
class RolloutResult:
    """Returns and lengths of each episode, with their mean and standard deviation."""

    model_ref: str
    env: str
    returns: list[float]
    lengths: list[int]
    gif: Path | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))


def rollout(
    ref: str | Path | GravityModel,
    *,
    episodes: int = 10,
    seed: int = 0,
    gif: str | Path | None = None,
    max_steps: int | None = None,
    env_path: str | Path | None = None,
    workspace: Workspace | None = None,
) -> RolloutResult:
    """Run ``episodes`` episodes with the policy acting deterministically.

    Episode ``i`` resets with seed ``seed + i``, so the same arguments give the same returns.
    ``gif`` renders the first episode (environments with an ``rgb_array`` render mode).
    ``env_path`` is a folder to find a user's environment module in (default: the spec's folder
    recorded at training time).
    """
    from gymnasium.error import DependencyNotInstalled

    if gif is not None:
        # pygame draws off-screen; without this SDL looks for a display and complains on servers
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

    from gravityml.models._policy import PolicyModel, make_env

    if episodes < 1:
        raise ModelError("--episodes must be at least 1", allowed=">= 1", got=episodes, fix="pass --episodes 10")
    model = ref if isinstance(ref, GravityModel) else load(ref, workspace=workspace)
    if not isinstance(model, PolicyModel):
        raise ModelError(
            f"only policies can be rolled out; this is a {model.kind}",
            allowed=["policy"],
            got=model.kind,
            fix="roll out a model trained with task: reinforcement",
        )
    target = _gif_path(gif) if gif is not None else None
    description = model.env
    if env_path is not None:
        description["search_path"] = str(env_path)
    name = description.get("id") or description.get("entry_point") or "?"
    returns: list[float] = []
    lengths: list[int] = []
    frames: list[Any] = []
    for i in range(episodes):
        render = target is not None and i == 0
        env = make_env(description, render_mode="rgb_array" if render else None)
        try:
            total, length = _episode(model, env, seed + i, max_steps, frames if render else None)
        except DependencyNotInstalled as exc:
            raise EnvironmentError_(
                f"environment {name!r} cannot render: {exc}",
                allowed="an environment that renders in rgb_array mode",
                got="--gif",
                fix="install what the message names, or leave out --gif",
            ) from None
        finally:
            env.close()
        returns.append(total)
        lengths.append(length)
    if target is not None:
        _write_gif(frames, target, name)
    return RolloutResult(
        model_ref=str(model.meta.get("ref", ref)),
        env=name,
        returns=returns,
        lengths=lengths,
        gif=target,
        seed=seed,
    )


def _episode(model: Any, env: Any, seed: int, max_steps: int | None, frames: list[Any] | None) -> tuple[float, int]:
    obs, _ = env.reset(seed=seed)
    total, length = 0.0, 0
    if frames is not None:
        frames.append(env.render())
    while True:
        obs, reward, terminated, truncated, _ = env.step(model.act(obs))
        total += float(reward)
        length += 1
        if frames is not None and len(frames) < MAX_GIF_FRAMES:
            frames.append(env.render())
        if terminated or truncated or (max_steps is not None and length >= max_steps):
            return total, length


def _gif_path(gif: str | Path) -> Path:
    path = Path(gif)
    if path.suffix.lower() != ".gif":
        raise ModelError(
            f"--gif: {str(path)!r} is not a .gif file name",
            allowed=[".gif"],
            got=path.suffix or str(path),
            fix="name the file like episode.gif",
        )
    if path.is_dir():
        raise ModelError(f"--gif: {str(path)!r} is a folder", allowed="a .gif file name", got=str(path),
                         fix="name a file, like episode.gif")
    return path


def _write_gif(frames: list[Any], path: Path, name: str) -> None:
    from PIL import Image

    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames if f is not None]
    if not images:
        raise EnvironmentError_(
            f"environment {name!r} rendered no frames in rgb_array mode",
            allowed="render() returning an RGB array",
            got="render() returned None",
            fix="give the environment an rgb_array render mode, or leave out --gif",
        )
    def write(tmp: Path) -> None:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / GIF_FPS), loop=0)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the temp file is private (mkstemp); the GIF is for people to open

    atomic_write(path, write)
