"""Pins of the node's content store: the roots whose DAGs garbage collection keeps."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow


class Pin(Base):
    __tablename__ = "pins"

    cid: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    is_recursive: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class MfsRoot(Base):
    """The root directory of one caller's MFS (`ipfs files ...`): the node keeps one per
    user and one per API key, so callers never see or overwrite each other's files."""

    __tablename__ = "mfs_roots"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    cid: Mapped[str] = mapped_column(String(128), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
