"""The requester's SDK: sign in, upload a dataset job, fund it, follow it, fetch the result.

    client = NodeClient("http://127.0.0.1:8000")
    client.sign_in(account)                     # SIWE with a local key (or .login(user, pw))
    job = client.upload_dataset_job(Path("ds"), model="yolov8n-cls", epochs=1, imgsz=32,
                                    classes=["circle", "square", "triangle"], reward="0.01",
                                    requester_address=account.address)
    client.fund(job.id, account)                # signs the escrow call locally, sends it
    for event in client.watch(job.id):          # stops once the result is submitted
        print(event.type, event.message or "")
    client.download_result(job.id, Path("out"))      # verified against its CID
    client.accept(job.id, account)              # pays the provider from the escrow
    print(client.settlement(job.id))            # waits for the node to see the payout

Or in one call: `client.submit_and_wait(Path("ds"), account, ..., out=Path("out"))`.
`client.jobs(status="completed")` lists your jobs. (`tests/e2e/test_sdk_docstring.py`
runs the lines above against a node and a provider.)

Results are pydantic models with snake_case attributes whichever dialect the node
answered in (`marketplace.sdk.models`): `Job`, `Event`, `LogLine`, `ChainCall`,
`Receipt`, `Escrow`, `Settlement`, `Link`; `repr` shows what matters in one line. Dict
access (`job["status"]`) still works, deprecated.

Keys never leave the process: escrow transactions are signed here and sent as raw
transactions through the node's chain endpoint (or any RPC URL): `fund`, `accept`,
`dispute`, `cancel_on_chain`, and the arbiter's `resolve`; `cancel` asks the node (which
refunds a funded job itself); reads: `escrow`, `settlement`, `payouts`.
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

from marketplace.errors import (
    ChainError,
    JobNotFound,
    MarketplaceError,
    NotFound,
    UpstreamUnavailable,
    ValidationFailed,
)
from marketplace.sdk.events import JobStreams
from marketplace.sdk.http import TRANSFER_TIMEOUT, raise_for_error, siwe_payload, tls_context
from marketplace.sdk.models import (
    ChainCall,
    Escrow,
    Event,
    Job,
    JobMetrics,
    Link,
    Receipt,
    Settlement,
)

__all__ = ["NodeClient", "Job", "TERMINAL"]

TERMINAL = {"completed", "cancelled", "failed", "expired"}
# Where `watch` stops by default: a result to look at (or a final state).
SETTLED_OR_SUBMITTED = TERMINAL | {"submitted", "disputed"}


class NodeClient(JobStreams):
    def __init__(self, base_url: str, *, timeout: float = 60.0, token: str | None = None) -> None:
        """`token`: a bearer credential to start with (an access token or a dcm_ API key);
        `login` and `sign_in` replace it. It goes with every request, the content reads
        and writes of `/api/v0` included."""
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=tls_context())
        # the pooled client of outside JSON-RPC URLs (`rpc_url=`), made at the first such
        # call: a transaction costs five calls or more, each of which would otherwise open
        # a new connection
        self._rpc_http: httpx.Client | None = None
        if not self.base_url.startswith(("http://", "https://")):
            raise ValidationFailed(
                f"node URL {base_url!r} needs its scheme, e.g. http://127.0.0.1:8000"
            )
        self.token: str | None = token
        self.address: str | None = None  # the wallet signed in with, if any

    def __repr__(self) -> str:
        who = self.address or ("a token" if self.token else "nobody")
        return f"NodeClient({self.base_url!r}, signed in as {who})"

    def close(self) -> None:
        self.http.close()
        if self._rpc_http is not None:
            self._rpc_http.close()
            self._rpc_http = None

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
            raise self._unreachable(exc) from exc
        return raise_for_error(resp)

    def _unreachable(self, exc: httpx.TransportError) -> MarketplaceError:
        """A transport failure in the words a user acts on: a URL without its scheme, or
        a node that does not answer (retryable)."""
        if isinstance(exc, httpx.UnsupportedProtocol):
            return ValidationFailed(
                f"node URL {self.base_url!r} needs its scheme, e.g. http://127.0.0.1:8000"
            )
        return UpstreamUnavailable(f"cannot reach the node at {self.base_url}: {exc}")

    # -- auth --------------------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        body = {"username": username, "password": password}
        self.token = self.request("POST", "/auth/login", json=body).json()["access_token"]

    def sign_in(self, account: Any) -> str:
        nonce = self.request("GET", "/auth/nonce").json()
        body = siwe_payload(nonce, account, "Sign in to the dcm node.")
        self.token = self.request("POST", "/auth/siwe", json=body).json()["access_token"]
        self.address = account.address
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
    ) -> Job:
        """Zip `dataset_dir` and post it to the seed 000 upload route; returns the job
        (with the `funding` call to sign while it awaits its deposit)."""
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
                "POST",
                "/jobs/image_processing/upload",
                data=fields,
                files=files,
                timeout=TRANSFER_TIMEOUT,
            )
        finally:
            archive.close()
        if on_progress:
            on_progress(total, total)
        return Job.model_validate(resp.json()["job"])

    def job(self, job_id: str | int) -> Job:
        """The job with its events (`job.events`) and result."""
        data = self.request("GET", f"/v1/jobs/{_job_ref(job_id)}").json()["data"]
        return Job.model_validate(data)

    def metrics(self, job_id: str | int, period: str = "1h", resolution: str = "1m") -> JobMetrics:
        """The job's resource series over the last `period` (of its run, once it ended),
        one point per `resolution` bucket, and its per-epoch training metrics: `cpu`,
        `memory`, `network.rx/tx`, `gpu.utilization/memory` as lists of `MetricPoint`,
        `training` as `TrainingEpoch`s. Spans are `<n>s|m|h|d` (`1h`, `5m`, `7d`)."""
        params = {"period": period, "resolution": resolution}
        path = f"/v1/jobs/{_job_ref(job_id)}/metrics"
        return JobMetrics.model_validate(self.request("GET", path, params=params).json()["data"])

    def jobs(
        self,
        *,
        status: str | list[str] | None = None,
        type: str | list[str] | None = None,
        limit: int = 100,
        order: str = "desc",
    ) -> list[Job]:
        """Your jobs, newest first (`order="asc"` for oldest), filtered by status and job
        type (one value or a list), at most `limit` of them, across pages."""
        params: dict[str, Any] = {"order": order}
        if status is not None:
            params["status"] = [status] if isinstance(status, str) else status
        if type is not None:
            params["type"] = [type] if isinstance(type, str) else type
        out: list[Job] = []
        cursor = None
        while len(out) < limit:
            page = {**params, "limit": min(100, limit - len(out))}
            if cursor:
                page["cursor"] = cursor
            body = self.request("GET", "/v1/jobs", params=page).json()
            out += [Job.model_validate(j) for j in body["data"]]
            cursor = (body.get("pagination") or {}).get("nextCursor")
            if not cursor:
                break
        return out

    def submit_and_wait(
        self,
        dataset_dir: Path,
        account: Any,
        *,
        model: str,
        epochs: int,
        imgsz: int | str,
        classes: list[str],
        reward: str,
        export_format: str = "onnx",
        out: Path | None = None,
        timeout: float = 3600,
        on_event: Callable[[Event], None] | None = None,
    ) -> Job:
        """Upload `dataset_dir` as a training job for `account`, fund it, wait until its
        result is submitted (or the job ends), download the result into `out` if given,
        and return the job. A job whose funding fails is cancelled before the error is
        raised, so nothing is left awaiting funding."""
        self._ensure_signed_in(account)
        created = self.upload_dataset_job(
            dataset_dir,
            model=model,
            epochs=epochs,
            imgsz=imgsz,
            classes=classes,
            reward=reward,
            requester_address=account.address,
            export_format=export_format,
        )
        job_id = created.id
        if created.status == "awaiting_funding":
            try:
                self.fund(job_id, account)
            except MarketplaceError:
                self.cancel(job_id, account)
                raise
        for event in self.watch(job_id, timeout=timeout):
            if on_event is not None:
                on_event(event)
        job = self.job(job_id)
        if out is not None and job.result_cid:
            self.download_result(job_id, out)
        return job

    def funding(self, job_id: str | int) -> ChainCall:
        """The escrow deposit of a job awaiting funding, for its requester to sign."""
        data = self.request("GET", f"/v1/jobs/{_job_ref(job_id)}/funding").json()["data"]
        return ChainCall.model_validate(data)

    # -- escrow: calls signed here, sent as raw transactions ---------------------------

    def fund(self, job_id: str | int, account: Any, rpc_url: str | None = None) -> Receipt:
        """Deposit the job's reward from `account` (the job's requester): ask the node for
        the funding call (signing in with `account` if not signed in), sign it locally,
        send it through `<node>/chain/rpc` (or `rpc_url`), and return the mined receipt.
        The node opens the job once its watcher sees the deposit."""
        self._ensure_signed_in(account)
        return self.send_call(self.funding(job_id), account, rpc_url=rpc_url)

    def accept(self, job_id: str | int, account: Any, rpc_url: str | None = None) -> Receipt:
        """Accept the submitted result on chain (pays the provider at once)."""
        self._ensure_signed_in(account)
        call = self.request("GET", f"/v1/jobs/{_job_ref(job_id)}/accept-call").json()["data"]
        return self.send_call(call, account, rpc_url=rpc_url)

    def cancel(
        self, job_id: str | int, account: Any | None = None, rpc_url: str | None = None
    ) -> Job:
        """Cancel a job through the node (signing in with `account` if not signed in);
        returns the job. A funded job's deposit comes back to the requester's wallet from
        the node: it releases the provider's binding and refunds the escrow."""
        if account is not None:
            self._ensure_signed_in(account)
        data = self.request("POST", f"/v1/jobs/{_job_ref(job_id)}/cancel").json()["data"]
        return Job.model_validate(data)

    def cancel_on_chain(
        self, job_id: str | int, account: Any, rpc_url: str | None = None
    ) -> Receipt:
        """The requester's own refund, needing no node: the escrow's `cancel` of a funded
        job no provider is bound to, signed by `account`; returns the mined receipt."""
        self._ensure_signed_in(account)
        call = self.request("GET", f"/v1/jobs/{_job_ref(job_id)}/cancel-call").json()["data"]
        return self.send_call(call, account, rpc_url=rpc_url)

    def dispute(self, job_id: str | int, account: Any, rpc_url: str | None = None) -> Receipt:
        """Dispute the submitted result within the challenge window: the node returns the
        escrow's `dispute` call, signed here by `account` (the requester) and sent; the
        arbiter then rules (its silence refunds the requester). Returns the receipt."""
        self._ensure_signed_in(account)
        call = self.request("POST", f"/v1/jobs/{_job_ref(job_id)}/dispute").json()["data"]
        return self.send_call(call, account, rpc_url=rpc_url)

    def escrow(self, job_id: str | int) -> Escrow:
        """The job's escrow as the node saw it on chain: key, status, amount, binding, and
        a result that exists only on chain (digest, CID, who submitted it, verdict)."""
        data = self.request("GET", f"/v1/jobs/{_job_ref(job_id)}/escrow").json()["data"]
        return Escrow.model_validate(data)

    def resolve(
        self,
        job_id: str | int,
        provider_share_bps: int,
        arbiter: Any,
        rpc_url: str | None = None,
    ) -> Receipt:
        """The arbiter's ruling on a disputed job: `provider_share_bps` (0..10000) of the
        deposit to the provider, the rest to the requester; signed by `arbiter`."""
        from web3 import Web3

        from marketplace.escrow import JobEscrow

        if not 0 <= provider_share_bps <= 10_000:
            raise ValidationFailed("the provider's share is 0..10000 basis points")
        view = self.escrow(job_id)
        info = self.request("GET", "/chain/info").json()
        binding = JobEscrow(Web3(), info["escrow_address"])  # encodes only
        call = ChainCall(
            chain_id=info["chain_id"],
            to=info["escrow_address"],
            data=binding.contract.encode_abi(
                "resolve", args=[bytes.fromhex(view.job_key[2:]), provider_share_bps]
            ),
        )
        return self.send_call(call, arbiter, rpc_url=rpc_url)

    def settlement(self, job_id: str | int, *, wait_seconds: float = 30.0) -> Settlement:
        """How the job's escrow was settled: amount, recipient, fee, tx hash, block.

        The node learns of a settlement from its chain watcher, a moment after the
        transaction (`accept` returns when it is mined): this waits up to `wait_seconds`
        for the node to see it; past that, the NotFound says the node has not seen it."""
        deadline = time.monotonic() + wait_seconds
        path = f"/v1/jobs/{_job_ref(job_id)}/settlement"
        while True:
            try:
                data = self.request("GET", path).json()["data"]
                return Settlement.model_validate(data)
            except JobNotFound:
                raise
            except NotFound as exc:
                if time.monotonic() > deadline:
                    raise NotFound(
                        f"{exc.message} (the node has not seen a settlement of "
                        f"{_job_ref(job_id)} within {wait_seconds:g}s; if you just "
                        "accepted, its chain watcher may still be catching up)"
                    ) from exc
                time.sleep(0.25)

    def payouts(
        self, *, provider: str | None = None, requester: str | None = None, limit: int = 100
    ) -> list[Settlement]:
        """Settlements, newest first, of one provider and/or one requester."""
        params: dict[str, Any] = {"limit": limit}
        if provider:
            params["provider"] = provider
        if requester:
            params["requester"] = requester
        rows = self.request("GET", "/v1/payouts", params=params).json()["data"]
        return [Settlement.model_validate(row) for row in rows]

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
                if self._rpc_http is None:
                    self._rpc_http = httpx.Client(timeout=self.http.timeout, verify=tls_context())
                resp = self._rpc_http.post(rpc_url, json=body)
        except httpx.TransportError as exc:
            if rpc_url is None:
                raise self._unreachable(exc) from exc
            raise UpstreamUnavailable(f"{method} at {rpc_url}: {exc}") from exc
        raise_for_error(resp)
        reply = resp.json()
        if "error" in reply:
            err = reply["error"]
            raise ChainError(f"{method}: {err.get('message')}", details=err.get("data"))
        return reply["result"]

    def send_call(
        self,
        call: ChainCall | dict[str, Any],
        account: Any,
        *,
        rpc_url: str | None = None,
        timeout: float = 60.0,
    ) -> Receipt:
        """Sign a `{chain_id, to, data, value}` call with `account` and send it; wait for
        the receipt (ChainError if it reverted)."""
        call = ChainCall.model_validate(call)
        chain_id = int(self.rpc("eth_chainId", [], rpc_url), 16)
        if chain_id != call.chain_id:
            raise ChainError(f"the RPC serves chain {chain_id}, the call is for {call.chain_id}")
        tx: dict[str, Any] = {
            "from": account.address,
            "to": call.to,
            "data": call.data,
            "value": hex(call.value),
        }
        gas = int(self.rpc("eth_estimateGas", [tx], rpc_url), 16)
        head = self.rpc("eth_getBlockByNumber", ["latest", False], rpc_url)
        base = int(head["baseFeePerGas"], 16)
        priority = int(self.rpc("eth_maxPriorityFeePerGas", [], rpc_url), 16)
        count = self.rpc("eth_getTransactionCount", [account.address, "pending"], rpc_url)
        nonce = int(count, 16)
        signed = account.sign_transaction(
            {
                "to": call.to,
                "data": call.data,
                "value": call.value,
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
        mined = Receipt.model_validate(receipt)
        if not mined.succeeded:
            raise ChainError(f"transaction {tx_hash} reverted", details={"tx_hash": tx_hash})
        return mined

    def watch(
        self,
        job_id: str | int,
        *,
        timeout: float | None = None,
        until: set[str] | frozenset[str] = frozenset(SETTLED_OR_SUBMITTED),
    ) -> Iterator[Event]:
        """Yield the job's events (state changes and progress; `logs()` has its log
        lines) from the node's event stream, from the first, until its status is one of
        `until`: by default once a result is submitted (there is something to download,
        accept or dispute) or the job ends; pass `until=TERMINAL` to follow it to the end.
        The stream resumes by itself after a dropped connection or a node restart. A
        `timeout` (seconds) is checked as events arrive."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.job(job_id).status in until:  # already there: its history, then stop
            yield from self.events(job_id, follow=False)
            return
        for event in self.events(job_id):
            yield event
            if event.to_status in until:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not yet {sorted(until)} after {timeout}s")

    def wait_for(
        self,
        job_id: str | int,
        statuses: set[str],
        *,
        timeout: float = 600,
        poll_seconds: float = 0.5,
    ) -> Job:
        """Poll the job until its status is one of `statuses`; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.status in statuses:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout}s")
            time.sleep(poll_seconds)

    # -- content -----------------------------------------------------------------------

    def cat(self, cid: str) -> bytes:
        return self.request("POST", "/api/v0/cat", params={"arg": cid}).content

    def ls(self, cid: str) -> list[Link]:
        """The entries of the UnixFS directory `cid`."""
        body = self.request("POST", "/api/v0/ls", params={"arg": cid}).json()
        return [Link.model_validate(link) for link in body["Objects"][0]["Links"]]

    def download_result(
        self,
        job_id: str | int,
        out: Path,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Path:
        """Fetch the job's result (the provider's artifact directory) into `out`, every
        block verified against the result's CID. NotFound before there is a result."""
        job = self.job(job_id)
        cid = job.result_cid
        if not cid:
            raise NotFound(f"{_job_ref(job_id)} has no result yet (it is {job.status})")
        return self.download_directory(cid, out, on_progress=on_progress)

    def download_directory(
        self, cid: str, out: Path, on_progress: Callable[[int, int], None] | None = None
    ) -> Path:
        """Fetch the UnixFS directory (or file) `cid` into `out` as one `dag/export` CAR:
        every block is verified against its CID as it streams, and the tree is written
        from the root down, so `out` holds exactly what `cid` names. `on_progress(done,
        total)` counts files."""
        from marketplace.content.unpack import ChunkReader, unpack_car

        try:
            with self.http.stream(
                "POST",
                "/api/v0/dag/export",
                params={"arg": cid},
                headers=self._headers(),
                timeout=TRANSFER_TIMEOUT,
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise_for_error(resp)
                return unpack_car(ChunkReader(resp.iter_bytes(1 << 20)), cid, out, on_progress)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc


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
