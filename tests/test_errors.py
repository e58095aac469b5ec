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


def test_no_new_raise_site_lacks_one_of_the_four_parts() -> None:
    """Every ``raise XError(...)`` in src/ passes allowed=, got= and fix=, or is a known (shrinking) exception."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("error_parts", root / "tools" / "error_parts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    new = sorted(set(module.incomplete_sites()) - module.baseline())
    assert not new, (
        f"these functions raise a gravityml error without allowed=, got= or fix=: {new}. To fix: give all four "
        "parts (what; allowed; got. To fix)"
    )


def test_the_recorder_sees_an_error_built_without_its_parts() -> None:
    """The conftest hook is live: an error built in src/gravityml without a part is recorded (here on purpose)."""
    recorded = GravityMLError.__init__.incomplete  # type: ignore[attr-defined]
    before = len(recorded)
    code = compile("DataError('what only')", "/x/src/gravityml/fake.py", "eval")
    eval(code, {"DataError": DataError})  # noqa: S307 - a frame whose file is in src/gravityml
    assert len(recorded) == before + 1
    assert recorded[-1][0] == "gravityml/fake.py::<module>" and recorded[-1][2] == ["allowed", "got", "fix"]
    recorded.pop()  # built on purpose: not this test's failure


def test_public_api_is_pinned() -> None:
    import gravityml

    assert sorted(gravityml.__all__) == ["__version__", "load", "load_spec", "train"]
    for name in gravityml.__all__:
        assert hasattr(gravityml, name)
    assert sorted(errors.__all__) == sorted(
        n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, (GravityMLError, Warning))
        and v.__module__ == errors.__name__
    )
