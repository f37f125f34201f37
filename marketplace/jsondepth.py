"""Bounding the nesting depth of JSON text before a parser sees it, and telling JSON that
can be stored and sent back (interchange JSON) from what Python's parser also accepts.

Why this exists: importing the Ethereum libraries (eth-account, web3, py_ecc) raises the
interpreter's recursion limit to 100,000, so the C JSON parser no longer stops a deeply
nested document with a `RecursionError`: `[` nested 100,000 times overflows the C stack
and kills the process (a segmentation fault, not an exception). Every parse of JSON
that came from outside therefore goes through `loads_bounded` (or `exceeds_depth` first).

The check runs at C speed on the raw bytes: string literals are cut out (a bracket inside
a string does not nest), every byte but brackets is deleted, and the depth is the highest
running sum of +1 per opener and -1 per closer. On malformed input (unclosed, mismatched
or stray brackets) that sum is at least the depth a recursive parser would reach before
noticing the error, so nothing a parser would descend into passes unchecked.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

# Possessive quantifiers (Python 3.11+): a string literal is matched in linear time, and an
# unterminated one fails without backtracking.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
# openers -> 0x01 (+1), closers -> 0xff (-1 as a signed byte); everything else deleted
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")

DEFAULT_MAX_DEPTH = 64


class JsonTooDeepError(ValueError):
    """JSON text nested deeper than allowed (a `ValueError`, like a parse error)."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def exceeds_depth(data: bytes | bytearray | str, max_depth: int = DEFAULT_MAX_DEPTH) -> bool:
    """Whether `data`, read as JSON, nests arrays/objects deeper than `max_depth`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False  # cannot nest deeper than it has openers (the common, small case)
    steps = _STRING.sub(b"", raw).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", steps)), default=0) > max_depth


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# What a document must hold for `interchange_problem` to find one: a constant Python's
# parser takes (`NaN`, `Infinity`), an exponent or a run of 309 digits (the only ways to
# write a number past the float range), an escape of a surrogate (\uD800-\uDFFF) or a
# surrogate's own UTF-8 bytes (which `json.loads` decodes from bytes too). Text without
# any of them is interchange JSON if it is JSON at all: no need to parse it and write it
# again (a sixth of a small create's event loop time under py-spy, issue 12).
_SUSPECT = re.compile(rb"NaN|Infinity|[0-9][eE]|[0-9]{309}|\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def interchange_problem(data: bytes | bytearray | str) -> str | None:
    """Why a JSON document that Python parses is still not interchange JSON, or None.

    Python's parser accepts `NaN`, `Infinity` and numbers past the float range (`1e999`
    becomes infinity), and `\\ud800` escapes that decode to lone surrogates; PostgreSQL
    refuses the former in a JSON column and no response can encode the latter, so either
    would end as a 500 (or as a stored value nobody can read back). Text that is not JSON
    at all is not judged here (None): the caller's parser reports that in its own way.
    Call it only on input within the depth bound (`exceeds_depth`)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _SUSPECT.search(raw) is None:
        return None
    return _problem_read(data)


def _problem_read(data: bytes | bytearray | str) -> str | None:
    """`interchange_problem` found by reading `data` and writing it again."""
    try:
        doc = json.loads(data, parse_constant=_no_constants)
    except ValueError as exc:
        return str(exc) if "is not a JSON number" in str(exc) else None
    try:
        json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError as exc:  # UnicodeEncodeError is a ValueError too
        if isinstance(exc, UnicodeEncodeError):
            return "a string holds an unpaired surrogate (\\ud800-\\udfff): not Unicode text"
        return "a number is out of the float range"
    return None


def loads_bounded(data: bytes | bytearray | str, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`json.loads` that refuses input nested deeper than `max_depth` before parsing it.

    Raises:
        JsonTooDeepError: too deep (a `ValueError`).
        json.JSONDecodeError: not JSON (also a `ValueError`).
    """
    if exceeds_depth(data, max_depth):
        raise JsonTooDeepError(max_depth)
    return json.loads(data)
