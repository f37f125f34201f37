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
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.rlp.accounts import Account
from eth.vm.spoof import SpoofTransaction as EVMSpoofTransaction
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import (
    ParisVM,
    PragueVM,
    get_total_blob_gas,
)
from eth_tester.exceptions import BlockNotFound, TransactionNotFound
from eth_utils import keccak, to_canonical_address, to_checksum_address
from eth_utils.exceptions import ValidationError as EVMValidationError
from eth_utils.toolz import assoc
from rlp.sedes import big_endian_int
from trie import HexaryTrie

from node.chain.journal import Journal
from node.chain.snapshot import ChainState, Snapshots
from node.chain.trace import call_frame

log = logging.getLogger("dcm.chain")

# eth-tester's fixed chain id: the id of data dirs whose journal predates per-node ids.
CHAIN_ID = 131277322940537
GENESIS_OPERATOR_BALANCE_WEI = 10**9 * 10**18  # 1e9 ETH: the dev chain's whole money supply
ZERO_ADDRESS = b"\x00" * 20
RECENT_RECEIPTS = 1024  # receipts `get_receipt` answers from memory (the newest mined)
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
_CALL_STIPEND = 2300  # gas a value transfer hands its callee, as geth's estimator adds
_ESTIMATE_ERROR_RATIO = 0.015  # geth's: an estimate within 1.5% of the least gas will do


