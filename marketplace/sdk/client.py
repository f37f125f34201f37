"""The requester's SDK: sign in, upload a dataset job, fund it, follow it, fetch the result.

    client = NodeClient("http://127.0.0.1:8000")
    client.sign_in(account)                     # SIWE with a local key (or .login(user, pw))
    job = client.upload_dataset_job(Path("ds"), model="yolov8n", epochs=3, imgsz=64,
                                    classes=["cat", "dog"], reward="0.01")
    client.fund(job["id"], account)             # signs the escrow call locally, sends it
    for event in client.watch(job["id"]): ...
    client.download_result(job["id"], Path("out"))

Keys never leave the process: funding transactions are signed here and sent as raw
transactions through the node's chain endpoint (or any RPC URL): `fund`, `accept`,
`cancel` (on chain for a funded job), `settlement`, `payouts`.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from marketplace.errors import ChainError, UpstreamUnavailable, ValidationFailed
from marketplace.sdk.http import raise_for_error, siwe_payload

TERMINAL = {"completed", "cancelled", "failed", "expired"}


class NodeClient:
    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self._headers(), **kw.pop("headers", {})}
        try:
            resp = self.http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"{method} {path}: {exc!r}") from exc
        return raise_for_error(resp)

    # -- auth --------------------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        body = {"username": username, "password": password}
        self.token = self.request("POST", "/auth/login", json=body).json()["access_token"]

    def sign_in(self, account: Any) -> str:
        nonce = self.request("GET", "/auth/nonce").json()
        body = siwe_payload(nonce, account, "Sign in to the dcm node.")
        self.token = self.request("POST", "/auth/siwe", json=body).json()["access_token"]
        return account.address

    # -- jobs --------------------------------------------------------------------------

    def upload_dataset_job(
        self,
        dataset_dir: Path,
        *,
        model: str,
        epochs: int,
        imgsz: int | str,
        classes: list[str],
        reward: str,
        requester_address: str,
        export_format: str = "onnx",
        folder_name: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Zip `dataset_dir` and post it to the seed 000 upload route; returns the job."""
        archive = _zip_directory(dataset_dir)
        total = archive.seek(0, io.SEEK_END)
        archive.seek(0)
        fields = {
            "folderName": folder_name or dataset_dir.name,
            "model": model,
            "epochs": str(epochs),
            "imgsz": str(imgsz),
            "exportFormat": export_format,
            "numClasses": str(len(classes)),
            "classes": json.dumps(classes),
            "reward": reward,
            "requesterAddress": requester_address,
        }
        upload = _ProgressReader(archive, total, on_progress)
        files = {"files": (f"{dataset_dir.name}.zip", upload, "application/zip")}
        try:
            resp = self.request(
                "POST", "/jobs/image_processing/upload", data=fields, files=files, timeout=None
            )
        finally:
            archive.close()
        if on_progress:
            on_progress(total, total)
        return resp.json()["job"]

    def job(self, job_id: str | int) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{_job_ref(job_id)}").json()["data"]

    def funding(self, job_id: str | int) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{_job_ref(job_id)}/funding").json()["data"]

    # -- escrow: calls signed here, sent as raw transactions ---------------------------

    def fund(self, job_id: str | int, account: Any, rpc_url: str | None = None) -> dict[str, Any]:
        """Deposit the job's reward from `account` (the job's requester): ask the node for
        the funding call (signing in with `account` if not signed in), sign it locally,
        send it through `<node>/chain/rpc` (or `rpc_url`), and return the mined receipt.
        The node opens the job once its watcher sees the deposit."""
        self._ensure_signed_in(account)
        return self.send_call(self.funding(job_id), account, rpc_url=rpc_url)

    def accept(self, job_id: str | int, account: Any, rpc_url: str | None = None) -> dict[str, Any]:
        """Accept the submitted result on chain (pays the provider at once)."""
        self._ensure_signed_in(account)
        call = self.request("GET", f"/v1/jobs/{_job_ref(job_id)}/accept-call").json()["data"]
        return self.send_call(call, account, rpc_url=rpc_url)

    def cancel(self, job_id: str | int, account: Any, rpc_url: str | None = None) -> dict[str, Any]:
        """Cancel a job. One awaiting funding is cancelled by the node; a funded one that no
        provider is bound to is cancelled on chain from `account` (the escrow refunds the
        deposit; the node marks the job cancelled when it sees the refund)."""
        self._ensure_signed_in(account)
        ref = _job_ref(job_id)
        job = self.job(ref)
        if job["status"] == "awaiting_funding":
            if job.get("workspaceId") is None:
                raise ValidationFailed("an unfunded job outside a workspace just expires")
            path = f"/workspace/{job['workspaceId']}/jobs/{ref}/cancel"
            return self.request("POST", path).json()
        call = self.request("GET", f"/v1/jobs/{ref}/cancel-call").json()["data"]
        return self.send_call(call, account, rpc_url=rpc_url)

    def settlement(self, job_id: str | int) -> dict[str, Any]:
        """How the job's escrow was settled: amount, recipient, fee, tx hash, block."""
        return self.request("GET", f"/v1/jobs/{_job_ref(job_id)}/settlement").json()["data"]

    def payouts(
        self, *, provider: str | None = None, requester: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if provider:
            params["provider"] = provider
        if requester:
            params["requester"] = requester
        return self.request("GET", "/v1/payouts", params=params).json()["data"]

    def _ensure_signed_in(self, account: Any) -> None:
        if self.token is None:
            self.sign_in(account)

    def rpc(self, method: str, params: list[Any], rpc_url: str | None = None) -> Any:
        """One JSON-RPC call to `rpc_url`, or to the node's `/chain/rpc`."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            if rpc_url is None:
                resp = self.http.post("/chain/rpc", json=body)
            else:
                resp = httpx.post(rpc_url, json=body, timeout=self.http.timeout)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"{method}: {exc!r}") from exc
        raise_for_error(resp)
        reply = resp.json()
        if "error" in reply:
            err = reply["error"]
            raise ChainError(f"{method}: {err.get('message')}", details=err.get("data"))
        return reply["result"]

    def send_call(
        self,
        call: dict[str, Any],
        account: Any,
        *,
        rpc_url: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Sign a `{chain_id, to, data, value}` call with `account` and send it; wait for
        the receipt (ChainError if it reverted)."""
        chain_id = int(self.rpc("eth_chainId", [], rpc_url), 16)
        if chain_id != int(call["chain_id"]):
            raise ChainError(f"the RPC serves chain {chain_id}, the call is for {call['chain_id']}")
        tx: dict[str, Any] = {
            "from": account.address,
            "to": call["to"],
            "data": call["data"],
            "value": hex(int(call["value"])),
        }
        gas = int(self.rpc("eth_estimateGas", [tx], rpc_url), 16)
        head = self.rpc("eth_getBlockByNumber", ["latest", False], rpc_url)
        base = int(head["baseFeePerGas"], 16)
        priority = int(self.rpc("eth_maxPriorityFeePerGas", [], rpc_url), 16)
        count = self.rpc("eth_getTransactionCount", [account.address, "pending"], rpc_url)
        nonce = int(count, 16)
        signed = account.sign_transaction(
            {
                "to": call["to"],
                "data": call["data"],
                "value": int(call["value"]),
                "chainId": chain_id,
                "gas": gas * 12 // 10,
                "nonce": nonce,
                "maxFeePerGas": 2 * base + priority,
                "maxPriorityFeePerGas": priority,
            }
        )
        raw = "0x" + bytes(signed.raw_transaction).hex()
        tx_hash = self.rpc("eth_sendRawTransaction", [raw], rpc_url)
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash], rpc_url)
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise UpstreamUnavailable(f"no receipt for {tx_hash} after {timeout}s")
            time.sleep(0.1)
        if int(receipt["status"], 16) != 1:
            raise ChainError(f"transaction {tx_hash} reverted", details={"tx_hash": tx_hash})
        return receipt

    def watch(
        self, job_id: str | int, *, poll_seconds: float = 0.5, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield each new event of the job until it reaches a terminal state."""
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            events = job.get("events") or []
            yield from events[seen:]
            seen = len(events)
            if job["status"] in TERMINAL:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(poll_seconds)

    def wait_for(
        self,
        job_id: str | int,
        statuses: set[str],
        *,
        timeout: float = 600,
        poll_seconds: float = 0.5,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(poll_seconds)

    # -- content -----------------------------------------------------------------------

    def cat(self, cid: str) -> bytes:
        return self.request("POST", "/api/v0/cat", params={"arg": cid}).content

    def ls(self, cid: str) -> list[dict[str, Any]]:
        body = self.request("POST", "/api/v0/ls", params={"arg": cid}).json()
        return body["Objects"][0]["Links"]

    def download_directory(self, cid: str, out: Path) -> Path:
        """Fetch a UnixFS directory into `out`, file by file, and check it re-adds to `cid`."""
        from marketplace.content.importer import import_path

        out.mkdir(parents=True, exist_ok=True)
        self._download_into(cid, out)
        actual = str(import_path(out).cid)
        if actual != cid:
            from marketplace.errors import ValidationFailed

            raise ValidationFailed(f"downloaded tree is {actual}, expected {cid}")
        return out

    def _download_into(self, cid: str, out: Path) -> None:
        for link in self.ls(cid):
            name = link["Name"]
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"unsafe name in directory {cid}: {name!r}")
            target = out / name
            if link.get("Type") == 1:
                target.mkdir(exist_ok=True)
                self._download_into(link["Hash"], target)
            else:
                with self.http.stream(
                    "POST",
                    "/api/v0/cat",
                    params={"arg": link["Hash"]},
                    headers=self._headers(),
                    timeout=None,
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise_for_error(resp)
                    with open(target, "wb") as fh:
                        for chunk in resp.iter_bytes(1 << 20):
                            fh.write(chunk)


def _job_ref(job_id: str | int) -> str:
    return job_id if isinstance(job_id, str) and job_id.startswith("job_") else f"job_{job_id}"


def _zip_directory(root: Path) -> IO[bytes]:
    """Zip a dataset into an anonymous temp file (never in memory)."""
    fh = tempfile.TemporaryFile()  # noqa: SIM115 (returned open; the caller closes it)
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    return fh


class _ProgressReader:
    """A file wrapper that reports how much of it has been read (upload progress)."""

    def __init__(
        self, fh: IO[bytes], total: int, on_progress: Callable[[int, int], None] | None
    ) -> None:
        self.fh, self.total, self.on_progress = fh, total, on_progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.fh.read(size)
        if self.on_progress:
            self.on_progress(self.fh.tell(), self.total)
        return chunk
