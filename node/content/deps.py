"""The node's content store as a FastAPI dependency (`ContentDep`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from marketplace.content.store import ContentStore


def content_of(request: Request) -> ContentStore:
    return request.app.state.runtime.content


ContentDep = Annotated[ContentStore, Depends(content_of)]
