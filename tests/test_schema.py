from __future__ import annotations

import pandas as pd
import pytest

from gravityml.errors import DataError, SchemaError
from gravityml.schema import Schema

TRAIN = pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["red", "blue", "red"], "b": [True, False, True], "y": [0, 1, 0]})
SCHEMA = Schema.from_frame(TRAIN, target="y", problem="classification", classes=[0, 1])


def test_round_trip_through_dict() -> None:
    assert Schema.from_dict(SCHEMA.to_dict()) == SCHEMA


def test_valid_rows_are_coerced_in_training_order_extra_columns_dropped() -> None:
    rows = pd.DataFrame({"extra": [9], "b": ["false"], "c": ["blue"], "n": ["2.5"]})
    out = SCHEMA.validate(rows)
    assert list(out.columns) == ["n", "c", "b"]
    assert out.loc[0, "n"] == 2.5 and out.loc[0, "b"] == 0.0


def test_missing_values_are_allowed_where_training_had_them() -> None:
    seen = Schema.from_frame(pd.DataFrame({"n": [1.0, None], "c": ["red", None], "b": [True, False]}))
    assert [c.nullable for c in seen.features] == [True, True, False]
    out = seen.validate(pd.DataFrame({"n": [None], "c": [None], "b": [True]}))
    assert out["n"].isna().all() and out["c"].isna().all()


@pytest.mark.parametrize(
    ("rows", "column", "row"),
    [
        (pd.DataFrame({"n": [1.0, None], "c": ["red", "red"], "b": [True, True]}), "n", 2),
        (pd.DataFrame({"n": ["1.0", " "], "c": ["red", "red"], "b": [True, True]}), "n", 2),
        (pd.DataFrame({"n": [1.0], "c": [None], "b": [True]}), "c", 1),
        (pd.DataFrame({"n": [1.0, 2.0], "c": ["red", "red"], "b": [True, None]}), "b", 2),
    ],
)
def test_an_empty_value_where_the_schema_says_nullable_false_is_refused(rows: pd.DataFrame, column: str, row: int) -> None:
    # TRAIN has no missing value, so every column's saved schema says nullable: false: imputing
    # one at predict time would be a guess the model never made in training.
    assert not any(c.nullable for c in SCHEMA.features)
    with pytest.raises(SchemaError, match=rf"column '{column}', row {row}: empty value, but the model never saw a missing value there.*To fix: fill column '{column}'"):
        SCHEMA.validate(rows)


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        (pd.DataFrame({"n": [1.0], "b": [True]}), r"input lacks column 'c'"),
        (pd.DataFrame({"n": [1.0, "abc"], "c": ["red", "red"], "b": [True, True]}), r"column 'n', row 2: 'abc' is not a number"),
        (pd.DataFrame({"n": [1.0, 2.0], "c": ["red", "green"], "b": [True, True]}), r"column 'c', row 2: category 'green' was not seen in training; allowed: \['blue', 'red'\]"),
        (pd.DataFrame({"n": [1.0], "c": ["red"], "b": ["maybe"]}), r"column 'b', row 1: 'maybe' is not true or false"),
    ],
)
def test_bad_rows_name_column_and_row(rows: pd.DataFrame, pattern: str) -> None:
    with pytest.raises(SchemaError, match=pattern):
        SCHEMA.validate(rows)


def test_empty_input_is_refused() -> None:
    with pytest.raises(DataError, match="input has no rows"):
        SCHEMA.validate(TRAIN.iloc[:0])


def test_validating_twice_gives_the_same_frame() -> None:
    rows = pd.DataFrame({"n": ["1.5", "2"], "c": ["red", "blue"], "b": ["true", "0"]})
    once = SCHEMA.validate(rows)
    pd.testing.assert_frame_equal(SCHEMA.validate(once), once)


def test_numeric_booleans_outside_zero_one_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"column 'b', row 1: 2 is not true or false"):
        SCHEMA.validate(pd.DataFrame({"n": [1.0], "c": ["red"], "b": [2]}))
