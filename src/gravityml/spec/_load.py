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
    """The pydantic model class found by following ``loc`` from ``model`` (None if not a model).

    A part of ``loc`` may be a field name, or a key or index into a ``dict[str, Model]`` or
    ``list[Model]`` field (``datasets.credit.bogus`` in a catalog).
    """
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
            container = any(getattr(a, "__origin__", None) in (dict, list) for a in (annotation, *_args(annotation)))
            current = annotation if container else (_model_in(annotation) or annotation)
        elif _model_in(current) is not None:  # a container of models: this part is its key or index
            current = _model_in(current)
        else:
            return None
    found = current if isinstance(current, type) and issubclass(current, BaseModel) else None
    return found


def _args(annotation: Any) -> tuple[Any, ...]:
    return tuple(getattr(annotation, "__args__", ()) or ())


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
        return error_cls(path, "is required but missing", allowed=f"a value for {path}", got="nothing",
                         fix=f"add {path}")
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
            allowed="a letter, then letters, digits, '_', '.', '-' (at most 100)",
            got=got,
            fix="rename it",
        )
    if isinstance(got, Mapping):
        got = dict(got)
    if kind in _BOUNDS and "ctx" in err:
        bound = next(iter(ctx.values()))
        noun = _NOUNS.get(kind.split("_")[0], "values")
        if noun == "numbers" and _field_is_int(model, loc):
            noun = "integers"
        if kind.startswith(("too_", "string_too_")):  # a length: of a list, or of a string
            unit = "characters" if kind.startswith("string") else "items"
            return error_cls(path, f"must hold {_BOUNDS[kind]} {bound} {unit}", allowed=f"{_BOUNDS[kind]} {bound} {unit}",
                             got=got, fix=f"give {path} {_BOUNDS[kind]} {bound} {unit}")
        bounded = f"{noun} {_BOUNDS[kind]} {bound}"
        return error_cls(path, f"must be {_BOUNDS[kind]} {bound}", allowed=bounded, got=got,
                         fix=f"set {path} to a value {_BOUNDS[kind]} {bound}")
    if kind in _TYPES:
        return error_cls(path, f"must be {_TYPES[kind]}", allowed=_TYPES[kind], got=got,
                         fix=f"set {path} to {_TYPES[kind]}")
    if kind == "value_error":  # a validator of ours raised: its message already says what is wrong
        message = str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
        return error_cls(path, message, allowed="see the spec reference (gravityml spec-schema)", got=got,
                         fix=f"correct {path or 'the document'}")
    return error_cls(path, err["msg"].lower(), allowed=_ALLOWED.get(kind, "see `gravityml spec-schema`"), got=got,
                     fix=f"correct {path or 'the document'}")


def _field_is_int(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    parent = _sub_model(model, loc[:-1]) if loc else None
    field = parent.model_fields.get(str(loc[-1])) if parent else None
    if field is None:
        return False
    args = getattr(field.annotation, "__args__", None) or (field.annotation,)
    return int in args and float not in args


# pydantic's error kinds (https://docs.pydantic.dev/latest/errors/validation_errors/) in words.
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
    "too_short": "at least",
    "too_long": "at most",
    "string_too_short": "at least",
    "string_too_long": "at most",
}
_NOUNS = {"greater": "numbers", "less": "numbers"}
_TYPES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "tuple_type": "a list",
    "none_required": "nothing (null)",
}
_ALLOWED: dict[str, str] = {}


def parse_spec(document: Mapping[str, Any], *, base_dir: Path | None = None) -> JobSpec:
    """Validate a mapping (already parsed YAML or JSON) as a job spec."""
    if not isinstance(document, Mapping):
        raise SpecError(
            "",
            "a job spec must be a mapping of keys to values",
            allowed="a mapping (name: ..., task: ...)",
            got=type(document).__name__,
            fix="start the file with 'name:' and 'task:' lines",
        )
    try:
        spec = JobSpec.model_validate(dict(document), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise spec_error_from(exc, JobSpec) from None
    return spec.with_base_dir(base_dir or Path.cwd())


class DuplicateKey(Exception):
    """A mapping in a YAML document names the same key twice (``first``/``second``: 1-based lines)."""

    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error, not "last wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKey(str(key), seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str = "job spec") -> Any:
    """The document in ``path``: a mapping, list or scalar. A key given twice is refused (naming both lines)."""
    if not path.exists():
        raise SpecError(
            "", f"{what} {str(path)!r} does not exist", allowed="an existing YAML file", got=str(path),
            fix="check the path",
        )
    if path.is_dir():
        raise SpecError(
            "", f"{what} {str(path)!r} is a folder", allowed="a YAML file", got=str(path), fix="name a YAML file"
        )
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKey as exc:
        raise SpecError(
            "",
            f"{path}: key {exc.key!r} is given twice, at lines {exc.first} and {exc.second}",
            allowed="each key once per mapping",
            got=f"{exc.key!r} at lines {exc.first} and {exc.second}",
            fix=f"keep one of the two {exc.key!r} lines (YAML would silently use the last)",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            "", f"{path} is not valid YAML{where}: {problem}", allowed="YAML (https://yaml.org/spec/1.2.2/)",
            got=problem, fix="correct the YAML syntax",
        ) from None
    except UnicodeDecodeError:
        raise SpecError(
            "", f"{path} is not UTF-8 text", allowed="UTF-8 text", got="other bytes", fix="save it as UTF-8"
        ) from None
    except OSError as exc:
        raise SpecError(
            "", f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}", allowed="a readable file",
            got=str(path), fix="check the file's permissions",
        ) from None
    if document is None:
        raise SpecError(
            "", f"{what} {str(path)!r} is empty", allowed="a YAML mapping", got="", fix="write a spec in it"
        )
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
