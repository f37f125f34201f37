"""Exact wei <-> decimal ETH conversion, and what it refuses."""

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.money import MAX_WEI, InvalidAmount, eth_to_wei, wei_to_eth


@pytest.mark.parametrize(
    ("wei", "eth"),
    [
        (0, "0"),
        (1, "0.000000000000000001"),
        (500_000_000_000_000_000, "0.5"),
        (10**18, "1"),
        (12 * 10**18 + 340_000_000_000_000_000, "12.34"),
        (
            MAX_WEI,
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935",
        ),
    ],
)
def test_known_values_round_trip(wei: int, eth: str) -> None:
    assert wei_to_eth(wei) == eth
    assert eth_to_wei(eth) == wei


def test_accepts_ints_decimals_and_trailing_zeros() -> None:
    assert eth_to_wei(3) == 3 * 10**18
    assert eth_to_wei(Decimal("0.10")) == 10**17
    assert eth_to_wei("0.500") == 5 * 10**17
    assert eth_to_wei(Decimal("0")) == 0


@pytest.mark.parametrize(
    "bad",
    [
        "-1",
        "-0.5",
        "1e18",
        "1E-3",
        "NaN",
        "nan",
        "Infinity",
        "inf",
        "",
        " 1",
        "1 ",
        "0x10",
        "01",
        ".5",
        "1.",
        "1,5",
        "0.0000000000000000001",  # 19 decimals
        "+1",
        0.5,
        True,
        -1,
        Decimal("NaN"),
        Decimal("-1"),
        Decimal("Infinity"),
        Decimal("1e-19"),
        None,
        str(MAX_WEI),  # as ETH this is far beyond uint256 wei
    ],
)
def test_refuses_malformed_amounts(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        eth_to_wei(bad)  # type: ignore[arg-type]


def test_format_eth_keeps_every_wei():
    # Moved from tests/marketplace/datasets/test_params.py with params.format_eth.
    assert wei_to_eth(500 * 10**18, 6) == "500.000000"
    assert wei_to_eth(1, 6) == "0.000000000000000001"
    assert wei_to_eth(123456700000000000, 6) == "0.1234567"
    assert wei_to_eth(5 * 10**17) == "0.5"


@pytest.mark.parametrize("bad", [-1, 1.0, "5", True])
def test_wei_to_eth_refuses_non_int_or_negative(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        wei_to_eth(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=MAX_WEI))
def test_round_trip_is_exact(wei: int) -> None:
    text = wei_to_eth(wei)
    assert eth_to_wei(text) == wei
    with localcontext() as ctx:
        ctx.prec = 100  # the default 28 digits would round uint256-sized amounts
        assert Decimal(text) * 10**18 == wei
