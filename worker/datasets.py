"""The provider's dataset cache: fetch the job's `folder_cid` as one CAR, verify it block
by block, unpack it, keep it.

The DAG comes from the node's `dag/export`; every block is checked against its CID as it
is read, and the tree is written by walking the DAG from `folder_cid`, so what lands on
disk is exactly what the requester pinned (nothing is re-imported to check it); a block
that does not match, or one the CAR lacks, refuses the dataset before training
(`DatasetMismatch`). The byte and file limits bound what a hostile node can make a
provider write. Verified datasets are kept under `<cache>/<cid>/` so a retried or
repeated job does not download again.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

from marketplace.datasets.errors import DatasetMismatch

# What a provider is willing to unpack (a hostile node could serve a zip bomb).
MAX_DATASET_BYTES = 64 * 1024**3
MAX_DATASET_FILES = 5_000_000

__all__ = ["ContentCache", "DatasetCache", "DatasetMismatch"]


class DatasetCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, cid: str) -> Path:
        return self.root / cid

    async def fetch(self, api: Any, job_id: str, folder_cid: str) -> Path:
        lock = self._locks.setdefault(folder_cid, asyncio.Lock())
        async with lock:
            final = self.path_for(folder_cid)
            if (final / ".verified").exists():
                return final
            self.root.mkdir(parents=True, exist_ok=True)
            staging = self.root / f".staging-{uuid.uuid4().hex}"
            staging.mkdir()
            try:
                archive = await api.download_car(
                    folder_cid, staging / "dataset.car", max_bytes=2 * MAX_DATASET_BYTES
                )
                tree = staging / "tree"
                await asyncio.to_thread(_unpack_verified, archive, tree, folder_cid)
                shutil.rmtree(final, ignore_errors=True)
                tree.rename(final)
                (final / ".verified").touch()
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return final


class ContentCache:
    """Any content a job names by CID beyond its dataset (a container job's inputs, an image
    archive): fetched and verified like a dataset, kept as `<cache>/<cid>/content`, a file for
    a file CID and a directory for a directory CID."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    async def fetch(self, api: Any, cid: str) -> Path:
        lock = self._locks.setdefault(cid, asyncio.Lock())
        async with lock:
            final = self.root / cid
            if (final / ".verified").exists():
                return final / "content"
            self.root.mkdir(parents=True, exist_ok=True)
            staging = self.root / f".staging-{uuid.uuid4().hex}"
            staging.mkdir()
            try:
                archive = await api.download_car(
                    cid, staging / "content.car", max_bytes=2 * MAX_DATASET_BYTES
                )
                tree = staging / "tree"
                tree.mkdir()
                await asyncio.to_thread(
                    _unpack_verified, archive, tree / "content", cid, directory=False
                )
                (staging / "content.car").unlink()
                shutil.rmtree(final, ignore_errors=True)
                tree.rename(final)
                (final / ".verified").touch()
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return final / "content"


def _unpack_verified(archive: Path, tree: Path, folder_cid: str, *, directory: bool = True) -> None:
    """Write the DAG under `folder_cid` to `tree` (`directory=False`: whatever the root is,
    a file or a directory), every block verified."""
    from marketplace.content.errors import ContentNotFound, CorruptBlock, InvalidBlock
    from marketplace.content.unpack import unpack_car

    if directory:
        tree.mkdir()
    try:
        with open(archive, "rb") as f:
            unpack_car(
                f, folder_cid, tree, max_files=MAX_DATASET_FILES, max_bytes=MAX_DATASET_BYTES
            )
    except (InvalidBlock, CorruptBlock, ContentNotFound) as exc:
        raise DatasetMismatch(
            f"Dataset does not match its CID {folder_cid}: {exc.message}",
            details={"expected": folder_cid},
        ) from exc
