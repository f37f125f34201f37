"""Scratch space of request bodies being received: `<data_dir>/tmp/`.

Uploads stream into folders there (seed 000 datasets under `tmp/uploads/`, Kubo adds as
`tmp/add-*`) and each request removes its own. A process killed mid-upload cannot, so
every start cleans up what is left: `claim_staging` takes an exclusive `flock` on
`<data_dir>/tmp.lock` and, when that succeeds (no other live process uses this data dir), removes
everything else under `tmp/`; then it holds a shared lock for the process's life. Every
process keeps its shared lock, so a second node started on the same data dir cannot wipe
the first one's uploads in flight: it only removes what is older than a day, as the
upload route does for its own folder (`node.datasets.service.purge_stale_uploads`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("dcm.staging")

STALE_SECONDS = 24 * 3600
LOCK_NAME = "tmp.lock"  # beside tmp/, so tmp/ holds nothing but uploads in flight


@dataclass
class StagingClaim:
    """This process's shared lock on the staging folder; `close()` releases it."""

    root: Path
    fd: int
    removed: int

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1


def claim_staging(data_dir: Path) -> StagingClaim:
    """Clean `<data_dir>/tmp` of what dead processes left and hold it for this one."""
    root = data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sole = True
    except BlockingIOError:
        sole = False
    try:
        removed = _remove_entries(root, older_than=None if sole else time.time() - STALE_SECONDS)
    finally:
        fcntl.flock(fd, fcntl.LOCK_SH)  # from exclusive (or nothing) to shared
    if removed:
        log.info("staging: removed %d folders left by interrupted uploads", removed)
    return StagingClaim(root, fd, removed)


def _remove_entries(root: Path, older_than: float | None) -> int:
    removed = 0
    for child in root.iterdir():
        try:
            if older_than is not None and child.stat().st_mtime >= older_than:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed += 1
        except FileNotFoundError:
            continue
    return removed
