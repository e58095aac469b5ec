"""The ``sb3`` flavor: a Stable-Baselines3 policy network with the environment it acts in.

Only the policy is saved (``policy.pt``, written by SB3's ``BasePolicy.save``), not the algorithm:
a serving install needs no replay buffer, optimiser or learning-rate schedule. The manifest keeps
how to rebuild the environment (registered id or entry point, kwargs, the folder the entry point is
found in) and the observation and action spaces, so a rollout needs only this folder and Gymnasium.

The schema has one numeric column per flattened observation element (``obs_0``, ``obs_1``, ...);
a row may instead carry the whole observation as a list in an ``obs`` column (``{"obs": [..]}`` in
JSONL). Policies act deterministically (the mode of the action distribution).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import EnvironmentError_, ModelError, user_code_failed
from gravityml.models._base import GravityModel, ModelKind
from gravityml.schema import Column, Schema

PAYLOAD = "policy.pt"
OBS_COLUMN = "obs"

#: SB3 policy class per algorithm (their ``policy_aliases`` map "MlpPolicy" to these).
POLICY_CLASSES: dict[str, str] = {
    "ppo": "stable_baselines3.common.policies:ActorCriticPolicy",
    "a2c": "stable_baselines3.common.policies:ActorCriticPolicy",
    "dqn": "stable_baselines3.dqn.policies:DQNPolicy",
    "sac": "stable_baselines3.sac.policies:SACPolicy",
    "td3": "stable_baselines3.td3.policies:TD3Policy",
}


# ---- spaces ------------------------------------------------------------------------------------


def describe_space(space: Any) -> dict[str, Any]:
    """A JSON description of a Gymnasium space (type, shape, bounds, dtype)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        low, high = np.asarray(space.low), np.asarray(space.high)
        same = bool(np.all(low == low.flat[0]) and np.all(high == high.flat[0]))
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": float(low.flat[0]) if same else low.tolist(),
            "high": float(high.flat[0]) if same else high.tolist(),
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    return {"type": type(space).__name__}


def observation_size(description: dict[str, Any]) -> int:
    """How many numbers one observation of this space holds (one schema column each)."""
    kind = description["type"]
    if kind == "Discrete":
        return 1
    if kind == "Box":
        return int(np.prod(description["shape"])) if description["shape"] else 1
    if kind == "MultiDiscrete":
        return int(np.prod(np.asarray(description["nvec"]).shape))
    if kind == "MultiBinary":
        return int(np.prod(description["n"]))
    raise EnvironmentError_(
        f"observation space {kind} cannot be given to a policy as table rows",
        allowed=["Box", "Discrete", "MultiDiscrete", "MultiBinary"],
        got=kind,
        fix="wrap the environment in gymnasium.wrappers.FlattenObservation",
    )


def policy_schema(observation: dict[str, Any], action: dict[str, Any]) -> Schema:
    """One numeric column per observation element; discrete actions are the classes."""
    size = observation_size(observation)
    columns = tuple(Column(name=f"obs_{i}", kind="numeric", dtype="float64", nullable=False) for i in range(size))
    classes = None
    if action["type"] == "Discrete":
        classes = tuple(range(action["start"], action["start"] + action["n"]))
    return Schema(features=columns, target="action", classes=classes, extra={"observation_space": observation})


# ---- environments ------------------------------------------------------------------------------


@contextmanager
def search_path(folder: str | Path | None) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while a user's environment module is imported."""
    if not folder:
        yield
        return
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def import_entry_point(entry_point: str, folder: str | Path | None = None) -> Any:
    """The class or factory named ``package.module:Name``, found on ``sys.path`` or in ``folder``."""
    module_name, _, attr = entry_point.partition(":")
    if not module_name or not attr:
        raise EnvironmentError_(
            f"env.entry_point {entry_point!r} is not 'package.module:Name'",
            allowed="'package.module:Name'",
            got=entry_point,
            fix="write it as 'my_pkg.envs:GridWorld'",
        )
    try:
        with search_path(folder):
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvironmentError_(
            f"env.entry_point: module {module_name!r} cannot be imported ({exc})",
            allowed="a module on sys.path or beside the job spec",
            got=entry_point,
            fix=f"install the package, or put {module_name.replace('.', '/')}.py beside the job spec"
            + (f" (looked in {folder} and sys.path)" if folder else ""),
        ) from None
    except Exception as exc:  # the user's module itself raised while importing: their code, named
        raise EnvironmentError_(
            "env.entry_point: " + user_code_failed(exc, f"importing {module_name!r}"),
            allowed="a module that imports without error",
            got=entry_point,
            fix="correct that module (rerun with --debug for its traceback)",
        ) from exc
    target = getattr(module, attr, None)
    if target is None or not callable(target):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        raise EnvironmentError_(
            f"env.entry_point: {module_name!r} has no environment named {attr!r}",
            allowed=names,
            got=attr,
            fix="name a class or factory that module defines",
        )
    return target


