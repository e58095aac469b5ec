"""Every built-in model type's parameters are its estimator's, checked when the spec is loaded."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gravityml.errors import SpecError
from gravityml.spec import MODEL_TYPES, load_entry_point, load_spec, param_schema, spec_json_schema


def doc(model_type: str, params: dict[str, Any], task: str = "supervised") -> dict[str, Any]:
    out: dict[str, Any] = {"name": "p", "task": task, "model": {"type": model_type, "params": params}}
    if task == "reinforcement":
        out["env"] = {"id": "CartPole-v1"}
    else:
        out["data"] = {"source": "sklearn:iris", "target": "target"}
    return out


@pytest.mark.parametrize(
    ("model_type", "task", "params", "pattern"),
    [
        ("mlp", "supervised", {"hiden": 3}, r"^model.params.hiden: 'hiden' is not a parameter of the mlp network \(did you mean 'hidden'\?\); allowed: \['dropout', 'hidden'\]; got: 'hiden'. To fix: remove it or correct its spelling"),
        ("random_forest", "supervised", {"n_estimatorz": 10}, r"^model.params.n_estimatorz: .*random_forest \(RandomForestClassifier, RandomForestRegressor\) \(did you mean 'n_estimators'\?\); allowed: \[.*'n_estimators'.*\]; got: 'n_estimatorz'. To fix: "),
        ("ppo", "reinforcement", {"n_stepz": 8}, r"^model.params.n_stepz: .*ppo \(PPO\) \(did you mean 'n_steps'\?\); allowed: \[.*'n_steps'.*\]; got: 'n_stepz'. To fix: "),
        ("kmeans", "unsupervised", {"n_clustrs": 3}, r"did you mean 'n_clusters'"),
        ("text", "supervised", {"max_token": 3}, r"did you mean 'max_tokens'"),
        ("label_spreading", "semi_supervised", {"n_neighbours": 3}, r"did you mean 'n_neighbors'"),
        ("self_training", "semi_supervised", {"base": "svm", "base_params": {"CC": 1}}, r"^model.params.base_params.CC: 'CC' is not a parameter of svm"),
        ("pseudo_label", "semi_supervised", {"base_params": {"dropuot": 0.1}}, r"^model.params.base_params.dropuot: .*did you mean 'dropout'"),
        ("random_forest", "semi_supervised", {"treshold": 0.5}, r"did you mean 'threshold'"),
    ],
)
def test_a_misspelt_parameter_is_refused_when_the_spec_loads(model_type: str, task: str, params: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        load_spec(doc(model_type, params, task))


@pytest.mark.parametrize(
    ("model_type", "params", "pattern"),
    [
        ("random_forest", {"n_estimators": 0}, r"^model.params.n_estimators: random_forest refuses n_estimators=0 .*allowed: 'an int in the range \[1, inf\)'; got: 0"),
        ("logistic_regression", {"penalty": "l3"}, r"model.params.penalty: .*refuses penalty='l3'"),
        ("mlp", {"hidden": "64"}, r"^model.params.hidden: the mlp network takes hidden as list\[int\]"),
        ("cnn", {"channels": 2.5}, r"^model.params.channels: the cnn network takes channels as int"),
    ],
)
def test_a_value_the_estimator_refuses_is_refused_when_the_spec_loads(model_type: str, params: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        load_spec(doc(model_type, params))


def test_platform_set_arguments_are_refused_with_the_reason() -> None:
    with pytest.raises(SpecError, match=r"'n_inputs' is not a parameter of the mlp network: the platform sets it from the data"):
        load_spec(doc("mlp", {"n_inputs": 3}))


def test_good_params_and_gravityml_own_keys_pass() -> None:
    load_spec(doc("random_forest", {"n_estimators": 10, "max_depth": 3}))
    load_spec(doc("kmeans", {"n_clusters": "auto", "n_clusters_range": [2, 4], "batch_size": 64}, "unsupervised"))
    load_spec(doc("mlp", {"hidden": [8], "dropout": 0.0}))
    load_spec(doc("ppo", {"n_steps": 8, "learning_rate": "lin_1e-3"}, "reinforcement"))


@pytest.mark.parametrize("name", sorted(n for n, row in MODEL_TYPES.items() if not row.entry_point))
def test_every_built_in_type_has_the_schema_of_its_own_classes(name: str) -> None:
    """The schema is the union of the signatures of the row's classes, less what the platform sets."""
    row = MODEL_TYPES[name]
    task = sorted(row.tasks)[0]
    schema = param_schema(name, task)
    expected: set[str] = set(row.own_params(task))
    for entry in row.estimators.values():
        obj = load_entry_point(entry)
        target = obj.__init__ if inspect.isclass(obj) else obj
        expected |= {
            p.name for p in inspect.signature(target).parameters.values()
            if p.name != "self" and p.name not in row.platform_set and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
    assert set(schema) == expected
    assert schema, f"{name} has no parameters"
    assert all(p.allowed for p in schema.values())


def test_spec_schema_exports_each_types_params_and_refuses_a_misspelling() -> None:
    schema = json.loads(spec_json_schema())
    rf = schema["$defs"]["params_random_forest"]
    assert rf["additionalProperties"] is False and "an int in the range [1, inf)" in rf["properties"]["n_estimators"]["description"]
    assert set(schema["$defs"]["params_mlp"]["properties"]) == {"hidden", "dropout"}
    jsonschema.validate(doc("random_forest", {"n_estimators": 10}), schema)
    with pytest.raises(jsonschema.ValidationError, match="n_estimatorz"):
        jsonschema.validate(doc("random_forest", {"n_estimatorz": 10}), schema)


def test_validate_lists_the_parameters_and_refuses_a_misspelling(cli, tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc("random_forest", {"n_estimators": 10})), encoding="utf-8")
    code, out, _ = cli("validate", str(path))
    assert code == 0
    assert "model.params of random_forest" in out and "* n_estimators" in out and "max_depth" in out
    path.write_text(yaml.safe_dump(doc("mlp", {"hiden": 3})), encoding="utf-8")
    code, _, err = cli("validate", str(path))
    assert code == 2
    assert "model.params.hiden: 'hiden' is not a parameter of the mlp network (did you mean 'hidden'?)" in err
    assert "allowed: ['dropout', 'hidden']" in err and "got: 'hiden'" in err and "To fix:" in err
