"""The requester's SDK: sign in, upload a dataset job, fund it, follow it, fetch the result.

    client = NodeClient("http://127.0.0.1:8000")
    client.sign_in(account)                     # SIWE with a local key (or .login(user, pw))
    job = client.upload_dataset_job(Path("ds"), model="yolov8n", epochs=3, imgsz=64,
                                    classes=["cat", "dog"], reward="0.01")
    client.fund(job["id"], account)             # signs the escrow call locally, sends it
    for event in client.watch(job["id"]): ...
    client.download_result(job["id"], Path("out"))

Keys never leave the process: funding transactions are signed here and sent as raw
transactions through the node's chain endpoint (or any RPC URL).
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

from marketplace.errors import UpstreamUnavailable
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
