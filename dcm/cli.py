"""`dcm`: one CLI for the node, providers and requesters."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click


@click.group()
def main() -> None:
    """Decentralized compute marketplace."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="DCM_DATA_DIR",
    help="Node data directory (SQLite file, blocks, chain journal).",
)
def serve(host: str, port: int, data_dir: str | None) -> None:
    """Run the marketplace node on the embedded defaults unless DCM_* engines are set."""
    import uvicorn

    from node.app import create_app
    from node.config import NodeSettings

    overrides = {"data_dir": data_dir} if data_dir else {}
    settings = NodeSettings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@main.group()
def user() -> None:
    """Manage node accounts."""


@user.command("create")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DCM_DATA_DIR")
def user_create(name: str, password_stdin: bool, data_dir: str | None) -> None:
    """Create an account NAME (there are no default credentials)."""
    from node.auth.service import create_user
    from node.config import NodeSettings
    from node.db import make_engine, make_sessionmaker, session_scope, upgrade_schema

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("password must be at least 8 characters")
    settings = NodeSettings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_schema(engine)
    from node.auth import repository

    with session_scope(make_sessionmaker(engine)) as session:
        if repository.user_by_username(session, name):
            raise click.ClickException(f"user {name!r} already exists")
        created = create_user(session, name, password)
        click.echo(f"created user {created.username} (id {created.id})")


# ---- ipfs: content addressing and a node's Kubo-compatible API (content helper) ----------
@main.group()
def ipfs() -> None:
    """Kubo-identical CIDs, and adding/fetching content through a node's /api/v0."""


def _cid_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--cid-version", type=click.Choice(["0", "1"]), default="0", show_default=True
    )(f)
    return click.option(
        "--raw-leaves/--no-raw-leaves",
        default=None,
        help="Raw leaf blocks (default: only with --cid-version 1, as in Kubo).",
    )(f)


@ipfs.command("cid")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_cid_options
@click.option("--hidden", is_flag=True, help="Include dot files (as `ipfs add -r --hidden`).")
def ipfs_cid(path: Path, cid_version: str, raw_leaves: bool | None, hidden: bool) -> None:
    """Print the CID `ipfs add -r PATH` would give, storing nothing."""
    from marketplace.content.importer import ImportOptions, import_path

    opts = ImportOptions(cid_version=int(cid_version), raw_leaves=raw_leaves, include_hidden=hidden)
    click.echo(str(import_path(path, opts).cid))


_NODE = click.option(
    "--node",
    "node_url",
    envvar="DCM_NODE_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Base URL of a dcm node (or any Kubo RPC API).",
)


@ipfs.command("add")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_NODE
@_cid_options
@click.option("--pin/--no-pin", default=True, show_default=True)
@click.option("--hidden", is_flag=True, help="Include dot files.")
def ipfs_add(
    path: Path,
    node_url: str,
    cid_version: str,
    raw_leaves: bool | None,
    pin: bool,
    hidden: bool,
) -> None:
    """Add PATH to the node; the node's answer must equal the locally computed CID."""
    from marketplace.errors import MarketplaceError
    from node.content.kubo import KuboStore

    store = KuboStore(node_url)
    try:
        store.add_path(
            path,
            pin=pin,
            cid_version=int(cid_version),
            raw_leaves=raw_leaves,
            include_hidden=hidden,
            on_entry=lambda rel, cid, size: click.echo(f"added {cid} {rel}"),
        )
    except MarketplaceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        store.close()


@ipfs.command("get")
@click.argument("cid")
@click.argument("out", type=click.Path(path_type=Path))
@_NODE
def ipfs_get(cid: str, out: Path, node_url: str) -> None:
    """Fetch CID (a file or a directory) from the node into OUT, verifying every block
    against its CID as it arrives."""
    from marketplace.errors import MarketplaceError
    from node.content.kubo import KuboStore
    from node.content.service import stat_of

    if out.exists():
        raise click.ClickException(f"{out} already exists")
    store = KuboStore(node_url)

    def fetch(ref: str, dest: Path) -> int:
        if stat_of(store, ref).is_dir:
            dest.mkdir()
            return sum(fetch(e.cid, dest / e.name) for e in store.ls(ref))
        with open(dest, "xb") as f:
            for chunk in store.cat(ref):
                f.write(chunk)
        return 1

    try:
        root = store.resolve(cid)
        n = fetch(root, out)
    except MarketplaceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        store.close()
    click.echo(f"fetched {root} ({n} file{'s' if n != 1 else ''}, verified) to {out}")


# -- provider ---------------------------------------------------------------------------


def _load_account(keyfile: Path, password_stdin: bool) -> Any:
    """Decrypt an eth-account keystore; the password comes from stdin, DCM_WALLET_PASSWORD
    or a prompt, never from the command line."""
    import json
    import os

    from eth_account import Account

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


@main.group()
def provider() -> None:
    """Run a compute provider."""


@provider.command("run")
@click.option(
    "--node", "node_url", default="http://127.0.0.1:8000", show_default=True, envvar="DCM_NODE_URL"
)
@click.option(
    "--keyfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The provider wallet (eth-account keystore).",
)
@click.option("--password-stdin", is_flag=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".dcm-provider"),
    show_default=True,
)
@click.option("--name", default="provider", show_default=True)
@click.option(
    "--job-type", "job_types", multiple=True, default=("image_processing",), show_default=True
)
@click.option("--max-concurrent", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--once", is_flag=True, help="Exit after one job.")
def provider_run(
    node_url: str,
    keyfile: Path,
    password_stdin: bool,
    workdir: Path,
    name: str,
    job_types: tuple[str, ...],
    max_concurrent: int,
    once: bool,
) -> None:
    """Sign in with the wallet, register this machine's hardware, claim and run jobs."""
    import asyncio

    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors import default_executors
    from worker.hardware import detect_hardware

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    account = _load_account(keyfile, password_stdin)
    config = DaemonConfig(
        node_url=node_url,
        workdir=workdir,
        job_types=list(job_types),
        max_concurrent=max_concurrent,
        name=name,
        run_once=once,
    )

    async def run() -> None:
        async with ProviderDaemon(
            config, account, default_executors(), hardware=detect_hardware
        ) as daemon:
            daemon.install_signal_handlers()
            await daemon.run()

    asyncio.run(run())


# --- escrow (issue 4): `dcm wallet new|address`, `dcm chain deploy` ---
from dcm.escrow_cli import register as _register_escrow  # noqa: E402

_register_escrow(main)


# -- requester commands and the demo ----------------------------------------------------
from dcm.demo import demo as _demo  # noqa: E402
from dcm.job_cli import job as _job  # noqa: E402

main.add_command(_job)
main.add_command(_demo)


if __name__ == "__main__":
    main()
