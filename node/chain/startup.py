"""Building the node's chain host from its settings (`node.runtime.Runtime.start`): the
embedded EVM replayed from its journal, or the external RPC with the operator's keystore.
The escrow's deployment at start is `node.escrow.deploy`.
"""

from __future__ import annotations

import logging
from typing import Any

from node.chain.host import ChainHost, EmbeddedChainHost, ExternalChainHost
from node.chain.keys import load_keystore, load_or_create_operator_key
from node.config import NodeSettings

log = logging.getLogger("dcm.chain")


def build_host(settings: NodeSettings, terms: Any = None) -> ChainHost:
    """The chain host the settings name; `terms` (the escrow domain's `FundingTerms`)
    ride on it as `host.terms`."""
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
        host: ChainHost = ExternalChainHost(
            settings.chain_rpc_url,
            chain_dir,
            operator,
            confirmations,
            settings.chain_escrow_address,
            expected_chain_id=settings.chain_id,
        )
        host.arbiter_address = settings.chain_arbiter_address
    else:
        operator = load_or_create_operator_key(chain_dir / "operator.key")
        embedded = EmbeddedChainHost(
            chain_dir,
            operator,
            rpc_url=settings.public_url.rstrip("/") + "/chain/rpc",
            dev_methods=settings.is_dev,
            chain_id=settings.chain_id,
            snapshot_every=settings.chain_snapshot_every,
            snapshot_keep=settings.chain_snapshot_keep,
        )
        if settings.chain_confirmations is not None:
            embedded.confirmations = settings.chain_confirmations
        arbiter = load_or_create_operator_key(chain_dir / "arbiter.key")
        embedded.arbiter_address = arbiter.address  # the node keeps no handle on its key
        host = embedded
    host.terms = terms
    return host
