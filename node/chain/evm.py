"""The node's embedded EVM: eth-tester + py-evm, made durable and deterministic.

`EmbeddedEVM` owns one in-process chain. Every state change (a raw transaction, a
time travel) is applied under one lock, mined into its own block with a timestamp the
node decides, and appended to a fsynced journal; at start the journal is replayed on a
fresh chain so blocks, hashes, receipts, logs and balances are identical after a
restart. Two sources of nondeterminism in eth-tester are removed to make that true:
the block timestamp (taken from the wall clock) is chosen here and journaled, and the
post-merge `mix_hash` (`os.urandom` in eth-tester) is derived from the parent hash.

eth-tester is not thread-safe; every public method takes `self.lock`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth.vm.spoof import SpoofTransaction as EVMSpoofTransaction
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import (
    ParisVM,
    PragueVM,
    get_total_blob_gas,
)
from eth_tester.exceptions import BlockNotFound, TransactionNotFound
from eth_utils import keccak, to_canonical_address, to_checksum_address
from eth_utils.toolz import assoc

from node.chain.journal import Journal

log = logging.getLogger("dcm.chain")

CHAIN_ID = 131277322940537
GENESIS_OPERATOR_BALANCE_WEI = 10**9 * 10**18  # 1e9 ETH: the dev chain's whole money supply
ZERO_ADDRESS = b"\x00" * 20
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")


class Reverted(Exception):
    """A call or gas estimate reverted; `data` is the raw revert data (may be empty)."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class RejectedTransaction(Exception):
    """A raw transaction was not accepted (bad nonce, funds, signature, encoding...)."""


class _DeterministicBackend(PyEVMBackend):
    """PyEVMBackend whose mined blocks depend only on their contents and timestamp."""

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = ZERO_ADDRESS) -> tuple[bytes, ...]:
        hashes = []
        for _ in range(num_blocks):
            kwargs: dict[str, Any] = {"coinbase": coinbase}
            if isinstance(self.chain.get_vm(), ParisVM):
                parent = self.chain.get_canonical_head()
                kwargs["mix_hash"] = keccak(b"dcm-prevrandao" + parent.hash)
            if isinstance(self.chain.get_vm(), PragueVM):
                txs = self.chain.get_block().transactions
                kwargs["blob_gas_used"] = sum(get_total_blob_gas(tx) for tx in txs)
            hashes.append(self.chain.mine_block(**kwargs).hash)
        return tuple(hashes)


@dataclass(frozen=True)
class Genesis:
    timestamp: int
    alloc: dict[str, int]  # checksum address -> wei


