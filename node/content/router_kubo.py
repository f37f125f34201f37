"""The Kubo RPC dialect: `/api/v0/*`, POST only as in Kubo, responses shaped as Kubo's so
that kubo-rpc-client, ipfshttpclient and curl scripts written for Kubo work against the
node. Errors use Kubo's envelope `{"Message", "Code": 0, "Type": "error"}` (node/errors.py)
but with 4xx statuses for bad input and missing content where Kubo answers 500."""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from marketplace.content.errors import PinNotFound
from marketplace.content.store import ContentStore
from marketplace.errors import BadQuery, PayloadTooLarge
from node.content.service import add_spooled, primed, stat_of, tar_stream
from node.content.uploads import spool_multipart

router = APIRouter(prefix="/api/v0", tags=["kubo-rpc"])

KUBO_API_VERSION = "0.29.0"  # the Kubo RPC behaviour this dialect follows

Arg = Annotated[str, Query(alias="arg", min_length=1, max_length=4096)]


def _store(request: Request) -> ContentStore:
    return request.app.state.content


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    v = value.lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise BadQuery(f"not a boolean: {value!r}")


def _cid_version(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if value not in ("0", "1"):
        raise BadQuery(f"unsupported cid-version {value!r}: use 0 or 1")
    return int(value)


@router.post("/add")
async def add(
    request: Request,
    pin: str | None = None,
    cid_version: Annotated[str | None, Query(alias="cid-version")] = None,
    raw_leaves: Annotated[str | None, Query(alias="raw-leaves")] = None,
    wrap_with_directory: Annotated[str | None, Query(alias="wrap-with-directory")] = None,
    chunker: str | None = None,
    hash: str | None = None,
    trickle: str | None = None,
    only_hash: Annotated[str | None, Query(alias="only-hash")] = None,
) -> Response:
    """`ipfs add`: multipart body, one part per file or directory; NDJSON answer."""
    settings = request.app.state.settings
    if chunker not in (None, "", "size-262144"):
        raise BadQuery(f"unsupported chunker {chunker!r}: only size-262144")
    if hash not in (None, "", "sha2-256"):
        raise BadQuery(f"unsupported hash {hash!r}: only sha2-256")
    if _bool(trickle, False):
        raise BadQuery("the trickle layout is not supported")
    if _bool(only_hash, False):
        raise BadQuery("only-hash is not supported; use `dcm ipfs cid`")
    version = _cid_version(cid_version)
    leaves = None if raw_leaves in (None, "") else _bool(raw_leaves, False)
    do_pin = _bool(pin, True)
    wrap = _bool(wrap_with_directory, False)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.upload.max_bytes + 1024 * 1024:
        raise PayloadTooLarge(f"upload larger than {settings.upload.max_bytes} bytes")

    scratch = settings.data_dir / "tmp" / f"add-{uuid.uuid4().hex}"
    (scratch / "root").mkdir(parents=True)
    try:
        tree = await spool_multipart(
            request.headers.get("content-type", ""),
            request.stream(),
            scratch / "root",
            max_bytes=settings.upload.max_bytes,
            max_files=settings.upload.max_files,
        )
        added = await run_in_threadpool(
            add_spooled,
            _store(request),
            tree,
            pin=do_pin,
            cid_version=version,
            raw_leaves=leaves,
            wrap=wrap,
        )
    finally:
        await run_in_threadpool(shutil.rmtree, scratch, True)
    body = "".join(json.dumps(a.kubo(), separators=(",", ":")) + "\n" for a in added)
    return Response(body, media_type="application/json", headers={"X-Chunked-Output": "1"})


@router.post("/cat")
def cat(
    request: Request,
    arg: Arg,
    offset: Annotated[int, Query(ge=0)] = 0,
    length: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    store = _store(request)
    chunks = primed(store.cat(arg, offset, length))
    return StreamingResponse(chunks, media_type="text/plain")


@router.post("/get")
def get(request: Request, arg: Arg) -> StreamingResponse:
    """`ipfs get`: a tar stream whose top entry is named after the requested path."""
    store = _store(request)
    name = arg.rstrip("/").rsplit("/", 1)[-1] if "/" in arg.strip("/") else arg.strip("/")
    if name.startswith("/ipfs/"):
        name = name[len("/ipfs/") :]
    return StreamingResponse(primed(tar_stream(store, arg, name)), media_type="application/x-tar")


@router.post("/ls")
def ls(request: Request, arg: Arg) -> JSONResponse:
    store = _store(request)
    cid = store.resolve(arg)
    links = []
    for e in store.ls(cid):
        links.append(
            {
                "Name": e.name,
                "Hash": e.cid,
                "Size": 0 if e.is_dir else e.size,
                "Type": 1 if e.is_dir else 2,
                "Target": "",
            }
        )
    return JSONResponse({"Objects": [{"Hash": arg, "Links": links}]})


@router.post("/pin/add")
def pin_add(request: Request, arg: Arg, recursive: str | None = None) -> JSONResponse:
    if not _bool(recursive, True):
        raise BadQuery("only recursive pins are supported")
    store = _store(request)
    cid = store.resolve(arg)
    store.pin(cid)
    return JSONResponse({"Pins": [cid]})


@router.post("/pin/rm")
def pin_rm(request: Request, arg: Arg) -> JSONResponse:
    store = _store(request)
    cid = store.resolve(arg) if "/" in arg.strip("/") else arg.strip()
    store.unpin(cid)
    return JSONResponse({"Pins": [cid]})


@router.post("/pin/ls")
def pin_ls(
    request: Request,
    arg: Annotated[str | None, Query(max_length=4096)] = None,
    type: str = "all",
) -> JSONResponse:
    if type not in ("all", "recursive", "direct", "indirect"):
        raise BadQuery(f"invalid pin type {type!r}")
    store = _store(request)
    if type in ("direct", "indirect"):
        pinned: list[str] = []
    else:
        pinned = store.pins()
    if arg:
        cid = store.resolve(arg)
        if cid not in pinned:
            raise PinNotFound(f"path '{arg}' is not pinned")
        pinned = [cid]
    return JSONResponse({"Keys": {c: {"Type": "recursive"} for c in pinned}})


@router.post("/version")
def version() -> JSONResponse:
    return JSONResponse(
        {
            "Version": KUBO_API_VERSION,
            "Commit": "dcm-0.1.0",
            "Repo": "15",
            "System": f"{platform.machine()}/{platform.system().lower()}",
            "Golang": "none (dcm node, Kubo RPC dialect)",
        }
    )


@router.post("/dag/export")
def dag_export(request: Request, arg: Arg) -> StreamingResponse:
    store = _store(request)
    cid = store.resolve(arg)
    return StreamingResponse(primed(store.export_car(cid)), media_type="application/vnd.ipld.car")


@router.post("/block/get")
def block_get(request: Request, arg: Arg) -> Response:
    store = _store(request)
    return Response(store.get_block(store.resolve(arg)), media_type="application/octet-stream")


@router.post("/files/stat")
def files_stat(request: Request, arg: Arg) -> JSONResponse:
    """Enough of `ipfs files stat /ipfs/CID` for clients that probe a node's content."""
    store = _store(request)
    cid = store.resolve(arg)
    st = stat_of(store, cid)
    return JSONResponse(
        {
            "Hash": cid,
            "Size": st.filesize,
            "Type": "directory" if st.is_dir else "file",
        }
    )
