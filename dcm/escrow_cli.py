"""`dcm wallet new|address` and `dcm chain deploy`: wallet files and escrow deployment.

Passwords come from `--password-stdin`, else `DCM_WALLET_PASSWORD`, else a prompt; they and
the keys they unlock are never printed.
"""

from __future__ import annotations

import json
import os
import sys

import click

from marketplace.errors import MarketplaceError


def _password(password_stdin: bool, *, confirm: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    env = os.environ.get("DCM_WALLET_PASSWORD")
    if env:
        return env
    return click.prompt("Wallet password", hide_input=True, confirmation_prompt=confirm)


@click.group()
def wallet() -> None:
    """Encrypted wallet files (Ethereum keystores)."""


@wallet.command("new")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def wallet_new(out: str, password_stdin: bool) -> None:
    """Create a key and write it, encrypted, to OUT; print its address."""
    from marketplace.wallet import new_keystore

    try:
        address = new_keystore(out, _password(password_stdin, confirm=True))
    except MarketplaceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(address)


@wallet.command("address")
@click.argument("file", type=click.Path(dir_okay=False))
def wallet_address(file: str) -> None:
    """Print the address of wallet FILE (no password needed)."""
    from marketplace.wallet import keystore_address

    try:
        click.echo(keystore_address(file))
    except MarketplaceError as exc:
        raise click.ClickException(exc.message) from None


@click.command("deploy")
@click.option("--rpc", required=True, help="JSON-RPC URL of the chain.")
@click.option("--keyfile", required=True, type=click.Path(dir_okay=False), help="Deployer wallet.")
@click.option("--password-stdin", is_flag=True, help="Read the wallet password from stdin.")
@click.option("--arbiter", default=None, help="Dispute arbiter (default: the deployer).")
@click.option("--assigner", default=None, help="Signer of assignment vouchers (default: deployer).")
@click.option("--fee-bps", default=0, show_default=True, type=click.IntRange(0, 1000))
@click.option("--fee-recipient", default=None, help="Fee recipient (required with --fee-bps).")
@click.option(
    "--arbitration-window",
    default=7 * 24 * 3600,
    show_default=True,
    type=int,
    help="Seconds the arbiter has to rule before the default rule applies.",
)
@click.option("--timeout", default=60.0, show_default=True, type=float)
def chain_deploy(
    rpc: str,
    keyfile: str,
    password_stdin: bool,
    arbiter: str | None,
    assigner: str | None,
    fee_bps: int,
    fee_recipient: str | None,
    arbitration_window: int,
    timeout: float,
) -> None:
    """Deploy the JobEscrow contract; print {address, chain_id, block, deployer} as JSON."""
    from web3 import Web3

    from marketplace.escrow import JobEscrow
    from marketplace.wallet import load_keystore

    if fee_bps and not fee_recipient:
        raise click.ClickException("--fee-recipient is required when --fee-bps is set")
    try:
        account = load_keystore(keyfile, _password(password_stdin, confirm=False))
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout}))
        escrow = JobEscrow.deploy(
            w3,
            account,
            arbiter=arbiter or account.address,
            assigner=assigner or account.address,
            fee_bps=fee_bps,
            fee_recipient=fee_recipient,
            arbitration_window=arbitration_window,
            receipt_timeout=timeout,
        )
    except MarketplaceError as exc:
        raise click.ClickException(exc.message) from None
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"deployment failed: {str(exc)[:200]}") from None
    click.echo(
        json.dumps(
            {
                "address": escrow.address,
                "chain_id": escrow.chain_id,
                "block": escrow.deployment_block,
                "deployer": account.address,
            }
        )
    )


def register(main: click.Group) -> None:
    """Attach `wallet` and `chain deploy` to the `dcm` group (joining an existing `chain`
    group if another module defined one)."""
    main.add_command(wallet)
    chain = main.commands.get("chain")
    if not isinstance(chain, click.Group):
        chain = click.Group("chain", help="Chain and escrow contract.")
        main.add_command(chain)
    chain.add_command(chain_deploy)
