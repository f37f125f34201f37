"""Requester commands: `dcm job submit | watch | result`, and the escrow actions
`dcm job fund | accept | dispute` (the call the node prepares, signed with the keystore
here and sent through the node's /chain/rpc or `--rpc URL`), `dcm job cancel` (the node
cancels and refunds a funded job itself), `dcm job escrow` and `dcm job settlement`.
They use the SDK; keys stay on this machine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dcm.keystore import load_account
from dcm.progress import progress

if TYPE_CHECKING:
    from marketplace.sdk.models import JobMetrics

NODE = click.option(
    "--node",
    "node_url",
    default="http://127.0.0.1:8000",
    show_default=True,
    envvar="DCM_NODE_URL",
    help="The node's base URL.",
)
KEYFILE = click.option(
    "--keyfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The requester wallet (eth-account keystore).",
)
PASSWORD = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the wallet password from stdin (else DCM_WALLET_PASSWORD).",
)


def _client(node_url: str, keyfile: Path, password_stdin: bool) -> tuple[Any, Any]:
    from marketplace.sdk.client import NodeClient

    account = load_account(keyfile, password_stdin)
    client = NodeClient(node_url)
    client.sign_in(account)
    return client, account


def _follow(client: Any, job_id: str | int, until: set[str]) -> Any:
    """Print the job's events until its status is in `until`. On a terminal, training
    progress (the job's percent, from its epoch reports) is a bar with an ETA instead of
    one line per epoch."""
    import time

    seen = 0
    with progress("training", 100) as bar:
        while True:
            detail = client.job(job_id)
            for event in detail.events[seen:]:
                if event.type == "log" or (event.type == "progress" and bar.shown):
                    continue
                click.echo(_event_line(event))
            seen = len(detail.events)
            bar.update(detail.progress or 0)
            if detail.status in until:
                return detail
            time.sleep(0.5)


@click.group()
def job() -> None:
    """Submit, fund, follow and collect jobs as a requester."""


@job.command("submit")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", default="yolov8n", show_default=True)
@click.option("--epochs", default=3, show_default=True, type=int)
@click.option("--imgsz", default=640, show_default=True, type=int)
@click.option("--classes", required=True, help="Comma-separated class names, e.g. cat,dog.")
@click.option("--reward", required=True, help="Reward in ETH, e.g. 0.01.")
@click.option("--export-format", default="onnx", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download the result here when the job is done.",
)
@click.option("--no-wait", is_flag=True, help="Return after funding.")
@NODE
@KEYFILE
@PASSWORD
def submit(
    dataset_dir: Path,
    model: str,
    epochs: int,
    imgsz: int,
    classes: str,
    reward: str,
    export_format: str,
    out: Path | None,
    no_wait: bool,
    node_url: str,
    keyfile: Path,
    password_stdin: bool,
) -> None:
    """Upload DATASET_DIR as a training job, fund its escrow, follow it, fetch the model.

    Nothing is left half-done: a wallet that cannot pay the reward is refused before the
    upload, and a job whose funding fails is cancelled before the error is reported."""
    from marketplace.errors import ChainError, MarketplaceError
    from marketplace.money import parse_eth, wei_to_eth

    reward_wei = parse_eth(reward)
    client, account = _client(node_url, keyfile, password_stdin)
    balance = int(client.rpc("eth_getBalance", [account.address, "latest"]), 16)
    if balance <= reward_wei:
        raise ChainError(
            f"wallet {account.address} holds {wei_to_eth(balance)} ETH, not enough for a "
            f"{wei_to_eth(reward_wei)} ETH reward plus gas; nothing was submitted"
        )
    names = [c.strip() for c in classes.split(",") if c.strip()]
    with progress("uploading") as bar:
        created = client.upload_dataset_job(
            dataset_dir,
            model=model,
            epochs=epochs,
            imgsz=imgsz,
            classes=names,
            reward=reward,
            requester_address=account.address,
            export_format=export_format,
            on_progress=bar.update,
        )
    job_id = created.number
    click.echo(f"job {job_id}: dataset {created.folder_cid}")
    if created.status == "awaiting_funding":
        try:
            receipt = client.fund(job_id, account)
        except MarketplaceError as exc:
            client.cancel(job_id, account)
            raise ChainError(
                f"funding job {job_id} failed ({exc.message}); the job was cancelled"
            ) from exc
        click.echo(f"funding {reward} ETH: tx {receipt.transaction_hash}")
    if no_wait:
        return
    detail = _follow(client, job_id, {"submitted", "completed", "failed", "cancelled", "expired"})
    click.echo(f"job {job_id} is {detail.status}")
    if out is not None and detail.result_cid:
        with progress("downloading") as bar:
            client.download_result(job_id, out, on_progress=bar.update)
        click.echo(f"result {detail.result_cid} downloaded to {out}")
    if detail.status in ("failed", "cancelled", "expired"):
        raise SystemExit(1)


@job.command("watch")
@click.argument("job_id")
@NODE
@KEYFILE
@PASSWORD
def watch(job_id: str, node_url: str, keyfile: Path, password_stdin: bool) -> None:
    """Follow a job's events live until it ends (the node's event stream, resumed after
    a dropped connection or a node restart without losing or repeating one)."""
    client, _ = _client(node_url, keyfile, password_stdin)
    for event in client.events(job_id):
        click.echo(_event_line(event))
    click.echo(f"job {job_id} is {client.job(job_id).status}")


def _event_line(event: Any) -> str:
    """`HH:MM:SS type message` for an SDK `Event`."""
    stamp = event.created_at.strftime("%H:%M:%S") if event.created_at else ""
    return f"{stamp} {event.type:<12} {event.message or ''}"


@job.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option("--tail", type=int, default=None, help="Start from the last N lines.")
@NODE
@KEYFILE
@PASSWORD
def logs(
    job_id: str,
    follow: bool,
    tail: int | None,
    node_url: str,
    keyfile: Path,
    password_stdin: bool,
) -> None:
    """Print a job's log lines (`--follow`: live, resuming by itself)."""
    client, _ = _client(node_url, keyfile, password_stdin)
    for line in client.logs(job_id, follow=follow, tail=tail):
        stream = f"[{line.stream}] " if line.stream else ""
        level = "" if line.level == "info" else f"{line.level.upper()} "
        click.echo(f"{stream}{level}{line.message or ''}")


