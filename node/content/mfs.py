"""MFS, the mutable file system of `ipfs files ...`: a directory tree whose root is
rewritten (copy on write, as Kubo does) by every change, over the node's content store.

Each caller has a tree of their own (`owner_of`: one per user, one per API key), whose
root CID lives in `mfs_roots`; the collector never sweeps what a root reaches. Files and
directories are built as Kubo's MFS builds them by default (CIDv0, dag-pb leaves, 256 KiB
chunks), so a file written here has the CID `ipfs add` gives its bytes.

Changes to one owner's tree are serialised in this process; a node with several replicas
on one database may lose one of two writes that race on the same tree (the last root
written wins), as two Kubo clients racing on one MFS path do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from marketplace.content import dag
from marketplace.content.cid import DAG_PB, Cid, parse_cid
from marketplace.content.dagpb import decode_node
from marketplace.content.errors import ContentNotFound, NotADirectory, NotAFile
from marketplace.content.importer import ImportOptions, Node, build_directory, import_bytes
from marketplace.content.nodes import Buffer
from marketplace.content.store import ContentStore
from marketplace.errors import BadQuery, Conflict
from node.auth.principal import Principal
from node.content import repository

_OPTIONS = ImportOptions()  # Kubo's MFS defaults: CIDv0, dag-pb leaves
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def owner_of(principal: Principal) -> str:
    """Whose tree a caller works on: an API key's own, or its user's."""
    if principal.api_key_id is not None:
        return f"key:{principal.api_key_id}"
    return f"user:{principal.user_id}"


def _lock(owner: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(owner, threading.Lock())


def split_path(path: str) -> list[str]:
    """`/a/b` to ["a", "b"]; MFS paths are absolute, without `.` or `..`."""
    if not path.startswith("/"):
        raise BadQuery(f"paths must start with a leading slash: {path!r}")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise BadQuery(f"invalid path {path!r}")
    return parts


@dataclass(frozen=True)
class MfsStat:
    cid: str
    size: int  # file bytes; 0 for a directory
    cumulative_size: int
    blocks: int
    is_dir: bool

    def kubo(self) -> dict[str, object]:
        return {
            "Hash": self.cid,
            "Size": self.size,
            "CumulativeSize": self.cumulative_size,
            "Blocks": self.blocks,
            "Type": "directory" if self.is_dir else "file",
        }


class _Sink:
    """Blocks the MFS builds go to the store (unpinned; the root keeps them)."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store

    def put(self, cid: Cid, parts: Sequence[Buffer]) -> None:
        self.store.put_block(str(cid), b"".join(bytes(p) for p in parts))


