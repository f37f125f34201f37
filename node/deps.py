"""FastAPI dependencies shared by every router: settings and the request's DB session (one
request, one transaction), read from the node's runtime (`node.runtime`). The
authenticated principal is `node.auth.deps.PrincipalDep`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import anyio
from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from node.config import NodeSettings
from node.db import read_outside_transaction
from node.notifier import Notifier

_log = logging.getLogger("dcm.db")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
I = TypeVar("I")  # noqa: E741 - a group commit's item
O = TypeVar("O")  # noqa: E741 - and its outcome


def settings_of(request: Request) -> NodeSettings:
    return request.app.state.runtime.settings


def sessions_of(request: Request) -> sessionmaker[Session]:
    """The session factory, for a route that opens its own transaction (a long-poll)."""
    return request.app.state.runtime.sessionmaker


def notifier_of(request: Request) -> Notifier:
    """The node's one notifier (`node.notifier`)."""
    return request.app.state.runtime.notifier


def chain_id_of(request: Request) -> int | None:
    """The running chain's id; None before the chain has started."""
    return request.app.state.runtime.chain_id


async def plain_json_body(request: Request, model: type[M]) -> M | None:
    """A fast path's body (`node.app.FAST_PATHS`): `model` read from a request that says
    exactly `application/json` and whose body FastAPI would take for it (`json.loads`,
    then the model). None for any other: the fast path declines and the route reads the
    body again and answers it (400 for a bad one)."""
    content_type = request.headers.get("content-type")
    if content_type is None or content_type.partition(";")[0].strip().lower() != (
        "application/json"
    ):
        return None
    try:
        return model.model_validate(json.loads(await request.body()))
    except (ValueError, RecursionError):  # bad JSON, or not a valid `model`
        return None


def rendered(model: BaseModel) -> str:
    """`model` as FastAPI renders a route's response model (by alias)."""
    return model.model_dump_json(by_alias=True)


def model_response(model: BaseModel | str, status_code: int = 200) -> Response:
    """An answer of a route that a fast path may give too (`node.app.FAST_PATHS`): `model`
    as FastAPI renders a route's response model (`rendered`, or rendered already), so that
    both answer alike."""
    body = model if isinstance(model, str) else rendered(model)
    return Response(body, status_code, media_type="application/json")


async def get_settings(request: Request) -> NodeSettings:
    return settings_of(request)


async def get_db_session(request: Request) -> AsyncIterator[Session]:
    """The request's session: commits if the handler returns, rolls back if it raises.

    Async, so that it costs at most one worker thread hop (FastAPI runs a sync generator
    dependency's entry and its exit in a thread each): the session is made here (no I/O
    until it is used) and ended in one hop, none if the handler ended its transaction
    itself (`in_thread`)."""
    session = sessions_of(request)()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request still ends its session
            await run_in_threadpool(_end, session, False)
        raise
    if session.in_transaction():
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_end, session, True)
    else:
        session.close()


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Request database work (`in_thread`) runs in at most this many worker threads at once,
# per event loop (`limit_db_threads`, at node start). Each thread's work is Python under the
# GIL: with anyio's 40 threads open to it, 32 concurrent reads made 32 threads and the event
# loop contend for one lock, and the node spent about twice the CPU per read that one
# connection cost (issue 12's profile: by-id 2.8 ms at 32 connections, 1.6 ms at one).
_db_limiters: WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    WeakKeyDictionary()
)


def limit_db_threads(threads: int) -> None:
    """From the running loop: `in_thread` work of this loop uses at most `threads`."""
    _db_limiters[asyncio.get_running_loop()] = anyio.CapacityLimiter(threads)


async def in_thread(
    session: Session, work: Callable[..., T], *args: Any, read_only: bool = False
) -> T:
    """Run `work(*args)` in one worker thread hop and commit the request's session in the
    same hop (rolled back if `work` raises): an async route that reads or writes through
    the session this way costs one hop in all, instead of one for each sync dependency,
    one for the handler and one for its response's validation.

    `read_only`: a route that only reads runs its statements outside a transaction where
    that saves round trips (`node.db.read_outside_transaction`)."""

    def run() -> T:
        try:
            if read_only:
                read_outside_transaction(session)
            result = work(*args)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return result

    return await db_thread(run)


