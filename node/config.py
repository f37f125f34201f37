"""Configuration of a node process: environment variables with the `DCM_` prefix.

Unset engine URLs mean the embedded default (SQLite file, built-in block store,
in-process EVM). Nested sections use `__`, e.g. `DCM_UPLOAD__MAX_BYTES`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me-not-for-production"


class UploadLimits(BaseModel):
    max_bytes: int = Field(2 * 1024**3, description="Largest accepted upload body, in bytes.")
    max_files: int = Field(100_000, description="Most files in one dataset upload.")
    max_compression_ratio: float = Field(
        200.0, description="Largest uncompressed/compressed ratio of one archive entry."
    )
    max_json_bytes: int = Field(1024 * 1024, description="Largest JSON request body, in bytes.")


class LeaseSettings(BaseModel):
    lease_seconds: int = Field(60, ge=5, description="How long a claim lasts without a heartbeat.")
    reaper_interval_seconds: float = Field(
        5.0, gt=0, description="How often expired leases are returned to the queue."
    )
    claim_wait_max_seconds: float = Field(
        30.0, ge=0, description="Longest a claim request long-polls for work."
    )
    claim_poll_seconds: float = Field(
        1.0, gt=0, description="Fallback re-check while long-polling (other replicas' jobs)."
    )
    provider_online_seconds: int = Field(
        120, description="A provider seen within this many seconds is shown online."
    )


class NodeSettings(BaseSettings):
    """Settings of `dcm serve`; one instance per process."""

    model_config = SettingsConfigDict(env_prefix="DCM_", env_nested_delimiter="__", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development", description="Production refuses placeholder secrets and disables the faucet."
    )
    data_dir: Path = Field(
        Path(".dcm"), description="Where the SQLite file, blocks and journals live."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset means SQLite in data_dir."
    )
    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET), description="Signs access and refresh tokens."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL clients use to reach the node."
    )
    siwe_domain: str | None = Field(
        None, description="Domain SIWE messages must name; defaults to the host of public_url."
    )
    chain_id: int = Field(
        131277322940537,
        description="Chain id SIWE messages must name; the embedded EVM's by default.",
    )
    access_token_seconds: int = Field(3600, description="Lifetime of an access token.")
    refresh_token_seconds: int = Field(30 * 24 * 3600, description="Lifetime of a refresh token.")
    siwe_nonce_seconds: int = Field(600, description="Lifetime of a sign-in nonce.")
    ipfs_api_url: str | None = Field(
        None, description="Kubo RPC URL; unset means the built-in store."
    )
    chain_rpc_url: str | None = Field(
        None, description="EVM JSON-RPC URL; unset means in-process EVM."
    )
    chain_confirmations: int | None = Field(
        None, description="Blocks the watcher waits; default 0 embedded, 2 on an external chain."
    )
    chain_escrow_address: str | None = Field(
        None, description="Escrow contract on an external chain; unset: deploy at first start."
    )
    chain_operator_keyfile: Path | None = Field(
        None, description="eth-account keystore of the operator on an external chain."
    )
    chain_operator_password: SecretStr | None = Field(
        None, description="Password of chain_operator_keyfile."
    )
    chain_watch_interval_seconds: float = Field(
        1.0, description="Pause between chain watcher polls (escrow events, outbox sends)."
    )
    chain_policy_interval_seconds: float = Field(
        30.0,
        description="Pause between settlement policy passes (finalize after the window, "
        "refund expired deposits, expire unfunded jobs).",
    )
    funding_timeout_seconds: float = Field(
        7 * 24 * 3600.0,
        description="An awaiting_funding job older than this expires and its pins are released.",
    )
    chain_faucet_max_eth: str = Field(
        "100", description="Largest amount (ETH) one dev-faucet request may mint."
    )
    upload: UploadLimits = Field(default_factory=UploadLimits)
    leases: LeaseSettings = Field(default_factory=LeaseSettings)
    log_level: str = Field("INFO", description="Python logging level.")

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> NodeSettings:
        if self.environment == "production" and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("DCM_SECRET_KEY must be set to a real secret outside development")
        if len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("DCM_SECRET_KEY must be at least 32 characters")
        return self

    @property
    def is_dev(self) -> bool:
        return self.environment == "development"

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.data_dir / 'dcm.sqlite3').resolve()}"
