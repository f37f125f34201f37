"""Deploying the node's escrow at start (`node.runtime.Runtime.deploy_hooks`).

Every registered deployment hook runs once as the chain host starts: the escrow is
deployed signed by the operator unless it is already recorded in `deployments.json` (or,
on an external chain, configured with `DCM_CHAIN_ESCROW_ADDRESS`).

The escrow's arbiter is never the operator: the embedded chain generates a second key
(`<data_dir>/chain/arbiter.key`, funded with gas at deployment); an external chain names
one (`DCM_CHAIN_ARBITER_ADDRESS`). The node's funding terms (`FundingTerms`: challenge
window, minimum job time, deadline) ride on the host as `host.terms`.
"""

from __future__ import annotations

import logging

from marketplace.errors import ChainError
from marketplace.escrow.artifact import load_artifact
from marketplace.escrow.client import JobEscrow
from node.chain.host import ChainHost

log = logging.getLogger("dcm.chain")


ARBITER_GAS_WEI = 10**18  # the embedded arbiter's gas money, sent once at deployment


def escrow_deploy_hook(host: ChainHost) -> None:
    """Deploy the JobEscrow (marketplace.escrow binding) once, signed by the operator.

    The operator is the assigner; the arbiter is `host.arbiter_address` (the embedded
    chain's own arbiter key, or `DCM_CHAIN_ARBITER_ADDRESS`); no platform fee. On an
    external chain with `DCM_CHAIN_ESCROW_ADDRESS` set, nothing is deployed. An escrow
    already recorded or configured must be this build, assigned by this operator
    (`check_escrow_build`).
    """
    if host.escrow_address:
        check_escrow_build(host)
        return
    if host.operator is None:
        log.warning("no operator key: JobEscrow not deployed")
        return
    arbiter = getattr(host, "arbiter_address", None)
    if not arbiter:
        raise ChainError(
            "set DCM_CHAIN_ARBITER_ADDRESS to deploy the escrow: the arbiter who rules "
            "disputes must be a party other than the node's operator",
            error_name="NoArbiter",
        )
    artifact = load_artifact()
    args = JobEscrow.constructor_args(arbiter=arbiter, assigner=host.operator.address)
    # the operator's one sender (nonce, fees, lock), as the faucet and the outbox use
    record = host.deploy("JobEscrow", artifact["abi"], artifact["bytecode"], *args)
    if host.embedded:
        host.faucet(arbiter, ARBITER_GAS_WEI)
    log.info(
        "JobEscrow deployed at %s (block %s), arbiter %s",
        record["address"],
        record["block"],
        arbiter,
    )


def check_escrow_build(host: ChainHost) -> None:
    """Refuse to start against an escrow compiled from another JobEscrow build (a data
    directory or `DCM_CHAIN_ESCROW_ADDRESS` from an older dcm): its functions, job keys
    and events would not be the ones this node speaks, and money would be stuck."""
    if not host.escrow_address:
        return
    escrow = host.escrow()
    if escrow.runs_this_build():
        if host.operator is not None and escrow.assigner() != host.operator.address:
            raise ChainError(
                f"the escrow at {escrow.address} is assigned by {escrow.assigner()}, not by "
                f"this node's operator {host.operator.address}: the node could not bind "
                "providers or refund deposits there",
                error_name="EscrowAssignerMismatch",
            )
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
