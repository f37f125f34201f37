"""The node's runtime: every long-lived object a request or a background loop needs, built
once by `node.app.create_app` and held in one typed object (no service locator).

Routes reach its parts through typed dependencies (`node.deps.SessionDep`/`SettingsDep`,
`node.content.deps.ContentDep`, `node.chain.deps.ChainDep`, `node.jobs.funding.FundingDep`,
...), never through `app.state` themselves. `start()` and `stop()` run from the app's
lifespan: the staging folder is claimed first, then the chain host is built and its
contracts deployed, then the loop services start (lease reaper, block collector, chain
tick); `stop()` undoes it in reverse.

On SQLite or the embedded chain the node is alone: `start()` first takes the data dir's
lock (`node.replicas`). On PostgreSQL it may be one of several replicas: the notifier is
bridged to the others (`node.pgnotify`), and the loop services run only while this
replica wins the leader election, each pass fenced by its own advisory lock.

This module is the composition root's: it may import every domain, and no domain imports
it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from marketplace.content.store import ContentStore
from marketplace.lru import Lru
from node.auth.cache import UserCache
from node.auth.passwords import HashingGate
from node.chain.host import ChainHost
from node.chain.startup import build_host
from node.config import NodeSettings
from node.content.collector import BlockCollector
from node.content.factory import make_content_store
from node.content.store import EmbeddedStore
from node.db import make_engine, make_sessionmaker
from node.deps import limit_db_threads
from node.escrow.deploy import escrow_deploy_hook
from node.escrow.service import EscrowFunding, FundingTerms
from node.escrow.tick import ChainTick
from node.jobs import events as job_events
from node.jobs.creates import CreateQueue
from node.jobs.funding import Funding
from node.jobs.janitor import LogJanitor
from node.limits.rates import RateLimiter
from node.pgnotify import PgWakeBridge
from node.providers import notifier as job_notifier
from node.providers.claims import ClaimQueue
from node.providers.notifier import JobNotifier
from node.providers.reaper import LeaseReaper
from node.readcache import ReadCache
from node.replicas import (
    EMBEDDED_CHAIN_KEY,
    DataDirClaim,
    LeaderElection,
    PgSessionLock,
    claim_data_dir,
    is_postgres,
    pass_fence,
)
from node.services import LoopService
from node.staging import StagingClaim, claim_staging
from node.webhooks import service as webhooks
from node.webhooks.sender import WebhookSender
from node.workspaces.service import KNOWN_PERSONAL

DeployHook = Callable[[ChainHost], None]

# Notifier topic: an outbox row was committed (any replica): the leader's chain tick runs.
CHAIN_TOPIC = "chain"
# Users whose personal workspace id a node remembers (`node.workspaces.service`).
KNOWN_USERS = 100_000


@dataclass(eq=False)
class Runtime:
    settings: NodeSettings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    content: ContentStore
    notifier: JobNotifier
    rate_limiter: RateLimiter
    password_gate: HashingGate
    funding: Funding
    # `POST /v1/jobs`, written in batches of the creates that arrive together.
    creates: CreateQueue
    claims: ClaimQueue
    # Access tokens' user lookups, reused for a few seconds (`node.auth.cache`).
    users: UserCache = field(default_factory=lambda: UserCache(0))
    # Rendered answers of repeated reads while the database is unchanged (`node.readcache`).
    reads: ReadCache = field(default_factory=lambda: ReadCache(""))
    # Loop services started with the app (the chain tick joins them once the chain runs).
    services: list[LoopService] = field(default_factory=list)
    # Run once against the chain host as it starts (the escrow's deployment).
    deploy_hooks: list[DeployHook] = field(default_factory=lambda: [escrow_deploy_hook])
    # Set while the app runs.
    chain: ChainHost | None = None
    chain_tick: ChainTick | None = None
    staging: StagingClaim | None = None
    # Several replicas (PostgreSQL): the leader election that runs the loop services, and
    # the bridge that carries wake-ups to the other replicas (`node.replicas`).
    election: LeaderElection | None = None
    wake_bridge: PgWakeBridge | None = None
    _claims: list[DataDirClaim | PgSessionLock] = field(default_factory=list)
    _services_running: bool = False

    @property
    def chain_id(self) -> int | None:
        return int(self.chain.chain_id) if self.chain is not None else None

    @property
    def reaper(self) -> LeaseReaper | None:
        return next((s for s in self.services if isinstance(s, LeaseReaper)), None)

    @property
    def webhook_sender(self) -> WebhookSender | None:
        return next((s for s in self.services if isinstance(s, WebhookSender)), None)

    @property
    def block_collector(self) -> BlockCollector | None:
        return next((s for s in self.services if isinstance(s, BlockCollector)), None)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # a start that fails leaves no lock, thread or connection
            raise

    async def _start(self) -> None:
        self._claim_single_node_engines()
        self.staging = claim_staging(self.settings.data_dir)  # before any upload could land
        self.notifier.bind(asyncio.get_running_loop())
        limit_db_threads(self.settings.db_threads or max(2, os.cpu_count() or 2))
        replicated = is_postgres(self.settings.sqlalchemy_url)
        if replicated:
            self.wake_bridge = PgWakeBridge(self.settings.sqlalchemy_url, self.notifier)
            self.wake_bridge.start()
        host = build_host(self.settings, FundingTerms.from_settings(self.settings))
        self.chain = host
        for hook in self.deploy_hooks:
            hook(host)
        self.chain_tick = ChainTick(host, self.sessionmaker, self.settings, self.content)
        if replicated:  # the loop services run in the one replica that leads
            fence = pass_fence(self.engine)
            for service in self._running_services():
                service.guard = fence
            self.election = LeaderElection(
                self.settings.sqlalchemy_url,
                self._start_services,
                self._stop_services,
                retry_seconds=self.settings.leader_retry_seconds,
            )
            await self.election.start()
        else:
            await self._start_services()

    async def stop(self) -> None:
        if self.election is not None:
            await self.election.stop()  # stops the services if this replica led
            self.election = None
        await self._stop_services()
        if self.wake_bridge is not None:
            self.wake_bridge.stop()
            self.wake_bridge = None
        self.chain_tick = None
        if self.chain is not None:
            self.chain.close()
        self.chain = None
        if self.staging is not None:
            self.staging.close()
            self.staging = None
        await self.reads.close()
        for claim in reversed(self._claims):
            claim.close()
        self._claims.clear()

    def chain_head(self) -> int | None:
        """The chain's latest block number (metrics: the watcher's lag), None if unknown."""
        chain = self.chain
        if chain is None:
            return None
        try:
            return int(chain.w3.eth.block_number)
        except Exception:
            return None

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the singleton loop services now."""
        return self._services_running

    def _claim_single_node_engines(self) -> None:
        """The embedded SQLite file and chain are one process's: refuse a second node on
        them (`node.replicas`)."""
        settings = self.settings
        if not is_postgres(settings.sqlalchemy_url):
            self._claims.append(claim_data_dir(settings.data_dir, "embedded SQLite database"))
        elif not settings.chain_rpc_url:
            self._claims.append(claim_data_dir(settings.data_dir, "embedded chain"))
            try:
                lock = PgSessionLock(
                    settings.sqlalchemy_url, EMBEDDED_CHAIN_KEY, "with the embedded chain"
                )
            except Exception:
                self._claims.pop().close()
                raise
            self._claims.append(lock)

    async def _start_services(self) -> None:
        if self._services_running:
            return
        self._services_running = True
        for service in self._running_services():
            await service.start()

    async def _stop_services(self) -> None:
        if not self._services_running:
            return
        self._services_running = False
        for service in reversed(self._running_services()):
            await service.stop()

    def _running_services(self) -> list[LoopService]:
        return [*self.services, *([self.chain_tick] if self.chain_tick is not None else [])]

    def end_long_polls(self) -> None:
        """Answer every open claim long-poll with "no work" now (the node is stopping).
        Safe from a signal handler or any thread."""
        self.notifier.close()

    def wake_chain(self) -> None:
        """Run the next chain tick now (from any thread): an outbox row was committed.
        Through the notifier, so that the leader's tick runs whichever replica wrote."""
        self.notifier.notify(CHAIN_TOPIC)

    def _wake_chain_here(self) -> None:
        if self.chain_tick is not None and self.chain_tick.wake_on_commit:
            self.chain_tick.wake()