@job.command("metrics")
@click.argument("job_id")
@click.option("--period", default="1h", show_default=True, help="The window: 1h, 6h, 24h, 7d.")
@click.option("--resolution", default="1m", show_default=True, help="One point per: 1m, 5m, 1h.")
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@NODE
@KEYFILE
@PASSWORD
def metrics(
    job_id: str,
    period: str,
    resolution: str,
    as_json: bool,
    node_url: str,
    keyfile: Path,
    password_stdin: bool,
) -> None:
    """Print a job's resource use (CPU, memory, network, GPU) per bucket and its training
    metrics per epoch."""
    client, _ = _client(node_url, keyfile, password_stdin)
    data = client.metrics(job_id, period=period, resolution=resolution)
    if as_json:
        click.echo(data.model_dump_json(indent=2))
        return
    for line in metrics_lines(data):
        click.echo(line)


def metrics_lines(data: JobMetrics) -> list[str]:
    """One line per bucket (time, CPU millicores, memory MiB, network KiB in/out, GPU %),
    then one per training epoch."""
    rows: dict[dt.datetime, dict[str, float]] = {}
    columns = {
        "cpu_m": data.cpu,
        "mem_MiB": data.memory,
        "rx_KiB": data.network.rx,
        "tx_KiB": data.network.tx,
        "gpu_%": data.gpu.utilization,
    }
    scale = {"mem_MiB": 1 / 2**20, "rx_KiB": 1 / 1024, "tx_KiB": 1 / 1024}
    for name, points in columns.items():
        for point in points:
            rows.setdefault(point.timestamp, {})[name] = point.value * scale.get(name, 1)
    out = [f"{data.period} at {data.resolution}, {_iso(data.start)} .. {_iso(data.end)}"]
    if rows:
        out.append("time      " + " ".join(f"{n:>9}" for n in columns))
        for stamp in sorted(rows):
            cells = (rows[stamp].get(n) for n in columns)
            out.append(
                f"{stamp:%H:%M:%S} "
                + " ".join("        -" if v is None else f"{v:9.1f}" for v in cells)
            )
    for epoch in data.training:
        shown = sorted((k, v) for k, v in epoch.metrics.items() if v is not None)
        values = " ".join(f"{k}={v:.4g}" for k, v in shown)
        out.append(f"epoch {epoch.epoch}: {values}")
    return out


