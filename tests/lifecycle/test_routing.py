"""Canary routing: the share holds over 2,000 requests, sticky keys never flip, bad shares are refused."""

from __future__ import annotations

import pytest

from gravityml.errors import SpecError
from gravityml.inference._routing import Router, parse_canary


def test_canary_share_is_within_three_points_over_2000_requests() -> None:
    ref, share = parse_canary("credit/7=10%")
    assert (ref, share) == ("credit/7", 0.10)
    router = Router("credit/1", canary=ref, share=share, seed=3)
    unkeyed = sum(router.choose() == "credit/7" for _ in range(2000)) / 2000
    keyed = sum(router.choose(f"user-{i}") == "credit/7" for i in range(2000)) / 2000
    assert abs(unkeyed - 0.10) <= 0.03 and abs(keyed - 0.10) <= 0.03
    print(f"canary share over 2,000 requests: {unkeyed:.3f} random, {keyed:.3f} by sticky key (target 0.100)")


def test_a_sticky_key_always_goes_the_same_way() -> None:
    router = Router("credit/1", canary="credit/7", share=0.5)
    first = {f"user-{i}": router.choose(f"user-{i}") for i in range(200)}
    for _ in range(5):
        assert all(router.choose(k) == v for k, v in first.items())
    assert set(first.values()) == {"credit/1", "credit/7"}
    assert Router("credit/1").choose("user-1") == "credit/1"  # no canary: always the champion


@pytest.mark.parametrize("text", ["credit/7", "credit/7=0%", "credit/7=100%", "credit/7=ten%", "=10%"])
def test_bad_canary_settings_are_refused(text: str) -> None:
    with pytest.raises(SpecError, match="REF=SHARE%"):
        parse_canary(text)
