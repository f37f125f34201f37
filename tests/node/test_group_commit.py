"""`node.deps.GroupCommit`, the batching under the create and claim queues, on its own:
what arrives while a batch is written makes the next batch, every item is answered with
its own outcome, a failed batch is written again item by item, and an item whose request
went away is written or not as the queue says."""

from __future__ import annotations

import asyncio
import threading

import pytest

from node.deps import GroupCommit


class Recorded(GroupCommit[str, str]):
    """Writes nothing: records each transaction's items; an item "refuse" gets its own
    refusal, and an item "boom" fails any transaction that holds it."""

    def __init__(self, write_abandoned: bool = True) -> None:
        super().__init__(max_batch=4)
        self.write_abandoned = write_abandoned
        self.transactions: list[list[str]] = []
        self.first_entered = threading.Event()
        self.first_go = threading.Event()

    def _transaction(self, batch: list[str]) -> list[str | Exception]:
        if not self.transactions:
            self.first_entered.set()
            assert self.first_go.wait(10)
        self.transactions.append(list(batch))
        if "boom" in batch and len(batch) > 1:
            raise RuntimeError("the batch fails")
        if batch == ["boom"]:
            raise RuntimeError("boom alone")
        return [ValueError(item) if item == "refuse" else item.upper() for item in batch]


async def _first_held(queue: Recorded) -> asyncio.Task[str]:
    first = asyncio.create_task(queue.submit("first"))
    while not queue.first_entered.is_set():
        await asyncio.sleep(0.001)
    return first


def test_what_arrives_while_a_batch_is_written_makes_the_next_batches() -> None:
    async def main() -> None:
        queue = Recorded()
        first = await _first_held(queue)
        rest = [asyncio.create_task(queue.submit(f"item{i}")) for i in range(6)]
        await asyncio.sleep(0.01)
        queue.first_go.set()
        assert await first == "FIRST"
        assert [await t for t in rest] == [f"ITEM{i}" for i in range(6)]
        assert queue.transactions == [
            ["first"],
            ["item0", "item1", "item2", "item3"],  # max_batch
            ["item4", "item5"],
        ]

    asyncio.run(main())


def test_a_refusal_is_its_own_and_a_failed_batch_is_written_again_item_by_item() -> None:
    async def main() -> None:
        queue = Recorded()
        first = await _first_held(queue)
        a, refused, boom, b = (
            asyncio.create_task(queue.submit(x)) for x in ("a", "refuse", "boom", "b")
        )
        await asyncio.sleep(0.01)
        queue.first_go.set()
        await first
        assert await a == "A"
        assert await b == "B"
        with pytest.raises(ValueError):
            await refused
        with pytest.raises(RuntimeError, match="boom alone"):
            await boom
        assert queue.transactions[1:] == [
            ["a", "refuse", "boom", "b"],
            ["a"],
            ["refuse"],
            ["boom"],
            ["b"],
        ]

    asyncio.run(main())


@pytest.mark.parametrize("write_abandoned", [True, False])
def test_an_item_whose_request_went_away_is_written_as_the_queue_says(
    write_abandoned: bool,
) -> None:
    async def main() -> None:
        queue = Recorded(write_abandoned)
        first = await _first_held(queue)
        gone = asyncio.create_task(queue.submit("gone"))
        kept = asyncio.create_task(queue.submit("kept"))
        await asyncio.sleep(0.01)
        gone.cancel()  # its request went away while the first batch was written
        await asyncio.sleep(0.01)
        queue.first_go.set()
        await first
        assert await kept == "KEPT"
        expected = ["gone", "kept"] if write_abandoned else ["kept"]
        assert queue.transactions == [["first"], expected]

    asyncio.run(main())
