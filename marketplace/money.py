"""Exact conversion between wei (int) and decimal ETH strings (`"0.5"`).

Amounts are integers in wei everywhere inside the system; the API edge shows and accepts
decimal ETH strings with at most 18 decimals. Nothing here goes through float: floats,
exponents (`1e18`), NaN/Infinity, signs and more than 18 decimals are refused with
`InvalidAmount` (a `ValueError`, so pydantic validators turn it into a field error).
"""

from __future__ import annotations

import re
from decimal import Decimal

WEI_PER_ETH = 10**18
DECIMALS = 18
# Largest amount a uint256 can hold; anything above cannot exist on chain.
MAX_WEI = 2**256 - 1

_ETH = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]{1,18}))?$")


class InvalidAmount(ValueError):
    """A value that is not a non-negative decimal ETH amount with at most 18 decimals."""


def wei_to_eth(wei: int) -> str:
    """Format an amount in wei as the shortest exact decimal ETH string.

    >>> wei_to_eth(500_000_000_000_000_000)
    '0.5'
    """
    if isinstance(wei, bool) or not isinstance(wei, int):
        raise InvalidAmount(f"wei amount must be an int, got {type(wei).__name__}")
    if wei < 0:
        raise InvalidAmount("amounts are never negative")
    whole, frac = divmod(wei, WEI_PER_ETH)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:018d}".rstrip("0")


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
        text = format(value.copy_abs(), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidAmount(
            f"amount must be a decimal string, not {type(value).__name__} (floats are inexact)"
        )
    match = _ETH.match(text)
    if not match:
        raise InvalidAmount(
            f"not a decimal ETH amount with at most {DECIMALS} decimals: {text[:40]!r}"
        )
    whole, frac = match.group(1), match.group(2) or ""
    wei = int(whole) * WEI_PER_ETH + int(frac.ljust(DECIMALS, "0") or "0")
    if wei > MAX_WEI:
        raise InvalidAmount("amount exceeds uint256")
    return wei
