"""`dcm`: one CLI for the node, providers and requesters."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dcm.keystore import load_account


def user_error_line(exc: BaseException) -> str:
    """The one line a failed command prints: what went wrong, in the user's terms. The
    domain's errors carry their own words (and a stable code); transport failures say
    which node could not be reached; anything else names its type."""
    import httpx

    from marketplace.errors import MarketplaceError

    if isinstance(exc, MarketplaceError):
        return f"{exc.message} ({exc.code})"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"invalid node URL: {exc}; give it with its scheme, e.g. http://127.0.0.1:8000"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach the node: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'failed'}"


class DcmGroup(click.Group):
    """The top-level group: one error handler for every command. An error the user can
    cause is one line on stderr and exit code 1, never a traceback (DCM_DEBUG=1 shows
    the traceback too)."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None
        except Exception as exc:
            if os.environ.get("DCM_DEBUG") == "1":
                raise
            click.echo(f"error: {user_error_line(exc)}", err=True)
            raise SystemExit(1) from None


@click.group(cls=DcmGroup)
@click.version_option(package_name="dcm", prog_name="dcm", message="%(prog)s %(version)s")
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
    import gc

    import uvicorn

    from node.app import create_app
    from node.config import NodeSettings
    from node.schema import SchemaOutOfDate
    from node.server import server_config

    overrides: dict[str, Any] = {"data_dir": data_dir} if data_dir else {}
    overrides.update(_advertised_url(host, port))
    settings = NodeSettings(**overrides)
    from marketplace.logcontext import configure_logging

    configure_logging(settings.log_level)  # JSON lines: request id, job id and attempt
    try:
        app = create_app(settings)
    except SchemaOutOfDate as exc:
        raise click.ClickException(str(exc)) from None
    server = uvicorn.Server(server_config(app, host, port))
    stop = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        # uvicorn waits for open requests before the app's shutdown runs: end the claim
        # long-polls first, so a stop never waits for a provider's wait to run out
        app.state.runtime.end_long_polls()
        stop(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]
    startup = server.startup

    async def announced_startup(sockets: Any = None) -> None:
        await startup(sockets=sockets)
        # The app's ~250,000 long-lived objects (routes, models, the chain's contracts)
        # leave the collector's generations: a full collection otherwise walks them all,
        # and request garbage triggered one every few hundred requests (a third of a
        # list request's time went to the collector).
        gc.collect()
        gc.freeze()
        if server.started:  # bound and serving: say where (a failed bind says why instead)
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"dcm node listening on http://{shown}:{port} (data in {settings.data_dir})")

    server.startup = announced_startup  # type: ignore[method-assign]
    server.run()


@main.group()
def db() -> None:
    """The node's database schema."""


@db.command("upgrade")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DCM_DATA_DIR")
def db_upgrade(data_dir: str | None) -> None:
    """Bring the database to the newest schema (run before `dcm serve`, once per release)."""
    from node.config import NodeSettings
    from node.db import make_engine
    from node.schema import schema_revisions, upgrade_schema

    settings = NodeSettings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        upgrade_schema(engine)
        current, _ = schema_revisions(engine)
    finally:
        engine.dispose()
    click.echo(f"database schema at {', '.join(sorted(current))}")


def _advertised_url(host: str, port: int) -> dict[str, Any]:
    """Where clients reach this node when DCM_PUBLIC_URL does not say: the address it
    listens on (SIWE domain, the embedded chain's RPC URL). Listening on every interface,
    each request's own host is advertised (loopback for SIWE)."""
    import os

    if os.environ.get("DCM_PUBLIC_URL"):
        return {}
    wildcard = host in ("0.0.0.0", "::", "")
    shown = "127.0.0.1" if wildcard else (f"[{host}]" if ":" in host else host)
    return {"public_url": f"http://{shown}:{port}", "public_url_from_request": wildcard}


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
    from node.db import make_engine, make_sessionmaker, session_scope
    from node.schema import upgrade_schema

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