async def db_thread(work: Callable[[], T]) -> T:
    """`work()` in a worker thread, one of at most `limit_db_threads` at once."""
    limiter = _db_limiters.get(asyncio.get_running_loop())  # None: anyio's default
    return await anyio.to_thread.run_sync(work, limiter=limiter)


_UNANSWERED: Any = object()


@dataclass(eq=False)
class _Submitted(Generic[I, O]):
    item: I
    answer: asyncio.Future[O]
    outcome: Any = field(default=_UNANSWERED)  # O, or the exception to raise


class GroupCommit(Generic[I, O]):
    """Request writes that commit together: the items submitted while one batch is being
    written wait for it to end, then go in together, in one `db_thread` hop and one
    transaction (`_transaction`, of the subclass). At most one batch is written at a time.

    What each request is told does not change: `_transaction` gives each item its own
    outcome, or its own refusal (an exception, decided before any write of that item's);
    if the batch's transaction fails anyway (a statement or the commit), nothing of it is
    kept and each of its items is written again alone, as it would have been without the
    batch, so one item's failure is never another's. A request is answered after the
    commit that holds its write."""

    # Whether an item whose request went away before its batch was formed is still
    # written (its answer cancelled): a create may still be made, as before the batches,
    # but a claim is not (a provider that stopped listening is handed no job).
    write_abandoned = True

    def __init__(self, max_batch: int) -> None:
        self._max_batch = max_batch
        self._waiting: list[_Submitted[I, O]] = []
        self._writer: asyncio.Task[None] | None = None

    def _transaction(self, batch: list[I]) -> list[O | Exception]:
        """In a worker thread: write `batch` in one transaction and commit it; each
        item's outcome, in order. Raise (all rolled back) if a statement or the commit
        fails."""
        raise NotImplementedError

    async def submit(self, item: I) -> O:
        """`item`'s outcome once its batch commits; raise what refused it."""
        submitted: _Submitted[I, O] = _Submitted(item, asyncio.get_running_loop().create_future())
        self._waiting.append(submitted)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        # A request that goes away cancels its answer, not its write: in a batch being
        # written (as in its own thread hop before) the write may still be made.
        return await submitted.answer

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                if not self.write_abandoned:
                    batch = [s for s in batch if not s.answer.done()]
                    if not batch:
                        continue
                try:
                    await db_thread(lambda batch=batch: self._write(batch))
                except BaseException as exc:  # the hop itself failed: no one waits forever
                    for submitted in batch:
                        if submitted.outcome is _UNANSWERED:
                            submitted.outcome = exc
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    for submitted in batch:
                        _answer(submitted)
        finally:
            self._writer = None
            for submitted in self._waiting:  # cancelled while some were waiting
                submitted.outcome = RuntimeError("the write queue stopped")
                _answer(submitted)
            self._waiting.clear()

    def _write(self, batch: list[_Submitted[I, O]]) -> None:
        """In a worker thread: the batch in one transaction, or each alone if that fails
        (what fails it then fails that item only)."""
        try:
            outcomes = self._transaction([s.item for s in batch])
        except Exception:
            _log.info("a batch of %d failed: each written alone", len(batch), exc_info=True)
            outcomes = []
            for submitted in batch:
                try:
                    (outcome,) = self._transaction([submitted.item])
                except Exception as exc:
                    outcome = exc
                outcomes.append(outcome)
        for submitted, outcome in zip(batch, outcomes, strict=True):
            submitted.outcome = outcome


def _answer(submitted: _Submitted[Any, Any]) -> None:
    if submitted.answer.done():
        return
    outcome = submitted.outcome
    if isinstance(outcome, BaseException):
        submitted.answer.set_exception(outcome)
    elif outcome is _UNANSWERED:
        submitted.answer.set_exception(RuntimeError("the write queue did not answer"))
    else:
        submitted.answer.set_result(outcome)


SettingsDep = Annotated[NodeSettings, Depends(get_settings)]
# scope="function": the commit runs when the handler returns, before the response is sent.
# With the default ("request") FastAPI closes yield dependencies after sending, so a fast
# client could read before the write it was just told about is committed.
SessionDep = Annotated[Session, Depends(get_db_session, scope="function")]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# Declares the Bearer scheme in the OpenAPI document (the "Authorize" button of /docs);
# the header itself is read by `bearer_token`, which answers in the domain's 401.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token (/auth/login, /auth/siwe, /auth/refresh) or a dcm_... API key.",
)
BearerDoc = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]
