"""The production content store: a Kubo (or any Kubo-RPC-compatible) daemon's `/api/v0`.

Every add is computed locally first with the Kubo-identical importer, then sent with its
parameters spelled out (`cid-version`, `raw-leaves`, `chunker=size-262144`, `hash`, `pin`)
so that the daemon's own defaults cannot change the DAG; the CID the daemon answers must be
the local one (compared as CIDs, since js-ipfs prints CIDv1 in base58btc where Kubo uses
base32) or the add is undone (unpinned) and `CidMismatch` raised. The node always reports
Kubo's spelling of the CID.

Reads go block by block through `block/get` and are verified locally, so a daemon cannot
serve bytes that do not match a CID. Every call has a timeout: an IPFS daemon asked for a
block it lacks may wait forever (js-ipfs does, even offline); such a timeout is reported as
`ContentNotFound`. Transport failures become `UpstreamUnavailable`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from marketplace.content import car
from marketplace.content.cid import DAG_PB, Cid, parse_cid
from marketplace.content.dag import DagReader
from marketplace.content.errors import (
    CidMismatch,
    ContentNotFound,
    CorruptBlock,
    InvalidBlock,
    PinNotFound,
)
from marketplace.content.importer import ImportOptions, Node, import_path
from marketplace.content.staged import StagedBlocks
from marketplace.content.store import AddedCallback, RepoStat
from marketplace.errors import (
    MarketplaceError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
)


class KuboStore(DagReader):
    """A `ContentStore` backed by a Kubo RPC API at `api_url` (e.g. http://127.0.0.1:5001)."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout_seconds: float = 30.0,
        add_timeout_seconds: float = 600.0,
        block_timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        bearer: str | None = None,
    ) -> None:
        """`bearer`: a credential sent with every call (a dcm node's Kubo RPC dialect
        takes writes only from a user token or an API key; a Kubo daemon ignores it)."""
        self.api_url = api_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.add_timeout_seconds = add_timeout_seconds
        self.block_timeout_seconds = block_timeout_seconds
        self._http = httpx.Client(
            base_url=self.api_url + "/api/v0",
            timeout=httpx.Timeout(timeout_seconds, connect=5.0),
            transport=transport,
            headers={"Authorization": f"Bearer {bearer}"} if bearer else None,
        )

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------
    def _post(
        self, cmd: str, params: dict[str, Any], *, timeout: float | None = None, **kw: Any
    ) -> httpx.Response:
        try:
            resp = self._http.post(
                f"/{cmd}",
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                **kw,
            )
        except httpx.TimeoutException as exc:
            raise _Timeout(f"IPFS daemon: {cmd} timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"IPFS daemon unreachable: {exc}") from exc
        if resp.status_code >= 400:
            try:
                message = resp.json().get("Message", resp.text)
            except ValueError:
                message = resp.text
            if "not pinned" in message:
                raise PinNotFound(message[:300])
            if resp.status_code == 404 or "not found" in message.lower():
                raise ContentNotFound(message[:300])  # Kubo: 500 "merkledag: not found"
            if resp.status_code < 500:
                raise BadUpstreamRequest(f"IPFS daemon refused {cmd}: {message[:300]}")
            raise UpstreamUnavailable(f"IPFS daemon: {cmd} failed: {message[:300]}")
        return resp

    # -- adding ---------------------------------------------------------------------
    def add_path(
        self,
        path: Path,
        *,
        pin: bool = True,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
        include_hidden: bool = False,
        on_entry: AddedCallback | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> str:
        """As the protocol's, plus `on_sent(n)`: called as each n file bytes go out
        (the upload is most of a large add's time; a progress bar follows it)."""
        path = Path(path)
        opts = ImportOptions(
            cid_version=cid_version, raw_leaves=raw_leaves, include_hidden=include_hidden
        )
        entries: list[tuple[str, Node]] = []
        local = import_path(path, opts, None, lambda rel, node: entries.append((rel, node)))
        params = {
            "cid-version": str(opts.cid_version),
            "raw-leaves": "true" if opts.use_raw_leaves else "false",
            "chunker": f"size-{opts.chunk_size}",
            "hash": "sha2-256",
            "pin": "true" if pin else "false",
            "wrap-with-directory": "false",
            "progress": "false",
        }
        files: list[tuple[str, tuple[str, Any, str]]] = []
        for rel, fs_path in _upload_order(path, include_hidden):
            name = quote(rel, safe="")
            if fs_path.is_dir():
                files.append(("file", (name, b"", "application/x-directory")))
            else:
                files.append(
                    ("file", (name, _LazyFile(fs_path, on_sent), "application/octet-stream"))
                )
        try:
            resp = self._post("add", params, timeout=self.add_timeout_seconds, files=files)
        except _Timeout as exc:
            raise UpstreamUnavailable(str(exc)) from exc
        finally:
            for _, (_, f, _) in files:
                if isinstance(f, _LazyFile):
                    f.close()
        lines = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
        if not lines:
            raise UpstreamUnavailable("IPFS daemon: add answered nothing")
        theirs = _parse(lines[-1].get("Hash", ""))
        if theirs != local.cid:
            if pin and theirs is not None:
                # best effort: the mismatch is what the caller must see
                with suppress(MarketplaceError):
                    self._post("pin/rm", {"arg": lines[-1]["Hash"]})
            raise CidMismatch(
                f"IPFS daemon stored {lines[-1].get('Hash')} where Kubo's layout gives "
                f"{local.cid}; unpinned it",
                details={"expected": str(local.cid), "got": lines[-1].get("Hash")},
            )
        if on_entry is not None:
            for rel, node in entries:
                on_entry(rel, str(node.cid), node.tsize)
        return str(local.cid)

    def add_bytes(
        self, data: bytes, *, pin: bool = True, cid_version: int = 0, raw_leaves: bool | None = None
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="dcm-add-") as tmp:
            p = Path(tmp) / "data"
            p.write_bytes(data)
            return self.add_path(p, pin=pin, cid_version=cid_version, raw_leaves=raw_leaves)

    def add_stream(
        self,
        stream: BinaryIO,
        *,
        pin: bool = True,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="dcm-add-") as tmp:
            p = Path(tmp) / "data"
            with open(p, "wb") as f:
                shutil.copyfileobj(stream, f, 1024 * 1024)
            return self.add_path(p, pin=pin, cid_version=cid_version, raw_leaves=raw_leaves)

    def put_block(self, cid: str, data: bytes, *, pin: bool = False) -> None:
        want = parse_cid(cid)
        if not want.verify(data):
            raise InvalidBlock(f"the block does not hash to {cid}")
        codec = "dag-pb" if want.codec == DAG_PB else "raw"
        params = {"cid-codec": codec, "mhtype": "sha2-256", "pin": "true" if pin else "false"}
        try:
            resp = self._post("block/put", params, files=[("file", ("block", data))])
        except _Timeout as exc:
            raise UpstreamUnavailable(str(exc)) from exc
        theirs = _parse(resp.json().get("Key", ""))
        if theirs is None or theirs.multihash != want.multihash:
            raise CidMismatch(f"IPFS daemon stored {theirs} for block {cid}")

    def add_staged(self, staged: StagedBlocks, root: str, *, pin: bool = True) -> str:
        """Send each staged block with `block/put`, then pin `root`."""
        for cid, data in staged.blocks():
            self.put_block(str(cid), data)
        if pin:
            self.pin(root)
        return root

    def import_car(self, stream: BinaryIO, *, pin: bool = True) -> list[str]:
        """Verify each block here, send it with `block/put`, then pin the roots."""
        roots, blocks = car.read_car(stream)
        for cid, data in blocks:
            self.put_block(str(cid), data)
        out = [str(r) for r in roots]
        if pin:
            for r in out:
                self.pin(r)
        return out

    def repo_stat(self) -> RepoStat:
        try:
            st = self._post("repo/stat", {}).json()
        except _Timeout as exc:
            raise UpstreamUnavailable(str(exc)) from exc
        return RepoStat(
            num_objects=int(st.get("NumObjects", 0)),
            repo_size=int(st.get("RepoSize", 0)),
            storage_max=int(st.get("StorageMax", 0)),
        )

    # -- reading --------------------------------------------------------------------
    def _get(self, cid: Cid) -> bytes:
        try:
            resp = self._post("block/get", {"arg": str(cid)}, timeout=self.block_timeout_seconds)
        except _Timeout as exc:
            raise ContentNotFound(
                f"block {cid} not available from the IPFS daemon within "
                f"{self.block_timeout_seconds:g}s"
            ) from exc
        data = resp.content
        if not cid.verify(data):
            raise CorruptBlock(f"the IPFS daemon returned bytes that do not hash to {cid}")
        return data

    # -- pins -----------------------------------------------------------------------
    def pin(self, cid: str) -> None:
        parse_cid(cid)
        try:
            self._post("pin/add", {"arg": cid, "recursive": "true"}, timeout=self.timeout_seconds)
        except _Timeout as exc:
            raise ContentNotFound(
                f"cannot pin {cid}: the IPFS daemon did not find all of it within "
                f"{self.timeout_seconds:g}s"
            ) from exc

    def unpin(self, cid: str) -> None:
        parse_cid(cid)
        try:
            self._post("pin/rm", {"arg": cid, "recursive": "true"})
        except _Timeout as exc:
            raise UpstreamUnavailable(str(exc)) from exc

    def is_pinned(self, cid: str) -> bool:
        want = parse_cid(cid)
        return any(parse_cid(p).multihash == want.multihash for p in self._pin_keys(cid))

    def pins(self) -> list[str]:
        return sorted(str(parse_cid(k)) for k in self._pin_keys(None))

    def hold(self) -> AbstractContextManager[None]:
        # Kubo collects only when told to (`ipfs repo gc`, or a daemon run with
        # --enable-gc), under its own GC lock; the node cannot hold its collector off.
        return nullcontext()

    def _pin_keys(self, arg: str | None) -> list[str]:
        params = {"type": "recursive"}
        if arg:
            params["arg"] = arg
        try:
            resp = self._post("pin/ls", params)
        except PinNotFound:
            return []
        except _Timeout as exc:
            raise UpstreamUnavailable(str(exc)) from exc
        keys: list[str] = []
        for line in resp.text.splitlines():  # one object, or NDJSON when streamed
            if line.strip():
                obj = json.loads(line)
                keys.extend(obj.get("Keys", {}) or ([obj["Cid"]] if "Cid" in obj else []))
        return keys


# The daemon answered 4xx (a CID, a parameter it did not accept) / a call ran past its
# timeout (the caller decides what that means): codes of the one registry.
BadUpstreamRequest = UpstreamRejected
_Timeout = UpstreamTimeout


class _LazyFile:
    """A file opened only while httpx streams its part (and closed at its end), so a
    100k-file upload never holds 100k descriptors. Its length is unknown to httpx, which
    then sends the body chunked."""

    def __init__(self, path: Path, on_read: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.on_read = on_read
        self._f: BinaryIO | None = None
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if self._f is None:
            self._f = open(self.path, "rb")  # noqa: SIM115 (closed at EOF or by close())
        data = self._f.read(size)
        if self.on_read is not None and data:
            self.on_read(len(data))
        if not data or size < 0:
            self.close()
            self._done = True
        return data

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _parse(text: str) -> Cid | None:
    try:
        return parse_cid(text)
    except Exception:
        return None


def _upload_order(root: Path, include_hidden: bool) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of `root` and everything below it, parents before children,
    skipping what the importer skips (dot files unless `include_hidden`)."""
    rel_root = root.name
    yield rel_root, root
    if not root.is_dir():
        return
    stack = [(rel_root, root)]
    while stack:
        rel, path = stack.pop()
        for name in sorted(os.listdir(path)):
            if name.startswith(".") and not include_hidden:
                continue
            child = path / name
            mode = os.lstat(child).st_mode
            if stat.S_ISLNK(mode):
                raise ValidationFailed(f"{child}: symlinks are not sent to the IPFS daemon")
            yield f"{rel}/{name}", child
            if stat.S_ISDIR(mode):
                stack.append((f"{rel}/{name}", child))
