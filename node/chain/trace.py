"""geth's `callTracer` output built from a py-evm computation tree.

py-evm keeps every message a transaction ran as a child computation of its caller
(`computation.children`, successful or not), with the message's sender, target, value,
gas and input: the same facts geth's call tracer records while executing. `call_frame`
walks that tree after the fact and writes each node as a callTracer frame, so the
internal value transfers of a transaction (a CALL with value to an account) appear as
they do on geth: `{"type": "CALL", "from", "to", "value", "gas", "gasUsed", "input",
"output", "error", "revertReason", "calls": [...]}`, quantities as 0x hex.
"""

from __future__ import annotations

import contextlib
from typing import Any

from eth_utils import to_checksum_address

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")


def _hex(value: int) -> str:
    return hex(int(value))


def _type(msg: Any, parent_static: bool) -> str:
    if msg.is_create:
        return "CREATE"
    if msg.is_static and not parent_static:
        return "STATICCALL"
    if not msg.should_transfer_value:
        return "DELEGATECALL"
    return "CALL"


def _error(computation: Any) -> tuple[str, str | None]:
    err = computation.error
    output = bytes(computation.output or b"")
    if type(err).__name__ == "Revert":
        reason = None
        if output[:4] == ERROR_STRING_SELECTOR:
            from eth_abi import decode

            with contextlib.suppress(Exception):
                reason = str(decode(["string"], output[4:])[0])
        return "execution reverted", reason
    return str(err) or type(err).__name__, None


def call_frame(
    computation: Any,
    *,
    gas: int | None = None,
    gas_used: int | None = None,
    top: bool = False,
    parent_static: bool = False,
) -> dict[str, Any]:
    """The callTracer frame of `computation` and its children. For the top frame, geth
    reports the transaction's gas limit and its receipt's gas used: pass them."""
    msg = computation.msg
    kind = "CREATE" if top and msg.is_create else ("CALL" if top else _type(msg, parent_static))
    target = msg.storage_address if msg.is_create else msg.to
    frame: dict[str, Any] = {
        "type": kind,
        "from": to_checksum_address(msg.sender),
        "to": to_checksum_address(target) if target else None,
        "gas": _hex(msg.gas if gas is None else gas),
        "gasUsed": _hex(computation.get_gas_used() if gas_used is None else gas_used),
        "input": "0x" + bytes(msg.code if msg.is_create else msg.data).hex(),
    }
    if kind not in ("STATICCALL", "DELEGATECALL"):
        frame["value"] = _hex(msg.value)
    if computation.is_error:
        frame["error"], reason = _error(computation)
        if reason is not None:
            frame["revertReason"] = reason
        if frame["error"] == "execution reverted":
            frame["output"] = "0x" + bytes(computation.output or b"").hex()
    else:
        out = b"" if msg.is_create else bytes(computation.output or b"")
        frame["output"] = "0x" + out.hex()
    calls = [call_frame(c, parent_static=msg.is_static) for c in computation.children]
    if calls:
        frame["calls"] = calls
    return frame
