"""`JobEscrow`: typed Python binding of contracts/JobEscrow.sol.

Reads are `eth_call`s. Writes are built here, signed locally with an eth-account
`LocalAccount` (never an unlocked node account), sent raw, and awaited with a timeout.
Nonces are tracked locally per sender and resynced from the chain after any error (a Hardhat
node consumes the nonce of a reverting transaction it reports as an RPC error). Gas limits
are fixed per function (upper bounds measured by bench/gas.py with a margin, including the
bounded push to a recipient) and fees are cached for a few seconds, which roughly doubles
throughput on eth-tester. A revert becomes `ChainError` whose `error_name` is the contract's
custom error (`WrongStatus`, `NotRequester`, ...), on eth-tester and on JSON-RPC alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import TimeExhausted

from marketplace.errors import ChainError, UpstreamUnavailable, ValidationFailed

from .artifact import load_artifact
from .errors import chain_error, revert_data_of
from .fees import fee_fields
from .keys import cid_digest, job_key

JobRef = bytes | str
"""A job's bytes32 key, as bytes or 0x hex (`job_key` builds one from a job id)."""


class Status(IntEnum):
    """A job's on-chain status. NONE: never funded, or settled (the record is deleted;
    the `JobSettled` event says how)."""

    NONE = 0
    OPEN = 1
    BOUND = 2
    SUBMITTED = 3
    DISPUTED = 4


class Outcome(IntEnum):
    ACCEPTED = 0
    FINALIZED = 1
    RESOLVED = 2
    DEFAULT_RULING = 3
    CANCELLED = 4
    EXPIRED = 5
    REFUNDED = 6


@dataclass(frozen=True)
class JobRecord:
    requester: str
    amount: int
    provider: str
    phase_end: int
    challenge_window: int
    status: Status
    attempt: int
    funding: int  # the deposit's tag: the low 16 bits of its block's timestamp


@dataclass(frozen=True)
class Voucher:
    """An assignment voucher: the node's signed decision that `provider` works on `key`."""

    key: bytes
    provider: str
    attempt: int
    funding: int
    expiry: int
    v: int
    r: bytes
    s: bytes


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    fee_wei: int  # gasUsed * effectiveGasPrice: what the sender paid for gas
    logs: tuple[Any, ...]


# Fixed gas limits (generous upper bounds; settlement includes a PUSH_GAS-bounded call).
GAS_LIMITS = {
    "fund": 120_000,
    "assign": 100_000,
    "unassign": 60_000,
    "refund": 150_000,
    "bind": 110_000,
    "abandon": 60_000,
    "submit": 70_000,
    "submitWithVoucher": 120_000,
    "accept": 150_000,
    "dispute": 70_000,
    "resolve": 200_000,
    "finalize": 150_000,
    "cancel": 150_000,
    "refundExpired": 150_000,
    "withdraw": 100_000,
    "withdrawTo": 100_000,
}
FEE_CACHE_SECONDS = 5.0


def _is_nonce_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "nonce" in text and any(w in text for w in ("too low", "already", "invalid", "expected"))


