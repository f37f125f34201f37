"""Wire types of the auth routes (`/auth/*`; `/auth/me` is `node.workspaces.schemas`)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from marketplace.siwe import MAX_MESSAGE_CHARS


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