def build_runtime(settings: NodeSettings) -> Runtime:
    """Everything but what needs the running event loop or the chain (`Runtime.start`)."""
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine, info={KNOWN_PERSONAL: Lru(KNOWN_USERS)})
    notifier = JobNotifier()
    job_notifier.install(sessions, notifier)
    job_events.install(sessions, notifier)
    webhooks.install(sessions, settings.events, notifier)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=sessions,
        content=make_content_store(settings, sessions),
        notifier=notifier,
        rate_limiter=RateLimiter(settings.rate_limits),
        users=UserCache(settings.auth_user_cache_seconds),
        reads=ReadCache(settings.sqlalchemy_url, settings.read_cache_entries),
        password_gate=HashingGate(
            settings.rate_limits.password_hash_slots,
            settings.rate_limits.password_hash_wait_seconds,
        ),
        funding=EscrowFunding(lambda: runtime.chain),
        creates=CreateQueue(sessions),
        claims=ClaimQueue(sessions, notifier, lambda: runtime.chain, lambda: runtime.wake_chain()),
    )
    notifier.listen(CHAIN_TOPIC, runtime._wake_chain_here)
    runtime.services.append(LeaseReaper(sessions, settings, runtime.wake_chain))
    runtime.services.append(LogJanitor(sessions, settings))
    sender = WebhookSender(sessions, settings)
    notifier.listen(webhooks.WEBHOOKS_TOPIC, sender.wake)
    runtime.services.append(sender)
    interval = settings.block_gc_interval_seconds
    if isinstance(runtime.content, EmbeddedStore) and interval > 0:
        runtime.services.append(BlockCollector(runtime.content, interval))
    return runtime
