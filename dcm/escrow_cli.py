"""`dcm wallet new|address|send|sign`, `dcm chain deploy` and `dcm chain resolve`: wallet
files, the wallet's own calls (a node's `{chain_id, to, data, value}` funding or submit
call, signed locally and sent; a personal_sign of a text such as a seed 000 job's
`delete_message`), escrow deployment, and the arbiter's ruling on a disputed job.

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


@wallet.command("send")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("call", type=click.File("r"))
@click.option(
    "--rpc",
    envvar="DCM_CHAIN_RPC_URL",
    default="http://127.0.0.1:8000/chain/rpc",
    show_default=True,
    help="JSON-RPC URL of the chain (a node serves its own at /chain/rpc).",
)
@click.option("--password-stdin", is_flag=True, help="Read the wallet password from stdin.")
def wallet_send(file: str, call: click.utils.LazyFile, rpc: str, password_stdin: bool) -> None:
    """Sign CALL (a `{chain_id, to, data, value}` JSON file, `-` for stdin, e.g. a seed 000
    job's `funding`) with wallet FILE and send it; print the mined receipt's hash and
    status (exit 1 if it reverted)."""
    from web3 import Web3

    from marketplace.wallet import load_keystore

    try:
        body = json.load(call)
        account = load_keystore(file, _password(password_stdin, confirm=False))
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 60}))
        if int(w3.eth.chain_id) != int(body["chain_id"]):
            raise click.ClickException(
                f"the call is for chain {body['chain_id']}, {rpc} is chain {w3.eth.chain_id}"
            )
        tx = {
            "to": Web3.to_checksum_address(body["to"]),
            "data": body["data"],
            "value": int(body["value"]),
            "chainId": int(body["chain_id"]),
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gasPrice": w3.eth.gas_price,
        }
        tx["gas"] = int(w3.eth.estimate_gas({**tx, "from": account.address}) * 1.2)
        sent = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(sent, timeout=120)
    except MarketplaceError as exc:
        raise click.ClickException(exc.message) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise click.ClickException(f"not a {{chain_id, to, data, value}} call: {exc}") from None
    click.echo(json.dumps({"tx_hash": "0x" + bytes(sent).hex(), "status": receipt["status"]}))
    if receipt["status"] != 1:
        raise SystemExit(1)


@wallet.command("sign")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("message", type=click.File("r"))
@click.option("--password-stdin", is_flag=True, help="Read the wallet password from stdin.")
def wallet_sign(file: str, message: click.utils.LazyFile, password_stdin: bool) -> None:
    """Print wallet FILE's EIP-191 personal_sign of the text in MESSAGE (a file, `-` for
    stdin; e.g. a seed 000 job's `delete_message`), as 0x hex."""
    from eth_account.messages import encode_defunct

    from marketplace.wallet import load_keystore

    text = message.read()
    try:
        account = load_keystore(file, _password(password_stdin, confirm=False))
    except MarketplaceError as exc:
        raise click.ClickException(exc.message) from None
    signature = account.sign_message(encode_defunct(text=text)).signature
    click.echo("0x" + bytes(signature).hex().removeprefix("0x"))


@click.command("deploy")
@click.option("--rpc", required=True, help="JSON-RPC URL of the chain.")
@click.option("--keyfile", required=True, type=click.Path(dir_okay=False), help="Deployer wallet.")
@click.option("--password-stdin", is_flag=True, help="Read the wallet password from stdin.")
@click.option(
    "--arbiter",
    required=True,
    help="Who rules disputes: a party other than the assigner (the node's operator).",
)
@click.option(
    "--assigner",
    default=None,
    help="The node's operator key: binds providers, signs vouchers (default: deployer).",
)
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
    arbiter: str,
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
            arbiter=arbiter,
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


@click.command("resolve")
@click.argument("job_id")
@click.option(
    "--share",
    "share_bps",
    required=True,
    type=click.IntRange(0, 10_000),
    help="The provider's share in basis points: 0 refunds the requester, 10000 pays the "
    "provider; the rest goes back to the requester.",
)
@click.option(
    "--node",
    "node_url",
    default="http://127.0.0.1:8000",
    show_default=True,
    envvar="DCM_NODE_URL",
    help="The node that shows the job's escrow.",
)
@click.option("--keyfile", default=None, type=click.Path(dir_okay=False), help="Arbiter keystore.")
@click.option(
    "--key-file",
    "key_file",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="A raw hex key file instead, e.g. the embedded node's <data dir>/chain/arbiter.key.",
)
@click.option("--password-stdin", is_flag=True, help="Read the keystore password from stdin.")
@click.option("--rpc", default=None, help="Send through this JSON-RPC URL, not the node's.")
def chain_resolve(
    job_id: str,
    share_bps: int,
    node_url: str,
    keyfile: str | None,
    key_file: str | None,
    password_stdin: bool,
    rpc: str | None,
) -> None:
    """The arbiter rules on JOB_ID's disputed result (within the arbitration window;
    after it, `finalize` refunds the requester in full)."""
    from pathlib import Path

    from eth_account import Account

    from marketplace.sdk.client import NodeClient
    from marketplace.wallet import load_keystore

    if (keyfile is None) == (key_file is None):
        raise click.ClickException("give the arbiter's key: --keyfile or --key-file")
    try:
        if keyfile is not None:
            account = load_keystore(keyfile, _password(password_stdin, confirm=False))
        else:
            account = Account.from_key(Path(key_file or "").read_text().strip())
        with NodeClient(node_url) as client:
            receipt = client.resolve(job_id, share_bps, account, rpc_url=rpc)
    except MarketplaceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except ValueError as exc:
        raise click.ClickException(f"cannot use that key: {str(exc)[:200]}") from None
    click.echo(
        json.dumps(
            {
                "job_id": job_id,
                "provider_share_bps": share_bps,
                "tx_hash": receipt.transaction_hash,
                "block": receipt.block_number,
                "arbiter": account.address,
            }
        )
    )


def register(main: click.Group) -> None:
    """Attach `wallet`, `chain deploy` and `chain resolve` to the `dcm` group (joining an
    existing `chain` group if another module defined one)."""
    main.add_command(wallet)
    chain = main.commands.get("chain")
    if not isinstance(chain, click.Group):
        chain = click.Group("chain", help="Chain and escrow contract.")
        main.add_command(chain)
    chain.add_command(chain_deploy)
    chain.add_command(chain_resolve)
