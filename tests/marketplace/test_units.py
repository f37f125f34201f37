"""Quantities with units: parsed exactly, refused when malformed, shown shortest."""

from __future__ import annotations

import pytest

from marketplace.units import InvalidQuantity, format_bytes, parse_bytes


def test_binary_and_decimal_units():
    assert parse_bytes("512Mi") == 512 * 1024**2
    assert parse_bytes("1Gi") == 1024**3
    assert parse_bytes("1G") == 10**9
    assert parse_bytes("3k") == parse_bytes("3K") == 3000
    assert parse_bytes("2GiB") == 2 * 1024**3
    assert parse_bytes("4096") == 4096


@pytest.mark.parametrize(
    "text", ["", "Mi", "-1Mi", "1.5Gi", "1e9", "1 Gi", "1Xi", "1mi", "1" * 40, "0x10"]
)
def test_malformed_quantities_are_refused(text):
    with pytest.raises(InvalidQuantity):
        parse_bytes(text)


def test_non_text_is_refused():
    for value in (512, 1.5, None, ["1Gi"]):
        with pytest.raises(InvalidQuantity):
            parse_bytes(value)  # type: ignore[arg-type]


def test_format_is_the_shortest_exact_spelling():
    assert [format_bytes(n) for n in (512 * 1024**2, 10**9, 64 * 10**6, 1500, 1024**4)] == [
        "512Mi",
        "1G",
        "64M",
        "1500",
        "1Ti",
    ]
    for text in ("512Mi", "2Gi", "1G", "100Gi", "7"):
        assert parse_bytes(format_bytes(parse_bytes(text))) == parse_bytes(text)
