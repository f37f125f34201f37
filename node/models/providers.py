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
    # The provider networks it serves (seed 003's `provider` of a job; `dcm provider run
    # --pool akash`): a job of a network is claimed only by its providers. Not to be
    # confused with a workspace's private pool (`ProviderAdmission`), which decides who
    # may be offered a job without escrow; both apply.
    networks: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["default"], server_default='["default"]', nullable=False
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    @property
    def gpu_memory_mb(self) -> int:
        gpus = self.capabilities.get("gpus") or []
        return max((int(g.get("memory_mb") or 0) for g in gpus), default=0)


class ProviderAdmission(Base):
    """A provider's admission to a workspace's private pool: the `provider`-role API key of
    that workspace it presented at registration. Only the key's id is kept (never the
    secret), so the admission lives exactly as long as the key: revoking the key, or its
    creator losing the right to write jobs there, ends it on the next claim or write."""

    __tablename__ = "provider_admissions"

    provider_id: Mapped[int] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True
    )
    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True, nullable=False
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
