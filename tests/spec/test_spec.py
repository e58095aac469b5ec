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
        ({"train": {"epochs": 0}}, r"^train.epochs: must be >= 1; allowed: 'integers >= 1'; got: 0\. To fix: "),
        ({"train": {"lr": 0}}, r"^train.lr: must be > 0(\.0)?; allowed: 'numbers > 0(\.0)?'; got: 0\. To fix: "),
        ({"train": {"epochs": "ten"}}, r"^train.epochs: must be an integer; allowed: 'an integer'; got: 'ten'"),
        ({"task": "supervize"}, r"task: 'supervize' is not allowed \(did you mean 'supervised'\?\)"),
        ({"name": "1bad"}, r"name: must start with a letter"),
        ({"data": {"source": "sklearn:iris"}}, r"data.target: a supervised job needs a target column"),
        ({"data": None}, r"data: a supervised job needs data"),
        ({"env": {"id": "CartPole-v1"}}, r"env: only reinforcement jobs take an environment"),
        ({"model": {"type": "knn", "params": [1]}}, r"model.params: must be a mapping of keys to values; allowed: "),
        ({"data": {"source": "sklearn:iris", "target": "t", "split": {"test": 1.5}}}, r"data.split.test: must be < 1(\.0)?; allowed: 'numbers < 1(\.0)?'; got: 1.5"),
    ],
)
def test_bad_values_are_rejected_with_path_allowed_and_got(over: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        load_spec(base(**over))


def test_missing_required_key() -> None:
    doc = base()
    del doc["name"]
    with pytest.raises(SpecError, match=r"^name: is required but missing; allowed: 'a value for name'; got: 'nothing'\. To fix: add name"):
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


# ---- keys given twice, header-less CSVs, catalogs ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("name: a\nname: b\ntask: supervised\n", "name", (1, 2)),
        ("name: a\ntask: supervised\ndata:\n  source: x.csv\n  target: y\n  target: z\n", "target", (5, 6)),
        ("name: a\ntask: supervised\nmodel: {type: knn, type: svm}\n", "type", (3, 3)),
    ],
)
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path, text: str, key: str, lines: tuple) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    pattern = rf"key '{key}' is given twice, at lines {lines[0]} and {lines[1]}; allowed: 'each key once per mapping'"
    with pytest.raises(SpecError, match=pattern):
        load_spec(path)


def test_the_same_key_in_two_mappings_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: a\ntask: supervised\ndata: {source: sklearn:iris, target: target}\nmodel: {type: knn}\n"
                    "train: {seed: 1}\ncompute: {accelerator: cpu}\nplacement: {}\n")
    assert load_spec(path).train.seed == 1


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"header": False}, r"^data.columns: a CSV without a header row needs its column names; allowed: "),
        ({"columns": ["a", "b"]}, r"^data.columns: names columns of a file that has a header row"),
        ({"header": False, "columns": ["a", "a", "target"]}, r"^data.columns: names a column twice; allowed: 'each name once'; got: \['a'\]"),
    ],
)
def test_header_and_columns_must_agree(data: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        load_spec(base(data={"source": "rows.csv", "target": "target", **data}))


CATALOG = """sites:
  here: {kind: on_prem, provider: me, region: x, jurisdiction: DE, executor: local,
         offers: [{name: c, accelerator: cpu, per_node: 2, nodes: 1}]}
datasets:
  credit: {uri: sklearn:iris, site: here%s}
"""


def test_catalog_unknown_dataset_key_lists_what_a_dataset_takes(tmp_path: Path) -> None:
    from gravityml.data import load_catalog
    from gravityml.errors import CatalogError

    path = tmp_path / "gravityml.yaml"
    path.write_text(CATALOG % ", sitee: here")
    with pytest.raises(CatalogError, match=r"datasets.credit.sitee: unknown key 'sitee' \(did you mean 'site'\?\); "
                                           r"allowed: \[.*'site'.*'uri'\]; got: 'sitee'"):
        load_catalog(path)


def test_catalog_key_given_twice_is_refused(tmp_path: Path) -> None:
    from gravityml.data import load_catalog
    from gravityml.errors import CatalogError

    path = tmp_path / "gravityml.yaml"
    path.write_text(CATALOG % "" + "  credit: {uri: sklearn:wine, site: here}\n")
    with pytest.raises(CatalogError, match=r"key 'credit' is given twice, at lines 5 and 6; allowed: .*; got: .*To fix"):
        load_catalog(path)