class Reverted(Exception):
    """A call or gas estimate reverted; `data` is the raw revert data (may be empty)."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class RejectedTransaction(Exception):
    """A raw transaction was not accepted (bad nonce, funds, signature, encoding...).

    The message is geth's text for the same mistake (`nonce too low: ...`, `insufficient
    funds for gas * price + value: ...`), which is what client libraries classify."""


class CallRejected(Exception):
    """A call or gas estimate that cannot run at all (not a revert): geth's message."""


def random_chain_id() -> int:
    """A chain id for a new embedded chain: random in [2**32, 2**51), above the ids of
    public networks and below what wallets accept, never eth-tester's default."""
    while True:
        chain_id = 2**32 + secrets.randbelow(2**51 - 2**32)
        if chain_id != CHAIN_ID:
            return chain_id


class ChainIdMismatch(RuntimeError):
    """The configured chain id is not the one the data dir's chain was started with."""


class _DeterministicBackend(PyEVMBackend):
    """PyEVMBackend whose mined blocks depend only on their contents and timestamp, on a
    chain id of our choosing."""

    def __init__(self, *args: Any, chain_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # eth-tester has no setting for the chain id (a class attribute of an inner chain
        # class: ApeWorX/eth-tester#344); py-evm reads it from the chain class for the
        # CHAINID opcode, EIP-155 signatures and transaction normalisation, so the chain
        # gets a subclass that names ours.
        base = type(self.chain)
        self.chain.__class__ = type(base.__name__, (base,), {"chain_id": chain_id})

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
    chain_id: int = CHAIN_ID


class EmbeddedEVM:
    """A durable in-process chain. Open it with `EmbeddedEVM.open(journal_path, ...)`."""

    def __init__(
        self, journal: Journal, genesis: Genesis, clock: Callable[[], float] = time.time
    ) -> None:
        self.lock = threading.RLock()
        self.journal = journal
        self.genesis = genesis
        self._clock = clock
        self.chain_id = genesis.chain_id
        state = {
            to_canonical_address(addr): {"balance": wei, "nonce": 0, "code": b"", "storage": {}}
            for addr, wei in genesis.alloc.items()
        }
        params = PyEVMBackend.generate_genesis_params(overrides={"timestamp": genesis.timestamp})
        self.backend = _DeterministicBackend(
            genesis_parameters=params, genesis_state=state, chain_id=genesis.chain_id
        )
        self.tester = EthereumTester(self.backend, auto_mine_transactions=True)
        self._logs: dict[int, list[dict[str, Any]]] = {}
        # The receipts of the newest transactions, as `_index_block` read them: a wallet
        # asks for its receipt right after the send, and eth-tester builds one afresh on
        # every ask (a third of the receipt read's time over HTTP, bench/chain_rpc.py)
        self._receipts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._snapshots: dict[int, int] = {}  # evm_snapshot id -> journal size then
        self.snapshots: Snapshots | None = None  # chain snapshots (`node.chain.snapshot`)

    @classmethod
    def open(
        cls,
        journal_path: Path,
        genesis_alloc: dict[str, int],
        clock: Callable[[], float] = time.time,
        chain_id: int | None = None,
        snapshots: Snapshots | None = None,
    ) -> EmbeddedEVM:
        """Open (or create) the chain whose journal is `journal_path` and replay it.

        `genesis_alloc` and `chain_id` are used only when the journal is new (`chain_id`
        None: a random one); afterwards the genesis recorded in the journal wins, and a
        `chain_id` that differs from it raises `ChainIdMismatch` (the chain's history was
        signed for its own id). A journal from before per-node ids has eth-tester's.

        With `snapshots`, the newest usable snapshot is restored and only the records
        after it are replayed (each verified as in a full replay); the full replay runs
        when there is none or the tail does not replay onto it.
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
                chain_id=int(head.get("chain_id", CHAIN_ID)),
            )
            if chain_id is not None and chain_id != genesis.chain_id:
                raise ChainIdMismatch(
                    f"{journal_path} holds chain {genesis.chain_id}, but chain id {chain_id} "
                    "is configured: unset DCM_CHAIN_ID or start with a fresh data dir"
                )
        else:
            genesis = Genesis(
                timestamp=int(clock()),
                alloc={to_checksum_address(a): int(w) for a, w in genesis_alloc.items()},
                chain_id=chain_id if chain_id is not None else random_chain_id(),
            )
            journal.append(
                {
                    "kind": "genesis",
                    "chain_id": genesis.chain_id,
                    "timestamp": genesis.timestamp,
                    "alloc": {a: str(w) for a, w in genesis.alloc.items()},
                }
            )
        evm = cls(journal, genesis, clock)
        start = 1
        restored = snapshots.restore(evm.chain_state()) if snapshots and entries else None
        if restored is not None:
            start, state = restored
            evm.backend.chain = state.chain
            evm._logs = state.logs
        try:
            evm._replay(entries[start:])
        except Exception:  # a divergence, or a transaction the snapshot's state refuses
            if start == 1:
                raise
            log.warning(
                "chain journal diverged from the snapshot at record %d: full replay",
                start,
                exc_info=True,
            )
            assert snapshots is not None
            snapshots.discard()
            evm = cls(journal, genesis, clock)
            evm._replay(entries[1:])
        evm.snapshots = snapshots
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
            block = entry.get("block")  # journals written before blocks were named lack it
            if block is not None and block != self._head_hash():
                raise RuntimeError(
                    f"journal replay diverged at block {self.block_number()}: "
                    f"{self._head_hash()}, the journal says {block}"
                )
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
        cannot be included at all raises `RejectedTransaction` (with geth's message for
        the mistake) and changes nothing.
        """
        with self.lock:
            tx = self._check_chain_id(raw)
            self._check_admissible(tx)
            ts = self._next_timestamp()
            head_before = self.block_number()
            try:
                tx_hash = self._apply_raw(raw, ts)
            except Exception as exc:  # eth-tester/py-evm raise many types for bad input
                if self.block_number() != head_before:  # pragma: no cover - invariant
                    raise
                raise RejectedTransaction(_short(exc)) from exc
            self._journal({"kind": "tx", "timestamp": ts, "hash": tx_hash, "raw": "0x" + raw.hex()})
            return tx_hash

    def _head_hash(self) -> str:
        return "0x" + self.backend.chain.get_canonical_head().hash.hex()

    def _journal(self, record: dict[str, Any]) -> None:
        """Append `record` with the hash of the block it mined (what replay checks)."""
        self.journal.append({**record, "block": self._head_hash()})
        if self.snapshots is not None:
            self.snapshots.journaled(self.chain_state())

    def chain_state(self) -> ChainState:
        """The chain as a snapshot sees it (call under `self.lock`)."""
        return ChainState(self.journal, self.backend.chain, self.chain_id, self._logs)

    def write_snapshot(self) -> Path | None:
        """Write a chain snapshot now (unless the newest covers the journal); its path."""
        with self.lock:
            return self.snapshots.write_now(self.chain_state()) if self.snapshots else None

    def close(self) -> None:
        """Clean shutdown: a snapshot of the chain as it is, then the journal closed."""
        with self.lock:
            try:
                self.write_snapshot()
            except Exception:  # the next start replays more; the journal is intact
                log.exception("writing the chain snapshot at shutdown failed")
            self.journal.close()

    def _check_chain_id(self, raw: bytes) -> Any:
        # py-evm does not check a legacy transaction's EIP-155 chain id: a transaction
        # signed for another chain would be replayed here. Unprotected (pre-155) ones are
        # accepted, as Hardhat does, for deterministic deployment transactions.
        try:
            tx = self.backend.chain.get_vm().get_transaction_builder().decode(raw)
        except Exception as exc:
            raise RejectedTransaction(f"undecodable transaction: {_short(exc)}") from exc
        chain_id = getattr(tx, "chain_id", None)
        if chain_id is not None and chain_id != self.chain_id:
            raise RejectedTransaction(
                f"invalid chain id {chain_id} for this chain ({self.chain_id})"
            )
        return tx

    def _check_admissible(self, tx: Any) -> None:
        """geth's txpool checks, in geth's order and words (core/txpool/validation.go,
        core/state_transition.go), so that clients classify the mistake: ethers reads
        `nonce too low` as NONCE_EXPIRED and `insufficient funds` as INSUFFICIENT_FUNDS.
        Blocks are mined per transaction, so a future nonce cannot wait in a pool: it is
        refused (`nonce too high`), as Hardhat refuses it while automining."""
        chain = self.backend.chain
        try:
            tx_hash = tx.hash
            sender = tx.sender
        except Exception as exc:
            raise RejectedTransaction("invalid sender") from exc
        if self._is_mined(bytes(tx_hash)):
            raise RejectedTransaction("already known")
        header = chain.header
        state = chain.get_vm().state
        who = to_checksum_address(sender)
        have_nonce = state.get_nonce(sender)
        if tx.nonce < have_nonce:
            raise RejectedTransaction(
                f"nonce too low: address {who}, tx: {tx.nonce} state: {have_nonce}"
            )
        if tx.nonce > have_nonce:
            raise RejectedTransaction(
                f"nonce too high: address {who}, tx: {tx.nonce} state: {have_nonce}"
            )
        if tx.gas > header.gas_limit:
            raise RejectedTransaction("exceeds block gas limit")
        intrinsic = int(tx.intrinsic_gas)
        if tx.gas < intrinsic:
            raise RejectedTransaction(
                f"intrinsic gas too low: gas {tx.gas}, minimum needed {intrinsic}"
            )
        fee_cap = _fee_cap(tx)
        tip_cap = _tip_cap(tx)
        if tip_cap > fee_cap:
            raise RejectedTransaction(
                f"max priority fee per gas higher than max fee per gas: address {who}, "
                f"maxPriorityFeePerGas: {tip_cap}, maxFeePerGas: {fee_cap}"
            )
        base = int(header.base_fee_per_gas or 0)
        if fee_cap < base:
            raise RejectedTransaction(
                f"max fee per gas less than block base fee: address {who}, "
                f"maxFeePerGas: {fee_cap}, baseFee: {base}"
            )
        want = tx.gas * fee_cap + tx.value
        have = state.get_balance(sender)
        if have < want:
            raise RejectedTransaction(
                f"insufficient funds for gas * price + value: address {who} have {have} want {want}"
            )

    def _is_mined(self, tx_hash: bytes) -> bool:
        """Whether a canonical block holds `tx_hash`: py-evm's hash -> (block, index)
        lookup, checked against the block (eth-tester's lookup scans every block)."""
        chain = self.backend.chain
        try:
            number, index = chain.chaindb.get_transaction_index(tx_hash)
            txs = chain.get_canonical_block_by_number(number).transactions
        except Exception:  # py-evm's TransactionNotFound / HeaderNotFound
            return False
        return index < len(txs) and txs[index].hash == tx_hash

    def time_travel(self, timestamp: int) -> int:
        """Mine an empty block at `timestamp` (which must be after the head); journaled."""
        with self.lock:
            parent_ts = self.backend.chain.get_canonical_head().timestamp
            if timestamp <= parent_ts:
                raise ValueError(f"timestamp {timestamp} is not after the head ({parent_ts})")
            self._mine_empty(timestamp)
            self._journal({"kind": "time", "timestamp": timestamp})
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
        """The receipt of `tx_hash` (0x hex, lower case), None if no block holds it."""
        with self.lock:
            recent = self._receipts.get(tx_hash)
            if recent is not None:
                return dict(recent)
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
        with self.lock:  # eth-tester validates the slot as a 0x-hex string, not an int
            return self.tester.get_storage_at(address, hex(slot), block)

    def base_fee(self) -> int:
        with self.lock:
            return int(self.backend.chain.header.base_fee_per_gas)

    def fee_history(self, count: int, newest: int, percentiles: list[float]) -> dict[str, Any]:
        """`eth_feeHistory` as geth computes it (eth/gasprice/feehistory.go): blocks
        `newest-count+1 .. newest` ascending; `count + 1` base fees (the last is the fee of
        the block after `newest`); for each block one reward row, each percentile's tip
        being that of the transaction where the gas used, sorted by tip, reaches it."""
        with self.lock:
            chain = self.backend.chain
            head = self.block_number()
            newest = min(newest, head)
            oldest = max(0, newest - count + 1)
            base_fees: list[int] = []
            ratios: list[float] = []
            rewards: list[list[int]] = []
            for number in range(oldest, newest + 1):
                block = chain.get_canonical_block_by_number(number)
                header = block.header
                base = int(header.base_fee_per_gas or 0)
                base_fees.append(base)
                ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
                if percentiles:
                    rewards.append(_block_rewards(block, chain.chaindb, base, percentiles))
            if newest < head:
                nxt = chain.get_canonical_block_header_by_number(newest + 1)
                base_fees.append(int(nxt.base_fee_per_gas or 0))
            else:
                base_fees.append(int(chain.header.base_fee_per_gas or 0))
            out: dict[str, Any] = {
                "oldest_block": oldest,
                "base_fee_per_gas": base_fees,
                "gas_used_ratio": ratios,
            }
            if percentiles:
                out["reward"] = rewards
            return out

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
            computation = self._run_spoofed(vm, spoofed)
            if computation.is_error:
                raise _reverted(computation)
            return bytes(computation.output)

    def _run_spoofed(self, vm: Any, spoofed: Any) -> Any:
        with vm.in_costless_state() as state:
            snapshot = state.snapshot()
            try:
                return state.apply_transaction(spoofed)
            except EVMValidationError as exc:
                raise _call_rejected(exc, spoofed, state) from None
            finally:
                state.revert(snapshot)

    def estimate_gas(self, tx: dict[str, Any], block: int | str = "latest") -> int:
        """Gas estimate for `tx`; raises `Reverted` (with revert data) if it reverts.

        geth's search: one run at the block's gas limit (a revert surfaces there with its
        data) gives the gas used, below which nothing succeeds. That much often suffices
        (a transfer: 21,000 exactly); if not, the gas used plus the call stipend, times
        64/63 (what a call forwards), nearly always does; then the range is halved until
        it is within 1.5% of the answer. Two to six runs where py-evm's own search (down
        to 1 gas from the block limit) took a dozen or more: a contract's deployment at
        every node start spent most of its time there.
        """
        with self.lock:
            probe = {k: v for k, v in tx.items() if k != "gas"}
            vm, spoofed = self._spoofed(probe, block)
            computation = self._run_spoofed(vm, spoofed)
            if computation.is_error:
                raise _reverted(computation)
            lo = spoofed.gas - computation.get_gas_remaining() - 1
            hi = spoofed.gas

            def succeeds(gas: int) -> bool:
                try:
                    trial = EVMSpoofTransaction(spoofed, gas=gas)
                    return not self._run_spoofed(vm, trial).is_error
                except (CallRejected, EVMValidationError):
                    return False

            if succeeds(lo + 1):  # no refund, no forwarded call: the gas used is the answer
                return lo + 1
            optimistic = (lo + 1 + _CALL_STIPEND) * 64 // 63
            if optimistic < hi:
                if succeeds(optimistic):
                    hi = optimistic
                else:
                    lo = optimistic
            while lo + 1 < hi and (hi - lo) / hi >= _ESTIMATE_ERROR_RATIO:
                mid = min((lo + hi) // 2, lo * 2)
                if succeeds(mid):
                    hi = mid
                else:
                    lo = mid
            return hi

    def _raw_tx(self, tx: dict[str, Any]) -> dict[str, Any]:
        tx = dict(tx)
        tx.setdefault("from", "0x" + "00" * 20)
        self.tester.validator.validate_inbound_transaction(tx, txn_internal_type="call")
        return dict(self.tester.normalizer.normalize_inbound_transaction(tx))

    # -- blocks, receipts, proofs, traces ----------------------------------------------

    def block_receipts(self, ident: int | str) -> list[dict[str, Any]] | None:
        """The receipts of a block's transactions in order; None for an unknown block."""
        with self.lock:
            block = self.get_block(ident, False)
            if block is None:
                return None
            return [self.tester.get_transaction_receipt(h) for h in block["transactions"]]

    def get_proof(self, address: str, slots: list[int], block: int | str) -> dict[str, Any]:
        """EIP-1186 proof of an account and some of its storage slots at `block`, read
        from py-evm's state tries (every mined block's trie nodes stay in its database)."""
        with self.lock:
            chain = self.backend.chain
            header = self._header(block)
            db = chain.chaindb.db
            state_trie = HexaryTrie(db, header.state_root)
            key = keccak(to_canonical_address(address))
            raw = state_trie.get(key)
            if raw:
                account = rlp.decode(raw, sedes=Account)
            else:
                account = Account(0, 0, BLANK_ROOT_HASH, EMPTY_SHA3)
            storage_trie = HexaryTrie(db, account.storage_root)
            storage = []
            for slot in slots:
                skey = keccak(slot.to_bytes(32, "big"))
                value = storage_trie.get(skey)
                storage.append(
                    {
                        "key": slot,
                        "value": rlp.decode(value, sedes=big_endian_int) if value else 0,
                        "proof": [rlp.encode(n) for n in storage_trie.get_proof(skey)],
                    }
                )
            return {
                "address": to_checksum_address(address),
                "accountProof": [rlp.encode(n) for n in state_trie.get_proof(key)],
                "balance": account.balance,
                "codeHash": account.code_hash,
                "nonce": account.nonce,
                "storageHash": account.storage_root,
                "storageProof": storage,
            }

    def _header(self, block: int | str) -> Any:
        chain = self.backend.chain
        if isinstance(block, int):
            return chain.get_canonical_block_header_by_number(block)
        if block == "earliest":
            return chain.get_canonical_block_header_by_number(0)
        return chain.get_canonical_head()

    def trace_transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """geth's `callTracer` frame tree of a mined transaction, by re-executing its
        block up to it on the parent's state (nothing is written back): every CALL,
        CREATE, DELEGATECALL and STATICCALL with its value, so internal value transfers
        (the escrow's payouts) are visible. None for an unknown transaction."""
        with self.lock:
            chain = self.backend.chain
            try:
                number, index = chain.chaindb.get_transaction_index(bytes.fromhex(tx_hash[2:]))
            except Exception:  # py-evm's TransactionNotFound
                return None
            block = chain.get_canonical_block_by_number(number)
            parent = chain.get_block_header_by_hash(block.header.parent_hash)
            vm = chain.get_vm(at_header=block.header)
            state = vm.build_state(
                chain.chaindb.db,
                block.header.copy(state_root=parent.state_root),
                vm.chain_context,
                vm.previous_hashes,
            )
            vm._state = state  # block_preprocessing (EIP-4788/2935 system writes) uses it
            vm.block_preprocessing(block)
            computation = None
            for tx in block.transactions[: index + 1]:
                computation = state.apply_transaction(tx)
            target = block.transactions[index]
            receipt = self.tester.get_transaction_receipt(tx_hash)
            return call_frame(
                computation, gas=target.gas, gas_used=int(receipt["gas_used"]), top=True
            )

    def trace_call(self, tx: dict[str, Any], block: int | str = "latest") -> dict[str, Any]:
        """`debug_traceCall` with the call tracer: the frames of a call, not committed."""
        with self.lock:
            vm, spoofed = self._spoofed(tx, block)
            computation = self._run_spoofed(vm, spoofed)
            gas_used = spoofed.gas - computation.get_gas_remaining()
            return call_frame(computation, gas=spoofed.gas, gas_used=gas_used, top=True)

    # -- raw encodings (debug_getRaw*) ----------------------------------------------------

    def blob_base_fee(self) -> int:
        """The pending block's blob base fee (EIP-4844), 1 wei while no blob is used."""
        with self.lock:
            return int(getattr(self.backend.chain.get_vm().state, "blob_base_fee", 1))

    def raw_transaction(self, tx_hash: str) -> bytes | None:
        """A mined transaction as it was signed (typed envelope or legacy RLP)."""
        with self.lock:
            chain = self.backend.chain
            try:
                number, index = chain.chaindb.get_transaction_index(bytes.fromhex(tx_hash[2:]))
            except Exception:  # py-evm's TransactionNotFound
                return None
            return bytes(chain.get_canonical_block_by_number(number).transactions[index].encode())

    def raw_block(self, number: int) -> tuple[bytes, bytes, list[bytes]]:
        """Block `number` RLP-encoded, its header RLP-encoded, its receipts' encodings."""
        with self.lock:
            chain = self.backend.chain
            block = chain.get_canonical_block_by_number(number)
            receipts = [bytes(r.encode()) for r in block.get_receipts(chain.chaindb)]
            return rlp.encode(block), rlp.encode(block.header), receipts

    # -- development snapshots ------------------------------------------------------------

    def snapshot(self) -> int:
        """Remember the chain as it is now (development); `revert(id)` returns to it."""
        with self.lock:
            sid = int(self.tester.take_snapshot())
            self._snapshots[sid] = self.journal.size()
            return sid

    def revert(self, sid: int) -> bool:
        """Return the chain to snapshot `sid`, as Hardhat's `evm_revert` does: the blocks
        after it are gone, that snapshot and every later one are used up, and the journal
        is cut back to the snapshot so that a restart replays the same chain. False for
        an unknown (or used) snapshot."""
        with self.lock:
            size = self._snapshots.get(sid)
            if size is None:
                return False
            self.tester.revert_to_snapshot(sid)
            self.journal.truncate(size)
            if self.snapshots is not None:
                self.snapshots.truncated(size)
            for later in [s for s in self._snapshots if s >= sid]:
                del self._snapshots[later]
            head = self.block_number()
            for number in [n for n in self._logs if n > head]:
                del self._logs[number]
            self._receipts.clear()
            return True

    # -- logs ---------------------------------------------------------------------------

    def _index_block(self, number: int) -> None:
        """Keep the logs of the block just mined (`get_logs`) and its receipts."""
        block = self.tester.get_block_by_number(number, full_transactions=False)
        logs: list[dict[str, Any]] = []
        for tx_hash in block["transactions"]:
            receipt = self.tester.get_transaction_receipt(tx_hash)
            logs.extend(receipt["logs"])
            self._receipts[tx_hash.lower()] = receipt
            if len(self._receipts) > RECENT_RECEIPTS:
                self._receipts.popitem(last=False)
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


def _fee_cap(tx: Any) -> int:
    cap = getattr(tx, "max_fee_per_gas", None)
    return int(cap if cap is not None else tx.gas_price)


def _tip_cap(tx: Any) -> int:
    tip = getattr(tx, "max_priority_fee_per_gas", None)
    return int(tip if tip is not None else tx.gas_price)


def _block_rewards(block: Any, chaindb: Any, base: int, percentiles: list[float]) -> list[int]:
    txs = block.transactions
    if not txs:
        return [0 for _ in percentiles]
    receipts = block.get_receipts(chaindb)
    used, before = [], 0
    for receipt in receipts:
        used.append(receipt.gas_used - before)
        before = receipt.gas_used
    tips = sorted(
        (min(_tip_cap(tx), _fee_cap(tx) - base), gas) for tx, gas in zip(txs, used, strict=True)
    )
    out: list[int] = []
    index, total = 0, tips[0][1]
    for p in percentiles:
        threshold = int(block.header.gas_used * p / 100)
        while total < threshold and index < len(tips) - 1:
            index += 1
            total += tips[index][1]
        out.append(tips[index][0])
    return out


def _call_rejected(exc: Exception, tx: Any, state: Any) -> CallRejected:
    """py-evm's refusal of a call, in geth's words where geth has them."""
    text = str(exc)
    if "afford" in text or "enough balance" in text:
        sender = tx.sender
        price = int(getattr(tx, "max_fee_per_gas", None) or getattr(tx, "gas_price", 0) or 0)
        want = tx.gas * price + tx.value
        return CallRejected(
            "insufficient funds for gas * price + value: "
            f"address {to_checksum_address(sender)} have {state.get_balance(sender)} want {want}"
        )
    return CallRejected(_short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


__all__ = [
    "CHAIN_ID",
    "CallRejected",
    "ChainIdMismatch",
    "EmbeddedEVM",
    "RejectedTransaction",
    "Reverted",
    "assoc",
    "random_chain_id",
]
