"""How a job's escrow reaches the jobs and datasets routers: the `Funding` port.

Jobs sit below the escrow domain (`node.chain` settles jobs through `node.jobs.service`),
so the job routes cannot import chain code to show a job's funding call and escrow. They
declare `FundingDep` instead; the node's runtime injects the escrow domain's
implementation (`node.escrow.service.EscrowFunding`).
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from node.models.jobs import Job


class Funding(Protocol):
    def funding_call(self, session: Session, job: Job) -> dict[str, Any] | None:
        """The wallet call that funds the job while it awaits its deposit, else None."""
        ...

    def escrow_view(self, session: Session, job: Job) -> dict[str, Any] | None:
        """What the chain holds for the job (None when it never had an escrow)."""
        ...


async def get_funding(request: Request) -> Funding:
    return request.app.state.runtime.funding


FundingDep = Annotated[Funding, Depends(get_funding)]
