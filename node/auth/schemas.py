"""Wire types of the auth routes (`/auth/*`) and of the API-key routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from marketplace.siwe import MAX_MESSAGE_CHARS
from node.workspaces.models import Role


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Request):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"


class RefreshRequest(_Request):
    refresh_token: str = Field(min_length=1, max_length=4096)


class NonceResponse(BaseModel):
    """A sign-in nonce plus what the message must name, so a client can build it."""

    nonce: str
    expires_at: dt.datetime
    domain: str
    chain_id: int
    uri: str


class SiweRequest(_Request):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$",
        description="65-byte EIP-191 personal_sign signature, 0x-prefixed hex.",
    )


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
