"""Configuration of a node process: environment variables with the `DCM_` prefix.

Unset engine URLs mean the embedded default (SQLite file, built-in block store,
in-process EVM). Nested sections use `__`, e.g. `DCM_UPLOAD__MAX_BYTES`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me-not-for-production"
# Wallets refuse larger chain ids (MetaMask's bound, so that EIP-155 `v` fits a JS number).
MAX_CHAIN_ID = 4503599627370476


class UploadLimits(BaseModel):
    max_bytes: int = Field(2 * 1024**3, description="Largest accepted upload body, in bytes.")
    max_files: int = Field(100_000, description="Most files in one dataset upload.")
    max_compression_ratio: float = Field(
        200.0, description="Largest uncompressed/compressed ratio of one archive entry."
    )
    max_json_bytes: int = Field(1024 * 1024, description="Largest JSON request body, in bytes.")
    min_free_disk_bytes: int = Field(
        512 * 1024**2,
        ge=0,
        description="Below this much free space under the data directory `/readyz` reports "
        "the disk as low (503), before uploads start failing with 507.",
    )


class BodyLimits(BaseModel):
    """Limits on request bodies, enforced while they stream in (node.limits.body). JSON
    bodies use `upload.max_json_bytes`, dataset uploads `upload.max_bytes`."""

    max_rpc_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON-RPC body on /chain/rpc, in bytes."
    )
    max_kubo_add_bytes: int = Field(
        2 * 1024**3,
        ge=1024,
        description="Largest raw multipart body of a Kubo RPC write (/api/v0/add...), in bytes.",
    )
    max_json_depth: int = Field(
        64, ge=2, le=1000, description="Deepest nesting of arrays/objects a JSON body may have."
    )
    stall_seconds: float = Field(
        30.0, gt=0, description="A request body that sends no byte for this long is cut (408)."
    )


class RateLimits(BaseModel):
    """Token buckets per client address and per account (node.limits.rates), and the bound
    on concurrent password hashing. Rates read `N/second`, `N/minute` or `N/hour`: a burst
    of N, refilled evenly over the period. Limits are per replica."""

    enabled: bool = Field(True, description="Turn every rate limit off (not the hashing bound).")
    login_per_client: str = Field("20/minute", description="POST /auth/login per client address.")
    login_failures_per_account: str = Field("10/minute", description="Failed logins per username.")
    nonce_per_client: str = Field("60/minute", description="GET /auth/nonce per client address.")
    siwe_per_client: str = Field("30/minute", description="POST /auth/siwe per client address.")
    siwe_failures_per_address: str = Field(
        "10/minute", description="Failed wallet sign-ins per address."
    )
    refresh_per_client: str = Field(
        "60/minute", description="POST /auth/refresh per client address."
    )
    refresh_per_account: str = Field("30/minute", description="Token refreshes per user.")
    faucet_per_client: str = Field(
        "10/minute", description="POST /chain/faucet per client address."
    )
    faucet_per_address: str = Field("10/minute", description="Faucet payments per address.")
    auth_failures_per_client: str = Field(
        "60/minute",
        description="Rejected bearer credentials (tokens, API keys) per client address.",
    )
    upload_per_client: str = Field(
        "30/minute", description="Dataset uploads (seed 000) per client address."
    )
    max_tracked_keys: int = Field(
        100_000, ge=100, description="Most buckets kept in memory; the stalest are dropped."
    )
    password_hash_slots: int = Field(
        1,
        ge=1,
        description="Password hashes (Argon2id, 64 MiB each) computed at once per process.",
    )
    password_hash_wait_seconds: float = Field(
        5.0, ge=0, description="Longest a login waits for a hashing slot before a 429."
    )

    @field_validator("*")
    @classmethod
    def _rate(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            parse_rate(value)  # raises ValueError with the accepted forms
        return value


_RATE_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


def parse_rate(text: str) -> tuple[int, float]:
    """`"20/minute"` -> (20, 60.0): a burst of 20 refilled over 60 seconds."""
    count, _, period = text.strip().partition("/")
    if not count.isdigit() or int(count) < 1 or period.strip() not in _RATE_PERIODS:
        raise ValueError(f"rate {text!r}: expected N/second, N/minute or N/hour with N >= 1")
    return int(count), _RATE_PERIODS[period.strip()]


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


class EventSettings(BaseModel):
    """The job event log, its streams, and the webhooks fed from it (`node.jobs.events`,
    `node.webhooks`)."""

    log_retention_days: float = Field(
        30, ge=0, description="Log lines older than this are deleted (0 keeps them forever)."
    )
    max_line_chars: int = Field(
        8192, ge=80, description="Longer log lines are cut here, with a marker saying so."
    )
    max_log_lines_per_job: int = Field(
        10_000, ge=1, description="Log lines kept per job; later ones are dropped with a marker."
    )
    metrics_retention_days: float = Field(
        30, ge=0, description="Metric samples older than this are deleted (0 keeps them forever)."
    )
    max_metric_samples_per_job: int = Field(
        20_000,
        ge=10,
        description="Resource samples kept per job; past it the oldest go (a 10 s sampler "
        "fills it in about 55 hours).",
    )
    max_training_epochs_per_job: int = Field(
        10_000, ge=1, description="Per-epoch training entries kept per job; later ones are dropped."
    )
    stream_heartbeat_seconds: float = Field(
        15.0, gt=0, description="A comment on an idle event stream this often (proxies)."
    )
    stream_max_seconds: float = Field(
        3600.0,
        ge=0,
        description="An event stream closes after this (without its `end` frame); the client "
        "resumes with Last-Event-ID. 0: after the entries already stored.",
    )
    webhook_retry_hours: float = Field(
        24.0, gt=0, description="How long a failing webhook delivery is retried."
    )
    webhook_backoff_base_seconds: float = Field(
        5.0, gt=0, description="The first retry's wait; doubling (with jitter) after each."
    )
    webhook_backoff_max_seconds: float = Field(
        3600.0, gt=0, description="The longest wait between two tries of a delivery."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="How long one delivery waits for the receiver's answer."
    )
    webhook_disable_after_failures: int = Field(
        50, ge=1, description="Failed tries in a row after which a subscription is disabled."
    )
    webhook_concurrency: int = Field(
        16, ge=1, description="Deliveries sent at once (a dead receiver holds one slot)."
    )
    webhook_allow_private_targets: bool | None = Field(
        None,
        description="Allow webhook URLs on loopback, RFC 1918 or link-local addresses. "
        "Unset: allowed in development, refused in production.",
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
    db_threads: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Worker threads that run the read routes' database work at once "
        "(by-id, lists); unset: the CPU count, at least 2. More only contend for the GIL.",
    )
    read_cache_entries: int = Field(
        4096,
        ge=0,
        description="Answers of polled reads (a job by id, job lists) kept and served again "
        "while nothing was committed to the database since (node.readcache); SQLite only, "
        "0 turns it off.",
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
    chain_id: int | None = Field(
        None,
        ge=1,
        le=MAX_CHAIN_ID,
        description="Chain id of the embedded EVM. Unset: chosen at random when the data dir "
        "is new and kept in its chain journal, so a transaction signed for one node does not "
        "replay on another. On an external chain, the id its RPC must serve (checked at "
        "start). SIWE messages and /chain/info name the chain's actual id.",
    )
    operator_token: SecretStr | None = Field(
        None,
        description="Bearer token that lets a client other than loopback use the "
        "development-only JSON-RPC methods (evm_mine, evm_increaseTime, evm_snapshot, "
        "evm_revert). Unset: loopback only.",
    )
    chain_rpc_cors_origins: list[str] | None = Field(
        None,
        description="Origins whose browser pages may call /chain/rpc (CORS; a JSON list, "
        '["*"] for any). Unset: any origin in development, none in production, where the '
        "operator names the dapps it serves. No credentials are ever allowed cross-origin.",
    )
    access_token_seconds: int = Field(3600, description="Lifetime of an access token.")
    auth_user_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long an access token's user lookup (exists, active, wallet) is "
        "reused (node.auth.cache); 0: looked up on every request. API keys are never cached.",
    )
    refresh_token_seconds: int = Field(30 * 24 * 3600, description="Lifetime of a refresh token.")
    siwe_nonce_seconds: int = Field(600, description="Lifetime of a sign-in nonce.")
    siwe_clock_skew_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="How far ahead of the node's clock a wallet's Issued At / Not Before may be.",
    )
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
    chain_snapshot_every: int = Field(
        500,
        ge=0,
        description="Embedded chain: write a snapshot of its state (in the background) every "
        "this many journal records, so a start replays only the records after it; 0: only at "
        "clean shutdown.",
    )
    chain_snapshot_keep: int = Field(
        2,
        ge=0,
        description="Embedded chain snapshots kept (newest first); 0: none written or used, "
        "every start replays the whole journal.",
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
    chain_arbiter_address: str | None = Field(
        None,
        description="Arbiter of the escrow the node deploys on an external chain (required "
        "there; never the operator). The embedded chain generates its own arbiter key.",
    )
    chain_challenge_window_seconds: int = Field(
        24 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="Challenge window the node asks deposits for (and requires of them).",
    )
    chain_min_job_seconds: int = Field(
        3600, ge=0, description="A deposit whose deadline leaves the job less time is refused."
    )
    funding_deadline_seconds: int = Field(
        7 * 24 * 3600,
        gt=0,
        description="Result deadline the node asks a deposit for when the job sets none.",
    )
    public_url_from_request: bool = Field(
        False,
        description="Advertise URLs (the chain RPC URL) from each request's own host; "
        "`dcm serve` sets it when it listens on every interface and DCM_PUBLIC_URL is unset.",
    )
    block_gc_interval_seconds: float = Field(
        600.0,
        ge=0,
        description="Pause between passes of the block collector (embedded store): blocks no "
        "pin reaches are deleted; imports in progress are never touched. 0 turns it off.",
    )
    jobs_input_dir: Path | None = Field(
        None,
        description="Seed 004 document jobs: a directory whose files a job may name by "
        "absolute path (`parameters.filename`); the node adds them to its store at submit. "
        "Unset: jobs name their inputs by ipfs://<cid>/<path> only.",
    )
    leader_retry_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        description="Replicas on PostgreSQL: how often a follower tries to take the singleton "
        "services' advisory lock (and the leader checks it still holds it).",
    )
    metrics_public: bool | None = Field(
        None,
        description="Serve Prometheus metrics at /metrics to anyone. Unset: in development "
        "only; in production /metrics answers 404 unless this is true or metrics_token is set.",
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token a scraper presents to read /metrics (any environment)."
    )
    upload: UploadLimits = Field(default_factory=UploadLimits)
    leases: LeaseSettings = Field(default_factory=LeaseSettings)
    body: BodyLimits = Field(default_factory=BodyLimits)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    events: EventSettings = Field(default_factory=EventSettings)
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

    @property
    def webhook_private_targets_allowed(self) -> bool:
        allowed = self.events.webhook_allow_private_targets
        return self.is_dev if allowed is None else allowed

    @property
    def rpc_cors_origins(self) -> list[str]:
        """The origins CORS allows on /chain/rpc (see `chain_rpc_cors_origins`)."""
        if self.chain_rpc_cors_origins is not None:
            return self.chain_rpc_cors_origins
        return ["*"] if self.is_dev else []

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.data_dir / 'dcm.sqlite3').resolve()}"
