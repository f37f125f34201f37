"""Ethereum account addresses at the API edge: one rule for every field that takes one.

An address is `0x` and 40 hex digits. All-lower or all-upper case is accepted and
checksummed; mixed case must be a valid EIP-55 checksum (a typo in a checksummed address
is caught instead of sending money to nobody's account). The zero address is refused:
no key signs for it, so a job posted for it could never be funded, accepted or refunded,
and ETH sent to it is burnt.
"""

from __future__ import annotations

import re

from eth_utils import is_checksum_address, to_checksum_address

ZERO_ADDRESS = "0x" + "0" * 40
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class InvalidAddressError(ValueError):
    """Not a usable account address (a `ValueError`, so pydantic reports a field error)."""


def parse_address(value: object) -> str:
    """The EIP-55 form of `value`, or `InvalidAddressError` saying what is wrong."""
    if not isinstance(value, str) or not _HEX_ADDRESS.fullmatch(value):
        raise InvalidAddressError("not a 0x-prefixed 20-byte hex address")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise InvalidAddressError("invalid EIP-55 checksum (mixed case that does not match)")
    if int(digits, 16) == 0:
        raise InvalidAddressError("the zero address cannot sign: nothing sent to it comes back")
    return to_checksum_address(value)
