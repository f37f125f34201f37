"""`dcm demo`: the whole marketplace on the embedded defaults, in one process tree.

1. starts a node (`dcm serve`: SQLite, built-in IPFS block store, in-process EVM with the
   escrow contract) on a free loopback port;
2. creates two dev wallets (requester, provider) and funds them from the dev faucet;
3. starts a provider daemon (`dcm provider run`) with the provider's keystore;
4. as the requester: writes a small synthetic shape classification set (circles, squares
   and triangles of random sizes and places: only the outline tells them apart), uploads
   it through the seed 000 route, funds the escrow from the requester's wallet (signed
   locally), follows the job live, accepts the result on chain (which pays the provider)
   and downloads the model;
5. prints a summary, with the validation top-1 accuracy of the first epoch next to the
   last one's, and exits 0, or non-zero with the reason.

The defaults (yolov8n-cls from scratch, 100 training and 30 validation images per class at
64 px, 12 epochs) train in about 35 s on two CPU cores, from a top-1 accuracy of 0.33
(chance) after the first epoch to 0.98 after the last; `tests/e2e/test_demo.py` holds it
to at least 0.9.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx

REWARD = "0.01"
MODEL = "yolov8n-cls"
TRAIN_PER_CLASS = 100
VAL_PER_CLASS = 30
EPOCHS = 12
IMGSZ = 64
METRIC = "top1"  # validation top-1 accuracy, what the demo shows learning with


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._fh = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dcm.cli", *args],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(http: httpx.Client, node: _Process, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.alive():
            raise click.ClickException(f"the node exited:\n{node.tail()}")
        try:
            if http.get("/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise click.ClickException("the node did not become ready")


def _say(step: str, detail: str = "") -> None:
    click.echo(click.style(f"==> {step}", bold=True) + (f" {detail}" if detail else ""))


def run_demo(workdir: Path, epochs: int, imgsz: int, keep: bool) -> dict[str, Any]:
    from eth_account import Account
    from web3 import Web3

    from marketplace.datasets.synthetic import SHAPES, write_shapes_dataset
    from marketplace.money import wei_to_eth
    from marketplace.sdk.client import NodeClient
    from marketplace.sdk.http import tls_context

    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env.update(
        DCM_DATA_DIR=str(workdir / "node"),
        DCM_PUBLIC_URL=url,
        DCM_ENVIRONMENT="development",
        YOLO_VERBOSE="False",
    )
    processes: list[_Process] = []
    # one client for the polls and set-up calls: a bare httpx.get builds a TLS context
    # each time (37 ms of CPU, beside a node importing on the same cores)
    http = httpx.Client(base_url=url, timeout=60, verify=tls_context())
    try:
        _say("starting the node", f"(embedded SQLite, IPFS store and EVM) at {url}")
        subprocess.run(  # the schema first, as on any node: `dcm serve` never migrates
            [sys.executable, "-m", "dcm.cli", "db", "upgrade"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        node = _Process(
            "node", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, workdir / "node.log"
        )
        processes.append(node)
        _wait_ready(http, node)
        info = http.get("/chain/info").json()
        _say("escrow contract", f"{info['escrow_address']} on chain {info['chain_id']}")

        requester, provider = Account.create(), Account.create()
        for who, account, amount in (("requester", requester, "1"), ("provider", provider, "0.1")):
            resp = http.post("/chain/faucet", json={"address": account.address, "amount": amount})
            if resp.status_code != 200:
                raise click.ClickException(f"faucet refused: {resp.text}")
            _say(f"dev wallet for the {who}", f"{account.address} funded with {amount} ETH")

        keyfile = workdir / "provider-key.json"
        keyfile.write_text(json.dumps(Account.encrypt(provider.key, "demo")))
        os.chmod(keyfile, 0o600)
        provider_env = dict(env, DCM_WALLET_PASSWORD="demo")
        _say("starting a provider daemon", "(Ultralytics on this machine's GPUs, else CPU)")
        daemon = _Process(
            "provider",
            [
                "provider",
                "run",
                "--node",
                url,
                "--keyfile",
                str(keyfile),
                "--workdir",
                str(workdir / "provider"),
                "--name",
                "demo-provider",
            ],
            provider_env,
            workdir / "provider.log",
        )
        processes.append(daemon)

        dataset = write_shapes_dataset(
            workdir / "dataset", train=TRAIN_PER_CLASS, val=VAL_PER_CLASS, size=imgsz
        )
        client = NodeClient(url)
        w3 = Web3(Web3.HTTPProvider(url + "/chain/rpc"))
        provider_before = w3.eth.get_balance(provider.address)

        _say("uploading the dataset", "(seed 000 route, pinned as a UnixFS directory)")
        job = client.upload_dataset_job(
            dataset,
            model=MODEL,
            epochs=epochs,
            imgsz=imgsz,
            classes=list(SHAPES),
            reward=REWARD,
            requester_address=requester.address,
            export_format="onnx",
            folder_name="shapes",
        )
        job_id = job.number
        click.echo(f"    job {job_id}: dataset {job.folder_cid}, status {job.status}")

        client.sign_in(requester)
        if job.status == "awaiting_funding":
            _say("funding the escrow", f"with {REWARD} ETH from the requester's wallet")
            funded = client.fund(job_id, requester)
            click.echo(f"    funding tx {funded.transaction_hash}")

        _say("following the job")
        seen = 0
        deadline = time.monotonic() + 600
        while True:
            detail = client.job(job_id)
            for event in detail.events[seen:]:
                if event.type != "log":
                    click.echo(f"    {event.type:<12} {event.message or ''}")
            seen = len(detail.events)
            if detail.status in ("submitted", "completed"):
                break
            if detail.status in ("failed", "cancelled", "expired"):
                raise click.ClickException(f"job {detail.status}: {detail.error}\n{daemon.tail()}")
            if not daemon.alive():
                raise click.ClickException(f"the provider exited:\n{daemon.tail()}")
            if time.monotonic() > deadline:
                raise click.ClickException("the job did not finish in 10 minutes")
            time.sleep(0.5)

        result_cid = detail.result_cid
        if not result_cid:
            raise click.ClickException(f"job {detail.status} without a result CID")
        _say("accepting the result", "(the requester's wallet calls accept: the escrow pays)")
        accepted = client.accept(job_id, requester)  # the node's accept call, signed here
        client.wait_for(job_id, {"completed"}, timeout=60)
        paid = w3.eth.get_balance(provider.address) - provider_before

        out = workdir / "result"
        shutil.rmtree(out, ignore_errors=True)
        client.download_directory(result_cid, out)
        metrics_file = out / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        per_epoch = metrics.get("per_epoch") or [{}]
        first, last = per_epoch[0], per_epoch[-1]
        return {
            "job_id": job_id,
            "dataset_cid": job.folder_cid,
            "result_cid": result_cid,
            "result_dir": str(out),
            "final_metrics": metrics.get("final") or metrics,
            "learned": (
                f"{METRIC} {first.get(METRIC)} after epoch {first.get('epoch')}, "
                f"{last.get(METRIC)} after epoch {last.get('epoch')}"
            ),
            "payout_tx": accepted.transaction_hash,
            "payout_block": accepted.block_number,
            "provider": provider.address,
            "provider_balance_change_eth": wei_to_eth(paid) if paid >= 0 else f"-{-paid}",
        }
    finally:
        http.close()
        for proc in reversed(processes):
            proc.stop()
        if not keep:
            shutil.rmtree(workdir / "node", ignore_errors=True)
            shutil.rmtree(workdir / "provider", ignore_errors=True)


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the node, provider and result live (default: a temp dir).",
)
@click.option("--epochs", default=EPOCHS, show_default=True, type=click.IntRange(1, 100))
@click.option("--imgsz", default=IMGSZ, show_default=True, type=click.IntRange(32, 256))
@click.option("--keep", is_flag=True, help="Keep the node's and provider's data.")
def demo(workdir: Path | None, epochs: int, imgsz: int, keep: bool) -> None:
    """Run a node, a provider and a requester end to end on the embedded defaults."""
    started = time.monotonic()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="dcm-demo-"))
    summary = run_demo(workdir, epochs, imgsz, keep)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    _say("done")
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        click.echo(f"    {key:<{width}}  {value}")


@click.command("demo-dataset")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--imgsz", default=IMGSZ, show_default=True, type=click.IntRange(32, 256))
def demo_dataset(out: Path, imgsz: int) -> None:
    """Write the demo's shape classification set (classes circle, square, triangle) as a zip
    for the seed 000 upload: `train/<shape>/*.png` and `val/<shape>/*.png`."""
    import zipfile

    from marketplace.datasets.synthetic import SHAPES, write_shapes_dataset

    with tempfile.TemporaryDirectory(prefix="dcm-shapes-") as tmp:
        root = write_shapes_dataset(Path(tmp), train=TRAIN_PER_CLASS, val=VAL_PER_CLASS, size=imgsz)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(root).as_posix())
    click.echo(f"{out}: {len(SHAPES)} classes {json.dumps(list(SHAPES))}")
