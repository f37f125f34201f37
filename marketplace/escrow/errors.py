"""Turning a revert (eth-tester exception, JSON-RPC error, failed receipt) into `ChainError`
with the contract's custom error name, decoded from the 4-byte selector against the ABI."""

from __future__ import annotations

import ast
import re
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from marketplace.errors import ChainError

from .artifact import load_artifact

_HEX = re.compile(r"0x[0-9a-fA-F]{8,}")
_BYTES_REPR = re.compile(r"""b(['"]).*\1""", re.S)


@cache
def _selectors() -> dict[bytes, tuple[str, list[str]]]:
    out: dict[bytes, tuple[str, list[str]]] = {}
    for item in load_artifact()["abi"]:
        if item["type"] != "error":
            continue
        types = [i["type"] for i in item["inputs"]]
        out[keccak(f"{item['name']}({','.join(types)})".encode())[:4]] = (item["name"], types)
    return out


def decode_revert(data: bytes) -> tuple[str | None, tuple[Any, ...]]:
    """(error name, args) for revert data of a JobEscrow custom error, else (None, ())."""
    known = _selectors().get(bytes(data[:4]))
    if not known:
        return None, ()
    name, types = known
    try:
        return name, tuple(abi_decode(types, bytes(data[4:])))
    except Exception:
        return name, ()


def revert_data_of(exc: BaseException) -> bytes | None:
    """Find revert data in whatever the provider raised (web3 error `.data`, an RPC error
    payload, or eth-tester's `execution reverted: b'...'` message)."""
    candidates: list[Any] = [getattr(exc, "data", None)]
    rpc = getattr(exc, "rpc_response", None)
    if isinstance(rpc, dict):
        err = rpc.get("error") or {}
        candidates.append(err.get("data") if isinstance(err, dict) else None)
    candidates.extend(exc.args)
    for cand in candidates:
        if isinstance(cand, dict):
            cand = cand.get("data")
        if isinstance(cand, bytes | bytearray) and len(cand) >= 4:
            return bytes(cand)
        if isinstance(cand, str):
            match = _BYTES_REPR.search(cand)
            if match:
                try:
                    value = ast.literal_eval(match.group(0))
                except (ValueError, SyntaxError):
                    value = None
                if isinstance(value, bytes) and len(value) >= 4:
                    return value
            match = _HEX.search(cand)
            if match:
                return bytes.fromhex(match.group(0)[2:])
    return None


def chain_error(exc: BaseException | None, *, data: bytes | None = None, action: str) -> ChainError:
    """Build the domain error for a failed `action` (key material never included)."""
    if data is None and exc is not None:
        data = revert_data_of(exc)
    name, args = decode_revert(data) if data else (None, ())
    if name:
        shown = name if not args else f"{name}({', '.join(map(str, args))})"
        return ChainError(f"{action} reverted: {shown}", error_name=name, details={"args": args})
    reason = str(exc)[:200] if exc is not None else "transaction failed"
    return ChainError(f"{action} failed: {reason}", error_name=None)
