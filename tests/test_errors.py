from __future__ import annotations

import pytest

from gravityml import errors
from gravityml.errors import DataError, GravityMLError, SchemaError, SpecError


def test_message_has_what_allowed_got_fix_on_one_line() -> None:
    err = DataError("column 'x' missing\nsecond line", allowed=["a", "b"], got="x", fix="add it")
    assert str(err) == "column 'x' missing second line; allowed: ['a', 'b']; got: 'x'. To fix: add it"
    assert "\n" not in str(err)


def test_got_none_is_shown_but_absent_got_is_not() -> None:
    assert "got: None" in str(DataError("nothing", got=None))
    assert "got" not in str(DataError("nothing"))


def test_long_allowed_lists_are_shortened() -> None:
    text = str(DataError("x", allowed=list(range(30))))
    assert "(10 more)" in text


def test_every_public_error_is_a_gravityml_error_with_exit_code_2() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, Warning):
            continue  # GravityMLWarning: heard, not raised
        assert issubclass(cls, GravityMLError)
        assert cls.exit_code == 2
    assert issubclass(SchemaError, DataError)


def test_spec_error_prefixes_the_path() -> None:
    with pytest.raises(SpecError, match=r"^model.type: bad$"):
        raise SpecError("model.type", "bad")
