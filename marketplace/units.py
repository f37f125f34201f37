"""Quantities with units, as container APIs write them (`512Mi`, `2Gi`, `1G`, `100Gi`):
the one place they are parsed and formatted.

Binary suffixes (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`) are powers of 1024, decimal ones
(`k`/`K`, `M`, `G`, `T`, `P`, `E`) powers of 1000, Kubernetes' quantity suffixes; a bare
integer is bytes. An optional trailing `B` (`512MiB`, `1GB`) is accepted, as people type
it. Fractions, signs, exponents, spaces inside and unknown suffixes are refused with
`InvalidQuantity` (a `ValueError`, so pydantic validators turn it into a field error).
"""

from __future__ import annotations

import re

BINARY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6}
DECIMAL = {"k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5}
DECIMAL["E"] = 1000**6
_UNITS = {**BINARY, **DECIMAL}
_QUANTITY = re.compile(r"^([0-9]{1,19})([A-Za-z]{0,3})$")
MAX_TEXT = 32


class InvalidQuantity(ValueError):
    """Not a non-negative whole quantity with a known unit."""


def parse_bytes(text: str) -> int:
    """`"512Mi"` -> 536870912, `"1G"` -> 1000000000, `"4096"` -> 4096.

    Raises:
        InvalidQuantity: not text, empty, negative, fractional, or an unknown unit.
    """
    if not isinstance(text, str):
        raise InvalidQuantity(f"expected a string such as '512Mi', not {type(text).__name__}")
    value = text.strip()
    match = _QUANTITY.fullmatch(value) if len(value) <= MAX_TEXT else None
    if match is None:
        raise InvalidQuantity(f"not a quantity such as '512Mi' or '2Gi': {value[:MAX_TEXT]!r}")
    number, unit = int(match.group(1)), match.group(2)
    if unit.endswith("B") and unit != "B":
        unit = unit[:-1]
    elif unit == "B":
        unit = ""
    if unit and unit not in _UNITS:
        known = ", ".join(sorted(_UNITS, key=lambda u: _UNITS[u]))
        raise InvalidQuantity(f"unknown unit {unit!r} in {value!r}; known: {known}")
    return number * (_UNITS[unit] if unit else 1)


def format_bytes(n: int) -> str:
    """The shortest exact spelling, binary units first on a tie: `536870912` -> `"512Mi"`,
    `64 * 10**6` -> `"64M"`, `1500` -> `"1500"`."""
    if n <= 0:
        return str(n)
    units = [*BINARY.items(), *((u, size) for u, size in DECIMAL.items() if u != "K")]
    spellings = [f"{n // size}{unit}" for unit, size in units if n % size == 0]
    return min([*spellings, str(n)], key=len)  # `min` keeps the first of equals
