"""The JSON depth bound: exact on valid JSON, never lower than a parser's descent on
malformed JSON, and safe to run on input a parser would crash on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.jsondepth import JsonTooDeepError, exceeds_depth, loads_bounded

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}",\\:ab \n'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@given(json_values, st.integers(min_value=0, max_value=8))
def test_depth_of_valid_json_is_exact(value: Any, limit: int) -> None:
    text = json.dumps(value)
    assert exceeds_depth(text, limit) == (depth(value) > limit)


def test_brackets_inside_strings_do_not_nest() -> None:
    text = json.dumps(["[[[[{{{{", {"k]]]": '\\"[[['}])
    assert not exceeds_depth(text, 2)
    assert exceeds_depth(text, 1)


def test_unclosed_openers_count_as_the_depth_a_parser_would_descend() -> None:
    assert exceeds_depth("[" * 65, 64)
    assert exceeds_depth('{"a":' * 65, 64)
    assert not exceeds_depth("[" * 64, 64)


def test_a_document_that_would_crash_the_parser_is_refused_before_parsing() -> None:
    # 100,000 levels: with the recursion limit the Ethereum libraries set, json.loads
    # overflows the C stack on this (a segmentation fault, not an exception).
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(JsonTooDeepError):
        loads_bounded(deep, max_depth=64)


def test_loads_bounded_parses_what_is_within_the_bound() -> None:
    assert loads_bounded(b'{"a": [1, [2, {"b": null}]]}', max_depth=4) == {
        "a": [1, [2, {"b": None}]]
    }
    with pytest.raises(ValueError):
        loads_bounded("{not json", max_depth=4)
