from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from gravityml.errors import SpecError
from gravityml.spec import JobSpec, load_spec, spec_json_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def base(**over: object) -> dict:
    doc: dict = {
        "name": "x",
        "task": "supervised",
        "data": {"source": "sklearn:iris", "target": "target"},
        "model": {"type": "knn"},
    }
    doc.update(over)
    return doc


def test_example_loads_with_defaults_and_base_dir() -> None:
    spec = load_spec(EXAMPLES / "tumor.yaml")
    assert spec.name == "tumor"
    assert spec.model.type == "hist_gradient_boosting"
    assert spec.compute.devices == 1
    assert spec.base_dir == EXAMPLES
    assert spec.experiment_name == "tumor"


def test_model_type_typo_suggests_the_closest() -> None:
    with pytest.raises(SpecError, match=r"model.type: 'hist_gradient_boostng' .*\(did you mean 'hist_gradient_boosting'.*allowed: \[.*'knn'"):
        load_spec(base(model={"type": "hist_gradient_boostng"}))


def test_unknown_key_is_named_with_its_path_and_suggestion() -> None:
    with pytest.raises(SpecError, match=r"^data.sorce: unknown key 'sorce' \(did you mean 'source'\?\)"):
        load_spec(base(data={"sorce": "sklearn:iris", "target": "target"}))


def test_unknown_top_level_key_lists_allowed_keys() -> None:
    with pytest.raises(SpecError, match=r"^bogus: unknown key .*allowed: \[.*'compute'.*\]"):
        load_spec(base(bogus=1))


@pytest.mark.parametrize(
    ("over", "pattern"),
    [
        ({"compute": {"precision": "fp8"}}, r"compute.precision: 'fp8' is not allowed; allowed: \['fp64', 'fp32', 'bf16', 'fp16', 'auto'\]"),
        ({"compute": {"accelerator": "tpu"}}, r"compute.accelerator: 'tpu' is not allowed"),
        ({"train": {"epochs": 0}}, r"train.epochs: input should be greater than or equal to 1; got: 0"),
        ({"task": "supervize"}, r"task: 'supervize' is not allowed \(did you mean 'supervised'\?\)"),
        ({"name": "1bad"}, r"name: must start with a letter"),
        ({"data": {"source": "sklearn:iris"}}, r"data.target: a supervised job needs a target column"),
        ({"data": None}, r"data: a supervised job needs data"),
        ({"env": {"id": "CartPole-v1"}}, r"env: only reinforcement jobs take an environment"),
        ({"model": {"type": "knn", "params": [1]}}, r"model.params: input should be a valid dictionary"),
        ({"data": {"source": "sklearn:iris", "target": "t", "split": {"test": 1.5}}}, r"data.split.test: input should be less than 1"),
    ],
)
def test_bad_values_are_rejected_with_path_allowed_and_got(over: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        load_spec(base(**over))


def test_missing_required_key() -> None:
    doc = base()
    del doc["name"]
    with pytest.raises(SpecError, match=r"^name: is required but missing\. To fix: add name"):
        load_spec(doc)


def test_yaml_problems_are_spec_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ntask: [supervised\n")
    with pytest.raises(SpecError, match=r"not valid YAML at line \d+"):
        load_spec(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SpecError, match="is empty"):
        load_spec(empty)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(listing)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_spec_is_immutable() -> None:
    spec = load_spec(base())
    with pytest.raises(Exception, match="frozen"):
        spec.name = "y"  # type: ignore[misc]


def test_json_schema_validates_the_examples_and_rejects_bad_documents() -> None:
    schema = json.loads(spec_json_schema())
    assert schema["title"] == "gravityml job spec"
    for path in sorted(EXAMPLES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict) or "task" not in document:
            continue  # catalogs and other files that are not job specs
        jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(base(bogus=1), schema)


def test_round_trip_through_json() -> None:
    spec = load_spec(base(train={"epochs": 3}))
    again = JobSpec.model_validate(json.loads(spec.model_dump_json()))
    assert again == spec
