"""Starting the node's chain: `install_chain(app)` wires `app.state.chain`.

At startup the host is built (embedded EVM replayed from its journal, or the external
RPC), then every registered deployment hook runs once: a hook deploys a contract
artifact signed by the operator unless it is already recorded in `deployments.json`
(or, on an external chain, configured with `DCM_CHAIN_ESCROW_ADDRESS`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from marketplace.errors import ChainError
from node.chain.host import ChainHost, EmbeddedChainHost, ExternalChainHost
from node.chain.keys import load_keystore, load_or_create_operator_key
from node.config import NodeSettings

log = logging.getLogger("dcm.chain")


DeployHook = Callable[[ChainHost], None]


def build_host(settings: NodeSettings) -> ChainHost:
    chain_dir = settings.data_dir / "chain"
    if settings.chain_rpc_url:
        operator = None
        if settings.chain_operator_keyfile:
            password = settings.chain_operator_password
            operator = load_keystore(
                settings.chain_operator_keyfile, password.get_secret_value() if password else ""
            )
        confirmations = (
            settings.chain_confirmations if settings.chain_confirmations is not None else 2
        )
        return ExternalChainHost(
            settings.chain_rpc_url,
            chain_dir,
            operator,
            confirmations,
            settings.chain_escrow_address,
        )
    operator = load_or_create_operator_key(chain_dir / "operator.key")
    host = EmbeddedChainHost(
        chain_dir,
        operator,
        rpc_url=settings.public_url.rstrip("/") + "/chain/rpc",
        dev_methods=settings.is_dev,
    )
    if settings.chain_confirmations is not None:
        host.confirmations = settings.chain_confirmations
    return host


def artifact_deploy_hook(
    name: str, artifact_path: Path, args: Callable[[ChainHost], list[Any]] | None = None
) -> DeployHook:
    """A hook deploying the artifact (`{"abi", "bytecode"}` JSON) once, if the file exists."""

    def hook(host: ChainHost) -> None:
        if name == "JobEscrow" and host.escrow_address and not host.embedded:
            return  # configured external escrow
        if not artifact_path.exists():
            log.warning("no artifact at %s: %s not deployed", artifact_path, name)
            return
        if host.operator is None:
            log.warning("no operator key: %s not deployed", name)
            return
        artifact = json.loads(artifact_path.read_text())
        record = host.deploy(
            name, artifact["abi"], artifact["bytecode"], *(args(host) if args else [])
        )
        log.info("%s at %s (block %s)", name, record["address"], record["block"])

    return hook


def escrow_deploy_hook(host: ChainHost) -> None:
    """Deploy the JobEscrow (marketplace.escrow binding) once, signed by the operator.

    The operator is arbiter and voucher assigner; no platform fee. On an external
    chain with `DCM_CHAIN_ESCROW_ADDRESS` set, nothing is deployed. An escrow already
    recorded or configured must be this build (`check_escrow_build`).
    """
    if host.escrow_address:
        check_escrow_build(host)
        return
    if host.operator is None:
        log.warning("no operator key: JobEscrow not deployed")
        return
    from marketplace.escrow.client import JobEscrow

    operator = host.operator.address
    escrow = JobEscrow.deploy(host.w3, host.operator.account, arbiter=operator, assigner=operator)
    host.record_deployment("JobEscrow", escrow.address, int(escrow.deployment_block or 0), "0x")
    log.info("JobEscrow deployed at %s (block %s)", escrow.address, escrow.deployment_block)


def check_escrow_build(host: ChainHost) -> None:
    """Refuse to start against an escrow compiled from another JobEscrow build (a data
    directory or `DCM_CHAIN_ESCROW_ADDRESS` from an older dcm): its functions, job keys
    and events would not be the ones this node speaks, and money would be stuck."""
    if not host.escrow_address:
        return
    escrow = host.escrow()
    if escrow.runs_this_build():
        return
    where = (
        f"the embedded chain in {host.deployments.path.parent}"
        if host.embedded
        else "DCM_CHAIN_ESCROW_ADDRESS"
        if host._configured_escrow
        else "the recorded deployment"
    )
    raise ChainError(
        f"the escrow at {escrow.address} ({where}) is not this dcm's JobEscrow build: "
        "start with a fresh DCM_DATA_DIR, or deploy this build (`dcm chain deploy`) and point "
        "DCM_CHAIN_ESCROW_ADDRESS at it",
        error_name="EscrowBuildMismatch",
    )


def install_chain(app: FastAPI) -> None:
    """Register chain startup/shutdown and mount the dev faucet where it applies."""
    settings: NodeSettings = app.state.settings
    app.state.chain = None
    app.state.chain_deploy_hooks = [escrow_deploy_hook]
    if settings.is_dev and not settings.chain_rpc_url:
        from node.chain.router import faucet_router

        app.include_router(faucet_router)

    async def start(app: FastAPI) -> None:
        host = build_host(settings)
        app.state.chain = host
        for hook in app.state.chain_deploy_hooks:
            hook(host)

    async def stop(app: FastAPI) -> None:
        host = app.state.chain
        if host is not None:
            host.close()
        app.state.chain = None

    app.state.on_startup.append(start)
    app.state.on_shutdown.append(stop)

    from node.chain.watcher import install_watcher

    install_watcher(app)
