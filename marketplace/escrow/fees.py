"""Transaction fees, one formula for every signer (the node's operator, the SDK's wallets):
EIP-1559 with `maxFeePerGas = 2 * baseFee + tip`, which stays valid through six full blocks
of base-fee growth; a chain without a base fee (pre-London) gets its `gasPrice`."""

from __future__ import annotations

from typing import Any


def fee_fields(w3: Any) -> dict[str, int]:
    """The fee fields of a transaction sent now on `w3`'s chain."""
    base = w3.eth.get_block("latest").get("baseFeePerGas")
    if base is None:
        return {"gasPrice": int(w3.eth.gas_price)}
    tip = int(w3.eth.max_priority_fee)
    return {"maxFeePerGas": 2 * int(base) + tip, "maxPriorityFeePerGas": tip}
