"""Wire types of the workspace routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from eth_utils import is_checksum_address, to_checksum_address
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from node.workspaces.models import Role


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceCreate(_Request):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class WorkspaceRead(BaseModel):
    id: int
    name: str
    role: Role = Field(description="The caller's role in this workspace.")
    created_by: int
    created_at: dt.datetime


class MemberAdd(_Request):
    """Exactly one of `username` and `address`."""

    username: str | None = Field(None, min_length=1, max_length=64)
    address: str | None = Field(
        None,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="Wallet address; lower-case or EIP-55 checksummed.",
    )
    role: Role = Role.MEMBER

    @field_validator("address")
    @classmethod
    def _checksummed(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value[2:]
        if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
            raise ValueError("mixed-case address with a wrong EIP-55 checksum")
        return to_checksum_address(value)

    @model_validator(mode="after")
    def _one_identity(self) -> MemberAdd:
        if (self.username is None) == (self.address is None):
            raise ValueError("give exactly one of 'username' and 'address'")
        return self


class MemberUpdate(_Request):
    role: Role


class MemberRead(BaseModel):
    user_id: int
    username: str | None
    address: str | None
    role: Role
    created_at: dt.datetime
