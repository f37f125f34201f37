"""Every SQL query on pins and MFS roots."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from node.models.content import MfsRoot, Pin


def get(session: Session, cid: str) -> Pin | None:
    return session.get(Pin, cid)


def add(session: Session, cid: str, name: str | None = None) -> Pin:
    pin = session.get(Pin, cid)
    if pin is None:
        pin = Pin(cid=cid, name=name, is_recursive=True)
        session.add(pin)
        session.flush()
    return pin


def remove(session: Session, cid: str) -> bool:
    result = session.execute(delete(Pin).where(Pin.cid == cid))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def all_cids(session: Session) -> list[str]:
    return list(session.scalars(select(Pin.cid).order_by(Pin.created_at, Pin.cid)))


def mfs_root(session: Session, owner: str) -> str | None:
    row = session.get(MfsRoot, owner)
    return None if row is None else row.cid


def set_mfs_root(session: Session, owner: str, cid: str) -> None:
    row = session.get(MfsRoot, owner)
    if row is None:
        session.add(MfsRoot(owner=owner, cid=cid))
    else:
        row.cid = cid
    session.flush()


def mfs_root_cids(session: Session) -> list[str]:
    return list(session.scalars(select(MfsRoot.cid).distinct()))
