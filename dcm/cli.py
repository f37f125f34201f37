"""`dcm`: one CLI for the node, providers and requesters."""

from __future__ import annotations

import logging
import sys

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

    for session in session_scope(make_sessionmaker(engine)):
        if repository.user_by_username(session, name):
            raise click.ClickException(f"user {name!r} already exists")
        created = create_user(session, name, password)
        click.echo(f"created user {created.username} (id {created.id})")


# --- escrow (issue 4): `dcm wallet new|address`, `dcm chain deploy` ---
from dcm.escrow_cli import register as _register_escrow  # noqa: E402

_register_escrow(main)


if __name__ == "__main__":
    main()
