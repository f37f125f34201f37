"""Wire types of the `/chain` routes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, field_validator

WEI_PER_ETH = 10**18


class ChainInfo(BaseModel):
    chain_id: int
    escrow_address: str | None
    deployment_block: int | None
    confirmations: int
    rpc_url: str


class FaucetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    amount: str

    @field_validator("address")
    @classmethod
    def _eip55(cls, value: str) -> str:
        if not is_hex_address(value):
            raise ValueError("not a 20-byte 0x-hex address")
        body = value[2:]
        mixed = body != body.lower() and body != body.upper()
        if mixed and not is_checksum_address(value):
            raise ValueError("EIP-55 checksum mismatch")
        return to_checksum_address(value)

    @field_validator("amount")
    @classmethod
    def _eth_amount(cls, value: str) -> str:
        try:
            amount = Decimal(value)
        except (InvalidOperation, TypeError):
            raise ValueError('amount must be a decimal number of ETH, e.g. "1.5"') from None
        if not amount.is_finite() or amount <= 0:
            raise ValueError("amount must be positive")
        if (amount * WEI_PER_ETH) != (amount * WEI_PER_ETH).to_integral_value():
            raise ValueError("amount has more than 18 decimals")
        return value

    @property
    def amount_wei(self) -> int:
        return int(Decimal(self.amount) * WEI_PER_ETH)


class FaucetResult(BaseModel):
    address: str
    amount_wei: str
    tx_hash: str
    block_number: int
    balance_wei: str
