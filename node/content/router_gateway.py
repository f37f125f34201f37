"""The path gateway `GET /ipfs/{cid}[/path]`: files as bytes (with single byte ranges),
directories as a small HTML listing, and trustless retrieval of verifiable data with
`?format=raw|car` or `Accept: application/vnd.ipld.raw|car` (CARs honour the trustless
gateway's `dag-scope=block|entity|all` and `entity-bytes=from:to`).

As Kubo's gateway: every answer carries an `Etag` (the CID, suffixed by the format and
CAR parameters) and `If-None-Match` with it is a 304; responses carry CORS headers (any
origin may read, the gateway is public) and `OPTIONS` answers a preflight;
`?filename=NAME` names the download (`Content-Disposition: inline`, or `attachment` with
`download=true`)."""

from __future__ import annotations

import html
import mimetypes
import re
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from marketplace.content import car, dag
from marketplace.content.cid import DAG_PB, Cid, parse_cid
from marketplace.content.dagpb import FILE, RAW_T, decode_node, decode_unixfs
from marketplace.content.errors import InvalidCid, NotADirectory
from marketplace.content.store import ContentStore
from marketplace.errors import BadQuery, UpstreamUnavailable
from node.content.deps import content_of
from node.content.service import primed, stat_of
from node.openapi import binary, raises

router = APIRouter(tags=["gateway"])

RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# A file (its media type guessed from its name), a directory listing, a raw block or a
# CAR; with a `Range`, part of a file (206) or 416 for a range past its end.
ANSWERS: dict[int | str, dict] = {
    **binary("*/*", "text/html", RAW, CAR, description="The file, a listing, a block or a CAR"),
    **binary("*/*", status=206, description="The requested byte range of the file"),
    416: {"description": "The requested range starts past the end of the file"},
}
_BEYOND_ANY_FILE = 2**63


def _offset(digits: str) -> int:
    """A Range offset; anything past 19 digits is past any file (and int() of a
    5,000-digit number would raise, a 500)."""
    return int(digits) if len(digits) <= 19 else _BEYOND_ANY_FILE


def _format(request: Request) -> str | None:
    fmt = request.query_params.get("format")
    if fmt:
        if fmt not in ("raw", "car"):
            raise BadQuery(f"unsupported format {fmt!r}: use raw or car")
        return fmt
    accept = request.headers.get("accept", "")
    if RAW in accept:
        return "raw"
    if CAR in accept:
        return "car"
    return None


CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Range, User-Agent, X-Requested-With",
    "Access-Control-Expose-Headers": (
        "Content-Length, Content-Range, Etag, X-Chunked-Output, X-Stream-Output, "
        "X-Ipfs-Path, X-Ipfs-Roots"
    ),
}
_ENTITY_BYTES = re.compile(r"^(-?\d+):(-?\d+|\*)$")


def _entity_range(value: str | None) -> tuple[int, int | None] | None:
    """`entity-bytes=from:to` (inclusive `to`, `*` for the end, negatives from the end),
    kept as given and resolved against the file size by `_file_blocks`."""
    if value is None:
        return None
    m = _ENTITY_BYTES.match(value)
    if not m:
        raise BadQuery(f"invalid entity-bytes {value!r}: use from:to, to may be *")
    lo = int(m.group(1))
    hi = None if m.group(2) == "*" else int(m.group(2))
    if lo >= 0 and hi is not None and 0 <= hi < lo:
        raise BadQuery(f"invalid entity-bytes {value!r}: to is before from")
    return lo, hi


def _file_blocks(get, cid: Cid, lo: int, hi: int | None) -> Iterator[tuple[Cid, bytes]]:  # type: ignore[no-untyped-def]
    """The blocks of the file `cid` a verifier needs for bytes [lo, hi] (resolved against
    the file's size): the nodes on the way and the leaves that overlap the range."""
    block = get(cid)
    st = dag.stat(get, cid)
    size = st.filesize
    start = lo if lo >= 0 else max(size + lo, 0)
    end = size - 1 if hi is None else (hi if hi >= 0 else size + hi)
    end = min(end, size - 1)

    def walk(c: Cid, b: bytes, pos: int) -> Iterator[tuple[Cid, bytes]]:
        yield c, b
        if c.codec != DAG_PB:
            return
        node = decode_node(b)
        fs = decode_unixfs(node.data)
        if fs.type not in (FILE, RAW_T):
            return
        pos += len(fs.data)
        for link, bs in zip(node.links, fs.blocksizes, strict=False):
            if pos <= end and pos + bs > start:
                yield from walk(link.cid, get(link.cid), pos)
            pos += bs

    if size == 0 or start > end:
        yield cid, block
        return
    yield from walk(cid, block, 0)


def _scoped_blocks(get, target: Cid, scope: str, entity: tuple[int, int | None] | None):  # type: ignore[no-untyped-def]
    """The target's blocks under the trustless gateway's `dag-scope`: `block` (the node
    alone), `entity` (a file's blocks, or a directory's own node, shards included), or
    `all` (the whole DAG)."""
    if scope == "block":
        yield target, get(target)
        return
    st = dag.stat(get, target)
    if st.is_dir:
        if scope == "all":
            yield from dag.walk(get, target)
            return
        block = get(target)
        yield target, block
        fs = decode_unixfs(decode_node(block).data)
        if fs.type == 5:  # a HAMT shard: its inner shard nodes belong to the entity
            for c, b in dag.walk(get, target):
                if c != target and c.codec == DAG_PB:
                    inner = decode_node(b)
                    if inner.data is not None and decode_unixfs(inner.data).type == 5:
                        yield c, b
        return
    if entity is not None:
        yield from _file_blocks(get, target, *entity)
        return
    yield from dag.walk(get, target)


