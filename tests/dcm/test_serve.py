"""`dcm serve` says where it listens, once it does (issue 11)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fixtures.served import Served


def test_serve_prints_the_url_it_listens_on(tmp_path: Path, database_url: str) -> None:
    node = Served(tmp_path / "node", database_url)
    try:
        deadline = time.monotonic() + 10
        while f"listening on {node.url}" not in node.log():
            assert time.monotonic() < deadline, node.log()
            time.sleep(0.05)
    finally:
        node.stop()
