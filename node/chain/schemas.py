"""Wire types of the `/chain` routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from marketplace.addresses import parse_address
from marketplace.money import WEI_PER_ETH, eth_to_wei

__all__ = ["WEI_PER_ETH", "ChainInfo", "FaucetRequest", "FaucetResult"]


class ChainInfo(BaseModel):
    chain_id: int
    escrow_address: str | None
    deployment_block: int | None
    confirmations: int
    rpc_url: str
    assigner: str | None = None  # the node's operator: binds providers, refunds deposits
    arbiter: str | None = None  # rules disputes; never the operator


class FaucetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    amount: str = Field(
        max_length=100, description='Decimal ETH, at most 18 decimals, e.g. "1.5" (no exponents).'
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return parse_address(value)  # EIP-55; the zero address is refused

    @field_validator("amount")
    @classmethod
    def _eth_amount(cls, value: str) -> str:
        # The one money parser: no exponent (`1e999999999`), NaN, infinity or sign.
        if eth_to_wei(value) <= 0:
            raise ValueError("amount must be positive")
        return value

    @property
    def amount_wei(self) -> int:
        return eth_to_wei(self.amount)


class FaucetResult(BaseModel):
    address: str
    amount_wei: str
    tx_hash: str
    block_number: int
    balance_wei: str
