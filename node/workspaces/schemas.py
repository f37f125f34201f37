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

from node.models.workspaces import MEMBERSHIP_ROLES, Role


def _membership(role: Role) -> Role:
    if role not in MEMBERSHIP_ROLES:
        raise ValueError("members are owner, member or viewer ('provider' is an API-key role)")
    return role


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceCreate(_Request):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class WorkspaceRead(BaseModel):
    id: int
    name: str
    role: Role = Field(description="The caller's role in this workspace.")
    is_personal: bool = Field(
        False, description="The caller's personal workspace (jobs created without one)."
    )
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

    _role = field_validator("role")(_membership)

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

    _role = field_validator("role")(_membership)


class MemberRead(BaseModel):
    user_id: int
    username: str | None
    address: str | None
    role: Role
    created_at: dt.datetime


# ---- the caller's account (`/auth/me`) and the workspace's API keys
class MeWorkspace(BaseModel):
    id: int
    name: str
    role: Role


class MeApiKey(BaseModel):
    id: int
    workspace_id: int


class MeResponse(BaseModel):
    id: int
    username: str | None
    address: str | None
    workspaces: list[MeWorkspace]
    api_key: MeApiKey | None = Field(
        None, description="Set when the caller authenticated with an API key."
    )


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApiKeyCreate(_Request):
    name: Name
    role: Role = Role.MEMBER


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    role: Role
    workspace_id: int
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    key: str = Field(description="The secret; shown once, not stored.")
    prefix: str
    role: Role
    workspace_id: int
    created_at: dt.datetime
