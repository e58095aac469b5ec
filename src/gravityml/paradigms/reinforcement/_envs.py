"""Environments for training and evaluation: made from the spec, checked, vectorised."""

from __future__ import annotations

import warnings
from typing import Any

from gravityml.errors import EnvironmentError_
from gravityml.models._policy import describe_space, import_entry_point, make_env, observation_size
from gravityml.spec import JobSpec


def env_description(spec: JobSpec) -> dict[str, Any]:
    """What a policy keeps to rebuild its environment (the spec's folder finds entry points)."""
    assert spec.env is not None  # the spec requires env for reinforcement
    return {
        "id": spec.env.id,
        "entry_point": spec.env.entry_point,
        "kwargs": dict(spec.env.kwargs),
        "search_path": str(spec.base_dir) if spec.env.entry_point else None,
    }


def check_user_env(env: dict[str, Any]) -> list[str]:
    """Run Gymnasium's environment checker on a user's environment; its warnings are returned.

    An environment that breaks the API (wrong reset/step signature, observations outside the
    declared space, ...) is refused with the checker's own reason.
    """
    from gymnasium.utils.env_checker import check_env

    instance = make_env(env)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(instance.unwrapped if hasattr(instance, "unwrapped") else instance, skip_render_check=True)
    except Exception as exc:  # the checker raises AssertionError, TypeError, ... with the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EnvironmentError_(
            f"environment {env['entry_point']!r} breaks the Gymnasium API: {reason}",
            allowed="an environment that passes gymnasium.utils.env_checker.check_env",
            got=env["entry_point"],
            fix="correct the environment (see https://gymnasium.farama.org/introduction/create_custom_env/)",
        ) from None
    finally:
        _close(instance)
    return sorted({str(w.message).splitlines()[0] for w in caught})


def spaces_of(env: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Descriptions of the observation and action spaces (the observation must fit in table rows)."""
    instance = make_env(env)
    try:
        observation = describe_space(instance.observation_space)
        action = describe_space(instance.action_space)
    finally:
        _close(instance)
    observation_size(observation)  # refuses Dict/Tuple observations with a fix
    return observation, action


def vec_env(env: dict[str, Any], n_envs: int, seed: int) -> Any:
    """``n_envs`` copies in a DummyVecEnv, each wrapped in SB3's Monitor (episode returns).

    DummyVecEnv steps the copies in turn in this process: for small environments the cost of
    sending steps to subprocesses is more than the step itself.
    """
    from stable_baselines3.common.env_util import make_vec_env

    if env.get("id"):
        return make_vec_env(env["id"], n_envs=n_envs, seed=seed, env_kwargs=env["kwargs"])
    factory = import_entry_point(env["entry_point"], env.get("search_path"))
    return make_vec_env(factory, n_envs=n_envs, seed=seed, env_kwargs=env["kwargs"])


def _close(instance: Any) -> None:
    try:
        instance.close()
    except Exception:  # closing a broken user env must not hide the checker's reason
        pass
