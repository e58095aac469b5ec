"""``model.params`` checked when a spec is loaded, against the model type's own parameter schema.

The schema of a row of :data:`~gravityml.spec._catalog.MODEL_TYPES` is read from the classes it
names: a scikit-learn estimator's constructor and its ``_parameter_constraints`` (the constraints
scikit-learn itself checks on ``fit``, https://scikit-learn.org/stable/developers/develop.html),
a torch network's signature and annotations, a Stable-Baselines3 algorithm's signature; plus the
keys gravityml reads itself. A user's entry point is imported and its factory's signature read
the same way. Nothing is copied by hand, so a new library version brings its own parameters.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gravityml.errors import SpecError, user_code_failed
from gravityml.spec._catalog import MODEL_TYPES, ModelType

_NO_DEFAULT = "(required)"
#: Cluster-count parameters where gravityml accepts ``auto`` (it searches n_clusters_range).
AUTO_COUNT = ("n_clusters", "n_components")


@dataclass(frozen=True)
class Param:
    """One parameter a model type takes: where it comes from, what it accepts, its default."""

    name: str
    allowed: str
    default: str
    source: str


def did_you_mean(word: str, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---- entry points ------------------------------------------------------------------------------


@contextmanager
def importable_from(base_dir: Path | None) -> Iterator[None]:
    """``base_dir`` (the spec's folder) first on ``sys.path`` while a user's module is imported."""
    if base_dir is None or str(base_dir) in sys.path:
        yield
        return
    sys.path.insert(0, str(base_dir))
    try:
        yield
    finally:
        if str(base_dir) in sys.path:
            sys.path.remove(str(base_dir))


def load_entry_point(entry_point: str, path: str = "model.entry_point", base_dir: Path | None = None) -> Any:
    """The object ``"package.module:name"`` names, imported now; a typed error says what is missing."""
    module_name, sep, attr = entry_point.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(
            path,
            "an entry point is 'package.module:name'",
            got=entry_point,
            fix="write e.g. entry_point: 'my_pkg.nets:build' or 'xgboost:XGBClassifier'",
        )
    with importable_from(base_dir):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise SpecError(
                path,
                f"module {exc.name!r} cannot be imported (needed by {entry_point!r})",
                got=entry_point,
                fix=f"install the package that provides {exc.name!r}, or put it beside the spec "
                "or on PYTHONPATH",
            ) from None
        except Exception as exc:  # the user's module itself raised while importing: their code, named
            raise SpecError(
                path,
                user_code_failed(exc, f"importing {module_name!r}"),
                allowed="a module that imports without error",
                got=entry_point,
                fix="correct that module (rerun with --debug for its traceback)",
            ) from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(
                n for n, v in vars(module).items()
                if not n.startswith("_") and callable(v) and str(getattr(v, "__module__", module_name)).startswith(module_name)
            )
            raise SpecError(
                path,
                f"{module_name!r} has no {attr!r}{did_you_mean(part, names)}",
                allowed=names,
                got=attr,
                fix="name a class or function the module defines",
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(path, f"{entry_point!r} is not callable", got=type(obj).__name__, fix="name a class or factory function")
    return obj


@functools.cache
def _entry(entry_point: str) -> Any:
    return load_entry_point(entry_point)


# ---- schemas from signatures -------------------------------------------------------------------


def _callable_signature(obj: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations only lose the type check
        hints = {}
    return signature, hints


def _takes_any_keyword(obj: Any) -> bool:
    signature, _ = _callable_signature(obj)
    return any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


def _sklearn_constraint(cls: Any, name: str) -> str:
    constraints = getattr(cls, "_parameter_constraints", {}).get(name)
    if not constraints:
        return "any value the estimator accepts"
    try:
        from sklearn.utils._param_validation import make_constraint

        return " or ".join(str(make_constraint(c)) for c in constraints)
    except Exception:  # noqa: BLE001 - a constraint scikit-learn cannot render
        return "see the estimator's documentation"


def _signature_params(obj: Any, skip: tuple[str, ...]) -> dict[str, Param]:
    signature, hints = _callable_signature(obj)
    source = getattr(obj, "__name__", str(obj))
    out: dict[str, Param] = {}
    for name, p in signature.parameters.items():
        if name == "self" or name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if hasattr(obj, "_parameter_constraints"):
            allowed = _sklearn_constraint(obj, name)
        elif name in hints:
            allowed = _type_name(hints[name])
        else:
            allowed = "any"
        default = _NO_DEFAULT if p.default is p.empty else repr(p.default)
        out[name] = Param(name, allowed, default, source)
    return out


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


@functools.cache
def _row_params(name: str, task: str) -> dict[str, Param]:
    row = MODEL_TYPES[name]
    out: dict[str, Param] = {}
    for entry in row.estimators.values():
        for key, param in _signature_params(_entry(entry), row.platform_set).items():
            out.setdefault(key, param)
    if row.defaults:
        module, _, attr = row.defaults.partition(":")
        defaults = getattr(importlib.import_module(module), attr).get(name, {})
        out = {k: Param(k, p.allowed, repr(defaults[k]) if k in defaults else p.default, p.source) for k, p in out.items()}
    for key, text in row.own_params(task).items():
        out[key] = Param(key, text, "", "gravityml")
    return out


def param_schema(name: str, task: str) -> dict[str, Param]:
    """Every parameter ``model.params`` may hold for ``name`` under ``task``, by name."""
    return dict(_row_params(name, task))


def model_param_names(name: str, task: str, params: dict[str, Any]) -> set[str]:
    """The model parameters a search may vary: the type's schema, or for a user's own model (an entry
    point, whose parameters gravityml cannot list) the ones its spec gives."""
    from gravityml.spec._catalog import MODEL_TYPES

    return set(params) if MODEL_TYPES[name].entry_point else set(param_schema(name, task))


# ---- the check ---------------------------------------------------------------------------------


def check_model_params(
    row: ModelType,
    task: str,
    params: Mapping[str, Any],
    *,
    problem: str = "auto",
    factory: Any = None,
    path: str = "model.params",
) -> None:
    """Refuse unknown names and values the estimator's constraints reject, naming the fix."""
    if row.entry_point:
        _check_factory_params(row, factory, params, path)
        return
    schema = _row_params(row.name, task)
    _refuse_unknown(row, params, schema, path)
    own = row.own_params(task)
    if row.name == "self_training" or (row.name == "pseudo_label" and params.get("base", "mlp") != "mlp"):
        _check_base(params, path, default="logistic_regression")
    elif row.name == "pseudo_label":
        check_model_params(MODEL_TYPES["mlp"], "supervised", dict(params.get("base_params") or {}), path=f"{path}.base_params")
    given = {k: v for k, v in params.items() if k not in own and not (k in AUTO_COUNT and v == "auto")}
    if task == "semi_supervised" and "classification" in row.estimators:
        problem = "classification"
    if row.backend == "sklearn":
        _check_sklearn_values(row, given, problem, path)
    elif row.backend == "torch":
        _check_typed_values(row, given, path)


def _label(row: ModelType) -> str:
    classes = sorted({e.rpartition(":")[2] for e in row.estimators.values()})
    if row.backend == "torch":
        return f"the {row.name} network"
    return f"{row.name} ({', '.join(classes)})" if classes else row.name


def _refuse_unknown(row: ModelType, params: Mapping[str, Any], schema: Mapping[str, Param], path: str) -> None:
    allowed = sorted(schema)
    for key in params:
        if key in schema:
            continue
        if key in row.platform_set:
            source = "env, train.seed and compute" if row.backend == "sb3" else "the data"
            raise SpecError(
                f"{path}.{key}",
                f"{key!r} is not a parameter of {_label(row)}: the platform sets it from {source}",
                allowed=allowed,
                got=key,
                fix="remove it (set the device in compute, the seed in train.seed)",
            )
        raise SpecError(
            f"{path}.{key}",
            f"{key!r} is not a parameter of {_label(row)}{did_you_mean(key, allowed)}",
            allowed=allowed,
            got=key,
            fix="remove it or correct its spelling (gravityml spec-schema lists the parameters of every type)",
        )


def _check_base(params: Mapping[str, Any], path: str, *, default: str) -> None:
    from gravityml.spec._catalog import model_types_where

    classifiers = sorted(
        n for n in model_types_where(backend="sklearn", entry_point=False) if "classification" in MODEL_TYPES[n].estimators
    )
    base = params.get("base", default)
    if base not in classifiers:
        raise SpecError(
            f"{path}.base",
            f"{base!r} is not a supervised scikit-learn classifier{did_you_mean(str(base), classifiers)}",
            allowed=classifiers,
            got=base,
            fix="name a supervised classifier type (for the torch mlp use model.type: pseudo_label with base: mlp)",
        )
    check_model_params(
        MODEL_TYPES[base], "supervised", dict(params.get("base_params") or {}), problem="classification",
        path=f"{path}.base_params",
    )


def _check_sklearn_values(row: ModelType, params: Mapping[str, Any], problem: str, path: str) -> None:
    if not params:
        return
    roles = [r for r in row.estimators if problem == "auto" or r not in ("classification", "regression") or r == problem]
    classes = [_entry(row.estimators[r]) for r in roles]
    _check_with_constraints(classes, params, path, row.name)


def _check_with_constraints(classes: list[Any], params: Mapping[str, Any], path: str, label: str) -> None:
    """Pass when one of ``classes`` takes ``params`` (a type that classifies and regresses)."""
    from sklearn.utils._param_validation import InvalidParameterError

    first: tuple[str, str, Any] | None = None
    for cls in classes:
        names = set(inspect.signature(cls.__init__).parameters)
        if not set(params) <= names:
            continue
        try:
            estimator = cls(**params)
            validate = getattr(estimator, "_validate_params", None)
            if validate is not None:
                validate()
            return
        except (InvalidParameterError, TypeError, ValueError) as exc:
            text = str(exc).strip().splitlines()[0]
            key = next((k for k in params if f"'{k}'" in text), next(iter(params)))
            first = first or (key, text, cls)
    if first is None:
        return
    key, text, cls = first
    constraint = _sklearn_constraint(cls, key)
    raise SpecError(
        f"{path}.{key}",
        f"{label} refuses {key}={params[key]!r} ({cls.__name__}: {text.split('. Got')[0]})",
        allowed=constraint,
        got=params[key],
        fix=f"give {key} a value that is {constraint}",
    )


def _check_typed_values(row: ModelType, params: Mapping[str, Any], path: str) -> None:
    from pydantic import TypeAdapter, ValidationError

    for entry in row.estimators.values():
        _, hints = _callable_signature(_entry(entry))
        for key, value in params.items():
            if key not in hints:
                continue
            try:
                TypeAdapter(hints[key]).validate_python(value, strict=True)
            except ValidationError as exc:
                raise SpecError(
                    f"{path}.{key}",
                    f"the {row.name} network takes {key} as {_type_name(hints[key])}: "
                    f"{exc.errors(include_url=False)[0]['msg'].lower()}",
                    allowed=_type_name(hints[key]),
                    got=value,
                    fix=f"write {key} as {_type_name(hints[key])}",
                ) from None


def _check_factory_params(row: ModelType, factory: Any, params: Mapping[str, Any], path: str) -> None:
    """A user's factory or estimator class takes exactly the params its signature names."""
    if factory is None or not params:
        return
    skip = row.platform_set
    if _takes_any_keyword(factory):
        return
    schema = _signature_params(factory, skip)
    allowed = sorted(schema)
    for key in params:
        if key not in schema:
            raise SpecError(
                f"{path}.{key}",
                f"{key!r} is not a parameter of {getattr(factory, '__qualname__', factory)}{did_you_mean(key, allowed)}",
                allowed=allowed,
                got=key,
                fix="remove it or correct its spelling",
            )
    if hasattr(factory, "_parameter_constraints"):
        _check_with_constraints([factory], params, path, getattr(factory, "__name__", "the estimator"))


def factory_schema(factory: Callable[..., Any], row: ModelType) -> dict[str, Param]:
    """The parameters of a user's factory (for ``gravityml validate``)."""
    return _signature_params(factory, row.platform_set)


# ---- JSON Schema -------------------------------------------------------------------------------


def params_json_schema(name: str) -> dict[str, Any]:
    """A JSON Schema for ``model.params`` of ``name``: the names it takes, each with its constraint."""
    row = MODEL_TYPES[name]
    if row.entry_point:
        return {"type": "object", "description": f"params of your {row.name} entry point (its signature)"}
    props: dict[str, Any] = {}
    for task in sorted(row.tasks):
        for key, p in _row_params(name, task).items():
            text = f"{p.allowed} (default {p.default})" if p.default else p.allowed
            props.setdefault(key, {"description": f"{p.source}: {text}"})
    return {"type": "object", "additionalProperties": False, "properties": props, "title": f"{name} params"}
