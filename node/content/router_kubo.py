"""The Kubo RPC dialect: `/api/v0/*`, POST only as in Kubo, responses shaped as Kubo's so
that kubo-rpc-client, ipfshttpclient and curl scripts written for Kubo work against the
node. Errors use Kubo's envelope `{"Message", "Code": 0, "Type": "error"}` (node/errors.py)
but with 4xx statuses for bad input and missing content where Kubo answers 500.

Reads (`router`) are public, as on a gateway. Writes (`write_router`: add, pin add/rm)
need a bearer credential that may write content (`node.authz.policy`: a user token, or
an API key of role owner, member or provider): 401 without one, 403 for a key that may
not. The router itself requires it, so a write route added there cannot forget it. The
pins behind a job that has not finished (its dataset, metadata, result) cannot be removed
by anyone: 409 PIN_IN_USE."""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from marketplace.content.car import MAX_SECTION as MAX_BLOCK_BYTES
from marketplace.content.cid import CODEC_NAMES, Cid, parse_cid
from marketplace.content.errors import (
    CidMismatch,
    ContentNotFound,
    InvalidBlock,
    InvalidCid,
    NotADirectory,
    NotAFile,
    PinNotFound,
)
from marketplace.content.store import ContentStore
from marketplace.errors import (
    BadQuery,
    Forbidden,
    InsufficientStorage,
    InvalidApiKey,
    InvalidToken,
    NotSupported,
    PayloadTooLarge,
    PinInUse,
    RateLimited,
    TokenExpired,
    Unauthorized,
    UpstreamUnavailable,
    ValidationFailed,
)
from node.auth.deps import authenticate_request
from node.auth.principal import Principal
from node.authz.policy import authorize_content_write
from node.content.deps import content_of
from node.content.ipld import (
    RefsQuery,
    car_stats,
    check_mhtype,
    dag_json,
    http_multiaddr,
    peer_id,
    put_codec,
    refs,
)
from node.content.service import (
    add_spooled,
    add_streamed,
    primed,
    remove_pin,
    tar_stream,
)
from node.content.uploads import BadUpload, raise_storage_error, spool_multipart
from node.db import session_scope
from node.deps import BearerDoc, SessionDep, SettingsDep, sessions_of, settings_of
from node.openapi import binary, raises

router = APIRouter(prefix="/api/v0", tags=["kubo-rpc"])


@raises(Unauthorized, InvalidToken, TokenExpired, InvalidApiKey, Forbidden, RateLimited)
def content_writer(request: Request, settings: SettingsDep, _doc: BearerDoc = None) -> Principal:
    """401 without credentials; 403 for an API key whose role may not write content.

    Checked in a transaction of its own, committed before the write starts: the embedded
    store records pins in its own transaction too, which on SQLite would otherwise wait
    on this request's (an API key's last-use time) until it timed out."""
    with session_scope(sessions_of(request)) as session:
        principal = authenticate_request(request, session, settings)
        authorize_content_write(session, principal)
    return principal


write_router = APIRouter(
    prefix="/api/v0",
    tags=["kubo-rpc"],
    dependencies=[Depends(content_writer)],
)

KUBO_API_VERSION = "0.29.0"  # the Kubo RPC behaviour this dialect follows

Arg = Annotated[str, Query(alias="arg", min_length=1, max_length=4096)]
# What reading a path `<cid>[/name...]` from the store may answer.
READ_ERRORS = (InvalidCid, NotADirectory, ContentNotFound, UpstreamUnavailable)
# `ipfs add` takes the files as multipart parts named by their path (Kubo's wire format).
ADD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def _store(request: Request) -> ContentStore:
    return content_of(request)


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