class EmbeddedEVM:
    """A durable in-process chain. Open it with `EmbeddedEVM.open(journal_path, ...)`."""

    chain_id = CHAIN_ID

    def __init__(
        self, journal: Journal, genesis: Genesis, clock: Callable[[], float] = time.time
    ) -> None:
        self.lock = threading.RLock()
        self.journal = journal
        self.genesis = genesis
        self._clock = clock
        state = {
            to_canonical_address(addr): {"balance": wei, "nonce": 0, "code": b"", "storage": {}}
            for addr, wei in genesis.alloc.items()
        }
        params = PyEVMBackend.generate_genesis_params(overrides={"timestamp": genesis.timestamp})
        self.backend = _DeterministicBackend(genesis_parameters=params, genesis_state=state)
        self.tester = EthereumTester(self.backend, auto_mine_transactions=True)
        self._logs: dict[int, list[dict[str, Any]]] = {}

    @classmethod
    def open(
        cls,
        journal_path: Path,
        genesis_alloc: dict[str, int],
        clock: Callable[[], float] = time.time,
    ) -> EmbeddedEVM:
        """Open (or create) the chain whose journal is `journal_path` and replay it.

        `genesis_alloc` is used only when the journal is new; afterwards the genesis
        recorded in the journal wins.
        """
        journal = Journal(journal_path)
        entries = journal.entries
        if entries:
            head = entries[0]
            if head.get("kind") != "genesis":
                raise RuntimeError(f"{journal_path}: first record is not a genesis record")
            genesis = Genesis(
                timestamp=int(head["timestamp"]),
                alloc={a: int(w) for a, w in head["alloc"].items()},
            )
        else:
            genesis = Genesis(
                timestamp=int(clock()),
                alloc={to_checksum_address(a): int(w) for a, w in genesis_alloc.items()},
            )
            journal.append(
                {
                    "kind": "genesis",
                    "chain_id": CHAIN_ID,
                    "timestamp": genesis.timestamp,
                    "alloc": {a: str(w) for a, w in genesis.alloc.items()},
                }
            )
        evm = cls(journal, genesis, clock)
        evm._replay(entries[1:])
        return evm

    # -- replay -------------------------------------------------------------------------

    def _replay(self, entries: Iterable[dict[str, Any]]) -> None:
        count = 0
        for entry in entries:
            kind = entry.get("kind")
            if kind == "tx":
                tx_hash = self._apply_raw(bytes.fromhex(entry["raw"][2:]), int(entry["timestamp"]))
                if tx_hash != entry["hash"]:
                    raise RuntimeError(
                        f"journal replay diverged at tx {entry['hash']} (got {tx_hash})"
                    )
            elif kind == "time":
                self._mine_empty(int(entry["timestamp"]))
            else:
                raise RuntimeError(f"unknown journal record kind {kind!r}")
            count += 1
        if count:
            log.info(
                "chain journal replayed: %d records, head block %d", count, self.block_number()
            )

    # -- state changes (journaled) ------------------------------------------------------

    def _next_timestamp(self, at_least: int | None = None) -> int:
        parent_ts = self.backend.chain.get_canonical_head().timestamp
        return max(parent_ts + 1, int(self._clock()), at_least or 0)

    def _set_pending_timestamp(self, ts: int) -> None:
        chain = self.backend.chain
        chain.header = chain.header.copy(timestamp=ts)

    def _apply_raw(self, raw: bytes, ts: int) -> str:
        self._set_pending_timestamp(ts)
        tx_hash: str = self.tester.send_raw_transaction("0x" + raw.hex())
        self._index_block(self.block_number())
        return tx_hash

    def _mine_empty(self, ts: int) -> None:
        self._set_pending_timestamp(ts)
        self.tester.mine_blocks(1)
        self._index_block(self.block_number())

    def send_raw_transaction(self, raw: bytes) -> str:
        """Apply, mine and journal one signed transaction; returns its hash (0x hex).

        A reverting transaction is mined with status 0 (as geth does); a transaction that
        cannot be included at all raises `RejectedTransaction` and changes nothing.
        """
        with self.lock:
            self._check_chain_id(raw)
            ts = self._next_timestamp()
            head_before = self.block_number()
            try:
                tx_hash = self._apply_raw(raw, ts)
            except Exception as exc:  # eth-tester/py-evm raise many types for bad input
                if self.block_number() != head_before:  # pragma: no cover - invariant
                    raise
                raise RejectedTransaction(_short(exc)) from exc
            self.journal.append(
                {"kind": "tx", "timestamp": ts, "hash": tx_hash, "raw": "0x" + raw.hex()}
            )
            return tx_hash

    def _check_chain_id(self, raw: bytes) -> None:
        # py-evm does not check a legacy transaction's EIP-155 chain id: a transaction
        # signed for another chain would be replayed here. Unprotected (pre-155) ones are
        # accepted, as Hardhat does, for deterministic deployment transactions.
        try:
            tx = self.backend.chain.get_vm().get_transaction_builder().decode(raw)
        except Exception as exc:
            raise RejectedTransaction(f"undecodable transaction: {_short(exc)}") from exc
        chain_id = getattr(tx, "chain_id", None)
        if chain_id is not None and chain_id != CHAIN_ID:
            raise RejectedTransaction(f"invalid chain id {chain_id} for this chain ({CHAIN_ID})")

    def time_travel(self, timestamp: int) -> int:
        """Mine an empty block at `timestamp` (which must be after the head); journaled."""
        with self.lock:
            parent_ts = self.backend.chain.get_canonical_head().timestamp
            if timestamp <= parent_ts:
                raise ValueError(f"timestamp {timestamp} is not after the head ({parent_ts})")
            self._mine_empty(timestamp)
            self.journal.append({"kind": "time", "timestamp": timestamp})
            return self.block_number()

    def mine_empty_block(self) -> int:
        """Mine an empty block now (a heartbeat block; journaled)."""
        with self.lock:
            return self.time_travel(self._next_timestamp())

    # -- reads --------------------------------------------------------------------------

    def block_number(self) -> int:
        with self.lock:
            return int(self.backend.chain.get_canonical_head().block_number)

    def head_timestamp(self) -> int:
        with self.lock:
            return int(self.backend.chain.get_canonical_head().timestamp)

    def get_block(self, ident: int | str, full: bool) -> dict[str, Any] | None:
        with self.lock:
            try:
                if isinstance(ident, str) and ident.startswith("0x") and len(ident) == 66:
                    return self.tester.get_block_by_hash(ident, full_transactions=full)
                return self.tester.get_block_by_number(ident, full_transactions=full)
            except BlockNotFound:
                return None

    def get_transaction(self, tx_hash: str) -> dict[str, Any] | None:
        with self.lock:
            try:
                return self.tester.get_transaction_by_hash(tx_hash)
            except TransactionNotFound:
                return None

    def get_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        with self.lock:
            try:
                return self.tester.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None

    def get_balance(self, address: str, block: int | str = "latest") -> int:
        with self.lock:
            return int(self.tester.get_balance(address, block))

    def get_nonce(self, address: str, block: int | str = "latest") -> int:
        with self.lock:
            return int(self.tester.get_nonce(address, block))

    def get_code(self, address: str, block: int | str = "latest") -> str:
        with self.lock:
            return self.tester.get_code(address, block)

    def get_storage_at(self, address: str, slot: int, block: int | str = "latest") -> str:
        with self.lock:
            return self.tester.get_storage_at(address, slot, block)

    def base_fee(self) -> int:
        with self.lock:
            return int(self.backend.chain.header.base_fee_per_gas)

    def fee_history(self, count: int, newest: int | str, percentiles: list[float]) -> dict:
        with self.lock:
            return self.tester.get_fee_history(count, newest, percentiles)

    def _spoofed(self, tx: dict[str, Any], block: int | str) -> tuple[Any, Any]:
        """The VM to run a read-only `tx` on, and the unsigned transaction.

        "latest"/"pending" run on the pending header (head state, timestamp = now), so a
        call sees the time the next transaction would see. Without fee fields the gas
        price is 0 (as geth does), so any sender may call.
        """
        backend = self.backend
        chain = backend.chain
        if block in ("latest", "pending", "safe", "finalized"):
            self._set_pending_timestamp(self._next_timestamp())
            vm = chain.get_vm()
            norm_block: int | str = "latest"
        else:
            vm = chain.get_vm(at_header=chain.get_canonical_block_header_by_number(block))
            norm_block = block
        raw = self._raw_tx(tx)
        if not any(k in raw for k in ("gas_price", "max_fee_per_gas", "max_priority_fee_per_gas")):
            raw["gas_price"] = 0
        raw.setdefault("gas", vm.get_header().gas_limit)
        unsigned = backend._get_normalized_and_unsigned_evm_transaction(raw, norm_block)
        return vm, EVMSpoofTransaction(unsigned, from_=raw["from"])

    def call(self, tx: dict[str, Any], block: int | str = "latest") -> bytes:
        """Execute `tx` without committing; raises `Reverted` with the revert data."""
        with self.lock:
            vm, spoofed = self._spoofed(tx, block)
            with vm.in_costless_state() as state:
                snapshot = state.snapshot()
                try:
                    computation = state.apply_transaction(spoofed)
                finally:
                    state.revert(snapshot)
            if computation.is_error:
                raise _reverted(computation)
            return bytes(computation.output)

    def estimate_gas(self, tx: dict[str, Any], block: int | str = "latest") -> int:
        """Gas estimate for `tx`; raises `Reverted` (with revert data) if it reverts."""
        with self.lock:
            probe = {k: v for k, v in tx.items() if k != "gas"}
            self.call(probe, block)  # a revert surfaces here with its data
            vm, spoofed = self._spoofed(probe, block)
            try:
                with vm.in_costless_state() as state:
                    return int(self.backend.chain.gas_estimator(state, spoofed))
            except Exception as exc:
                raise Reverted(f"execution reverted: {_short(exc)}", b"") from exc

    def _raw_tx(self, tx: dict[str, Any]) -> dict[str, Any]:
        tx = dict(tx)
        tx.setdefault("from", "0x" + "00" * 20)
        self.tester.validator.validate_inbound_transaction(tx, txn_internal_type="call")
        return dict(self.tester.normalizer.normalize_inbound_transaction(tx))

    # -- logs ---------------------------------------------------------------------------

    def _index_block(self, number: int) -> None:
        block = self.tester.get_block_by_number(number, full_transactions=False)
        logs: list[dict[str, Any]] = []
        for tx_hash in block["transactions"]:
            logs.extend(self.tester.get_transaction_receipt(tx_hash)["logs"])
        if logs:
            self._logs[number] = logs
        else:
            self._logs.pop(number, None)

    def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: list[str] | None,
        topics: list[list[str] | None],
    ) -> list[dict[str, Any]]:
        """Logs in [from_block, to_block] matching address (any of) and topics, where
        `topics[i]` is None (any) or a list of alternatives (OR)."""
        wanted = {a.lower() for a in addresses} if addresses else None
        out = []
        with self.lock:
            numbers = sorted(n for n in self._logs if from_block <= n <= to_block)
            for n in numbers:
                for entry in self._logs[n]:
                    if wanted is not None and entry["address"].lower() not in wanted:
                        continue
                    if not _topics_match(entry["topics"], topics):
                        continue
                    out.append(entry)
        return out


def _topics_match(have: list[str], want: list[list[str] | None]) -> bool:
    if len(want) > len(have):
        return False
    for i, options in enumerate(want):
        if options is None:
            continue
        if have[i].lower() not in options:
            return False
    return True


def _reverted(computation: Any) -> Reverted:
    data = bytes(computation.output or b"")
    message = "execution reverted"
    if data[:4] == ERROR_STRING_SELECTOR:
        from eth_abi import decode

        with contextlib.suppress(Exception):  # malformed Error(string): generic message
            message = f"execution reverted: {decode(['string'], data[4:])[0]}"
    elif not data:
        err = getattr(computation, "_error", None)
        if err is not None and type(err).__name__ != "Revert":
            message = f"execution reverted: {type(err).__name__}"
    return Reverted(message, data)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


__all__ = ["CHAIN_ID", "EmbeddedEVM", "RejectedTransaction", "Reverted", "assoc"]
