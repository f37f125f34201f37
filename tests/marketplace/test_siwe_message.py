"""The EIP-4361 message builder and strict parser in `marketplace/siwe.py`."""

from __future__ import annotations

import datetime as dt

import pytest

from marketplace.siwe import SiweSyntaxError, build_message, parse_message

ADDRESS = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
ISSUED = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)

# The example message of the EIP-4361 text.
EIP_EXAMPLE = (
    "service.invalid wants you to sign in with your Ethereum account:\n"
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
    "\n"
    "I accept the ServiceOrg Terms of Service: https://service.invalid/tos\n"
    "\n"
    "URI: https://service.invalid/login\n"
    "Version: 1\n"
    "Chain ID: 1\n"
    "Nonce: 32891756\n"
    "Issued At: 2021-09-30T16:25:24Z\n"
    "Resources:\n"
    "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
    "- https://example.com/my-web2-claim.json"
)


def _build(**overrides: object) -> str:
    fields: dict[str, object] = {
        "domain": "node.example:8000",
        "address": ADDRESS,
        "uri": "http://node.example:8000",
        "chain_id": 131277322940537,
        "nonce": "abcdef0123456789",
        "issued_at": ISSUED,
    }
    fields.update(overrides)
    return build_message(**fields)  # type: ignore[arg-type]


def test_parses_the_eip_example() -> None:
    msg = parse_message(EIP_EXAMPLE)
    assert msg.domain == "service.invalid"
    assert msg.address == ADDRESS
    assert msg.statement == "I accept the ServiceOrg Terms of Service: https://service.invalid/tos"
    assert msg.chain_id == 1
    assert msg.nonce == "32891756"
    assert msg.issued_at == dt.datetime(2021, 9, 30, 16, 25, 24, tzinfo=dt.UTC)
    assert msg.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )


def test_build_then_parse_round_trips_every_field() -> None:
    expires = ISSUED + dt.timedelta(minutes=5)
    text = _build(
        statement="Sign in to dcm",
        expiration_time=expires,
        not_before=ISSUED,
        request_id="req-1",
        resources=["ipfs://bafy/x"],
        scheme="https",
    )
    msg = parse_message(text)
    assert (msg.scheme, msg.domain, msg.statement) == (
        "https",
        "node.example:8000",
        "Sign in to dcm",
    )
    assert (msg.expiration_time, msg.not_before, msg.request_id) == (expires, ISSUED, "req-1")
    assert msg.issued_at == ISSUED
    assert msg.to_text() == text


def test_message_without_statement_has_two_empty_lines() -> None:
    text = _build()
    assert f"{ADDRESS}\n\n\nURI: " in text
    assert parse_message(text).statement is None


def test_older_single_empty_line_form_is_accepted() -> None:
    text = _build().replace(f"{ADDRESS}\n\n\nURI: ", f"{ADDRESS}\n\nURI: ")
    assert parse_message(text).statement is None


def test_builder_checksums_a_lowercase_address() -> None:
    assert parse_message(_build(address=ADDRESS.lower())).address == ADDRESS


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (ADDRESS, ADDRESS.lower()),  # not EIP-55
        ("Version: 1", "Version: 2"),
        ("Nonce: abcdef0123456789", "Nonce: short"),
        ("Nonce: abcdef0123456789", "Nonce: has-dash-1234"),
        ("Chain ID: 131277322940537", "Chain ID: 0x1"),
        ("Issued At: 2026-01-02T03:04:05.678Z", "Issued At: yesterday"),
        ("Issued At: 2026-01-02T03:04:05.678Z", "Issued At: 2026-13-02T03:04:05Z"),
        ("URI: http://node.example:8000", "URI: not a uri"),
        (" wants you to sign in", " would like you to sign in"),
        ("node.example:8000 wants", "node example wants"),
    ],
)
def test_malformed_field_is_refused(old: str, new: str) -> None:
    text = _build()
    assert old in text
    with pytest.raises(SiweSyntaxError):
        parse_message(text.replace(old, new))


def test_trailing_content_is_refused() -> None:
    with pytest.raises(SiweSyntaxError, match="unexpected content"):
        parse_message(_build() + "\nEvil: yes")


def test_crlf_line_endings_are_refused() -> None:
    with pytest.raises(SiweSyntaxError):
        parse_message(_build().replace("\n", "\r\n"))


def test_oversized_message_is_refused() -> None:
    with pytest.raises(SiweSyntaxError):
        parse_message(_build(statement="x" * 5000))


def test_builder_refuses_a_multiline_statement() -> None:
    with pytest.raises(SiweSyntaxError):
        _build(statement="line one\nline two")
