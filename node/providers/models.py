"""The provider registry: one row per provider wallet, with its declared hardware."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    address: Mapped[str] = mapped_column(String(42), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # {"gpus": [{"name", "memory_mb", "cuda"}], "cpu_cores", "ram_mb", "disk_free_mb"}
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    job_types: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    @property
    def gpu_memory_mb(self) -> int:
        gpus = self.capabilities.get("gpus") or []
        return max((int(g.get("memory_mb") or 0) for g in gpus), default=0)
