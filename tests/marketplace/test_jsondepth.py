"""The JSON depth bound: exact on valid JSON, never lower than a parser's descent on
malformed JSON, and safe to run on input a parser would crash on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from marketplace.jsondepth import (
    JsonTooDeepError,
    _problem_read,
    exceeds_depth,
    interchange_problem,
    loads_bounded,
)

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


# Pieces of documents around what `interchange_problem` refuses: the constants, numbers
# of every size with and without a fraction or an exponent, escapes of surrogates paired
# and lone, a surrogate's own UTF-8 bytes, and plain strings.
number = st.builds(
    lambda sign, digits, frac, exp: sign + digits + frac + exp,
    st.sampled_from(["", "-"]),
    st.sampled_from([1, 2, 17, 307, 308, 309, 310, 420]).map(lambda n: "1" + "7" * (n - 1)),
    st.sampled_from(["", ".5", ".0001"]),
    st.sampled_from(["", "e5", "E308", "e309", "e-400", "E+999"]),
)
piece = st.one_of(
    number,
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "0", "true", "null"]),
    st.sampled_from(["d800", "DBFF", "dc00", "DFFF", "d7ff", "e000", "0041"]).map(
        lambda hex_: f'"a\\u{hex_}b"'
    ),
    st.just('"\\ud83d\\ude00"'),
    st.just('"\\\\ud800"'),  # an escaped backslash, then text
    st.text(alphabet="abe0123 \u00e9\U0001f600", max_size=8).map(json.dumps),
)


@given(st.lists(piece, min_size=1, max_size=6), st.booleans())
@example(["1" + "7" * 309 + ".5"], False)  # past the float range with no exponent
@example(["-1" + "0" * 320 + ".25"], True)
@example(["1e999"], False)
@example(["NaN"], True)
@example(['"\\udbff"'], False)
@example(['"a\\uDC00"'], True)
def test_the_quick_pass_agrees_with_reading_the_document(pieces: list[str], raw: bool) -> None:
    """`interchange_problem` reads a document only when it holds something that could be
    a problem; what it says must be what reading it says, for documents with and without
    such a thing, given as text or as UTF-8 bytes."""
    text = "[" + ", ".join(pieces) + "]"
    doc: str | bytes = text.encode("utf-8", "surrogatepass") if raw else text
    assert interchange_problem(doc) == _problem_read(doc)


def test_a_surrogate_in_raw_utf8_bytes_is_found() -> None:
    doc = b'{"x": "\xed\xa0\x80"}'  # json.loads decodes it to a lone surrogate
    assert interchange_problem(doc) == _problem_read(doc) is not None
