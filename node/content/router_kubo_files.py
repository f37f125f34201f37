"""MFS in the Kubo RPC dialect: `/api/v0/files/*` (mkdir, write, read, ls, stat, rm, cp,
mv, flush) over the caller's own tree (`node.content.mfs`). Every MFS call needs the
credential content writes need; `files/stat` of an `/ipfs/CID` path stays public, as a
read of immutable content."""

from __future__ import annotations

import shutil
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from marketplace.content.errors import NotAFile
from marketplace.errors import BadQuery, Conflict, InsufficientStorage, ValidationFailed
from node.auth.principal import Principal
from node.content.deps import content_of
from node.content.mfs import Mfs, owner_of
from node.content.router_kubo import (
    READ_ERRORS,
    Arg,
    _bool,
    _scratch,
    _spooled_parts,
    content_writer,
)
from node.content.service import primed
from node.deps import SettingsDep, sessions_of
from node.openapi import binary, raises

router = APIRouter(prefix="/api/v0", tags=["kubo-rpc"])
write_router = APIRouter(
    prefix="/api/v0", tags=["kubo-rpc"], dependencies=[Depends(content_writer)]
)
# The caller the router's dependency authenticated (FastAPI runs it once per request).
WriterDep = Annotated[Principal, Depends(content_writer)]
MFS_ERRORS = (BadQuery, Conflict, NotAFile, *READ_ERRORS)


def _mfs(request: Request, principal: Principal) -> Mfs:
    return Mfs(content_of(request), sessions_of(request), owner_of(principal))


@router.post("/files/stat")
@raises(*MFS_ERRORS)
def files_stat(request: Request, arg: Arg, settings: SettingsDep) -> JSONResponse:
    """`ipfs files stat PATH`: an MFS path of the caller's, or `/ipfs/CID[/...]`."""
    if arg.startswith("/ipfs/") or not arg.startswith("/"):  # content, not a tree
        mfs = Mfs(content_of(request), sessions_of(request), owner="")
    else:
        mfs = _mfs(request, content_writer(request, settings))
    return JSONResponse(mfs.stat(arg).kubo())


@write_router.post("/files/ls")
@raises(*MFS_ERRORS)
def files_ls(
    request: Request,
    principal: WriterDep,
    arg: Annotated[str, Query(max_length=4096)] = "/",
) -> JSONResponse:
    entries = _mfs(request, principal).ls(arg)
    return JSONResponse({"Entries": entries})


@write_router.post("/files/read", response_class=StreamingResponse, responses=binary())
@raises(*MFS_ERRORS)
def files_read(
    request: Request,
    principal: WriterDep,
    arg: Arg,
    offset: Annotated[int, Query(ge=0)] = 0,
    count: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    chunks = _mfs(request, principal).read(arg, offset, count)
    return StreamingResponse(primed(chunks), media_type="application/octet-stream")


@write_router.post("/files/mkdir", response_class=Response)
@raises(*MFS_ERRORS)
def files_mkdir(
    request: Request, principal: WriterDep, arg: Arg, parents: str | None = None
) -> Response:
    _mfs(request, principal).mkdir(arg, parents=_bool(parents, False))
    return Response(status_code=200)


@write_router.post("/files/write", response_class=Response)
@raises(*MFS_ERRORS, ValidationFailed, InsufficientStorage)
async def files_write(
    request: Request,
    principal: WriterDep,
    arg: Arg,
    offset: Annotated[int, Query(ge=0)] = 0,
    create: str | None = None,
    truncate: str | None = None,
    parents: str | None = None,
    count: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """`ipfs files write PATH`: the body's one file part is written at `offset` (whole
    file rebuilt, as Kubo's MFS does for any change)."""
    scratch = _scratch(request, "mfs")
    try:
        parts = await _spooled_parts(request, scratch)
        if len(parts) != 1:
            raise ValidationFailed("files/write takes exactly one file part")
        data = parts[0].read_bytes()
    finally:
        await run_in_threadpool(shutil.rmtree, scratch, True)
    await run_in_threadpool(
        lambda: _mfs(request, principal).write(
            arg,
            data,
            offset=offset,
            create=_bool(create, False),
            truncate=_bool(truncate, False),
            parents=_bool(parents, False),
            count=count,
        )
    )
    return Response(status_code=200)


@write_router.post("/files/rm", response_class=Response)
@raises(*MFS_ERRORS)
def files_rm(
    request: Request,
    principal: WriterDep,
    arg: Arg,
    recursive: str | None = None,
    force: str | None = None,
) -> Response:
    _mfs(request, principal).rm(arg, recursive=_bool(recursive, False), force=_bool(force, False))
    return Response(status_code=200)


@write_router.post("/files/cp", response_class=Response)
@raises(*MFS_ERRORS)
def files_cp(
    request: Request,
    principal: WriterDep,
    arg: Annotated[list[str], Query(min_length=2, max_length=2)],
    parents: str | None = None,
) -> Response:
    """`ipfs files cp SOURCE DEST`: SOURCE an MFS path or `/ipfs/CID[/...]`."""
    _mfs(request, principal).cp(arg[0], arg[1], parents=_bool(parents, False))
    return Response(status_code=200)


@write_router.post("/files/mv", response_class=Response)
@raises(*MFS_ERRORS)
def files_mv(
    request: Request,
    principal: WriterDep,
    arg: Annotated[list[str], Query(min_length=2, max_length=2)],
) -> Response:
    _mfs(request, principal).mv(arg[0], arg[1])
    return Response(status_code=200)


@write_router.post("/files/flush")
@raises(*MFS_ERRORS)
def files_flush(
    request: Request,
    principal: WriterDep,
    arg: Annotated[str, Query(max_length=4096)] = "/",
) -> JSONResponse:
    """Changes are durable when their call returns: flush only reports the CID."""
    mfs = _mfs(request, principal)
    return JSONResponse({"Cid": mfs.stat(arg).cid})