def _bearer(node_url: str, token: str | None, keyfile: Path | None, password_stdin: bool) -> str:
    """The credential for a node's content writes: `--token` (an access token or a dcm_
    API key), else a wallet sign-in with `--keyfile`."""
    if token:
        return token
    if keyfile is None:
        raise click.UsageError(
            "writing to a node needs credentials: --token (access token or API key, "
            "or DCM_TOKEN) or --keyfile (wallet sign-in)"
        )
    from marketplace.sdk.client import NodeClient

    account = load_account(keyfile, password_stdin)
    with NodeClient(node_url) as client:
        client.sign_in(account)
        assert client.token is not None
        return client.token


@ipfs.command("add")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_NODE
@_cid_options
@click.option("--pin/--no-pin", default=True, show_default=True)
@click.option("--hidden", is_flag=True, help="Include dot files.")
@click.option(
    "--token",
    envvar="DCM_TOKEN",
    help="Bearer credential: an access token or a dcm_ API key (role owner, member or provider).",
)
@click.option(
    "--keyfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sign in with this wallet (eth-account keystore) instead of --token.",
)
@click.option("--password-stdin", is_flag=True, help="Read the wallet password from stdin.")
def ipfs_add(
    path: Path,
    node_url: str,
    cid_version: str,
    raw_leaves: bool | None,
    pin: bool,
    hidden: bool,
    token: str | None,
    keyfile: Path | None,
    password_stdin: bool,
) -> None:
    """Add PATH to the node; the node's answer must equal the locally computed CID."""
    from marketplace.errors import MarketplaceError
    from node.content.kubo import KuboStore

    try:
        bearer = _bearer(node_url, token, keyfile, password_stdin)
    except MarketplaceError as exc:
        raise click.ClickException(f"sign-in failed: {exc.code}: {exc.message}") from exc
    from dcm.progress import progress

    added: list[str] = []
    store = KuboStore(node_url, bearer=bearer)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    sent = [0]

    def on_sent(n: int) -> None:
        sent[0] += n
        bar.update(sent[0])

    try:
        with progress("adding", total) as bar:
            store.add_path(
                path,
                pin=pin,
                cid_version=int(cid_version),
                raw_leaves=raw_leaves,
                include_hidden=hidden,
                on_entry=lambda rel, cid, size: added.append(f"added {cid} {rel}"),
                on_sent=on_sent,
            )
        for line in added:
            click.echo(line)
    except MarketplaceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        store.close()


@ipfs.command("get")
@click.argument("cid")
@click.argument("out", type=click.Path(path_type=Path))
@_NODE
def ipfs_get(cid: str, out: Path, node_url: str) -> None:
    """Fetch CID (a file or a directory) from the node into OUT as one CAR
    (`dag/export`), verifying every block against its CID as it arrives."""
    from marketplace.sdk.client import NodeClient
    from node.content.kubo import KuboStore

    if out.exists():
        raise click.ClickException(f"{out} already exists")
    root = cid
    if "/" in cid.strip("/"):  # a path: the CID of the node it names
        store = KuboStore(node_url)
        try:
            root = store.resolve(cid)
        finally:
            store.close()
    from dcm.progress import progress

    counted = [0]

    def on_file(done: int, total: int) -> None:
        counted[0] = done
        bar.update(done, total)

    with NodeClient(node_url) as client, progress("fetching") as bar:
        client.download_directory(root, out, on_progress=on_file)
    n = counted[0]
    click.echo(f"fetched {root} ({n} file{'s' if n != 1 else ''}, verified) to {out}")


# -- provider ---------------------------------------------------------------------------


def _pool_keys(given: tuple[str, ...]) -> list[str]:
    """`--api-key` values, then DCM_PROVIDER_API_KEYS (comma-separated), without repeats."""
    import os

    from_env = os.environ.get("DCM_PROVIDER_API_KEYS", "").split(",")
    keys = [k.strip() for k in (*given, *from_env) if k.strip()]
    return list(dict.fromkeys(keys))


