"""Ethereum JSON-RPC 2.0 over the embedded EVM (what `/chain/rpc` serves).

`RpcDispatcher.handle(body)` takes a decoded request (object or batch list) and returns
the response (object, list, or None for a batch of notifications). Results are encoded
as geth encodes them (quantities `0x`-hex, camelCase keys), and a revert in `eth_call`
or `eth_estimateGas` is error code 3 with the revert data in `data`, so web3.py raises
`ContractLogicError` / `ContractCustomError` exactly as it does against geth or Hardhat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from eth_utils import is_hex, keccak, to_checksum_address
from web3.providers.eth_tester.middleware import (
    BLOCK_RESULT_KEY_MAPPING,
    LOG_RESULT_KEY_MAPPING,
    RECEIPT_RESULT_KEY_MAPPING,
    TRANSACTION_REQUEST_KEY_MAPPING,
    TRANSACTION_RESULT_KEY_MAPPING,
)

from node.chain.evm import CallRejected, EmbeddedEVM, RejectedTransaction, Reverted
from node.chain.filters import FilterNotFound, FilterRegistry, TooManyFilters

log = logging.getLogger("dcm.chain.rpc")

CLIENT_VERSION = "dcm-embedded/0.1.0 (eth-tester/py-evm)"
PRIORITY_FEE_WEI = 10**9
MAX_BATCH = 100
MAX_LOG_RANGE = 100_000
MAX_PROOF_KEYS = 1024  # geth's limit on eth_getProof's storage keys
MAX_PERCENTILES = 100  # geth's limit on eth_feeHistory's reward percentiles

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
REVERT = 3

_NAMED_BLOCKS = {"latest", "earliest", "pending", "safe", "finalized"}
# Reads of one account, transaction or block, answered from memory in about a millisecond
# (every block holds the one transaction it mined): `handle_now` answers them on the
# caller's thread. A wallet's every transfer is a send and a few of these; over HTTP each
# hop to a worker thread and back cost more than the read itself (bench/chain_rpc.py).
# Not here: what runs EVM code or walks many blocks (eth_call, eth_estimateGas,
# eth_getLogs, eth_feeHistory, filters, traces), and every state change.
QUICK_METHODS = frozenset(
    {
        "eth_chainId",
        "net_version",
        "net_listening",
        "net_peerCount",
        "web3_clientVersion",
        "eth_syncing",
        "eth_mining",
        "eth_accounts",
        "eth_coinbase",
        "eth_blockNumber",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_blobBaseFee",
        "eth_getBalance",
        "eth_getTransactionCount",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_pendingTransactions",
        "txpool_status",
    }
)
# Hardhat-style time control: development only, and over HTTP only for loopback clients
# or the operator's token (the caller decides, see `handle(..., dev_allowed=)`).
DEV_METHODS = frozenset({"evm_mine", "evm_increaseTime", "evm_snapshot", "evm_revert"})
# Blocks are mined by no one: the coinbase of every block is the zero address.
COINBASE = "0x" + "00" * 20
CALL_TRACER = "callTracer"
# Why some well-known methods are absent, after geth's "does not exist" (which ethers reads
# as UNSUPPORTED_OPERATION): the node keeps no user keys, and HTTP carries no push.
_NO_KEYS = (
    ": this node holds no accounts (eth_accounts is empty); sign in the wallet and send "
    "with eth_sendRawTransaction"
)
_NO_PUSH = ": subscriptions need a WebSocket; over HTTP poll with eth_newFilter/eth_newBlockFilter"
_MISSING_HINTS = {
    **dict.fromkeys(
        (
            "eth_sendTransaction",
            "eth_sign",
            "eth_signTransaction",
            "eth_signTypedData",
            "eth_signTypedData_v3",
            "eth_signTypedData_v4",
            "personal_sign",
        ),
        _NO_KEYS,
    ),
    "eth_subscribe": _NO_PUSH,
    "eth_unsubscribe": _NO_PUSH,
}


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


# -- encoding ---------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _remap(d: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    return {mapping.get(k, k): v for k, v in d.items()}


def _tx_out(tx: dict[str, Any]) -> dict[str, Any]:
    out = _remap(tx, TRANSACTION_RESULT_KEY_MAPPING)
    if out.get("to") == "":
        out["to"] = None
    if "access_list" in tx or "accessList" in out:
        out["accessList"] = [
            {"address": e["address"], "storageKeys": list(e.get("storage_keys", ()))}
            for e in out.get("accessList", ())
        ]
    if "y_parity" in out:
        out["yParity"] = out.pop("y_parity")
    return _encode(out)


def _log_out(entry: dict[str, Any]) -> dict[str, Any]:
    out = _remap(entry, LOG_RESULT_KEY_MAPPING)
    out.setdefault("removed", False)
    out.pop("type", None)
    return _encode(out)


def _bloom(value: Any) -> str:
    if isinstance(value, int):
        return "0x" + value.to_bytes(256, "big").hex()
    return _encode(value)


def _block_out(block: dict[str, Any] | None, full: bool) -> dict[str, Any] | None:
    if block is None:
        return None
    out = _remap(block, BLOCK_RESULT_KEY_MAPPING)
    bloom = out.pop("logsBloom", 0)
    txs = out.pop("transactions", [])
    withdrawals = out.pop("withdrawals", [])
    encoded = _encode(out)
    encoded["logsBloom"] = _bloom(bloom)
    encoded["transactions"] = [_tx_out(t) for t in txs] if full else list(txs)
    encoded["withdrawals"] = [
        _encode(_remap(w, {"validator_index": "validatorIndex"})) for w in withdrawals
    ]
    return encoded


def _receipt_out(receipt: dict[str, Any] | None) -> dict[str, Any] | None:
    if receipt is None:
        return None
    out = _remap(receipt, RECEIPT_RESULT_KEY_MAPPING)
    out.pop("state_root", None)  # post-Byzantium receipts carry `status`, not a root
    logs = out.pop("logs", [])
    bloom = out.pop("logs_bloom", None)
    encoded = _encode(out)
    encoded["logs"] = [_log_out(e) for e in logs]
    if bloom is not None:
        encoded["logsBloom"] = _bloom(bloom)
    return encoded


# -- decoding ---------------------------------------------------------------------------


def _quantity(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"invalid {name}: expected a 0x-hex quantity")


def _block_id(value: Any, evm: EmbeddedEVM) -> int | str:
    if value is None:
        return "latest"
    if isinstance(value, str) and value in _NAMED_BLOCKS:
        return value
    if isinstance(value, dict):  # EIP-1898
        if "blockNumber" in value:
            return _quantity(value["blockNumber"], "blockNumber")
        if "blockHash" in value:
            block = evm.get_block(_hash(value["blockHash"], "blockHash"), False)
            if block is None:
                raise RpcError(SERVER_ERROR, "header not found")
            return int(block["number"])
    number = _quantity(value, "block number")
    if number > evm.block_number():
        raise RpcError(SERVER_ERROR, "header not found")
    return number


def _block_number(value: Any, evm: EmbeddedEVM) -> int:
    ident = _block_id(value, evm)
    if isinstance(ident, int):
        return ident
    if ident == "earliest":
        return 0
    return evm.block_number()


def _address(value: Any, name: str = "address") -> str:
    if isinstance(value, str) and is_hex(value) and len(value) == 42:
        return to_checksum_address(value)
    raise RpcError(INVALID_PARAMS, f"invalid {name}: expected a 20-byte 0x-hex address")


def _hash(value: Any, name: str) -> str:
    if isinstance(value, str) and is_hex(value) and len(value) == 66:
        return value.lower()
    raise RpcError(INVALID_PARAMS, f"invalid {name}: expected a 32-byte 0x-hex hash")


def _data(value: Any, name: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x") and len(value) % 2 == 0:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"invalid {name}: expected 0x-hex bytes")


_QUANTITY_FIELDS = {
    "gas",
    "gas_price",
    "value",
    "nonce",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "chain_id",
    "type",
}


def _call_tx(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RpcError(INVALID_PARAMS, "invalid transaction: expected an object")
    tx = _remap(value, TRANSACTION_REQUEST_KEY_MAPPING)
    if "input" in tx:
        tx["data"] = tx.pop("input")
    out: dict[str, Any] = {}
    for key, val in tx.items():
        if val is None:
            continue
        if key in ("from", "to"):
            out[key] = _address(val, key)
        elif key == "data":
            out["data"] = "0x" + _data(val, "data").hex()
        elif key in _QUANTITY_FIELDS:
            if key in ("chain_id", "type", "nonce"):
                continue  # irrelevant to a call; eth-tester rejects some of them
            out[key] = _quantity(val, key)
        elif key == "access_list":
            continue
    if "gas_price" in out and ("max_fee_per_gas" in out or "max_priority_fee_per_gas" in out):
        raise RpcError(INVALID_PARAMS, "both gasPrice and maxFeePerGas specified")
    return out


def _topics(value: Any) -> list[list[str] | None]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RpcError(INVALID_PARAMS, "invalid topics: expected a list")
    out: list[list[str] | None] = []
    for item in value:
        if item is None:
            out.append(None)
        elif isinstance(item, str):
            out.append([_hash(item, "topic")])
        elif isinstance(item, list):
            out.append(None if not item else [_hash(t, "topic") for t in item])
        else:
            raise RpcError(INVALID_PARAMS, "invalid topic")
    return out


# -- dispatcher -------------------------------------------------------------------------


class RpcDispatcher:
    """Answers JSON-RPC requests from the embedded EVM."""

    def __init__(self, evm: EmbeddedEVM, *, dev_methods: bool = False) -> None:
        self.evm = evm
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": lambda p: hex(evm.chain_id),
            "net_version": lambda p: str(evm.chain_id),
            "net_listening": lambda p: True,
            "net_peerCount": lambda p: "0x0",
            "web3_clientVersion": lambda p: CLIENT_VERSION,
            "eth_syncing": lambda p: False,
            "eth_mining": lambda p: False,
            "eth_accounts": lambda p: [],
            "eth_blockNumber": lambda p: hex(evm.block_number()),
            "eth_gasPrice": lambda p: hex(evm.base_fee() + PRIORITY_FEE_WEI),
            "eth_maxPriorityFeePerGas": lambda p: hex(PRIORITY_FEE_WEI),
            "eth_getBlockByNumber": self._get_block_by_number,
            "eth_getBlockByHash": self._get_block_by_hash,
            "eth_getBalance": self._get_balance,
            "eth_getTransactionCount": self._get_transaction_count,
            "eth_getCode": self._get_code,
            "eth_getStorageAt": self._get_storage_at,
            "eth_call": self._call,
            "eth_estimateGas": self._estimate_gas,
            "eth_sendRawTransaction": self._send_raw_transaction,
            "eth_getTransactionByHash": self._get_transaction_by_hash,
            "eth_getTransactionReceipt": self._get_transaction_receipt,
            "eth_getLogs": self._get_logs,
            "eth_feeHistory": self._fee_history,
            "web3_sha3": self._sha3,
            "eth_coinbase": lambda p: COINBASE,
            "eth_pendingTransactions": lambda p: [],  # mined at once: nothing is pending
            "eth_getBlockTransactionCountByHash": self._tx_count_by_hash,
            "eth_getBlockTransactionCountByNumber": self._tx_count_by_number,
            "eth_getTransactionByBlockHashAndIndex": self._tx_by_hash_and_index,
            "eth_getTransactionByBlockNumberAndIndex": self._tx_by_number_and_index,
            "eth_getBlockReceipts": self._block_receipts,
            "eth_getProof": self._get_proof,
            "eth_newFilter": self._new_filter,
            "eth_newBlockFilter": self._new_block_filter,
            "eth_newPendingTransactionFilter": self._new_pending_filter,
            "eth_getFilterChanges": self._filter_changes,
            "eth_getFilterLogs": self._filter_logs,
            "eth_uninstallFilter": self._uninstall_filter,
            "debug_traceTransaction": self._trace_transaction,
            "debug_traceCall": self._trace_call,
            "debug_traceBlockByNumber": self._trace_block_by_number,
            "debug_traceBlockByHash": self._trace_block_by_hash,
            "debug_getRawTransaction": self._raw_transaction,
            "debug_getRawBlock": lambda p: self._raw(p, 0),
            "debug_getRawHeader": lambda p: self._raw(p, 1),
            "debug_getRawReceipts": lambda p: self._raw(p, 2),
            "eth_getHeaderByNumber": lambda p: self._header(p, False),
            "eth_getHeaderByHash": lambda p: self._header(p, True),
            # proof of stake has no uncles: zero of them in every known block
            "eth_getUncleCountByBlockNumber": lambda p: self._uncle_count(p, False),
            "eth_getUncleCountByBlockHash": lambda p: self._uncle_count(p, True),
            "eth_getUncleByBlockNumberAndIndex": lambda p: None,
            "eth_getUncleByBlockHashAndIndex": lambda p: None,
            "eth_blobBaseFee": lambda p: hex(evm.blob_base_fee()),
            # every transaction is mined as it arrives: the pool is always empty
            "txpool_status": lambda p: {"pending": "0x0", "queued": "0x0"},
            "txpool_content": lambda p: {"pending": {}, "queued": {}},
            "txpool_inspect": lambda p: {"pending": {}, "queued": {}},
        }
        self.filters = FilterRegistry()
        if dev_methods:  # Hardhat-style time control, journaled like transactions
            self.methods["evm_mine"] = self._evm_mine
            self.methods["evm_increaseTime"] = self._evm_increase_time
            self.methods["evm_snapshot"] = self._evm_snapshot
            self.methods["evm_revert"] = self._evm_revert

    # public entry ---------------------------------------------------------------------

    def handle(self, body: Any, *, dev_allowed: bool) -> Any:
        """Answer a decoded request or batch; `dev_allowed` says whether this caller may
        use the development methods (`DEV_METHODS`), where they are enabled."""
        if isinstance(body, list):
            if not body:
                return _error(None, INVALID_REQUEST, "empty batch")
            if len(body) > MAX_BATCH:
                return _error(None, INVALID_REQUEST, f"batch larger than {MAX_BATCH}")
            replies = [self.handle_one(item, dev_allowed=dev_allowed) for item in body]
            replies = [r for r in replies if r is not None]
            return replies or None
        return self.handle_one(body, dev_allowed=dev_allowed)

    def handle_now(self, body: Any, *, dev_allowed: bool) -> tuple[bool, Any]:
        """Answer `body` on the calling thread if it is one quick read (`QUICK_METHODS`)
        and the chain is free: (True, the reply). Otherwise (False, None), having done
        nothing, and the caller answers it with `handle` where it may wait (a worker
        thread): the event loop never waits for the chain's lock."""
        if not (isinstance(body, dict) and body.get("method") in QUICK_METHODS):
            return False, None
        if not self.evm.lock.acquire(blocking=False):
            return False, None
        try:
            return True, self.handle(body, dev_allowed=dev_allowed)
        finally:
            self.evm.lock.release()

    def handle_one(self, req: Any, *, dev_allowed: bool = True) -> dict[str, Any] | None:
        """One request. The default lets the node's own in-process client (`host.w3`)
        use the development methods; HTTP callers go through `handle`."""
        if (
            not isinstance(req, dict)
            or req.get("jsonrpc") != "2.0"
            or not isinstance(req.get("method"), str)
        ):
            rid = req.get("id") if isinstance(req, dict) else None
            return _error(rid, INVALID_REQUEST, "invalid JSON-RPC 2.0 request")
        rid = req.get("id")
        is_notification = "id" not in req
        params = req.get("params", [])
        if params is None:
            params = []
        try:
            method = self.methods.get(req["method"])
            if method is None:
                hint = _MISSING_HINTS.get(req["method"], "")
                raise RpcError(METHOD_NOT_FOUND, f"the method {req['method']} does not exist{hint}")
            if req["method"] in DEV_METHODS and not dev_allowed:
                raise RpcError(
                    METHOD_NOT_FOUND,
                    f"the method {req['method']} is only available to loopback clients "
                    "or with the operator token",
                )
            if not isinstance(params, list):
                raise RpcError(INVALID_PARAMS, "params must be an array")
            result = method(params)
        except RpcError as exc:
            return None if is_notification else _error(rid, exc.code, exc.message, exc.data)
        except (CallRejected, RejectedTransaction, FilterNotFound, TooManyFilters) as exc:
            return None if is_notification else _error(rid, SERVER_ERROR, str(exc))
        except Exception:
            log.exception("JSON-RPC %s failed", req.get("method"))
            return None if is_notification else _error(rid, INTERNAL_ERROR, "internal error")
        if is_notification:
            return None
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    # methods --------------------------------------------------------------------------

    def _get_block_by_number(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        full = bool(p[1]) if len(p) > 1 else False
        ident = p[0]
        if not (isinstance(ident, str) and ident in _NAMED_BLOCKS):
            ident = _quantity(ident, "block number")
            if ident > self.evm.block_number():
                return None
        return _block_out(self.evm.get_block(ident, full), full)

    def _get_block_by_hash(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        full = bool(p[1]) if len(p) > 1 else False
        return _block_out(self.evm.get_block(_hash(p[0], "block hash"), full), full)

    def _get_balance(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        return hex(self.evm.get_balance(_address(p[0]), _block_id(_opt(p, 1), self.evm)))

    def _get_transaction_count(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        return hex(self.evm.get_nonce(_address(p[0]), _block_id(_opt(p, 1), self.evm)))

    def _get_code(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        return self.evm.get_code(_address(p[0]), _block_id(_opt(p, 1), self.evm))

    def _get_storage_at(self, p: list[Any]) -> Any:
        _arity(p, 2, 3)
        slot = _quantity(p[1], "slot")
        if slot >= 2**256:
            raise RpcError(INVALID_PARAMS, "invalid slot: over 32 bytes")
        value = self.evm.get_storage_at(_address(p[0]), slot, _block_id(_opt(p, 2), self.evm))
        return "0x" + bytes.fromhex(value[2:]).rjust(32, b"\0").hex()

    def _call(self, p: list[Any]) -> Any:
        _arity(p, 1, 3)
        try:
            return "0x" + self.evm.call(_call_tx(p[0]), _block_id(_opt(p, 1), self.evm)).hex()
        except Reverted as exc:
            raise _revert_error(exc) from None

    def _estimate_gas(self, p: list[Any]) -> Any:
        _arity(p, 1, 3)
        try:
            return hex(self.evm.estimate_gas(_call_tx(p[0]), _block_id(_opt(p, 1), self.evm)))
        except Reverted as exc:
            raise _revert_error(exc) from None

    def _send_raw_transaction(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        raw = _data(p[0], "raw transaction")
        if not raw:
            raise RpcError(INVALID_PARAMS, "empty raw transaction")
        return self.evm.send_raw_transaction(raw)  # RejectedTransaction: -32000, geth's text

    def _get_transaction_by_hash(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        tx = self.evm.get_transaction(_hash(p[0], "transaction hash"))
        return None if tx is None else _tx_out(tx)

    def _get_transaction_receipt(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        return _receipt_out(self.evm.get_receipt(_hash(p[0], "transaction hash")))

    def _get_logs(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        lo, hi, addresses, topics = self._log_query(p[0])
        if lo > hi:
            return []
        return [_log_out(entry) for entry in self.evm.get_logs(lo, hi, addresses, topics)]

    def _log_query(self, flt: Any) -> tuple[int, int, list[str] | None, list[list[str] | None]]:
        """A log filter object's block range (resolved now), addresses and topics."""
        if not isinstance(flt, dict):
            raise RpcError(INVALID_PARAMS, "invalid filter: expected an object")
        if flt.get("blockHash") is not None:
            if flt.get("fromBlock") is not None or flt.get("toBlock") is not None:
                raise RpcError(INVALID_PARAMS, "blockHash excludes fromBlock/toBlock")
            block = self.evm.get_block(_hash(flt["blockHash"], "blockHash"), False)
            if block is None:
                raise RpcError(SERVER_ERROR, "unknown block")
            lo = hi = int(block["number"])
        else:
            head = self.evm.block_number()
            lo = _log_bound(flt.get("fromBlock"), head)
            hi = _log_bound(flt.get("toBlock"), head)
            if lo <= hi and hi - lo > MAX_LOG_RANGE:
                raise RpcError(SERVER_ERROR, f"block range larger than {MAX_LOG_RANGE}")
        addr = flt.get("address")
        if addr is None:
            addresses = None
        elif isinstance(addr, list):
            addresses = [_address(a) for a in addr] or None
        else:
            addresses = [_address(addr)]
        return lo, hi, addresses, _topics(flt.get("topics"))

    # blocks by index ------------------------------------------------------------------

    def _block_by(self, ident: Any, by_hash: bool) -> dict[str, Any] | None:
        if by_hash:
            return self.evm.get_block(_hash(ident, "block hash"), True)
        if not (isinstance(ident, str) and ident in _NAMED_BLOCKS):
            ident = _quantity(ident, "block number")
            if ident > self.evm.block_number():
                return None
        return self.evm.get_block(ident, True)

    def _tx_count_by_hash(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        block = self._block_by(p[0], True)
        return None if block is None else hex(len(block["transactions"]))

    def _tx_count_by_number(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        block = self._block_by(p[0], False)
        return None if block is None else hex(len(block["transactions"]))

    def _tx_at(self, block: dict[str, Any] | None, index: Any) -> Any:
        i = _quantity(index, "index")
        if block is None or i >= len(block["transactions"]):
            return None
        return _tx_out(block["transactions"][i])

    def _tx_by_hash_and_index(self, p: list[Any]) -> Any:
        _arity(p, 2, 2)
        return self._tx_at(self._block_by(p[0], True), p[1])

    def _tx_by_number_and_index(self, p: list[Any]) -> Any:
        _arity(p, 2, 2)
        return self._tx_at(self._block_by(p[0], False), p[1])

    def _block_receipts(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        ident = p[0]
        if isinstance(ident, dict):  # EIP-1898 form
            ident = ident.get("blockHash") or ident.get("blockNumber")
        if isinstance(ident, str) and len(ident) == 66:
            block = self.evm.get_block(_hash(ident, "block hash"), False)
        else:
            block = self._block_by(ident, False)
        if block is None:
            return None
        receipts = self.evm.block_receipts(int(block["number"]))
        return None if receipts is None else [_receipt_out(r) for r in receipts]

    def _get_proof(self, p: list[Any]) -> Any:
        _arity(p, 2, 3)
        if not isinstance(p[1], list) or len(p[1]) > MAX_PROOF_KEYS:
            raise RpcError(INVALID_PARAMS, f"storageKeys: a list of at most {MAX_PROOF_KEYS}")
        slots = [_quantity(k, "storage key") for k in p[1]]
        if any(k >= 2**256 for k in slots):
            raise RpcError(INVALID_PARAMS, "storage key over 32 bytes")
        proof = self.evm.get_proof(_address(p[0]), slots, _block_id(_opt(p, 2), self.evm))
        return _encode(proof)

    def _sha3(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        return "0x" + keccak(_data(p[0], "data")).hex()

    def _header(self, p: list[Any], by_hash: bool) -> Any:
        _arity(p, 1, 1)
        block = self._block_by(p[0], by_hash)
        if block is None:
            return None
        header = _block_out(block, False)
        assert header is not None
        for key in ("transactions", "uncles", "withdrawals", "size", "totalDifficulty"):
            header.pop(key, None)
        return header

    def _uncle_count(self, p: list[Any], by_hash: bool) -> Any:
        _arity(p, 1, 1)
        return None if self._block_by(p[0], by_hash) is None else "0x0"

    def _raw_transaction(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        raw = self.evm.raw_transaction(_hash(p[0], "transaction hash"))
        return None if raw is None else "0x" + raw.hex()

    def _raw(self, p: list[Any], part: int) -> Any:
        """debug_getRawBlock (0), debug_getRawHeader (1), debug_getRawReceipts (2)."""
        _arity(p, 1, 1)
        ident = p[0]
        if isinstance(ident, str) and len(ident) == 66:
            block = self._block_by(ident, True)
        else:
            block = self._block_by(ident, False)
        if block is None:
            raise RpcError(SERVER_ERROR, "block not found")
        raw = self.evm.raw_block(int(block["number"]))[part]
        if isinstance(raw, list):
            return ["0x" + r.hex() for r in raw]
        return "0x" + raw.hex()

    # filters --------------------------------------------------------------------------

    def _new_filter(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        self._log_query(p[0])  # refuse a bad filter now, not at the first poll
        return self.filters.install("logs", self.evm.block_number(), {"filter": p[0]})

    def _new_block_filter(self, p: list[Any]) -> Any:
        _arity(p, 0, 0)
        return self.filters.install("blocks", self.evm.block_number())

    def _new_pending_filter(self, p: list[Any]) -> Any:
        _arity(p, 0, 1)
        return self.filters.install("pending", self.evm.block_number())

    def _filter_changes(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        head = self.evm.block_number()
        flt, since = self.filters.advance(p[0], head)
        if flt.kind == "pending" or since > head:
            return []
        if flt.kind == "blocks":
            return [self.evm.get_block(n, False)["hash"] for n in range(since, head + 1)]
        lo, hi, addresses, topics = self._log_query(flt.criteria["filter"])
        lo, hi = max(lo, since), min(hi, head)
        if lo > hi:
            return []
        return [_log_out(e) for e in self.evm.get_logs(lo, hi, addresses, topics)]

    def _filter_logs(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        flt = self.filters.get(p[0])
        if flt.kind != "logs":
            raise RpcError(SERVER_ERROR, "filter not found")  # geth: only log filters
        return self._get_logs([flt.criteria["filter"]])

    def _uninstall_filter(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        return self.filters.uninstall(p[0])

    # tracing --------------------------------------------------------------------------

    def _trace_transaction(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        only_top = _tracer_options(_opt(p, 1))
        frame = self.evm.trace_transaction(_hash(p[0], "transaction hash"))
        if frame is None:
            raise RpcError(SERVER_ERROR, "transaction not found")
        return _top_only(frame) if only_top else frame

    def _trace_call(self, p: list[Any]) -> Any:
        _arity(p, 1, 3)
        only_top = _tracer_options(_opt(p, 2))
        frame = self.evm.trace_call(_call_tx(p[0]), _block_id(_opt(p, 1), self.evm))
        return _top_only(frame) if only_top else frame

    def _trace_block(self, block: dict[str, Any] | None, options: Any) -> Any:
        only_top = _tracer_options(options)
        if block is None:
            raise RpcError(SERVER_ERROR, "block not found")
        out = []
        for tx in block["transactions"]:
            tx_hash = tx if isinstance(tx, str) else tx["hash"]
            frame = self.evm.trace_transaction(tx_hash)
            out.append({"txHash": tx_hash, "result": _top_only(frame) if only_top else frame})
        return out

    def _trace_block_by_number(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        return self._trace_block(self._block_by(p[0], False), _opt(p, 1))

    def _trace_block_by_hash(self, p: list[Any]) -> Any:
        _arity(p, 1, 2)
        return self._trace_block(self._block_by(p[0], True), _opt(p, 1))

    # development ----------------------------------------------------------------------

    def _evm_snapshot(self, p: list[Any]) -> Any:
        _arity(p, 0, 0)
        return hex(self.evm.snapshot())

    def _evm_revert(self, p: list[Any]) -> Any:
        _arity(p, 1, 1)
        return self.evm.revert(_quantity(p[0], "snapshot id"))

    def _evm_mine(self, p: list[Any]) -> Any:
        """`evm_mine([timestamp])`: mine an empty block (at `timestamp` if given)."""
        _arity(p, 0, 1)
        ts = _opt(p, 0)
        try:
            if ts is None:
                self.evm.mine_empty_block()
            else:
                self.evm.time_travel(ts if isinstance(ts, int) else _quantity(ts, "timestamp"))
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        return "0x0"

    def _evm_increase_time(self, p: list[Any]) -> Any:
        """`evm_increaseTime(seconds)`: mine an empty block `seconds` after the head
        (later blocks follow it); returns the new head timestamp."""
        _arity(p, 1, 1)
        seconds = p[0] if isinstance(p[0], int) else _quantity(p[0], "seconds")
        if isinstance(seconds, bool) or seconds < 1 or seconds > 10 * 365 * 24 * 3600:
            raise RpcError(INVALID_PARAMS, "seconds must be between 1 and ten years")
        self.evm.time_travel(self.evm.head_timestamp() + seconds)
        return self.evm.head_timestamp()

    def _fee_history(self, p: list[Any]) -> Any:
        _arity(p, 2, 3)
        count = _quantity(p[0], "blockCount") if not isinstance(p[0], int) else p[0]
        if isinstance(count, bool) or count < 1 or count > 1024:
            raise RpcError(INVALID_PARAMS, "blockCount must be between 1 and 1024")
        newest = _block_number(p[1], self.evm)
        percentiles = _opt(p, 2) or []
        if (
            not isinstance(percentiles, list)
            or len(percentiles) > MAX_PERCENTILES
            or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 100
                for x in percentiles
            )
            or any(a > b for a, b in zip(percentiles, percentiles[1:], strict=False))
        ):
            raise RpcError(
                INVALID_PARAMS,
                f"rewardPercentiles must be at most {MAX_PERCENTILES} increasing numbers "
                "in [0, 100]",
            )
        result = self.evm.fee_history(count, newest, percentiles)
        out: dict[str, Any] = {
            "oldestBlock": hex(result["oldest_block"]),
            "baseFeePerGas": [hex(x) for x in result["base_fee_per_gas"]],
            "gasUsedRatio": list(result["gas_used_ratio"]),
        }
        if percentiles:
            out["reward"] = [[hex(x) for x in row] for row in result["reward"]]
        return out


def _log_bound(value: Any, head: int) -> int:
    if value is None or value in ("latest", "pending", "safe", "finalized"):
        return head
    if value == "earliest":
        return 0
    return _quantity(value, "block number")


def _opt(p: list[Any], i: int) -> Any:
    return p[i] if len(p) > i else None


def _arity(p: list[Any], lo: int, hi: int) -> None:
    if not lo <= len(p) <= hi:
        raise RpcError(INVALID_PARAMS, f"expected {lo}..{hi} params, got {len(p)}")


def _tracer_options(options: Any) -> bool:
    """Check a trace call's options; True when only the top call is wanted. Only geth's
    `callTracer` is served: the struct logger's per-opcode output is not recorded."""
    if not isinstance(options, dict) or options.get("tracer") != CALL_TRACER:
        raise RpcError(
            INVALID_PARAMS,
            'only {"tracer": "callTracer"} is supported (no opcode-level struct logs)',
        )
    config = options.get("tracerConfig") or {}
    return bool(isinstance(config, dict) and config.get("onlyTopCall"))


def _top_only(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k != "calls"}


def _revert_error(exc: Reverted) -> RpcError:
    return RpcError(REVERT, exc.message, "0x" + exc.data.hex())


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": err}
