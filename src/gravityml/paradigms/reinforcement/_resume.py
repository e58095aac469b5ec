"""Checkpoints that a reinforcement run resumes from with the result it would have had uninterrupted.

What the rest of a PPO/A2C run depends on, and where each piece is kept:

========================================  =============================================================
piece                                     kept in
========================================  =============================================================
policy and value networks, optimiser      ``model.zip`` (SB3's own ``save``)
timesteps, updates, episode counter,      ``model.zip``: SB3 saves every attribute but the networks,
last observations and episode starts,     the envs and the buffers; loaded with ``force_reset=False``
recent episode stats, schedules (their    so the run goes on from the saved observations instead of
progress comes from the timesteps)        resetting the environments
each environment (physics state, its      ``envs.pkl``: the training and evaluation ``DummyVecEnv`` with
own RNG, time limit, Monitor counters)    their wrappers, pickled whole (cloudpickle)
RNG states of Python, NumPy, torch        ``rng.pkl``, restored right before ``learn`` goes on
rollout buffer                            nothing: on-policy checkpoints are taken only at rollout
                                          boundaries (SB3's ``on_rollout_start``), where the buffer
                                          is empty and the policy was just updated
evaluation / checkpoint / poll counters,  ``state.json`` (written last: a checkpoint without it
every episode and evaluation so far       does not exist)
========================================  =============================================================

Where a piece cannot be kept, the checkpoint says which (``differs_by``) and the resumed run carries
it in its ``resume_differs_by`` tag:

* an environment that cannot be pickled (a user's env holding a file or a socket): the resumed run
  resets its environments from their seeds (``train.seed + rank``) and starts new episodes;
* off-policy algorithms (DQN, SAC, TD3): SB3 calls callbacks inside a step, before it stores that
  step's transition, so their checkpoints sit between an environment step and its transition; the
  resumed run resets its environments and goes on with the saved replay buffer.

A checkpoint is a folder ``step-<timesteps>`` built under a temporary name, synced and renamed;
``LATEST`` names the newest, and is replaced atomically after it, so a kill at any moment leaves
the previous checkpoint or the new one, whole.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gravityml._files import atomic_write_text, publish_dir, staging_dir

LATEST = "LATEST"
STATE = "state.json"
MODEL = "model.zip"
BUFFER = "replay_buffer.pkl"
ENVS = "envs.pkl"
RNG = "rng.pkl"
BEST = "best_policy.pt"

OFF_POLICY_DIFFERS = (
    "off-policy checkpoints are taken inside a step, before SB3 stores its transition: the resumed run resets "
    "its environments and goes on with the saved replay buffer"
)


@dataclass
class Progress:
    """What training has seen so far; saved with every checkpoint so a resumed run keeps it."""

    timesteps: int = 0
    episodes: list[tuple[int, float, int]] = field(default_factory=list)  # (timestep, return, length)
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)  # (timestep, mean, std)
    best_mean_reward: float | None = None
    best_timestep: int | None = None
    stop_reason: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(
            timesteps=int(data["timesteps"]),
            episodes=[tuple(e) for e in data["episodes"]],  # type: ignore[misc]
            evaluations=[tuple(e) for e in data["evaluations"]],  # type: ignore[misc]
            best_mean_reward=data.get("best_mean_reward"),
            best_timestep=data.get("best_timestep"),
        )


@dataclass
class Checkpoint:
    """A complete checkpoint on disk: where it is, the progress it holds, what a resume from it restores."""

    path: Path
    progress: Progress
    counters: dict[str, int]
    differs_by: list[str]

    @property
    def exact(self) -> bool:
        return not self.differs_by


def rng_states(cuda: bool) -> dict[str, Any]:
    import torch

    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state().numpy().tobytes(),
    }
    if cuda and torch.cuda.is_available():
        states["cuda"] = [s.numpy().tobytes() for s in torch.cuda.get_rng_state_all()]
    return states


def restore_rng(states: dict[str, Any]) -> None:
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(torch.frombuffer(bytearray(states["torch"]), dtype=torch.uint8))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.frombuffer(bytearray(s), dtype=torch.uint8) for s in states["cuda"]])


def save_checkpoint(
    folder: Path,
    model: Any,
    progress: Progress,
    counters: dict[str, int],
    *,
    off_policy: bool,
    envs: tuple[Any, Any] | None,
) -> Checkpoint:
    """Write ``step-<timesteps>`` whole, point ``LATEST`` at it, drop the older ones."""
    import cloudpickle

    progress.timesteps = int(model.num_timesteps)
    name = f"step-{progress.timesteps:012d}"
    differs: list[str] = [OFF_POLICY_DIFFERS] if off_policy else []
    staging = staging_dir(folder / name)
    try:
        model.save(str(staging / MODEL))
        if off_policy:
            model.save_replay_buffer(str(staging / BUFFER))
        elif envs is not None:
            try:
                (staging / ENVS).write_bytes(cloudpickle.dumps(envs))
            except Exception as exc:  # noqa: BLE001 - a user's env holding a file, a socket, a renderer
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                differs.append(
                    f"the environments could not be saved ({type(exc).__name__}: {reason[:200]}): the resumed "
                    "run resets them from their seeds and starts new episodes"
                )
        with (staging / RNG).open("wb") as fh:
            pickle.dump(rng_states(cuda=str(model.device).startswith("cuda")), fh)
        state = {**asdict(progress), "counters": counters, "differs_by": differs}
        (staging / STATE).write_text(json.dumps(state), encoding="utf-8")
        publish_dir(staging, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_text(folder / LATEST, name)
    for old in folder.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return Checkpoint(folder / name, progress, counters, differs)


def read_checkpoint(folder: Path) -> Checkpoint | None:
    """The checkpoint ``LATEST`` names in ``folder``, if it is complete."""
    pointer = folder / LATEST
    if not pointer.exists():
        return None
    path = folder / pointer.read_text(encoding="utf-8").strip()
    if not (path / STATE).exists() or not (path / MODEL).exists():
        return None
    data = json.loads((path / STATE).read_text(encoding="utf-8"))
    return Checkpoint(path, Progress.from_dict(data), dict(data.get("counters") or {}), list(data.get("differs_by") or []))


def load_envs(checkpoint: Checkpoint) -> tuple[Any, Any] | None:
    """The training and evaluation envs as they were at the checkpoint, when they were saved.

    An env that no longer unpickles (its code changed since) is reported in ``differs_by`` and the
    resumed run resets new envs from their seeds.
    """
    if not (checkpoint.path / ENVS).exists():
        return None
    import cloudpickle

    try:
        envs: tuple[Any, Any] = cloudpickle.loads((checkpoint.path / ENVS).read_bytes())
    except Exception as exc:  # noqa: BLE001 - whatever the env's own code raises while it is rebuilt
        checkpoint.differs_by.append(
            f"the saved environments could not be restored ({type(exc).__name__}: {str(exc)[:200]}): the resumed "
            "run resets them from their seeds and starts new episodes"
        )
        return None
    return envs


def load_rng(checkpoint: Checkpoint) -> dict[str, Any] | None:
    if not (checkpoint.path / RNG).exists():
        return None
    with (checkpoint.path / RNG).open("rb") as fh:
        states: dict[str, Any] = pickle.load(fh)  # our own file, written by save_checkpoint
    return states
