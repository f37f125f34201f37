"""The compose stack's one-shot escrow deployment (`escrow-deploy` in docker-compose.yml).

Deploys the JobEscrow once, signed by the operator's keystore, and writes
`{address, chain_id, block, deployer}` to `DCM_ESCROW_RECORD` (a volume the node replicas
read their `DCM_CHAIN_ESCROW_ADDRESS` from). Run again, it finds the record and the code
at that address and does nothing. On the stack's Hardhat chain (`DCM_DEV_FUND_OPERATOR=1`)
it first gives the operator gas money with `hardhat_setBalance`; on a real chain the
operator's wallet must be funded by its owner.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from web3 import Web3

from marketplace.escrow import JobEscrow
from marketplace.wallet import load_keystore


def main() -> int:
    rpc = os.environ["DCM_CHAIN_RPC_URL"]
    record = Path(os.environ.get("DCM_ESCROW_RECORD", "/deploy/escrow.json"))
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    if record.exists():
        known = json.loads(record.read_text())
        if known.get("chain_id") == w3.eth.chain_id and w3.eth.get_code(known["address"]):
            print(f"escrow already deployed at {known['address']}")
            return 0
    account = load_keystore(
        os.environ["DCM_CHAIN_OPERATOR_KEYFILE"], os.environ["DCM_CHAIN_OPERATOR_PASSWORD"]
    )
    if os.environ.get("DCM_DEV_FUND_OPERATOR") == "1":
        w3.provider.make_request("hardhat_setBalance", [account.address, hex(10**21)])
    escrow = JobEscrow.deploy(
        w3,
        account,
        arbiter=os.environ["DCM_CHAIN_ARBITER_ADDRESS"],
        assigner=account.address,
        fee_bps=0,
        fee_recipient=None,
        arbitration_window=7 * 24 * 3600,
        receipt_timeout=60,
    )
    out = {
        "address": escrow.address,
        "chain_id": escrow.chain_id,
        "block": escrow.deployment_block,
        "deployer": account.address,
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(out) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
