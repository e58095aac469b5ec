"""Every failure a user can cause, as one typed tree.

Each error carries four parts, in the order a person needs them: *what* went wrong, what was
*allowed*, what the platform *got*, and how *to fix* it. ``str(err)`` joins them on one line, which
is what the CLI prints before it exits with code 2.

::

    GravityMLError
     ├── SpecError              a job spec that does not validate (path, allowed, got)
     │    └── CatalogError      a catalog (gravityml.yaml) that does not validate
     ├── DataError              a data source that cannot be read, or is empty
     │    └── SchemaError       rows that do not match a model's saved schema
     ├── ModelError             a trained model that cannot be used as asked
     │    └── ModelNotFoundError  a reference (NAME, NAME/3, NAME@alias) that resolves to nothing
     ├── ComputeError           an accelerator or precision that this machine does not have
     ├── TrainingError          training that cannot go on (bad params for the estimator, ...)
     ├── EnvironmentError_      a reinforcement-learning environment that breaks the Gymnasium API
     ├── PlacementError         no site can take the job
     │    ├── PolicyError       a site that policy forbids for the job's data
     │    └── BudgetError       a forecast or metered cost over what remains of a budget
     ├── ExecutorError          a site's cluster that cannot be reached, refuses, or is missing
     │    └── JobFailedError    a job that failed, or was stopped, on a site's cluster
     ├── InferenceError         a bad inference request (shape, datatype, unknown tensor)
     │    └── ExportError       an export that failed, or whose parity check failed
     └── WorkspaceError         a workspace or tracking store that cannot be used
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetError",
    "CatalogError",
    "ComputeError",
    "DataError",
    "EnvironmentError_",
    "ExecutorError",
    "ExportError",
    "GravityMLError",
    "GravityMLWarning",
    "InferenceError",
    "JobFailedError",
    "ModelError",
    "ModelNotFoundError",
    "PlacementError",
    "PolicyError",
    "SchemaError",
    "SpecError",
    "TrainingError",
    "WorkspaceError",
]


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
        shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in items[:20])
        more = f", ... ({len(items) - 20} more)" if len(items) > 20 else ""
        return f"[{shown}{more}]"
    return repr(value) if isinstance(value, str) else str(value)


def raised_at(exc: BaseException) -> str:
    """``" (file.py, line 3)"``: where a user's own code (an entry point, an env) raised ``exc``."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    return f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""


def user_code_failed(exc: BaseException, doing: str) -> str:
    """``"importing 'envs.grid' raised RuntimeError: boom (envs/grid.py, line 3)"``: one line about a user's code."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{doing} raised {type(exc).__name__}" + (f": {first}" if first else "") + raised_at(exc)


class GravityMLError(Exception):
    """Base of every error a user can cause.

    ``what`` says what went wrong; ``allowed`` what would have been accepted; ``got`` what was
    received; ``fix`` one sentence (or a command) that repairs it.
    """

    exit_code = 2
    _unset: Any = object()

    def __init__(
        self,
        what: str,
        *,
        allowed: Any = _unset,
        got: Any = _unset,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.allowed = None if allowed is self._unset else allowed
        self.got = None if got is self._unset else got
        self._has_allowed = allowed is not self._unset
        self._has_got = got is not self._unset
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.what]
        if self._has_allowed:
            parts.append(f"allowed: {_show(self.allowed)}")
        if self._has_got:
            parts.append(f"got: {_show(self.got)}")
        text = "; ".join(parts)
        if self.fix:
            text += f". To fix: {self.fix}"
        return text.replace("\n", " ")

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # crosses processes (a search's trial worker) with every part
        return _rebuild, (type(self), dict(self.__dict__))


def _rebuild(cls: type[GravityMLError], state: dict[str, Any]) -> GravityMLError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err.message)
    return err


class SpecError(GravityMLError):
    """A job spec that does not validate. ``path`` is the dotted location (``model.type``)."""

    def __init__(self, path: str, what: str, **kwargs: Any) -> None:
        self.path = path
        super().__init__(f"{path}: {what}" if path else what, **kwargs)


class CatalogError(SpecError):
    """A catalog file (sites, datasets, policies) that does not validate."""


class DataError(GravityMLError):
    """A data source that cannot be read, is empty, or lacks what the spec names."""


class SchemaError(DataError):
    """Rows that do not match the schema a model was trained on."""


class ModelError(GravityMLError):
    """A trained model that cannot be used as asked."""


class ModelNotFoundError(ModelError):
    """A model reference that resolves to no registered version."""


class ComputeError(GravityMLError):
    """An accelerator, device count or precision that this machine does not offer."""


class TrainingError(GravityMLError):
    """Training that cannot start or go on because of what the spec asked for."""


class EnvironmentError_(GravityMLError):  # noqa: N801 - avoids shadowing the builtin
    """A reinforcement-learning environment that cannot be made or breaks the Gymnasium API."""


class PlacementError(GravityMLError):
    """No site can take the job as asked."""


class PolicyError(PlacementError):
    """A placement that a data policy forbids."""


class BudgetError(PlacementError):
    """A cost (forecast or metered) over what remains of a budget."""


class ExecutorError(GravityMLError):
    """A site that cannot run the job: no executor, an unreachable or refusing cluster, a bad job id."""


class JobFailedError(ExecutorError):
    """A job that ended FAILED or STOPPED on a site's cluster (its last log lines are on the run)."""


class InferenceError(GravityMLError):
    """An inference request that does not fit the model."""


class ExportError(InferenceError):
    """An export that could not be made, or whose parity with the original is too poor."""


class WorkspaceError(GravityMLError):
    """A workspace folder or tracking store that cannot be used."""


class GravityMLWarning(UserWarning):
    """Something the user should hear about that does not stop the job (a model at chance level,
    documents cut at ``max_tokens``); the same words land in a tag on the run and version."""
