"""Loading specs from YAML, with pydantic's errors turned into one actionable line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gravityml.errors import SpecError
from gravityml.spec._models import JobSpec, did_you_mean

M = TypeVar("M", bound=BaseModel)


def _sub_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class found by following ``loc`` from ``model`` (None if not a model)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _model_in(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def spec_error_from(exc: ValidationError, model: type[BaseModel], error_cls: type[SpecError] = SpecError) -> SpecError:
    """The first pydantic error as a :class:`SpecError` with path, allowed and got."""
    errors = exc.errors(include_url=False)
    # An unknown key usually explains a missing one beside it (``sorce`` for ``source``): say that.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = ".".join(str(p) for p in loc)
    kind = err["type"]
    got = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _sub_model(model, loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        key = str(loc[-1])
        return error_cls(
            path,
            f"unknown key {key!r}{did_you_mean(key, allowed)}",
            allowed=allowed,
            got=key,
            fix="remove it or correct its spelling",
        )
    if kind == "missing":
        return error_cls(path, "is required but missing", fix=f"add {path}")
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'\"") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        return error_cls(
            path,
            f"{got!r} is not allowed{did_you_mean(str(got), options)}",
            allowed=options,
            got=got,
            fix="use one of the allowed values",
        )
    if kind == "string_pattern_mismatch":
        return error_cls(
            path,
            "must start with a letter and hold only letters, digits, '_', '.', '-' (at most 100)",
            got=got,
            fix="rename it",
        )
    if isinstance(got, Mapping):
        got = dict(got)
    return error_cls(path, err["msg"].lower(), got=got, fix=f"correct {path or 'the document'}")


def parse_spec(document: Mapping[str, Any], *, base_dir: Path | None = None) -> JobSpec:
    """Validate a mapping (already parsed YAML or JSON) as a job spec."""
    if not isinstance(document, Mapping):
        raise SpecError(
            "",
            "a job spec must be a mapping of keys to values",
            got=type(document).__name__,
            fix="start the file with 'name:' and 'task:' lines",
        )
    try:
        spec = JobSpec.model_validate(dict(document), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise spec_error_from(exc, JobSpec) from None
    return spec.with_base_dir(base_dir or Path.cwd())


def read_yaml(path: Path, what: str = "job spec") -> Any:
    if not path.exists():
        raise SpecError(
            "", f"{what} {str(path)!r} does not exist", got=str(path), fix="check the path"
        )
    if path.is_dir():
        raise SpecError("", f"{what} {str(path)!r} is a folder", got=str(path), fix="name a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError("", f"{path} is not valid YAML{where}: {problem}", fix="correct the YAML syntax") from None
    except UnicodeDecodeError:
        raise SpecError("", f"{path} is not UTF-8 text", fix="save it as UTF-8") from None
    if document is None:
        raise SpecError("", f"{what} {str(path)!r} is empty", got="", fix="write a spec in it")
    return document


def load_spec(source: str | Path | Mapping[str, Any] | JobSpec) -> JobSpec:
    """A validated :class:`JobSpec` from a YAML path, a mapping, or a spec (returned as is).

    Relative data paths in a file's spec are resolved against the file's folder.
    """
    if isinstance(source, JobSpec):
        return source
    if isinstance(source, Mapping):
        return parse_spec(source)
    path = Path(source)
    return parse_spec(read_yaml(path), base_dir=path.resolve().parent)


def spec_json_schema() -> str:
    """The JSON Schema of the job spec, for editors (``# yaml-language-server: $schema=...``)."""
    schema = JobSpec.model_json_schema(mode="validation")
    _add_params_schemas(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gravityml job spec"
    return json.dumps(schema, indent=2, sort_keys=True)


def _add_params_schemas(schema: dict[str, Any]) -> None:
    """``model.params`` of each model type as its own definition, chosen by ``model.type``."""
    from gravityml.spec._catalog import MODEL_TYPES
    from gravityml.spec._params import params_json_schema

    defs = schema.setdefault("$defs", {})
    choices = []
    for name in sorted(MODEL_TYPES):
        defs[f"params_{name}"] = params_json_schema(name)
        choices.append(
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"properties": {"params": {"$ref": f"#/$defs/params_{name}"}}},
            }
        )
    model = defs["ModelSpec"]
    model["properties"]["type"]["enum"] = sorted(MODEL_TYPES)
    model["allOf"] = choices