@write_router.post(
    "/add",
    openapi_extra=ADD_BODY,
    response_class=Response,
    responses={
        200: {
            "description": "One JSON object per added file and directory, one per line",
            "content": {"application/json": {}},
        }
    },
)
@raises(
    BadQuery, BadUpload, ValidationFailed, UpstreamUnavailable, CidMismatch, InsufficientStorage
)
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
    progress: str | None = None,
) -> Response:
    """`ipfs add`: multipart body, one part per file or directory; NDJSON answer. With
    `progress=true` the answer streams as Kubo's does: a `{"Name", "Bytes"}` line for
    each file as it is stored, before its `{"Name", "Hash", "Size"}` line."""
    settings = settings_of(request)
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
    streamed = _bool(progress, False)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.upload.max_bytes + 1024 * 1024:
        raise PayloadTooLarge(f"upload larger than {settings.upload.max_bytes} bytes")

    scratch = settings.data_dir / "tmp" / f"add-{uuid.uuid4().hex}"
    handed_off = False
    try:
        # A full disk is the node's failure, not the client's: 507 INSUFFICIENT_STORAGE
        # (retryable). Blocks are written whole or not at all and nothing is pinned.
        (scratch / "root").mkdir(parents=True)
        tree = await spool_multipart(
            request.headers.get("content-type", ""),
            request.stream(),
            scratch / "root",
            max_bytes=settings.upload.max_bytes,
            max_files=settings.upload.max_files,
        )
        if streamed:
            handed_off = True
            return StreamingResponse(
                add_streamed(
                    lambda on_added: add_spooled(
                        _store(request),
                        tree,
                        pin=do_pin,
                        cid_version=version,
                        raw_leaves=leaves,
                        wrap=wrap,
                        on_added=on_added,
                    ),
                    scratch,
                ),
                media_type="application/json",
                headers={"X-Chunked-Output": "1"},
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
    except OSError as exc:
        raise_storage_error(exc)
    finally:
        if not handed_off:
            await run_in_threadpool(shutil.rmtree, scratch, True)
    body = "".join(json.dumps(a.kubo(), separators=(",", ":")) + "\n" for a in added)
    return Response(body, media_type="application/json", headers={"X-Chunked-Output": "1"})


@router.post("/cat", response_class=StreamingResponse, responses=binary("text/plain"))
@raises(*READ_ERRORS, NotAFile)
def cat(
    request: Request,
    arg: Arg,
    offset: Annotated[int, Query(ge=0)] = 0,
    length: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    store = _store(request)
    chunks = primed(store.cat(arg, offset, length))
    return StreamingResponse(chunks, media_type="text/plain")


@router.post("/get", response_class=StreamingResponse, responses=binary("application/x-tar"))
@raises(*READ_ERRORS)
def get(request: Request, arg: Arg) -> StreamingResponse:
    """`ipfs get`: a tar stream whose top entry is named after the requested path."""
    store = _store(request)
    name = arg.rstrip("/").rsplit("/", 1)[-1] if "/" in arg.strip("/") else arg.strip("/")
    if name.startswith("/ipfs/"):
        name = name[len("/ipfs/") :]
    return StreamingResponse(primed(tar_stream(store, arg, name)), media_type="application/x-tar")


@router.post("/ls")
@raises(*READ_ERRORS)
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


@write_router.post("/pin/add")
@raises(BadQuery, *READ_ERRORS)
def pin_add(request: Request, arg: Arg, recursive: str | None = None) -> JSONResponse:
    if not _bool(recursive, True):
        raise BadQuery("only recursive pins are supported")
    store = _store(request)
    cid = store.resolve(arg)
    store.pin(cid)
    return JSONResponse({"Pins": [cid]})


@write_router.post("/pin/rm")
@raises(*READ_ERRORS, PinNotFound, PinInUse)
def pin_rm(request: Request, arg: Arg, session: SessionDep) -> JSONResponse:
    """Remove a pin, unless a job that has not finished needs it (409 PIN_IN_USE)."""
    store = _store(request)
    cid = store.resolve(arg) if "/" in arg.strip("/") else arg.strip()
    remove_pin(session, store, cid)
    return JSONResponse({"Pins": [cid]})


@router.post("/pin/ls")
@raises(BadQuery, *READ_ERRORS, PinNotFound)
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


@router.post(
    "/dag/export",
    response_class=StreamingResponse,
    responses=binary("application/vnd.ipld.car"),
)
@raises(*READ_ERRORS)
def dag_export(request: Request, arg: Arg) -> StreamingResponse:
    store = _store(request)
    cid = store.resolve(arg)
    return StreamingResponse(primed(store.export_car(cid)), media_type="application/vnd.ipld.car")


@router.post("/block/get", response_class=Response, responses=binary("application/octet-stream"))
@raises(*READ_ERRORS)
def block_get(request: Request, arg: Arg) -> Response:
    store = _store(request)
    return Response(store.get_block(store.resolve(arg)), media_type="application/octet-stream")


async def _spooled_parts(request: Request, scratch: Path) -> list[Path]:
    """The files of a multipart body (`block put`, `dag import`, `files write`), spooled
    under `scratch` within the upload limits, in the order they came."""
    settings = settings_of(request)
    (scratch / "root").mkdir(parents=True)
    try:
        tree = await spool_multipart(
            request.headers.get("content-type", ""),
            request.stream(),
            scratch / "root",
            max_bytes=settings.upload.max_bytes,
            max_files=settings.upload.max_files,
        )
    except OSError as exc:
        raise_storage_error(exc)
    return [p for p in (scratch / "root" / n for n in tree.top_level) if p.is_file()]


def _scratch(request: Request, kind: str) -> Path:
    return settings_of(request).data_dir / "tmp" / f"{kind}-{uuid.uuid4().hex}"


@router.post("/id")
def node_id(request: Request, settings: SettingsDep) -> JSONResponse:
    """`ipfs id`: this node's (derived) peer ID and the HTTP address it answers on, so
    kubo-rpc-client's `isOnline()` is true."""
    pid = peer_id(str(settings.data_dir.resolve()))
    # where clients reach the node: its public URL, else the address this request used
    url = urlsplit(
        str(request.base_url) if settings.public_url_from_request else settings.public_url
    )
    host = url.hostname or "127.0.0.1"
    port = url.port or (443 if url.scheme == "https" else 80)
    return JSONResponse(
        {
            "ID": pid,
            "PublicKey": "",
            "Addresses": [f"{http_multiaddr(host, port, url.scheme)}/p2p/{pid}"],
            "AgentVersion": f"dcm/0.1.0 (kubo-rpc {KUBO_API_VERSION})",
            "Protocols": [],
        }
    )


@write_router.post("/block/put", openapi_extra=ADD_BODY)
@raises(BadQuery, BadUpload, ValidationFailed, InvalidBlock, InsufficientStorage)
async def block_put(
    request: Request,
    cid_codec: Annotated[str | None, Query(alias="cid-codec")] = None,
    format: str | None = None,
    mhtype: str | None = None,
    mhlen: int | None = None,
    pin: str | None = None,
) -> JSONResponse:
    """`ipfs block put`: one block per part (raw or dag-pb, sha2-256); the last one's
    `{"Key", "Size"}` is answered, as Kubo does for a single block."""
    codec, version = put_codec(cid_codec, format)
    check_mhtype(mhtype, mhlen)
    do_pin = _bool(pin, False)
    scratch = _scratch(request, "block")
    try:
        parts = await _spooled_parts(request, scratch)
        if not parts:
            raise ValidationFailed("no block in the body")
        out: dict[str, object] = {}
        for part in parts:
            data = part.read_bytes()
            if len(data) > MAX_BLOCK_BYTES:
                raise PayloadTooLarge(f"a block may be at most {MAX_BLOCK_BYTES} bytes")
            cid = str(Cid.of_block(data, version=version, codec=codec))
            await run_in_threadpool(_store(request).put_block, cid, data, pin=do_pin)
            out = {"Key": cid, "Size": len(data)}
    finally:
        await run_in_threadpool(shutil.rmtree, scratch, True)
    return JSONResponse(out)


@router.post("/block/stat")
@raises(*READ_ERRORS)
def block_stat(request: Request, arg: Arg) -> JSONResponse:
    store = _store(request)
    cid = store.resolve(arg)
    return JSONResponse({"Key": cid, "Size": len(store.get_block(cid))})


@router.post("/dag/get", response_class=Response, responses=binary("application/json"))
@raises(BadQuery, *READ_ERRORS)
def dag_get(
    request: Request,
    arg: Arg,
    output_codec: Annotated[str, Query(alias="output-codec")] = "dag-json",
) -> Response:
    """`ipfs dag get`: the node in dag-json (or its own codec's bytes: raw, dag-pb)."""
    store = _store(request)
    cid = parse_cid(store.resolve(arg))
    block = store.get_block(str(cid))
    if output_codec in ("dag-json", "json"):
        return Response(dag_json(cid, block), media_type="application/json")
    if output_codec == CODEC_NAMES.get(cid.codec):
        return Response(block, media_type="application/octet-stream")
    raise BadQuery(f"cannot encode a {CODEC_NAMES[cid.codec]} node as {output_codec!r}")


@write_router.post("/dag/import", openapi_extra=ADD_BODY, response_class=Response)
@raises(BadQuery, BadUpload, ValidationFailed, InvalidBlock, *READ_ERRORS, InsufficientStorage)
async def dag_import(
    request: Request,
    pin_roots: Annotated[str | None, Query(alias="pin-roots")] = None,
    stats: str | None = None,
    silent: str | None = None,
) -> Response:
    """`ipfs dag import`: CARv1 files, every block verified as it is read; the roots are
    pinned (unless `pin-roots=false`) once their DAGs are complete. NDJSON answer: one
    `{"Root": ...}` per root, then with `stats=true` `{"Stats": {"BlockCount",
    "BlockBytesCount"}}`; nothing with `silent=true`."""
    do_pin = _bool(pin_roots, True)
    scratch = _scratch(request, "car")
    store = _store(request)
    lines: list[dict[str, object]] = []
    blocks = size = 0
    try:
        parts = await _spooled_parts(request, scratch)
        if not parts:
            raise ValidationFailed("no CAR file in the body")
        for part in parts:

            def load(path: Path = part) -> list[str]:
                with open(path, "rb") as f:
                    return store.import_car(f, pin=do_pin)

            roots = await run_in_threadpool(load)
            if _bool(stats, False):
                n, b = await run_in_threadpool(car_stats, part)
                blocks, size = blocks + n, size + b
            lines += [{"Root": {"Cid": {"/": r}, "PinErrorMsg": ""}} for r in roots]
    except OSError as exc:
        raise_storage_error(exc)
    finally:
        await run_in_threadpool(shutil.rmtree, scratch, True)
    if _bool(stats, False):
        lines.append({"Stats": {"BlockCount": blocks, "BlockBytesCount": size}})
    if _bool(silent, False):
        lines = []
    body = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines)
    return Response(body, media_type="application/json", headers={"X-Chunked-Output": "1"})


@router.post("/refs", response_class=Response, responses=binary("application/json"))
@raises(BadQuery, *READ_ERRORS)
def refs_of(
    request: Request,
    arg: Annotated[list[str], Query(min_length=1)],
    recursive: str | None = None,
    unique: str | None = None,
    edges: str | None = None,
    format: str = "<dst>",
    max_depth: Annotated[int, Query(alias="max-depth")] = -1,
) -> Response:
    """`ipfs refs`: the CIDs each root links to (with `recursive`, its whole DAG)."""
    store = _store(request)
    q = RefsQuery(
        recursive=_bool(recursive, False),
        unique=_bool(unique, False),
        edges=_bool(edges, False),
        max_depth=max_depth,
        fmt=format,
    )
    for ref in arg:
        store.resolve(ref)  # a bad or missing root is a status, not a broken stream
    lines = (json.dumps(x, separators=(",", ":")) + "\n" for x in refs(store, arg, q))
    return StreamingResponse(
        (line.encode() for line in lines),
        media_type="application/json",
        headers={"X-Chunked-Output": "1"},
    )


@router.post("/repo/stat")
@raises(UpstreamUnavailable)
def repo_stat(request: Request) -> JSONResponse:
    st = _store(request).repo_stat()
    return JSONResponse(
        {
            "RepoSize": st.repo_size,
            "StorageMax": st.storage_max,
            "NumObjects": st.num_objects,
            "RepoPath": "",
            "Version": "fs-repo@15",
        }
    )


@router.post("/name/{command:path}", include_in_schema=False)
def name_refused(command: str) -> JSONResponse:
    """IPNS (`ipfs name publish|resolve|...`) is not offered: a clear Kubo-style error."""
    raise NotSupported(
        f"ipfs name {command}: IPNS is not supported by this node; "
        "refer to content by its CID (/ipfs/<cid>)"
    )