def _iso(at: dt.datetime | None) -> str:
    return at.isoformat().replace("+00:00", "Z") if at is not None else "-"


@job.command("result")
@click.argument("job_id")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@NODE
@KEYFILE
@PASSWORD
def result(job_id: str, out: Path, node_url: str, keyfile: Path, password_stdin: bool) -> None:
    """Download a job's result directory, verified against its CID."""
    client, _ = _client(node_url, keyfile, password_stdin)
    with progress("downloading") as bar:
        client.download_result(job_id, out, on_progress=bar.update)
    click.echo(f"result {client.job(job_id).result_cid} downloaded to {out}")


RPC = click.option(
    "--rpc",
    "rpc_url",
    default=None,
    help="Send the transaction through this JSON-RPC URL instead of the node's /chain/rpc.",
)


def _escrow_action(
    action: str,
    job_id: str,
    node_url: str,
    keyfile: Path,
    password_stdin: bool,
    rpc_url: str | None,
) -> None:
    from marketplace.errors import MarketplaceError

    client, account = _client(node_url, keyfile, password_stdin)
    with client:
        try:
            receipt = getattr(client, action)(job_id, account, rpc_url=rpc_url)
        except MarketplaceError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    if "transactionHash" in receipt:
        click.echo(
            f"{action}: tx {receipt['transactionHash']} mined in block "
            f"{int(receipt['blockNumber'], 16)} from {account.address}"
        )
    else:  # a job still awaiting funding is cancelled by the node itself
        click.echo(f"{action}: job is {receipt.get('status', receipt)}")


@job.command("fund")
@click.argument("job_id")
@NODE
@KEYFILE
@PASSWORD
@RPC
def fund(
    job_id: str, node_url: str, keyfile: Path, password_stdin: bool, rpc_url: str | None
) -> None:
    """Deposit JOB_ID's reward into the escrow from the keystore's wallet."""
    _escrow_action("fund", job_id, node_url, keyfile, password_stdin, rpc_url)


@job.command("accept")
@click.argument("job_id")
@NODE
@KEYFILE
@PASSWORD
@RPC
def accept(
    job_id: str, node_url: str, keyfile: Path, password_stdin: bool, rpc_url: str | None
) -> None:
    """Accept JOB_ID's submitted result on chain (pays the provider now)."""
    _escrow_action("accept", job_id, node_url, keyfile, password_stdin, rpc_url)


@job.command("cancel")
@click.argument("job_id")
@NODE
@KEYFILE
@PASSWORD
@RPC
def cancel(
    job_id: str, node_url: str, keyfile: Path, password_stdin: bool, rpc_url: str | None
) -> None:
    """Cancel JOB_ID; the node returns a funded job's deposit to the requester's wallet."""
    _escrow_action("cancel", job_id, node_url, keyfile, password_stdin, rpc_url)


@job.command("dispute")
@click.argument("job_id")
@NODE
@KEYFILE
@PASSWORD
@RPC
def dispute(
    job_id: str, node_url: str, keyfile: Path, password_stdin: bool, rpc_url: str | None
) -> None:
    """Dispute JOB_ID's submitted result on chain, within its challenge window: the
    arbiter rules (`dcm chain resolve`); if it does not, the requester is refunded."""
    _escrow_action("dispute", job_id, node_url, keyfile, password_stdin, rpc_url)


@job.command("escrow")
@click.argument("job_id")
@NODE
def escrow(job_id: str, node_url: str) -> None:
    """Print what the chain holds for JOB_ID (JSON; needs no wallet): key, status, amount,
    binding, and a result that exists only on chain with who submitted it."""
    from marketplace.errors import MarketplaceError
    from marketplace.sdk.client import NodeClient

    with NodeClient(node_url) as client:
        try:
            click.echo(client.escrow(job_id).model_dump_json(indent=2))
        except MarketplaceError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc


@job.command("settlement")
@click.argument("job_id")
@NODE
def settlement(job_id: str, node_url: str) -> None:
    """Print how JOB_ID's escrow was settled (JSON; needs no wallet)."""
    from marketplace.errors import MarketplaceError
    from marketplace.sdk.client import NodeClient

    with NodeClient(node_url) as client:
        try:
            click.echo(client.settlement(job_id).model_dump_json(indent=2))
        except MarketplaceError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc
