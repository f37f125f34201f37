"""The block collector: a loop service that deletes blocks no pin reaches from the
embedded store, every `block_gc_interval_seconds` (0 turns it off).

What it collects: blocks of uploads that failed or were interrupted after their import
(a node killed mid-upload leaves them), of content added with `pin=false`, and of pins
the settlement policy released. What it never touches: anything pinned, and anything an
import in progress has added but not yet pinned (`EmbeddedStore.hold`, `gc`). With a
Kubo daemon as content store there is nothing to collect here: Kubo has its own GC.
"""

from __future__ import annotations

import logging

from node.content.store import EmbeddedStore
from node.services import LoopService

log = logging.getLogger("dcm.content")


class BlockCollector(LoopService):
    name = "block-collector"

    def __init__(self, store: EmbeddedStore, loop_seconds: float) -> None:
        super().__init__(loop_seconds)
        self.store = store

    def run_once(self) -> int:
        """Collect once; return how many blocks were deleted."""
        removed = self.store.gc()
        if removed:
            log.info("block collector: %d unreachable blocks deleted", removed)
        return removed
