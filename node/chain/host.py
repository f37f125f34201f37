"""The chain adapter services use (`node.runtime.Runtime.chain`), embedded or external alike.

`ChainHost` is the small protocol: a web3.py client (`w3`), the chain id, the escrow
address and its deployment block, the confirmations the watcher waits for, and the
operator account that signs the node's own transactions. `EmbeddedChainHost` wraps the
in-process EVM (its `w3` talks to the JSON-RPC dispatcher in-process, without HTTP, so
it sees exactly what `/chain/rpc` clients see); `ExternalChainHost` wraps
`DCM_CHAIN_RPC_URL`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol, cast

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from web3 import Web3
from web3.providers.base import BaseProvider
from web3.types import RPCEndpoint, RPCResponse, TxParams

from marketplace.errors import ChainError, UpstreamUnavailable
from marketplace.escrow.client import JobEscrow
from marketplace.escrow.fees import fee_fields
from node.chain.evm import GENESIS_OPERATOR_BALANCE_WEI, EmbeddedEVM
from node.chain.keys import OperatorKey
from node.chain.rpc import RpcDispatcher
from node.chain.snapshot import Snapshots

RECEIPT_TIMEOUT_SECONDS = 120.0


class ChainHost(Protocol):
    """What a service may rely on, whichever chain the node runs against."""

    w3: Web3
    chain_id: int
    embedded: bool
    operator: OperatorKey | None
    confirmations: int
    rpc_url: str
    operator_lock: threading.RLock
    arbiter_address: str | None  # the escrow's arbiter (never the operator)
    terms: Any  # node.escrow.service.FundingTerms: what deposits must meet

    @property
    def escrow_address(self) -> str | None: ...

    @property
    def deployment_block(self) -> int | None: ...

    def send_operator_transaction(self, tx: dict[str, Any]) -> dict[str, Any]: ...

    def operator_tx_fields(self) -> dict[str, Any]: ...

    def escrow(self) -> Any: ...

    def deploy(self, name: str, abi: list[Any], bytecode: str, *args: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


class InProcessProvider(BaseProvider):
    """A web3 provider that answers from a `RpcDispatcher` in this process."""

    def __init__(self, dispatcher: RpcDispatcher) -> None:
        super().__init__()
        self.dispatcher = dispatcher
        self._next_id = 0

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        # web3 may pass tuples/HexBytes; make params JSON-shaped like an HTTP client would
        request = json.loads(Web3.to_json(request))
        return self.dispatcher.handle_one(request)  # type: ignore[return-value]

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


class _Deployments:
    """`deployments.json` under the chain dir: name -> {address, block, tx_hash}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, name: str) -> dict[str, Any] | None:
        return self.data.get(name)

    def put(self, name: str, record: dict[str, Any]) -> None:
        self.data[name] = record
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(self.data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class _HostBase:
    w3: Web3
    chain_id: int
    operator: OperatorKey | None
    deployments: _Deployments
    escrow_name = "JobEscrow"
    arbiter_address: str | None = None
    terms: Any = None
    _configured_escrow: str | None = None
    _escrow: Any = None
    # Serializes everything the operator signs in this process, so two senders never
    # take the same nonce. Class-level default; each host gets its own in __init__.
    operator_lock: threading.RLock

    @property
    def escrow_address(self) -> str | None:
        if self._configured_escrow:
            return self._configured_escrow
        rec = self.deployments.get(self.escrow_name)
        return rec["address"] if rec else None

    @property
    def deployment_block(self) -> int | None:
        rec = self.deployments.get(self.escrow_name)
        return int(rec["block"]) if rec else None

    def escrow(self) -> Any:
        """The `marketplace.escrow.client.JobEscrow` binding of the node's escrow."""

        if not self.escrow_address:
            raise ChainError("no escrow contract is deployed on this chain")
        if getattr(self, "_escrow", None) is None or self._escrow.address != self.escrow_address:
            self._escrow = JobEscrow(self.w3, self.escrow_address)
        return self._escrow

    def send_operator_transaction(self, tx: dict[str, Any]) -> dict[str, Any]:
        """Sign `tx` with the operator key, send it, wait for and return the receipt.

        Fills chainId, nonce (pending), fees and gas when absent.
        """
        if self.operator is None:
            raise ChainError("the node has no operator key configured", error_name=None)
        with self.operator_lock:  # one operator nonce at a time (faucet, outbox, deploys)
            return self._send_operator_transaction(tx)

    def operator_tx_fields(self) -> dict[str, Any]:
        """What every operator transaction carries: sender, chain id, the next (pending)
        nonce and the fees (`marketplace.escrow.fees`). Call it holding `operator_lock`
        and sign before releasing it, so that two senders never take the same nonce: the
        faucet, deployments (`send_operator_transaction`) and the outbox all do."""
        assert self.operator is not None
        return {
            "from": self.operator.address,
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(_addr(self.operator.address), "pending"),
            **fee_fields(self.w3),
        }

    def _send_operator_transaction(self, tx: dict[str, Any]) -> dict[str, Any]:
        assert self.operator is not None
        w3 = self.w3
        tx = dict(tx)
        fields = self.operator_tx_fields()
        if "gasPrice" in tx:  # the caller chose a legacy fee: keep it
            fields.pop("maxFeePerGas", None)
            fields.pop("maxPriorityFeePerGas", None)
        for name, value in fields.items():
            tx.setdefault(name, value)
        if "gas" not in tx:
            tx["gas"] = int(w3.eth.estimate_gas(cast(TxParams, tx)) * 12 // 10)
        tx.pop("from")
        signed = self.operator.account.sign_transaction(tx)
        try:
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=RECEIPT_TIMEOUT_SECONDS, poll_latency=0.05
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"chain RPC failed: {exc}") from exc
        return dict(receipt)

    def deploy(self, name: str, abi: list[Any], bytecode: str, *args: Any) -> dict[str, Any]:
        """Deploy a contract signed by the operator once; later calls return the record."""
        existing = self.deployments.get(name)
        if existing:
            return existing
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        tx = factory.constructor(*args).build_transaction(
            {"from": self.operator.address if self.operator else None, "chainId": self.chain_id}
        )
        tx.pop("to", None)
        receipt = self.send_operator_transaction(tx)
        if receipt["status"] != 1:
            raise ChainError(f"deploying {name} failed (tx {receipt['transactionHash'].hex()})")
        record = {
            "address": to_checksum_address(receipt["contractAddress"]),
            "block": int(receipt["blockNumber"]),
            "tx_hash": "0x" + bytes(receipt["transactionHash"]).hex(),
            "deployed_at": int(time.time()),
        }
        self.deployments.put(name, record)
        return record


class EmbeddedChainHost(_HostBase):
    """The in-process EVM, journaled under `<data_dir>/chain/`."""

    embedded = True
    confirmations = 0

    def __init__(
        self,
        chain_dir: Path,
        operator: OperatorKey,
        rpc_url: str,
        *,
        dev_methods: bool = False,
        chain_id: int | None = None,
        snapshot_every: int = 500,
        snapshot_keep: int = 2,
    ) -> None:
        chain_dir.mkdir(parents=True, exist_ok=True)
        self.operator_lock = threading.RLock()
        self.operator = operator
        self.evm = EmbeddedEVM.open(
            chain_dir / "journal.jsonl",
            {operator.address: GENESIS_OPERATOR_BALANCE_WEI},
            chain_id=chain_id,
            snapshots=(
                Snapshots(chain_dir / "snapshots", snapshot_every, snapshot_keep)
                if snapshot_keep > 0
                else None
            ),
        )
        self.dispatcher = RpcDispatcher(self.evm, dev_methods=dev_methods)
        self.w3 = Web3(InProcessProvider(self.dispatcher))
        self.chain_id = self.evm.chain_id
        self.rpc_url = rpc_url
        self.deployments = _Deployments(chain_dir / "deployments.json")

    def faucet(self, address: str, amount_wei: int) -> dict[str, Any]:
        """Send `amount_wei` from the operator to `address` (a journaled transaction)."""
        receipt = self.send_operator_transaction(
            {"to": to_checksum_address(address), "value": amount_wei, "gas": 21000}
        )
        return receipt

    def close(self) -> None:
        self.evm.close()


class ExternalChainHost(_HostBase):
    """A chain reached over `DCM_CHAIN_RPC_URL` (Hardhat node, geth, a testnet)."""

    embedded = False

    def __init__(
        self,
        rpc_url: str,
        chain_dir: Path,
        operator: OperatorKey | None,
        confirmations: int,
        escrow_address: str | None,
        expected_chain_id: int | None = None,
    ) -> None:
        chain_dir.mkdir(parents=True, exist_ok=True)
        self.operator_lock = threading.RLock()
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        try:
            self.chain_id = int(self.w3.eth.chain_id)
        except Exception as exc:
            raise UpstreamUnavailable(f"chain RPC {rpc_url} unreachable: {exc}") from exc
        if expected_chain_id is not None and expected_chain_id != self.chain_id:
            raise ChainError(
                f"chain RPC {rpc_url} serves chain {self.chain_id}, "
                f"DCM_CHAIN_ID says {expected_chain_id}"
            )
        self.operator = operator
        self.confirmations = confirmations
        self.rpc_url = rpc_url
        self._configured_escrow = to_checksum_address(escrow_address) if escrow_address else None
        self.deployments = _Deployments(chain_dir / f"deployments-{self.chain_id}.json")

    def close(self) -> None:
        pass


def _addr(address: str) -> ChecksumAddress:
    return to_checksum_address(address)
