"""The node's signing keys: generated at first start, kept 0600 under data_dir.

The operator key (`chain/operator.key`): the embedded chain funds it at genesis; it deploys
the escrow, is its assigner and signs the node's own transactions. The embedded chain's
arbiter key (`chain/arbiter.key`) is a second, separate file: the escrow's arbiter must
not be the node's operator, and whoever rules disputes (`dcm chain resolve --key-file`)
needs no access to the operator key. Keys are never logged: `OperatorKey.__repr__` hides
them. With an external chain the operator key comes from an eth-account keystore file
(`DCM_CHAIN_OPERATOR_KEYFILE` + `DCM_CHAIN_OPERATOR_PASSWORD`) and the arbiter is an
address (`DCM_CHAIN_ARBITER_ADDRESS`) whose key the node never sees.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount


@dataclass(frozen=True)
class OperatorKey:
    account: LocalAccount = field(repr=False)

    @property
    def address(self) -> str:
        return self.account.address

    def __repr__(self) -> str:
        return f"OperatorKey(address={self.address})"


def load_or_create_operator_key(path: Path) -> OperatorKey:
    """Read the hex key at `path`, or create it (mode 0600, written atomically)."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
        key = path.read_text().strip()
        return OperatorKey(Account.from_key(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    account = Account.create()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(account.key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return OperatorKey(account)


def load_keystore(path: Path, password: str) -> OperatorKey:
    """Decrypt an eth-account (V3) keystore file."""
    data = json.loads(path.read_text())
    return OperatorKey(Account.from_key(Account.decrypt(data, password)))
