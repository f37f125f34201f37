"""The provider's view of the node: every HTTP call the daemon makes, in one class.

Transport errors and 5xx raise `UpstreamUnavailable` (the loop backs off and retries);
4xx raise the domain error the node described (the loop treats them as final for that
call: a 409 on a job write means the lease is gone). Answers are validated with the
node's own wire models (`marketplace.leases`), never read as loose dicts.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from marketplace.errors import NotFound, PayloadTooLarge, UpstreamUnavailable
from marketplace.leases import Claim, JobOutcome, Lease
from marketplace.sdk.http import TRANSFER_TIMEOUT, raise_for_error, siwe_payload


class NodeAPI:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            resp = await self.http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"{method} {path}: {exc!r}") from exc
        return raise_for_error(resp)

    async def sign_in(self, account: Any) -> str:
        """SIWE sign-in with the provider's wallet; returns the checksummed address."""
        nonce = (await self._call("GET", "/auth/nonce")).json()
        body = siwe_payload(nonce, account, "Sign in to the dcm node as a compute provider.")
        tokens = (await self._call("POST", "/auth/siwe", json=body)).json()
        self._token = tokens["access_token"]
        return account.address

    async def chain_info(self) -> dict[str, Any] | None:
        try:
            return (await self._call("GET", "/chain/info")).json()
        except NotFound:
            return None

    async def register(self, registration: dict[str, Any]) -> dict[str, Any]:
        return (await self._call("POST", "/v1/providers", json=registration)).json()["data"]

    async def claim(
        self,
        wait_seconds: float,
        job_types: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> Claim | None:
        body: dict[str, Any] = {"wait_seconds": wait_seconds, "job_types": job_types}
        if exclude:
            body["exclude_job_ids"] = exclude
        resp = await self._call("POST", "/v1/providers/claim", json=body, timeout=wait_seconds + 30)
        return None if resp.status_code == 204 else Claim.model_validate(resp.json()["data"])

    async def end_claims(self) -> None:
        """Ask the node to end this provider's open claim long-polls (draining)."""
        await self._call("POST", "/v1/providers/claim/end")

    async def job_write(
        self, job_id: str, action: str, attempt: int, **body: Any
    ) -> dict[str, Any]:
        resp = await self._call(
            "POST", f"/v1/jobs/{job_id}/{action}", json={"attempt": attempt, **body}
        )
        return resp.json()["data"]

    async def renew(self, job_id: str, attempt: int, action: str = "heartbeat") -> Lease:
        """`heartbeat` (or `start`): extend the lease; 409 when it is no longer ours."""
        return Lease.model_validate(await self.job_write(job_id, action, attempt))

    async def report_result(self, job_id: str, attempt: int, **body: Any) -> JobOutcome:
        return JobOutcome.model_validate(await self.job_write(job_id, "result", attempt, **body))

    async def download_car(self, cid: str, dest: Path, *, max_bytes: int) -> Path:
        """Stream the DAG under `cid` as a CAR (`/api/v0/dag/export`) to `dest`, at most
        `max_bytes` of it (PayloadTooLarge past that)."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            async with self.http.stream(
                "POST",
                "/api/v0/dag/export",
                params={"arg": cid},
                headers=headers,
                timeout=TRANSFER_TIMEOUT,
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise_for_error(resp)
                tmp = dest.with_suffix(".part")
                received = 0
                with open(tmp, "wb") as fh:
                    async for chunk in resp.aiter_bytes(1 << 20):
                        received += len(chunk)
                        if received > max_bytes:
                            raise PayloadTooLarge(f"the CAR of {cid} is over {max_bytes} bytes")
                        fh.write(chunk)
                os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"dataset download: {exc!r}") from exc
        return dest

    async def add_directory(self, root: Path) -> str:
        """Upload a directory through the node's Kubo-compatible `add`; return its CID."""
        with contextlib.ExitStack() as stack:
            resp = await self._call(
                "POST",
                "/api/v0/add",
                params={"pin": "true", "cid-version": "0", "wrap-with-directory": "false"},
                files=list(_directory_parts(root, stack)),
                timeout=TRANSFER_TIMEOUT,
            )
        lines = [ln for ln in resp.text.splitlines() if ln.strip()]
        entries = [json.loads(ln) for ln in lines]
        top = [e for e in entries if e.get("Name") == root.name]
        return (top or entries)[-1]["Hash"]


def _directory_parts(
    root: Path, stack: contextlib.ExitStack
) -> Iterator[tuple[str, tuple[str, Any, str]]]:
    """Multipart parts as Kubo's clients send a directory: one per folder and file, names
    relative to the parent of `root`, URL-escaped slashes."""
    from urllib.parse import quote

    yield ("file", (quote(root.name, safe=""), b"", "application/x-directory"))
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root.parent).as_posix()
        name = quote(rel, safe="")
        if path.is_dir():
            yield ("file", (name, b"", "application/x-directory"))
        else:
            handle = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (closed by the stack)
            yield ("file", (name, handle, "application/octet-stream"))
