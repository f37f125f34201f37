"""Every SQL query on pins and MFS roots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from node.db import utcnow
from node.models.content import MfsRoot, Pin


def _insert(session: Session, model: type) -> Any:
    """INSERT with the dialect's ON CONFLICT clause: two uploads of the same bytes (two
    threads, or two replicas) pin one CID at once, and both must succeed; a read-then-add
    let the second one fail on the primary key (a 500, found by the replicas e2e test)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def get(session: Session, cid: str) -> Pin | None:
    return session.get(Pin, cid)


def add(session: Session, cid: str, name: str | None = None) -> None:
    """Pin `cid`; pinning a pinned CID changes nothing."""
    stmt = _insert(session, Pin).values(cid=cid, name=name, is_recursive=True)
    session.execute(stmt.on_conflict_do_nothing(index_elements=[Pin.cid]))


def remove(session: Session, cid: str) -> bool:
    result = session.execute(delete(Pin).where(Pin.cid == cid))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def all_cids(session: Session) -> list[str]:
    return list(session.scalars(select(Pin.cid).order_by(Pin.created_at, Pin.cid)))


def mfs_root(session: Session, owner: str) -> str | None:
    row = session.get(MfsRoot, owner, populate_existing=True)  # upserts bypass the session
    return None if row is None else row.cid


def set_mfs_root(session: Session, owner: str, cid: str) -> None:
    stmt = _insert(session, MfsRoot).values(owner=owner, cid=cid)
    changes = {"cid": stmt.excluded.cid, "updated_at": utcnow()}  # onupdate skips upserts
    session.execute(stmt.on_conflict_do_update(index_elements=[MfsRoot.owner], set_=changes))


def mfs_root_cids(session: Session) -> list[str]:
    return list(session.scalars(select(MfsRoot.cid).distinct()))