def make_env(env: dict[str, Any], *, render_mode: str | None = None) -> Any:
    """One environment from a policy's (or a spec's) env description.

    ``env`` holds ``id`` or ``entry_point``, ``kwargs`` and ``search_path`` (the spec's folder).
    """
    import gymnasium as gym

    kwargs = dict(env.get("kwargs") or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if env.get("id"):
        try:
            return gym.make(env["id"], **kwargs)
        except gym.error.Error as exc:
            raise EnvironmentError_(
                f"environment {env['id']!r} cannot be made: {exc}",
                allowed="an id that Gymnasium's registry lists",
                got=env["id"],
                fix="use an id that `python -c 'import gymnasium; gymnasium.pprint_registry()'` lists",
            ) from None
        except (TypeError, ValueError) as exc:  # the env's constructor refused env.kwargs
            raise EnvironmentError_(
                f"environment {env['id']!r} rejected its kwargs: {str(exc).splitlines()[0]}",
                allowed="the arguments its constructor takes",
                got=kwargs,
                fix="correct env.kwargs to the arguments the environment takes",
            ) from None
    factory = import_entry_point(env["entry_point"], env.get("search_path"))
    if render_mode is not None and not _accepts(factory, "render_mode"):
        raise EnvironmentError_(
            f"environment {env['entry_point']!r} takes no render_mode, so it cannot be rendered",
            allowed="an environment whose constructor takes render_mode",
            got=env["entry_point"],
            fix="add a render_mode argument and an rgb_array render() to the environment",
        )
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise EnvironmentError_(
            f"environment {env['entry_point']!r} rejected its kwargs: {exc}",
            allowed="the arguments its constructor takes",
            got=sorted(kwargs),
            fix="correct env.kwargs to the arguments the environment takes",
        ) from None
    except Exception as exc:  # the user's env raised while being made (a bad kwarg value, a bug of theirs)
        raise EnvironmentError_(
            user_code_failed(exc, f"making environment {env['entry_point']!r} with env.kwargs {kwargs}"),
            allowed="an environment its constructor can make from env.kwargs",
            got=kwargs,
            fix="correct env.kwargs, or the environment's constructor (rerun with --debug for its traceback)",
        ) from exc


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


# ---- the model ---------------------------------------------------------------------------------


class PolicyModel(GravityModel):
    """A trained policy: observations in, actions out (with their probability where discrete)."""

    flavor = "sb3"

    def __init__(self, policy: Any, *, kind: ModelKind = "policy", schema: Schema, meta: dict[str, Any]) -> None:
        super().__init__(kind=kind, schema=schema, meta=meta)
        self.policy = policy
        self.policy.set_training_mode(False)

    @property
    def observation_space(self) -> dict[str, Any]:
        return dict(self.meta["observation_space"])

    @property
    def action_space(self) -> dict[str, Any]:
        return dict(self.meta["action_space"])

    @property
    def env(self) -> dict[str, Any]:
        return dict(self.meta["env"])

    def prepare(self, X: pd.DataFrame | np.ndarray | list[Any]) -> pd.DataFrame:
        """Rows of ``obs_i`` columns; also an ``obs`` column of lists, or arrays of observations."""
        if isinstance(X, pd.DataFrame) and OBS_COLUMN in X.columns and "obs_0" not in X.columns:
            X = _expand_obs_column(X, len(self.schema.features))
        elif not isinstance(X, pd.DataFrame):
            array = np.asarray(X, dtype="float64") if not isinstance(X, np.ndarray) else X
            size = len(self.schema.features)
            if array.ndim > 2 or (array.ndim == 2 and array.shape[1] != size):
                # one observation in its own shape, or a batch of them (images, grids)
                array = array.reshape(1, -1) if array.size == size else array.reshape(array.shape[0], -1)
            X = array
        return super().prepare(X)

    def observations(self, frame: pd.DataFrame) -> np.ndarray:
        """Validated rows as a batch of observations in the space's own shape and dtype."""
        space = self.observation_space
        values = frame.to_numpy(dtype="float64")
        if space["type"] == "Box":
            return values.reshape((len(frame), *space["shape"])).astype(space["dtype"])
        if space["type"] == "Discrete":
            return values[:, 0].astype("int64")
        if space["type"] == "MultiBinary":
            return values.reshape((len(frame), *np.atleast_1d(space["n"]))).astype("int8")
        return values.astype("int64")

    def act(self, observation: Any) -> Any:
        """The deterministic action for one observation in its native form (used by rollouts)."""
        action, _ = self.policy.predict(observation, deterministic=True)
        return action

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        obs = self.observations(frame)
        actions, _ = self.policy.predict(obs, deterministic=True)
        out = pd.DataFrame(index=frame.index)
        if self.action_space["type"] == "Discrete":
            out["prediction"] = np.asarray(actions, dtype="int64").reshape(-1) + self.action_space["start"]
            proba = self._probabilities(obs)
            out["confidence"] = proba[np.arange(len(frame)), out["prediction"].to_numpy() - self.action_space["start"]]
        else:
            # The list is what env.step takes; the numeric action_i columns are what typed
            # consumers (the OIP server's FP64 tensors, CSV files) read without parsing.
            rows = np.asarray(actions).reshape(len(frame), -1)
            out["prediction"] = [row.tolist() for row in rows]
            for i in range(rows.shape[1]):
                out[f"action_{i}"] = rows[:, i].astype("float64")
        return out

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.action_space["type"] != "Discrete":
            raise ModelError(
                f"a policy over a {self.action_space['type']} action space gives no action probabilities",
                allowed=["Discrete"],
                got=self.action_space["type"],
                fix="call predict() for the actions",
            )
        proba = self._probabilities(self.observations(frame))
        return pd.DataFrame(proba, columns=[str(c) for c in self.classes or ()], index=frame.index)

    def _probabilities(self, obs: np.ndarray) -> np.ndarray:
        """Action probabilities: the policy's own distribution, or for DQN a softmax of Q-values.

        DQN's greedy policy has no distribution; the Boltzmann (softmax) probabilities of its
        Q-values rank actions the same way and say how close the choice was.
        """
        import torch

        tensor, _ = self.policy.obs_to_tensor(obs)
        with torch.no_grad():
            if hasattr(self.policy, "get_distribution"):
                probs = self.policy.get_distribution(tensor).distribution.probs
            else:
                probs = torch.softmax(self.policy.q_net(tensor), dim=-1)
        return probs.float().cpu().numpy().astype("float64")

    def _save_payload(self, path: Path) -> None:
        self.policy.save(str(path / PAYLOAD))

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> PolicyModel:
        module_name, cls_name = POLICY_CLASSES[meta["algorithm"]].split(":")
        policy_cls = getattr(importlib.import_module(module_name), cls_name)
        policy = policy_cls.load(str(path / PAYLOAD), device="cpu")
        return cls(policy, kind=kind, schema=schema, meta=meta)


def _expand_obs_column(frame: pd.DataFrame, size: int) -> pd.DataFrame:
    rows = []
    for i, value in enumerate(frame[OBS_COLUMN], start=1):
        try:
            if isinstance(value, str):  # a CSV cell holding "[0.1, 0.2, ...]"
                value = json.loads(value)
            flat = np.asarray(value, dtype="float64").reshape(-1) if value is not None else np.empty(0)
        except (ValueError, TypeError):
            raise ModelError(
                f"row {i}: 'obs' is not a list of numbers",
                allowed="a list of numbers",
                got=value,
                fix="give each row an 'obs' list of numbers, e.g. [0.1, 0.2]",
            ) from None
        if flat.size != size:
            raise ModelError(
                f"row {i}: 'obs' holds {flat.size} numbers; the policy takes observations of {size}",
                allowed=size,
                got=flat.size,
                fix=f"give each row an 'obs' list of {size} numbers",
            )
        rows.append(flat)
    expanded = pd.DataFrame(rows, columns=[f"obs_{i}" for i in range(size)], index=frame.index)
    return pd.concat([frame.drop(columns=[OBS_COLUMN]), expanded], axis=1)
