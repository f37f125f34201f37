"""The claim notifier and the claim route's credential as the provider routes reach them."""

from __future__ import annotations

from fastapi import Request

from marketplace.errors import (
    Forbidden,
    InvalidApiKey,
    InvalidToken,
    RateLimited,
    TokenExpired,
    Unauthorized,
)
from node.deps import BearerDoc
from node.openapi import raises
from node.providers.notifier import JobNotifier


def notifier_of(request: Request) -> JobNotifier:
    return request.app.state.runtime.notifier


@raises(Unauthorized, InvalidToken, TokenExpired, InvalidApiKey, Forbidden, RateLimited)
async def claim_bearer(_doc: BearerDoc = None) -> None:
    """The claim route's Bearer credential as the OpenAPI document shows it (the same
    answers as `PrincipalDep`'s). The route checks it with `authenticate_request` inside
    its own claim transaction; nothing is read here."""
