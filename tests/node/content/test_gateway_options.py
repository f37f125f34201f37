"""The gateway as browsers and trustless clients use it (issue 11): `dag-scope` and
`entity-bytes` on CARs, `If-None-Match` answered 304, CORS, `?filename=` and
`?download=true`."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient

from marketplace.content import car
from marketplace.content.importer import import_bytes

BIG = bytes(i % 251 for i in range(3 * 262144 + 10))  # four leaves


def _add(client: TestClient, tmp_path) -> str:  # type: ignore[no-untyped-def]
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(BIG)
    (root / "sub" / "x.txt").write_bytes(b"x")
    store = client.app.state.runtime.content  # type: ignore[attr-defined]
    return store.add_path(root)


def _car_cids(body: bytes) -> list[str]:
    roots, blocks = car.read_car(io.BytesIO(body))
    return [str(c) for c, _ in blocks]


def test_dag_scope_block_entity_and_all(client: TestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = _add(client, tmp_path)
    file_cid = str(import_bytes(BIG).cid)
    get = lambda q: client.get(f"/ipfs/{root}/big.bin?format=car{q}")  # noqa: E731
    every = _car_cids(get("").content)
    assert every[0] == root and every[1] == file_cid and len(every) == 2 + 4
    assert _car_cids(get("&dag-scope=block").content) == [root, file_cid]
    assert _car_cids(get("&dag-scope=entity").content) == every
    # the dir alone: its own node, not its children
    assert _car_cids(client.get(f"/ipfs/{root}?format=car&dag-scope=entity").content) == [root]
    assert len(_car_cids(client.get(f"/ipfs/{root}?format=car").content)) > 6
    bad = client.get(f"/ipfs/{root}?format=car&dag-scope=most")
    assert bad.status_code == 400


def test_entity_bytes_sends_only_the_leaves_of_the_range(client: TestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = _add(client, tmp_path)
    url = f"/ipfs/{root}/big.bin?format=car&dag-scope=entity&entity-bytes="
    assert len(_car_cids(client.get(url + "0:10").content)) == 2 + 1  # root, file, leaf 1
    assert len(_car_cids(client.get(url + "262144:*").content)) == 2 + 3
    assert len(_car_cids(client.get(url + "-5:*").content)) == 2 + 1
    assert client.get(url + "5:nope").status_code == 400


def test_if_none_match_is_304(client: TestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = _add(client, tmp_path)
    first = client.get(f"/ipfs/{root}/sub/x.txt")
    assert first.status_code == 200
    again = client.get(f"/ipfs/{root}/sub/x.txt", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = client.get(f"/ipfs/{root}/sub/x.txt", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    raw = client.get(f"/ipfs/{root}?format=raw")
    assert raw.headers["etag"] != first.headers["etag"]
    assert (
        client.get(
            f"/ipfs/{root}?format=raw", headers={"If-None-Match": raw.headers["etag"]}
        ).status_code
        == 304
    )


def test_cors_headers_and_preflight(client: TestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = _add(client, tmp_path)
    resp = client.get(f"/ipfs/{root}/sub/x.txt", headers={"Origin": "https://app.example"})
    assert resp.headers["access-control-allow-origin"] == "*"
    pre = client.options(
        f"/ipfs/{root}/sub/x.txt",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 204
    assert "GET" in pre.headers["access-control-allow-methods"]


def test_filename_and_download(client: TestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = _add(client, tmp_path)
    inline = client.get(f"/ipfs/{root}/sub/x.txt?filename=report.pdf")
    assert inline.headers["content-disposition"].startswith('inline; filename="report.pdf"')
    assert inline.headers["content-type"] == "application/pdf"
    down = client.get(f"/ipfs/{root}/sub/x.txt?filename=r%C3%A9sum%C3%A9.txt&download=true")
    disposition = down.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.txt" in disposition
    assert "content-disposition" not in client.get(f"/ipfs/{root}/sub/x.txt").headers
