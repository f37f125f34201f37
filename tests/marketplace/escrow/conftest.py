from __future__ import annotations

import pytest

from tests.fixtures.engines import require_engine

from .harness import HardhatNode, Harness, hardhat_available, in_process, over_http


@pytest.fixture(scope="session")
def hardhat_node(tmp_path_factory):
    require_engine(hardhat_available(), "Hardhat not installed (npm ci at the repo root)")
    node = HardhatNode(tmp_path_factory.mktemp("hardhat"))
    yield node
    node.stop()


@pytest.fixture(params=["eth-tester", "hardhat"])
def chain(request) -> Harness:
    """A chain with a freshly deployed escrow (2.5 % fee), on each backend."""
    if request.param == "eth-tester":
        harness = in_process()
    else:
        harness = over_http(request.getfixturevalue("hardhat_node").url)
    harness.deploy()
    return harness
