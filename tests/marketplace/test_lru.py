from marketplace.lru import Lru


def test_the_least_recently_used_goes_first() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # used: "b" is now the least recently used
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)
    assert len(lru) == 2


def test_discard_of_a_value_spares_a_newer_one() -> None:
    lru: Lru[str, list[int]] = Lru(4)
    old, new = [1], [1]  # equal, not the same
    lru.put("k", old)
    lru.put("k", new)
    lru.discard("k", old)  # a reader that saw `old` go stale
    assert lru.get("k") is new
    lru.discard("k")
    assert lru.get("k") is None
    lru.put("k", old)
    lru.clear()
    assert len(lru) == 0