def _disposition(request: Request, fallback: str | None = None) -> str | None:
    """`Content-Disposition` for `?filename=` (inline) and `?download=true` (attachment)."""
    name = request.query_params.get("filename") or fallback
    download = request.query_params.get("download", "").lower() == "true"
    if not name:
        return "attachment" if download else None
    kind = "attachment" if download else "inline"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    tags = [t.strip().removeprefix("W/") for t in wanted.split(",")]
    return "*" in tags or etag in tags


def _path_cids(store: ContentStore, root: str, path: str) -> list[str]:
    """The CIDs from the root through each path segment (the blocks a verifier needs)."""
    cids = [store.resolve(root)]
    walked = root
    for seg in (s for s in path.split("/") if s):
        walked = f"{walked}/{seg}"
        cids.append(store.resolve(walked))
    return cids


@router.options("/ipfs/{cid}", include_in_schema=False)
@router.options("/ipfs/{cid}/{path:path}", include_in_schema=False)
def preflight(cid: str, path: str = "") -> Response:
    """A CORS preflight: any origin may GET and HEAD the gateway."""
    return Response(status_code=204, headers={**CORS, "Access-Control-Max-Age": "86400"})


@router.get("/ipfs/{cid}", response_class=Response, responses=ANSWERS)
@router.head("/ipfs/{cid}", response_class=Response, responses=ANSWERS)
@router.get("/ipfs/{cid}/{path:path}", response_class=Response, responses=ANSWERS)
@router.head("/ipfs/{cid}/{path:path}", response_class=Response, responses=ANSWERS)
@raises(InvalidCid, BadQuery, NotADirectory, UpstreamUnavailable)
def gateway(request: Request, cid: str, path: str = "") -> Response:
    store: ContentStore = content_of(request)
    root = str(parse_cid(cid))
    chain = _path_cids(store, root, path)
    target = chain[-1]
    headers = {
        **CORS,
        "Etag": f'"{target}"',
        "X-Ipfs-Path": f"/ipfs/{cid}" + (f"/{path}" if path else ""),
        "X-Ipfs-Roots": ",".join(chain),
        "Cache-Control": "public, max-age=29030400, immutable",
    }
    fmt = _format(request)
    if fmt == "raw":
        headers["Etag"] = f'"{target}.raw"'
        if _not_modified(request, headers["Etag"]):
            return Response(status_code=304, headers=headers)
        name = (request.query_params.get("filename") or f"{target}.bin").replace('"', "_")
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return Response(store.get_block(target), media_type=RAW, headers=headers)
    if fmt == "car":
        get = lambda c: store.get_block(str(c))  # noqa: E731
        target_cid = parse_cid(target)
        scope = request.query_params.get("dag-scope", "all")
        if scope not in ("block", "entity", "all"):
            raise BadQuery(f"invalid dag-scope {scope!r}: use block, entity or all")
        raw_bytes = request.query_params.get("entity-bytes")
        entity = _entity_range(raw_bytes)
        headers["Etag"] = f'"{target}.car.{scope}.{raw_bytes or "all"}"'
        if _not_modified(request, headers["Etag"]):
            return Response(status_code=304, headers=headers)

        def blocks():  # type: ignore[no-untyped-def]
            for c in chain[:-1]:
                pc = parse_cid(c)
                yield pc, get(pc)
            yield from _scoped_blocks(get, target_cid, scope, entity)

        headers["Content-Disposition"] = f'attachment; filename="{target}.car"'
        if request.query_params.get("filename"):
            headers["Content-Disposition"] = _disposition(request) or ""
        stream = primed(car.write_car([parse_cid(root)], blocks()))
        return StreamingResponse(stream, media_type=f"{CAR}; version=1", headers=headers)
    if _not_modified(request, headers["Etag"]):
        return Response(status_code=304, headers=headers)

    st = stat_of(store, target)
    if st.is_dir:
        base = f"/ipfs/{cid}" + (f"/{path.strip('/')}" if path.strip("/") else "")
        rows = "".join(
            f'<li><a href="{html.escape(base)}/{html.escape(e.name)}">{html.escape(e.name)}</a>'
            f" {'dir' if e.is_dir else e.size}</li>"
            for e in store.ls(target)
        )
        return HTMLResponse(
            f"<!doctype html><title>{html.escape(base)}</title><h1>{html.escape(base)}</h1>"
            f"<ul>{rows}</ul>",
            headers=headers,
        )
    name = request.query_params.get("filename") or (
        path.rstrip("/").rsplit("/", 1)[-1] if path else ""
    )
    if disposition := _disposition(request):
        headers["Content-Disposition"] = disposition
    media = mimetypes.guess_type(name)[0] if name else None
    media = media or "application/octet-stream"
    size = st.filesize
    headers["Accept-Ranges"] = "bytes"
    start, end = 0, size  # [start, end)
    status = 200
    rng = request.headers.get("range")
    if rng:
        m = _RANGE.match(rng.strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = _offset(m.group(1))
                end = min(_offset(m.group(2)) + 1, size) if m.group(2) else size
            else:
                start = max(size - _offset(m.group(2)), 0)
            if start >= size or start >= end:
                return Response(
                    status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
                )
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media)
    stream = primed(store.cat(target, start, end - start))
    return StreamingResponse(stream, status_code=status, media_type=media, headers=headers)
