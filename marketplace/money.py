"""Exact conversion between wei (int) and decimal ETH strings (`"0.5"`): the one place
amounts are parsed and formatted.

Amounts are integers in wei everywhere inside the system; the API edge shows and accepts
decimal ETH strings with at most 18 decimals. Nothing here goes through float: floats,
exponents (`1e18`), NaN/Infinity, signs and more than 18 decimals are refused with
`InvalidAmount` (a `ValueError`, so pydantic validators turn it into a field error).
`eth_to_wei` reads the canonical form (what `wei_to_eth` writes, and JSON APIs send);
`parse_eth` reads an amount as a person types it into a form (`.5`, `5.`, `007`,
`1.50000000000000000000`, surrounding spaces) and hands the canonical form to `eth_to_wei`.
"""

from __future__ import annotations

import re
from decimal import Decimal

WEI_PER_ETH = 10**18
DECIMALS = 18
# Largest amount a uint256 can hold; anything above cannot exist on chain.
MAX_WEI = 2**256 - 1
# MAX_WEI is about 1.16e59 ETH: 60 integer digits. Longer input is refused before any
# big-number arithmetic runs on it (a million-digit amount must not cost a million digits).
_MAX_WHOLE_DIGITS = 60

_ETH = re.compile(rf"^(0|[1-9][0-9]{{0,{_MAX_WHOLE_DIGITS - 1}}})(?:\.([0-9]{{1,18}}))?$")
_TYPED_ETH = re.compile(r"^(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))$")
MAX_TYPED_CHARS = 100


class InvalidAmount(ValueError):
    """A value that is not a non-negative decimal ETH amount with at most 18 decimals."""


def wei_to_eth(wei: int, min_decimals: int = 0) -> str:
    """Format an amount in wei as the shortest exact decimal ETH string, padded with
    zeros to at least `min_decimals` decimals (never rounded).

    >>> wei_to_eth(500_000_000_000_000_000)
    '0.5'
    >>> wei_to_eth(500 * 10**18, min_decimals=6)
    '500.000000'
    """
    if isinstance(wei, bool) or not isinstance(wei, int):
        raise InvalidAmount(f"wei amount must be an int, got {type(wei).__name__}")
    if wei < 0:
        raise InvalidAmount("amounts are never negative")
    whole, frac = divmod(wei, WEI_PER_ETH)
    digits = f"{frac:018d}".rstrip("0").ljust(min_decimals, "0")
    return f"{whole}.{digits}" if digits else str(whole)


def eth_to_wei(value: str | int | Decimal) -> int:
    """Parse a decimal ETH amount (`"0.5"`, `"12"`, `3`, `Decimal("0.1")`) into wei, exactly.

    Raises:
        InvalidAmount: negative, NaN/Infinity, exponent notation, float, more than 18
            decimals, empty or otherwise malformed input, or more than 2**256-1 wei.
    """
    if isinstance(value, bool):
        raise InvalidAmount("a boolean is not an amount")
    if isinstance(value, int):
        if value < 0:
            raise InvalidAmount("amounts are never negative")
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount("amount must be a finite number")
        if value.is_signed() and value != 0:
            raise InvalidAmount("amounts are never negative")
        if value.is_zero():
            return 0
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # finite
        if value.adjusted() >= _MAX_WHOLE_DIGITS:  # checked before formatting `1e999999999`
            raise InvalidAmount("amount exceeds uint256")
        trailing_zeros = len(digits) - len(("".join(map(str, digits))).rstrip("0"))
        if exponent + trailing_zeros < -DECIMALS:
            raise InvalidAmount(f"more than {DECIMALS} decimals")
        text = format(value.copy_abs(), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidAmount(
            f"amount must be a decimal string, not {type(value).__name__} (floats are inexact)"
        )
    match = _ETH.fullmatch(text)  # not `match`: `$` would let a trailing newline through
    if not match:
        raise InvalidAmount(
            f"not a decimal ETH amount with at most {DECIMALS} decimals: {text[:40]!r}"
        )
    whole, frac = match.group(1), match.group(2) or ""
    wei = int(whole) * WEI_PER_ETH + int(frac.ljust(DECIMALS, "0") or "0")
    if wei > MAX_WEI:
        raise InvalidAmount("amount exceeds uint256")
    return wei


def parse_eth(text: str) -> int:
    """Parse a decimal ETH amount as a person types it (`"0.5"`, `".5"`, `"5."`, `" 007 "`,
    trailing zeros past the 18th decimal) into wei, exactly.

    Raises:
        InvalidAmount: anything `eth_to_wei` refuses once leading zeros, trailing
            decimal zeros and surrounding whitespace are dropped (signs, exponents,
            thousands separators, more than 18 significant decimals), or over 100 chars.
    """
    if not isinstance(text, str):
        raise InvalidAmount(f"amount must be text, not {type(text).__name__}")
    value = text.strip()
    match = _TYPED_ETH.match(value)
    if not match or len(value) > MAX_TYPED_CHARS:
        raise InvalidAmount(f"not a decimal ETH amount: {value[:40]!r}")
    whole = (match.group(1) or "").lstrip("0") or "0"
    frac = (match.group(2) or match.group(3) or "").rstrip("0")
    return eth_to_wei(f"{whole}.{frac}" if frac else whole)