def _bytes32(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    if len(value) != 32:
        raise ValidationFailed(f"{what} must be 32 bytes")
    return bytes(value)


def _metadata_trailer(code: bytes) -> bytes:
    """The CBOR metadata solc appends to runtime code (its length is the last 2 bytes)."""
    length = int.from_bytes(code[-2:], "big") + 2
    return code[-length:] if length <= len(code) else b""


class JobEscrow:
    """One deployed escrow on one chain (in-process EVM or JSON-RPC node)."""

    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        receipt_timeout: float = 30.0,
    ) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.receipt_timeout = receipt_timeout
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact()["abi"])
        self._chain_id: int | None = None
        self._nonces: dict[str, int] = {}
        self._fees: tuple[float, dict[str, int]] | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- deployment

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        account: LocalAccount,
        *,
        arbiter: str,
        assigner: str,
        fee_bps: int = 0,
        fee_recipient: str | None = None,
        arbitration_window: int = 7 * 24 * 3600,
        receipt_timeout: float = 60.0,
    ) -> JobEscrow:
        """Deploy a new escrow signed by `account`; returns its binding."""
        artifact = load_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        zero = "0x" + "00" * 20
        args = cls.constructor_args(
            arbiter=arbiter,
            assigner=assigner,
            fee_bps=fee_bps,
            fee_recipient=fee_recipient,
            arbitration_window=arbitration_window,
        )
        escrow = cls(w3, zero, receipt_timeout=receipt_timeout)
        data = factory.constructor(*args).data_in_transaction
        receipt = escrow._transact(account, None, data, 0, 3_000_000, action="deploy")
        escrow.address = to_checksum_address(receipt["contractAddress"])
        escrow.contract = w3.eth.contract(address=escrow.address, abi=artifact["abi"])
        escrow.deployment_block = int(receipt["blockNumber"])
        return escrow

    @staticmethod
    def constructor_args(
        *,
        arbiter: str,
        assigner: str,
        fee_bps: int = 0,
        fee_recipient: str | None = None,
        arbitration_window: int = 7 * 24 * 3600,
    ) -> tuple[Any, ...]:
        """The JobEscrow constructor's arguments, in order (for any deployer)."""
        return (
            to_checksum_address(arbiter),
            to_checksum_address(assigner),
            int(fee_bps),
            to_checksum_address(fee_recipient or "0x" + "00" * 20),
            int(arbitration_window),
        )

    deployment_block: int | None = None

    # ----------------------------------------------------------------- helpers

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def key(self, job: JobRef) -> bytes:
        """`job` as a bytes32 key (bytes or 0x hex)."""
        if isinstance(job, bytes | bytearray):
            return _bytes32(bytes(job), "job key")
        if isinstance(job, str) and job.startswith("0x") and len(job) == 66:
            return _bytes32(job, "job key")
        raise ValidationFailed("a job key is 32 bytes (build one with `job_key`)")

    @staticmethod
    def job_key(job_id: str | int, requester: str, generation: int = 0) -> bytes:
        return job_key(job_id, requester, generation)

    @staticmethod
    def cid_digest(cid: str) -> bytes:
        return cid_digest(cid)

    def funding_call(
        self,
        job: JobRef,
        *,
        amount_wei: int,
        deadline: int,
        challenge_window: int,
        dataset_cid: str | None = None,
        dataset_digest: bytes | None = None,
    ) -> dict[str, Any]:
        """What the requester's wallet must sign to fund the job keyed `job`:
        `{chain_id, to, data, value}` with value in wei as a decimal string."""
        if amount_wei <= 0:
            raise ValidationFailed("amount must be positive")
        digest = dataset_digest if dataset_digest is not None else None
        if digest is None:
            digest = cid_digest(dataset_cid) if dataset_cid else b"\x00" * 32
        data = self.contract.encode_abi(
            "fund",
            args=[self.key(job), _bytes32(digest, "dataset digest"), deadline, challenge_window],
        )
        return {
            "chain_id": self.chain_id,
            "to": self.address,
            "data": data,
            "value": str(int(amount_wei)),
        }

    def sign_assignment(
        self,
        assigner: LocalAccount,
        job: JobRef,
        provider: str,
        attempt: int,
        funding: int,
        expiry: int,
    ) -> Voucher:
        """Sign the EIP-712 `Assignment` voucher binding `provider` to `job` for lease
        `attempt` of the deposit tagged `funding` (node side)."""
        key = self.key(job)
        provider = to_checksum_address(provider)
        typed = {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Assignment": [
                    {"name": "jobKey", "type": "bytes32"},
                    {"name": "provider", "type": "address"},
                    {"name": "attempt", "type": "uint256"},
                    {"name": "funding", "type": "uint256"},
                    {"name": "expiry", "type": "uint256"},
                ],
            },
            "primaryType": "Assignment",
            "domain": {
                "name": "DCM JobEscrow",
                "version": "2",
                "chainId": self.chain_id,
                "verifyingContract": self.address,
            },
            "message": {
                "jobKey": key,
                "provider": provider,
                "attempt": attempt,
                "funding": funding,
                "expiry": expiry,
            },
        }
        signed = assigner.sign_message(encode_typed_data(full_message=typed))
        return Voucher(
            key=key,
            provider=provider,
            attempt=attempt,
            funding=funding,
            expiry=expiry,
            v=signed.v,
            r=signed.r.to_bytes(32, "big"),
            s=signed.s.to_bytes(32, "big"),
        )

    # ----------------------------------------------------------------- reads

    def runs_this_build(self) -> bool:
        """Whether the code at `address` was compiled from this package's artifact: the
        CBOR metadata trailer (the hash of the source and compiler settings) at the end of
        the runtime code must be the artifact's. Immutables live before it, so any
        deployment of this build matches; another build, or no code, does not."""
        code = bytes(self.w3.eth.get_code(self.address))
        expected = bytes.fromhex(load_artifact()["deployedBytecode"].removeprefix("0x"))
        return len(code) > 2 and _metadata_trailer(code) == _metadata_trailer(expected)

    def get_job(self, job: JobRef) -> JobRecord:
        r = self._call("getJob", self.key(job))
        return JobRecord(r[0], r[1], r[2], r[3], r[4], Status(r[5]), r[6], r[7])

    def owed(self, account: str) -> int:
        return self._call("owed", to_checksum_address(account))

    def arbiter(self) -> str:
        return self._call("ARBITER")

    def assigner(self) -> str:
        return self._call("ASSIGNER")

    def fee_recipient(self) -> str:
        return self._call("FEE_RECIPIENT")

    def fee_bps(self) -> int:
        return self._call("FEE_BPS")

    def arbitration_window(self) -> int:
        return self._call("ARBITRATION_WINDOW")

    def events(self, name: str, from_block: int = 0, to_block: int | str = "latest") -> list:
        """Decoded logs of event `name` (JobFunded, JobSettled, ...) in a block range."""
        return getattr(self.contract.events, name)().get_logs(
            from_block=from_block, to_block=to_block
        )

    # ----------------------------------------------------------------- writes

    def fund(
        self,
        account: LocalAccount,
        job: JobRef,
        *,
        amount_wei: int,
        deadline: int,
        challenge_window: int,
        dataset_digest: bytes = b"\x00" * 32,
    ) -> TxResult:
        digest = _bytes32(dataset_digest, "dataset digest")
        args = (self.key(job), digest, deadline, challenge_window)
        return self._send(account, "fund", args, value=amount_wei)

    def assign(self, account: LocalAccount, job: JobRef, provider: str, attempt: int) -> TxResult:
        """The assigner binds `provider` to `job` for lease `attempt` (its own transaction)."""
        return self._send(
            account, "assign", (self.key(job), to_checksum_address(provider), attempt)
        )

    def unassign(self, account: LocalAccount, job: JobRef, attempt: int) -> TxResult:
        """The assigner releases lease `attempt`'s binding (the job is Open again)."""
        return self._send(account, "unassign", (self.key(job), attempt))

    def refund(self, account: LocalAccount, job: JobRef) -> TxResult:
        """Assigner only: return an Open deposit to its requester."""
        return self._send(account, "refund", (self.key(job),))

    def bind(self, account: LocalAccount, voucher: Voucher) -> TxResult:
        args = (
            voucher.key,
            voucher.provider,
            voucher.attempt,
            voucher.funding,
            voucher.expiry,
            voucher.v,
            voucher.r,
            voucher.s,
        )
        return self._send(account, "bind", args)

    def submit_with_voucher(
        self, account: LocalAccount, voucher: Voucher, result_digest: bytes
    ) -> TxResult:
        """Bind (the voucher must name `account`) and submit in one transaction."""
        args = (
            voucher.key,
            voucher.attempt,
            voucher.funding,
            voucher.expiry,
            voucher.v,
            voucher.r,
            voucher.s,
            _bytes32(result_digest, "result digest"),
        )
        return self._send(account, "submitWithVoucher", args)

    def abandon(self, account: LocalAccount, job: JobRef) -> TxResult:
        return self._send(account, "abandon", (self.key(job),))

    def submit(self, account: LocalAccount, job: JobRef, result_digest: bytes) -> TxResult:
        return self._send(
            account, "submit", (self.key(job), _bytes32(result_digest, "result digest"))
        )

    def accept(self, account: LocalAccount, job: JobRef) -> TxResult:
        return self._send(account, "accept", (self.key(job),))

    def dispute(self, account: LocalAccount, job: JobRef) -> TxResult:
        return self._send(account, "dispute", (self.key(job),))

    def resolve(self, account: LocalAccount, job: JobRef, provider_share_bps: int) -> TxResult:
        return self._send(account, "resolve", (self.key(job), provider_share_bps))

    def finalize(self, account: LocalAccount, job: JobRef) -> TxResult:
        return self._send(account, "finalize", (self.key(job),))

    def finalize_batch(self, account: LocalAccount, jobs: Sequence[JobRef]) -> TxResult:
        keys = [self.key(j) for j in jobs]
        return self._send(account, "finalizeBatch", (keys,), gas=60_000 + 45_000 * len(keys))

    def cancel(self, account: LocalAccount, job: JobRef) -> TxResult:
        return self._send(account, "cancel", (self.key(job),))

    def refund_expired(self, account: LocalAccount, job: JobRef) -> TxResult:
        return self._send(account, "refundExpired", (self.key(job),))

    def withdraw(self, account: LocalAccount, beneficiary: str) -> TxResult:
        """Pay `beneficiary` what it is owed (anyone may send it)."""
        return self._send(account, "withdraw", (to_checksum_address(beneficiary),))

    def withdraw_to(self, account: LocalAccount, to: str) -> TxResult:
        """Pay what `account` is owed to `to`."""
        return self._send(account, "withdrawTo", (to_checksum_address(to),))

    # ----------------------------------------------------------------- plumbing

    def _call(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.contract.functions, fn)(*args).call()
        except Exception as exc:  # noqa: BLE001 - translated at the boundary
            raise self._translate(exc, fn) from None

    def _translate(self, exc: BaseException, action: str) -> Exception:
        if isinstance(exc, ChainError | UpstreamUnavailable):
            return exc
        if revert_data_of(exc) is not None or "revert" in str(exc).lower():
            return chain_error(exc, action=action)
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            return UpstreamUnavailable(f"chain RPC unavailable during {action}")
        return chain_error(exc, action=action)

    def _send(
        self,
        account: LocalAccount,
        fn: str,
        args: Iterable[Any],
        *,
        value: int = 0,
        gas: int | None = None,
    ) -> TxResult:
        data = self.contract.encode_abi(fn, args=list(args))
        receipt = self._transact(
            account, self.address, data, value, gas or GAS_LIMITS[fn], action=fn
        )
        logs = tuple(receipt["logs"])
        return TxResult(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            fee_wei=receipt["gasUsed"] * receipt["effectiveGasPrice"],
            logs=logs,
        )

    def _fee_fields(self) -> dict[str, int]:
        now = time.monotonic()
        if self._fees and now - self._fees[0] < FEE_CACHE_SECONDS:
            return self._fees[1]
        fields = fee_fields(self.w3)
        self._fees = (now, fields)
        return fields

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = int(self.w3.eth.get_transaction_count(address, "pending"))
        return self._nonces[address]

    def _transact(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        value: int,
        gas: int,
        *,
        action: str,
    ) -> Any:
        sender = account.address
        with self._lock:
            for attempt in (1, 2):
                try:
                    tx: dict[str, Any] = {
                        "chainId": self.chain_id,
                        "nonce": self._next_nonce(sender),
                        "gas": gas,
                        "value": int(value),
                        "data": data,
                        **self._fee_fields(),
                    }
                except Exception as exc:  # noqa: BLE001 - RPC down or unreachable
                    raise self._translate(exc, action) from None
                if to is not None:
                    tx["to"] = to
                raw = account.sign_transaction(tx).raw_transaction
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(raw)
                except Exception as exc:  # noqa: BLE001 - translated at the boundary
                    # The node may or may not have used the nonce (Hardhat mines reverting
                    # transactions it reports as errors): resync from the chain. A stale
                    # nonce (another client used this account) is retried once.
                    self._nonces.pop(sender, None)
                    self._fees = None
                    if attempt == 1 and _is_nonce_error(exc):
                        continue
                    raise self._translate(exc, action) from None
                self._nonces[sender] = tx["nonce"] + 1
                break
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout, poll_latency=0.05
            )
        except TimeExhausted:
            with self._lock:
                self._nonces.pop(sender, None)
            raise UpstreamUnavailable(
                f"no receipt for {action} within {self.receipt_timeout}s"
            ) from None
        if receipt["status"] != 1:
            raise self._replay_failure(tx, sender, receipt, action)
        return receipt

    def _replay_failure(
        self, tx: dict[str, Any], sender: str, receipt: Any, action: str
    ) -> ChainError:
        """A mined, failed transaction: re-run it as a call on the parent block to learn
        the custom error (the receipt carries no revert data). `details` says what the
        failed transaction cost its sender."""
        mined = {
            "tx_hash": "0x" + bytes(receipt["transactionHash"]).hex(),
            "block_number": int(receipt["blockNumber"]),
            "gas_used": int(receipt["gasUsed"]),
            "fee_wei": int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"]),
        }
        call = {"from": sender, "data": tx["data"], "value": tx["value"], "gas": tx["gas"]}
        if "to" in tx:
            call["to"] = tx["to"]
        block = max(int(receipt["blockNumber"]) - 1, 0)
        try:
            self.w3.eth.call(call, block)
        except Exception as exc:  # noqa: BLE001
            err = chain_error(exc, action=action)
            if err.error_name:
                err.details = {**(err.details or {}), **mined}
                return err
        if receipt["gasUsed"] >= tx["gas"]:
            return ChainError(
                f"{action} ran out of gas ({tx['gas']})", error_name="OutOfGas", details=mined
            )
        return ChainError(f"{action} reverted", error_name=None, details=mined)
