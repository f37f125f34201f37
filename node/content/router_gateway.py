"""The path gateway `GET /ipfs/{cid}[/path]`: files as bytes (with single byte ranges),
directories as a small HTML listing, and trustless retrieval of verifiable data with
`?format=raw|car` or `Accept: application/vnd.ipld.raw|car`."""

from __future__ import annotations

import html
import mimetypes
import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from marketplace.content import car, dag
from marketplace.content.cid import parse_cid
from marketplace.content.store import ContentStore
from marketplace.errors import BadQuery
from node.content.service import primed, stat_of

router = APIRouter(tags=["gateway"])

RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


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


def _path_cids(store: ContentStore, root: str, path: str) -> list[str]:
    """The CIDs from the root through each path segment (the blocks a verifier needs)."""
    cids = [store.resolve(root)]
    walked = root
    for seg in (s for s in path.split("/") if s):
        walked = f"{walked}/{seg}"
        cids.append(store.resolve(walked))
    return cids


@router.api_route("/ipfs/{cid}", methods=["GET", "HEAD"])
@router.api_route("/ipfs/{cid}/{path:path}", methods=["GET", "HEAD"])
def gateway(request: Request, cid: str, path: str = "") -> Response:
    store: ContentStore = request.app.state.content
    root = str(parse_cid(cid))
    chain = _path_cids(store, root, path)
    target = chain[-1]
    headers = {
        "Etag": f'"{target}"',
        "X-Ipfs-Path": f"/ipfs/{cid}" + (f"/{path}" if path else ""),
        "X-Ipfs-Roots": ",".join(chain),
        "Cache-Control": "public, max-age=29030400, immutable",
    }
    fmt = _format(request)
    if fmt == "raw":
        headers["Content-Disposition"] = f'attachment; filename="{target}.bin"'
        return Response(store.get_block(target), media_type=RAW, headers=headers)
    if fmt == "car":
        get = lambda c: store.get_block(str(c))  # noqa: E731
        target_cid = parse_cid(target)

        def blocks():  # type: ignore[no-untyped-def]
            for c in chain[:-1]:
                pc = parse_cid(c)
                yield pc, get(pc)
            yield from dag.walk(get, target_cid)

        headers["Content-Disposition"] = f'attachment; filename="{target}.car"'
        stream = primed(car.write_car([parse_cid(root)], blocks()))
        return StreamingResponse(stream, media_type=f"{CAR}; version=1", headers=headers)

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
    name = path.rstrip("/").rsplit("/", 1)[-1] if path else ""
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
                start = int(m.group(1))
                end = min(int(m.group(2)) + 1, size) if m.group(2) else size
            else:
                start = max(size - int(m.group(2)), 0)
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
