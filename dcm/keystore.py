"""Wallet keystores for the `dcm` commands that sign (escrow, jobs, provider)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click


def load_account(keyfile: Path, password_stdin: bool) -> Any:
    """Decrypt an eth-account keystore; the password comes from stdin, DCM_WALLET_PASSWORD
    or a prompt, never from the command line."""
    from eth_account import Account  # web3's stack: loaded only when a wallet is used

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif "DCM_WALLET_PASSWORD" in os.environ:
        password = os.environ["DCM_WALLET_PASSWORD"]
    else:
        password = click.prompt(f"Password for {keyfile}", hide_input=True)
    try:
        key = Account.decrypt(json.loads(keyfile.read_text()), password)
    except (ValueError, KeyError) as exc:
        raise click.ClickException(
            f"cannot unlock {keyfile}: wrong password or not a keystore"
        ) from exc
    return Account.from_key(key)
