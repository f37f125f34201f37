"""Claim attempts with group commit (`ClaimQueue`, a `node.deps.GroupCommit`): the
attempts of the providers that claim while one batch is being written go in together,
in one worker thread hop and one transaction, each attempt as it would have run alone.

Alone, each attempt cost a thread hop, a session, the webhook outbox's read of the
job owner's subscriptions and a commit (with 32 providers on PostgreSQL, the commit and
that read were a fifth of a claim's time under py-spy, the hop a tenth). In one
transaction the attempts run one after another, so each sees what the ones before it
wrote: a job leased by one is no candidate for the next (its status changed), and a
provider's active jobs count the lease it was just given. None is handed out twice.

An attempt refused before it wrote anything (401 for its credential, 403 for a wallet
that is no provider) is told so, and the rest of the batch goes in. Any other failure,
of one attempt or of the commit, rolls the whole batch back and each attempt runs again
in a transaction of its own (`GroupCommit`), as it did before the batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import MarketplaceError
from marketplace.jobs.ids import format_job_id
from marketplace.leases import Claim, Lease, ProviderJob
from node.auth.deps import authenticate_request
from node.auth.principal import Principal
from node.config import NodeSettings
from node.db import utcnow
from node.deps import GroupCommit
from node.models.jobs import Job
from node.models.providers import Provider
from node.providers import service
from node.providers.notifier import JobNotifier
from node.providers.vouchers import assignment_voucher, enqueue_assignment

# The most attempts one transaction takes: 32 polling providers go in one or two.
MAX_BATCH = 64
# What an attempt answers when no job was leased, or when its provider ended the poll
# (draining: it is handed no job).
NO_JOB = "no job"
ENDED = "ended"


def job_for_provider(job: Job) -> ProviderJob:
    """What a provider needs to run a job."""
    return ProviderJob(
        id=format_job_id(job.id),
        type=job.job_type,
        status=job.status,
        spec=job.spec or {},
        folder_cid=job.folder_cid,
        metadata_cid=job.metadata_cid,
        requester_address=job.requester_address,
        reward_wei=str(job.reward_wei),
        attempt=job.attempt,
        max_retries=job.max_retries,
        deadline_at=job.deadline_at,
    )


def lease_of(job: Job) -> Lease:
    """The lease a job is under, as its holder sees it."""
    expires = job.lease_expires_at
    return Lease(
        lease_id=job.lease_id,
        job_id=format_job_id(job.id),
        attempt=job.attempt,
        expires_at=expires,
        ttl_seconds=None if expires is None else (expires - utcnow()).total_seconds(),
        status=job.status,
    )


@dataclass(eq=False)
class Attempt:
    """One look for a job by one claim request (a long-poll makes several). `principal`
    is set by its first attempt, which checks the request's credential."""

    request: Request
    settings: NodeSettings
    job_types: list[str] | None
    exclude: set[int]
    started: float  # monotonic: when the claim request began
    principal: Principal | None = None


@dataclass
class _Written:
    """What a batch's attempts wrote. `leased`: the leased jobs, held to the commit (the
    session keeps its objects by weak reference only, and the commit's webhook outbox
    reads each event's job: a job no longer held was read back from the database, events
    and all). `queued`: whether an assignment went to the chain outbox."""

    leased: list[Job] = field(default_factory=list)
    queued: bool = False


class ClaimQueue(GroupCommit[Attempt, Claim | str]):
    """The node's claim attempts, written in batches. An attempt's outcome is its
    `Claim`, `NO_JOB` or `ENDED`; a refusal is raised."""

    write_abandoned = False  # a claim whose request went away leases nothing

    def __init__(
        self,
        sessions: sessionmaker[Session],
        notifier: JobNotifier,
        chain: Callable[[], Any],
        wake_chain: Callable[[], None],
        max_batch: int = MAX_BATCH,
    ) -> None:
        super().__init__(max_batch)
        self._sessions = sessions
        self._notifier = notifier
        self._chain = chain
        self._wake_chain = wake_chain

    def _transaction(self, batch: list[Attempt]) -> list[Claim | str | Exception]:
        written = _Written()
        chain = self._chain()
        with self._sessions() as session:
            try:
                # No flush between attempts: what an attempt reads of those before it
                # (their leases) their own statements wrote, and their `claimed` events
                # wait for the commit's flush, one INSERT where the database allows it.
                with session.no_autoflush:
                    providers = self._providers(session, batch)
                    outcomes = [
                        self._attempt(session, chain, attempt, provider, written)
                        for attempt, provider in zip(batch, providers, strict=True)
                    ]
                session.commit()
            except Exception:
                session.rollback()
                raise
        if written.queued:
            self._wake_chain()  # committed: the outbox sends the assignments now
        return outcomes

    def _providers(
        self, session: Session, batch: list[Attempt]
    ) -> list[Provider | str | MarketplaceError]:
        """Each attempt's provider, once its credential is checked, all their
        `last_seen_at` now in one statement; `ENDED` for one whose provider ended its
        polls since the request began; or the attempt's refusal."""
        out: list[Provider | str | MarketplaceError] = [ENDED] * len(batch)
        asking: list[tuple[int, Principal]] = []
        for i, attempt in enumerate(batch):
            if attempt.principal is None:
                try:
                    attempt.principal = authenticate_request(
                        attempt.request, session, attempt.settings
                    )
                except MarketplaceError as refused:
                    out[i] = refused
                    continue
            if not self._notifier.poll_ended(attempt.principal.subject, attempt.started):
                asking.append((i, attempt.principal))
        found = service.require_providers(session, [principal for _, principal in asking])
        for (i, _), provider in zip(asking, found, strict=True):
            out[i] = provider
        return out

    def _attempt(
        self,
        session: Session,
        chain: Any,
        attempt: Attempt,
        provider: Provider | str | MarketplaceError,
        written: _Written,
    ) -> Claim | str | Exception:
        """One attempt in the batch's transaction, for `provider` (`_providers`): its
        lease (noted in `written`), `NO_JOB`, `ENDED`, or its refusal, decided before it
        wrote anything."""
        if not isinstance(provider, Provider):
            return provider
        got = service.claim(session, attempt.settings, provider, attempt.job_types, attempt.exclude)
        if got is None:
            return NO_JOB
        job, address = got.job, provider.address
        written.leased.append(job)
        written.queued |= enqueue_assignment(session, chain, job, address, got.attempt)
        voucher = assignment_voucher(session, chain, job, address, got.attempt)
        return Claim(lease=lease_of(job), job=job_for_provider(job), voucher=voucher)


def claims_of(request: Request) -> ClaimQueue:
    """The node's claim queue."""
    return request.app.state.runtime.claims
