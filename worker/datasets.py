"""The provider's dataset cache: download, unpack safely, verify against the CID, keep.

A dataset is trusted only if the unpacked tree re-adds to exactly the job's `folder_cid`
(Kubo-identical import); anything else is refused before training. Verified datasets are
kept under `<cache>/<cid>/` so a retried or repeated job does not download again.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

from marketplace.errors import MarketplaceError

# What a provider is willing to unpack (a hostile node could serve a zip bomb).
MAX_DATASET_BYTES = 64 * 1024**3
MAX_DATASET_FILES = 5_000_000
MAX_COMPRESSION_RATIO = 1000.0


class DatasetMismatch(MarketplaceError):
    status = 422
    code = "DATASET_CID_MISMATCH"


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
                archive = await api.download_dataset(job_id, staging / "dataset.zip")
                tree = staging / "tree"
                await asyncio.to_thread(_unpack_and_verify, archive, tree, folder_cid)
                shutil.rmtree(final, ignore_errors=True)
                tree.rename(final)
                (final / ".verified").touch()
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return final


def _unpack_and_verify(archive: Path, tree: Path, folder_cid: str) -> None:
    from marketplace.content.importer import import_path
    from marketplace.datasets.archive import extract_zip

    tree.mkdir()
    extract_zip(
        archive,
        tree,
        max_bytes=MAX_DATASET_BYTES,
        max_files=MAX_DATASET_FILES,
        max_ratio=MAX_COMPRESSION_RATIO,
    )
    actual = str(import_path(tree).cid)
    if actual != folder_cid:
        raise DatasetMismatch(
            f"Dataset does not match its CID: expected {folder_cid}, got {actual}",
            details={"expected": folder_cid, "actual": actual},
        )
