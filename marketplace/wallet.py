"""Wallet files: encrypted Ethereum keystores (eth-account's scrypt keystore v3).

`new_keystore` writes one (mode 0600, never overwriting), `keystore_address` reads the
public address without the password, `load_keystore` decrypts it into a `LocalAccount` that
signs locally. Key material never appears in messages, logs or exceptions: a failed
decryption says only that the password is wrong or the file corrupt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from marketplace.errors import Conflict, NotFound, ValidationFailed

MIN_PASSWORD = 8


def new_keystore(path: str | Path, password: str) -> str:
    """Create a fresh key, write it encrypted to `path`, return its address."""
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"wallet password must be at least {MIN_PASSWORD} characters")
    path = Path(path)
    account = Account.create()
    keystore = Account.encrypt(account.key, password)
    data = json.dumps(keystore, indent=2).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{path} already exists; refusing to overwrite a wallet") from None
    except OSError as exc:
        raise ValidationFailed(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return account.address


def _read(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise NotFound(f"wallet file {path} not found") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise ValidationFailed(f"{path} is not a keystore file") from None
    if not isinstance(data, dict) or "crypto" not in data and "Crypto" not in data:
        raise ValidationFailed(f"{path} is not a keystore file")
    return data


def keystore_address(path: str | Path) -> str:
    """The checksummed address a keystore holds (no password needed)."""
    address = _read(path).get("address", "")
    if not isinstance(address, str) or not is_address("0x" + address.removeprefix("0x")):
        raise ValidationFailed(f"{path} has no valid address")
    return to_checksum_address("0x" + address.removeprefix("0x"))


def load_keystore(path: str | Path, password: str) -> LocalAccount:
    """Decrypt a keystore into a local signer."""
    data = _read(path)
    try:
        key = Account.decrypt(data, password)
    except Exception:  # noqa: BLE001 - never echo what the library says about the key
        raise ValidationFailed(f"cannot decrypt {path}: wrong password or corrupt file") from None
    return Account.from_key(key)