class Mfs:
    """One owner's tree. Reads take the current root; writes build the new tree's
    blocks, then record the new root, under the store's hold (never collected between)."""

    def __init__(self, store: ContentStore, sessions: sessionmaker[Session], owner: str):
        self.store = store
        self.sessions = sessions
        self.owner = owner
        self._sink = _Sink(store)

    # -- the root -------------------------------------------------------------------
    def root(self) -> str:
        with self.sessions.begin() as session:
            cid = repository.mfs_root(session, self.owner)
        if cid is None:
            cid = str(build_directory([], _OPTIONS, self._sink).cid)
        return cid

    def _get(self, cid: Cid) -> bytes:
        return self.store.get_block(str(cid))

    def _resolve(self, root: str, parts: list[str]) -> Cid:
        cid = parse_cid(root)
        walked = ""
        for name in parts:
            walked += "/" + name
            for link_name, child, _ in dag.dir_links(self._get, cid, self._get(cid)):
                if link_name == name:
                    cid = child
                    break
            else:
                raise ContentNotFound(f"file does not exist: {walked}")
        return cid

    def _source(self, path: str) -> Cid:
        """A path in this tree, or `/ipfs/CID[/...]` (what `files cp` and `stat` take)."""
        if path.startswith("/ipfs/") or not path.startswith("/"):
            return parse_cid(self.store.resolve(path))
        return self._resolve(self.root(), split_path(path))

    # -- reads ----------------------------------------------------------------------
    def stat(self, path: str) -> MfsStat:
        cid = self._source(path)
        block = self._get(cid)
        st = dag.stat(self._get, cid)
        links = [] if cid.codec != DAG_PB else decode_node(block).links
        return MfsStat(
            cid=str(cid),
            size=st.filesize,
            cumulative_size=len(block) + sum(link.tsize for link in links),
            blocks=len(links),
            is_dir=st.is_dir,
        )

    def ls(self, path: str) -> list[dict[str, object]]:
        cid = self._source(path)
        st = dag.stat(self._get, cid)
        if not st.is_dir:
            name = split_path(path)[-1] if not path.startswith("/ipfs/") else str(cid)
            return [{"Name": name, "Type": 0, "Size": st.filesize, "Hash": str(cid)}]
        return [
            {"Name": e.name, "Type": 1 if e.is_dir else 0, "Size": e.size, "Hash": e.cid}
            for e in dag.ls(self._get, cid)
        ]

    def read(self, path: str, offset: int = 0, count: int | None = None) -> Iterator[bytes]:
        cid = self._source(path)
        return dag.cat(self._get, cid, offset, count)

    # -- writes ---------------------------------------------------------------------
    def _commit(self, change) -> str:  # type: ignore[no-untyped-def]
        """Apply `change(root) -> new root` and record the new root; return it."""
        with _lock(self.owner), self.store.hold():
            new_root = change(self.root())
            with self.sessions.begin() as session:
                repository.set_mfs_root(session, self.owner, new_root)
        return new_root

    def _set(self, dir_cid: Cid, parts: list[str], node: Node | None, *, parents: bool) -> Node:
        """The directory `dir_cid` with the entry at `parts` replaced by `node` (removed
        when None), rebuilt up to itself."""
        block = self._get(dir_cid)
        entries = {
            name: Node(cid, tsize, 0)
            for name, cid, tsize in dag.dir_links(self._get, dir_cid, block)
        }
        name = parts[0]
        if len(parts) == 1:
            if node is None:
                entries.pop(name, None)
            else:
                entries[name] = node
        else:
            child = entries.get(name)
            if child is None:
                if not parents:
                    raise ContentNotFound(f"directory does not exist: {name}")
                child = build_directory([], _OPTIONS, self._sink)
            elif not dag.stat(self._get, child.cid).is_dir:
                raise NotADirectory(f"{name} is not a directory")
            entries[name] = self._set(child.cid, parts[1:], node, parents=parents)
        return build_directory(entries.items(), _OPTIONS, self._sink)

    def _exists(self, root: str, parts: list[str]) -> Cid | None:
        try:
            return self._resolve(root, parts)
        except ContentNotFound:
            return None

    def mkdir(self, path: str, *, parents: bool) -> str:
        parts = split_path(path)
        if not parts:
            raise Conflict("cannot create the root directory: it exists")

        def change(root: str) -> str:
            found = self._exists(root, parts)
            if found is not None:
                if parents and dag.stat(self._get, found).is_dir:
                    return root
                raise Conflict(f"file already exists: {path}")
            empty = build_directory([], _OPTIONS, self._sink)
            return str(self._set(parse_cid(root), parts, empty, parents=parents).cid)

        return self._commit(change)

    def write(
        self,
        path: str,
        data: bytes,
        *,
        offset: int,
        create: bool,
        truncate: bool,
        parents: bool,
        count: int | None,
    ) -> str:
        parts = split_path(path)
        if not parts:
            raise NotAFile("cannot write to the root directory")
        if count is not None:
            data = data[:count]

        def change(root: str) -> str:
            found = self._exists(root, parts)
            if found is None:
                if not create:
                    raise ContentNotFound(f"file does not exist: {path}")
                old = b""
            else:
                if dag.stat(self._get, found).is_dir:
                    raise NotAFile(f"{path} is a directory")
                old = b"" if truncate else b"".join(dag.cat(self._get, found))
            if offset > len(old):
                old += b"\0" * (offset - len(old))
            new = old[:offset] + data + old[offset + len(data) :]
            node = import_bytes(new, _OPTIONS, self._sink)
            return str(self._set(parse_cid(root), parts, node, parents=parents).cid)

        return self._commit(change)

    def rm(self, path: str, *, recursive: bool, force: bool) -> str:
        parts = split_path(path)
        if not parts:
            raise BadQuery("cannot remove the root directory")

        def change(root: str) -> str:
            found = self._exists(root, parts)
            if found is None:
                if force:
                    return root
                raise ContentNotFound(f"file does not exist: {path}")
            if dag.stat(self._get, found).is_dir and not (recursive or force):
                raise BadQuery(f"{path} is a directory, use -r to remove directories")
            return str(self._set(parse_cid(root), parts, None, parents=False).cid)

        return self._commit(change)

    def cp(self, source: str, dest: str, *, parents: bool) -> str:
        parts = split_path(dest)
        if not parts:
            raise Conflict("cannot copy onto the root directory")

        def change(root: str) -> str:
            if source.startswith("/ipfs/"):
                src = parse_cid(self.store.resolve(source))
                if not self.store.has(str(src)):
                    raise ContentNotFound(f"{source}: not all of its blocks are stored")
            else:
                src = self._resolve(root, split_path(source))
            if self._exists(root, parts) is not None:
                raise Conflict(f"cp: cannot put node in path {dest}: directory already has entry")
            block = self._get(src)
            links = [] if src.codec != DAG_PB else decode_node(block).links
            node = Node(src, len(block) + sum(link.tsize for link in links), 0)
            return str(self._set(parse_cid(root), parts, node, parents=parents).cid)

        return self._commit(change)

    def mv(self, source: str, dest: str) -> str:
        src_parts, dest_parts = split_path(source), split_path(dest)
        if not src_parts or not dest_parts:
            raise BadQuery("cannot move the root directory")

        def change(root: str) -> str:
            src = self._resolve(root, src_parts)
            if self._exists(root, dest_parts) is not None:
                raise Conflict(f"mv: {dest} already exists")
            block = self._get(src)
            links = [] if src.codec != DAG_PB else decode_node(block).links
            node = Node(src, len(block) + sum(link.tsize for link in links), 0)
            removed = self._set(parse_cid(root), src_parts, None, parents=False)
            return str(self._set(removed.cid, dest_parts, node, parents=False).cid)

        return self._commit(change)
