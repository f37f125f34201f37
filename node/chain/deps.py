"""The node's chain host as a FastAPI dependency: `chain_of` (None before the chain has
started) and `ChainDep` (503 UPSTREAM_UNAVAILABLE until it has)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from marketplace.errors import UpstreamUnavailable
from node.chain.host import ChainHost


def chain_of(request: Request) -> ChainHost | None:
    return request.app.state.runtime.chain


def running_chain(request: Request) -> ChainHost:
    host = chain_of(request)
    if host is None:
        raise UpstreamUnavailable("the chain is not started")
    return host


ChainDep = Annotated[ChainHost, Depends(running_chain)]