def _networks(names: tuple[str, ...]) -> list[str]:
    from marketplace.jobs.networks import InvalidNetwork, network_name

    try:
        return sorted({network_name(n) for n in names})
    except InvalidNetwork as exc:
        raise click.BadParameter(str(exc), param_hint="--pool") from None


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
    "--job-type",
    "job_types",
    multiple=True,
    default=("image_processing",),
    show_default=True,
    help="A job type to serve (repeatable): image_processing (YOLO training), container "
    "(on the Docker engine DOCKER_HOST names). Only those this machine can run are offered.",
)
@click.option("--max-concurrent", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--once", is_flag=True, help="Exit after one job.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="A `provider` API key of a workspace whose private pool to join (repeatable; "
    "also DCM_PROVIDER_API_KEYS, comma-separated). Without one: escrowed jobs only.",
)
@click.option(
    "--metrics-interval",
    "metrics_interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between resource samples of a running job (0: none).",
)
@click.option(
    "--pool",
    "networks",
    multiple=True,
    default=("default",),
    show_default=True,
    help="A provider network this daemon serves (seed 003's `provider` of a job, e.g. "
    "akash; repeatable): it claims only jobs of these networks, and jobs of none. Not the "
    "same as a workspace's private pool (--api-key).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="DCM_PROVIDER_METRICS_PORT",
    help="Serve Prometheus metrics on this port (all interfaces): running jobs, executor "
    "durations, GPU utilization and memory. Unset: none.",
)
def provider_run(
    node_url: str,
    keyfile: Path,
    password_stdin: bool,
    workdir: Path,
    name: str,
    job_types: tuple[str, ...],
    max_concurrent: int,
    once: bool,
    api_keys: tuple[str, ...],
    metrics_interval: float,
    networks: tuple[str, ...],
    metrics_port: int | None,
) -> None:
    """Sign in with the wallet, register this machine's hardware, claim and run jobs.

    The wallet is the provider's identity; each `--api-key` admits it to one workspace's
    private pool (jobs without escrow), checked by the node at registration."""
    import asyncio

    from marketplace.logcontext import configure_logging
    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors import default_executors
    from worker.hardware import detect_hardware

    configure_logging("INFO")  # JSON lines; those about a job carry its id and attempt
    account = load_account(keyfile, password_stdin)
    if metrics_port is not None:
        from worker.metrics import serve_metrics

        serve_metrics(metrics_port)
    config = DaemonConfig(
        node_url=node_url,
        workdir=workdir,
        job_types=list(job_types),
        max_concurrent=max_concurrent,
        name=name,
        run_once=once,
        api_keys=_pool_keys(api_keys),
        metrics_interval_seconds=metrics_interval,
        networks=_networks(networks),
    )

    async def run() -> None:
        async with ProviderDaemon(
            config, account, default_executors(), hardware=detect_hardware
        ) as daemon:
            daemon.install_signal_handlers()
            await daemon.run()

    from marketplace.errors import MarketplaceError

    try:
        asyncio.run(run())
    except MarketplaceError as exc:  # refused at sign-in or registration (e.g. a pool key)
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc


# --- escrow (issue 4): `dcm wallet new|address`, `dcm chain deploy` ---
from dcm.escrow_cli import register as _register_escrow  # noqa: E402

_register_escrow(main)


# -- requester commands and the demo ----------------------------------------------------
from dcm.demo import demo as _demo  # noqa: E402
from dcm.demo import demo_dataset as _demo_dataset  # noqa: E402
from dcm.job_cli import job as _job  # noqa: E402

main.add_command(_job)
main.add_command(_demo)
main.add_command(_demo_dataset)


if __name__ == "__main__":
    main()
