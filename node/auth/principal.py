"""Who is calling: the identity every service receives, free of any HTTP machinery."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `workspace_id` and `api_key_id` are set when the credential
    is an API key: such a caller reaches that one workspace and nothing else, with the
    role the key's row grants (`node.authz.policy`)."""

    user_id: int
    subject: str
    address: str | None = None
    workspace_id: int | None = None
    api_key_id: int | None = None

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None
