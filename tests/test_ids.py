"""Validated ids: only a safe single path component passes."""

from __future__ import annotations

import pytest

from selflearn.ids import path_part


@pytest.mark.parametrize("value", ["maple.ana", "u-1", "user@example.com", "A_b+c"])
def test_safe_ids_pass_unchanged(value: str) -> None:
    assert path_part(value) == value


@pytest.mark.parametrize("value", ["", "..", ".hidden", "a/b", "a\\b", "x" * 129, "nul\x00", "sp ace"])
def test_unsafe_ids_are_refused_in_one_line(value: str) -> None:
    with pytest.raises(ValueError, match="cannot name a file") as err:
        path_part(value)
    assert "\n" not in str(err.value)
